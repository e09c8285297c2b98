"""What an admin gives the knowledge of their server: a file (/knowledge add), or a message with its files (the
message menu's "Add to knowledge"). Files are read in the platform jobs' isolated workers like any attached document
and cut into passages (adapters.shared.knowledge_sources.document_passages); the same file name added again replaces
the old one. Each added message is noted (adapters.shared.knowledge_sources.added) and followed wherever it is
(AddedFollower): deleted, it leaves the knowledge with its files; edited, its text is read again."""

from __future__ import annotations

import time
from collections.abc import Collection

import discord
import structlog

from adapters.discord_bot.files import attachment
from adapters.discord_bot.knowledge.access import DiscordKnowledge, guild_scope
from adapters.discord_bot.knowledge.messages import jump_link, place_link
from adapters.shared.files.attachments import Attachment
from adapters.shared.files.documents import DocumentReader, DocumentRefused
from adapters.shared.knowledge_sources.added import Added, AddedMessages
from adapters.shared.knowledge_sources.added import AddedFollower as Follower
from adapters.shared.knowledge_sources.document_passages import (
    document_passages,
    file_source,
    passage_texts,
    read_for_knowledge,
)
from adapters.shared.platform_jobs import PlatformJobs
from bot.errors import ReplyFailure
from bot.knowledge.passages import Passage, Skipped
from bot.knowledge.service import Knowledge

log = structlog.get_logger(__name__)

NOT_STORED = "I couldn't store it in the knowledge just now: try again in a moment."
NOT_FOR_EVERYONE = (
    "This message is in a channel not everyone on this server can see, so I won't make it knowledge for the whole "
    "server. Use `/knowledge channel on` in that channel instead: then only those who can see it get answers from it."
)


def plural(number: int, one: str, many: str) -> str:
    return f"{number:,} {one if number == 1 else many}"


class KnowledgeAdding:
    def __init__(self, documents: DocumentReader | None, added: AddedMessages | None = None) -> None:
        """`added`: where the messages made knowledge are noted, so that their deletes and edits are followed."""
        self._documents = documents
        self._added = added

    async def add_file(self, knowledge: Knowledge, scope: str, file: Attachment) -> str:
        """Read `file` into the knowledge of `scope`; what the admin is told."""
        try:
            document = await read_for_knowledge(file, self._documents)
        except DocumentRefused as refused:
            log.info("knowledge_file_refused", scope=scope, file=file.name, reason=refused.reason)
            return str(refused)
        source = file_source(scope, file.name, "")
        passages = document_passages(document, scope, source, time.time())
        if not passages:
            return f'I found no text in "{file.name}", so nothing was added.'
        try:
            skipped = await knowledge.replace_source(scope, source, passages)
        except Exception as error:  # noqa: BLE001 - whatever the engine or embedder raised, the admin is told
            log.error("knowledge_file_not_stored", scope=scope, file=file.name, error=str(error))
            return NOT_STORED
        log.info("knowledge_file_added", scope=scope, file=file.name, passages=len(passages), skipped=len(skipped))
        shortened = len(document.parts) < document.total or not document.complete
        note = " (its beginning only: the rest is past what I read of one document)" if shortened else ""
        added = f'Added "{file.name}": {plural(len(passages) - len(skipped), "passage", "passages")}{note}.'
        return added + skipped_note(skipped)

    async def add_message(self, knowledge: Knowledge, scope: str, message: discord.Message) -> list[str]:
        """Add `message`'s text (with its link) and its files; a line for each, what the admin is told."""
        if message.guild is None or not seen_by_everyone(message.channel, message.guild):
            return [NOT_FOR_EVERYONE]
        if not await self._note(scope, message):
            return [NOT_STORED]
        said: list[str] = []
        if message.content.strip():
            said.append(await self.add_text(knowledge, scope, message, message.guild.id))
        said += [await self.add_file(knowledge, scope, attachment(item)) for item in message.attachments]
        return said or ["That message has neither text nor files: nothing was added."]

    async def _note(self, scope: str, message: discord.Message) -> bool:
        """Note what `message` becomes before it is added (a deletion arriving meanwhile finds it); False if Redis
        can't, and then nothing is added: its deletion couldn't be followed."""
        texts = [added_source(message.id)] if message.content.strip() else []
        files = [file_source(scope, item.filename, "") for item in message.attachments]
        if self._added is None or not (texts or files) or message.guild is None:
            return True
        link = jump_link(message.guild.id, message.channel.id, message.id)  # a deleted channel or thread: by link
        try:
            await self._added.note(scope, str(message.id), Added((*texts, *files), url=link))
        except ReplyFailure as failure:
            log.error("knowledge_message_not_noted", scope=scope, message=message.id, detail=failure.detail)
            return False
        return True

    async def add_text(self, knowledge: Knowledge, scope: str, message: discord.Message, guild_id: int) -> str:
        try:
            await knowledge.replace_source(scope, added_source(message.id), text_passages(scope, message, guild_id))
        except Exception as error:  # noqa: BLE001 - as in add_file
            log.error("knowledge_message_not_stored", scope=scope, message=message.id, error=str(error))
            return NOT_STORED
        return f"Added {message.author.display_name}'s message in #{_where(message)}."


