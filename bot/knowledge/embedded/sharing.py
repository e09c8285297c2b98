"""The bot processes sharing one embedded server: each is recorded by its pid and its start time (so a dead one, or
its pid reused by another process, no longer counts), under a lock every process of the host takes on the data
folder; the last live one to leave stops the server, whoever started it and however the others ended."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

Process = tuple[int, int]  # pid, start time in clock ticks after boot (/proc/<pid>/stat's 22nd field)

RECORD = ".bot-processes.json"  # in the data folder


@contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """Held while a process starts, joins or leaves the server (released by the kernel if the process dies)."""
    lock = data_dir.with_name(f".{data_dir.name}.lock")  # beside it: initdb wants a new data folder empty
    descriptor = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def this_process() -> Process:
    pid = os.getpid()
    started = started_at(pid)
    return (pid, started if started is not None else 0)


def started_at(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The name in parentheses may hold spaces and parentheses: the fields counted after the last ')'.
    return int(status[status.rindex(")") + 2 :].split()[19])


def alive(process: Process) -> bool:
    return started_at(process[0]) == process[1]


def live_users(data_dir: Path) -> list[Process]:
    """The processes recorded as using the server that still run (called under the lock)."""
    try:
        recorded = json.loads((data_dir / RECORD).read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(recorded, list):
        return []
    processes = [(int(item[0]), int(item[1])) for item in recorded if isinstance(item, list) and len(item) == 2]
    return [process for process in processes if alive(process)]


def record(data_dir: Path, processes: list[Process]) -> None:
    partial = data_dir / f".{RECORD}.{os.getpid()}"
    partial.write_text(json.dumps([list(process) for process in sorted(set(processes))]))
    partial.replace(data_dir / RECORD)
