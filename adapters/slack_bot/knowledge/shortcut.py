"""The message shortcut "Add to knowledge" (admins, as /knowledge): the message's text, cited with its permalink, and
its files, read like any attached document and cited by name and page, become the workspace's knowledge. What was
said in a private channel stays readable only by its members. The admin is told what was added, privately. The
message is noted (adapters.shared.knowledge_sources.added) so that its edits and deletion are followed
(.feed): only from a channel the app is in, whose message events Slack sends it."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.shared.files.documents import DocumentRefused
from adapters.shared.knowledge_sources.added import Added
from adapters.shared.knowledge_sources.document_passages import document_passages, file_source, read_for_knowledge
from adapters.slack_bot.knowledge.command import NO_KNOWLEDGE, NOT_ADMIN
from adapters.slack_bot.knowledge.members import channel_members
from adapters.slack_bot.knowledge.messages import added_passage, added_source, message_key, permalink, scope_of
from adapters.slack_bot.knowledge.state import SlackKnowledge
from adapters.slack_bot.ports import Answerer
from adapters.slack_bot.reply.surfaces import Reach
from adapters.slack_bot.reply.text import escape_mrkdwn
from bot.errors import ReplyFailure
from bot.knowledge.opener import KnowledgeUnavailable
from bot.knowledge.passages import Passage
from bot.reply.render import failure_note

log = structlog.get_logger(__name__)

# The message shortcut's callback id, as in config/slack-app-manifest.yml.
ADD_TO_KNOWLEDGE = "add_to_knowledge"
NOT_FOLLOWED = (
    "I'm not in this channel, so I wouldn't see this message edited or deleted: invite me first (`/invite` and my "
    "name), then add it again."
)


class NotFollowed(Exception):
    """The app isn't in the message's channel: Slack sends it none of the channel's message events."""


class KnowledgeShortcut:
    def __init__(
        self,
        bot: Answerer,
        knowledge: SlackKnowledge,
        is_admin: Callable[[AsyncWebClient, str], Awaitable[bool]],
    ) -> None:
        self._bot = bot
        self._knowledge = knowledge
        self._is_admin = is_admin

    def register(self, app: AsyncApp) -> None:
        app.shortcut(ADD_TO_KNOWLEDGE)(self._on_add)

    async def _on_add(self, ack: Any, shortcut: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()
        user, channel = shortcut["user"]["id"], shortcut["channel"]["id"]
        reach = Reach.of(context, shortcut.get("team", {}).get("id", ""))
        try:
            said = await self._add(reach, user, shortcut)
        except ReplyFailure as failure:
            said = failure_note(failure)
        except KnowledgeUnavailable as unavailable:
            said = str(unavailable)
        await self._bot.tell_privately(reach.client, channel, user, said)

    async def _add(self, reach: Reach, user: str, shortcut: dict[str, Any]) -> str:
        if self._knowledge.opener is None:
            return NO_KNOWLEDGE
        if not await self._is_admin(reach.client, user):
            return NOT_ADMIN
        knowledge = await self._knowledge.opener.get()
        message, channel = shortcut.get("message") or {}, shortcut["channel"]
        if str(channel["id"]).startswith("D"):
            return "A direct message can't be made knowledge: post it in a channel first."
        try:
            readers = await self._readers(reach, str(channel["id"]))
        except NotFollowed:
            return NOT_FOLLOWED
        if readers is None:
            return "I can't read this channel's members, so I can't tell who may see what it says: nothing was added."
        added: list[str] = []
        passages: list[Passage] = []
        if str(message.get("text") or "").strip():
            passages.append(await self._message(reach, channel, message, readers))
            added.append("the message")
        refusals: list[str] = []
        for file in message.get("files") or []:
            try:
                passages += await self._file(reach, file, readers)
                added.append(escape_mrkdwn(str(file.get("name") or "a file")))
            except DocumentRefused as refused:
                refusals.append(str(refused))
        await self._note(reach.team, str(channel["id"]), message, passages)
        await knowledge.add(passages)
        log.info("slack_knowledge_added", team=reach.team, passages=len(passages), files=len(added) - 1)
        done = f"Added to this workspace's knowledge: {', '.join(added)}." if added else "Nothing here could be added."
        return " ".join([done, *refusals])

    async def _note(self, team: str, channel: str, message: dict[str, Any], passages: list[Passage]) -> None:
        """Note what the message becomes before it is added (adapters.shared.knowledge_sources.added): its deletion or
        edit is then followed wherever it is (.feed). Raises STORE_UNAVAILABLE: nothing is added then."""
        key = message_key(channel, str(message.get("ts") or ""))
        text = next((passage for passage in passages if passage.key == added_source(key)), None)
        sources = tuple(dict.fromkeys(passage.source for passage in passages))
        if sources:
            added = Added(sources, text.title, text.url, text.channel) if text else Added(sources)
            await self._bot.jobs.added.note(scope_of(team), key, added)

    async def _readers(self, reach: Reach, channel: str) -> str | None:
        """Who may read what the message says: "" (everyone in the workspace: a public channel), the channel
        (private: its members, kept from now on); None when Slack won't say. Raises NotFollowed where the app
        isn't a member: Slack wouldn't tell it of the message's edits and deletion."""
        try:
            info = (await reach.client.conversations_info(channel=channel))["channel"]
            if not info.get("is_member"):
                raise NotFollowed
            if not info.get("is_private"):
                return ""
            if not await self._knowledge.members.is_tracked(reach.team, channel):
                await self._knowledge.members.track(reach.team, channel, await channel_members(reach.client, channel))
        except SlackApiError as error:
            log.warning("slack_knowledge_readers_unknown", channel=channel, error=error.response.get("error"))
            return None
        return channel

    async def _message(self, reach: Reach, channel: dict[str, Any], message: dict[str, Any], readers: str) -> Passage:
        url = await permalink(reach.client, str(channel["id"]), str(message["ts"]))
        title = f"#{channel.get('name') or ''}"
        return added_passage(reach.team, str(channel["id"]), title, message, url, readers)

    async def _file(self, reach: Reach, file: dict[str, Any], readers: str) -> list[Passage]:
        attachment = self._bot.attachment(reach, file)
        document = await read_for_knowledge(attachment, self._bot.jobs.documents)
        scope = scope_of(reach.team)
        source = file_source(scope, attachment.name, str(file.get("id") or ""))
        return [
            dataclasses.replace(passage, channel=readers)
            for passage in document_passages(document, scope, source, time.time())
        ]
