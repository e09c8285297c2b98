"""Where a Slack reply is shown: a message edited with chat.update (here), or Slack's native stream
(.stream). Each write waits for (or skips without) a slot of the workspace's rate limits."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.shared.ratelimit import Bucket, RateLimits, ReplyBudget, Write
from adapters.shared.reply_records import Recording
from adapters.slack_bot.reply.text import REPLY_LIMITS, escape_mrkdwn, to_mrkdwn
from adapters.slack_bot.reply.tool_cards import question_message, settled_message
from adapters.slack_bot.reply.vote_blocks import vote_actions
from bot.tools.consent import ConfirmRequest
from bot.tools.gate import Decision

log = structlog.get_logger(__name__)

STATUS_TEXT = "is thinking…"
WAITING_DELAY = 0.5  # seconds without text before "is thinking…" (or a placeholder) shows
PLACEHOLDER_TEXT = "_thinking…_"
SECTION_CHARS = 3000  # Slack's limit for a section block's text


def model_context(model: str) -> dict[str, Any]:
    """The context block under a finished reply: which model answered, in Slack's small grey text."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": escape_mrkdwn(model)}]}


def blocks_with_model(mrkdwn: str, model: str, under: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]] | None:
    """A finished message as blocks: its text, the blocks `under` it (the sources), then the model's
    context line; None (plain text) when there is nothing to add or the text is longer than a section
    block holds."""
    if not (model or under) or len(mrkdwn) > SECTION_CHARS:
        return None
    section = {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn}}
    return [section, *under, *([model_context(model)] if model else [])]


class WorkspaceBudgets:
    """Slack's per-method tiers for one workspace, as sliding windows that fit inside them.

    A tier of R per minute with bursts of B fits a window of B requests per B/R minutes.
    chat.startStream/stopStream have no published tier: Tier 2 (20/min) is assumed.
    """

    def __init__(self, limits: RateLimits, team: str) -> None:
        self.limits = limits

        def tier(method: str, limit: int) -> Bucket:
            return limits.bucket(f"slack:{team}", method, limit, 12.0)

        self.updates = tier("chat.update", 10)  # Tier 3 (50/min)
        self.status = tier("assistant.threads.setStatus", 10)  # Tier 3
        self.appends = tier("chat.appendStream", 20)  # Tier 4 (100/min)
        self.stream_starts = tier("chat.startStream", 4)  # Tier 2 (assumed)
        self.stream_stops = tier("chat.stopStream", 4)  # Tier 2 (assumed)
        self.lookups = tier("users.info", 20)  # Tier 4 (100/min)
        self.history = tier("conversations.history", 10)  # Tier 3 (internal apps; see adapters.slack_bot.recent)
        self.prompts = tier("assistant.threads.setSuggestedPrompts", 20)  # Tier 4
        self.titles = tier("assistant.threads.setTitle", 20)  # Tier 4
        self.views = tier("views.publish", 20)  # Tier 4
        self.ephemerals = tier("chat.postEphemeral", 20)  # Tier 4
        self._team = team

    def posts(self, channel: str) -> Bucket:
        """chat.postMessage: about one per second per channel, with short bursts."""
        return self.limits.bucket(f"slack:{self._team}", f"chat.postMessage:{channel}", 3, 3.0)


# -- reply surfaces --------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    client: AsyncWebClient  # holding the workspace's bot token
    team: str
    channel: str
    thread_ts: str | None  # None: a top-level DM reply
    user: str
    enterprise: str = ""  # the Enterprise Grid org, if any: with `org_wide`, where the install is found
    org_wide: bool = False


@dataclass(frozen=True)
class Reach:
    """A workspace as one request reaches it: a Web API client holding that workspace's bot token (each
    workspace has its own with installs to many), and the bot's own user there."""

    client: AsyncWebClient
    team: str
    bot_user_id: str = ""
    enterprise: str = ""
    org_wide: bool = False

    @classmethod
    def of(cls, context: AsyncBoltContext, team: str) -> Reach:
        """From bolt's context for the request (authorized from the install, or the one SLACK_BOT_TOKEN)."""
        return cls(
            context.client,
            team or context.team_id or "",
            context.bot_user_id or "",
            context.enterprise_id or "",
            bool(context.is_enterprise_install),
        )

    @property
    def token(self) -> str:
        return self.client.token or ""

    def place(self, channel: str, thread_ts: str | None, user: str) -> Place:
        return Place(self.client, self.team, channel, thread_ts, user, self.enterprise, self.org_wide)

    def question_text(self, event: dict[str, Any]) -> str:
        """A message's text without the mentions of the bot."""
        text = str(event.get("text", ""))
        return text.replace(f"<@{self.bot_user_id}>", "") if self.bot_user_id else text


