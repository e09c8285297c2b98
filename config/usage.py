"""Usage budgets and how long usage is kept: USER_DAILY_BUDGET (each person's, per UTC day), SERVER_MONTHLY_BUDGET
(each server's or workspace's, per UTC month) and USAGE_RETENTION_DAYS.

A budget is a number of tokens ("200000") or an amount in US dollars ("$5", "5 USD", "5usd", "$0.50"); unset or
empty, there is no limit. Money is counted from the models' prices (MODELS_FILE's `price:`, config.models.Price).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from config.env import ConfigError, Env

BudgetUnit = Literal["tokens", "usd"]
BUDGET_FORMS = "a whole number of tokens (200000) or an amount in USD ($5, 5 USD, 5usd, $0.50)"
DEFAULT_RETENTION_DAYS = 90

_NUMBER = r"(?P<number>\d{1,3}(?:,\d{3})+|\d+)(?P<fraction>\.\d+)?"
_TOKENS = re.compile(rf"{_NUMBER}(?:\s*tokens?)?", re.IGNORECASE)
_DOLLARS = (
    re.compile(rf"\$\s*{_NUMBER}(?:\s*usd)?", re.IGNORECASE),
    re.compile(rf"{_NUMBER}\s*usd", re.IGNORECASE),
)


@dataclass(frozen=True)
class Budget:
    """How much may be used in a budget's window: `amount` tokens, or `amount` US dollars."""

    amount: float
    unit: BudgetUnit

    def describe(self) -> str:
        """As people read it: "200,000 tokens", "$5.00"."""
        if self.unit == "tokens":
            return f"{round(self.amount):,} tokens"
        cents = round(self.amount * 100)
        if abs(self.amount * 100 - cents) < 1e-6:
            return f"${self.amount:,.2f}"
        return f"${self.amount:,.6f}".rstrip("0")  # less than a cent matters: "$0.005"

    @property
    def units(self) -> int:
        """The amount in the usage ledger's whole units: tokens, or micro-dollars (millionths of a US dollar)."""
        return round(self.amount) if self.unit == "tokens" else round(self.amount * 1_000_000)


@dataclass(frozen=True)
class UsageSettings:
    user_daily_budget: Budget | None = None  # None: no limit
    server_monthly_budget: Budget | None = None  # None: no limit
    retention_days: int = DEFAULT_RETENTION_DAYS  # days the per-day usage counters are kept


@dataclass(frozen=True)
class PlaceBudget:
    """What one place sets (`/budget`, CHANNELS_FILE's `budget:` with `person_daily:` and/or `monthly:`): each
    person's budget per day there, and the place's own per month (None: not set). Kept in Redis as JSON
    {"person_daily": "20000", "monthly": "$5"}."""

    person_daily: Budget | None = None
    monthly: Budget | None = None

    def to_json(self) -> str:
        return json.dumps({name: _written(budget) for name, budget in self._fields() if budget is not None})

    @classmethod
    def from_json(cls, raw: object) -> PlaceBudget:
        """What was stored (a budget that no longer parses is left out, never raised)."""
        try:
            fields = json.loads(str(raw)) if raw else {}
            return cls(_parsed(fields.get("person_daily")), _parsed(fields.get("monthly")))
        except (ValueError, TypeError, AttributeError, ConfigError):
            return cls()

    @property
    def empty(self) -> bool:
        return self.person_daily is None and self.monthly is None

    def _fields(self) -> tuple[tuple[str, Budget | None], ...]:
        return (("person_daily", self.person_daily), ("monthly", self.monthly))


def usage_settings(env: Env) -> UsageSettings:
    return UsageSettings(
        user_daily_budget=_env_budget(env, "USER_DAILY_BUDGET"),
        server_monthly_budget=_env_budget(env, "SERVER_MONTHLY_BUDGET"),
        retention_days=env.int("USAGE_RETENTION_DAYS", DEFAULT_RETENTION_DAYS, minimum=1),
    )


def _env_budget(env: Env, name: str) -> Budget | None:
    value = env.raw(name)
    return None if value is None else parse_budget(value, name)


def parse_budget(text: str, where: str) -> Budget | None:
    """A budget as an operator or an admin writes it; None for empty text (no limit). ConfigError, starting with
    `where` (what names the setting: "USER_DAILY_BUDGET", "CHANNELS_FILE='c.yml', servers '1': field 'budget'"),
    for anything else, with the accepted forms."""
    written = text.strip()
    if not written:
        return None
    tokens = _TOKENS.fullmatch(written)
    if tokens is not None:
        if tokens.group("fraction"):
            raise ConfigError(f"{where}: {text!r} is not a budget: tokens are whole; expected {BUDGET_FORMS}")
        return _positive(Budget(float(_digits(tokens)), "tokens"), text, where)
    for form in _DOLLARS:
        dollars = form.fullmatch(written)
        if dollars is not None:
            amount = float(_digits(dollars) + (dollars.group("fraction") or ""))
            return _positive(Budget(amount, "usd"), text, where)
    raise ConfigError(f"{where}: {text!r} is not a budget: expected {BUDGET_FORMS}, or nothing for no limit")


def _digits(found: re.Match[str]) -> str:
    return found.group("number").replace(",", "")


def _positive(budget: Budget, text: str, where: str) -> Budget:
    # 0 would allow nothing at all: more likely a "no limit" written as elsewhere in .env (USER_TURNS_PER_MINUTE=0).
    if budget.units <= 0:
        raise ConfigError(
            f"{where}: {text!r} is not a budget: it would allow nothing; leave it empty for no limit, "
            f"or give {BUDGET_FORMS}"
        )
    return budget


def _written(budget: Budget) -> str:
    return str(budget.units) if budget.unit == "tokens" else f"${budget.amount}"


def _parsed(text: object) -> Budget | None:
    return parse_budget(str(text), "budget") if text else None
