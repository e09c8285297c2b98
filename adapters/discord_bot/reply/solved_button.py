"""**Solved** under the bot's answer in a help channel's thread, beside 👍 / 👎: the asker or a helper marks the
thread solved with that answer, and unmarks it with a second click. A dynamic item, registered in every process, so
whichever process gets a click takes it, once; what it does is the client's (adapters.discord_bot.helpdesk)."""

from __future__ import annotations

import re
from typing import Any, Protocol

import discord

from adapters.shared.platform_jobs import PlatformJobs

SOLVED_LABEL = "Solved"


class SolvedMarks(Protocol):
    """Marking threads solved (adapters.discord_bot.helpdesk.solved_marks.DiscordSolvedMarks)."""

    async def clicked(self, interaction: discord.Interaction[Any]) -> None:
        """The Solved button under an answer: the thread marked solved with it, or unmarked."""

    async def downvoted(self, interaction: discord.Interaction[Any]) -> None:
        """A 👎 on an answer: if it solved its thread, the thread is unmarked."""


class SolvedHost(Protocol):
    @property
    def jobs(self) -> PlatformJobs: ...

    @property
    def solved(self) -> SolvedMarks: ...


class SolvedButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"solved:(?P<answer>\d+)"):
    def __init__(self, answer: str) -> None:
        super().__init__(
            discord.ui.Button(
                emoji="✅", label=SOLVED_LABEL, style=discord.ButtonStyle.secondary, custom_id=f"solved:{answer}"
            )
        )
        self.answer = answer

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> SolvedButton:
        return cls(match["answer"])

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        host: SolvedHost = interaction.client
        return await host.jobs.first_to_claim(f"discord:interaction:{interaction.id}")

    async def callback(self, interaction: discord.Interaction[Any], /) -> None:
        host: SolvedHost = interaction.client
        await host.solved.clicked(interaction)
