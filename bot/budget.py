"""Write budgets: at most `limit` writes in any `window` seconds for each of a platform's
rate-limit buckets, counted in Redis so that every process of the bot shares them.

A write that must happen (a post, a reply's final text) waits for a slot: on a full bucket it is
given the next to free (a window after a write that has landed), and goes then. An interim edit
or a "typing…" indicator takes a slot only when one is spare: beyond the writes waiting for one
and the finals promised to the replies streaming live. A reply streams live only when its final
can be promised (`promise`); otherwise its text is held and posted whole at the end. Nothing is
leased: a process that dies leaves at most its writes in flight (sent, given a slot ahead, or
answered but not yet told), counted until IN_FLIGHT_SECONDS have passed, and promises that lapse.

A write counts from when it reached the platform: from its answer, less the quickest round
trip measured to that platform (see RoundTrips). Counted from its answer instead, every slot
would idle a round trip per window: 4 s more for a burst of 1,000 Discord replies 50 ms away.
When a write was answered goes to Redis with the process's next step on the same platform (or
SETTLE_SECONDS later, if none comes first): one Redis round trip per write, unless the slots
it waits for are still in flight.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from bot.locks import LocalLocks
from bot.redis_client import REDIS_ERRORS, RedisClient
from config.env import ConfigError

log = structlog.get_logger(__name__)

# A write whose answer hasn't come yet keeps its slot this long at most (a process that died
# mid-request never says when it landed): the others write that much later into its slot.
IN_FLIGHT_SECONDS = 10.0
# A promised final, or a write waiting for a slot, is kept from interim edits this long unless
# renewed (a live reply renews its promise with each interim edit it tries); a dead process's
# promises lapse after it, and the other replies' interim edits come back.
PROMISE_SECONDS = 30.0
# A write waiting only for another one's answer looks again this soon (unseen by a person).
RECHECK_SECONDS = 0.05
# While a full bucket's next slots are still in flight, this many of a process's writes queued on
# it ask Redis at a time. One at a time, the slots that freed together went out one Redis round
# trip apart, and on a busy core the fiftieth first post of fifty mentions at once came 0.1 s
# after its slot had freed (first text p99 about 1.0 s; 0.82 s with four). All at once, each
# look would bring a thousand queued writes to Redis.
QUEUE_ASKERS = 4
# A write's answer waits at most this long for another step of its process to say when it landed;
# until then the others count its slot as in flight. Discord's shortest window is a second, so
# the slot would free no sooner anyway unless its answer came 0.9 s late.
SETTLE_SECONDS = 0.1
# A route's quickest round trip is trusted once this many writes have measured it, and a write
# counts from this much later than it allows: a busy process reads answers late, so its
# quickest trip holds some of its own delay (without the margin a test of two processes saw a
# write land 2 ms early: a 429). Over a route 50 ms each way a slot idles 10 ms a window for it.
FLOOR_SAMPLES = 20
LEAD_MARGIN_SECONDS = 0.01

# One step over buckets that share a hash tag (one Cluster slot), atomically (see the script).
_SCRIPT = (Path(__file__).parent / "budget.lua").read_text()


@dataclass(frozen=True)
class Bucket:
    """One of a platform's rate-limit buckets. The buckets one write spends share a `scope`
    ("discord", "slack:T123"), which keeps their keys in one Redis Cluster slot."""

    limits: RateLimits = field(repr=False, compare=False)
    scope: str
    name: str
    limit: int
    window: float

    def keys(self) -> list[str]:
        base = f"{self.limits.key_prefix}rate:{{{self.scope}}}:{self.name}"
        return [f"{base}:writes", f"{base}:finals", f"{base}:waiting"]


Budgets = Sequence[Bucket]


class RoundTrips:
    """The quickest round trip over one route to a platform. A write counts from that long
    before its answer: from when it was sent, plus however much longer than the quickest its
    trip took. The next write into its slot, a window later, then reaches the platform a window
    after it did, since whatever made its trip slower delayed its arrival or its answer."""

    def __init__(self) -> None:
        self.samples = 0
        self.floor = math.inf

    def lead(self, round_trip: float) -> float:
        """Measure an answered write's round trip; how long before its answer it counts from."""
        self.samples += 1
        self.floor = min(self.floor, round_trip)
        return max(0.0, self.floor - LEAD_MARGIN_SECONDS) if self.samples >= FLOOR_SAMPLES else 0.0


