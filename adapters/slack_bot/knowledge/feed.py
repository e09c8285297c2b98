"""Slack's piece of the channels kept current as knowledge (adapters.shared.knowledge_sources.channel_feed): a new
message (thread replies too) in a channel that is knowledge becomes a passage within a moment, an edit replaces it
(message_changed), a deletion removes it (message_deleted); each event is handled by one process however many got it.
A message made knowledge with "Add to knowledge" is followed the same way in any channel. People joining or leaving
a private channel that holds knowledge change who may read it (member_joined_channel / member_left_channel)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from adapters.shared.knowledge_sources.added import Added, AddedMessages
from adapters.shared.knowledge_sources.channel_feed import ChannelChange, ChannelFeed
from adapters.slack_bot.knowledge.messages import (
    Permalinks,
    added_passage,
    added_source,
    indexable,
    message_key,
    message_passage,
    scope_of,
)
from adapters.slack_bot.knowledge.state import SlackKnowledge
from adapters.slack_bot.reply.surfaces import Reach
from bot.errors import ReplyFailure
from bot.knowledge.passages import Passage

log = structlog.get_logger(__name__)


class KnowledgeFeed:
    def __init__(
        self,
        knowledge: SlackKnowledge,
        first_to_claim: Callable[[str], Awaitable[bool]],
        added: AddedMessages | None = None,
    ) -> None:
        """`added`: the messages made knowledge with "Add to knowledge", followed in every channel."""
        self._knowledge = knowledge
        self._claim = first_to_claim
        self._added = added
        self._permalinks = Permalinks()
        self._feed = ChannelFeed("slack", knowledge.channels, knowledge.live, knowledge.opener, first_to_claim)

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
        if self._added is not None and event.get("subtype") in ("message_deleted", "message_changed"):
            await self._follow_added(self._added, body, event, reach, channel)
        change = self._change(body, event, reach, channel)
        if change is not None:
            await self._feed.apply(change)

    def _change(self, body: dict[str, Any], event: dict[str, Any], reach: Reach, channel: str) -> ChannelChange | None:
        """The event as the channels' feed takes it: a deletion, or a message posted or edited (None: no message)."""
        event_id = body.get("event_id")
        claim = f"slack:knowledge:{reach.team}:{event_id}" if event_id else ""
        scope = scope_of(reach.team)
        if event.get("subtype") == "message_deleted":
            key = message_key(channel, str(event.get("deleted_ts")))
            return ChannelChange(reach.team, scope, channel, claim, (key,))
        message = _changed(event)
        if not message.get("ts"):
            return None

        async def passage(title: str) -> Passage | None:
            if not indexable(message, reach.bot_user_id):
                return None  # edited to nothing, say
            url = await self._permalinks.of(reach.client, reach.team, reach.enterprise, message, channel)
            return message_passage(reach.team, channel, title, message, url)

        key = message_key(channel, str(message["ts"]))
        return ChannelChange(reach.team, scope, channel, claim, (key,), passage)

    async def _follow_added(
        self, added: AddedMessages, body: dict[str, Any], event: dict[str, Any], reach: Reach, channel: str
    ) -> None:
        """A message made knowledge with "Add to knowledge" was deleted (it leaves, with its files) or edited (its
        text is read again), in whatever channel it is."""
        scope, message = scope_of(reach.team), _changed(event)
        deleted = event.get("subtype") == "message_deleted" or message.get("subtype") == "tombstone"
        ts = event.get("deleted_ts") if event.get("subtype") == "message_deleted" else message.get("ts")
        key = message_key(channel, str(ts))
        try:
            if deleted:
                await self._forget_added(scope, await added.take(scope, [key]))
                return
            if (event.get("previous_message") or {}).get("text") == message.get("text"):
                return  # an unfurl, a reply counted, a reaction: its words are the same
            if await added.of(scope, key) is None:  # most edits: one look in Redis
                return
            if not await self._claim(f"slack:knowledge:added:{reach.team}:{body.get('event_id') or key}"):
                return
            knowledge = await self._knowledge.opener.get() if self._knowledge.opener else None
            noted = await added.still_known(knowledge, scope, key, added_source(key)) if knowledge else None
            if knowledge is None or noted is None:
                return  # its text was removed from knowledge since: an edit doesn't bring it back
            if indexable(message, reach.bot_user_id):
                passage = added_passage(reach.team, channel, noted.title, message, noted.url, noted.readers)
                await knowledge.add([passage])
            else:  # edited to nothing: its text leaves, its files stay
                await knowledge.forget_source(scope, added_source(key))
        except Exception as error:  # noqa: BLE001 - Redis or the engine: the operator is told
            log.error("slack_knowledge_added_change_lost", channel=channel, deleted=deleted, error=str(error))
            return
        log.info("slack_knowledge_added_message_edited", channel=channel)

    async def _forget_added(self, scope: str, taken: list[Added]) -> None:
        sources = [source for added in taken for source in added.sources]
        if not sources or self._knowledge.opener is None:
            return
        knowledge = await self._knowledge.opener.get()
        removed = 0
        for source in sources:
            try:
                removed += await knowledge.forget_source(scope, source)
            except Exception as error:  # noqa: BLE001 - the engine failed: the operator is told what is left
                log.error("slack_knowledge_added_message_not_removed", scope=scope, source=source, error=str(error))
        log.info("slack_knowledge_added_message_deleted", scope=scope, sources=len(sources), removed=removed)

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
