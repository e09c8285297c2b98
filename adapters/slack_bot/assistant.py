"""Slack's assistant panel (the AI app container), through slack_bolt's AsyncAssistant.

- Opening it (assistant_thread_started): a greeting naming the model, and the suggested prompts
  (SLACK_SUGGESTED_PROMPTS) under it.
- Each question: answered like a DM thread (same conversation key, same surfaces: "is
  thinking…" until the first words, streamed), the thread titled after its first question.
- Where the person is looking (the context Slack sends with the thread and each
  assistant_thread_context_changed) is kept in Redis by ThreadContexts, so any process that
  takes the next question knows it. A question that speaks of "this channel" (or "the channel",
  "current channel"; the default "Summarise this channel" prompt does) is sent to the model after
  that channel's recent messages (see .recent); if the bot may not read them, it says so instead
  of answering blind.

A DM thread that was not started in the panel (no context kept) is answered as before.
"""

from __future__ import annotations

import json
import re
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.assistant.thread_context import AssistantThreadContext
from slack_bolt.context.assistant.thread_context_store.async_store import AsyncAssistantThreadContextStore
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant
from slack_sdk.errors import SlackApiError

from adapters.shared.platform_jobs import PlatformJobs
from adapters.slack_bot.commands import bold, conversation_key
from adapters.slack_bot.ports import Answerer
from adapters.slack_bot.recent import ChannelReader, Unreadable, channel_question
from adapters.slack_bot.reply.surfaces import Place, Reach, WorkspaceBudgets
from bot.errors import ReplyFailure

log = structlog.get_logger(__name__)

CHANNEL_REQUEST = re.compile(r"\b(?:this|the|current)\s+channel\b", re.IGNORECASE)
TITLE_CHARS = 60  # a thread's title: its first question, cut at a word
PROMPTS_TITLE = "Try asking"
READING_STATUS = "is reading the channel…"


# The workspace of the event being handled. bolt's context store is asked with a channel and a thread alone, and two
# workspaces may have the same ids: each listener sets it before the store is used (in the listener's own task).
_workspace: ContextVar[str] = ContextVar("slack_assistant_workspace", default="")


class ThreadContexts(AsyncAssistantThreadContextStore):
    """Which channel each assistant thread's person is viewing, in Redis (an alias of the
    coordination store, kept as long as conversation history) so that every process sees it.
    A thread with a record is a panel thread; Redis out of reach, it is treated as a plain DM
    thread (whose answer then says Redis is out of reach)."""

    def __init__(self, jobs: PlatformJobs) -> None:
        self._jobs = jobs

    async def save(self, *, channel_id: str, thread_ts: str, context: dict[str, str]) -> None:
        record = {"channel_id": "", **{key: value for key, value in context.items() if value is not None}}
        try:
            await self._jobs.link(_context_key(channel_id, thread_ts), json.dumps(record))
        except ReplyFailure:
            log.warning("slack_assistant_context_not_saved", channel=channel_id, thread_ts=thread_ts)

    async def find(self, *, channel_id: str, thread_ts: str) -> AssistantThreadContext | None:
        try:
            stored = await self._jobs.resolve(_context_key(channel_id, thread_ts))
        except ReplyFailure:
            return None
        return None if stored is None else AssistantThreadContext(json.loads(stored))


def _context_key(channel: str, thread_ts: str) -> str:
    return f"slack:assistant-context:{_workspace.get()}:{channel}:{thread_ts}"


def title_of(question: str) -> str:
    """A thread's title: the question's first words, on one line."""
    words = " ".join(question.split())
    if len(words) <= TITLE_CHARS:
        return words or "New chat"
    cut = words[: TITLE_CHARS - 1].rsplit(" ", 1)[0] if " " in words[: TITLE_CHARS - 1] else words[: TITLE_CHARS - 1]
    return cut.rstrip(" ,.;:") + "…"


@dataclass(frozen=True)
class Utilities:
    """slack_bolt's helpers bound to one assistant thread (set_title, set_status, say)."""

    set_title: Any
    set_status: Any
    say: Any


class AssistantHost(Answerer, Protocol):
    """The app's own handling of a message, for the DM threads that were not started in the panel."""

    async def first_delivery(self, body: dict[str, Any]) -> bool: ...

    async def start_turn(self, reach: Reach, event: dict[str, Any], thread_ts: str | None) -> None: ...


