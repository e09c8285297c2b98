"""Discord's piece of reading a knowledge channel's history (adapters.shared.knowledge_sources.channel_history and
.channel_pages): its last HISTORY_MESSAGES messages, newest first, a page at a time through discord.py (which keeps
Discord's rate limits and waits out a 429's retry_after). Discord's limits are per channel, so each channel is a
reading of its own."""

from __future__ import annotations

import discord

from adapters.discord_bot.knowledge.access import PLATFORM, DiscordKnowledge, guild_of_scope
from adapters.discord_bot.knowledge.messages import is_said, message_passage
from adapters.shared.knowledge_sources.channel_history import ChannelHistory, HistoryLimits, Renew
from adapters.shared.knowledge_sources.channel_pages import Batch, MessagePages, Unreadable
from adapters.shared.knowledge_sources.channels import Backfill
from bot.knowledge.passages import Passage
from bot.state.redis_client import RedisClient

HISTORY_MESSAGES = 1_000
PAGE = 100  # Discord's most per request
LIMITS = HistoryLimits(
    messages=HISTORY_MESSAGES,
    rescan_seconds=30.0,
    lock_seconds=60,  # longer than a page takes, 429s waited out included
    log_name="knowledge_history",
)


class HistoryReader:
    """Discord's channels' histories: started with the client, closed with it."""

    platform = PLATFORM
    limits = LIMITS
    stops: tuple[type[Exception], ...] = (discord.HTTPException,)  # Discord out of reach: taken up at the next look

    def __init__(self, client: discord.Client, knowledge: DiscordKnowledge, redis: RedisClient, prefix: str) -> None:
        self._client = client
        self._history = ChannelHistory(self, knowledge.channels, knowledge.live, knowledge.opener, redis, prefix)

    def start(self) -> None:
        """Read the unfinished histories now, and keep looking for others (a channel opted in, a restart)."""
        self._history.start()

    async def aclose(self) -> None:
        await self._history.aclose()

    def reading_of(self, backfill: Backfill) -> str:
        return backfill.channel

    async def reader(self, reading: str, renew: Renew) -> MessagePages[discord.Message]:
        return MessagePages(self, LIMITS.log_name)  # discord.py keeps the pace

    async def history(self, backfill: Backfill, room: int) -> Batch[discord.Message]:
        channel = self._client.get_partial_messageable(int(backfill.channel), guild_id=guild_of_scope(backfill.scope))
        before = discord.Object(int(backfill.cursor)) if backfill.cursor else None
        limit = min(PAGE, room)
        try:
            messages = [message async for message in channel.history(limit=limit, before=before)]
        except discord.Forbidden as error:
            raise Unreadable(f"needs Read Message History ({error})") from error
        return Batch(messages, str(messages[-1].id) if len(messages) == limit else "")  # a short page is the first

    async def replies(self, backfill: Backfill, thread: str, cursor: str) -> Batch[discord.Message]:
        return Batch([], "")  # a thread's messages aren't read with its channel's

    def thread(self, message: discord.Message) -> str:
        return ""

    def passage(self, backfill: Backfill, title: str, message: discord.Message) -> Passage | None:
        guild_id, channel_id = guild_of_scope(backfill.scope), int(backfill.channel)
        return message_passage(message, guild_id, channel_id, title) if is_said(message) else None
