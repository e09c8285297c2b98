"""How the bot answers in channels set to answer without a mention (`/respond questions|all`):
RESPOND_MAX_DELAY_SECONDS, the most a message waits for its answer to start before it gets none, and ROUTER_MODEL, the
model asked whether a question the knowledge doesn't cover is one the bot can answer (a model of the catalog, or an id
on the default's server); RESPOND_MIN_CONFIDENCE, the relevance below which a question the knowledge covers only weakly
goes to the channel's helpers, where it has some, instead of being guessed (unset: the embedding model's measured
default, bot.respond.decision.CONFIDENCE), and HELPERS_PINGS_PER_HOUR, how often a channel's helpers may be mentioned
in an hour."""

from __future__ import annotations

from dataclasses import dataclass

from config.env import ConfigError, Env


@dataclass(frozen=True)
class RespondSettings:
    max_delay_seconds: float = 30.0
    router_model: str | None = None  # None: no classifier step
    min_confidence: float | None = None  # None: the embedding model's measured default (bot.respond.decision)
    helper_pings_per_hour: int = 5


def respond_settings(env: Env) -> RespondSettings:
    router = env.optional_str("ROUTER_MODEL")
    confidence = (env.optional_str("RESPOND_MIN_CONFIDENCE") or "").strip()
    if router is not None and not router.strip():
        raise ConfigError("ROUTER_MODEL is empty: name a model (an id or a name from MODELS), or leave it unset")
    return RespondSettings(
        max_delay_seconds=env.float("RESPOND_MAX_DELAY_SECONDS", 30.0, minimum=1.0),
        router_model=router.strip() if router else None,
        min_confidence=None if not confidence else env.float("RESPOND_MIN_CONFIDENCE", 0.0, minimum=-1.0, maximum=1.0),
        helper_pings_per_hour=env.int("HELPERS_PINGS_PER_HOUR", 5, minimum=0),
    )
