"""The README's commands from a fresh checkout: every make target works in a virtual environment of its own (.venv),
made from whatever Python 3.11+ runs make, including a system Python that refuses pip installs (PEP 668)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fakes.harness.processes import ROOT

# What the Makefile reads from the checkout to make the environment and list its commands.
CHECKOUT_FILES = ("Makefile", "requirements.txt", "requirements-local.txt", "requirements-dev.txt")
TARGETS = ("install", "install-dev", "run", "lint", "test", "bench")


def fresh_checkout(tmp_path: Path) -> Path:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in CHECKOUT_FILES:
        shutil.copy(ROOT / name, checkout / name)
    return checkout


def externally_managed_python() -> str | None:
    """A system Python that refuses `pip install` outside a virtual environment (Debian 12's /usr/bin/python3)."""
    for candidate in ("/usr/bin/python3", "/usr/bin/python3.11", "/usr/bin/python3.12"):
        if not Path(candidate).is_file():
            continue
        stdlib = subprocess.run(
            [candidate, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if stdlib and (Path(stdlib) / "EXTERNALLY-MANAGED").is_file():
            return candidate
    return None


def make(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-C", str(checkout), "--no-print-directory", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_venv_is_made_from_an_externally_managed_system_python(tmp_path: Path) -> None:
    system_python = externally_managed_python()
    if system_python is None:
        pytest.skip("no externally managed system Python here (Debian 12's python3 is one)")
    checkout = fresh_checkout(tmp_path)
    refused = subprocess.run(
        [system_python, "-m", "pip", "install", "--dry-run", "--no-index", "pip"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "externally-managed-environment" in refused.stderr  # what `make install` used to run into

    made = make(checkout, "venv", f"PYTHON={system_python}")
    assert made.returncode == 0, made.stdout + made.stderr
    python = checkout / ".venv" / "bin" / "python"
    inside = subprocess.run(
        [str(python), "-c", "import sys; print(sys.prefix != sys.base_prefix, sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert inside[0] == "True" and inside[1] == "/usr"  # a virtual environment of the system's Python
    # pip works in it: the same dry run the system Python refused.
    allowed = subprocess.run(
        [str(python), "-m", "pip", "install", "--dry-run", "--no-index", "--no-deps", "--find-links", ".", "pip"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "externally-managed-environment" not in allowed.stderr
    made_at = python.lstat().st_mtime_ns
    assert make(checkout, "venv", f"PYTHON={system_python}").returncode == 0
    assert python.lstat().st_mtime_ns == made_at  # made once, then kept


def test_every_target_runs_its_tools_from_the_venv(tmp_path: Path) -> None:
    """No target calls a bare python, pip or tool: outside an activated environment `lint-imports` used to fail."""
    checkout = fresh_checkout(tmp_path)
    assert make(checkout, "venv", f"PYTHON={sys.executable}").returncode == 0
    for target in TARGETS:
        listed = make(checkout, "-n", target, f"PYTHON={sys.executable}")
        assert listed.returncode == 0, listed.stderr
        for program in programs(listed.stdout):
            if Path(program).name.rstrip("0123456789.") in PYTHON_TOOLS:
                assert program.startswith(".venv/bin/"), f"make {target} runs {program}:\n{listed.stdout}"


PYTHON_TOOLS = {"python", "pip", "pytest", "ruff", "mypy", "lint-imports"}


def programs(commands: str) -> list[str]:
    """The program each shell command of `make -n`'s listing starts (after any VAR=value)."""
    found = []
    for line in commands.splitlines():
        for part in re.split(r"&&|\|\||;|\|", line):
            words = [word for word in part.replace("(", " ").split() if "=" not in word.split("/")[0]]
            if words:
                found.append(words[0].strip("@"))
    return found


def test_a_python_without_venv_gets_one_line_saying_what_to_install(tmp_path: Path) -> None:
    """Debian without python3-venv: `python3 -m venv` leaves an environment with no pip. make removes it and says
    which package to install."""
    checkout = fresh_checkout(tmp_path)
    no_ensurepip = tmp_path / "python3"
    # Debian's python3 without python3-venv: a Python whose venv module cannot install pip.
    no_ensurepip.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then "{sys.executable}" -m venv --without-pip "$3";'
        ' echo "The virtual environment was not created successfully because ensurepip is not available." >&2;'
        " exit 1; fi\n"
        f'exec "{sys.executable}" "$@"\n'
    )
    no_ensurepip.chmod(0o755)
    made = make(checkout, "install", f"PYTHON={no_ensurepip}")
    assert made.returncode == 2
    said = (made.stdout + made.stderr).splitlines()
    lines = [line for line in said if line.strip() and not re.match(r"make(\[\d+\])?: \*\*\*", line)]
    assert lines == [lines[0]] and "apt-get install python3-venv" in lines[0], made.stdout + made.stderr
    assert not (checkout / ".venv").exists()  # a broken one is not left to fail later


def test_a_python_older_than_3_11_is_named(tmp_path: Path) -> None:
    checkout = fresh_checkout(tmp_path)
    old = tmp_path / "python3"
    old.write_text(
        '#!/bin/sh\nif [ "$1" = "-V" ]; then echo "Python 3.9.2"; exit 0; fi\n'
        'if [ "$1" = "-c" ]; then exit 1; fi\nexit 0\n'
    )
    old.chmod(0o755)
    made = make(checkout, "install", f"PYTHON={old}")
    assert made.returncode == 2
    assert "Python 3.11 or newer is needed" in made.stdout and "Python 3.9.2" in made.stdout
    assert not (checkout / ".venv").exists()
