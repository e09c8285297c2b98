"""Discord's fixed-window rate limits: per-route buckets, the global limit, their headers and 429s."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from fakes.discord.models import Limits, RateLimit
from fakes.discord.protocol import _token_hash


@dataclass
class _Window:
    limit: int
    per: float
    started: float
    count: int = 0

    def reset_after(self, now: float) -> float:
        return max(0.0, self.started + self.per - now)


@dataclass(frozen=True)
class BucketStatus:
    limit: int
    remaining: int
    reset_after: float
    bucket_hash: str

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": f"{time.time() + self.reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{self.reset_after:.3f}",
            "X-RateLimit-Bucket": self.bucket_hash,
        }


class RateLimitExceeded(Exception):
    def __init__(self, retry_after: float, *, is_global: bool, status: BucketStatus | None) -> None:
        super().__init__(f"rate limited for {retry_after:.3f}s")
        self.retry_after = max(retry_after, 0.001)
        self.is_global = is_global
        self.status = status

    def body(self) -> dict[str, Any]:
        return {
            "message": "You are being rate limited.",
            "retry_after": round(self.retry_after, 3),
            "global": self.is_global,
            "code": 0,
        }

    def headers(self) -> dict[str, str]:
        headers = self.status.headers() if self.status else {}
        headers["Retry-After"] = str(math.ceil(self.retry_after))
        headers["X-RateLimit-Scope"] = "global" if self.is_global else "user"
        if self.is_global:
            headers["X-RateLimit-Global"] = "true"
        return headers


@dataclass
class _InjectedLimit:
    route: str | None
    remaining: int
    retry_after: float
    is_global: bool


class RateLimiter:
    """Discord-like fixed windows.  Requests rejected with 429 do not consume the bucket."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._windows: dict[str, _Window] = {}
        self._injected: list[_InjectedLimit] = []

    def inject(self, route: str | None, *, count: int, retry_after: float, is_global: bool) -> None:
        self._injected.append(_InjectedLimit(route, count, retry_after, is_global))

    def take_injected(self, route: str) -> _InjectedLimit | None:
        for injected in self._injected:
            if injected.remaining > 0 and injected.route in (None, route):
                injected.remaining -= 1
                return injected
        return None

    def check_global(self, token: str) -> None:
        limit = self.limits.global_per_second
        if limit is None:
            return
        window = self._window(f"global:{token}", limit, 1.0)
        now = time.monotonic()
        if window.count >= window.limit:
            raise RateLimitExceeded(window.reset_after(now), is_global=True, status=None)
        window.count += 1

    def check_bucket(self, name: str, rate: RateLimit, major: str) -> BucketStatus:
        window = self._window(f"{name}|{major}", rate.limit, rate.per)
        now = time.monotonic()
        if window.count >= window.limit:
            status = BucketStatus(window.limit, 0, window.reset_after(now), _token_hash(name))
            raise RateLimitExceeded(status.reset_after, is_global=False, status=status)
        window.count += 1
        return BucketStatus(window.limit, window.limit - window.count, window.reset_after(now), _token_hash(name))

    def _window(self, key: str, limit: int, per: float) -> _Window:
        now = time.monotonic()
        window = self._windows.get(key)
        if window is None or now >= window.started + window.per:
            window = self._windows[key] = _Window(limit, per, now)
        return window
