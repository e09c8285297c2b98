"""Write budgets: at most `limit` writes in any `window` seconds, one per platform rate-limit
bucket, shared by every reply writing to it (a sliding window never trips the platforms' fixed
ones). Streaming replies reserve their final write up front; interim edits spend only what no
reply reserved, so a busy channel shows fewer interim edits, never a missing final. A limit
shared by several processes (see bot.leases) spends only the slots its process leased.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from bot.leases import Lease

Clock = Callable[[], float]

# A write that only a request in flight can make room for looks again this often (50 ms: unseen).
IN_FLIGHT_RECHECK_SECONDS = 0.05
# With every slot kept for a final, an interim edit looks again this late: a reply's edit pace.
RESERVED_FULL_RECHECK_SECONDS = 1.0
# A write waiting for another process's slot looks again this often: bot.leases's own pace.
LEASE_RECHECK_SECONDS = 0.05
# How long a reply waits for Redis to grant its final on a slow shared limit before it is posted
# whole instead (a healthy Redis answers in a millisecond).
ADMISSION_WAIT_SECONDS = 0.25
# A route's quickest round trip is trusted once this many answered writes have measured it: the
# very first may each have queued on the way out, and a floor taken too high counts writes early.
FLOOR_SAMPLES = 20
# A write counts this much later than that floor allows: a busy process reads answers late, so
# its floor holds some of its own delay, and a slot it gives back to a quicker process came back
# 2 ms early (a 429) in tests. On a route 50 ms each way, a slot idles 10 ms a window for it.
LEAD_MARGIN_SECONDS = 0.01
_CREATED = itertools.count()


class Demand(NamedTuple):
    """What a budget asks of its lease (see bot.leases)."""

    held: int  # writes in flight or still in the window: the platform counts them whatever happens
    kept: int  # slots to keep while the limit has room: held and promised finals of a slow limit
    needed: int  # held, reserved and waiting writes
    urgent: int  # held and waiting writes: what is needed now (a reserved final may be seconds away)
    unused_for: float  # seconds since it was last looked at (0 with a write in flight): see bot.leases
    waited: float  # how long the longest-waiting write has waited (s): older needs are served first


class RoundTrips:
    """The quickest round trip over one route to a platform, which counts a write on arrival.

    A write counts from that floor before its answer: from when it was sent plus however much
    longer than the quickest its round trip took. The next write then reaches the platform a
    window after it did, since whatever made its trip slower delayed its arrival or its answer.
    Counting from the answer would idle each slot a round trip per window: 2 s for the last of
    1,000 replies, 50 ms away."""

    def __init__(self) -> None:
        self.samples = 0
        self.floor = math.inf

    def lead(self, round_trip: float) -> float:
        """Measure an answered write's round trip; how long before its answer it counts from."""
        self.samples += 1
        self.floor = min(self.floor, round_trip)
        return max(0.0, self.floor - LEAD_MARGIN_SECONDS) if self.samples >= FLOOR_SAMPLES else 0.0


@dataclass(slots=True)
class _Write:
    sent: float
    at: float = math.inf  # in flight; then when it counts from (see RoundTrips)


