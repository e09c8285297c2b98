"""A turn's budgets held while its prompt is being built, so that checking them adds no wait before the model is asked.
On one event loop every await costs what the loop has queued (with many questions at once, milliseconds: see
docs/BENCHMARKS.md, "Usage and budgets"): a check after the prompt is built would be one more. So when the turn
arrives, the most a call can use (the whole context, at the highest price) is held of the budgets that likely apply
(its places' budgets as last read, kept a minute; the environment's), beside the history's read and write. Once the
prompt is built, the budgets read with it decide: the same ones, and the early hold stands (settled with the real use
afterwards, as any hold); others, or no room for the most (a person near the end of their budget), and the early hold
is given back and the exact amount is held, as without this."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.errors import ReplyFailure
from bot.state.personas import Place
from bot.usage.budgets import Budgets, Spending
from bot.usage.limits import Limit, turn_limits
from bot.usage.meter import UsageMeter
from config.usage import Budget, PlaceBudget, UsageSettings

PLACE_BUDGETS_SECONDS = 60.0  # a change is seen at once all the same: the budgets read with the prompt decide
PLACE_BUDGETS_KEPT = 10_000


@dataclass(frozen=True)
class Early:
    """What was held early: for which budgets, and the hold (None: the most didn't fit, or Redis refused)."""

    limits: tuple[Limit, ...]
    spending: Spending | None


class EarlyHolds:
    def __init__(self, budgets: Budgets, settings: UsageSettings, most: Callable[[Budget], int]) -> None:
        """`most`: the most one call can cost in a budget's units (the whole context at the highest price)."""
        self._budgets = budgets
        self._settings = settings
        self._most = most
        self._known: dict[tuple[str, ...], tuple[float, tuple[PlaceBudget, ...]]] = {}

    def start(self, person: str, places: Sequence[Place]) -> asyncio.Task[Early] | None:
        """Hold the most of the budgets that likely apply, in the background; None when none likely does."""
        limits = turn_limits(self._settings, places, self._last_read(places), person)
        return asyncio.ensure_future(self._hold(limits)) if limits else None

    def learn(self, places: Sequence[Place], set_here: Sequence[PlaceBudget]) -> None:
        """What `places` set, as read with a turn's prompt, for the next turns there."""
        if len(self._known) >= PLACE_BUDGETS_KEPT:
            self._known.clear()
        self._known[tuple(place.key for place in places)] = (time.monotonic(), tuple(set_here))

    async def take(self, early: asyncio.Task[Early] | None, limits: Sequence[Limit]) -> Spending | None:
        """The early hold, if it holds exactly `limits` (the budgets read with the prompt); else it is given back."""
        if early is None:
            return None
        found = await early
        if found.spending is not None and found.limits == tuple(limits):
            return found.spending
        if found.spending is not None:
            await self._budgets.settle(found.spending, UsageMeter())
        return None

    async def drop(self, early: asyncio.Task[Early] | None) -> None:
        """The turn was refused before its model was asked: the early hold is given back."""
        await self.take(early, ())

    async def _hold(self, limits: tuple[Limit, ...]) -> Early:
        try:
            return Early(limits, await self._budgets.hold_each(limits, self._most))
        except ReplyFailure:  # no room for the most, or Redis out of reach: the exact check decides, and says why
            return Early(limits, None)

    def _last_read(self, places: Sequence[Place]) -> tuple[PlaceBudget, ...]:
        known = self._known.get(tuple(place.key for place in places))
        if known is None or time.monotonic() - known[0] > PLACE_BUDGETS_SECONDS:
            return ()  # unknown: the environment's budgets only
        return known[1]
