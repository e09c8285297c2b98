"""Replies in progress, recorded in Redis so that none stays half-written when a process dies.

A reply is recorded when its turn starts (where it goes) and when each of its messages is
posted; what its interim edits show goes to Redis with the process's next heartbeat, not with
each edit. The record goes when the final text has landed. Every process holds a lease that its
heartbeat renews. A record whose process let its lease lapse is claimed by one live process for
the same platform, which ends that reply with a short note saying it was interrupted. A live
process's replies are never touched, however long they take.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from bot.errors import FailureKind, ReplyFailure
from bot.reply.render import failure_note
from bot.reply.split import longest_fitting, with_note
from bot.reply.surface import SurfaceLimits
from bot.state.redis_client import REDIS_ERRORS, RedisClient

log = structlog.get_logger(__name__)

# Defaults (REPLY_LEASE_SECONDS, REPLY_SWEEP_SECONDS): a process silent this long is taken for
# dead and its replies are finished by another; with a sweep every SWEEP_SECONDS, a reply cut by
# a crash gets its note within ~15 s of the crash.
LEASE_SECONDS = 10.0
SWEEP_SECONDS = 5.0
# The lease is renewed every 0.3 of it (two beats may be late before it lapses); a reply cut by a
# crash ends with at most this share of a lease (3 s) less text than it showed.
HEARTBEAT_SHARE = 0.3

INTERRUPTED_NOTE = failure_note(ReplyFailure(FailureKind.INTERRUPTED))


def interrupted_note(tools: Sequence[str] = ()) -> str:
    """The note that ends a reply a dead process left; naming the tools it was running, which are never run again."""
    if not tools:
        return INTERRUPTED_NOTE
    names = ", ".join(f"`{name}`" for name in tools)
    return (
        f"⚠️ I was interrupted while {names} ran: it may or may not have completed. "
        "I won't run it again; ask me to check if it matters."
    )


# Writes a record only while it exists: a heartbeat's write that Redis runs after the reply's
# record was removed must not bring it back.
_UPDATE = """
for i = 1, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 0
"""


def interrupted_ending(shown: str, limits: SurfaceLimits, tools: Sequence[str] = ()) -> str:
    """A message's text ended with the note that the reply was interrupted (an open code block
    closed first), shortened from its end if it would no longer fit the message."""
    note = interrupted_note(tools)
    room = limits.max_length - limits.measure(note) - 16  # the fence closing and blank lines
    shown = shown[: longest_fitting(shown, max(0, room), limits.measure)]
    return with_note(shown, note)


@dataclass
class ReplyRecord:
    id: str
    owner: str  # the process that is writing it
    platform: str
    thread: str
    place: dict[str, Any]  # where the reply goes, in the adapter's terms
    messages: list[dict[str, Any]] = field(default_factory=list)  # {"handle": {...}, "text": shown}
    tools: list[str] = field(default_factory=list)  # the tools running now (written before each starts)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))


class ReplyLedger:
    """The records of one bot (every process sharing the Redis key prefix)."""

    def __init__(
        self,
        client: RedisClient,
        key_prefix: str,
        *,
        beat: RedisClient | None = None,
        lease_seconds: float = LEASE_SECONDS,
        sweep_seconds: float = SWEEP_SECONDS,
    ) -> None:
        """`beat`: the heartbeat's own connections, which no burst of records may hold up.
        `sweep_seconds`: how often the adapters look for replies a dead process left."""
        self._redis = client
        self._beat_redis = beat or client
        self._update = client.register_script(_UPDATE)
        self._lease_seconds = lease_seconds
        self.sweep_seconds = sweep_seconds
        self._key = f"{key_prefix}replies"
        self._lease_prefix = f"{key_prefix}process:"
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._heartbeat: asyncio.Task[None] | None = None
        self._changed: dict[str, ReplyRecord] = {}  # shown by interim edits since the last beat

    async def start(self) -> None:
        if self._heartbeat is None:
            await self._renew_lease()
            self._heartbeat = asyncio.create_task(self._beat())

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
            self._heartbeat = None
            await self._quietly(self._beat_redis.delete(self._lease_key(self.process_id)))

    def open(self, platform: str, thread: str, place: dict[str, Any], limits: SurfaceLimits) -> Recording:
        """A reply, recorded from now on (the first record is written while the question goes on
        to the model: one Redis round trip less before the model is asked)."""
        return Recording(self, ReplyRecord(uuid.uuid4().hex, self.process_id, platform, thread, place), limits)

    async def save(self, record: ReplyRecord) -> None:
        self._changed.pop(record.id, None)
        await self._quietly(self._redis.hset(self._key, record.id, record.to_json()))

    def changed(self, record: ReplyRecord) -> None:
        self._changed[record.id] = record

    async def remove(self, record: ReplyRecord) -> None:
        self._changed.pop(record.id, None)
        await self._quietly(self._redis.hdel(self._key, record.id))

    async def finish_orphans(self, platform: str, finish: Callable[[ReplyRecord], Awaitable[None]]) -> None:
        """One sweep: `finish` every reply of `platform` that a dead process left."""
        try:
            for record in await self._orphans(platform):
                await finish(record)
        except Exception:
            log.exception("interrupted_reply_sweep_failed")

    async def _orphans(self, platform: str) -> list[ReplyRecord]:
        """Replies of `platform` left by processes whose lease lapsed, each claimed by this one
        (none while Redis is unreachable: the next sweep looks again)."""
        try:
            records = [ReplyRecord(**json.loads(raw)) for raw in await self._redis.hvals(self._key)]
            owners = {record.owner for record in records if record.platform == platform}
            dead = {
                owner for owner in owners - {self.process_id} if not await self._redis.exists(self._lease_key(owner))
            }
            # HDEL answers 1 to one process only: that one finishes the reply.
            return [
                record for record in records if record.owner in dead and await self._redis.hdel(self._key, record.id)
            ]
        except REDIS_ERRORS as error:
            log.warning("reply_ledger_unavailable", error=f"{type(error).__name__}: {error}")
            return []

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._lease_seconds * HEARTBEAT_SHARE)
            await self._renew_lease()
            await self._write_changed()

    async def _write_changed(self) -> None:
        changed, self._changed = self._changed, {}
        if changed:
            fields = [part for record in changed.values() for part in (record.id, record.to_json())]
            await self._quietly(self._update(keys=[self._key], args=fields))

    async def _renew_lease(self) -> None:
        lease = int(self._lease_seconds * 1000)
        await self._quietly(self._beat_redis.set(self._lease_key(self.process_id), "1", px=lease))

    def _lease_key(self, process_id: str) -> str:
        return f"{self._lease_prefix}{{{process_id}}}"

    @staticmethod
    async def _quietly(command: Awaitable[Any]) -> None:
        """A record that can't be written only costs the note after a crash: the reply goes on."""
        try:
            await command
        except REDIS_ERRORS as error:
            log.warning("reply_ledger_unavailable", error=f"{type(error).__name__}: {error}")