class AddedFollower:
    """Messages added with "Add to knowledge", followed wherever they are (a channel that is knowledge or not) by the
    shared flow (adapters.shared.knowledge_sources.added): deleted (a channel or a thread too), the message leaves the
    knowledge with its files; edited, its text is read again."""

    def __init__(self, knowledge: DiscordKnowledge, jobs: PlatformJobs) -> None:
        opener = knowledge.opener
        self._follower = Follower(jobs.added, opener, jobs.first_to_claim, "knowledge") if opener else None

    async def on_delete(self, guild_id: int | None, message_ids: Collection[int]) -> None:
        if guild_id is not None and self._follower is not None and message_ids:
            await self._follower.deleted(guild_scope(guild_id), [str(message_id) for message_id in message_ids])

    async def on_place_delete(self, guild_id: int | None, place_id: int) -> None:
        """A channel or thread deleted (Discord names none of its messages): the messages added from it go."""
        if guild_id is not None and self._follower is not None:
            await self._follower.place_deleted(guild_scope(guild_id), f"{place_link(guild_id, place_id)}/")

    async def on_edit(self, event: discord.RawMessageUpdateEvent) -> None:
        edited, guild_id, message = event.data.get("edited_timestamp"), event.guild_id, event.message
        if guild_id is None or self._follower is None or not edited:  # an embed unfurled: no edit
            return
        scope = guild_scope(guild_id)

        def text(noted: Added) -> list[Passage]:
            return text_passages(scope, message, guild_id) if message.content.strip() else []

        claim = f"discord:knowledge:added-edit:{message.id}:{edited}"
        await self._follower.edited(scope, str(message.id), added_source(message.id), claim, text)


def text_passages(scope: str, message: discord.Message, guild_id: int) -> list[Passage]:
    """An added message's text as passages, titled after its author and channel, linked to it."""
    source, author = added_source(message.id), message.author.display_name
    title, url = f"{author} in #{_where(message)}", jump_link(guild_id, message.channel.id, message.id)
    updated = (message.edited_at or message.created_at).timestamp()
    pieces = passage_texts(f"{author}: {message.clean_content}")
    return [
        Passage(scope, source, f"{source}#{n}", text, title, url=url, author=str(message.author.id), updated_at=updated)
        for n, text in enumerate(pieces, 1)
    ]


def _where(message: discord.Message) -> str:
    return getattr(message.channel, "name", "") or "a channel"


def added_source(message_id: int) -> str:
    """The knowledge source of an added message's text."""
    return f"message:{message_id}"


def skipped_note(skipped: list[Skipped]) -> str:
    """What the admin is told of the passages the database refused (`/knowledge list` shows them too)."""
    if not skipped:
        return ""
    first = skipped[0]
    where = f"{first.passage.locator}: " if first.passage.locator else ""
    return f" {plural(len(skipped), 'passage was', 'passages were')} left out ({where}{first.reason})."


def seen_by_everyone(channel: object, guild: discord.Guild) -> bool:
    """Whether every member can see `channel` (a private thread never counts)."""
    if isinstance(channel, discord.Thread) and channel.type is discord.ChannelType.private_thread:
        return False
    if isinstance(channel, discord.abc.GuildChannel | discord.Thread):
        return channel.permissions_for(guild.default_role).view_channel
    return False
