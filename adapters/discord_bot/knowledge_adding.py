"""What an admin gives the knowledge of their server: a file (/knowledge add), or a message with its files (the
message menu's "Add to knowledge"). Files are read in the platform jobs' isolated workers like any attached document
and cut into passages (adapters.jobs.knowledge_documents); the same file name added again replaces the old one."""

from __future__ import annotations

import time

import discord
import structlog

from adapters.discord_bot.files import attachment
from adapters.discord_bot.knowledge_feed import jump_link
from adapters.jobs.attachments import Attachment
from adapters.jobs.documents import DocumentReader, DocumentRefused
from adapters.jobs.knowledge_documents import document_passages, file_source, passage_texts, read_for_knowledge
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
    def __init__(self, documents: DocumentReader | None) -> None:
        self._documents = documents

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
        said: list[str] = []
        if message.content.strip():
            said.append(await self._add_text(knowledge, scope, message, message.guild.id))
        said += [await self.add_file(knowledge, scope, attachment(item)) for item in message.attachments]
        return said or ["That message has neither text nor files: nothing was added."]

    async def _add_text(self, knowledge: Knowledge, scope: str, message: discord.Message, guild_id: int) -> str:
        source = f"message:{message.id}"
        where = getattr(message.channel, "name", "") or "a channel"
        author = message.author.display_name
        title = f"{author} in #{where}"
        url = jump_link(guild_id, message.channel.id, message.id)
        updated = (message.edited_at or message.created_at).timestamp()
        pieces = passage_texts(f"{author}: {message.clean_content}")
        passages = [
            Passage(
                scope, source, f"{source}#{n}", text, title, url=url, author=str(message.author.id), updated_at=updated
            )
            for n, text in enumerate(pieces, 1)
        ]
        try:
            await knowledge.replace_source(scope, source, passages)
        except Exception as error:  # noqa: BLE001 - as in add_file
            log.error("knowledge_message_not_stored", scope=scope, message=message.id, error=str(error))
            return NOT_STORED
        return f"Added {author}'s message in #{where}."


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
