"""Who may change a channel's or a server's settings (persona, model, tools): members with Discord's Manage Channels
(Manage Server for the server's) or a role in DISCORD_ADMIN_ROLE_IDS."""

from __future__ import annotations

from typing import Literal, Protocol

import discord

from adapters.discord_bot.settings import DiscordSettings
from bot.state.personas import Place

Scope = Literal["channel", "server"]


class PlacesOf(Protocol):
    """Where settings apply to a message in `channel` of `guild`, the most specific first."""

    def __call__(self, channel: object, guild: discord.Guild | None, /) -> tuple[Place, ...]: ...


def may_change(interaction: discord.Interaction, scope: Scope, settings: DiscordSettings) -> bool:
    permissions = interaction.permissions
    allowed = permissions.manage_guild if scope == "server" else permissions.manage_channels
    roles = {str(role.id) for role in getattr(interaction.user, "roles", ())}
    return allowed or bool(roles & settings.admin_role_ids)


def refusal(scope: Scope, what: str, *, verb: str = "change") -> str:
    """Why someone who may not change `what` (say, "the persona") can't; `verb`: what they may not do to it."""
    need = "Manage Server" if scope == "server" else "Manage Channels"
    return f"Only members with {need} (or an admin role of the bot's) can {verb} {what} here."


def place_for(places: tuple[Place, ...], scope: Scope) -> Place | None:
    return next((place for place in places if place.kind == scope), None)
