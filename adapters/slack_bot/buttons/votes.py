"""👍 / 👎 under each answer (an actions block of the answer's finished message). A click is acked at once and taken by
whichever process gets it, once; the vote is kept in Redis (adapters.shared.feedback.records) and the clicker alone is
told. 👎 opens a form asking why, optional; its submission carries the answer in its private metadata. In a help
channel a 👎 and Still need help? hand the thread to its helpers (.helper_calls); a 👎 on a solved thread's accepted
answer unmarks the thread (.solved)."""

from __future__ import annotations

import json
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.shared.feedback.vote_replies import (
    GONE,
    REASON_LABEL,
    REASON_MAX_CHARS,
    REASON_PLACEHOLDER,
    REASON_THANKS,
    vote_reply,
)
from adapters.shared.helpdesk.solving import Solving
from adapters.slack_bot.buttons.helper_calls import after_downvote, still_need_help
from adapters.slack_bot.knowledge.messages import scope_of
from adapters.slack_bot.ports import Answerer
from adapters.slack_bot.reply.surfaces import Reach
from adapters.slack_bot.reply.vote_blocks import STILL_NEED_HELP, VOTE_DOWN, VOTE_UP
from bot.errors import ReplyFailure
from bot.reply.render import failure_note

log = structlog.get_logger(__name__)

REASON_FORM = "vote_reason"
REASON_BLOCK = "reason"
FORM_TITLE = "Why 👎?"  # Slack's modal titles hold 24 characters


def answer_id(team: str, channel: str, question_ts: str) -> str:
    """An answer is known by the message it answers."""
    return f"slack:{team}:{channel}:{question_ts}"


def person(team: str, user: str) -> str:
    return f"slack:{team}:{user}"


class VoteButtons:
    def __init__(self, bot: Answerer, solving: Solving | None = None) -> None:
        """`solving`: a 👎 on an accepted answer takes its thread out of the knowledge."""
        self._bot = bot
        self._solving = solving

    def register(self, app: AsyncApp) -> None:
        app.action(VOTE_UP)(self._on_click)
        app.action(VOTE_DOWN)(self._on_click)
        app.view(REASON_FORM)(self._on_reason)
        app.action(STILL_NEED_HELP)(self._on_help)

    async def _on_click(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        team, user = str((body.get("team") or {}).get("id", "")), str((body.get("user") or {}).get("id", ""))
        interaction = body.get("trigger_id") or f"{action.get('action_ts')}:{user}"
        if not await self._bot.jobs.first_to_claim(f"slack:action:{team}:{interaction}"):
            return  # delivered twice
        answer, up = str(action.get("value", "")), action.get("action_id") == VOTE_UP
        where = _where(body)
        try:
            outcome = await self._bot.jobs.feedback.vote(answer, person(team, user), up)
        except ReplyFailure as failure:
            await self._tell(client, team, user, where, failure_note(failure))
            return
        if not outcome.missing and outcome.status != "unchanged":
            self._bot.jobs.metrics.votes.labels("slack", "up" if up else "down").inc()
        if up or outcome.missing or not await self._ask_why(client, body, answer, where):
            await self._tell(client, team, user, where, vote_reply(outcome, up=up))
        if not up and not outcome.missing and where[1]:
            self._bot.jobs.spawn(after_downvote(self._bot, Reach.of(context, team), where[0], where[1]))
        answered = str((body.get("message") or {}).get("ts") or "")
        if not up and not outcome.missing and self._solving is not None and answered:
            self._bot.jobs.spawn(self._solving.answers_gone(scope_of(team), [answered], "downvoted"))

    async def _on_help(self, ack: Any, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext) -> None:
        """Still need help?: the thread handed to its helpers; the clicker alone is told what happened."""
        await ack()
        team, user = str((body.get("team") or {}).get("id", "")), str((body.get("user") or {}).get("id", ""))
        if not await self._bot.jobs.first_to_claim(f"slack:action:{team}:{body.get('trigger_id')}:{user}"):
            return
        where = _where(body)
        if where[1]:
            value = str(((body.get("actions") or [{}])[0]).get("value", ""))
            answer = answer_id(team, where[0], value) if value else None
            said = await still_need_help(self._bot, Reach.of(context, team), where[0], where[1], answer)
            await self._tell(client, team, user, where, said)

    async def _ask_why(self, client: AsyncWebClient, body: dict[str, Any], answer: str, where: _Where) -> bool:
        """The form asking why; False if Slack wouldn't open it (the vote stands all the same)."""
        metadata = json.dumps({"answer": answer, "channel": where[0], "thread_ts": where[1]})
        view = {
            "type": "modal",
            "callback_id": REASON_FORM,
            "title": {"type": "plain_text", "text": FORM_TITLE},
            "submit": {"type": "plain_text", "text": "Send"},
            "close": {"type": "plain_text", "text": "Skip"},
            "private_metadata": metadata,
            "blocks": [
                {
                    "type": "input",
                    "block_id": REASON_BLOCK,
                    "optional": True,
                    "label": {"type": "plain_text", "text": "What was missing or wrong?"},
                    "hint": {"type": "plain_text", "text": REASON_PLACEHOLDER},
                    "element": {
                        "type": "plain_text_input",
                        "action_id": REASON_BLOCK,
                        "multiline": True,
                        "max_length": REASON_MAX_CHARS,
                        "placeholder": {"type": "plain_text", "text": REASON_LABEL},
                    },
                }
            ],
        }
        try:
            await client.views_open(trigger_id=str(body.get("trigger_id", "")), view=view)
        except SlackApiError as error:
            log.warning("slack_vote_form_not_opened", error=error.response.get("error"))
            return False
        return True

    async def _on_reason(self, ack: Any, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        team, user = str((body.get("team") or {}).get("id", "")), str((body.get("user") or {}).get("id", ""))
        if not await self._bot.jobs.first_to_claim(f"slack:view:{team}:{view.get('id')}:{user}"):
            return
        try:
            metadata = json.loads(str(view.get("private_metadata") or "{}"))
        except json.JSONDecodeError:
            return  # not a form of ours
        where: _Where = (str(metadata.get("channel", "")), metadata.get("thread_ts"))
        typed = ((view.get("state") or {}).get("values") or {}).get(REASON_BLOCK, {}).get(REASON_BLOCK, {})
        reason = str(typed.get("value") or "").strip()
        try:
            kept = not reason or await self._bot.jobs.feedback.give_reason(
                str(metadata.get("answer", "")), person(team, user), reason
            )
        except ReplyFailure as failure:
            await self._tell(client, team, user, where, failure_note(failure))
            return
        await self._tell(client, team, user, where, REASON_THANKS if kept else GONE)

    async def _tell(self, client: AsyncWebClient, team: str, user: str, where: _Where, text: str) -> None:
        """Only the voter sees it, in the answer's thread."""
        channel, thread_ts = where
        if not channel:
            return
        budgets = self._bot.budgets(team)
        try:
            async with budgets.limits.write((budgets.ephemerals,)):
                await client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
        except SlackApiError as error:
            log.warning("slack_ephemeral_not_sent", error=error.response.get("error"))


_Where = tuple[str, str | None]  # a channel and the thread in it


def _where(body: dict[str, Any]) -> _Where:
    channel = str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", ""))
    message = body.get("message") or {}
    return channel, message.get("thread_ts")
