"""Docker for tests/system/test_container.py: the daemon, Compose, and images made from Debian's packages.

No image registry is reachable from this project's machines (Debian's mirrors and PyPI are), so
python:3.11-slim and redis:7 can't be pulled. Instead:

- chatbot-base:bookworm is Debian bookworm from `debootstrap --variant=minbase` with what the
  Dockerfile expects of python:3.11-slim (python3 3.11 with venv, CA certificates), imported with
  `docker import`. The rootfs is kept as a tarball in ~/.cache/chatbot-container/, and the image
  is rebuilt only when its recipe (packages, mirror, the machine's own CA certificates) changes.
- chatbot-redis:bookworm is that base with Debian's redis-server (redis.Dockerfile beside this).

Both carry a label with their recipe's digest; `docker image inspect` finding it skips the build.
`python -m tests.system.container.images` builds both (and starts dockerd if needed), as the test does.
`docker_to_ourselves()` keeps the daemon and the builds to one process at a time (pytest-xdist's workers,
two test runs on one machine): the first builds the images, the others find them built.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CACHE = Path.home() / ".cache" / "chatbot-container"
SUITE = "bookworm"
BASE_IMAGE = f"chatbot-base:{SUITE}"
REDIS_IMAGE = f"chatbot-redis:{SUITE}"
# What the Dockerfile expects of python:3.11-slim (useradd and apt come with minbase).
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# A proxy's or a company's certificate authorities, trusted by this machine: the base trusts them
# too (pip inside a build then reaches PyPI wherever this machine does).
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
LABEL = "chatbot.recipe"
MIN_COMPOSE = (2, 24)  # env_file's `required: false`
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])


class DockerUnavailable(Exception):
    """Docker cannot run on this machine at all (the container tests are skipped, saying why)."""


def run(args: list[str], *, timeout: float = 600, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise with its output, which says what went wrong."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if result.returncode != 0:
        output = result.stdout[-3000:] + result.stderr[-3000:]
        raise RuntimeError(f"{' '.join(args)} exited {result.returncode}:\n{output}")
    return result


# -- the daemon and Compose -------------------------------------------------------------------


@contextlib.contextmanager
def docker_to_ourselves() -> Iterator[None]:
    """Hold the machine's Docker lock (a file lock in CACHE) until the block ends: whoever holds it starts
    dockerd if needed, builds the images and stops the dockerd it started, with no one else halfway through."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "docker.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, even by a killed process
        yield


def _daemon_answers() -> bool:
    try:
        probe = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return probe.returncode == 0


class Daemon:
    """The Docker daemon: the one already running, or a dockerd started here and stopped by stop()."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    def ensure(self) -> None:
        if shutil.which("docker") is None:
            raise DockerUnavailable("no docker command (`make install-dev` installs Debian's docker.io)")
        if _daemon_answers():
            return
        dockerd = shutil.which("dockerd", path=SBIN_PATH)
        if dockerd is None:
            raise DockerUnavailable("no Docker daemon is running and there is no dockerd to start")
        if os.geteuid() != 0:
            raise DockerUnavailable("no Docker daemon is running, and starting dockerd needs root")
        CACHE.mkdir(parents=True, exist_ok=True)
        log_path = CACHE / "dockerd.log"
        with log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [dockerd], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if _daemon_answers():
                return
            if self._process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                self._process = None
                raise DockerUnavailable(f"dockerd could not start:\n{tail}")
            time.sleep(0.5)
        self.stop()
        raise DockerUnavailable(f"dockerd did not answer within 60 s (its log: {log_path})")

    def stop(self) -> None:
        """Stop the dockerd started here, if any (a daemon that was already running is left alone)."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


def compose_command() -> list[str]:
    """`docker compose` (the plugin) or a `docker-compose` that is Compose v2.24 or later."""
    found = []
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run([*command, "version", "--short"], capture_output=True, text=True, check=False)
        match = re.match(r"v?(\d+)\.(\d+)", probe.stdout.strip()) if probe.returncode == 0 else None
        if match:
            version = (int(match[1]), int(match[2]))
            if version >= MIN_COMPOSE:
                return command
            found.append(f"{' '.join(command)} {probe.stdout.strip()}")
    raise RuntimeError(
        "compose.yaml needs Docker Compose v2.24 or later"
        + (f" (found only {', '.join(found)})" if found else "")
        + ": `make install-dev` installs Debian's"
    )


# -- the images -------------------------------------------------------------------------------