class WriteBudget:
    def __init__(self, limit: int, window: float, *, admission: bool = True, max_streaming: int | None = None,
                 route: RoundTrips | None = None, clock: Clock = time.monotonic) -> None:  # fmt: skip
        """`admission`: may a reply hold its text (posted whole) when its final can't be promised?
        `max_streaming`: on a limit refilling within a reply's length (a per-second one), admit
        up to this many live replies. `route`: the round trips of the platform, as its budgets."""
        if limit < 1 or window <= 0:
            raise ValueError("a budget needs limit ≥ 1 and window > 0")
        self.limit = limit
        self.window = window
        self.admission = admission
        self.max_streaming = max_streaming
        self.clock = clock
        self.route = route or RoundTrips()
        self.reserved = 0
        self.queued: list[float] = []  # when each write waiting in spend() began to wait
        self.lease: Lease | None = None  # this process's share, when the limit is the whole bot's
        self._used_at = -math.inf
        self._writes: list[_Write] = []
        # Writes that must happen queue here in order, so only the first of them sleeps on the
        # budget's clock instead of every waiting reply waking for each slot that frees.
        self.turns = asyncio.Lock()
        self.order = next(_CREATED)

    def capacity(self) -> int:
        return self.limit if self.lease is None else min(self.limit, self.lease.usable())

    def held(self) -> int:
        """Writes in flight or still in the window."""
        horizon = self.clock() - self.window
        self._writes = [write for write in self._writes if write.at > horizon]
        return len(self._writes)

    def free(self) -> int:
        self._used_at = self.clock()
        free = self.capacity() - self.held()
        if self.lease is not None and free - self.reserved < 1:
            self.lease.need_more()  # answered in the background; the lease follows demand
        return free

    @property
    def slow(self) -> bool:
        """A final over this limit would wait a whole window (a Slack tier's 12 s)."""
        return self.admission and self.max_streaming is None

    def demand(self) -> Demand:
        held, now = self.held(), self.clock()
        needed = held + self.reserved + len(self.queued)
        unused_for = 0.0 if any(write.at == math.inf for write in self._writes) else now - self._used_at
        kept = held + self.reserved if self.slow and self.reserved else 0
        waited = now - self.queued[0] if self.queued else 0.0
        return Demand(held, kept, min(self.limit, needed), held + len(self.queued), unused_for, waited)

    def spare(self) -> int:
        """Writes available now that no reply of the bot (any process) has reserved or waits for."""
        bot_wide = self.limit - (self.lease.others_needed if self.lease else 0)
        return min(self.free(), bot_wide - self.held()) - self.reserved

    def idle(self) -> bool:
        return self.reserved == 0 and self.held() == 0

    def seconds_until_free(self, needed: int = 1) -> float:
        missing = needed - self.free()
        if missing <= 0:
            return 0.0
        frees_at = sorted(write.at + self.window for write in self._writes if write.at != math.inf)
        wait = max(0.0, frees_at[missing - 1] - self.clock()) if len(frees_at) >= missing else IN_FLIGHT_RECHECK_SECONDS
        return min(wait, LEASE_RECHECK_SECONDS) if self._short_of_lease() else wait

    def seconds_until_spare(self) -> float:
        """When an interim write may next find room beside the reserved finals."""
        if self.reserved + 1 > self.capacity():
            if self._short_of_lease():
                return LEASE_RECHECK_SECONDS
            return min(self.window, RESERVED_FULL_RECHECK_SECONDS)
        return self.seconds_until_free(self.reserved + 1)

    def admits(self) -> bool:
        """May one more reply stream here (its final write reserved)?"""
        if not self.admission:
            return True
        if self.max_streaming is not None:
            return self.reserved < min(self.max_streaming, self._share())
        return self._share() - self.held() - self.reserved >= 1

    def _share(self) -> int:
        """The part of the limit this process streams replies on: all of it alone, else its fair
        share or its lease if more. Rounded up where a final over it waits under a second, down
        where it would wait a whole window (12 s for a Slack tier), longer than a posted reply."""
        if self.lease is None:
            return self.limit
        fair = self.lease.fair_share(round_up=self.max_streaming is not None)
        return min(self.limit, max(fair, self.lease.slots))

    def _short_of_lease(self) -> bool:
        """The lease holds less than the limit, so room may come from another process."""
        return self.lease is not None and self.capacity() < self.limit

    def start_write(self) -> _Write:
        write = _Write(self.clock())
        self._writes.append(write)
        return write

    def reserve(self) -> None:
        self.reserved += 1
        if self.lease is not None:
            self.lease.need_more()

    def release(self) -> None:
        self.reserved = max(0, self.reserved - 1)