class SlackAssistant:
    def __init__(self, bot: AssistantHost) -> None:
        self._bot = bot
        self._reader = ChannelReader(bot)
        self.assistant = AsyncAssistant(thread_context_store=ThreadContexts(bot.jobs))

    def register(self, app: AsyncApp) -> None:
        self.assistant.thread_started(self._on_thread_started)
        self.assistant.thread_context_changed(self._on_context_changed)
        self.assistant.user_message(self._on_user_message)
        app.assistant(self.assistant)

    # -- events ----------------------------------------------------------------------

    async def _on_thread_started(
        self,
        body: dict[str, Any],
        event: dict[str, Any],
        say: Any,
        set_suggested_prompts: Any,
        save_thread_context: Any,
    ) -> None:
        bot, thread = self._bot, event["assistant_thread"]
        _workspace.set(_team(body))
        if not await bot.first_delivery(body):
            return
        context = thread.get("context") or {}
        await save_thread_context(context)  # also marks the thread as the panel's
        user, channel, team = thread["user_id"], thread["channel_id"], _team(body)
        log.info("slack_assistant_thread_started", thread_ts=thread["thread_ts"], viewed=context.get("channel_id"))
        budgets = bot.budgets(team)
        if not bot.allowed(user, channel):
            await self._say(say, budgets, channel, bot.refusal())
            return
        await self._say(say, budgets, channel, self.greeting())
        prompts = [{"title": p.title, "message": p.message} for p in bot.settings.suggested_prompts]
        try:
            async with budgets.limits.write((budgets.prompts,)):
                await set_suggested_prompts(prompts=prompts, title=PROMPTS_TITLE)
        except SlackApiError as error:
            log.warning("slack_suggested_prompts_not_set", error=error.response.get("error"))

    async def _on_context_changed(self, body: dict[str, Any], event: dict[str, Any], save_thread_context: Any) -> None:
        _workspace.set(_team(body))
        thread = event["assistant_thread"]
        context = thread.get("context") or {}
        await save_thread_context(context)
        log.info("slack_assistant_context", thread_ts=thread.get("thread_ts"), viewed=context.get("channel_id"))

    async def _on_user_message(
        self,
        body: dict[str, Any],
        payload: dict[str, Any],
        get_thread_context: Any,
        set_title: Any,
        set_status: Any,
        say: Any,
        context: AsyncBoltContext,
    ) -> None:
        """Every message in a DM thread comes here (slack_bolt's matcher can't tell panel threads
        from others): a plain DM thread is answered as before."""
        bot, reach = self._bot, Reach.of(context, _team(body))
        _workspace.set(reach.team)
        if payload.get("user") in (None, reach.bot_user_id) or not await bot.first_delivery(body):
            return
        viewing: AssistantThreadContext | None = await get_thread_context()
        if viewing is None:
            await bot.start_turn(reach, payload, payload["thread_ts"])
            return
        bot.jobs.spawn(self._answer(reach, payload, viewing, Utilities(set_title, set_status, say)))

    # -- answering ---------------------------------------------------------------------

    async def _answer(
        self, reach: Reach, event: dict[str, Any], context: AssistantThreadContext, utilities: Utilities
    ) -> None:
        bot = self._bot
        channel, thread_ts, user = event["channel"], event["thread_ts"], event["user"]
        place = reach.place(channel, thread_ts, user)
        if not bot.allowed(user, channel):
            await bot.refuse(place)
            return
        budgets = bot.budgets(reach.team)
        text = reach.question_text(event)
        await self._title(place, budgets, text, utilities.set_title)
        question = text
        if CHANNEL_REQUEST.search(text):
            try:
                question = await self._with_channel(place, budgets, context, text, utilities.set_status)
            except Unreadable as why:
                log.info("slack_assistant_channel_unreadable", viewed=context.get("channel_id"), reason=str(why))
                await self._say(utilities.say, budgets, channel, str(why))
                return
        files = [bot.attachment(reach, file) for file in event.get("files", [])]
        await bot.answer(place, question, files, asked=str(event["ts"]))

    async def _title(self, place: Place, budgets: WorkspaceBudgets, text: str, set_title: Any) -> None:
        """Title the thread after its first question (the history is empty). One claim per thread first, so that
        two quick questions don't both title it and later ones don't read the whole history."""
        assert place.thread_ts is not None
        if not await self._bot.jobs.first_to_claim(
            f"slack:assistant-title:{place.team}:{place.channel}:{place.thread_ts}"
        ):
            return
        key = conversation_key(place.team, place.channel, place.thread_ts)
        try:
            if await self._bot.jobs.core.history(key):
                return
        except ReplyFailure:
            return
        try:
            async with budgets.limits.write((budgets.titles,)):
                await set_title(title_of(text))
        except SlackApiError as error:
            log.warning("slack_assistant_title_not_set", error=error.response.get("error"))

    async def _with_channel(
        self, place: Place, budgets: WorkspaceBudgets, context: AssistantThreadContext, text: str, set_status: Any
    ) -> str:
        """The question after the recent messages of the channel the person is viewing."""
        viewed = str(context.get("channel_id") or "")
        if not viewed or viewed.startswith("D"):
            raise Unreadable(
                "I don't know which channel you're looking at. Open the channel (with this panel open), then ask again."
            )
        if not self._bot.allowed(place.user, viewed):
            raise Unreadable(f"This workspace doesn't let me work in <#{viewed}>, so I won't read it.")
        # Cosmetic, like "is thinking…": only from spare budget.
        if (charge := await budgets.limits.spare((budgets.status,))) is not None:
            try:
                async with charge:
                    await set_status(READING_STATUS)
            except SlackApiError as error:
                log.debug("slack_status_unavailable", error=error.response.get("error"))
        entries = await self._reader.read(place.client, place.team, viewed)
        log.info("slack_assistant_channel_read", viewed=viewed, messages=len(entries))
        return channel_question(entries, text)

    # -- saying ----------------------------------------------------------------------

    def greeting(self) -> str:
        model = self._bot.jobs.core.models.default.display_name
        return (
            f"Hi! I answer with {bold(model)}. Ask me anything, or pick a suggestion below. "
            "While you look at a channel, ask me about “this channel” and I'll read its latest messages."
        )

    async def _say(self, say: Any, budgets: WorkspaceBudgets, channel: str, text: str) -> None:
        try:
            async with budgets.limits.write((budgets.posts(channel),)):
                await say(text=text)
        except SlackApiError as error:
            log.warning("slack_assistant_message_not_sent", error=error.response.get("error"))


def _team(body: dict[str, Any]) -> str:
    return str(body.get("team_id") or (body.get("event") or {}).get("team") or "")
