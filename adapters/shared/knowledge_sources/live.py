"""Which messages changed live while a channel's history was being read, the same on every platform: a page of
history read before an edit or a deletion must not put the old text back after it. Each message event of a knowledge
channel leaves a mark in Redis for a few minutes; the history's reading leaves out the messages marked, whose newest
text is stored already (or which are deleted)."""

from __future__ import annotations

from collections.abc import Sequence

from bot.state.redis_client import REDIS_ERRORS, RedisClient

MARK_SECONDS = 300  # far longer than a page takes between being asked for and being stored


class LiveChanges:
    def __init__(self, redis: RedisClient, key_prefix: str, platform: str) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}knowledge:{platform}:live:"

    async def mark(self, team: str, key: str) -> None:
        """The message `key` (its passage's key) of workspace or server `team` was posted, edited or deleted just
        now (best effort)."""
        try:
            await self._redis.set(self._key(team, key), "1", ex=MARK_SECONDS)
        except REDIS_ERRORS:
            pass  # only a history being read at this moment could put back an older text

    async def marked(self, team: str, keys: Sequence[str]) -> set[str]:
        """Those of `keys` that changed live in the last few minutes."""
        if not keys:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.exists(self._key(team, key))
            found = await pipe.execute()
        return {key for key, exists in zip(keys, found, strict=True) if exists}

    def _key(self, team: str, key: str) -> str:
        return f"{self._prefix}{team}:{key}"
