"""What the benchmarks share: the model server process, percentiles, target checks, cleanup."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_cpu_seconds(pid: int) -> float:
    """CPU time of every thread of `pid` so far, to the nanosecond where the kernel keeps
    schedstat (utime/stime count 10 ms ticks: ±0.03 s per 1,000 tokens for one 300-token reply)."""
    try:
        return sum(
            int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
            for task in os.listdir(f"/proc/{pid}/task")
        ) / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
        return json.load(response)


class ModelServerProcess:
    """`python -m tests.fakes.model_server` in a child process (its CPU is not the bot's), stopped on exit."""

    def __init__(self, *, tokens: int, rate: float, first_token_delay: float) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable, "-m", "tests.fakes.model_server", "--port", str(self.port),
            "--tokens", str(tokens), "--rate", f"{rate:g}", "--first-token-delay", f"{first_token_delay:g}",
        ]  # fmt: skip
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ModelServerProcess:
        self._process = subprocess.Popen(self.command, cwd=ROOT, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"model server exited with {self._process.returncode}")
            with contextlib.suppress(OSError):
                http_get_json(f"{self.base_url}/health", timeout=1.0)
                return self
            time.sleep(0.05)
        raise RuntimeError("model server did not become healthy within 20 s")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def request_timings(self) -> list[dict[str, Any]]:
        """Per request: received_at, first_token_at, last_token_at, last_user_message (time.time())."""
        return list(http_get_json(f"{self.base_url}/debug/requests", timeout=30)["requests"])

    def cpu_seconds(self) -> float:
        """The server process's CPU so far (user + system), to show how busy the machine was."""
        assert self._process is not None
        return process_cpu_seconds(self._process.pid)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (p99 of fewer than 100 values is their maximum)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def spread(values: Sequence[float]) -> dict[str, float | None]:
    return {"p50": percentile(values, 0.50), "p99": percentile(values, 0.99), "max": max(values, default=None)}


def number(value: float | None, digits: int = 1) -> str:
    """A figure for a results table; "-" when there is none."""
    return "-" if value is None else f"{value:.{digits}f}"


def figures(values: dict[str, float | None], digits: int = 1, keys: Sequence[str] = ("p50", "p99")) -> str:
    """Several figures of a `spread`, "p50/p99" by default."""
    return "/".join(number(values[key], digits) for key in keys)


@dataclass(frozen=True)
class TargetCheck:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class CpuSplit:
    """The bot on a core of its own, the stand-ins for the platform and the model server on the rest.

    In production Discord and the model server run on other machines. Here they share a small
    box with the bot, and the scheduler would otherwise run them on the bot's core in the
    middle of a burst, which measures the stand-ins' CPU as the bot's delay.
    """

    bot: frozenset[int]
    rest: frozenset[int]

    def describe(self) -> str:
        return f"bot on CPU {_cpu_list(self.bot)}, fakes and model server on CPU {_cpu_list(self.rest)}"


def split_cpus(enabled: bool = True) -> CpuSplit | None:
    """Split this process's CPUs (None when disabled or there are fewer than two)."""
    if not enabled or not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return CpuSplit(frozenset(cpus[:1]), frozenset(cpus[1:]))


def _cpu_list(cpus: frozenset[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


def machine() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu_model": model, "python": platform.python_version()}


async def delete_keys(prefix: str) -> int:
    """Delete the benchmark's own Redis keys (and only those)."""
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
        return len(keys)
    finally:
        await client.aclose()
