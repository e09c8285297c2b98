"""Which places a Discord message belongs to: the channel its questions per minute count in (a thread counts as its
channel) and where its settings apply (its channel, then its server)."""

from __future__ import annotations

import discord

from bot.state.personas import Place


def quota_channel(channel: object) -> str:
    """Where CHANNEL_TURNS_PER_MINUTE counts a message: a thread counts as its channel, DMs not at all."""
    if isinstance(channel, discord.DMChannel) or channel is None:
        return ""
    if isinstance(channel, discord.Thread):
        return str(channel.parent_id or channel.id)
    return str(getattr(channel, "id", ""))


def places_of(channel: object, guild: discord.Guild | None) -> tuple[Place, ...]:
    """Where a persona may be set for a message there: its channel (a thread's parent), then its server."""
    places = []
    if channel_id := quota_channel(channel):
        parent = getattr(channel, "parent", None) if isinstance(channel, discord.Thread) else channel
        places.append(Place("discord", "channel", channel_id, str(getattr(parent, "name", "") or "")))
    if guild is not None:
        places.append(Place("discord", "server", str(guild.id), guild.name or ""))
    return tuple(places)
