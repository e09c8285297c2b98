"""Slack's rate limits as the fake applies them: per-method token buckets (tiers), chat.postMessage's
per-channel limit, and the history methods' windows."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``per_minute`` sustained, ``burst`` requests back to back."""

    per_minute: float
    burst: int = 1

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0


TIER_1 = RateLimit(per_minute=1, burst=1)


TIER_2 = RateLimit(per_minute=20, burst=4)


TIER_3 = RateLimit(per_minute=50, burst=10)


TIER_4 = RateLimit(per_minute=100, burst=20)


POST_MESSAGE_PER_CHANNEL = RateLimit(per_minute=60, burst=3)


def default_method_limits() -> dict[str, RateLimit]:
    """Per-workspace limits by method (see the module docstring for the assumptions)."""
    return {
        "auth.test": TIER_4,
        "chat.update": TIER_3,
        "chat.delete": TIER_3,
        "chat.postEphemeral": TIER_4,
        "chat.startStream": TIER_2,
        "chat.appendStream": TIER_4,
        "chat.stopStream": TIER_2,
        "users.info": TIER_4,
        "usergroups.users.list": TIER_2,
        "conversations.info": TIER_3,
        "conversations.members": TIER_4,
        "chat.getPermalink": TIER_4,
        "conversations.open": TIER_3,
        "assistant.threads.setStatus": TIER_3,
        "assistant.threads.setSuggestedPrompts": TIER_4,
        "assistant.threads.setTitle": TIER_4,
        "views.publish": TIER_4,
        "views.open": TIER_4,
        "reactions.add": TIER_3,
        "reactions.remove": TIER_3,
        "files.getUploadURLExternal": TIER_4,
        "files.completeUploadExternal": TIER_4,
    }


@dataclass
class SlackLimits:
    """Rate limits a test can loosen, tighten or switch off (also while the fake runs)."""

    enabled: bool = True
    methods: dict[str, RateLimit] = field(default_factory=default_method_limits)
    post_message_per_channel: RateLimit | None = POST_MESSAGE_PER_CHANNEL

    @classmethod
    def off(cls) -> SlackLimits:
        return cls(enabled=False)

    def set(self, method: str, per_minute: float, burst: int = 1) -> None:
        """Limit ``method`` (``"chat.postMessage"`` sets the per-channel limit)."""
        limit = RateLimit(per_minute=per_minute, burst=burst)
        if method == "chat.postMessage":
            self.post_message_per_channel = limit
        else:
            self.methods[method] = limit

    def unset(self, method: str) -> None:
        if method == "chat.postMessage":
            self.post_message_per_channel = None
        else:
            self.methods.pop(method, None)

    def limit_for(self, method: str) -> RateLimit | None:
        if not self.enabled:
            return None
        if method == "chat.postMessage":
            return self.post_message_per_channel
        return self.methods.get(method)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class _RateLimiter:
    """Token buckets keyed by (bucket key, limit) so that changing a limit starts afresh."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, RateLimit], _Bucket] = {}

    def retry_after(self, key: str, limit: RateLimit, now: float) -> int | None:
        """Take a token; return None, or the whole seconds to wait when the bucket is empty."""
        bucket = self._buckets.setdefault((key, limit), _Bucket(float(limit.burst), now))
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(limit.burst), bucket.tokens + elapsed * limit.per_second)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        if limit.per_second <= 0:
            return 60
        return max(1, math.ceil((1.0 - bucket.tokens) / limit.per_second))

    def reset(self) -> None:
        self._buckets.clear()


class _WindowLimiter:
    """At most ``allowed`` requests in any ``window`` seconds per key (conversations.history / .replies:
    Slack states them per minute, without a burst); a refused request does not count."""

    def __init__(self) -> None:
        self._times: dict[str, deque[float]] = {}

    def retry_after(self, key: str, allowed: int, window: float, now: float) -> int | None:
        times = self._times.setdefault(key, deque())
        while times and times[0] <= now - window:
            times.popleft()
        if len(times) < allowed:
            times.append(now)
            return None
        return max(1, math.ceil(times[0] + window - now))

    def reset(self) -> None:
        self._times.clear()
