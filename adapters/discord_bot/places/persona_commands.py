"""/persona: who the bot is in a channel or a whole server. `/persona show` says which persona applies and where it
comes from; `/persona set text:` (without `text`, a form for a long one) and `/persona clear` change it, for members
with Discord's Manage Channels (Manage Server for `scope: server`) or a role in DISCORD_ADMIN_ROLE_IDS. Answers are
ephemeral."""

from __future__ import annotations

from typing import Protocol

import discord
from discord import app_commands

from adapters.discord_bot.places.permissions import PlacesOf, Scope, may_change, place_for, refusal
from adapters.discord_bot.places.persona_modal import PersonaModal
from adapters.discord_bot.settings import DiscordSettings
from adapters.shared.platform_jobs import PlatformJobs
from bot.errors import ReplyFailure
from bot.state.personas import PersonaRefused, Personas, Place

SHOWN_CHARS = 1_800


class PersonaHost(Protocol):
    @property
    def jobs(self) -> PlatformJobs: ...

    @property
    def settings(self) -> DiscordSettings: ...


class PersonaCommands:
    def __init__(self, host: PersonaHost, places_of: PlacesOf) -> None:
        self._host = host
        self._places_of = places_of

    def register(self, tree: app_commands.CommandTree[discord.Client]) -> None:
        group = app_commands.Group(name="persona", description="Who the bot is in this channel or server")

        @group.command(name="show", description="Show the persona that applies here, and where it comes from")
        async def show(interaction: discord.Interaction) -> None:
            await self._reply(interaction, await self._show(interaction))

        @group.command(name="set", description="Set who the bot is in this channel (or the whole server)")
        @app_commands.describe(
            text="The persona: the model's instructions here (leave it out to write a long one in a form)",
            scope="This channel, or the server",
        )
        async def set_(
            interaction: discord.Interaction,
            text: app_commands.Range[str, 1, 4000] | None = None,
            scope: Scope = "channel",
        ) -> None:
            if text is None:
                await self._open_form(interaction, scope)
            else:
                await self._reply(interaction, await self._change(interaction, scope, text))

        @group.command(name="clear", description="Remove this channel's (or the server's) persona")
        @app_commands.describe(scope="This channel, or the server")
        async def clear(interaction: discord.Interaction, scope: Scope = "channel") -> None:
            await self._reply(interaction, await self._change(interaction, scope, None))

        tree.add_command(group)

    async def _show(self, interaction: discord.Interaction) -> str:
        places, personas = self._places_of(interaction.channel, interaction.guild), self._personas()
        if personas is None:
            return "Personas are not available here."
        try:
            persona = await personas.effective(places)
        except ReplyFailure as failure:
            return failure.reason
        text = persona.text if len(persona.text) <= SHOWN_CHARS else persona.text[:SHOWN_CHARS] + "…"
        return f"The persona here comes from {persona.source}:\n>>> {text}"

    async def _open_form(self, interaction: discord.Interaction, scope: Scope) -> None:
        """The form for a long persona, prefilled with the place's own; to those who may change it only."""
        target = self._target(interaction, scope)
        if isinstance(target, str):
            await self._reply(interaction, target)
            return
        place, personas = target
        try:
            current = await personas.own(place)
        except ReplyFailure as failure:
            await self._reply(interaction, failure.reason)
            return

        async def submit(submitted: discord.Interaction, text: str) -> str:
            return await self._change(submitted, scope, text)

        where = "this server" if scope == "server" else "this channel"
        await interaction.response.send_modal(PersonaModal(where=where, current=current, submit=submit))

    def _target(self, interaction: discord.Interaction, scope: Scope) -> tuple[Place, Personas] | str:
        """The place whose persona `interaction` would change and the personas, or why it can't."""
        place = place_for(self._places_of(interaction.channel, interaction.guild), scope)
        personas = self._personas()
        if place is None or personas is None:
            return "Personas are set for a server's channels: use /persona in one."
        if not may_change(interaction, scope, self._host.settings):
            return refusal(scope, "the persona")
        return place, personas

    async def _change(self, interaction: discord.Interaction, scope: Scope, text: str | None) -> str:
        target = self._target(interaction, scope)
        if isinstance(target, str):
            return target
        place, personas = target
        try:
            await (personas.clear(place) if text is None else personas.set(place, text))
        except PersonaRefused as refused:
            return str(refused)
        except ReplyFailure as failure:
            return failure.reason
        where = "this server" if scope == "server" else "this channel"
        done = "removed" if text is None else "set"
        return f"Done: the persona of {where} is {done}. It applies from the next message on, in every conversation."

    def _personas(self) -> Personas | None:
        return self._host.jobs.core.personas

    @staticmethod
    async def _reply(interaction: discord.Interaction, text: str) -> None:
        await interaction.response.send_message(text, ephemeral=True)
