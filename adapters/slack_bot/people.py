"""Who asked: the name the bot calls them by, and whether they are a full member of the workspace or a guest, both
from the one users.info call the bot makes for a person (People: cached for an hour)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.shared.ratelimit import RateLimits
from adapters.slack_bot.reply.surfaces import WorkspaceBudgets

log = structlog.get_logger(__name__)

# A renamed person keeps the old name in the bot's prompts for up to an hour, a member made a guest their access to
# the public channels' knowledge.
NAME_CACHE_SECONDS = 3600
# People's names kept in memory at most (about 3 MB; 100,000 would take 32 MB): the longest kept go first.
NAME_CACHE_SIZE = 10_000


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


class People:
    """Who people are, asked of Slack (users.info) on a spare lookup of the workspace's budget and kept for
    NAME_CACHE_SECONDS, the NAME_CACHE_SIZE latest at most."""

    def __init__(self, limits: RateLimits) -> None:
        self._limits = limits
        self._known: dict[tuple[str, str], tuple[float, Person]] = {}  # (team, user) → (until when, who)

    async def display_name_of(self, client: AsyncWebClient, team: str, user: str) -> str:
        """The name the bot calls `user` by ("someone" for no user)."""
        return (await self.person(client, team, user, WorkspaceBudgets(self._limits, team))).name if user else "someone"

    async def person(self, client: AsyncWebClient, team: str, user: str, budgets: WorkspaceBudgets) -> Person:
        cached = self._known.get((team, user))
        if cached and cached[0] > time.monotonic():
            return cached[1]
        charge = await self._limits.spare((budgets.lookups,))
        if charge is None:
            # Many new people at once: answer now under the user id rather than wait (or trip
            # users.info's limit) for a name; it is not cached, so a later message looks it up.
            log.info("slack_user_lookup_deferred", user=user)
            return Person(user)
        try:
            async with charge:
                response = await client.users_info(user=user)
            person = person_from(response["user"], user)
        except SlackApiError as error:
            log.warning("slack_user_lookup_failed", user=user, error=error.response.get("error"))
            person = Person(user)
        self._known.pop((team, user), None)  # an expired entry goes to the end with its new name
        self._known[(team, user)] = (time.monotonic() + NAME_CACHE_SECONDS, person)
        if len(self._known) > NAME_CACHE_SIZE:
            del self._known[next(iter(self._known))]
        return person
