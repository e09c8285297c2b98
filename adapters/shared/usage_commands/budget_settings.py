"""`/budget`, the same on every platform: what usage budgets apply in a channel and where each is set, and an admin's
change of a channel's or server's own (each person's per day there, the place's own per month). Each function answers
with the sentence the person sees; each raises STORE_UNAVAILABLE (a ReplyFailure) without Redis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from adapters.shared.place_settings import where_of
from adapters.shared.platform_jobs import Bold
from bot.core import ChatCore
from bot.state.personas import Place
from bot.usage.accounting import Payer
from config.env import ConfigError
from config.usage import BUDGET_FORMS, Budget, parse_budget

BUDGET_FIELDS = ("person_daily", "monthly")
CLEAR = ("default", "none", "off")  # what removes a place's own budget (the server's, the file's or the env's apply)
NO_SETTINGS = "Budgets can't be set here."


async def budget_here(core: ChatCore, places: Sequence[Place], bold: Bold) -> str:
    """/budget without a change: the budgets that apply here and where each is set."""
    settings = await core.personas.settings(places) if core.personas is not None else None
    limits = core.accounting.limits(Payer("", "anyone"), places, settings.budgets if settings is not None else ())
    if not limits:
        return "No usage budget applies here: answers are limited only by the questions-per-minute quotas."
    lines = [bold("Budgets here")]
    for limit in limits:
        who = "Each person's daily budget" if limit.daily else limit.who.capitalize()
        lines.append(f"• {who}: {bold(limit.budget.describe())} (set by {limit.source})")
    lines.append(f"Admins change them with /budget person_daily <amount> or /budget monthly <amount> ({BUDGET_FORMS}).")
    return "\n".join(lines)


async def set_budget_here(
    core: ChatCore, place: Place, bold: Bold, *, person_daily: str | None = None, monthly: str | None = None
) -> str:
    """Set `place`'s own budgets: each given field to a budget, or back to what applies above it (CLEAR). A value
    that isn't a budget changes nothing and says why."""
    personas = core.personas
    if personas is None:
        return NO_SETTINGS
    if person_daily is None and monthly is None:
        return f"Say which budget: /budget person_daily <amount> or /budget monthly <amount> ({BUDGET_FORMS})."
    try:
        changes = {
            name: _budget(value, name)
            for name, value in (("person_daily", person_daily), ("monthly", monthly))
            if value is not None
        }
    except ConfigError as error:
        return str(error)
    own = replace(await personas.budget(place), **changes)
    await personas.set_budget(place, own)
    where = where_of(place)
    said = [_said(name, budget, where, bold) for name, budget in changes.items()]
    return "Done: " + "; ".join(said) + ", from the next question on."


def parse_budget_words(text: str) -> tuple[str, dict[str, str]]:
    """Slack's `/budget [server] person_daily 20000 monthly $5` (or `person_daily=20000`): where ("channel" or
    "server") and each field's value as written; a field said twice keeps the last."""
    words = text.replace("=", " ").split()
    scope = "channel"
    if words and words[0].casefold() in ("server", "workspace", "channel"):
        scope = "channel" if words.pop(0).casefold() == "channel" else "server"
    fields: dict[str, str] = {}
    name: str | None = None
    for word in words:
        if word.casefold() in BUDGET_FIELDS:
            name = word.casefold()
            fields[name] = ""
        elif name is not None:
            fields[name] = f"{fields[name]} {word}".strip()
        else:
            raise ValueError(f"Say which budget first: person_daily or monthly, then the amount ({BUDGET_FORMS}).")
    return scope, fields


def _budget(value: str, name: str) -> Budget | None:
    if value.strip().casefold() in CLEAR:
        return None
    budget = parse_budget(value, name)
    if budget is None:
        raise ConfigError(f"{name}: say an amount ({BUDGET_FORMS}), or {CLEAR[0]} to remove this place's own.")
    return budget


def _said(name: str, budget: Budget | None, where: str, bold: Bold) -> str:
    if name == "person_daily":
        if budget is None:
            return f"each person's daily budget in {where} follows the settings above it again"
        return f"each person may use {bold(budget.describe())} a day in {where}"
    if budget is None:
        return f"{where} has no monthly budget of its own any more"
    return f"{where} may use {bold(budget.describe())} a month"
