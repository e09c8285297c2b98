"""Write budgets: one per platform rate-limit bucket, shared by every reply using it.

A budget allows at most `limit` writes in any `window` seconds (a sliding window is
stricter than the fixed windows platforms use, so it never trips them). A write counts from
when the platform answered it: the platform counted it on arrival, which can only be earlier,
so however late a request reaches it, the platform never sees more than `limit` in a window.

Replies that stream reserve the write for their final text up front; interim edits only
spend what is left over, so a busy channel degrades to fewer interim edits, never to a
missing final. While a budget keeps no more finals than it holds (see `admission`), a final
never waits for interim edits, not even when every streaming reply ends at once.

A budget that refills quickly compared with a reply's length (a global per-second limit)
does not judge a reply by its current window: it admits up to `max_streaming` live replies
at once (beyond that, a reply's text is held and posted whole, saving the platform a
write). Interim edits then get what those replies' finals leave: none at all when as many
replies stream as the budget allows in a window.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import contextvars
import itertools
import time
from collections import deque
from collections.abc import Callable, Sequence

Clock = Callable[[], float]


# A write still in flight holds its slot (it may reach the platform any moment); one never
# settled stops counting after this long, so a forgotten charge cannot block a budget.
IN_FLIGHT_LIMIT = 30.0
# A write waiting for one in flight looks again this often (its answer may come any moment).
IN_FLIGHT_RECHECK_SECONDS = 0.05
# An interim write finding every slot kept for a final looks again this often.
RESERVED_FULL_RECHECK_SECONDS = 1.0
_CREATED = itertools.count()


class _Stamp:
    __slots__ = ("at", "settled", "budget")

    def __init__(self, at: float, budget: WriteBudget) -> None:
        self.at = at  # when recorded; once settled, when the platform counted it at the latest
        self.settled = False
        self.budget = budget


class Charge:
    """The writes one request spent, counted from when the platform answered it.

    Until then the request is in flight and holds its slots. An adapter that sees the answer
    arrive (an HTTP trace hook) says so with `answered_in_flight`; otherwise the request
    counts from when it completes, a little later still.

        with await spend(budgets):
            await send_the_request()
    """

    def __init__(self, stamps: list[_Stamp], clock: Clock) -> None:
        self._stamps = stamps
        self._clock = clock
        self._token: contextvars.Token[Charge | None] | None = None

    def settle(self) -> None:
        """The request is done: it counts from now, unless its answer was already seen."""
        now = self._clock()
        for stamp in self._stamps:
            if not stamp.settled:
                stamp.budget._count(stamp, now)

    def answered(self) -> None:
        """The platform answered (again: a retry): the request counts from the last answer."""
        now = self._clock()
        for stamp in self._stamps:
            stamp.budget._count(stamp, now)

    def __enter__(self) -> Charge:
        self._token = _IN_FLIGHT.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.settle()
        if self._token is not None:
            _IN_FLIGHT.reset(self._token)


_IN_FLIGHT: contextvars.ContextVar[Charge | None] = contextvars.ContextVar("budget_in_flight", default=None)


def answered_in_flight() -> None:
    """The request being made in this context got the platform's answer now (for HTTP client
    trace hooks); each retry's answer moves it later."""
    charge = _IN_FLIGHT.get()
    if charge is not None:
        charge.answered()


