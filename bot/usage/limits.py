"""Which budgets apply to a turn: each person's per day (USER_DAILY_BUDGET, or the most specific place that sets its
own), and per month the server's or workspace's (SERVER_MONTHLY_BUDGET, or its own) and a channel's own, if set
(config.usage.PlaceBudget: `/budget`, CHANNELS_FILE's `budget:`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.state.personas import Place
from config.usage import Budget, PlaceBudget, UsageSettings


@dataclass(frozen=True)
class Limit:
    """A budget that applies: `key` names its counter and window kind, `who` says whose it is as people read it
    ("your daily budget", "this server's monthly budget"), `source` where it was set."""

    key: str  # "person:<person>" (per day) or "place:<place key>" (per month)
    budget: Budget
    who: str
    source: str

    @property
    def daily(self) -> bool:
        return self.key.startswith("person:")


def turn_limits(
    settings: UsageSettings, places: Sequence[Place], set_here: Sequence[PlaceBudget], person: str
) -> tuple[Limit, ...]:
    """The budgets of a turn by `person` in `places` (most specific first), `set_here` being what each place sets."""
    limits: list[Limit] = []
    set_here = [*set_here, *(PlaceBudget() for _ in range(len(places) - len(set_here)))]  # none known: none set
    daily, source = settings.user_daily_budget, "USER_DAILY_BUDGET"
    for place, budget in zip(places, set_here, strict=True):
        if budget.person_daily is not None:
            daily, source = budget.person_daily, f"this {_kind(place)}"
            break
    if daily is not None:
        limits.append(Limit(f"person:{person}", daily, "your daily budget", source))
    for place, budget in zip(places, set_here, strict=True):
        monthly, source = budget.monthly, f"this {_kind(place)}"
        if monthly is None and place.kind == "server":
            monthly, source = settings.server_monthly_budget, "SERVER_MONTHLY_BUDGET"
        if monthly is not None and place.kind in ("server", "channel"):
            who = f"this {_kind(place)}'s"
            limits.append(Limit(f"place:{place.key}", monthly, f"{who} monthly budget", source))
    return tuple(limits)


def _kind(place: Place) -> str:
    """How people call the place: a Slack "server" is its workspace."""
    return "workspace" if place.platform == "slack" and place.kind == "server" else place.kind