def _label(image: str) -> str | None:
    """The image's recipe label; None if there is no such image."""
    probe = subprocess.run(
        ["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL}"}}}}', image],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def apt_mirror() -> str:
    """The Debian mirror apt uses here (deb822 .sources or sources.list), else deb.debian.org."""
    sources = Path("/etc/apt")
    for path in sorted(sources.glob("sources.list.d/*.sources")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("URIs:"):
                for uri in line.split()[1:]:
                    if uri.rstrip("/").endswith("/debian"):
                        return uri.rstrip("/")
    for path in [sources / "sources.list", *sorted(sources.glob("sources.list.d/*.list"))]:
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                words = [word for word in line.split() if not word.startswith("[")]
                if len(words) >= 3 and words[0] == "deb" and words[1].rstrip("/").endswith("/debian"):
                    return words[1].rstrip("/")
    return DEFAULT_MIRROR


def _local_cas() -> list[Path]:
    return sorted(LOCAL_CAS.glob("*.crt")) if LOCAL_CAS.is_dir() else []


def base_recipe() -> str:
    digest = hashlib.sha256()
    digest.update(f"{SUITE} minbase {apt_mirror()} {' '.join(BASE_PACKAGES)}\n".encode())
    for ca in _local_cas():
        digest.update(ca.name.encode() + b"\0" + ca.read_bytes())
    return digest.hexdigest()[:16]


def build_base_image() -> str:
    """chatbot-base:bookworm, imported from the cached rootfs tarball (debootstrapped if missing)."""
    recipe = base_recipe()
    if _label(BASE_IMAGE) == recipe:
        return BASE_IMAGE
    tarball = CACHE / f"base-{SUITE}-{recipe}.tar"
    if not tarball.is_file():
        _debootstrap(tarball)
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",  # pip's own CA bundle lacks the machine's
        f"LABEL {LABEL}={recipe}",
        'CMD ["python3"]',
    ]
    args = ["docker", "import"]
    for change in changes:
        args += ["--change", change]
    run([*args, str(tarball), BASE_IMAGE])
    for old in CACHE.glob(f"base-{SUITE}-*.tar"):
        if old != tarball:
            old.unlink()
    return BASE_IMAGE


def _debootstrap(tarball: Path) -> None:
    if shutil.which("debootstrap", path=SBIN_PATH) is None:
        raise RuntimeError("building the base image needs debootstrap (`make install-dev` installs it)")
    if os.geteuid() != 0:
        raise RuntimeError("building the base image with debootstrap needs root")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="rootfs-") as work:
        root = Path(work) / "rootfs"
        include = ",".join(BASE_PACKAGES)
        debootstrap = shutil.which("debootstrap", path=SBIN_PATH) or "debootstrap"
        run([debootstrap, "--variant=minbase", f"--include={include}", SUITE, str(root), apt_mirror()], timeout=1200)
        # What python:3.11-slim leaves out too: downloaded packages and apt's lists.
        for leftover in [*root.glob("var/cache/apt/archives/*.deb"), *root.glob("var/lib/apt/lists/*")]:
            if leftover.is_file():
                leftover.unlink()
        cas = _local_cas()
        if cas:
            for ca in cas:
                shutil.copy2(ca, root / "usr/local/share/ca-certificates" / ca.name)
            run(["chroot", str(root), "update-ca-certificates"])
        partial = tarball.with_suffix(".partial")
        run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."])
        partial.rename(tarball)


def build_redis_image() -> str:
    """chatbot-redis:bookworm: the base with Debian's redis-server, behaving as redis:7 does."""
    base_id = run(["docker", "image", "inspect", "--format", "{{.Id}}", BASE_IMAGE]).stdout.strip()
    digest = hashlib.sha256(base_id.encode())
    for name in ("redis.Dockerfile", "redis-entrypoint.sh"):
        digest.update((HERE / name).read_bytes())
    recipe = digest.hexdigest()[:16]
    if _label(REDIS_IMAGE) == recipe:
        return REDIS_IMAGE
    with tempfile.TemporaryDirectory() as context:
        for name in ("redis.Dockerfile", "redis-entrypoint.sh"):
            shutil.copy2(HERE / name, Path(context) / name)
        run(
            [
                "docker",
                "build",
                "-q",
                "-f",
                str(Path(context) / "redis.Dockerfile"),
                "--build-arg",
                f"BASE_IMAGE={BASE_IMAGE}",
                "--label",
                f"{LABEL}={recipe}",
                "-t",
                REDIS_IMAGE,
                context,
            ],
            timeout=900,
        )
    return REDIS_IMAGE


def main() -> None:
    with docker_to_ourselves():
        Daemon().ensure()
        started = time.monotonic()
        print(build_base_image(), build_redis_image(), f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
