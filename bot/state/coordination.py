"""What the bot's processes agree on besides history: who handles an event (claims), which
conversation a platform message leads to (aliases), and how many turns a person or a channel
has had this minute (quotas), kept in Redis."""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.errors import FailureKind, ReplyFailure
from bot.state.redis_client import RedisClient, hash_tag, served

T = TypeVar("T")

# USER_TURNS_PER_MINUTE and CHANNEL_TURNS_PER_MINUTE count the turns in any window this long.
QUOTA_WINDOW_SECONDS = 60.0

# A sliding window in one round trip, on the server's clock (shared by every process): counts one
# use if fewer than ARGV[1] happened in the last ARGV[2] ms (0), else the ms until one leaves it.
# With no use to count (ARGV[3] empty), minus the uses in the window.
_TAKE_SLOT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window_ms = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + window_ms - now_ms
end
if ARGV[3] == '' then return -redis.call('ZCARD', KEYS[1]) end
redis.call('ZADD', KEYS[1], now_ms, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window_ms)
return 0
"""


class Coordination:
    """Claims (`claim`: true for the first caller only, across every process), aliases (`link`: a
    platform message a person may reply to leads to its conversation) and sliding windows
    (`take_slot`, `uses`); each raises STORE_UNAVAILABLE without Redis."""

    def __init__(
        self, client: RedisClient, key_prefix: str, alias_seconds: int, on_error: Callable[[], object] = lambda: None
    ) -> None:
        """`on_error` is called for every Redis command that fails (the operator's error count)."""
        self._redis = client
        self._on_error = on_error
        self._prefix = key_prefix
        self._alias_seconds = alias_seconds
        self._take_slot = client.register_script(_TAKE_SLOT)

    async def claim(self, key: str, ttl_seconds: int) -> bool:
        claimed = await self._run(self._redis.set(self._key("claim", key), "1", nx=True, ex=ttl_seconds))
        return bool(claimed)  # SET NX answers None, not False, when the key exists

    async def link(self, alias: str, thread: str) -> None:
        await self._run(self._redis.set(self._key("alias", alias), thread, ex=self._alias_seconds))

    async def resolve(self, alias: str) -> str | None:
        thread = await self._run(self._redis.get(self._key("alias", alias)))
        return None if thread is None else str(thread)

    async def take_slot(self, key: str, limit: int, window: float) -> float:
        args: list[int | str] = [limit, int(window * 1000), uuid.uuid4().hex]
        wait_ms = await self._run(self._take_slot(keys=[self._key("quota", key)], args=args))
        return max(0.0, float(wait_ms) / 1000)

    async def forget_slots(self, key: str) -> bool:
        """Forget the window's uses; False if it had none."""
        return bool(await self._run(self._redis.delete(self._key("quota", key))))

    async def uses(self, key: str, limit: int, window: float) -> int:
        args: list[int | str] = [limit, int(window * 1000), ""]
        answer = int(await self._run(self._take_slot(keys=[self._key("quota", key)], args=args)))
        return limit if answer > 0 else -answer

    def _key(self, kind: str, key: str) -> str:
        return f"{self._prefix}{kind}:{hash_tag(key)}"

    async def _run(self, command: Awaitable[T]) -> T:
        return await served(command, "coordination_store_error", self._on_error)


class TurnQuota:
    """`per_user` and `per_channel` turns in any minute (0: no limit), shared by every process.
    A turn over either limit is refused before the model is asked or anything is stored."""

    def __init__(self, coordination: Coordination, per_user: int = 0, per_channel: int = 0) -> None:
        self._coordination = coordination
        self._per_user = per_user
        self._per_channel = per_channel

    async def check(self, platform: str, user: str, channel: str) -> None:
        if self._per_user:
            await self._take(f"user:{platform}:{user}", self._per_user, "You're")
        if self._per_channel and channel:
            await self._take(f"channel:{platform}:{channel}", self._per_channel, "This channel is")

    async def left(self, platform: str, user: str) -> int | None:
        """The turns `user` may still take this minute (None: no per-person limit)."""
        if not self._per_user:
            return None
        used = await self._coordination.uses(f"user:{platform}:{user}", self._per_user, QUOTA_WINDOW_SECONDS)
        return self._per_user - used

    async def forget(self, scope: str, user: str) -> bool:
        """Reset `user`'s counters (/forget-me), whatever the limit now; False if there were none."""
        return await self._coordination.forget_slots(f"user:{scope}:{user}")

    async def _take(self, key: str, limit: int, who: str) -> None:
        wait = await self._coordination.take_slot(key, limit, QUOTA_WINDOW_SECONDS)
        if wait > 0:
            raise ReplyFailure(
                FailureKind.QUOTA,
                f"{key} over {limit} turns per minute",
                reason=f"{who} sending messages faster than I can answer ({limit} a minute). "
                f"Please wait {max(1, math.ceil(wait))} s and ask again.",
            )
