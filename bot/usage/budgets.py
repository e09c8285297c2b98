"""A turn's budgets held while it is answered: before its first model call the prompt plus MAX_NEW_TOKENS is held
of every budget that applies (one Redis round trip for all of them, each hold one script: exact across processes);
before each tool round the hold grows by that round; afterwards each is settled with what the turn really used.

A budget in tokens counts every token; one in US dollars counts what the models' prices say (a model without a price,
and the in-process one, cost nothing there, so they are never refused by a money budget)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import structlog

from bot.errors import FailureKind, ReplyFailure
from bot.usage.days import Window, day_window, month_window
from bot.usage.holds import BudgetHolds, Hold, ReserveOutcome, Settled
from bot.usage.limits import Limit
from bot.usage.meter import UsageMeter
from bot.usage.totals import MICRO
from config.models import Price
from config.usage import Budget

log = structlog.get_logger(__name__)

HOLD_SECONDS = 900  # a crashed process's holds lapse after this (an answer with tools may take minutes)


@dataclass
class Spending:
    """The budgets one turn holds: each with the amount held so far, in its units."""

    limits: tuple[Limit, ...]
    hold_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    held: dict[str, int] = field(default_factory=dict)  # limit key → units held
    windows: dict[str, Window] = field(default_factory=dict)


class Budgets:
    def __init__(self, holds: BudgetHolds, price_of: Callable[[str], Price | None]) -> None:
        self._holds = holds
        self._price_of = price_of

    async def hold(self, limits: Sequence[Limit], model: str, prompt_tokens: int, max_new_tokens: int) -> Spending:
        """Hold a first call's worth of every budget in `limits`, or raise ReplyFailure(BUDGET) saying which ran out,
        when it resets and what was used (nothing is then held)."""
        return await self.hold_each(
            limits, lambda budget: self.cost_of_call(budget, model, prompt_tokens, max_new_tokens)
        )

    async def hold_each(self, limits: Sequence[Limit], amount: Callable[[Budget], int]) -> Spending:
        """Hold `amount(budget)` of every budget in `limits` (see `hold`)."""
        spending = Spending(tuple(limits))
        try:
            await self._hold_wanted(spending, {limit.key: amount(limit.budget) for limit in limits})
        except ReplyFailure:
            await self.settle(spending, UsageMeter())  # the budgets that had room give their hold back
            raise
        return spending

    async def grow(self, spending: Spending, meter: UsageMeter, model: str, prompt_tokens: int, max_new: int) -> None:
        """Before another call of the same turn (a tool round): hold what it used so far plus that call, or raise
        ReplyFailure(BUDGET_REACHED)."""
        wanted = {
            limit.key: self.amount(limit.budget, meter) + self.cost_of_call(limit.budget, model, prompt_tokens, max_new)
            for limit in spending.limits
        }
        try:
            await self._hold_wanted(spending, wanted)
        except ReplyFailure as failure:
            raise ReplyFailure(FailureKind.BUDGET_REACHED, failure.detail) from failure

    async def settle(self, spending: Spending | None, meter: UsageMeter) -> None:
        """Replace each hold with what the turn used (never raises: a failed settle's hold lapses by itself)."""
        if spending is None or not spending.held:
            return
        settled = [
            Settled(
                self._counter(limit, spending),
                self.amount(limit.budget, meter),
                spending.windows[limit.key].ends_in,
            )
            for limit in spending.limits
            if limit.key in spending.held
        ]
        try:
            await self._holds.settle_all(settled, spending.hold_id)
        except Exception as error:  # noqa: BLE001 - a hold not settled lapses by itself; the answer stands
            log.warning("budget_settle_failed", error=str(error) or type(error).__name__)

    def amount(self, budget: Budget, meter: UsageMeter) -> int:
        """What `meter`'s calls cost in `budget`'s units: tokens, or micro-dollars."""
        if budget.unit == "tokens":
            return meter.tokens
        total = 0.0
        for model, (prompt, completion) in meter.by_model().items():
            price = self._price_of(model)
            total += price.cost(prompt, completion) if price is not None else 0.0
        return round(total * MICRO)

    def cost_of_call(self, budget: Budget, model: str, prompt_tokens: int, max_new: int) -> int:
        if budget.unit == "tokens":
            return prompt_tokens + max_new
        price = self._price_of(model)
        return math.ceil(price.cost(prompt_tokens, max_new) * MICRO) if price is not None else 0

    async def _hold_wanted(self, spending: Spending, wanted: dict[str, int]) -> None:
        asked = [limit for limit in spending.limits if wanted[limit.key] > spending.held.get(limit.key, 0)]
        if not asked:
            return
        for limit in asked:
            spending.windows.setdefault(limit.key, day_window() if limit.daily else month_window())
        holds = [
            Hold(
                self._counter(limit, spending),
                limit.budget.units,
                wanted[limit.key],
                spending.windows[limit.key].ends_in,
            )
            for limit in asked
        ]
        outcomes = await self._holds.reserve_all(holds, spending.hold_id, HOLD_SECONDS)
        refused = [(limit, outcome) for limit, outcome in zip(asked, outcomes, strict=True) if not outcome.ok]
        for limit, outcome in zip(asked, outcomes, strict=True):
            # Refused, a budget that had room may still hold some (on a Cluster): listed, it is given back too.
            spending.held[limit.key] = wanted[limit.key] if outcome.ok else spending.held.get(limit.key, 0)
        if refused:
            limit, outcome = next(((one, why) for one, why in refused if why.left < wanted[one.key]), refused[0])
            reason = ran_out(limit, outcome, wanted[limit.key] - spending.held.get(limit.key, 0))
            raise ReplyFailure(FailureKind.BUDGET, f"{limit.key} {outcome}", reason=reason)

    async def standing(self, limit: Limit) -> ReserveOutcome:
        """`limit` as it stands now (what was used and is held of it, when it resets), holding nothing."""
        window = day_window() if limit.daily else month_window()
        outcome = await self._holds.standing(counter_key(limit, window), limit.budget.units)
        return outcome if outcome.resets_in > 0 else replace(outcome, resets_in=window.ends_in)

    def _counter(self, limit: Limit, spending: Spending) -> str:
        return counter_key(limit, spending.windows[limit.key])


def counter_key(limit: Limit, window: Window) -> str:
    """The ledger's budget counter of `limit` in `window` (its unit in it: a budget changed from tokens to dollars
    starts a counter of its own)."""
    return f"{limit.key}:{window.label}:{limit.budget.unit}"


def ran_out(limit: Limit, outcome: ReserveOutcome, needed: int) -> str:
    """What the person is told: which budget, what was used of it or what the question needed, when it resets."""
    budget, whose = limit.budget, limit.who[0].upper() + limit.who[1:]
    when = f"It resets in {describe_wait(outcome.resets_in)} ({'at' if limit.daily else 'on the 1st at'} 00:00 UTC)."
    if needed > budget.units:
        return (
            f"This question needs about {describe_units(budget, needed)} (its prompt and room for a full answer), more "
            f"than {limit.who} allows at all ({budget.describe()}), so I didn't ask the model. Ask an admin to raise "
            "it."
        )
    used = used_of(budget, outcome.used + outcome.reserved)
    if outcome.left > 0:
        return (
            f"This question needs about {describe_units(budget, needed)} (its prompt and room for a full answer), more "
            f"than the {describe_units(budget, outcome.left)} left of {limit.who} ({used} "
            f"used), so I didn't ask the model. {when} /usage shows where it went."
        )
    return f"{whose} has run out: {used} used, so I didn't ask the model. {when} /usage shows where it went."


def used_of(budget: Budget, units: float) -> str:
    """ "1,200 of 5,000 tokens", "$1.20 of $5.00"."""
    if budget.unit == "tokens":
        return f"{round(units):,} of {budget.describe()}"
    return f"{describe_units(budget, units)} of {budget.describe()}"


def describe_units(budget: Budget, units: float) -> str:
    if budget.unit == "tokens":
        return f"{round(units):,} tokens"
    return f"${units / MICRO:,.2f}"


def describe_wait(seconds: int) -> str:
    """ "3 h 12 min", "2 days 4 h", "8 min"."""
    minutes = max(1, math.ceil(seconds / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days > 1 else ''} {hours} h" if hours else f"{days} day{'s' if days > 1 else ''}"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
