"""Write budgets: one per platform rate-limit bucket, shared by every reply using it.

A budget allows at most `limit` writes in any `window` seconds (a sliding window is
stricter than the fixed windows platforms use, so it never trips them). Replies that
stream reserve the write for their final text up front; interim edits only spend what is
left over, so a busy channel degrades to fewer interim edits, never to a missing final.

A budget that refills quickly compared with a reply's length (a global per-second limit)
does not turn replies away: it only holds back part of its capacity from interim edits
(`hold_back_cap`), so first and final writes find room at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence

Clock = Callable[[], float]


class WriteBudget:
    def __init__(
        self,
        limit: int,
        window: float,
        *,
        margin: float = 0.05,
        admission: bool = True,
        hold_back_cap: int | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a budget needs limit ≥ 1 and window > 0")
        self.limit = limit
        self.admission = admission  # may a reply be told to hold its text when this budget is short?
        self.hold_back_cap = limit if hold_back_cap is None else hold_back_cap
        self.window = window + margin  # margin: requests can arrive later than we sent them
        self._clock = clock
        self._stamps: deque[float] = deque()
        self.reserved = 0

    def free(self) -> int:
        horizon = self._clock() - self.window
        stamps = self._stamps
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        return self.limit - len(stamps)

    def spare(self) -> int:
        """Writes available now that no reply has reserved."""
        return self.free() - min(self.reserved, self.hold_back_cap)

    def idle(self) -> bool:
        return self.reserved == 0 and self.free() == self.limit

    def seconds_until_free(self) -> float:
        if self.free() > 0:
            return 0.0
        return max(0.0, self._stamps[0] + self.window - self._clock())

    def record(self) -> None:
        self._stamps.append(self._clock())

    def reserve(self) -> None:
        self.reserved += 1

    def release(self) -> None:
        self.reserved = max(0, self.reserved - 1)


Budgets = Sequence[WriteBudget]


def try_reserve(budgets: Budgets) -> bool:
    """Reserve one future write on every budget, or on none."""
    if any(budget.admission and budget.spare() < 1 for budget in budgets):
        return False
    for budget in budgets:
        budget.reserve()
    return True


def release(budgets: Budgets) -> None:
    for budget in budgets:
        budget.release()


def try_spend_spare(budgets: Budgets) -> bool:
    """Spend an unreserved write now (interim edits), without waiting."""
    if any(budget.spare() < 1 for budget in budgets):
        return False
    for budget in budgets:
        budget.record()
    return True


def seconds_until_spare(budgets: Budgets) -> float:
    """A lower bound on when an interim write may next be possible."""
    waits = [budget.window / budget.limit for budget in budgets if budget.spare() < 1]
    return max(waits, default=0.0)


async def spend(budgets: Budgets, *, reserved: bool = False) -> None:
    """Wait for and spend a write that must happen (first text, overflow, final text).

    Urgent writes may use reserved capacity: that is what it was kept for.
    """
    while True:
        wait = max((budget.seconds_until_free() for budget in budgets), default=0.0)
        if wait <= 0:
            break
        await asyncio.sleep(wait)
    for budget in budgets:
        budget.record()
        if reserved:
            budget.release()
