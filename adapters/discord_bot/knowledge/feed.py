"""Discord's piece of the knowledge channels kept current (adapters.shared.knowledge_sources.channel_feed): a message
posted in a knowledge channel (or a public thread under one) becomes a passage within moments, an edit replaces it, a
delete removes it, as do a channel's or a thread's deletion. People's messages only: never a bot's (the bot's own
answers included), never an empty one. Each event is claimed, so one process of several does it once."""

from __future__ import annotations

from collections.abc import Collection

import discord

from adapters.discord_bot.knowledge.access import PLATFORM, DiscordKnowledge, guild_scope, knowledge_channel
from adapters.discord_bot.knowledge.messages import SAID_TYPES, is_said, message_passage, place_link
from adapters.shared.knowledge_sources.channel_feed import ChannelChange, ChannelFeed
from adapters.shared.platform_jobs import PlatformJobs
from bot.knowledge.passages import Passage


class KnowledgeFeed:
    """Discord's events given to the channels' feed (adapters.shared.knowledge_sources.channel_feed)."""

    def __init__(self, client: discord.Client, knowledge: DiscordKnowledge, jobs: PlatformJobs) -> None:
        self._client = client
        self._knowledge = knowledge
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
        await self._feed.channel_deleted(guild_scope(channel.guild.id), str(channel.id))

    async def on_thread_delete(self, guild_id: int, parent_id: int | None, thread_id: int) -> None:
        """Discord names no message of a deleted thread: they go by their links, which lead into the thread (a forum
        post's first message, linked by the post's own link, by its key: the post's id)."""
        if parent_id is None:
            return
        links = f"{place_link(guild_id, thread_id)}/"
        await self._feed.thread_deleted(guild_scope(guild_id), str(parent_id), str(thread_id), links)
        guild = self._client.get_guild(guild_id)
        if isinstance(guild.get_channel(parent_id) if guild else None, discord.ForumChannel):
            claim = f"discord:knowledge:post-delete:{thread_id}"
            change = ChannelChange(str(guild_id), guild_scope(guild_id), str(parent_id), claim, (str(thread_id),))
            await self._feed.apply(change)

    async def _add(self, message: discord.Message, claim: str) -> None:
        guild, channel_id = message.guild, knowledge_channel(message.channel)
        if guild is None or channel_id is None:
            return

        async def passage(title: str) -> Passage:
            return message_passage(message, guild.id, channel_id, title)

        scope, key = guild_scope(guild.id), str(message.id)
        await self._feed.apply(ChannelChange(str(guild.id), scope, str(channel_id), claim, (key,), passage))
