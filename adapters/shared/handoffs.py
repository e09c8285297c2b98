"""Threads handed to a help channel's helpers, kept in Redis so that every process agrees: each thread is handed off
(its helpers mentioned) once, a channel's helpers are mentioned at most HELPERS_PINGS_PER_HOUR times an hour, and a
thread where a helper wrote is theirs. Two clicks or two processes at once make one hand-off: the check and the
writes are one script.

Keys (a channel's share its hash tag), each kept as long as the history (`seconds`):
  {prefix}helpdesk:{<channel>}:handed:<thread>   a thread handed to the helpers
  {prefix}helpdesk:{<channel>}:helped:<thread>   a thread a helper wrote in
  {prefix}helpdesk:{<channel>}:pings:<hour>      the helpers' mentions in that hour (unix time // 3600)
Raises STORE_UNAVAILABLE (a ReplyFailure) without Redis."""

from __future__ import annotations

import enum
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.state.redis_client import RedisClient, hash_tag, served

T = TypeVar("T")
HOUR_SECONDS = 3_600

# KEYS: the thread's hand-off, the channel's mentions this hour; ARGV: the hourly limit, seconds to keep the hand-off
# → 1 handed off now, 0 handed off before, -1 over the hour's limit (not handed off: a later try may be).
HAND_OFF = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[1]) then return -1 end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[2])
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], 7200)
return 1
"""


class Handed(enum.Enum):
    NOW = "now"  # the helpers are mentioned now
    BEFORE = "before"  # the thread was handed to them before: no second mention
    LIMITED = "limited"  # the channel's helpers were mentioned HELPERS_PINGS_PER_HOUR times this hour


class HandOffs:
    def __init__(
        self, redis: RedisClient, key_prefix: str, *, per_hour: int, seconds: int, on_error: Callable[[], object]
    ) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}helpdesk:"
        self.per_hour = per_hour
        self._seconds = max(1, int(seconds))
        self._on_error = on_error
        self._hand_off = redis.register_script(HAND_OFF)

    async def hand_off(self, channel: str, thread: str) -> Handed:
        """Hand `thread` (of help channel `channel`) to the helpers, once, within the hour's mentions."""
        hour = int(time.time() // HOUR_SECONDS)
        keys = [self._key(channel, "handed", thread), self._key(channel, "pings", str(hour))]
        said = await self._run(self._hand_off(keys=keys, args=[self.per_hour, self._seconds]))
        return {1: Handed.NOW, 0: Handed.BEFORE}.get(int(said), Handed.LIMITED)

    async def helper_wrote(self, channel: str, thread: str) -> None:
        await self._run(self._redis.set(self._key(channel, "helped", thread), "1", ex=self._seconds))

    async def theirs(self, channel: str, thread: str) -> str | None:
        """Why the bot stays out of `thread`: "helper_answering" (a helper wrote there), "handed_off", or None."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(self._key(channel, "helped", thread))
            pipe.exists(self._key(channel, "handed", thread))
            helped, handed = await self._run(pipe.execute())
        return "helper_answering" if helped else "handed_off" if handed else None

    def _key(self, channel: str, kind: str, what: str) -> str:
        return f"{self._prefix}{hash_tag(channel)}:{kind}:{what}"

    async def _run(self, command: Awaitable[T]) -> T:
        return await served(command, "helpdesk_store_error", self._on_error)
