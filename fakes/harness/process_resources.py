"""What a bot process uses, read from /proc: its memory, its CPU time, its child processes."""

from __future__ import annotations

import os
from pathlib import Path


def memory(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (the most ever resident) of a process, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = {line.split(":")[0]: line.split()[1] for line in status if line.startswith(("VmRSS:", "VmHWM:"))}
    return {name: int(kilobytes) * 1024 for name, kilobytes in fields.items()}


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def cpu_seconds(pid: int) -> float:
    """The CPU a process has used (user and system, all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