class Recording:
    """One reply's record, kept by the surface that shows it: each message it posts (`posted`),
    what later edits show (`shown`), and where it is (`note_place`, say a placeholder)."""

    def __init__(self, ledger: ReplyLedger, record: ReplyRecord, limits: SurfaceLimits) -> None:
        self._ledger = ledger
        self.record = record
        self._indicator = limits.indicator
        self._first_save = asyncio.ensure_future(ledger.save(record))

    async def posted(self, handle: dict[str, Any], text: str) -> None:
        self.record.messages.append({"handle": handle, "text": self._without_indicator(text)})
        await self._save()

    def shown(self, text: str) -> None:
        """What the latest message shows now (only the latest is ever edited before the next)."""
        if self.record.messages:
            self.record.messages[-1]["text"] = self._without_indicator(text)
            self._ledger.changed(self.record)

    async def tools_running(self, names: Sequence[str]) -> None:
        """The tools this reply runs now, written before they start: a reply cut while one runs says so."""
        self.record.tools = list(names)
        await self._save()

    async def note_place(self, **fields: Any) -> None:
        self.record.place.update(fields)
        await self._save()

    async def close(self) -> None:
        """The final text has landed: the record goes."""
        await asyncio.shield(self._first_save)  # else it could land after its removal, and outlive the reply
        await self._ledger.remove(self.record)

    async def _save(self) -> None:
        await asyncio.shield(self._first_save)  # later saves must not overtake the first
        await self._ledger.save(self.record)

    def _without_indicator(self, text: str) -> str:
        return text.removesuffix(self._indicator) if self._indicator else text
