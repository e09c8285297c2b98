"""CHANNELS_FILE: the operator's per-channel and per-server settings (a YAML file), each checked field by field; an
error names the file, the entry and the field.

    channels:
      "1234567890":            # a Discord channel id, or a Slack channel id
        persona: You are the helpdesk of {server}. Today is {date}.
    servers:
      "9876543210":            # a Discord server (guild) id, or a Slack workspace (team) id
        persona: You are a game master.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]  # stubs (types-PyYAML) are optional

from config.env import ConfigError, Env

PERSONA_MAX_CHARS = 4_000
SECTIONS = ("channels", "servers")


@dataclass(frozen=True)
class PlaceFile:
    """Personas by place kind ("channel", "server") and id."""

    personas: dict[tuple[str, str], str] = field(default_factory=dict)

    def persona(self, kind: str, place_id: str) -> str | None:
        return self.personas.get((kind, place_id))


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
    personas: dict[tuple[str, str], str] = {}
    for section in SECTIONS:
        entries = data.get(section) or {}
        if not isinstance(entries, dict):
            raise ConfigError(f"{where}: '{section}' must map ids to settings")
        for place_id, settings in entries.items():
            personas[(section.removesuffix("s"), str(place_id))] = _persona(
                settings, f"{where}, {section} {place_id!r}"
            )
    return PlaceFile(personas)


def _persona(settings: Any, where: str) -> str:
    if not isinstance(settings, dict) or set(settings) - {"persona"}:
        raise ConfigError(f"{where}: expected settings with 'persona'")
    persona = settings.get("persona")
    if not isinstance(persona, str) or not persona.strip():
        raise ConfigError(f"{where}: field 'persona': expected the text of the system prompt")
    if len(persona) > PERSONA_MAX_CHARS:
        raise ConfigError(f"{where}: field 'persona': {len(persona):,} characters; at most {PERSONA_MAX_CHARS:,}")
    return persona.strip()
