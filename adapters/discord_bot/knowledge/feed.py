"""Discord's piece of the knowledge channels kept current (adapters.shared.knowledge_sources.channel_feed): a message
posted in a knowledge channel (or a public thread under one) becomes a passage within moments, an edit replaces it, a
delete removes it, as do a channel's or a thread's deletion. People's messages only: never a bot's (the bot's own
answers included), never an empty one. Each event is claimed, so one process of several does it once."""

from __future__ import annotations

from collections.abc import Collection

import discord
import structlog

from adapters.discord_bot.knowledge.access import PLATFORM, DiscordKnowledge, guild_scope, knowledge_channel
from adapters.discord_bot.knowledge.messages import SAID_TYPES, is_said, message_passage, place_link
from adapters.shared.knowledge_sources.channel_feed import ChannelChange, ChannelFeed
from adapters.shared.platform_jobs import PlatformJobs
from bot.errors import ReplyFailure
from bot.knowledge.passages import Passage

log = structlog.get_logger(__name__)


class KnowledgeFeed:
    """Discord's events given to the channels' feed (adapters.shared.knowledge_sources.channel_feed), and the deletions
    of whole channels and threads, which only Discord has."""

    def __init__(self, client: discord.Client, knowledge: DiscordKnowledge, jobs: PlatformJobs) -> None:
        self._client = client
        self._knowledge = knowledge
        self._jobs = jobs
        channels, live, opener = knowledge.channels, knowledge.live, knowledge.opener
        self._feed = ChannelFeed(PLATFORM, channels, live, opener, jobs.first_to_claim, scopes_listed=True)

    def wants(self, message: discord.Message) -> bool:
        """Whether `message` may be knowledge, before anything is asked of Redis."""
        return self._knowledge.opener is not None and message.guild is not None and is_said(message)

    async def on_message(self, message: discord.Message) -> None:
        await self._add(message, f"discord:knowledge:new:{message.id}")

    async def on_edit(self, event: discord.RawMessageUpdateEvent) -> None:
        edited = event.data.get("edited_timestamp")
        if self._knowledge.opener is None or event.guild_id is None or not edited:  # an embed unfurled: no edit
            return
        message = event.message
        if message.author.bot or message.type not in SAID_TYPES:
            return
        if message.content.strip():
            await self._add(message, f"discord:knowledge:edit:{message.id}:{edited}")
        else:  # its words removed, its files kept
            await self.on_delete(event.guild_id, event.channel_id, (message.id,))

    async def on_delete(self, guild_id: int | None, channel_id: int, message_ids: Collection[int]) -> None:
        if guild_id is None or not message_ids or self._knowledge.opener is None:
            return
        guild = self._client.get_guild(guild_id)
        channel = guild.get_channel_or_thread(channel_id) if guild is not None else None
        knowledge_channel_id: str | None = None  # not in the cache (an old thread): forgotten if knowledge runs here
        if channel is not None:
            if (parent := knowledge_channel(channel)) is None:
                return
            knowledge_channel_id = str(parent)
        claim = f"discord:knowledge:delete:{channel_id}:{min(message_ids)}:{len(message_ids)}"
        keys = tuple(str(message_id) for message_id in message_ids)
        await self._feed.apply(ChannelChange(str(guild_id), guild_scope(guild_id), knowledge_channel_id, claim, keys))

    async def on_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        """A knowledge channel deleted: its messages go, by the one process whose opt-out removed it."""
        if self._knowledge.opener is None:
            return
        scope = guild_scope(channel.guild.id)
        try:
            if not await self._knowledge.channels.opt_out(scope, str(channel.id)):
                return
        except ReplyFailure as failure:
            log.warning("knowledge_channels_unreachable", detail=failure.detail)
            return
        knowledge = await self._knowledge.get()
        removed = await knowledge.forget_source(scope, f"channel:{channel.id}") if knowledge is not None else 0
        log.info("knowledge_channel_deleted", scope=scope, channel=channel.id, removed=removed)

    async def on_thread_delete(self, guild_id: int, parent_id: int | None, thread_id: int) -> None:
        """A thread under a knowledge channel deleted: Discord names no message of it, so its messages go by their
        links, which lead into the thread."""
        if self._knowledge.opener is None or parent_id is None:
            return
        if await self._feed.title(guild_scope(guild_id), str(parent_id)) is None:
            return
        if not await self._jobs.first_to_claim(f"discord:knowledge:thread-delete:{thread_id}"):
            return
        knowledge = await self._knowledge.get()
        scope = guild_scope(guild_id)
        removed = await knowledge.forget_linked(scope, f"{place_link(guild_id, thread_id)}/") if knowledge else 0
        log.info("knowledge_thread_deleted", scope=scope, thread=thread_id, removed=removed)

    async def _add(self, message: discord.Message, claim: str) -> None:
        guild, channel_id = message.guild, knowledge_channel(message.channel)
        if guild is None or channel_id is None:
            return

        async def passage(title: str) -> Passage:
            return message_passage(message, guild.id, channel_id, title)

        change = ChannelChange(
            str(guild.id), guild_scope(guild.id), str(channel_id), claim, (str(message.id),), passage
        )
        await self._feed.apply(change)
