"""Slack's piece of marking a help thread solved (adapters.shared.helpdesk.solving), three ways, by the asker or one of
the channel's helpers, in a help channel's thread (`/respond questions` or `all`): **✅ Solved** under the bot's answer
(beside 👍 / 👎; clicked again on the accepted answer, it unmarks the thread), the message shortcut **Mark as answer**
on any message of the thread, and a ✅ reaction on one (a ✅ by anyone else changes nothing). Slack runs no slash
command in a thread, so there is no /solved here. Each is taken by one process, once; who marked is told privately in
the thread. The accepted answer's edits and deletion follow it (.messages), as a 👎 on it does (.votes)."""

from __future__ import annotations

from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from adapters.shared.helpdesk.solving import NOT_ALLOWED, NOT_HELP_THREAD, Marked, Solving, may_mark, told
from adapters.shared.place_settings import respond_mode
from adapters.slack_bot.buttons.help_threads import HelpThreads, Unread
from adapters.slack_bot.buttons.helper_calls import is_helper
from adapters.slack_bot.knowledge.state import SlackKnowledge
from adapters.slack_bot.places.message_places import slack_places
from adapters.slack_bot.ports import Answerer
from adapters.slack_bot.reply.surfaces import Reach
from adapters.slack_bot.reply.vote_blocks import SOLVED
from bot.errors import ReplyFailure
from bot.reply.render import failure_note
from bot.respond.decision import RespondMode

log = structlog.get_logger(__name__)

# The message shortcut's callback id, as in config/slack-app-manifest.yml.
MARK_ANSWER = "mark_answer"
CHECK_MARKS = frozenset({"white_check_mark", "heavy_check_mark", "ballot_box_with_check"})
QUESTION_ITSELF = "That is the thread's question: mark the message that answered it."
UNREAD = "I couldn't read this thread just now, so nothing was marked: try again in a minute."


class SolvedThreads:
    def __init__(self, host: Answerer, knowledge: SlackKnowledge, solving: Solving) -> None:
        self._host, self._solving = host, solving
        self._threads = HelpThreads(host, knowledge)

    def register(self, app: AsyncApp) -> None:
        app.action(SOLVED)(self._on_click)
        app.shortcut(MARK_ANSWER)(self._on_shortcut)
        app.event("reaction_added")(self._on_reaction)

    async def _on_click(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """✅ Solved under the bot's answer: marked with it, or unmarked if it is the accepted one."""
        await ack()
        team, user = str((body.get("team") or {}).get("id", "")), str((body.get("user") or {}).get("id", ""))
        interaction = body.get("trigger_id") or f"{action.get('action_ts')}:{user}"
        if not await self._host.jobs.first_to_claim(f"slack:action:{team}:{interaction}"):
            return  # delivered twice
        reach = Reach.of(context, team)
        message = body.get("message") or {}
        channel = str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id", ""))
        said, thread_ts = await self._solve(reach, user, channel, message, toggle=True)
        await self._tell(reach, channel, user, thread_ts or message.get("thread_ts"), said)

    async def _on_shortcut(self, ack: Any, shortcut: dict[str, Any], context: AsyncBoltContext) -> None:
        """Mark as answer on a message of the thread."""
        await ack()
        team, user = str((shortcut.get("team") or {}).get("id", "")), str((shortcut.get("user") or {}).get("id", ""))
        if not await self._host.jobs.first_to_claim(f"slack:shortcut:{team}:{shortcut.get('trigger_id')}"):
            return
        reach = Reach.of(context, team)
        message, channel = shortcut.get("message") or {}, str((shortcut.get("channel") or {}).get("id", ""))
        if not message.get("thread_ts"):
            said: str | None = NOT_HELP_THREAD
        elif message.get("thread_ts") == message.get("ts"):
            said = QUESTION_ITSELF
        else:
            said, _ = await self._solve(reach, user, channel, message, toggle=False)
        await self._tell(reach, channel, user, message.get("thread_ts"), said)

    async def _on_reaction(self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        """A ✅ on a message of the thread, by the asker or a helper: it is the answer."""
        item, user = event.get("item") or {}, str(event.get("user") or "")
        if event.get("reaction") not in CHECK_MARKS or item.get("type") != "message":
            return
        channel, ts = str(item.get("channel") or ""), str(item.get("ts") or "")
        if not await self._host.jobs.first_to_claim(f"slack:solved-reaction:{channel}:{ts}:{user}"):
            return
        reach = Reach.of(context, str(body.get("team_id") or ""))
        said, thread_ts = await self._solve(reach, user, channel, {"ts": ts}, toggle=False, quietly=True)
        await self._tell(reach, channel, user, thread_ts, said)

    async def _solve(
        self,
        reach: Reach,
        user: str,
        channel: str,
        message: dict[str, Any],
        *,
        toggle: bool,
        quietly: bool = False,
    ) -> tuple[str | None, str | None]:
        """`message` made the answer of its thread by `user` (`toggle`: or the thread unmarked if it is already);
        what they are told, and the thread's ts once known. `quietly` (a reaction): nothing told, but logged at
        debug, where it changes nothing."""
        ts, thread_ts = str(message.get("ts") or ""), None
        try:
            help_channel = not channel.startswith("D") and (
                await respond_mode(self._host.jobs.core, slack_places(reach.team, channel)) is not RespondMode.MENTIONS
            )
            if not help_channel:
                return _unless(quietly, NOT_HELP_THREAD, "not_help_channel", channel, ts), None
            read = await self._threads.read(reach, channel, ts, message if "text" in message else None)
            if not read.in_thread:
                return _unless(quietly, NOT_HELP_THREAD, "not_in_thread", channel, ts), None
            thread_ts = str(read.parent.get("ts"))
            thread = await self._threads.thread(reach, channel, read)
            helper = await is_helper(self._host, reach, channel, user)
            if not may_mark(user, thread, helper):
                return _unless(quietly, NOT_ALLOWED, "not_allowed", channel, ts), thread_ts
            author = str((read.answer or {}).get("user") or "")
            by_helper = (author == user and helper) or (
                bool(author) and await is_helper(self._host, reach, channel, author)
            )
            answer = await self._threads.answer(reach, read, helper=by_helper)
            solve = self._solving.toggle if toggle else self._solving.mark
            marked, lost = await solve(thread, answer, user)
        except ReplyFailure as failure:
            return failure_note(failure), thread_ts
        except Unread:
            return _unless(quietly, UNREAD, "unread", channel, ts), thread_ts
        if quietly and marked is Marked.ALREADY:
            return None, thread_ts
        return told(marked, answer, lost), thread_ts

    async def _tell(self, reach: Reach, channel: str, user: str, thread_ts: str | None, said: str | None) -> None:
        """Only they see it, in the thread."""
        if said and channel:
            budgets = self._host.budgets(reach.team)
            async with budgets.limits.write((budgets.ephemerals,)):
                await self._host.tell_privately(reach.client, channel, user, said, thread_ts)


def _unless(quietly: bool, said: str, why: str, channel: str, ts: str) -> str | None:
    """`said`, or quietly nothing, logged at debug."""
    if quietly:
        log.debug("slack_solved_reaction_ignored", reason=why, channel=channel, message=ts)
        return None
    return said
