"""Replies in progress, recorded in Redis so that none stays half-written when a process dies.

Each reply is recorded when its turn starts (where it goes) and as each message is written
(which message, what it shows); the record goes when the final text has landed. Every process
holds a lease that its heartbeat renews. A record whose process let its lease lapse is claimed
by one live process for the same platform, which ends that reply with a short note saying it
was interrupted. A live process's replies are never touched, however long they take.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from bot.errors import FailureKind, ReplyFailure
from bot.redis_client import REDIS_ERRORS, RedisClient
from bot.render import failure_note
from bot.split import closing_for, longest_fitting, open_fence
from bot.surface import ReplySurface, SurfaceLimits

log = structlog.get_logger(__name__)

# Defaults (REPLY_LEASE_SECONDS, REPLY_SWEEP_SECONDS): a process silent this long is taken for
# dead and its replies are finished by another; with a sweep every SWEEP_SECONDS, a reply cut by
# a crash gets its note within ~15 s of the crash.
LEASE_SECONDS = 10.0
SWEEP_SECONDS = 5.0
HEARTBEAT_SHARE = 0.3  # the lease is renewed every 0.3 of it: two beats may be late before it lapses


INTERRUPTED_NOTE = failure_note(ReplyFailure(FailureKind.INTERRUPTED))


def interrupted_ending(shown: str, limits: SurfaceLimits) -> str:
    """A message's text ended with the note that the reply was interrupted (an open code block
    closed first), shortened from its end if it would no longer fit the message."""
    room = limits.max_length - limits.measure(INTERRUPTED_NOTE) - 16  # the fence closing and blank lines
    shown = shown[: longest_fitting(shown, max(0, room), limits.measure)]
    fence = open_fence(shown)
    closed = f"{shown}\n{closing_for(fence)}" if fence else shown
    return f"{closed}\n\n{INTERRUPTED_NOTE}" if closed.strip() else INTERRUPTED_NOTE


@dataclass
class ReplyRecord:
    id: str
    owner: str  # the process that is writing it
    platform: str
    thread: str
    place: dict[str, Any]  # where the reply goes, in the adapter's terms
    messages: list[dict[str, Any]] = field(default_factory=list)  # {"handle": {...}, "text": shown}

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))


class ReplyLedger:
    """The records of one bot (every process sharing the Redis key prefix). With no Redis client
    (history in memory) nothing outlives the process, so nothing is recorded."""

    def __init__(self, client: RedisClient | None, key_prefix: str, *, beat: RedisClient | None = None,
                 lease_seconds: float = LEASE_SECONDS, sweep_seconds: float = SWEEP_SECONDS) -> None:  # fmt: skip
        """`beat`: the heartbeat's own connections, which no burst of records may hold up.
        `sweep_seconds`: how often the adapters look for `orphans`."""
        self._redis = client
        self._beat_redis = beat or client
        self._lease_seconds = lease_seconds
        self.sweep_seconds = sweep_seconds
        self._key = f"{key_prefix}replies"
        self._lease_prefix = f"{key_prefix}process:"
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._heartbeat: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._redis is not None and self._heartbeat is None:
            await self._renew_lease()
            self._heartbeat = asyncio.create_task(self._beat())

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
            self._heartbeat = None
            await self._quietly(self._beat_redis.delete(self._lease_key(self.process_id)))  # type: ignore[union-attr]

    async def save(self, record: ReplyRecord) -> None:
        if self._redis is not None:
            await self._quietly(self._redis.hset(self._key, record.id, record.to_json()))

    async def close(self, tracked: TrackedSurface) -> None:
        await tracked.recorded()  # else the record could land after its removal, and outlive the reply
        if self._redis is not None:
            await self._quietly(self._redis.hdel(self._key, tracked.record.id))

    async def orphans(self, platform: str) -> list[ReplyRecord]:
        """Replies of `platform` left by processes whose lease lapsed, each claimed by this one
        (none while Redis is unreachable: the next sweep looks again)."""
        if self._redis is None:
            return []
        try:
            return await self._claim_orphans(self._redis, platform)
        except REDIS_ERRORS as error:
            log.warning("reply_ledger_unavailable", error=f"{type(error).__name__}: {error}")
            return []

    async def _claim_orphans(self, redis: RedisClient, platform: str) -> list[ReplyRecord]:
        records = [ReplyRecord(**json.loads(raw)) for raw in (await redis.hvals(self._key))]
        owners = {record.owner for record in records if record.platform == platform and record.owner != self.process_id}
        alive = {owner for owner in owners if await redis.exists(self._lease_key(owner))}
        claimed = []
        for record in records:
            if record.owner in owners - alive and await redis.hdel(self._key, record.id):
                claimed.append(record)  # HDEL answers 1 to one process only
        return claimed

    async def finish_orphans(self, platform: str, finish: Callable[[ReplyRecord], Awaitable[None]]) -> None:
        """One sweep: `finish` every reply of `platform` that a dead process left."""
        try:
            for record in await self.orphans(platform):
                await finish(record)
        except Exception:  # noqa: BLE001 - Redis or the platform failing now; the next sweep tries again
            log.exception("interrupted_reply_sweep_failed")

    def track(self, surface: ReplySurface, platform: str, thread: str, place: dict[str, Any]) -> TrackedSurface:
        """The reply, recorded from now on (the first record is written while the question
        goes on to the model: one Redis round trip less before the model is asked)."""
        return TrackedSurface(surface, self, ReplyRecord(uuid.uuid4().hex, self.process_id, platform, thread, place))

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._lease_seconds * HEARTBEAT_SHARE)
            await self._renew_lease()

    async def _renew_lease(self) -> None:
        await self._quietly(self._beat_redis.set(self._lease_key(self.process_id), "1", px=int(self._lease_seconds * 1000)))  # type: ignore[union-attr]

    def _lease_key(self, process_id: str) -> str:
        return f"{self._lease_prefix}{{{process_id}}}"

    @staticmethod
    async def _quietly(command: Any) -> None:
        """A record that can't be written only costs the note after a crash: the reply goes on."""
        try:
            await command
        except REDIS_ERRORS as error:
            log.warning("reply_ledger_unavailable", error=f"{type(error).__name__}: {error}")


