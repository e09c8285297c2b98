"""/forget-me on Discord: whoever uses it (anywhere the commands are: a server, a DM, through a user install too)
has what the bot keeps about them deleted (adapters.jobs.forget_me), and is told what went, in a reply only they
see."""

from __future__ import annotations

import discord
from discord import app_commands

from adapters.jobs.forget_me import forget_me
from adapters.jobs.platform_jobs import PlatformJobs
from bot.forget import scope_of

NAME = "discord"


class ForgetCommand:
    def __init__(self, jobs: PlatformJobs) -> None:
        self._core = jobs.core

    def register(self, tree: app_commands.CommandTree[discord.Client]) -> None:
        @tree.command(
            name="forget-me",
            description="Delete what the bot keeps about you: your conversations, your messages, your counters",
        )
        async def forget(interaction: discord.Interaction) -> None:
            await self._forget(interaction)

    async def _forget(self, interaction: discord.Interaction) -> None:
        # An answer being written in one of their conversations is stored first, then deleted: that may take a moment.
        await interaction.response.defer(ephemeral=True, thinking=True)
        said = await forget_me(self._core, scope_of(NAME), str(interaction.user.id))
        await interaction.edit_original_response(content=said)
