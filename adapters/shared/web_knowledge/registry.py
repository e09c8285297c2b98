"""The web sources every process knows of, where each one's sync stands, and which process syncs it now. In Redis:

  {prefix}knowledge:web:scopes                     the scopes that have web sources (the syncs' index)
  {prefix}knowledge:web:sources:{scope}            source id → WebSource as JSON
  {prefix}knowledge:web:status:{scope}:{id}        round (the running or last sync's start), due (when the next
                                                   is), finished (when the last ended), report (its SyncReport),
                                                   progress (the running one's, so far)
  {prefix}knowledge:web:lease:{scope}:{id}         the process syncing it, for LEASE_SECONDS unless renewed
  {prefix}knowledge:web:wakes                      counts the admins' adds and syncs: every process looks at it
                                                   every few seconds and, when it moved, for the sources due

A process that dies mid-sync leaves its lease to expire; the next process to take it goes on with the same round, so
the pages already read in it are not read again."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from redis.typing import EncodableT, FieldT

from adapters.shared.web_knowledge.sources import SyncReport, WebSource
from bot.state.redis_client import RedisClient, served

T = TypeVar("T")
LEASE_SECONDS = 60
# Renew the lease (KEYS[1]) if this process (ARGV[1]) holds it; 1 if held.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class SyncStatus:
    """Where a web source's syncing stands, for /knowledge list."""

    round: float = 0.0  # when the running (or last) sync started; 0: never
    due: float = 0.0  # when the next sync is due (0: as soon as a process can)
    finished: float = 0.0  # when the last sync ended; 0: never
    report: SyncReport | None = None  # the last finished sync's
    progress: SyncReport | None = None  # the running sync's so far
    running: bool = False

    @property
    def unfinished(self) -> bool:
        """A sync was started and hasn't ended: the next one goes on with its round."""
        return self.round > self.finished


class WebSources:
    def __init__(self, redis: RedisClient, key_prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}knowledge:web:"
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def add(self, source: WebSource) -> bool:
        """Add `source`, due now; False if its scope has it already."""
        added = await self._run(self._redis.hsetnx(self._sources(source.scope), source.id, source.to_json()))
        if added:
            await self._run(self._redis.sadd(f"{self._prefix}scopes", source.scope))
            await self._run(self._redis.hset(self._status(source), mapping={"due": 0}))
            await self.wake()
        return bool(added)

    async def wake(self) -> None:
        """Have the processes look for the sources due now."""
        await self._run(self._redis.incr(f"{self._prefix}wakes"))

    async def wakes(self) -> int:
        """The wakes so far: a process that sees the count move looks for the sources due."""
        return int(await self._run(self._redis.get(f"{self._prefix}wakes")) or 0)

    async def remove(self, source: WebSource) -> bool:
        """Forget `source` and where its syncing stood; False if it wasn't there. Its passages are the caller's."""
        removed = await self._run(self._redis.hdel(self._sources(source.scope), source.id))
        keys = [self._status(source), self._lease(source), f"{self._prefix}read:{source.scope}:{source.id}"]
        for key in keys:  # one at a time: a Cluster's keys are in different slots
            await self._run(self._redis.delete(key))
        return bool(removed)

    async def forget_scope(self, scope: str) -> None:
        """The bot left the server or workspace: its web sources go (their passages go with the scope's)."""
        for source in await self.of_scope(scope):
            await self.remove(source)
        await self._run(self._redis.srem(f"{self._prefix}scopes", scope))

    async def of_scope(self, scope: str) -> list[WebSource]:
        found = await self._run(self._redis.hvals(self._sources(scope)))
        return sorted((WebSource.from_json(raw) for raw in found), key=lambda source: source.url)

    async def everywhere(self) -> list[WebSource]:
        """Every scope's web sources; a scope left with none leaves the index."""
        sources: list[WebSource] = []
        for raw_scope in await self._run(self._redis.smembers(f"{self._prefix}scopes")):
            scope = raw_scope.decode() if isinstance(raw_scope, bytes) else str(raw_scope)
            found = await self.of_scope(scope)
            if not found:
                await self._run(self._redis.srem(f"{self._prefix}scopes", scope))
            sources += found
        return sources

    async def exists(self, source: WebSource) -> bool:
        return bool(await self._run(self._redis.hexists(self._sources(source.scope), source.id)))

    async def status(self, source: WebSource) -> SyncStatus:
        fields = await self._run(self._redis.hgetall(self._status(source)))
        value = {_text(name): _text(raw) for name, raw in fields.items()}
        running = bool(await self._run(self._redis.exists(self._lease(source))))
        return SyncStatus(
            round=float(value.get("round", 0)),
            due=float(value.get("due", 0)),
            finished=float(value.get("finished", 0)),
            report=SyncReport.from_json(value["report"]) if "report" in value else None,
            progress=SyncReport.from_json(value["progress"]) if "progress" in value and running else None,
            running=running,
        )

    async def sync_now(self, scope: str) -> list[WebSource]:
        """Make every web source of `scope` due now; those it has."""
        sources = await self.of_scope(scope)
        for source in sources:
            await self._run(self._redis.hset(self._status(source), mapping={"due": 0}))
        await self.wake()
        return sources

    async def take(self, source: WebSource, owner: str) -> bool:
        """Whether this process (`owner`) may sync `source` now: no other holds it."""
        taken = self._redis.set(self._lease(source), owner, nx=True, ex=LEASE_SECONDS)
        return bool(await self._run(taken))

    async def renew(self, source: WebSource, owner: str) -> bool:
        """Keep the lease; False if this process lost it (it expired and another took it)."""
        held = await self._run(self._renew(keys=[self._lease(source)], args=[owner, LEASE_SECONDS * 1000]))
        return bool(held)

    async def release(self, source: WebSource, owner: str) -> None:
        await self._run(self._release(keys=[self._lease(source)], args=[owner]))

    async def started(self, source: WebSource, round_started: float) -> None:
        await self._run(self._redis.hset(self._status(source), mapping={"round": round_started}))

    async def progressed(self, source: WebSource, report: SyncReport) -> None:
        await self._run(self._redis.hset(self._status(source), mapping={"progress": report.to_json()}))

    async def finished(self, source: WebSource, report: SyncReport, next_due: float) -> None:
        mapping: dict[FieldT, EncodableT] = {"finished": time.time(), "report": report.to_json(), "due": next_due}
        await self._run(self._redis.hset(self._status(source), mapping=mapping))
        await self._run(self._redis.hdel(self._status(source), "progress"))

    async def postponed(self, source: WebSource, next_due: float, report: SyncReport) -> None:
        """A sync stopped early (a rate limit): the next goes on with the same round at `next_due`."""
        mapping: dict[FieldT, EncodableT] = {"due": next_due, "report": report.to_json()}
        await self._run(self._redis.hset(self._status(source), mapping=mapping))

    def _sources(self, scope: str) -> str:
        return f"{self._prefix}sources:{scope}"

    def _status(self, source: WebSource) -> str:
        return f"{self._prefix}status:{source.scope}:{source.id}"

    def _lease(self, source: WebSource) -> str:
        return f"{self._prefix}lease:{source.scope}:{source.id}"

    async def _run(self, command: Awaitable[T]) -> T:
        return await served(command, "knowledge_web_store_error")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
