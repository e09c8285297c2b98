"""What `/usage` and `/usage server` show, the same on every platform: a person's tokens and cost today, this week and
this month by model with what is left of their budgets; a server's or workspace's last 30 days, its top 10 people,
its split by model, a chart (a PNG drawn with matplotlib, else a text sparkline) and a CSV. Each function raises
STORE_UNAVAILABLE (a ReplyFailure) without Redis."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from adapters.shared.platform_jobs import Bold
from bot.core import ChatCore
from bot.state.personas import Place
from bot.usage.accounting import Payer
from bot.usage.budgets import describe_units, describe_wait
from bot.usage.days import last_days, month_so_far, week_so_far
from bot.usage.holds import ReserveOutcome
from bot.usage.limits import Limit
from bot.usage.totals import ModelUsage, UsageTotals

SERVER_DAYS = 30
TOP_PEOPLE = 10
SPARKS = "▁▂▃▄▅▆▇█"
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class BudgetLeft:
    limit: Limit
    standing: ReserveOutcome

    def describe(self) -> str:
        budget, standing = self.limit.budget, self.standing
        left = describe_units(budget, standing.left)
        used = describe_units(budget, standing.used + standing.reserved)
        return (
            f"{self.limit.who.capitalize()} ({budget.describe()}, set by {self.limit.source}): {left} left, "
            f"{used} used; resets in {describe_wait(standing.resets_in)}"
        )


@dataclass(frozen=True)
class PersonUsage:
    today: UsageTotals
    week: UsageTotals
    month: UsageTotals
    budgets: tuple[BudgetLeft, ...]


@dataclass(frozen=True)
class ScopeUsage:
    days: tuple[str, ...]
    per_day: tuple[UsageTotals, ...]
    total: UsageTotals
    top: tuple[tuple[str, int], ...]  # (person, tokens), most first


async def person_usage(core: ChatCore, payer: Payer, places: Sequence[Place]) -> PersonUsage:
    """The person's usage this month (today and this week within it), and the budgets that apply to them here."""
    accounting = core.accounting
    month = month_so_far()
    per_day = await accounting.ledger.each_day(payer.person, month, kind="person")
    by_day = dict(zip(month, per_day, strict=True))
    week = [day for day in week_so_far() if day in by_day]
    settings = await core.personas.settings(places) if core.personas is not None else None
    limits = accounting.limits(payer, places, settings.budgets if settings is not None else ())
    standings = await asyncio.gather(*(accounting.budgets.standing(limit) for limit in limits))
    return PersonUsage(
        today=by_day[month[-1]],
        week=summed([by_day[day] for day in week]),
        month=summed(per_day),
        budgets=tuple(BudgetLeft(limit, standing) for limit, standing in zip(limits, standings, strict=True)),
    )


async def scope_usage(core: ChatCore, scope: str, days: int = SERVER_DAYS) -> ScopeUsage:
    """A server's or workspace's last `days` days: each day's usage and its top people."""
    ledger = core.accounting.ledger
    wanted = last_days(days)
    per_day, top = await asyncio.gather(
        ledger.each_day(scope, wanted, kind="scope"), ledger.top_people(scope, wanted, TOP_PEOPLE)
    )
    return ScopeUsage(tuple(wanted), tuple(per_day), summed(per_day), tuple(top))


def describe_person(usage: PersonUsage, bold: Bold) -> str:
    lines = [bold("Your usage")]
    for label, totals in (("Today", usage.today), ("This week", usage.week), ("This month", usage.month)):
        lines.append(f"{label}: {describe_totals(totals)}")
    if usage.month.by_model:
        lines.append(bold("This month by model"))
        lines += [f"• {model}: {describe_model(totals)}" for model, totals in by_model(usage.month)]
    if usage.budgets:
        lines += [f"• {budget.describe()}" for budget in usage.budgets]
    else:
        lines.append("No budget limits you here.")
    return "\n".join(lines)


def describe_scope(usage: ScopeUsage, name_of: Callable[[str], str], bold: Bold, where: str = "this server") -> str:
    """The text of `/usage server`; `name_of` turns a person's key into how they are named there (a mention that
    pings nobody, or a name)."""
    total = usage.total
    lines = [bold(f"Usage of {where}, last {len(usage.days)} days"), describe_totals(total)]
    lines.append(f"Per day: {sparkline([day.tokens for day in usage.per_day])}")
    if usage.top:
        lines.append(bold(f"Top {len(usage.top)} people"))
        lines += [f"{rank}. {name_of(person)}: {tokens:,} tokens" for rank, (person, tokens) in enumerate(usage.top, 1)]
    if total.by_model:
        lines.append(bold("By model"))
        lines += [f"• {model}: {describe_model(totals)}" for model, totals in by_model(total)]
    return "\n".join(lines)


