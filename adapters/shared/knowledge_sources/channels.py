"""Which channels of a server or workspace are knowledge, kept in Redis so that every process follows the same ones
(each process caches a scope's list for CACHE_SECONDS), and where each channel's reading of its history stands, so
that a restart resumes it. Raises STORE_UNAVAILABLE (a ReplyFailure) without Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.errors import FailureKind, ReplyFailure
from bot.state.redis_client import REDIS_ERRORS, RedisClient

T = TypeVar("T")
CACHE_SECONDS = 2.0  # an opt-in or opt-out reaches every process within this
# A knowledge channel's new title (KEYS[1] the scope's channels, ARGV: the channel, its title); one not knowledge
# (turned off meanwhile) stays out. → 1 if renamed.
_RENAME = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Backfill:
    """A channel whose history is being read: where the next page starts ("" = from the newest)."""

    scope: str
    channel: str
    cursor: str
    read: int  # messages read so far


class KnowledgeChannels:
    def __init__(self, redis: RedisClient, key_prefix: str, on_error: Callable[[], None] = lambda: None) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}knowledge:"
        self._on_error = on_error
        self._cache: dict[str, tuple[float, dict[str, str]]] = {}
        self._scopes: dict[str, tuple[float, frozenset[str]]] = {}  # platform → when read, its scopes with channels
        self._answered: dict[str, tuple[float, frozenset[str]]] = {}  # scope → when read, its channels with answers

    async def opt_in(self, scope: str, channel: str, title: str) -> bool:
        """True if the channel was not knowledge before."""
        added = await self._run(self._redis.hsetnx(self._channels(scope), channel, title))
        await self._run(self._redis.sadd(self._scopes_key(_platform(scope)), scope))
        self._cache.pop(scope, None)
        self._scopes.pop(_platform(scope), None)
        return bool(added)

    async def opt_out(self, scope: str, channel: str) -> bool:
        """True if the channel was knowledge; its history reading stops."""
        removed = await self._run(self._redis.hdel(self._channels(scope), channel))
        await self.finish_backfill(scope, channel)
        self._cache.pop(scope, None)
        return bool(removed)

    async def rename(self, scope: str, channel: str, title: str) -> bool:
        """The channel, if it is knowledge, is titled `title` from now on (its new messages' passages too)."""
        renamed = await self._run(self._redis.eval(_RENAME, 1, self._channels(scope), channel, title))
        self._cache.pop(scope, None)
        return bool(renamed)

    async def channels(self, scope: str) -> dict[str, str]:
        """The scope's knowledge channels: id → title."""
        cached = self._cache.get(scope)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        found = await self._run(self._redis.hgetall(self._channels(scope)))
        channels = {_text(key): _text(value) for key, value in found.items()}
        self._cache[scope] = (time.monotonic(), channels)
        return channels

    async def add_answered(self, scope: str, channel: str) -> None:
        """`channel` holds knowledge without being a knowledge channel (a help channel's solved threads): its
        readers may be answered from it. The server counts as one using knowledge."""
        await self._run(self._redis.sadd(self._answered_key(scope), channel))
        await self._run(self._redis.sadd(self._scopes_key(_platform(scope)), scope))
        self._answered.pop(scope, None)
        self._scopes.pop(_platform(scope), None)

    async def readable(self, scope: str) -> frozenset[str]:
        """Every channel of the scope whose passages a question may be answered from, for those who can read it: its
        knowledge channels and the channels with solved threads."""
        cached = self._answered.get(scope)
        if cached is None or time.monotonic() - cached[0] >= CACHE_SECONDS:
            found = await self._run(self._redis.smembers(self._answered_key(scope)))
            cached = (time.monotonic(), frozenset(_text(channel) for channel in found))
            self._answered[scope] = cached
        return cached[1] | frozenset(await self.channels(scope))

    async def scopes(self, platform: str) -> frozenset[str]:
        """The scopes of `platform` that have (or had) knowledge channels, cached like a scope's channels: whether
        knowledge is in use at all, and a message's server worth a look."""
        cached = self._scopes.get(platform)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        found = frozenset(_text(scope) for scope in await self._run(self._redis.smembers(self._scopes_key(platform))))
        self._scopes[platform] = (time.monotonic(), found)
        return found

    async def is_knowledge(self, scope: str, channel: str) -> bool:
        return channel in await self.channels(scope)

    async def forget_scope(self, scope: str) -> None:
        for channel in await self.channels(scope):
            await self.finish_backfill(scope, channel)
        await self._run(self._redis.delete(self._channels(scope)))
        await self._run(self._redis.delete(self._answered_key(scope)))
        await self._run(self._redis.srem(self._scopes_key(_platform(scope)), scope))
        self._cache.pop(scope, None)
        self._answered.pop(scope, None)
        self._scopes.pop(_platform(scope), None)

    async def start_backfill(self, scope: str, channel: str) -> None:
        await self.save_backfill(Backfill(scope, channel, "", 0))

    async def save_backfill(self, backfill: Backfill) -> None:
        entry = json.dumps({"cursor": backfill.cursor, "read": backfill.read})
        await self._run(self._redis.hset(self._backfills(), _member(backfill.scope, backfill.channel), entry))

    async def finish_backfill(self, scope: str, channel: str) -> None:
        await self._run(self._redis.hdel(self._backfills(), _member(scope, channel)))

    async def backfills(self, platform: str) -> list[Backfill]:
        """The readings of `platform`'s channels not finished yet (after a restart: to resume)."""
        found = await self._run(self._redis.hgetall(self._backfills()))
        backfills: list[Backfill] = []
        for member, entry in found.items():
            scope, channel = _text(member).split("\t", 1)
            if scope.startswith(f"{platform}:"):
                state: dict[str, Any] = json.loads(_text(entry))
                backfills.append(Backfill(scope, channel, str(state.get("cursor", "")), int(state.get("read", 0))))
        return backfills

    def _channels(self, scope: str) -> str:
        return f"{self._prefix}channels:{scope}"

    def _answered_key(self, scope: str) -> str:
        return f"{self._prefix}answered:{scope}"

    def _scopes_key(self, platform: str) -> str:
        return f"{self._prefix}scopes:{platform}"

    def _backfills(self) -> str:
        return f"{self._prefix}backfills"

    async def _run(self, command: Awaitable[T]) -> T:
        try:
            return await command
        except REDIS_ERRORS as error:
            self._on_error()
            raise ReplyFailure(FailureKind.STORE_UNAVAILABLE, f"knowledge channels: {error}") from error


def _platform(scope: str) -> str:
    return scope.split(":", 1)[0]


def _member(scope: str, channel: str) -> str:
    return f"{scope}\t{channel}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
