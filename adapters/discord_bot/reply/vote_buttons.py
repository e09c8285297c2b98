"""👍 / 👎 under each answer. The buttons are dynamic items, registered in every process, so whichever process gets a
click takes it; the vote is kept in Redis (adapters.shared.feedback.records). 👎 opens a form asking why, optional: its
submission is matched by its custom id in `on_interaction`, so any process takes that too. Answers are ephemeral. In a
help channel the answer carries **Solved** too (.solved_button), and where it has helpers Still need help?: it and a
👎 hand the thread to them (.helper_calls). A 👎 on an answer accepted as a thread's solution takes it out of the
knowledge."""

from __future__ import annotations

import re
from typing import Any, Protocol

import discord
import structlog

from adapters.discord_bot.reply.helper_calls import NO_HELPDESK, HelpDesk, after_downvote, still_need_help
from adapters.discord_bot.reply.solved_button import SolvedButton, SolvedHost
from adapters.shared.feedback.vote_replies import (
    GONE,
    REASON_LABEL,
    REASON_MAX_CHARS,
    REASON_PLACEHOLDER,
    REASON_THANKS,
    REASON_TITLE,
    vote_reply,
)
from adapters.shared.platform_jobs import PlatformJobs
from bot.errors import ReplyFailure
from bot.reply.render import failure_note

log = structlog.get_logger(__name__)
REASON_FORM = "vote-reason:"
STILL_NEED_HELP = "Still need help?"


class JobsHost(Protocol):
    @property
    def jobs(self) -> PlatformJobs: ...


def answer_id(question_message_id: int | str) -> str:
    """An answer is known by the message it answers."""
    return f"discord:{question_message_id}"


def person(user: discord.abc.Snowflake) -> str:
    return f"discord:{user.id}"


class VoteButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"vote:(?P<vote>up|down|help):(?P<answer>\d+)"
):
    def __init__(self, answer: str, *, up: bool, help_: bool = False) -> None:
        kind = "help" if help_ else "up" if up else "down"
        super().__init__(
            discord.ui.Button(
                emoji=None if help_ else "👍" if up else "👎",
                label=STILL_NEED_HELP if help_ else None,
                style=discord.ButtonStyle.secondary,
                custom_id=f"vote:{kind}:{answer}",
            )
        )
        self.answer = answer
        self.up = up
        self.help = help_

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> VoteButton:
        return cls(match["answer"], up=match["vote"] == "up", help_=match["vote"] == "help")

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        host: JobsHost = interaction.client
        return await host.jobs.first_to_claim(f"discord:interaction:{interaction.id}")

    async def callback(self, interaction: discord.Interaction[Any], /) -> None:
        if self.help:
            await still_need_help(interaction.client, interaction, answer_id(self.answer))
            return
        host: JobsHost = interaction.client
        try:
            outcome = await host.jobs.feedback.vote(answer_id(self.answer), person(interaction.user), self.up)
        except ReplyFailure as failure:
            await interaction.response.send_message(failure_note(failure), ephemeral=True)
            return
        if not outcome.missing and outcome.status != "unchanged":
            host.jobs.metrics.votes.labels("discord", "up" if self.up else "down").inc()
        if self.up or outcome.missing:
            await interaction.response.send_message(vote_reply(outcome, up=self.up), ephemeral=True)
        else:
            await interaction.response.send_modal(reason_form(self.answer))
            if not outcome.missing:
                host.jobs.spawn(after_downvote(interaction.client, interaction))
                solved: SolvedHost = interaction.client
                host.jobs.spawn(solved.solved.downvoted(interaction))


def vote_view(answer: str, helpdesk: HelpDesk = NO_HELPDESK) -> discord.ui.View:
    """The buttons of the answer to message `answer` (with Solved and Still need help? as `helpdesk` says). The view
    is stopped before it is sent: the clicks go to the dynamic items, and no process keeps a view per answer in
    memory."""
    view = discord.ui.View(timeout=None)
    view.add_item(VoteButton(answer, up=True))
    view.add_item(VoteButton(answer, up=False))
    if helpdesk.solvable:
        view.add_item(SolvedButton(answer))
    if helpdesk.helpers:
        view.add_item(VoteButton(answer, up=False, help_=True))
    view.stop()
    return view


def reason_form(answer: str) -> discord.ui.Modal:
    form = discord.ui.Modal(title=REASON_TITLE, custom_id=f"{REASON_FORM}{answer}", timeout=None)
    form.add_item(
        discord.ui.TextInput(
            label=REASON_LABEL,
            style=discord.TextStyle.paragraph,
            placeholder=REASON_PLACEHOLDER[:100],
            required=False,
            max_length=REASON_MAX_CHARS,
            custom_id="reason",
        )
    )
    form.stop()  # its submission is taken by `take_reason`, in whichever process gets it
    return form


async def take_reason(host: JobsHost, interaction: discord.Interaction[Any]) -> bool:
    """A submitted 👎 form: its reason kept with the vote. False for any other interaction."""
    data: Any = interaction.data or {}
    custom_id = str(data.get("custom_id", ""))
    if interaction.type is not discord.InteractionType.modal_submit or not custom_id.startswith(REASON_FORM):
        return False
    if not await host.jobs.first_to_claim(f"discord:interaction:{interaction.id}"):
        return True
    reason = _submitted(data)
    try:
        kept = not reason or await host.jobs.feedback.give_reason(
            answer_id(custom_id.removeprefix(REASON_FORM)), person(interaction.user), reason
        )
    except ReplyFailure as failure:
        await interaction.response.send_message(failure_note(failure), ephemeral=True)
        return True
    await interaction.response.send_message(REASON_THANKS if kept else GONE, ephemeral=True)
    return True


def _submitted(data: dict[str, Any]) -> str:
    """The text typed in the form ("" when left empty)."""
    for row in data.get("components", []):
        for component in row.get("components", [row]):
            if component.get("custom_id") == "reason":
                return str(component.get("value") or "").strip()
    return ""
