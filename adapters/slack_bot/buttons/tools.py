"""The Run / Cancel buttons under a tool's question (see .reply.tool_cards.question_message): everyone sees
them and only the asker's click counts. A click (a `block_actions` payload) is acked at once and taken
by whichever process gets it, once: the answer is settled in Redis (bot.tools.gate), and the process
that asked takes the buttons away. A click that settles nothing is told why, privately."""

from __future__ import annotations

from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.shared.tool_words import click_reply
from adapters.slack_bot.ports import Answerer
from adapters.slack_bot.reply.tool_cards import CONFIRM_NO, CONFIRM_YES, KEY
from bot.errors import ReplyFailure
from bot.tools.gate import Answer

log = structlog.get_logger(__name__)

NO_MEMORY = "I can't reach my memory right now: try again."


class ToolButtons:
    def __init__(self, bot: Answerer) -> None:
        self._bot = bot

    def register(self, app: AsyncApp) -> None:
        app.action(CONFIRM_YES)(self._on_click)
        app.action(CONFIRM_NO)(self._on_click)

    async def _on_click(self, ack: Any, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        interaction = body.get("trigger_id") or f"{action.get('action_ts')}:{body.get('user', {}).get('id')}"
        team = body.get("team", {}).get("id", "")
        if not await self._bot.jobs.first_to_claim(f"slack:action:{team}:{interaction}"):
            return  # delivered twice: another process (or an earlier delivery) took it
        user = str(body.get("user", {}).get("id", ""))
        key, yes = str(action.get("value", "")), action.get("action_id") == CONFIRM_YES
        gate = self._bot.jobs.core.gate
        try:
            answer = await gate.answer(key, user, yes=yes) if gate is not None and KEY.fullmatch(key) else Answer.GONE
        except ReplyFailure:
            reply: str | None = NO_MEMORY
        else:
            reply = click_reply(answer)
        log.info("slack_tool_click", user=user, yes=yes, settled=reply is None)
        if reply is not None:
            await self._tell(client, body, user, reply)

    async def _tell(self, client: AsyncWebClient, body: dict[str, Any], user: str, text: str) -> None:
        """Only the clicker sees it, in the question's thread."""
        channel = str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", ""))
        message = body.get("message") or {}
        budgets = self._bot.budgets(str((body.get("team") or {}).get("id") or ""))
        try:
            async with budgets.limits.write((budgets.ephemerals,)):
                await client.chat_postEphemeral(
                    channel=channel, user=user, text=text, thread_ts=message.get("thread_ts")
                )
        except SlackApiError as error:
            log.warning("slack_ephemeral_not_sent", error=error.response.get("error"))
