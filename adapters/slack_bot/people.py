"""Who asked: the name the bot calls them by, and whether they are a full member of the workspace or a guest, both
from the one users.info call the bot makes for a person (cached for an hour)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Person:
    name: str
    # False for a single- or multi-channel guest, who can read only the channels they were invited to; None when
    # Slack wasn't asked (a burst of new people) or didn't answer: then not taken for a full member either.
    member: bool | None = None

    @property
    def full_member(self) -> bool:
        return self.member is True


def person_from(info: dict[str, Any], user: str) -> Person:
    """users.info's `user` object as a Person."""
    profile = info.get("profile", {})
    name = profile.get("display_name") or profile.get("real_name") or info.get("name") or user
    guest = bool(info.get("is_restricted") or info.get("is_ultra_restricted"))
    return Person(str(name), member=not guest)
