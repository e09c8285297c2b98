"""One turn at a time per conversation, across every process of the bot.

A follow-up waits for the previous reply's final text: first behind the turns of this process
(in arrival order), then for the conversation's lease in Redis. The lease is renewed while the
turn runs and lapses if its process dies, so a conversation is never stuck. Each holder gets a
fencing token; history writes carry it and are refused once another turn holds the conversation
(a process that stalled past its lease can't write over a newer turn).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog

from bot.errors import FailureKind, ReplyFailure
from bot.redis_client import REDIS_ERRORS, RedisClient

log = structlog.get_logger(__name__)

# A dead process holds a conversation at most this long; a live one renews every third of it.
LEASE_SECONDS = 15.0
# How often a waiting turn looks again (a person won't notice the 0.1 s).
POLL_SECONDS = 0.1

# The conversation taken with a new fencing token in one round trip, or 0 while another holds it.
_TAKE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return token
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LocalLocks:
    """One asyncio lock per conversation, forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class ConversationLocks:
    def __init__(self, client: RedisClient | None = None, lock_key: Callable[[str], str] | None = None) -> None:
        """`client` None (history in memory): this process is the whole bot, local locks suffice.
        `lock_key(thread)` names the conversation's lock (the store's, so writes can check it)."""
        self._local = LocalLocks()
        self._redis = client
        self._lock_key = lock_key
        if client is not None:
            self._take = client.register_script(_TAKE)
            self._renew = client.register_script(_RENEW)
            self._release = client.register_script(_RELEASE)

    @asynccontextmanager
    async def hold(self, thread: str) -> AsyncIterator[str]:
        """Hold the conversation; yields the fencing token for history writes ("" without Redis)."""
        async with self._local.hold(thread):
            if self._redis is None:
                yield ""
                return
            assert self._lock_key is not None
            key = self._lock_key(thread)
            token = await self._acquire(key)
            done = asyncio.Event()
            keeper = asyncio.create_task(self._keep(key, token, done))
            try:
                yield token
            finally:
                done.set()
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)
                await self._quietly_release(key, token)

    async def _acquire(self, key: str) -> str:
        assert self._redis is not None
        try:
            while not (token := await self._take(keys=[key, f"{key}:fence"], args=[int(LEASE_SECONDS * 1000)])):
                await asyncio.sleep(POLL_SECONDS)
        except REDIS_ERRORS as error:
            raise ReplyFailure(FailureKind.STORE_UNAVAILABLE, f"conversation lock: {error}") from error
        return str(token)

    async def _keep(self, key: str, token: str, done: asyncio.Event) -> None:
        # Ends on `done` too: a cancellation arriving inside a Redis call can be lost in redis-py
        # (its pool's timeouts, with every connection busy), and the turn would wait for this
        # keeper, and the conversation stay locked, forever.
        while not done.is_set():
            await asyncio.sleep(LEASE_SECONDS / 3)
            try:
                if not await self._renew(keys=[key], args=[token, int(LEASE_SECONDS * 1000)]):
                    log.error("conversation_lock_lost", key=key)
                    return
            except REDIS_ERRORS as error:
                log.warning("conversation_lock_not_renewed", error=f"{type(error).__name__}: {error}")

    async def _quietly_release(self, key: str, token: str) -> None:
        try:
            await self._release(keys=[key], args=[token])
        except REDIS_ERRORS as error:  # it lapses by itself
            log.warning("conversation_lock_not_released", error=f"{type(error).__name__}: {error}")
