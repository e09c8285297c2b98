"""CHANNELS_FILE: the operator's per-channel and per-server settings (a YAML file), each checked field by field; an
error names the file, the entry and the field.

    channels:
      "1234567890":            # a Discord channel id, or a Slack channel id
        persona: You are the helpdesk of {server}. Today is {date}.
        model: mistral-small   # the model of its new conversations (an id or name from the models offered)
        tools: false           # whether tools are offered there
        respond: questions     # mentions (the default), questions or all: what it answers unasked
        helpers: "555"         # who a thread is handed to: a Discord role id; Slack user ids or a user group id
        budget:                # usage limits (tokens, or USD: $5), beside USER_DAILY_BUDGET / SERVER_MONTHLY_BUDGET
          person_daily: 20000  # each person's per day here
          monthly: $10         # this channel's (or server's) own per month
    servers:
      "9876543210":            # a Discord server (guild) id, or a Slack workspace (team) id
        persona: You are a game master.

Every field is optional; a channel's beats its server's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]  # stubs (types-PyYAML) are optional

from config.env import ConfigError, Env
from config.usage import BUDGET_FORMS, PlaceBudget, parse_budget

PERSONA_MAX_CHARS = 4_000
SECTIONS = ("channels", "servers")


FIELDS = ("persona", "model", "tools", "respond", "budget", "helpers")
BUDGET_FIELDS = ("person_daily", "monthly")
RESPOND_MODES = ("mentions", "questions", "all")
HELPER_ID = re.compile(r"[A-Z0-9]{1,30}")


@dataclass(frozen=True)
class PlaceFile:
    """Settings by place kind ("channel", "server") and id: "persona", "model" (a model's id or name), "tools"
    ("on" or "off"), "respond" (one of RESPOND_MODES)."""

    settings: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def persona(self, kind: str, place_id: str) -> str | None:
        return self.setting(kind, place_id, "persona")

    def setting(self, kind: str, place_id: str, name: str) -> str | None:
        return self.settings.get((kind, place_id), {}).get(name)

    def models(self) -> dict[str, str]:
        """Each entry's model, by where it is said ("channels '123'"), to check against the models offered."""
        return {
            f"{kind}s {place_id!r}": fields["model"]
            for (kind, place_id), fields in self.settings.items()
            if "model" in fields
        }


def load_places(env: Env) -> PlaceFile:
    path = env.optional_str("CHANNELS_FILE")
    if path is None:
        return PlaceFile()
    where = f"CHANNELS_FILE={path!r}"
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise ConfigError(f"{where}: can't read it: {error.strerror or error}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{where}: not valid YAML: {error}") from error
    if not isinstance(data, dict) or set(data) - set(SECTIONS):
        raise ConfigError(f"{where}: expected 'channels:' and/or 'servers:', each mapping ids to settings")
    settings: dict[tuple[str, str], dict[str, str]] = {}
    for section in SECTIONS:
        entries = data.get(section) or {}
        if not isinstance(entries, dict):
            raise ConfigError(f"{where}: '{section}' must map ids to settings")
        for place_id, fields in entries.items():
            settings[(section.removesuffix("s"), str(place_id))] = _settings(fields, f"{where}, {section} {place_id!r}")
    return PlaceFile(settings)


def _settings(fields: Any, where: str) -> dict[str, str]:
    if not isinstance(fields, dict) or not fields or set(fields) - set(FIELDS):
        raise ConfigError(f"{where}: expected settings among {', '.join(FIELDS)}")
    settings: dict[str, str] = {}
    if "persona" in fields:
        settings["persona"] = _persona(fields["persona"], where)
    if "model" in fields:
        model = fields["model"]
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"{where}: field 'model': expected a model's id or name")
        settings["model"] = model.strip()
    if "tools" in fields:
        if not isinstance(fields["tools"], bool):
            raise ConfigError(f"{where}: field 'tools': expected true or false")
        settings["tools"] = "on" if fields["tools"] else "off"
    if "respond" in fields:
        if fields["respond"] not in RESPOND_MODES:
            raise ConfigError(f"{where}: field 'respond': expected one of {', '.join(RESPOND_MODES)}")
        settings["respond"] = fields["respond"]
    if "helpers" in fields:
        settings["helpers"] = _helpers(fields["helpers"], f"{where}: field 'helpers'")
    if "budget" in fields:
        settings["budget"] = _budget(fields["budget"], f"{where}: field 'budget'")
    return settings


def _budget(budget: Any, where: str) -> str:
    """`budget:`'s mapping, checked, as Redis keeps a place's (PlaceBudget's JSON)."""
    if not isinstance(budget, dict) or not budget or set(budget) - set(BUDGET_FIELDS):
        raise ConfigError(f"{where}: expected {' and/or '.join(BUDGET_FIELDS)}, each a budget ({BUDGET_FORMS})")
    parsed = {name: parse_budget(str(value), f"{where}, {name}") for name, value in budget.items()}
    return PlaceBudget(parsed.get("person_daily"), parsed.get("monthly")).to_json()


def _helpers(helpers: Any, where: str) -> str:
    """`helpers:`'s ids (one, a list, or several in a string), as Redis keeps a place's: separated by spaces."""
    given = helpers if isinstance(helpers, list) else str(helpers).replace(",", " ").split()
    ids = [str(one).strip() for one in given]
    if not ids or not all(HELPER_ID.fullmatch(one) for one in ids):
        raise ConfigError(f"{where}: expected a Discord role's id, or Slack users' or a user group's ids")
    return " ".join(ids)


def _persona(persona: Any, where: str) -> str:
    if not isinstance(persona, str) or not persona.strip():
        raise ConfigError(f"{where}: field 'persona': expected the text of the system prompt")
    if len(persona) > PERSONA_MAX_CHARS:
        raise ConfigError(f"{where}: field 'persona': {len(persona):,} characters; at most {PERSONA_MAX_CHARS:,}")
    return persona.strip()
