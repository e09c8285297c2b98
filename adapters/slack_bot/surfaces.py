"""Where a Slack reply is shown: a message edited with chat.update, or Slack's native stream.
Each write waits for (or skips without) a slot of the workspace's rate limits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.jobs.ledger import Recording
from adapters.jobs.ratelimit import Bucket, RateLimits, ReplyBudget
from adapters.slack_bot.text import REPLY_LIMITS, STREAM_LIMITS, defuse_mentions, escape_mrkdwn, to_mrkdwn
from bot.surface import EditSkipped

log = structlog.get_logger(__name__)

STATUS_TEXT = "is thinking…"
WAITING_DELAY = 0.5  # seconds without text before "is thinking…" (or a placeholder) shows
PLACEHOLDER_TEXT = "_thinking…_"
SECTION_CHARS = 3000  # Slack's limit for a section block's text


def model_context(model: str) -> dict[str, Any]:
    """The context block under a finished reply: which model answered, in Slack's small grey text."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": escape_mrkdwn(model)}]}


def blocks_with_model(mrkdwn: str, model: str) -> list[dict[str, Any]] | None:
    """A finished message as blocks ending with the model's context line; None (plain text) when
    there is no model to name or the text is longer than a section block holds."""
    if not model or len(mrkdwn) > SECTION_CHARS:
        return None
    return [{"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn}}, model_context(model)]


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
        self._team = team

    def posts(self, channel: str) -> Bucket:
        """chat.postMessage: about one per second per channel, with short bursts."""
        return self.limits.bucket(f"slack:{self._team}", f"chat.postMessage:{channel}", 3, 3.0)


# -- reply surfaces --------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    client: AsyncWebClient
    team: str
    channel: str
    thread_ts: str | None  # None: a top-level DM reply
    user: str


class MessageReply:
    """Messages posted with chat.postMessage and edited with chat.update."""

    limits = REPLY_LIMITS

    def __init__(self, place: Place, budgets: WorkspaceBudgets, recording: Recording | None = None) -> None:
        self._place = place
        self._budgets = budgets
        self._budget = ReplyBudget(budgets.limits)
        self._recording = recording
        self._waiting = Waiting(place, budgets, recording)
        self._model = ""

    async def show_waiting(self) -> None:
        await self._waiting.show()

    async def begin(self) -> bool:
        return await self._budget.begin((self._budgets.updates,))

    def model_line(self, model: str, *, first_reply: bool) -> str:
        self._model = model  # shown as a context block under the final text
        return ""

    async def post(self, text: str, *, final: bool) -> str:
        place = self._place
        placeholder = await self._waiting.take_placeholder()
        async with self._budget.post(
            (self._budgets.updates,) if placeholder else (self._budgets.posts(place.channel),)
        ):
            mrkdwn = to_mrkdwn(text)
            blocks = blocks_with_model(mrkdwn, self._model) if final else None
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
        blocks = blocks_with_model(mrkdwn, self._model) if final else None
        async with await self._budget.edit((self._budgets.updates,), final=final):
            await self._place.client.chat_update(channel=self._place.channel, ts=handle, text=mrkdwn, blocks=blocks)
        if self._recording is not None:
            self._recording.shown(text)

    async def end(self) -> None:
        await self._budget.end()


class StreamReply:
    """Slack's native streaming (chat.startStream/appendStream/stopStream).

    Stream methods have their own tiers, so this surface spends them itself: appends only
    from spare budget (skipped text goes out with the next one), the first message's start
    and stop from the reservation made when this surface was chosen.

    The methods are called directly rather than through slack_sdk's `chat_stream` helper:
    the helper keeps text whose append failed in its buffer and sends it again with the
    next call, which would show it twice.
    """

    limits = STREAM_LIMITS

    def __init__(
        self, place: Place, budgets: WorkspaceBudgets, promise: str, recording: Recording | None = None
    ) -> None:
        """`promise`: the first message's start and stop, promised when this surface was chosen."""
        self._place = place
        self._budgets = budgets
        self._limits = budgets.limits
        self._recording = recording
        self._waiting = Waiting(place, budgets, recording)
        self._promise = promise
        self._first: str | None = None
        self._sent: dict[str, str] = {}  # per message: the text Slack has, before defusing
        self._not_streaming: set[str] = set()  # expired streams and plain fallback messages
        # Messages whose last append was cut short (the bot stopping): Slack may or may not
        # have that text, so the stream ends empty and the message is rewritten whole.
        self._unsure: set[str] = set()
        self._model = ""

    async def show_waiting(self) -> None:
        await self._waiting.show()

    async def begin(self) -> bool:
        return True  # its appends are spare writes; its start and stop are promised

    async def end(self) -> None:
        return None

    def model_line(self, model: str, *, first_reply: bool) -> str:
        self._model = model  # added as a context block when the stream stops
        return ""

    async def post(self, text: str, *, final: bool) -> str:
        place = self._place
        assert place.thread_ts is not None, "streams are only chosen for threads"
        placeholder = await self._waiting.take_placeholder()
        if placeholder is not None:  # a stream is a new message: the placeholder goes
            try:
                await place.client.chat_delete(channel=place.channel, ts=placeholder)
            except SlackApiError as error:
                log.warning("slack_placeholder_not_removed", error=error.response.get("error"))
        promised = self._promise if self._first is None else None  # the first message's start and stop
        try:
            async with self._limits.write((self._budgets.stream_starts,)):
                response = await place.client.chat_startStream(
                    channel=place.channel,
                    thread_ts=place.thread_ts,
                    markdown_text=defuse_mentions(text),
                    recipient_team_id=place.team,
                    recipient_user_id=place.user,
                )
        except SlackApiError as error:
            await self._limits.release((self._budgets.stream_stops,), promised)
            return await self._post_plain(text, error)
        finally:
            await self._limits.release((self._budgets.stream_starts,), promised)
        ts = str(response["ts"])
        await self._posted(ts, text, stream=True)
        if self._first is None:
            self._first = ts
        if final:
            await self._stop(ts, text)
        return ts

    async def _post_plain(self, text: str, error: SlackApiError) -> str:
        """No native stream here (channel type, app or workspace settings): post a plain message
        instead, which later edits change with chat.update."""
        place = self._place
        log.warning("slack_stream_unavailable", channel=place.channel, error=error.response.get("error"))
        async with self._limits.write((self._budgets.posts(place.channel),)):
            response = await place.client.chat_postMessage(
                channel=place.channel,
                thread_ts=place.thread_ts,
                text=to_mrkdwn(text),
                unfurl_links=False,
                unfurl_media=False,
            )
        ts = str(response["ts"])
        self._not_streaming.add(ts)
        await self._posted(ts, text, stream=False)
        return ts

    async def edit(self, handle: str, text: str, *, final: bool) -> None:
        if handle in self._not_streaming or not text.startswith(self._sent.get(handle, "")):
            await self._update(handle, text, final)
            return
        if final:
            await self._stop(handle, text)
            return
        delta = self._delta(handle, text)
        if not delta:
            return
        if (charge := await self._limits.spare((self._budgets.appends,))) is None:
            raise EditSkipped("no chat.appendStream to spare")
        async with charge:
            request = self._place.client.chat_appendStream(channel=self._place.channel, ts=handle, markdown_text=delta)
            await self._call(handle, text, final, request)

    async def _stop(self, handle: str, text: str) -> None:
        unsure = handle in self._unsure
        try:
            async with self._limits.write((self._budgets.stream_stops,)):
                delta = "" if unsure else self._delta(handle, text)
                stop = self._place.client.chat_stopStream(
                    channel=self._place.channel,
                    ts=handle,
                    markdown_text=delta or None,
                    blocks=[model_context(self._model)] if self._model else None,
                )
                await self._call(handle, text, True, stop)
        finally:
            if handle == self._first:
                await self._limits.release((self._budgets.stream_stops,), self._promise)
        if unsure:
            await self._update(handle, text, True)

    async def _call(self, handle: str, text: str, final: bool, request: Awaitable[Any]) -> None:
        try:
            await request
            self._shown(handle, text)
        except asyncio.CancelledError:
            self._unsure.add(handle)
            raise
        except SlackApiError as error:
            if error.response.get("error") != "message_not_in_streaming_state":
                raise
            # Streams expire after about five minutes: finish the message with chat.update.
            log.info("slack_stream_expired", channel=self._place.channel, ts=handle)
            self._not_streaming.add(handle)
            await self._update(handle, text, final)

    async def _update(self, handle: str, text: str, final: bool) -> None:
        updates = (self._budgets.updates,)
        charge = self._limits.write(updates) if final else await self._limits.spare(updates)
        if charge is None:
            raise EditSkipped("no chat.update to spare")
        mrkdwn = to_mrkdwn(text)
        blocks = blocks_with_model(mrkdwn, self._model) if final else None
        async with charge:
            await self._place.client.chat_update(channel=self._place.channel, ts=handle, text=mrkdwn, blocks=blocks)
        self._shown(handle, text)

    async def _posted(self, ts: str, text: str, *, stream: bool) -> None:
        self._sent[ts] = text
        if self._recording is not None:
            await self._recording.posted({"channel": self._place.channel, "ts": ts, "stream": stream}, text)

    def _shown(self, handle: str, text: str) -> None:
        self._sent[handle] = text
        if self._recording is not None:
            self._recording.shown(text)

    def _delta(self, handle: str, text: str) -> str:
        """The defused text Slack doesn't have yet. Defusing the whole text, not the delta, catches
        a mention split between two appends ("<" at the end of one, "!channel>" in the next)."""
        return defuse_mentions(text)[len(defuse_mentions(self._sent.get(handle, ""))) :]


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

    async def show(self) -> None:
        await asyncio.sleep(WAITING_DELAY)  # a quick answer needs no indicator
        if self._place.thread_ts is not None and await self._status_shown(self._place.thread_ts):
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
