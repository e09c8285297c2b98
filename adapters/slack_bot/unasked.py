"""Slack's piece of the help channels (adapters.shared.help_channels): a top-level channel message nobody addressed to
the bot, given as an `UnaskedMessage`; one answered is answered in its thread, as a mention is, if its first message
can be posted within RESPOND_MAX_DELAY_SECONDS of the message; a quota notice is shown to the person only."""

from __future__ import annotations

import re
from typing import Any, Protocol

from adapters.shared.help_channels import HelpChannels
from adapters.shared.platform_jobs import Kept
from adapters.shared.ratelimit import Budgets, RateLimits, Write
from adapters.slack_bot.buttons.helper_calls import SlackHelperCall
from adapters.slack_bot.knowledge.state import SlackKnowledge
from adapters.slack_bot.places.message_places import slack_places
from adapters.slack_bot.ports import Answerer
from adapters.slack_bot.reply.surfaces import Place, Reach
from bot.core import Turn
from bot.knowledge.passages import Access
from bot.respond.decision import Decision, Unprompted
from bot.state.forget import scope_of
from bot.usage.accounting import payer_of

# Mentions of people, user groups and the whole channel: none of them is something to answer.
_ANY_MENTION = re.compile(r"<[@!][^>]*>")
_PERSON = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")


class UnaskedHost(Answerer, Protocol):
    @property
    def knowledge(self) -> SlackKnowledge: ...

    async def first_delivery(self, body: dict[str, Any]) -> bool: ...

    async def access_of(self, reach: Reach, user: str, place: str) -> Access | None: ...

    async def answer_unasked(
        self, reach: Reach, event: dict[str, Any], decision: Decision, arrived: float, first_post: Write
    ) -> None: ...

    async def kept(self, place: Place, asked: str) -> Kept: ...


def to_someone_else(event: dict[str, Any], bot_user_id: str) -> bool:
    """A message that mentions other people and not the bot (Slack has no replies to one message in a thread)."""
    mentioned = set(_PERSON.findall(str(event.get("text", ""))))
    return bool(mentioned) and bot_user_id not in mentioned


class UnaskedAnswers:
    def __init__(self, host: UnaskedHost) -> None:
        self._host = host
        self._help_channels = HelpChannels(host.jobs, "slack")

    async def consider(self, reach: Reach, body: dict[str, Any], event: dict[str, Any], arrived: float) -> None:
        """Answer the message if its channel answers without a mention and the core decides it should."""
        await self._help_channels.consider(UnaskedSlackMessage(self._host, reach, body, event), arrived)


class UnaskedSlackMessage:
    """A Slack channel message as the help channels' flow takes it."""

    def __init__(self, host: UnaskedHost, reach: Reach, body: dict[str, Any], event: dict[str, Any]) -> None:
        self._host, self._reach, self._body, self._event = host, reach, body, event
        self._channel, self._user = str(event["channel"]), str(event["user"])
        self.places = slack_places(reach.team, self._channel)
        self.text = str(event.get("text", ""))
        self.refusal_key = f"slack:unasked:{reach.team}:{self._user}"

    def allowed(self) -> bool:
        return self._host.allowed(self._user, self._channel)

    async def first_delivery(self) -> bool:
        return await self._host.first_delivery(self._body)

    def unprompted(self) -> Unprompted:
        reach, event = self._reach, self._event
        return Unprompted(
            "slack",
            f"{reach.team}:{self._channel}",
            str(event.get("ts", "")),
            _ANY_MENTION.sub("", self.text).strip(),
            to_someone_else=to_someone_else(event, reach.bot_user_id),
            files=len(event.get("files", [])),
            payer=payer_of("slack", scope_of("slack", reach.team), self._user, self.places),
        )

    async def access(self) -> Access | None:
        return await self._host.access_of(self._reach, self._user, self._channel)

    def asker(self) -> Turn:
        team = self._reach.team
        return Turn("", self._user, "", "", channel=f"{team}:{self._channel}", workspace=team)

    async def kept(self) -> Kept:
        ts = str(self._event["ts"])
        return await self._host.kept(self._reach.place(self._channel, ts, self._user), ts)

    async def tell_privately(self, note: str) -> None:
        await self._host.tell_privately(self._reach.client, self._channel, self._user, note)

    def first_write(self) -> tuple[RateLimits, Budgets]:
        """Its answer's first message, among the channel's posts."""
        budgets = self._host.budgets(self._reach.team)
        return budgets.limits, (budgets.posts(self._channel),)

    async def answer(self, decision: Decision, arrived: float, first: Write) -> None:
        await self._host.answer_unasked(self._reach, self._event, decision, arrived, first)

    def helper_call(self) -> SlackHelperCall:
        """Its thread: the helpers are called under the message."""
        return SlackHelperCall(self._host, self._reach, self._channel, str(self._event["ts"]))
