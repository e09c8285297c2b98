"""Channels kept current as knowledge from Slack's events: a new message (thread replies too) in a channel that is
knowledge becomes a passage within a moment, an edit replaces it (message_changed), a deletion removes it
(message_deleted); each event is handled by one process however many got it. People joining or leaving a private
channel that holds knowledge change who may read it (member_joined_channel / member_left_channel)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from adapters.slack_bot.knowledge_messages import Permalinks, indexable, message_key, message_passage, scope_of
from adapters.slack_bot.knowledge_state import SlackKnowledge
from adapters.slack_bot.surfaces import Reach
from bot.errors import ReplyFailure
from bot.knowledge.opener import KnowledgeUnavailable
from bot.knowledge.service import Knowledge

log = structlog.get_logger(__name__)


class KnowledgeFeed:
    def __init__(self, knowledge: SlackKnowledge, first_to_claim: Callable[[str], Awaitable[bool]]) -> None:
        self._knowledge = knowledge
        self._claim = first_to_claim
        self._permalinks = Permalinks()

    def register(self, app: AsyncApp) -> None:
        app.event("member_joined_channel")(self._on_joined)
        app.event("member_left_channel")(self._on_left)
        app.event("group_left")(self._on_removed)

    async def on_message(self, body: dict[str, Any], event: dict[str, Any], reach: Reach) -> None:
        """A message event (any subtype) of a channel the bot is in: made knowledge if its channel is."""
        channel = str(event.get("channel") or "")
        if self._knowledge.opener is None or not channel or event.get("channel_type") == "im":
            return
        if _changed(event).get("bot_id"):
            return  # a bot's message (our own replies being written, too) is never knowledge
        try:
            title = (await self._knowledge.channels.channels(scope_of(reach.team))).get(channel)
            if title is None:
                return
            event_id = body.get("event_id")
            if event_id and not await self._claim(f"slack:knowledge:{reach.team}:{event_id}"):
                return  # another process has it
            knowledge = await self._knowledge.opener.get()
        except (ReplyFailure, KnowledgeUnavailable) as error:
            log.warning("slack_knowledge_message_lost", channel=channel, error=str(error))
            return
        await self._apply(knowledge, reach, channel, title, event)

    async def _apply(self, knowledge: Knowledge, reach: Reach, channel: str, title: str, event: dict[str, Any]) -> None:
        subtype = event.get("subtype")
        scope = scope_of(reach.team)
        if subtype == "message_deleted":
            key = message_key(channel, str(event.get("deleted_ts")))
            await self._knowledge.live.mark(reach.team, key)
            knowledge.forget_soon(scope, [key])
            return
        message = _changed(event)
        if not message.get("ts"):
            return
        await self._knowledge.live.mark(reach.team, message_key(channel, str(message["ts"])))
        if not indexable(message, reach.bot_user_id):
            knowledge.forget_soon(scope, [message_key(channel, str(message["ts"]))])  # edited to nothing, say
            return
        url = await self._permalinks.of(reach.client, reach.team, reach.enterprise, message, channel)
        knowledge.add_soon([message_passage(reach.team, channel, title, message, url)])

    async def _on_joined(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        await self._membership(context, event, joined=True)

    async def _on_left(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        await self._membership(context, event, joined=False)

    async def _on_removed(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """The bot was removed from a private channel: its membership can't be followed any more, so no one reads
        its knowledge until an admin runs /knowledge channel on there again (which reads its members anew)."""
        team, channel = str(context.team_id or ""), str(event.get("channel") or "")
        if team and channel:
            try:
                await self._knowledge.members.track(team, channel, ())
            except ReplyFailure as failure:
                log.error("slack_knowledge_membership_lost", channel=channel, detail=failure.detail)

    async def _membership(self, context: AsyncBoltContext, event: dict[str, Any], *, joined: bool) -> None:
        team = str(event.get("team") or context.team_id or "")
        channel, user = str(event.get("channel") or ""), str(event.get("user") or "")
        if not (team and channel and user) or self._knowledge.opener is None:
            return
        members = self._knowledge.members
        try:
            await (members.joined(team, channel, user) if joined else members.left(team, channel, user))
        except ReplyFailure as failure:
            log.error("slack_knowledge_membership_lost", channel=channel, joined=joined, detail=failure.detail)


def _changed(event: dict[str, Any]) -> dict[str, Any]:
    """The message an event is about: an edit's new message, else the event's own."""
    message: dict[str, Any] = (event.get("message") or {}) if event.get("subtype") == "message_changed" else event
    return message
