"""The sidebar's usage line: what this browser's questions used today and this month, in tokens (and US dollars when
the models have a price), and what is left of each budget that applies to them (adapters.shared.usage_commands.report,
as `/usage` shows it on every platform).

The browser is the person: the counts are the payer's of the browser's own turns, built as the core builds it
(`usage_payer`), so a page is only ever shown its own browser's usage, read by its cookie's id.

The usage, as a page is sent it: {text: "Today: 1,234 tokens · $0.01 — this month: 20,345 tokens", budgets: ["Your
daily budget: 3,766 tokens left of 5,000 tokens"], detail: the whole `/usage` report (plain text, for a tooltip),
today: {tokens, cost}, month: {tokens, cost}}; without Redis {text: UNAVAILABLE, budgets: []}. Server → page: `usage`
in `hello`, and a frame `usage` {the same fields} to every page of the browser in this process once an answer of it
ends.
"""

from __future__ import annotations

from typing import Any

import structlog

from adapters.shared.usage_commands.report import BudgetLeft, PersonUsage, describe_person, money, person_usage
from adapters.web.conversations import thread_of
from adapters.web.instructions import places_of
from bot.core import ChatCore, Turn
from bot.errors import ReplyFailure
from bot.usage.accounting import Payer, payer_of
from bot.usage.budgets import describe_units
from bot.usage.totals import UsageTotals

log = structlog.get_logger(__name__)

NAME = "web"
UNAVAILABLE = "Usage: out of reach right now."


def usage_payer(chat_id: str, conversation: str) -> Payer:
    """Whose usage the browser's questions are: the Turn a page hands the core (adapters.web.chat.Tab) taken apart as
    ChatCore._answer does (its platform and quota scope "web", its author the browser's id, no server)."""
    turn = Turn(thread_of(chat_id, conversation), chat_id, NAME, "", places=places_of(chat_id, conversation))
    return payer_of(turn.platform, turn.quota_scope, turn.author_id, turn.places)


async def usage_of(core: ChatCore, chat_id: str, conversation: str) -> dict[str, Any]:
    """The usage of the browser `chat_id`, with the budgets of its conversation `conversation`."""
    try:
        usage = await person_usage(core, usage_payer(chat_id, conversation), places_of(chat_id, conversation))
    except ReplyFailure as failure:
        log.warning("web_usage_unavailable", detail=failure.detail)
        return {"text": UNAVAILABLE, "budgets": []}
    return {
        "text": usage_line(usage),
        "budgets": [budget_line(budget) for budget in usage.budgets],
        "detail": describe_person(usage, str),
        "today": _counts(usage.today),
        "month": _counts(usage.month),
    }


def usage_line(usage: PersonUsage) -> str:
    """ "Today: 1,234 tokens · $0.01 — this month: 20,345 tokens · $0.20" (no cost when nothing had a price)."""
    return f"Today: {_totals(usage.today)} — this month: {_totals(usage.month)}"


def budget_line(budget: BudgetLeft) -> str:
    """ "Your daily budget: 3,766 tokens left of 5,000 tokens"."""
    limit, standing = budget.limit, budget.standing
    return f"{limit.who.capitalize()}: {describe_units(limit.budget, standing.left)} left of {limit.budget.describe()}"


def _totals(totals: UsageTotals) -> str:
    cost = f" · {money(totals.cost_usd)}" if totals.cost_usd else ""
    return f"{totals.tokens:,} tokens{cost}"


def _counts(totals: UsageTotals) -> dict[str, Any]:
    return {"tokens": totals.tokens, "cost": totals.cost_usd}
