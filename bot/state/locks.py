"""One turn at a time per conversation, across every process of the bot.

A follow-up waits for the previous reply's final text: behind this process's turns (in arrival
order), then for the conversation's lock in Redis (redis-py's, with a lease renewed while the
turn runs, which lapses if its process dies). Each turn that takes the lock leaves its token as
the conversation's fence, which its history writes must match: a process that stalled past its
lease can't write over a newer turn, while a turn whose lease merely lapsed keeps its answer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog
from redis.asyncio.lock import Lock
from redis.exceptions import LockError

from bot.errors import FailureKind, ReplyFailure
from bot.state.redis_client import REDIS_ERRORS, RedisClient

log = structlog.get_logger(__name__)

# A dead process holds a conversation at most this long; a live one renews every third of it.
LEASE_SECONDS = 15.0
# How often a waiting turn looks again (a person won't notice the 0.1 s).
POLL_SECONDS = 0.1
# A fence outlives any turn.
FENCE_SECONDS = 3600


class LocalLocks:
    """One asyncio lock per key, held by up to `holders` in arrival order, forgotten when unused."""

    def __init__(self, holders: int = 1) -> None:
        self._holders = holders
        self._locks: dict[str, tuple[asyncio.Semaphore, int]] = {}

    def busy(self, key: str) -> bool:
        return key in self._locks

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Semaphore(self._holders), 0))
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
    def __init__(self, client: RedisClient, lock_key: Callable[[str], str]) -> None:
        """`lock_key(thread)` names the conversation's lock (the store's, so writes can check it)."""
        self._local = LocalLocks()
        self._redis = client
        self._lock_key = lock_key

    @asynccontextmanager
    async def hold(self, thread: str) -> AsyncIterator[str]:
        """Hold the conversation; yields the fencing token for its history writes."""
        async with self._local.hold(thread):
            token, key = uuid.uuid4().hex, self._lock_key(thread)
            lock = self._redis.lock(key, timeout=LEASE_SECONDS, sleep=POLL_SECONDS, thread_local=False)
            try:
                await lock.acquire(token=token)
                await self._redis.set(fence_key(key), token, ex=FENCE_SECONDS)
            except REDIS_ERRORS as error:
                raise ReplyFailure(FailureKind.STORE_UNAVAILABLE, f"conversation lock: {error}") from error
            keeper = asyncio.create_task(_keep(lock))
            try:
                yield token
            finally:
                # Not waited for: a cancellation arriving inside a Redis call can be lost in
                # redis-py (its pool's timeouts, with every connection busy), and the turn would
                # wait forever. A renewal after the release finds the lock gone and ends it.
                keeper.cancel()
                try:
                    await lock.release()
                except LockError:  # its lease lapsed while the turn ran (renewals late on a busy core)
                    log.warning("conversation_lock_lapsed", key=key)
                except REDIS_ERRORS as error:  # it lapses by itself
                    log.warning("conversation_lock_not_released", error=f"{type(error).__name__}: {error}")


def fence_key(lock_key: str) -> str:
    return f"{lock_key}:fence"


async def _keep(lock: Lock) -> None:
    while True:
        await asyncio.sleep(LEASE_SECONDS / 3)
        try:
            await lock.reacquire()
        except LockError:
            return  # lapsed: its writes go on unless a newer turn has taken the conversation since
        except REDIS_ERRORS as error:
            log.warning("conversation_lock_not_renewed", error=f"{type(error).__name__}: {error}")