@dataclass(frozen=True)
class Landed:
    writes_key: str  # a bucket's writes
    write: str
    since: float  # when it counts from (time.monotonic())


@dataclass(frozen=True)
class Refused:
    wait: float  # seconds until a slot may free
    bucket: Bucket  # the bucket that is full
    reserved: bool = False  # the slot is the write's: it goes in `wait` without asking again


class RateLimits:
    """The bot's write budgets, kept in Redis through the process's control client (see
    bot.redis_client.connect_control). Without one (the console and the web chat, which write
    to no platform) there are none."""

    def __init__(self, client: RedisClient | None = None, key_prefix: str = "") -> None:
        self.key_prefix = key_prefix
        self._script = client.register_script(_SCRIPT) if client is not None else None
        self._queues = LocalLocks(holders=QUEUE_ASKERS)
        self._routes: dict[str, RoundTrips] = {}
        self._landed: dict[str, list[Landed]] = {}  # by scope: answered writes Redis hasn't heard of
        self._settling: dict[str, asyncio.TimerHandle] = {}
        self._background: set[asyncio.Task[Refused | None]] = set()  # settles, and slots given back
        self._unreachable = False

    def require(self) -> None:
        """A platform adapter starts only with Redis to keep its rate limits in."""
        if self._script is None:
            raise ConfigError("REDIS_URL: Discord and Slack keep the bot's rate limits in Redis (memory:// serves "
                              "the console and the web chat only)")

    def bucket(self, scope: str, name: str, limit: int, window: float) -> Bucket:
        self.require()
        return Bucket(self, scope, name, limit, window)

    def route(self, bucket: Bucket) -> RoundTrips:
        """The way to the bucket's platform, shared by all its buckets."""
        return self._routes.setdefault(bucket.scope.split(":", 1)[0], RoundTrips())

    async def wait_for_slots(self, buckets: Budgets, write: str) -> None:
        """Take a slot of every bucket. On a full bucket, a write is given the slot of a write
        that has landed, from a window after it, and goes then. While the slots to free are still
        in flight, this process's writes to the bucket queue in order, and only the first
        QUEUE_ASKERS of them ask Redis again: not all thousand of a burst each time."""
        queued = next((bucket for bucket in buckets if self._queues.busy(bucket.keys()[0])), None)
        refused = Refused(0.0, queued) if queued else await self.step("must", buckets, write)
        try:
            while refused is not None and not refused.reserved:
                limiting = refused.bucket
                async with self._queues.hold(limiting.keys()[0]):
                    refused = await self.step("must", buckets, write)
                    while refused is not None and refused.bucket == limiting and not refused.reserved:
                        await asyncio.sleep(refused.wait)
                        refused = await self.step("must", buckets, write)
            if refused is not None:
                await asyncio.sleep(refused.wait)
        except BaseException:
            await self.step("release", buckets, write)  # no longer waiting: interim edits may go
            raise

    def landed(self, buckets: Budgets, write: str, since: float) -> None:
        """`write` counts from `since`: Redis hears of it with this process's next step on the same
        platform, or SETTLE_SECONDS from now if none comes first."""
        scope = buckets[0].scope
        self._landed.setdefault(scope, []).extend(Landed(bucket.keys()[0], write, since) for bucket in buckets)
        if scope not in self._settling:
            self._settling[scope] = asyncio.get_running_loop().call_later(SETTLE_SECONDS, self._settle, scope)

    def _settle(self, scope: str) -> None:
        del self._settling[scope]
        if self._landed.get(scope):
            self._in_background(self.step("settle", (), "", scope=scope))

    def _in_background(self, step: Coroutine[Any, Any, Refused | None]) -> None:
        task = asyncio.create_task(step)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def ask(self, op: str, buckets: Budgets, key: str, extra: str = "") -> Refused | None:
        """A step that may grant `key` a slot or a promise. If the asker is cancelled while the
        answer is on its way, Redis may have granted it: it is given back, or it would hold a slot
        until it lapsed (IN_FLIGHT_SECONDS) or keep a final promised (PROMISE_SECONDS)."""
        try:
            return await self.step(op, buckets, key, extra)
        except asyncio.CancelledError:
            self._in_background(self.step("release", buckets, key))
            raise

    async def settle_all(self) -> None:
        """Tell Redis now of every answered write, and finish giving slots back (before the process stops)."""
        for timer in self._settling.values():
            timer.cancel()
        self._settling.clear()
        # At once: with Redis hung, the whole shutdown waits for one step's timeout, not one per scope.
        settles = [self.step("settle", (), "", scope=scope) for scope in list(self._landed)]
        await asyncio.gather(*settles, *self._background)

    async def step(self, op: str, buckets: Budgets, key: str, extra: str = "", *, scope: str = "") -> Refused | None:
        """One step of the script, telling Redis of the writes of the scope answered since the
        last; a refusal says how long to wait. With Redis out of reach a write that must happen
        goes anyway (the platform's 429s are retried by its library); nothing else does, and the
        answered writes count as in flight until they lapse."""
        landed, now = self._landed.pop(scope or buckets[0].scope, []), time.monotonic()
        keys = [key for bucket in buckets for key in bucket.keys()] + [write.writes_key for write in landed]
        limits = [number for bucket in buckets for number in (bucket.limit, int(bucket.window * 1000))]
        times = [int(IN_FLIGHT_SECONDS * 1000), int(PROMISE_SECONDS * 1000), int(RECHECK_SECONDS * 1000)]
        ages = [part for write in landed for part in (write.write, int((now - write.since) * 1000))]
        assert self._script is not None
        try:
            wait_ms, limiting, reserved = await self._script(
                keys=keys, args=[op, key, extra, *times, len(buckets), *limits, *ages]
            )
        except REDIS_ERRORS as error:
            self._reachable(False, f"{type(error).__name__}: {error}")
            return None if op in ("must", "settle", "release") else Refused(RECHECK_SECONDS, buckets[0])
        self._reachable(True)
        return Refused(wait_ms / 1000, buckets[limiting - 1], bool(reserved)) if wait_ms else None

    def _reachable(self, reachable: bool, error: str = "") -> None:
        if reachable != self._unreachable:
            return
        self._unreachable = not reachable
        if reachable:
            log.info("rate_budgets_shared_again")
        else:
            log.warning("rate_budgets_unshared", error=error, message="Redis is unreachable: writes that must "
                        "happen go on unbudgeted, interim edits and typing indicators wait")  # fmt: skip


