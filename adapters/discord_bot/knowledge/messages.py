"""Discord messages as knowledge: which are (a person's message with words in it, never a bot's or a webhook's), the
passage each becomes (its server's, read by those who can see its channel, linked by its jump link; in a forum, titled
by its post's title too, a post's first message linked by the post's link), and the links that lead into a channel or
thread."""

from __future__ import annotations

import discord

from adapters.discord_bot.knowledge.access import guild_scope
from adapters.discord_bot.places.forum_posts import forum_post
from bot.knowledge.passages import Passage

SAID_TYPES = (discord.MessageType.default, discord.MessageType.reply)


def is_said(message: discord.Message) -> bool:
    """A person's message with words in it."""
    return (
        not message.author.bot
        and message.webhook_id is None
        and message.type in SAID_TYPES
        and bool(message.content.strip())
    )


def place_link(guild_id: int, channel_id: int) -> str:
    return f"https://discord.com/channels/{guild_id}/{channel_id}"


def jump_link(guild_id: int, channel_id: int, message_id: int) -> str:
    return f"{place_link(guild_id, channel_id)}/{message_id}"


def message_passage(message: discord.Message, guild_id: int, channel_id: int, title: str) -> Passage:
    """`message` as knowledge of its server, read by those who can see `channel_id` (its channel, or its thread's)."""
    when = message.edited_at or message.created_at
    url = jump_link(guild_id, message.channel.id, message.id)
    if (post := forum_post(message.channel)) is not None:
        title = f"{title} \u203a {' '.join(post.name.split())}"
        url = place_link(guild_id, post.id) if message.id == post.id else url  # the post, for its first message
    return Passage(
        scope=guild_scope(guild_id),
        source=f"channel:{channel_id}",
        key=str(message.id),
        text=f"{message.author.display_name}: {message.clean_content.strip()}",
        title=title,
        url=url,
        channel=str(channel_id),
        author=str(message.author.id),
        updated_at=when.timestamp(),
    )
