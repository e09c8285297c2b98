"""Slack's message events and what each starts: a mention, a DM's top level and a message in the bot's thread are
answered (once, however often Slack delivers them), a top-level message in a channel that answers without a mention
is considered (.unasked), and a channel's messages go to its knowledge as well (.knowledge.feed). DM threads' messages
come through the assistant panel (.assistant). A solved help thread's accepted answer edited or deleted changes what
the thread taught (adapters.shared.helpdesk.solving)."""

from __future__ import annotations

import time
from typing import Any, Protocol

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError

from adapters.shared.helpdesk.solving import Solving
from adapters.slack_bot.buttons.helper_calls import stays_out_of
from adapters.slack_bot.knowledge.feed import EDITS, KnowledgeFeed
from adapters.slack_bot.knowledge.members import CONVERSIONS, follow_conversion
from adapters.slack_bot.knowledge.messages import scope_of
from adapters.slack_bot.knowledge.state import SlackKnowledge
from adapters.slack_bot.ports import Answerer
from adapters.slack_bot.recent import plain_text
from adapters.slack_bot.reply.surfaces import Reach
from adapters.slack_bot.unasked import UnaskedAnswers, to_someone_else
from bot.errors import ReplyFailure
from bot.reply.render import failure_note

log = structlog.get_logger(__name__)


class MessageHost(Answerer, Protocol):
    @property
    def knowledge(self) -> SlackKnowledge: ...

    async def first_delivery(self, body: dict[str, Any]) -> bool: ...

    async def start_turn(self, reach: Reach, event: dict[str, Any], thread_ts: str | None) -> None: ...


def thread_link(team: str, channel: str, thread_ts: str) -> str:
    """The key that links a thread to the conversation the bot answers in it."""
    return f"slack:thread:{team}:{channel}:{thread_ts}"


class MessageEvents:
    def __init__(
        self, host: MessageHost, feed: KnowledgeFeed, unasked: UnaskedAnswers, solving: Solving | None = None
    ) -> None:
        """`solving`: solved help threads, whose accepted answers' edits and deletion it follows."""
        self._host = host
        self._jobs = host.jobs
        self._feed = feed
        self._unasked = unasked
        self._solving = solving

    def register(self, app: AsyncApp) -> None:
        app.event("app_mention")(self._on_mention)
        app.event("message")(self._on_message)

    async def _on_mention(self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        thread_ts = event.get("thread_ts") or event["ts"]
        reach = Reach.of(context, body.get("team_id") or event.get("team", ""))
        if await self._host.first_delivery(body):
            await self._host.start_turn(reach, event, thread_ts)

    async def _on_message(self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        arrived = time.monotonic()
        reach = Reach.of(context, body.get("team_id") or event.get("team", ""))
        if self._host.knowledge.opener is not None and event.get("channel_type") != "im":
            self._jobs.spawn(self._feed.on_message(body, event, reach))  # a channel's message may be knowledge
            if event.get("subtype") in CONVERSIONS:  # made private or public: who reads its knowledge changes
                self._jobs.spawn(follow_conversion(*self._host.knowledge.privacy, reach.client, reach.team, event))
        if self._solving is not None and event.get("subtype") in EDITS and event.get("channel_type") != "im":
            self._jobs.spawn(self._follow_answer(self._solving, body, reach, event))
        if (
            event.get("subtype", "file_share") != "file_share"
            or event.get("bot_id")
            or event.get("user") in (None, reach.bot_user_id)
        ):
            return  # edits, deletions, joins, bots and our own messages never get a reply
        if event.get("channel_type") == "im":  # a DM's top level (its threads' messages come via .assistant)
            if await self._host.first_delivery(body):
                await self._host.start_turn(reach, event, event.get("thread_ts"))
            return
        thread_ts = event.get("thread_ts")
        if f"<@{reach.bot_user_id}>" in event.get("text", ""):
            return  # a mention (handled as app_mention)
        if thread_ts is None:  # a top-level channel message: answered where the channel answers without a mention
            await self._unasked.consider(reach, body, event, arrived)
            return
        elsewhere = to_someone_else(event, reach.bot_user_id)  # people in the bot's thread talking to each other
        try:
            ours = await self._jobs.resolve(thread_link(reach.team, event["channel"], thread_ts)) is not None
        except ReplyFailure as failure:
            # Without Redis, Slack's copy of the thread tells whether the bot is part of it: if so,
            # the person learns why no answer comes.
            log.warning("slack_thread_unknown_while_redis_is_down", channel=event["channel"])
            if not elsewhere and await self._wrote_in(reach, event["channel"], thread_ts):
                await self._tell(reach, event["channel"], thread_ts, failure_note(failure))
            return
        if ours and await stays_out_of(self._host, reach, event, thread_ts):
            return  # a thread handed to the helpers, or where one wrote: theirs unless the bot is mentioned
        if ours and not elsewhere and await self._host.first_delivery(body):
            await self._host.start_turn(reach, event, thread_ts)

    async def _follow_answer(self, solving: Solving, body: dict[str, Any], reach: Reach, event: dict[str, Any]) -> None:
        """A message edited or deleted, in one process: if it is a solved thread's accepted answer, the thread's
        knowledge follows."""
        event_id = body.get("event_id")
        if not event_id or await self._jobs.first_to_claim(f"slack:solved-edit:{reach.team}:{event_id}"):
            await follow_answer(solving, reach, event)

    async def _wrote_in(self, reach: Reach, channel: str, thread_ts: str) -> bool:
        """Whether the bot has a message in the thread (asked of Slack, for when Redis can't say)."""
        try:
            response = await reach.client.conversations_replies(channel=channel, ts=thread_ts, limit=200)
        except SlackApiError as error:
            log.warning("slack_thread_not_read", error=error.response.get("error"))
            return False
        messages: list[dict[str, Any]] = response.get("messages", [])
        return any(message.get("user") == reach.bot_user_id for message in messages)

    async def _tell(self, reach: Reach, channel: str, thread_ts: str | None, text: str) -> None:
        try:
            await reach.client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text)
        except SlackApiError as error:
            log.warning("slack_notice_not_sent", error=error.response.get("error"))


async def follow_answer(solving: Solving, reach: Reach, event: dict[str, Any]) -> None:
    """A message edited or deleted: if it is a solved thread's accepted answer, the thread's knowledge follows (one
    Redis look for any other message)."""
    scope = scope_of(reach.team)
    if event.get("subtype") == "message_deleted":
        await solving.answers_gone(scope, [str(event.get("deleted_ts") or "")], "deleted")
        return
    message, before = event.get("message") or {}, event.get("previous_message") or {}
    if message.get("subtype") == "tombstone":
        await solving.answers_gone(scope, [str(message.get("ts") or "")], "deleted")
    elif message.get("text") != before.get("text"):  # not an unfurl, a reply counted, a reaction
        await solving.answer_edited(scope, str(message.get("ts") or ""), plain_text(str(message.get("text") or ""), {}))