class Charge:
    """Slots taken on some buckets for one request: `async with charge: await send()`. When the
    request is answered, its slots count from when it reached the platform (see RoundTrips); if
    it failed, from now."""

    def __init__(self, buckets: Budgets, *, taken: bool = False) -> None:
        self._buckets = buckets
        self.write = uuid.uuid4().hex
        self._taken = taken or not buckets
        self._sent = 0.0

    async def __aenter__(self) -> Charge:
        if not self._taken:
            await self._buckets[0].limits.wait_for_slots(self._buckets, self.write)
        self._sent = time.monotonic()
        return self

    async def __aexit__(self, error: type[BaseException] | None, *_: object) -> None:
        if not self._buckets:
            return
        limits, answered = self._buckets[0].limits, time.monotonic()
        lead = limits.route(self._buckets[0]).lead(answered - self._sent) if error is None else 0.0
        limits.landed(self._buckets, self.write, answered - lead)


def spend(buckets: Budgets) -> Charge:
    """A write that must happen (first text, overflow, final text, a thread): `async with
    spend(buckets): await send()` waits for a slot of each bucket, then sends."""
    return Charge(buckets)


async def try_spare(buckets: Budgets, promise: str | None = None) -> Charge | None:
    """A spare slot now for an interim edit or an indicator, or None; `promise`: the live
    reply's promise, renewed."""
    charge = Charge(buckets, taken=True)
    if buckets and await buckets[0].limits.ask("spare", buckets, charge.write, promise or ""):
        return None
    return charge


async def promise(buckets: Budgets) -> str | None:
    """Promise a reply its final write on each bucket, so it may stream live: the promise to
    `release` once the final is written, or None (its text is held and posted whole)."""
    if not buckets:
        return ""
    key = uuid.uuid4().hex
    return key if await buckets[0].limits.ask("promise", buckets, key) is None else None


async def release(buckets: Budgets, promise: str | None) -> None:
    if buckets and promise:
        await buckets[0].limits.step("release", buckets, promise)
