"""A tool that may change something asks first, with Run / Cancel buttons everyone sees and only the
asker's click counts. A click is taken by whichever process gets it (the buttons are dynamic items,
registered in every process), and the answer is settled in Redis (see bot.tools.gate)."""

from __future__ import annotations

import re
from typing import Any, Protocol

import discord
import structlog

from adapters.shared.platform_jobs import PlatformJobs
from adapters.shared.tool_words import click_reply, confirm_question, settled_text
from bot.errors import ReplyFailure

__all__ = ["ToolAnswerButton", "confirm_question", "question_view", "settled_text"]
log = structlog.get_logger(__name__)


class JobsHost(Protocol):
    @property
    def jobs(self) -> PlatformJobs: ...


class ToolAnswerButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"tool:(?P<answer>yes|no):(?P<key>[0-9a-f]{16})"
):
    def __init__(self, key: str, *, yes: bool) -> None:
        label, style = ("Run", discord.ButtonStyle.success) if yes else ("Cancel", discord.ButtonStyle.secondary)
        super().__init__(discord.ui.Button(label=label, style=style, custom_id=f"tool:{'yes' if yes else 'no'}:{key}"))
        self.key = key
        self.yes = yes

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> ToolAnswerButton:
        return cls(match["key"], yes=match["answer"] == "yes")

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        host: JobsHost = interaction.client
        return await host.jobs.first_to_claim(f"discord:interaction:{interaction.id}")

    async def callback(self, interaction: discord.Interaction[Any], /) -> None:
        host: JobsHost = interaction.client
        gate = host.jobs.core.gate
        try:
            answer = None if gate is None else await gate.answer(self.key, str(interaction.user.id), yes=self.yes)
        except ReplyFailure:
            await interaction.response.send_message("I can't reach my memory right now: try again.", ephemeral=True)
            return
        reply = click_reply(answer) if answer is not None else "This question has expired."
        if reply is None:
            await interaction.response.defer()  # the asking reply takes the buttons away
        else:
            await interaction.response.send_message(reply, ephemeral=True)


def question_view(key: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ToolAnswerButton(key, yes=True))
    view.add_item(ToolAnswerButton(key, yes=False))
    return view