class TrackedSurface:
    """A reply surface whose messages are recorded in the ledger as they are written.

    The inner surface says how to find a message again (`recovery_handle`) and may add to where
    the reply is (`note_place`, e.g. a placeholder message it posted itself). Everything else
    (limits, budgets, the waiting indicator) is the inner surface's own.
    """

    def __init__(self, inner: Any, ledger: ReplyLedger, record: ReplyRecord) -> None:
        self._inner = inner
        self._ledger = ledger
        self.record = record
        self._handles: list[Any] = []  # the inner surface's handles, by message index
        inner.tracker = self
        self._first_save = asyncio.ensure_future(ledger.save(record))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def recorded(self) -> None:
        """The first record is written (or failed to be): later saves must not overtake it."""
        await asyncio.shield(self._first_save)

    async def post(self, text: str, *, final: bool) -> int:
        handle = await self._inner.post(text, final=final)
        self._handles.append(handle)
        self.record.messages.append({"handle": self._inner.recovery_handle(handle), "text": self._shown(text)})
        await self._save()
        return len(self._handles) - 1

    async def edit(self, handle: int, text: str, *, final: bool) -> None:
        await self._inner.edit(self._handles[handle], text, final=final)
        self.record.messages[handle]["text"] = self._shown(text)
        if not final:  # the record goes once the reply is done
            await self._save()

    async def note_place(self, **fields: Any) -> None:
        self.record.place.update(fields)
        await self._save()

    async def _save(self) -> None:
        await self.recorded()
        await self._ledger.save(self.record)

    def _shown(self, text: str) -> str:
        indicator = self.limits.indicator
        return text.removesuffix(indicator) if indicator else text
