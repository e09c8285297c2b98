"""The platforms' rate limits: the one place that decides when a write to Discord or Slack goes.

Each of a platform's buckets allows `limit` writes in any `window` seconds, counted in Redis so
that every process of the bot shares it (never a 429, however many processes):
- a write that must happen (a post, a reply's final text) waits for a slot; on a full bucket it
  is given the slot of a landed write, a window after it, and goes then;
- an interim edit or a "typing…" indicator goes only on a spare slot: beyond the writes waiting
  and the finals promised to the replies streaming live, so it never delays anyone's final;
- a reply streams live only if its final can be promised (`ReplyBudget.begin`); otherwise its
  text is held and posted whole at the end, one write instead of many.

A write counts from the platform's answer (it reached the platform before that), so the next
write into its slot arrives a full window after it, whatever the network's delay. Nothing is
leased: a process that dies leaves at most its unanswered writes, which lapse after
IN_FLIGHT_SECONDS, and its promises, which lapse after PROMISE_SECONDS.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from bot.loop import cancel_until_done
from bot.reply.surface import EditSkipped
from bot.state.locks import LocalLocks
from bot.state.redis_client import REDIS_ERRORS, RedisClient

log = structlog.get_logger(__name__)

# A write still unanswered this long (its process died mid-request) gives its slot back: after a
# crash in a burst, the others' replies wait at most this much longer for it.
IN_FLIGHT_SECONDS = 10.0
# A live reply renews its promised final with each interim edit it tries. A dead process's
# promises lapse after this long, and the other live replies' interim edits come back.
PROMISE_SECONDS = 30.0
# A write waiting for an unanswered one looks again this soon: the most its text waits in vain.
RECHECK_SECONDS = 0.05
# While a full bucket's next slots are unanswered, this many of a process's writes waiting for it
# ask Redis at a time, the others queued behind them in order. Each asking for itself, four
# processes answering 1,000 mentions at once sent Redis five times the commands, and their last
# reply came 7 s later (53 s after the model against 46 s).
QUEUE_ASKERS = 4

_SCRIPT = (Path(__file__).parent / "ratelimit.lua").read_text()


@dataclass(frozen=True)
class Bucket:
    """One of a platform's rate-limit buckets. The buckets of one write share a `scope`
    ("discord", "slack:T123"), which keeps their keys in one Redis Cluster slot."""

    scope: str
    name: str
    limit: int
    window: float


Budgets = Sequence[Bucket]


@dataclass(frozen=True)
class _Refused:
    wait: float  # seconds until a slot may free
    bucket: Bucket  # the bucket that is full
    reserved: bool  # the slot is the write's: it goes in `wait` without asking again


class RateLimits:
    """Every bucket of every platform, kept in Redis through the rate limits' own client (see
    bot.state.redis_client: a slow answer there means Redis is out of reach, and is not retried)."""

    def __init__(self, client: RedisClient, key_prefix: str) -> None:
        self._script = client.register_script(_SCRIPT)
        self._prefix = key_prefix
        self._background: set[asyncio.Task[Any]] = set()  # landings, and slots given back
        self._queues = LocalLocks(holders=QUEUE_ASKERS)
        self._unreachable = False

    def bucket(self, scope: str, name: str, limit: int, window: float) -> Bucket:
        return Bucket(scope, name, limit, window)

    def write(self, buckets: Budgets) -> Write:
        """A write that must happen: `async with limits.write(buckets): await send()`."""
        return Write(self, buckets)

    async def reserve(self, buckets: Budgets, within: float) -> Write | None:
        """A slot of each bucket if one comes within `within` seconds (a write that is worth nothing later), held
        for a write that happens within IN_FLIGHT_SECONDS; None past that. `release` it if it goes unused."""
        key = Write(self, buckets).id
        waiting = asyncio.create_task(self.wait_for_slots(buckets, key))
        try:
            await asyncio.wait({waiting}, timeout=max(0.0, within))
        except asyncio.CancelledError:
            self._give_up(waiting, buckets, key)
            raise
        if not waiting.done():
            self._give_up(waiting, buckets, key)
            return None
        waiting.result()
        return Write(self, buckets, taken=True, key=key)

    def _give_up(self, waiting: asyncio.Task[None], buckets: Budgets, key: str) -> None:
        """Stop waiting for a slot at once, not when the wait has ended: asyncio.wait_for would wait for it, and a
        cancellation lost inside a redis-py call (see bot.loop.cancel_until_done) let a burst's message past the
        cut-off be answered late, or never. A slot it takes all the same is given back."""

        def give_back(ended: asyncio.Future[None]) -> None:
            if not ended.cancelled() and ended.exception() is None:
                self._in_background(self._step("release", buckets, key))

        waiting.add_done_callback(give_back)
        cancel_until_done(waiting, RECHECK_SECONDS)

    async def spare(self, buckets: Budgets, promise: str = "") -> Write | None:
        """A spare slot now, for an interim edit or an indicator, or None. `promise`: the live
        reply's promise, renewed."""
        write = Write(self, buckets, taken=True)
        if buckets and await self._ask("spare", buckets, write.id, promise):
            return None
        return write

    async def promise(self, buckets: Budgets) -> str | None:
        """Promise a final write on each bucket: the key to `release` once it is written, or None."""
        if not buckets:
            return ""
        key = uuid.uuid4().hex
        return None if await self._ask("promise", buckets, key) else key

    async def release(self, buckets: Budgets, key: str | None) -> None:
        if buckets and key:
            await self._step("release", buckets, key)

    async def aclose(self) -> None:
        """Finish telling Redis of the landed writes (before the process stops)."""
        await asyncio.gather(*self._background)

    async def wait_for_slots(self, buckets: Budgets, write: str) -> None:
        """Take a slot of every bucket: now, or the one given to the write, or (while the slots to
        free are unanswered) in turn with this process's other writes to the full bucket."""
        queued = next((bucket for bucket in buckets if self._queues.busy(self._queue(bucket))), None)
        try:
            refused = _Refused(0.0, queued, False) if queued else await self._step("must", buckets, write)
            while refused is not None and not refused.reserved:
                full = refused.bucket
                async with self._queues.hold(self._queue(full)):
                    refused = await self._step("must", buckets, write)
                    while refused is not None and refused.bucket == full and not refused.reserved:
                        await asyncio.sleep(refused.wait)
                        refused = await self._step("must", buckets, write)
            if refused is not None:
                await asyncio.sleep(refused.wait)
        except BaseException:
            self._in_background(self._step("release", buckets, write))  # interim edits may have it
            raise

    def landed(self, buckets: Budgets, write: str) -> None:
        self._in_background(self._step("landed", buckets, write))

    def _in_background(self, step: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(step)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _ask(self, op: str, buckets: Budgets, key: str, extra: str = "") -> _Refused | None:
        """A step that may grant `key` a slot or a promise; cancelled while Redis answers, what it
        may have been granted is given back (else it would hold a slot until it lapsed)."""
        try:
            return await self._step(op, buckets, key, extra)
        except asyncio.CancelledError:
            self._in_background(self._step("release", buckets, key))
            raise

    async def _step(self, op: str, buckets: Budgets, key: str, extra: str = "") -> _Refused | None:
        """One step of the script; a refusal says how long to wait. With Redis out of reach a
        write that must happen goes anyway (the platform library retries a 429 itself); nothing
        else does."""
        keys = [key for bucket in buckets for key in self.keys(bucket)]
        limits = [number for bucket in buckets for number in (bucket.limit, int(bucket.window * 1000))]
        times = [int(IN_FLIGHT_SECONDS * 1000), int(PROMISE_SECONDS * 1000), int(RECHECK_SECONDS * 1000)]
        try:
            wait_ms, limiting, reserved = await self._script(
                keys=keys, args=[op, key, extra, *times, len(buckets), *limits]
            )
        except REDIS_ERRORS as error:
            self._reachable(False, f"{type(error).__name__}: {error}")
            return None if op in ("must", "landed", "release") else _Refused(RECHECK_SECONDS, buckets[0], False)
        self._reachable(True)
        return _Refused(wait_ms / 1000, buckets[limiting - 1], bool(reserved)) if wait_ms else None

    def _queue(self, bucket: Bucket) -> str:
        return f"{bucket.scope}:{bucket.name}"

    def keys(self, bucket: Bucket) -> list[str]:
        """The bucket's keys in Redis: its writes, its promised finals, its waiting writes."""
        base = f"{self._prefix}rate:{{{bucket.scope}}}:{bucket.name}"
        return [f"{base}:writes", f"{base}:finals", f"{base}:waiting"]

    def _reachable(self, reachable: bool, error: str = "") -> None:
        if reachable != self._unreachable:
            return
        self._unreachable = not reachable
        if reachable:
            log.info("rate_limits_shared_again")
        else:
            message = "Redis is unreachable: writes that must happen go on unbudgeted, interim edits wait"
            log.warning("rate_limits_unshared", error=error, message=message)


class Write:
    """Slots taken on some buckets for one request: `async with write: await send()`. Its slots
    count from when the platform answered (or failed to)."""

    def __init__(self, limits: RateLimits, buckets: Budgets, *, taken: bool = False, key: str = "") -> None:
        """`taken`: its slots are taken already (under `key`, when `reserve` took them)."""
        self._limits = limits
        self._buckets = buckets
        self._taken = taken or not buckets
        self.id = key or uuid.uuid4().hex

    async def release(self) -> None:
        """A reserved write that won't happen: its slots go back."""
        await self._limits.release(self._buckets, self.id)

    async def __aenter__(self) -> Write:
        if not self._taken:
            await self._limits.wait_for_slots(self._buckets, self.id)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._buckets:
            self._limits.landed(self._buckets, self.id)


class ReplyBudget:
    """The writes of one reply, for its surface: the final promised while it streams live."""

    def __init__(self, limits: RateLimits) -> None:
        self._limits = limits
        self._promise: str | None = None
        self._promised_on: Budgets = ()

    async def begin(self, edits: Budgets) -> bool:
        """Whether the reply may stream live on `edits` (its final is then promised)."""
        self._promised_on = tuple(edits)
        self._promise = await self._limits.promise(self._promised_on)
        return self._promise is not None

    async def edit(self, buckets: Budgets, *, final: bool) -> Write:
        """The slot for an edit: a final waits for one; an interim one raises EditSkipped without
        a spare one."""
        if final:
            return self._limits.write(buckets)
        write = await self._limits.spare(buckets, self._promise or "")
        if write is None:
            raise EditSkipped("no write to spare")
        return write

    def post(self, buckets: Budgets) -> Write:
        return self._limits.write(buckets)

    async def end(self) -> None:
        """The final is written (or the reply failed): its promise goes."""
        promise, self._promise = self._promise, None
        await self._limits.release(self._promised_on, promise)
