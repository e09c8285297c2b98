"""A channel's (or server's) settings besides its persona: `/model name scope` used in a channel sets the model of
its new threads, `/tools offer scope` turns tools on or off there, and `/respond mode scope` sets what it answers
without a mention (bot.respond.decision), `/respond helpers role` who its threads are handed to (a role; no role:
nobody; adapters.shared.helpdesk); for members with Manage Channels (Manage Server for `scope: server`) or a role in
DISCORD_ADMIN_ROLE_IDS. Answers are ephemeral."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import discord
from discord import app_commands

from adapters.discord_bot.places.permissions import PlacesOf, Scope, may_change, place_for, refusal
from adapters.discord_bot.settings import DiscordSettings
from adapters.shared.helpdesk.helper_settings import helpers_here, set_helpers_here
from adapters.shared.place_settings import (
    model_here,
    respond_here,
    set_model_here,
    set_respond_here,
    set_tools_here,
    tools_here,
)
from adapters.shared.platform_jobs import PlatformJobs
from adapters.shared.tool_words import describe_tools, tool_use
from bot.errors import ReplyFailure
from bot.reply.render import failure_note
from bot.state.personas import Place

Offer = Literal["on", "off", "default"]
Respond = Literal["mentions", "questions", "all", "default", "helpers"]
MESSAGE_LIMIT = 2_000


def bold(text: str) -> str:
    return f"**{text}**"


def roles_shown(ids: tuple[str, ...]) -> str:
    """Roles as Discord shows them (the bot's messages ping nobody: allowed_mentions none)."""
    return ", ".join(f"<@&{one}>" for one in ids)


class PlaceCommands:
    def __init__(self, jobs: PlatformJobs, settings: DiscordSettings) -> None:
        self._jobs = jobs
        self._settings = settings

    def register_tools(
        self,
        tree: app_commands.CommandTree[discord.Client],
        places_of: PlacesOf,
        conversation_of: Callable[[object], str | None],
    ) -> None:
        """`conversation_of`: the conversation a command used in a channel is about (None outside threads and DMs)."""

        @tree.command(name="tools", description="List the bot's tools, or turn them on or off in this channel")
        @app_commands.describe(offer="Offer tools here, or not (default: as the bot's settings say)", scope="Where")
        async def tools(interaction: discord.Interaction, offer: Offer | None = None, scope: Scope = "channel") -> None:
            places = places_of(interaction.channel, interaction.guild)
            thread = conversation_of(interaction.channel)
            text = await self._tools(interaction, places, thread, offer, scope)
            await interaction.response.send_message(text[:MESSAGE_LIMIT], ephemeral=True)

    def register_respond(self, tree: app_commands.CommandTree[discord.Client], places_of: PlacesOf) -> None:
        # A server's channel, where the bot was added: it reads the channel's messages.
        @tree.command(name="respond", description="What the bot answers here without being mentioned")
        @app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
        @app_commands.allowed_installs(guilds=True, users=False)
        @app_commands.describe(
            mode="mentions: only when mentioned; questions: questions it can help with; all: every message; "
            "helpers: who a thread is handed to",
            scope="This channel, or the server",
            role="With mode helpers: the role called when the bot can't help (none: nobody)",
        )
        async def respond(
            interaction: discord.Interaction,
            mode: Respond | None = None,
            scope: Scope = "channel",
            role: discord.Role | None = None,
        ) -> None:
            places = places_of(interaction.channel, interaction.guild)
            text = await self._respond(interaction, places, mode, scope, role)
            await interaction.response.send_message(text[:MESSAGE_LIMIT], ephemeral=True)

    async def _respond(
        self,
        interaction: discord.Interaction,
        places: tuple[Place, ...],
        mode: Respond | None,
        scope: Scope,
        role: discord.Role | None = None,
    ) -> str:
        core = self._jobs.core
        try:
            if (place := place_for(places, scope)) is None:
                return "A server's channels answer without a mention: use /respond in one."
            if mode is None:
                return f"{await respond_here(core, places, bold)}\n{await helpers_here(core, places, roles_shown)}"
            if not may_change(interaction, scope, self._settings):
                return refusal(scope, "what the bot answers")
            if mode == "helpers":
                if role is not None and (role.is_default() or role.is_bot_managed()):
                    return "Helpers are people: name a role of theirs, not @everyone or a bot's role."
                helpers = (str(role.id),) if role is not None else ()
                return await set_helpers_here(core, place, helpers, roles_shown)
            return await set_respond_here(core, place, mode, bold)
        except ReplyFailure as failure:
            return failure_note(failure)

    async def _tools(
        self,
        interaction: discord.Interaction,
        places: tuple[Place, ...],
        thread: str | None,
        offer: Offer | None,
        scope: Scope,
    ) -> str:
        """/tools: whether this conversation's model (outside one, new conversations' here) uses the tools, and them;
        with `offer`, tools turned on or off here."""
        core = self._jobs.core
        try:
            if offer is None:
                use = await tool_use(core, thread, places) if core.tools else None
                listing = describe_tools(core.tools, use=use, bold=bold)
                return f"{await tools_here(core, places)}\n{listing}" if places else listing
            if (place := place_for(places, scope)) is None:
                return "Tools are turned on or off for a server's channels: use /tools in one."
            if not may_change(interaction, scope, self._settings):
                return refusal(scope, "the tools")
            return await set_tools_here(core, place, offer)
        except ReplyFailure as failure:
            return failure_note(failure)

    async def channel_model(
        self, interaction: discord.Interaction, places: tuple[Place, ...], name: str | None, scope: Scope
    ) -> str:
        """/model outside a conversation: the model of new threads in this channel (or server), shown or set."""
        core = self._jobs.core
        try:
            if not name:
                return await model_here(core, places, bold)
            if (place := place_for(places, scope)) is None:
                return "Each thread and DM has its own model: use /model inside one of them."
            if not may_change(interaction, scope, self._settings):
                return refusal(scope, "the model")
            return await set_model_here(core, place, name, bold)
        except ReplyFailure as failure:
            return failure_note(failure)
