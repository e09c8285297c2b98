"""A help channel's Slack thread as a solved thread's knowledge sees it (adapters.shared.solved_threads): its question
(the first message, with the asker's follow-ups before the answer), its title, its permalink and who may read it, and
the message that answered it. One conversations.replies page up to the answer (latest=its ts, inclusive: the parent
first), of SLACK_HISTORY_TIER's size; a thread longer than a page before its answer is read a page a minute at most
where Slack limits the app so (a ✅ on a late message: the Solved button and the shortcut bring their message)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError

from adapters.shared.solved_threads import Answer, HelpThread
from adapters.slack_bot.knowledge.members import channel_members
from adapters.slack_bot.knowledge.messages import permalink, scope_of
from adapters.slack_bot.knowledge.state import SlackKnowledge
from adapters.slack_bot.ports import Answerer
from adapters.slack_bot.recent import plain_text
from adapters.slack_bot.reply.surfaces import Reach

log = structlog.get_logger(__name__)

QUESTION_CHARS = 2_000  # the question kept: the first message and the asker's follow-ups, cut to this
TITLE_CHARS = 80  # the question's first line in the thread's title
MAX_PAGES = 4  # a thread's pages read to find a reacted message (a page a minute where Slack limits the app)

Message = dict[str, Any]


class Unread(Exception):
    """Slack wouldn't give the thread or its channel (the app isn't in it, a scope is missing)."""


@dataclass(frozen=True)
class Read:
    """What a thread read up to its answer holds: its parent first, the answer (None: not found) and its ts."""

    messages: list[Message]
    answer: Message | None

    @property
    def parent(self) -> Message:
        return self.messages[0]

    @property
    def in_thread(self) -> bool:
        """Whether the answer is a reply in a thread (not its question, not a message without replies)."""
        thread_ts = self.parent.get("thread_ts")
        return bool(thread_ts) and self.answer is not None and self.answer.get("ts") != self.parent.get("ts")


class HelpThreads:
    """Help threads read from Slack for the app's `host`, their private channels' readers kept in `knowledge`."""

    def __init__(self, host: Answerer, knowledge: SlackKnowledge) -> None:
        self._host, self._knowledge = host, knowledge

    async def read(self, reach: Reach, channel: str, answer_ts: str, known: Message | None = None) -> Read:
        """The thread of the message `answer_ts` up to it (`known`: the message as the click or the shortcut brought
        it, kept when the pages read don't reach it). Raises Unread."""
        pages = 1 if known is not None else MAX_PAGES
        messages: list[Message] = []
        cursor = ""
        for _ in range(pages):
            try:
                response = await reach.client.conversations_replies(
                    channel=channel,
                    ts=answer_ts,
                    latest=answer_ts,
                    inclusive=True,
                    limit=self._host.settings.history.messages_per_request,
                    cursor=cursor or None,
                )
            except SlackApiError as error:
                log.warning("slack_help_thread_unread", channel=channel, error=error.response.get("error"))
                raise Unread from None
            messages += response.get("messages") or []
            cursor = str((response.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor or any(message.get("ts") == answer_ts for message in messages):
                break
        if not messages:
            raise Unread
        found = next((message for message in messages if message.get("ts") == answer_ts), known)
        return Read(messages, found)

    async def thread(self, reach: Reach, channel: str, read: Read) -> HelpThread:
        """The thread as knowledge keeps it. Raises Unread."""
        parent = read.parent
        thread_ts, asker = str(parent.get("ts") or ""), str(parent.get("user") or "")
        answer_ts = float(str((read.answer or {}).get("ts") or "inf"))
        asked = [parent] + [
            message
            for message in read.messages[1:]
            if message.get("user") == asker and float(str(message.get("ts") or 0)) < answer_ts
        ]
        question = "\n".join(plain_text(str(message.get("text") or ""), {}).strip() for message in asked).strip()
        if len(question) > QUESTION_CHARS:
            question = question[: QUESTION_CHARS - 1].rstrip() + "…"
        name, readers = await self._channel(reach, channel)
        first_line = question.splitlines()[0] if question else ""
        if len(first_line) > TITLE_CHARS:
            first_line = first_line[: TITLE_CHARS - 1].rstrip() + "…"
        return HelpThread(
            scope=scope_of(reach.team),
            channel=channel,
            thread=thread_ts,
            asker=asker,
            question=question,
            title=f"#{name} \u203a {first_line}",
            url=await permalink(reach.client, channel, thread_ts),
            readers=readers,
            asked_at=float(thread_ts or 0),
        )

    async def answer(self, reach: Reach, read: Read, *, helper: bool) -> Answer:
        """The answer as knowledge cites it: the bot's (its messages in a row, a long answer's parts) or a person's
        (`helper`: one of the channel's helpers)."""
        message = read.answer or {}
        ts, author = str(message.get("ts") or ""), str(message.get("user") or "")
        if author == reach.bot_user_id:
            return Answer(ts, "", "the bot", _bots_answer(read, reach.bot_user_id), True)
        name = await self._host.display_name_of(reach.client, reach.team, author) if author else "someone"
        return Answer(ts, author, name or author, plain_text(str(message.get("text") or ""), {}).strip(), helper)

    async def _channel(self, reach: Reach, channel: str) -> tuple[str, str]:
        """The channel's name and who may read its threads: "" everyone (a public channel), the channel (a private
        one: its members, kept from now on, as for "Add to knowledge"). Raises Unread."""
        try:
            info = (await reach.client.conversations_info(channel=channel))["channel"]
            if not info.get("is_private"):
                return str(info.get("name") or channel), ""
            if not await self._knowledge.members.is_tracked(reach.team, channel):
                await self._knowledge.members.track(reach.team, channel, await channel_members(reach.client, channel))
        except SlackApiError as error:
            log.warning("slack_help_channel_unknown", channel=channel, error=error.response.get("error"))
            raise Unread from None
        return str(info.get("name") or channel), channel


def _bots_answer(read: Read, bot_user_id: str) -> str:
    """The bot's answer ending with `read.answer`: its messages in a row before it (a long answer's parts)."""
    ts = (read.answer or {}).get("ts")
    index = next((i for i, message in enumerate(read.messages) if message.get("ts") == ts), None)
    if index is None:
        return plain_text(str((read.answer or {}).get("text") or ""), {}).strip()
    start = index
    while start > 1 and read.messages[start - 1].get("user") == bot_user_id:
        start -= 1
    parts = (plain_text(str(message.get("text") or ""), {}).strip() for message in read.messages[start : index + 1])
    return "\n".join(part for part in parts if part)
