"""Taking turns with the sites the knowledge reads: one request at a time to a host, each started a pause after the
previous one (raised by robots.txt's Crawl-delay), and a host that answered 429 or 503 left alone for as long as its
Retry-After asks, while requests to other hosts go on."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from yarl import URL

MAX_CRAWL_DELAY = 60.0  # more, and a site of KNOWLEDGE_MAX_PAGES' 2,000 pages would take over a day to read


def host_key(url: str | URL) -> str:
    """Whose turn a request waits for: "host:port"."""
    parsed = URL(url) if isinstance(url, str) else url
    return f"{parsed.host}:{parsed.port}"


@dataclass
class _Host:
    interval: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    next_start: float = 0.0  # time.monotonic()


class HostTurns:
    """One request at a time per host, started at least its interval after the previous one."""

    def __init__(self, min_interval: float) -> None:
        self._min_interval = min_interval
        self._hosts: dict[str, _Host] = {}

    def _host(self, key: str) -> _Host:
        if key not in self._hosts:
            self._hosts[key] = _Host(self._min_interval)
        return self._hosts[key]

    def set_interval(self, key: str, seconds: float) -> None:
        self._host(key).interval = max(self._min_interval, min(seconds, MAX_CRAWL_DELAY))

    def wait_before_next(self, key: str, seconds: float) -> None:
        self._host(key).next_start = max(self._host(key).next_start, time.monotonic() + seconds)

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        host = self._host(key)
        async with host.lock:
            await asyncio.sleep(max(0.0, host.next_start - time.monotonic()))
            host.next_start = time.monotonic() + host.interval
            yield


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After's seconds ("120" or an HTTP date), None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
