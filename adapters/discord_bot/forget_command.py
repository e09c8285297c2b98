"""/forget-me on Discord: whoever uses it (anywhere the commands are: a server, a DM, through a user install too)
has what the bot keeps about them deleted (adapters.shared.forget_me), their messages made knowledge in every server
too, and is told what went, in a reply only they see."""

from __future__ import annotations

import asyncio
import contextlib

import discord
import structlog
from discord import app_commands

from adapters.discord_bot.knowledge.access import SCOPE_PREFIX, DiscordKnowledge
from adapters.shared.forget_me import NOTHING, forget_me, with_feedback
from adapters.shared.helpdesk.solving import Solving
from adapters.shared.platform_jobs import PlatformJobs
from bot.state.forget import scope_of

NAME = "discord"
SETTLE_SECONDS = 5.0  # messages of theirs still waiting to be added are added first, then deleted with the rest
log = structlog.get_logger(__name__)


class ForgetCommand:
    def __init__(self, jobs: PlatformJobs, knowledge: DiscordKnowledge, solving: Solving) -> None:
        self._core = jobs.core
        self._feedback = jobs.feedback
        self._knowledge = knowledge
        self._solving = solving

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
        user = str(interaction.user.id)
        said = await forget_me(self._core, scope_of(NAME), user)
        solved = await self._forget_solved(user)  # first: the passages they became go with the messages
        passages = await self._forget_messages(user)
        if passages:
            messages = f"{passages:,} of your messages the bot had as knowledge"
            said = f"Deleted: {messages}." if said == NOTHING else f"{said} Also deleted: {messages}."
        if solved:
            threads = f"{solved} solved thread{'s' if solved > 1 else ''} you asked or answered"
            said = f"Unmarked: {threads}." if said == NOTHING else f"{said} Also unmarked: {threads}."
        said = await with_feedback(said, self._feedback, f"discord:{user}")
        await interaction.edit_original_response(content=said)

    async def _forget_solved(self, user: str) -> int:
        try:
            return await self._solving.forget_person(await self._solving.every_scope(), user)
        except Exception as error:  # noqa: BLE001 - Redis or the engine: the rest is deleted and said
            log.error("solved_threads_not_forgotten", error=str(error))
            return 0

    async def _forget_messages(self, user: str) -> int:
        knowledge = self._knowledge.current
        if knowledge is None and await self._knowledge.in_use():  # not started in this process yet
            knowledge = await self._knowledge.get()
        if knowledge is None:
            return 0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(knowledge.settled(), SETTLE_SECONDS)
        try:
            return await knowledge.forget_author_everywhere(SCOPE_PREFIX, user)
        except Exception as error:  # noqa: BLE001 - whatever the engine raised, the rest was deleted and said
            log.error("knowledge_author_not_forgotten", error=str(error))
            return 0