class MessageReply:
    """Messages posted with chat.postMessage and edited with chat.update."""

    limits = REPLY_LIMITS

    def __init__(
        self,
        place: Place,
        budgets: WorkspaceBudgets,
        recording: Recording | None = None,
        votes: str | None = None,
        first_post: Write | None = None,
    ) -> None:
        """`votes`: the answer whose 👍 / 👎 its finished messages carry; `first_post`: the slot reserved for its
        first message."""
        self._first_post = first_post
        self._votes = [vote_actions(votes)] if votes else []
        self._place = place
        self._budgets = budgets
        self._budget = ReplyBudget(budgets.limits)
        self._recording = recording
        self._waiting = Waiting(place, budgets, recording)
        self._model = ""

    async def show_waiting(self) -> None:
        await self._waiting.show()

    def citation_mark(self, number: int, url: str) -> str:
        """A knowledge passage's [n] as a link (Markdown, which Slack's text and streams both turn into <url|[n]>)."""
        return f"[[{number}]]({url})"

    async def begin(self) -> bool:
        return await self._budget.begin((self._budgets.updates,))

    def model_line(self, model: str, *, first_reply: bool) -> str:
        self._model = model  # shown as a context block under the final text
        return ""

    async def post(self, text: str, *, final: bool) -> str:
        place = self._place
        placeholder = await self._waiting.take_placeholder()
        reserved, self._first_post = self._first_post, None
        if reserved is not None and placeholder is not None:
            await reserved.release()  # the placeholder took the first message's place
            reserved = None
        write = reserved or self._budget.post(
            (self._budgets.updates,) if placeholder else (self._budgets.posts(place.channel),)
        )
        async with write:
            mrkdwn = to_mrkdwn(text)
            blocks = blocks_with_model(mrkdwn, self._model, self._votes) if final else None
            if placeholder is not None:
                await place.client.chat_update(channel=place.channel, ts=placeholder, text=mrkdwn, blocks=blocks)
                ts = placeholder
            else:
                response = await place.client.chat_postMessage(
                    channel=place.channel,
                    thread_ts=place.thread_ts,
                    text=mrkdwn,
                    blocks=blocks,
                    unfurl_links=False,
                    unfurl_media=False,
                )
                ts = str(response["ts"])
        if self._recording is not None:
            await self._recording.posted({"channel": place.channel, "ts": ts, "stream": False}, text)
        return ts

    async def edit(self, handle: str, text: str, *, final: bool) -> None:
        mrkdwn = to_mrkdwn(text)
        blocks = blocks_with_model(mrkdwn, self._model, self._votes) if final else None
        async with await self._budget.edit((self._budgets.updates,), final=final):
            await self._place.client.chat_update(channel=self._place.channel, ts=handle, text=mrkdwn, blocks=blocks)
        if self._recording is not None:
            self._recording.shown(text)

    async def end(self) -> None:
        await self._budget.end()

    async def tools_running(self, names: Sequence[str]) -> None:
        if self._recording is not None:
            await self._recording.tools_running(names)

    async def ask_to_run(self, request: ConfirmRequest) -> str:
        """Run / Cancel buttons in the reply's thread (see adapters.slack_bot.buttons.tools)."""
        async with self._budget.post((self._budgets.posts(self._place.channel),)):
            return await post_question(self._place, request)

    async def settle(self, handle: str, request: ConfirmRequest, decision: Decision) -> None:
        async with await self._budget.edit((self._budgets.updates,), final=True):
            await settle_question(self._place, handle, request, decision)


async def post_question(place: Place, request: ConfirmRequest) -> str:
    """A tool's question, with its buttons, in the reply's thread (the caller holds a post's slot)."""
    text, blocks = question_message(request)
    response = await place.client.chat_postMessage(
        channel=place.channel, thread_ts=place.thread_ts, text=text, blocks=blocks, unfurl_links=False
    )
    return str(response["ts"])


async def settle_question(place: Place, ts: str, request: ConfirmRequest, decision: Decision) -> None:
    """The question answered: its buttons go (the caller holds an update's slot)."""
    text, blocks = settled_message(request, decision)
    await place.client.chat_update(channel=place.channel, ts=ts, text=text, blocks=blocks)


class Waiting:
    """What a person sees until the first text: Slack's "is thinking…" status under the thread
    where the app may set it, else a placeholder message that the reply then takes over.

    Cosmetic, so it spends spare budget only. The placeholder is posted in a task of its own:
    the renderer cancels the waiting indicator when text arrives, and a post cut off mid-way
    would leave a placeholder nobody can replace.
    """

    def __init__(self, place: Place, budgets: WorkspaceBudgets, recording: Recording | None) -> None:
        """`recording` is told what was shown (status=True, placeholder_ts=…), for crash recovery."""
        self._place = place
        self._budgets = budgets
        self._recording = recording
        self._placeholder: asyncio.Task[str | None] | None = None
        self._over = False

    def stop(self) -> None:
        """The reply shows something already (a tool's card): from now on nothing is shown for waiting."""
        self._over = True

    async def show(self) -> None:
        await asyncio.sleep(WAITING_DELAY)  # a quick answer needs no indicator
        if self._over or (self._place.thread_ts is not None and await self._status_shown(self._place.thread_ts)):
            return
        self._placeholder = asyncio.create_task(self._post_placeholder())
        await asyncio.shield(self._placeholder)

    async def take_placeholder(self) -> str | None:
        """The placeholder's ts, once; None when there is none."""
        task, self._placeholder = self._placeholder, None
        return await task if task is not None else None

    async def _status_shown(self, thread_ts: str) -> bool:
        charge = await self._budgets.limits.spare((self._budgets.status,))
        if charge is None:
            return True  # no spare budget: show nothing rather than spend a post on it
        try:
            async with charge:
                await self._place.client.assistant_threads_setStatus(
                    channel_id=self._place.channel, thread_ts=thread_ts, status=STATUS_TEXT
                )
            await self._note(status=True)
            return True
        except SlackApiError as error:
            log.debug("slack_status_unavailable", error=error.response.get("error"))
            return False

    async def _post_placeholder(self) -> str | None:
        place = self._place
        if self._over:  # while the status was tried
            return None
        charge = await self._budgets.limits.spare((self._budgets.posts(place.channel),))
        if charge is None:
            return None
        try:
            async with charge:
                response = await place.client.chat_postMessage(
                    channel=place.channel, thread_ts=place.thread_ts, text=PLACEHOLDER_TEXT
                )
            await self._note(placeholder_ts=str(response["ts"]))
            return str(response["ts"])
        except SlackApiError as error:
            log.warning("slack_placeholder_failed", error=error.response.get("error"))
            return None

    async def _note(self, **shown: Any) -> None:
        if self._recording is not None:
            await self._recording.note_place(**shown)
