"""Slack's piece of the channels kept current as knowledge (adapters.shared.knowledge_sources.channel_feed): a new
message (thread replies too) in a channel that is knowledge becomes a passage within a moment, an edit replaces it
(message_changed), a deletion removes it (message_deleted); each event is handled by one process however many got it.
A message made knowledge with "Add to knowledge" is followed the same way in any channel (shared.knowledge_sources
.added). Who may read a private channel follows its members (.members)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp

from adapters.shared.knowledge_sources.added import Added, AddedFollower, AddedMessages
from adapters.shared.knowledge_sources.channel_feed import ChannelChange, ChannelFeed
from adapters.slack_bot.knowledge.members import follow_membership
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
from bot.knowledge.passages import Passage

EDITS = ("message_deleted", "message_changed")


class KnowledgeFeed:
    def __init__(
        self,
        knowledge: SlackKnowledge,
        first_to_claim: Callable[[str], Awaitable[bool]],
        added: AddedMessages | None = None,
    ) -> None:
        """`added`: the messages made knowledge with "Add to knowledge", followed in every channel."""
        self._knowledge = knowledge
        self._permalinks = Permalinks()
        self._feed = ChannelFeed("slack", knowledge.channels, knowledge.live, knowledge.opener, first_to_claim)
        opener = knowledge.opener
        self._added = AddedFollower(added, opener, first_to_claim, "slack_knowledge") if added and opener else None

    def register(self, app: AsyncApp) -> None:
        follow_membership(app, self._knowledge.members, knowledge_on=self._knowledge.opener is not None)

    async def on_message(self, body: dict[str, Any], event: dict[str, Any], reach: Reach) -> None:
        """A message event (any subtype) of a channel the bot is in: made knowledge if its channel is."""
        channel, message = str(event.get("channel") or ""), _changed(event)
        if self._knowledge.opener is None or not channel or event.get("channel_type") == "im":
            return
        if message.get("bot_id"):
            return  # a bot's message (our own replies being written, too) is never knowledge
        deleted = event.get("subtype") == "message_deleted"
        key = message_key(channel, str(event.get("deleted_ts") if deleted else message.get("ts")))
        event_id = body.get("event_id")
        claim = f"slack:knowledge:{reach.team}:{event_id}" if event_id else ""
        if self._added is not None and event.get("subtype") in EDITS:
            await self._follow_added(self._added, event, reach, channel, key, f"{reach.team}:{event_id or key}")
        if deleted:
            await self._feed.apply(ChannelChange(reach.team, scope_of(reach.team), channel, claim, (key,)))
        elif message.get("ts"):

            async def passage(title: str) -> Passage | None:
                if not indexable(message, reach.bot_user_id):
                    return None  # edited to nothing, say
                url = await self._permalinks.of(reach.client, reach.team, reach.enterprise, message, channel)
                return message_passage(reach.team, channel, title, message, url)

            await self._feed.apply(ChannelChange(reach.team, scope_of(reach.team), channel, claim, (key,), passage))

    async def _follow_added(
        self, added: AddedFollower, event: dict[str, Any], reach: Reach, channel: str, key: str, claim: str
    ) -> None:
        """A message made knowledge with "Add to knowledge" deleted (or left a tombstone) or edited."""
        message = _changed(event)
        deleted = event.get("subtype") == "message_deleted" or message.get("subtype") == "tombstone"
        if not deleted and (event.get("previous_message") or {}).get("text") == message.get("text"):
            return  # an unfurl, a reply counted, a reaction: its words are the same

        def text(noted: Added) -> list[Passage]:
            if not indexable(message, reach.bot_user_id):
                return []
            return [added_passage(reach.team, channel, noted.title, message, noted.url, noted.readers)]

        if deleted:
            await added.deleted(scope_of(reach.team), [key])
        else:
            await added.edited(scope_of(reach.team), key, added_source(key), f"slack:knowledge:added:{claim}", text)


def _changed(event: dict[str, Any]) -> dict[str, Any]:
    """The message an event is about: an edit's new message, else the event's own."""
    message: dict[str, Any] = (event.get("message") or {}) if event.get("subtype") == "message_changed" else event
    return message
