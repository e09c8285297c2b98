"""Discord's piece of reading a knowledge channel's history (adapters.shared.knowledge_sources.channel_history and
.channel_pages): its last HISTORY_MESSAGES messages, newest first, a page at a time through discord.py (which keeps
Discord's rate limits and waits out a 429's retry_after). Discord's limits are per channel, so each channel is a
reading of its own. A forum has no messages of its own: its posts are read instead, newest first, POSTS_PAGE a page,
each with its messages; they are its active posts (GET /guilds/{guild}/threads/active) and the ARCHIVED_POSTS it
archived last (GET /channels/{forum}/threads/archived/public, 100 a request, listed once a reading), those made before
it became knowledge (later ones come as they are written)."""

from __future__ import annotations

from collections.abc import Sequence

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
POSTS_PAGE = 10  # a forum's posts a page, each read with its messages
ARCHIVED_POSTS = HISTORY_MESSAGES  # the archived posts looked at: at most a reading's messages, 100 a request
Read = discord.Message | discord.Thread  # a message, or a forum's post (whose messages are its "replies")
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
        self._threads: dict[int, discord.Thread] = {}  # the posts on the page being read, by id
        self._posts_listed: dict[int, list[discord.Thread]] = {}  # a forum reading's posts, listed at its start
        self._history = ChannelHistory(self, knowledge.channels, knowledge.live, knowledge.opener, redis, prefix)

    def start(self) -> None:
        """Read the unfinished histories now, and keep looking for others (a channel opted in, a restart)."""
        self._history.start()

    async def aclose(self) -> None:
        await self._history.aclose()

    def reading_of(self, backfill: Backfill) -> str:
        return backfill.channel

    async def reader(self, reading: str, renew: Renew) -> MessagePages[Read]:
        return MessagePages(self, LIMITS.log_name)  # discord.py keeps the pace

    async def history(self, backfill: Backfill, room: int) -> Batch[Read]:
        forum = self._client.get_channel(int(backfill.channel))
        if isinstance(forum, discord.ForumChannel):
            return await self._posts(forum, backfill.cursor, room)
        channel = self._client.get_partial_messageable(int(backfill.channel), guild_id=guild_of_scope(backfill.scope))
        before = discord.Object(int(backfill.cursor)) if backfill.cursor else None
        limit = min(PAGE, room)
        try:
            messages = [message async for message in channel.history(limit=limit, before=before)]
        except discord.Forbidden as error:
            raise Unreadable(f"needs Read Message History ({error})") from error
        return Batch(list(messages), str(messages[-1].id) if len(messages) == limit else "")  # a short page: the first

    async def _posts(self, forum: discord.ForumChannel, cursor: str, room: int) -> Batch[Read]:
        """The forum's posts made before `cursor` (a post's id, or the time it became knowledge), newest first."""
        listed = self._posts_listed.get(forum.id)
        if listed is None or not cursor:  # a reading's first page, or its first here since a restart
            listed = self._posts_listed[forum.id] = await _all_posts(forum)
        before = int(cursor) if cursor else None
        posts = [post for post in listed if before is None or post.id < before]
        page: Sequence[Read] = posts[: min(POSTS_PAGE, room)]
        self._threads.update({post.id: post for post in page if isinstance(post, discord.Thread)})
        if len(posts) <= len(page):
            self._posts_listed.pop(forum.id, None)  # the reading's last page
        return Batch(list(page), str(page[-1].id) if len(posts) > len(page) else "")

    async def replies(self, backfill: Backfill, thread: str, cursor: str) -> Batch[Read]:
        """A forum post's messages, its first included (a text channel's threads aren't read with it)."""
        post = self._threads.get(int(thread))
        if post is None:
            return Batch([], "")
        before = discord.Object(int(cursor)) if cursor else None
        try:
            messages = [message async for message in post.history(limit=PAGE, before=before)]
        except discord.Forbidden as error:
            raise Unreadable(f"needs Read Message History ({error})") from error
        if len(messages) < PAGE:
            self._threads.pop(post.id, None)
        return Batch(list(messages), str(messages[-1].id) if len(messages) == PAGE else "")

    def thread(self, message: Read) -> str:
        return str(message.id) if isinstance(message, discord.Thread) else ""

    def passage(self, backfill: Backfill, title: str, message: Read) -> Passage | None:
        if isinstance(message, discord.Thread) or not is_said(message):
            return None
        return message_passage(message, guild_of_scope(backfill.scope), int(backfill.channel), title)


async def _all_posts(forum: discord.ForumChannel) -> list[discord.Thread]:
    """The forum's posts a reading looks at, newest first: the active ones and the ARCHIVED_POSTS archived last."""
    try:
        active = [thread for thread in await forum.guild.active_threads() if thread.parent_id == forum.id]
        archived = [thread async for thread in forum.archived_threads(limit=ARCHIVED_POSTS)]
    except discord.Forbidden as error:
        raise Unreadable(f"needs Read Message History ({error})") from error
    return sorted({post.id: post for post in (*archived, *active)}.values(), key=lambda post: post.id, reverse=True)
