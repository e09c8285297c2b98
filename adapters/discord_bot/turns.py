"""The Turn a Discord message makes: the question of the person asking, counted in the message's channel, its
settings from the message's places, answered from what the asker and the message's channel may read."""

from __future__ import annotations

import discord

from adapters.discord_bot.knowledge.access import DiscordKnowledge
from adapters.discord_bot.places.message_places import places_of, quota_channel
from adapters.shared.platform_jobs import Question
from bot.core import Turn


async def turn_about(
    key: str, asker: discord.abc.User, question: Question, message: discord.Message, knowledge: DiscordKnowledge
) -> Turn:
    """`asker`'s `question` about `message` (their own, or one they point at), in conversation `key`."""
    return Turn(
        key,
        str(asker.id),
        asker.display_name,
        question.text,
        channel=quota_channel(message.channel),
        notices=question.notices,
        images=question.images,
        places=places_of(message.channel, message.guild),
        knowledge=await knowledge.access(message.guild, asker, message.channel),
    )