def describe_totals(totals: UsageTotals) -> str:
    if not totals.turns and not totals.tokens:
        return "nothing yet"
    cost = f", {money(totals.cost_usd)}" if totals.cost_usd or not totals.unpriced_turns else ""
    unpriced = " (models without a price: tokens only)" if totals.unpriced_turns and totals.cost_usd else ""
    answers = f"{totals.turns:,} answer{'s' if totals.turns != 1 else ''}"
    return (
        f"{totals.tokens:,} tokens ({totals.prompt_tokens:,} in, {totals.completion_tokens:,} out){cost}{unpriced}, "
        f"{answers}"
    )


def describe_model(totals: ModelUsage) -> str:
    priced = f", {money(totals.cost_usd)}" if totals.cost_usd is not None else ""
    return f"{totals.tokens:,} tokens ({totals.prompt_tokens:,} in, {totals.completion_tokens:,} out){priced}"


def by_model(totals: UsageTotals) -> list[tuple[str, ModelUsage]]:
    """The models, most tokens first."""
    return sorted(totals.by_model.items(), key=lambda item: -item[1].tokens)


def money(usd: float) -> str:
    return f"${usd:,.2f}" if usd >= 0.01 or usd == 0 else f"${usd:.4f}"


def summed(days: Sequence[UsageTotals]) -> UsageTotals:
    models: dict[str, ModelUsage] = {}
    for day in days:
        for model, usage in day.by_model.items():
            before = models.get(model, ModelUsage())
            cost = (
                None
                if before.cost_usd is None and usage.cost_usd is None
                else ((before.cost_usd or 0.0) + (usage.cost_usd or 0.0))
            )
            models[model] = ModelUsage(
                before.prompt_tokens + usage.prompt_tokens,
                before.completion_tokens + usage.completion_tokens,
                before.turns + usage.turns,
                cost,
            )
    return UsageTotals(
        prompt_tokens=sum(day.prompt_tokens for day in days),
        completion_tokens=sum(day.completion_tokens for day in days),
        turns=sum(day.turns for day in days),
        cost_usd=sum(day.cost_usd for day in days),
        unpriced_turns=sum(day.unpriced_turns for day in days),
        by_model=dict(sorted(models.items())),
    )


def sparkline(values: Sequence[int]) -> str:
    """ "▁▁▃█▂" : each value's height against the largest (all ▁ when nothing was used)."""
    top = max(values, default=0)
    if top <= 0:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[min(len(SPARKS) - 1, round(value / top * (len(SPARKS) - 1)))] for value in values)


def usage_csv(usage: ScopeUsage, name_of: Callable[[str], str]) -> bytes:
    """Each day and model's counts, then the top people; cells a spreadsheet would run as a formula are quoted."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["day", "model", "input_tokens", "output_tokens", "answers", "cost_usd"])
    for day, totals in zip(usage.days, usage.per_day, strict=True):
        for model, model_usage in sorted(totals.by_model.items()):
            cost = "" if model_usage.cost_usd is None else f"{model_usage.cost_usd:.6f}"
            row = [day, model, model_usage.prompt_tokens, model_usage.completion_tokens, model_usage.turns, cost]
            writer.writerow([_cell(value) for value in row])
    writer.writerow([])
    writer.writerow(["rank", "person", "tokens"])
    for rank, (person, tokens) in enumerate(usage.top, 1):
        writer.writerow([rank, _cell(name_of(person)), tokens])
    return out.getvalue().encode("utf-8")


def usage_chart_png(usage: ScopeUsage, title: str) -> bytes | None:
    """Tokens per day as bars (a PNG of a few KB), or None without matplotlib (the sparkline in the text stands)."""
    try:
        from matplotlib.figure import Figure  # the object API: no global state, safe off the loop's thread
    except ImportError:
        return None
    figure = Figure(figsize=(6, 2.4), dpi=100)
    axes = figure.subplots()
    positions = list(range(len(usage.days)))
    axes.bar(positions, [day.tokens for day in usage.per_day], color="#5865F2")
    axes.set_xticks(positions, [day[5:] for day in usage.days])  # "06-01", as labels (not parsed as dates)
    axes.set_title(title, fontsize=10)
    axes.set_ylabel("tokens", fontsize=8)
    axes.tick_params(axis="x", labelsize=6, labelrotation=90)
    axes.tick_params(axis="y", labelsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


async def chart_png(usage: ScopeUsage, title: str) -> bytes | None:
    """usage_chart_png off the event loop (matplotlib takes tens of milliseconds)."""
    return await asyncio.to_thread(usage_chart_png, usage, title)


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(CSV_FORMULA_START):
        return "'" + value
    return value


def names_in(usage: ScopeUsage) -> list[str]:
    """The people of the report (to look their names up)."""
    return [person for person, _ in usage.top]


def person_id(person: str) -> str:
    """A person's platform id from the ledger's key ("discord:42" → "42", "slack:T1:U1" → "U1")."""
    return person.rsplit(":", 1)[-1]


def named(names: Mapping[str, str]) -> Callable[[str], str]:
    return lambda person: names.get(person, person_id(person))
