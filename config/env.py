"""Typed readers for environment variables.

Every reader names the variable and what it expects when a value is invalid, so a
bad setting stops start-up with a message an operator can act on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")
# The readers below are named str, int, float and bool, which hides the builtins in the class body.
Text = str


class ConfigError(ValueError):
    """A setting is missing or has a value the bot cannot use."""


class Env:
    """A view of the environment (plus `.env`) with typed, validated readers."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(os.environ if values is None else values)

    def raw(self, name: str) -> str | None:
        value = self._values.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def str(self, name: str, default: str = "") -> str:
        value = self.raw(name)
        return default if value is None else value

    def optional_str(self, name: Text) -> Text | None:
        return self.raw(name)

    def int(self, name: Text, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        return self._number(name, default, int, "a whole number", minimum, maximum)

    def float(self, name: Text, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
        return self._number(name, default, float, "a number", minimum, maximum)

    def bool(self, name: Text, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{name}={value!r} is invalid: expected true or false")

    def id_set(self, name: Text) -> frozenset[Text]:
        """A comma-separated list of numeric or alphanumeric ids (Discord snowflakes, Slack ids)."""
        value = self.raw(name)
        if value is None:
            return frozenset()
        ids = [part.strip() for part in value.split(",") if part.strip()]
        for item in ids:
            if not item.isalnum():
                raise ConfigError(f"{name} contains {item!r}: expected a comma-separated list of ids")
        return frozenset(ids)

    def choice(self, name: Text, default: Text, choices: tuple[Text, ...]) -> Text:
        value = self.str(name, default)
        if value.lower() not in choices:
            raise ConfigError(f"{name}={value!r} is invalid: expected one of {', '.join(choices)}")
        return value.lower()

    def url(self, name: Text, default: Text | None, schemes: tuple[Text, ...]) -> Text | None:
        value = self.raw(name)
        if value is None:
            return default
        if not any(value.startswith(f"{scheme}://") for scheme in schemes):
            expected = " or ".join(f"{scheme}://…" for scheme in schemes)
            raise ConfigError(f"{name}={value!r} is invalid: expected a URL starting with {expected}")
        return value

    def _number(
        self,
        name: Text,
        default: T,
        parse: Callable[[Text], T],
        kind: Text,
        minimum: T | None,
        maximum: T | None,
    ) -> T:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = parse(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is invalid: expected {kind}") from None
        if minimum is not None and number < minimum:  # type: ignore[operator]  # T is int or float
            raise ConfigError(f"{name}={value!r} is invalid: expected {kind} ≥ {minimum}")
        if maximum is not None and number > maximum:  # type: ignore[operator]  # T is int or float
            raise ConfigError(f"{name}={value!r} is invalid: expected {kind} ≤ {maximum}")
        return number