Budgets = Sequence[WriteBudget]


class Charge(contextlib.AbstractContextManager["Charge"]):
    """The writes one request spends: `with await spend(budgets): await send_the_request()`."""

    def __init__(self, budgets: Budgets) -> None:
        self._writes = [(budget, budget.start_write()) for budget in budgets]

    def __exit__(self, error: type[BaseException] | None, *_: object) -> None:
        self.complete(answered=error is None)

    def complete(self, *, answered: bool = False) -> None:
        """Answered, its writes count from their route's lead before now (see RoundTrips); else from now."""
        leads: dict[int, float] = {}
        for budget, write in self._writes:
            now = budget.clock()
            if answered and id(budget.route) not in leads:
                leads[id(budget.route)] = budget.route.lead(now - write.sent)
            write.at = max(write.sent, now - leads.get(id(budget.route), 0.0))


def try_reserve(budgets: Budgets) -> bool:
    """Reserve one future write on every budget, or on none."""
    if not all(budget.admits() for budget in budgets):
        return False
    for budget in budgets:
        budget.reserve()
    return True


async def reserve(budgets: Budgets) -> bool:
    """`try_reserve`, then, on a slow limit shared with other processes (a Slack tier), Redis's
    word: each process reserving what its own share seemed to allow, together they would promise
    more finals than the window holds. More than the lease covers waits for Redis to grant it."""
    if not try_reserve(budgets):
        return False
    shared = [budget for budget in budgets if budget.slow and budget.lease]
    if not shared:
        return True
    deadline = time.monotonic() + ADMISSION_WAIT_SECONDS
    while not _promised(shared) and (left := deadline - time.monotonic()) > 0:
        await _sleep_or_renewal(shared, left)
    if _promised(shared):
        return True
    release(budgets)
    return False


def _promised(budgets: Budgets) -> bool:
    """Redis has granted this process a slot for every final it promised on these budgets."""
    return all(budget.held() + budget.reserved <= budget.lease.slots for budget in budgets if budget.lease)


def release(budgets: Budgets) -> None:
    for budget in budgets:
        budget.release()


def try_spend_spare(budgets: Budgets) -> Charge | None:
    """Spend an unreserved write now (interim edits, typing), or None when none is spare."""
    if any(budget.spare() < 1 for budget in budgets):
        return None
    return Charge(budgets)


def seconds_until_spare(budgets: Budgets) -> float:
    return max((budget.seconds_until_spare() for budget in budgets), default=0.0)


async def spend(budgets: Budgets, *, reserved: bool = False) -> Charge:
    """Wait for and spend a write that must happen (first text, overflow, final text);
    `reserved`: it uses up the caller's reservation on these budgets."""
    # Turns are taken newest budget first (the most specific): no two writers wait on each other.
    ordered = sorted(budgets, key=lambda budget: -budget.order)
    stamps = [budget.clock() for budget in budgets]
    for budget, stamp in zip(budgets, stamps):
        budget.queued.append(stamp)
    try:
        async with contextlib.AsyncExitStack() as turns:
            for budget in ordered:
                await turns.enter_async_context(budget.turns)
            while (wait := max((budget.seconds_until_free() for budget in budgets), default=0.0)) > 0:
                await _sleep_or_renewal(budgets, wait)
            if reserved:
                release(budgets)
            return Charge(budgets)
    finally:
        for budget, stamp in zip(budgets, stamps):
            budget.queued.remove(stamp)


async def _sleep_or_renewal(budgets: Budgets, seconds: float) -> None:
    """Sleep `seconds`, or less once Redis renewed a lease of these budgets (its share may grow)."""
    renewals = [budget.lease.renewed for budget in budgets if budget.lease is not None]
    if not renewals:
        await asyncio.sleep(seconds)
        return
    waiters = [asyncio.ensure_future(renewal.wait()) for renewal in renewals]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