class WriteBudget:
    def __init__(
        self,
        limit: int,
        window: float,
        *,
        admission: bool = True,
        max_streaming: int | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a budget needs limit ≥ 1 and window > 0")
        self.limit = limit
        self.admission = admission  # may a reply be told to hold its text when this budget is short?
        self.max_streaming = max_streaming
        self.window = window
        self._clock = clock
        # Writes in flight, oldest first, and writes counted, by when they were counted.
        self._in_flight: deque[_Stamp] = deque()
        self._counted: deque[_Stamp] = deque()
        self._paused_until = 0.0
        self.reserved = 0
        # Writes that must happen wait their turn here, so only the first of them sleeps on the
        # budget's clock: fifty replies waiting for the global budget to free up would otherwise
        # all wake for every slot that frees, and all but one go back to sleep.
        self.turns = asyncio.Lock()
        self.order = next(_CREATED)

    def free(self) -> int:
        now = self._clock()
        if now < self._paused_until:
            return 0
        horizon = now - self.window
        counted, in_flight = self._counted, self._in_flight
        while counted and counted[0].at <= horizon:
            counted.popleft()
        while in_flight and in_flight[0].at <= horizon - IN_FLIGHT_LIMIT:
            in_flight.popleft()
        return self.limit - len(counted) - len(in_flight)

    def pause(self, seconds: float) -> None:
        """The platform said 429 anyway (another process, clock skew): send nothing more until it
        allows, so the retries it expects are not joined by new requests."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def spare(self) -> int:
        """Writes available now that no reply has reserved."""
        return self.free() - self.reserved

    def idle(self) -> bool:
        return self.reserved == 0 and self.free() == self.limit

    def seconds_until_free(self) -> float:
        return self._seconds_until_free_count(1)

    def seconds_until_spare(self) -> float:
        """When an interim write may next be possible: once enough writes have left the window,
        or (when this many replies keep their finals here) once one of them is done."""
        if self.reserved + 1 > self.limit:
            # Only a reply finishing makes room: look again about as often as a reply edits.
            return min(self.window, RESERVED_FULL_RECHECK_SECONDS)
        return self._seconds_until_free_count(self.reserved + 1)

    def _seconds_until_free_count(self, needed: int) -> float:
        missing = needed - self.free()
        if missing <= 0:
            return 0.0
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        if len(self._counted) < missing:  # room depends on writes still in flight
            return IN_FLIGHT_RECHECK_SECONDS
        return max(0.0, self._counted[missing - 1].at + self.window - now)

    def record(self) -> _Stamp:
        stamp = _Stamp(self._clock(), self)
        self._in_flight.append(stamp)
        return stamp

    def _count(self, stamp: _Stamp, now: float) -> None:
        """`stamp`'s write counts from `now` (or later, if it already does)."""
        at = max(stamp.at, now)
        if stamp.settled and at == stamp.at:
            return
        # Gone already if it left the window, or was given up on while in flight.
        with contextlib.suppress(ValueError):
            (self._counted if stamp.settled else self._in_flight).remove(stamp)
        stamp.at, stamp.settled = at, True
        counted = self._counted
        if not counted or counted[-1].at <= at:
            counted.append(stamp)  # the usual case: counted now, after everything before
        else:
            counted.insert(bisect.bisect_right(counted, at, key=lambda counted_stamp: counted_stamp.at), stamp)

    def admits(self) -> bool:
        if not self.admission:
            return True
        if self.max_streaming is not None:
            return self.reserved < self.max_streaming
        return self.spare() >= 1

    def reserve(self) -> None:
        self.reserved += 1

    def release(self) -> None:
        self.reserved = max(0, self.reserved - 1)


Budgets = Sequence[WriteBudget]


def try_reserve(budgets: Budgets) -> bool:
    """Reserve one future write on every budget, or on none."""
    if not all(budget.admits() for budget in budgets):
        return False
    for budget in budgets:
        budget.reserve()
    return True


def release(budgets: Budgets) -> None:
    for budget in budgets:
        budget.release()


def try_spend_spare(budgets: Budgets) -> Charge | None:
    """Spend an unreserved write now (interim edits, typing), without waiting; None if none is spare."""
    if any(budget.spare() < 1 for budget in budgets):
        return None
    return _charge(budgets)


def _charge(budgets: Budgets) -> Charge:
    return Charge([budget.record() for budget in budgets], budgets[0]._clock if budgets else time.monotonic)


def seconds_until_spare(budgets: Budgets) -> float:
    """When an interim write may next be possible on every budget."""
    return max((budget.seconds_until_spare() for budget in budgets), default=0.0)


async def spend(budgets: Budgets, *, reserved: bool = False) -> Charge:
    """Wait for and spend a write that must happen (first text, overflow, final text).

    Urgent writes may use reserved capacity: that is what it was kept for.
    """
    # Every spender takes the budgets' turns in one order (the newest budget, usually the most
    # specific such as a channel's, first): no two can each hold a turn the other waits for.
    ordered = sorted(budgets, key=lambda budget: -budget.order)
    while True:
        async with contextlib.AsyncExitStack() as turns:
            for budget in ordered:
                await turns.enter_async_context(budget.turns)
                while (wait := budget.seconds_until_free()) > 0:
                    await asyncio.sleep(wait)
            # An interim write may have taken a budget freed earlier in the loop: then wait again.
            if all(budget.free() > 0 for budget in budgets):
                if reserved:
                    release(budgets)
                return _charge(budgets)
