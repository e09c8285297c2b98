"""What a usage record and its sums are: one turn's tokens and cost (`Usage`), and a person's or a scope's over some
days (`UsageTotals`, by model), as the ledger (bot.usage.ledger) keeps and reads them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MICRO = 1_000_000  # micro-dollars in a US dollar
MODEL_FIELD = "m:"  # a day hash's per-model fields: m:<model>:<count>
COUNTS = ("prompt", "completion", "turns", "cost_micro", "unpriced")


@dataclass(frozen=True)
class Usage:
    """One answered turn: where (platform; scope: the server or workspace, e.g. "discord:123", "" for none such as a
    DM), who (person, e.g. "discord:42"; "" for the server's own use: its knowledge indexed), which model (its id),
    the tokens it read and wrote, what it cost in USD (None: the model has no price) and when (unix time)."""

    platform: str
    scope: str
    person: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    at: float
    turns: int = 1  # answers it counts as (0: a call that answered nothing, e.g. the help channels' router)


@dataclass(frozen=True)
class ModelUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    turns: int = 0
    cost_usd: float | None = None  # None: none of its turns had a price

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class UsageTotals:
    """A person's or a scope's usage over some days. `cost_usd` sums the priced turns only; `unpriced_turns` says how
    many turns it leaves out (their models have no price)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    turns: int = 0
    cost_usd: float = 0.0
    unpriced_turns: int = 0
    by_model: Mapping[str, ModelUsage] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def micro_dollars(usd: float) -> int:
    """US dollars in the budgets' money unit."""
    return round(usd * MICRO)


def summed_days(days: Sequence[Mapping[Any, Any]]) -> UsageTotals:
    totals: dict[str, int] = dict.fromkeys(COUNTS, 0)
    models: dict[str, dict[str, int]] = {}
    for fields in days:
        for raw_name, raw_value in fields.items():
            name, value = _text(raw_name), int(_text(raw_value))
            if name.startswith(MODEL_FIELD):
                model, _, count = name[len(MODEL_FIELD) :].rpartition(":")
                counts = models.setdefault(model, {})
                counts[count] = counts.get(count, 0) + value
            elif name in totals:
                totals[name] += value
    by_model = {
        model: ModelUsage(
            prompt_tokens=counts.get("prompt", 0),
            completion_tokens=counts.get("completion", 0),
            turns=counts.get("turns", 0),
            cost_usd=counts["cost_micro"] / MICRO if "cost_micro" in counts else None,
        )
        for model, counts in sorted(models.items())
    }
    return UsageTotals(
        prompt_tokens=totals["prompt"],
        completion_tokens=totals["completion"],
        turns=totals["turns"],
        cost_usd=totals["cost_micro"] / MICRO,
        unpriced_turns=totals["unpriced"],
        by_model=by_model,
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
