"""Where the harnesses' bot processes find Redis and the checkout, how long they may take to start, and how they
are stopped and their keys removed."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import redis

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[2]
# How long the harnesses wait for a bot process to be up (connected, listening, announced). An idle
# machine starts one in 2-3 s; a run with pytest-xdist's workers (pyproject.toml) starts several at once
# on the same cores, and each test's own bounds are on what the bot does once started.
BOT_START_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def delete_keys(prefix: str) -> None:
    """Delete the Redis keys under `prefix` (a test's own), and nothing else."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


async def terminate(process: asyncio.subprocess.Process, timeout: float) -> bool:
    """SIGTERM a bot process and wait for it; kill it if it doesn't exit in time. True if killed."""
    if process.returncode is not None:
        return False
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout)
        return False
    except TimeoutError:
        process.kill()
        await process.wait()
        return True
