"""Write budgets: one per platform rate-limit bucket, shared by every reply using it.

A budget allows at most `limit` writes in any `window` seconds (a sliding window is
stricter than the fixed windows platforms use, so it never trips them). Replies that
stream reserve the write for their final text up front; interim edits only spend what is
left over, so a busy channel degrades to fewer interim edits, never to a missing final.

A budget that refills quickly compared with a reply's length (a global per-second limit)
does not judge a reply by its current window: it admits up to `max_streaming` live replies
at once (beyond that, a reply's text is held and posted whole, saving the platform a
write) and holds back part of its capacity from interim edits (`hold_back_cap`), so first
and final writes find room at once.
"""

from __future__ import annotations

import asyncio
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
_CREATED = itertools.count()


class _Stamp:
    __slots__ = ("at", "settled")

    def __init__(self, at: float) -> None:
        self.at = at
        self.settled = False

    def expired(self, horizon: float) -> bool:
        return self.at <= horizon and (self.settled or self.at <= horizon - IN_FLIGHT_LIMIT)


class Charge:
    """The writes one request spent, counted from when the request reached the platform.

    Until it is settled the request is in flight and holds its slots. Settle it when the
    request is sent (an adapter that can see that moment, e.g. through an HTTP trace hook)
    or, failing that, when it completes — later than the platform saw it, so on the safe side.

        with await spend(budgets):
            await send_the_request()
    """

    def __init__(self, stamps: list[_Stamp], clock: Clock) -> None:
        self._stamps = stamps
        self._clock = clock
        self._token: contextvars.Token[Charge | None] | None = None

    def settle(self) -> None:
        """The request is done (or was sent): it counts from now, unless it was already counted as sent."""
        now = self._clock()
        for stamp in self._stamps:
            if not stamp.settled:
                stamp.at = max(stamp.at, now)
                stamp.settled = True

    def sent(self) -> None:
        """(More of) the request went out now: it counts from the last time this is said."""
        now = self._clock()
        for stamp in self._stamps:
            stamp.at = max(stamp.at, now)
            stamp.settled = True

    def __enter__(self) -> Charge:
        self._token = _IN_FLIGHT.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.settle()
        if self._token is not None:
            _IN_FLIGHT.reset(self._token)


_IN_FLIGHT: contextvars.ContextVar[Charge | None] = contextvars.ContextVar("budget_in_flight", default=None)


def settle_in_flight() -> None:
    """Mark the request being made in this context as sent now (for HTTP client trace hooks).

    Call it for each part written (headers, body): the request counts from the last, which is
    when the platform can have it all.
    """
    charge = _IN_FLIGHT.get()
    if charge is not None:
        charge.sent()


class WriteBudget:
    def __init__(
        self,
        limit: int,
        window: float,
        *,
        margin: float = 0.05,
        admission: bool = True,
        max_streaming: int | None = None,
        hold_back_cap: int | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a budget needs limit ≥ 1 and window > 0")
        self.limit = limit
        self.admission = admission  # may a reply be told to hold its text when this budget is short?
        self.max_streaming = max_streaming
        self.hold_back_cap = limit if hold_back_cap is None else hold_back_cap
        self.window = window + margin  # margin: requests can arrive later than we sent them
        self._clock = clock
        self._stamps: deque[_Stamp] = deque()
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
        stamps = self._stamps
        while stamps and stamps[0].expired(horizon):
            stamps.popleft()
        return self.limit - len(stamps)

    def pause(self, seconds: float) -> None:
        """The platform said 429 anyway (another process, clock skew): send nothing more until it
        allows, so the retries it expects are not joined by new requests."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def spare(self) -> int:
        """Writes available now that no reply has reserved."""
        return self.free() - min(self.reserved, self.hold_back_cap)

    def idle(self) -> bool:
        return self.reserved == 0 and self.free() == self.limit

    def seconds_until_free(self) -> float:
        if self.free() > 0:
            return 0.0
        if self._clock() < self._paused_until:
            return self._paused_until - self._clock()
        oldest = self._stamps[0]
        if not oldest.settled:
            return 0.05  # in flight: look again shortly
        return max(0.0, oldest.at + self.window - self._clock())

    def record(self) -> _Stamp:
        stamp = _Stamp(self._clock())
        self._stamps.append(stamp)
        return stamp

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
    """A lower bound on when an interim write may next be possible."""
    waits = [budget.window / budget.limit for budget in budgets if budget.spare() < 1]
    return max(waits, default=0.0)


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
