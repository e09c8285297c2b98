"""The App Home tab: published (views.publish) each time a person opens it, so it shows the
models and tools as they are, that person's remaining questions this minute (USER_TURNS_PER_MINUTE) and
their usage (what /usage shows them in a DM: today, this week, this month, by model, their budgets left)."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError

from adapters.shared.platform_jobs import describe_models
from adapters.shared.usage_commands.report import describe_person, person_usage
from adapters.slack_bot.commands import bold
from adapters.slack_bot.ports import Workspace
from adapters.slack_bot.reply.surfaces import SECTION_CHARS, Reach
from adapters.slack_bot.reply.tool_cards import tools_listing
from adapters.slack_bot.usage_command import payer_here, workspace_places
from bot.core import ChatCore
from bot.errors import ReplyFailure

log = structlog.get_logger(__name__)

SHORTCUT_NAME = "Ask Mistral about this"  # the message shortcut's name in config/slack-app-manifest.yml
HEADER_CHARS = 150  # Slack's limit for a header block's text


class HomeTab:
    def __init__(self, workspace: Workspace, core: ChatCore) -> None:
        self._workspace = workspace
        self._core = core

    def register(self, app: AsyncApp) -> None:
        app.event("app_home_opened")(self._on_opened)

    async def _on_opened(self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        """Publishing is idempotent, so a redelivered event is not claimed: it publishes again."""
        if event.get("tab", "home") != "home":
            return  # the Messages tab: the DM, nothing to publish
        user = event["user"]
        reach = Reach.of(context, str(body.get("team_id") or ""))
        budgets = self._workspace.budgets(reach.team)
        view = {"type": "home", "blocks": await self.blocks(user, reach.team, reach.bot_user_id)}
        try:
            async with budgets.limits.write((budgets.views,)):
                await reach.client.views_publish(user_id=user, view=view)
        except SlackApiError as error:
            log.warning("slack_home_not_published", user=user, error=error.response.get("error"))
            return
        log.info("slack_home_published", user=user)

    async def blocks(self, user: str, team: str, bot_user_id: str) -> list[dict[str, Any]]:
        core = self._core
        default = core.models.default.display_name
        if len(core.models.choices) == 1:
            models = f"I answer with {bold(default)}."
        else:
            models = f"New conversations answer with {bold(default)}.\n" + describe_models(core.models, None, bold)
        blocks = [
            {"type": "header", "text": {"type": "plain_text", "text": _cut("Ask me anything", HEADER_CHARS)}},
            _section(models),
            {"type": "divider"},
            _section(self._how_to(bot_user_id)),
        ]
        if core.tools:  # tools are connected: which, and which ask first (as /tools says)
            blocks += [{"type": "divider"}, _section("*Tools*\n" + tools_listing(core.tools))]
        quota, usage = await asyncio.gather(self._quota(user, team), self._usage(user, team))
        if quota:
            blocks += [{"type": "divider"}, _section(quota)]
        blocks += [{"type": "divider"}, _section(usage)]
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "As of when you opened this tab."}]})
        return blocks

    def _how_to(self, bot_user_id: str) -> str:
        me = f"<@{bot_user_id}>"
        return "\n".join(
            (
                "*How to ask me*",
                f"• *Mention me* ({me}) in a channel: I answer in a thread, and keep answering there "
                "without a mention.",
                "• *DM me*: the DM is one conversation until `/reset`; a thread in it is a conversation of its own.",
                "• `/ask your question`: I post the question and answer in its thread.",
                "• `/model`: the models; `/model name` switches a DM's model (in a channel, admins set "
                "the model of its new threads).",
                *(["• `/tools`: the tools I can use, and which ask you first."] if self._core.tools else []),
                "• *The assistant panel* (my icon at the top of Slack): a private chat beside any channel. "
                "Ask about “this channel” and I read its latest messages.",
                f"• *On any message*: ⋯ → *{SHORTCUT_NAME}*, and I answer about it in its thread.",
                "• `/usage`: the tokens (and cost) your questions used and what's left of your budgets; "
                "`/budget`: the budgets that apply where you run it.",
                "• `/forget-me`: I delete what I keep about you here (your conversations and DMs, your "
                "messages in shared threads, your usage counts).",
            )
        )

    async def _quota(self, user: str, team: str) -> str:
        """This person's remaining questions this minute; "" when there is no per-person limit."""
        try:
            left = await self._core.turns_left(f"slack:{team}" if team else "slack", user)  # as Turn.quota_scope
        except ReplyFailure:
            return "I can't check how many questions you have left right now."
        if left is None:
            return ""
        if left <= 0:
            return "You've asked all the questions you may this minute: the next one can come in under a minute."
        return f"You can ask me *{left}* more question{'s' if left != 1 else ''} this minute."

    async def _usage(self, user: str, team: str) -> str:
        """This person's usage as /usage shows it outside any channel (their budgets there: the workspace's)."""
        places = workspace_places(team)
        try:
            return describe_person(await person_usage(self._core, payer_here(team, user, places), places), bold)
        except ReplyFailure:
            return "I can't show your usage right now."


def _section(mrkdwn: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(mrkdwn, SECTION_CHARS)}}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
