"""Discord's forum channels (type 15): each question there is a post, a public thread whose id is its starter
message's, with a title. A post's starter message is asked with its title; in a forum that answers without a mention
(`/respond questions|all`), the answer goes inside the post, and the post, once answered, is a conversation like the
bot's own threads (POST_ALIAS links it to its conversation)."""

from __future__ import annotations

import discord


def forum_post(channel: object) -> discord.Thread | None:
    """`channel` if it is a post of a forum (or media) channel."""
    if isinstance(channel, discord.Thread) and isinstance(channel.parent, discord.ForumChannel):
        return channel
    return None


def starts_post(message: discord.Message) -> bool:
    """Whether `message` is a forum post's starter message: the post's id is its own."""
    return message.guild is not None and forum_post(message.channel) is not None and message.id == message.channel.id


def with_title(message: discord.Message, text: str) -> str:
    """`text` of `message`, headed by its post's title when it starts a forum post (the title often is the question)."""
    post = forum_post(message.channel)
    if post is None or message.id != post.id or not post.name.strip():
        return text
    title = " ".join(post.name.split())
    return f"{title}\n{text}" if text.strip() else title


def post_alias(post_id: int) -> str:
    """The alias that links a forum post the bot answered to its conversation (its follow-ups continue it)."""
    return f"discord:post:{post_id}"
