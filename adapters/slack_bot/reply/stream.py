"""Slack's native stream as a reply surface, each tool call in it a task card (see .tool_cards)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError

from adapters.shared.reply_records import Recording
from adapters.slack_bot.reply.stream_cards import StreamCards
from adapters.slack_bot.reply.surfaces import (
    Place,
    Waiting,
    WorkspaceBudgets,
    blocks_with_model,
    model_context,
    post_question,
    settle_question,
)
from adapters.slack_bot.reply.text import STREAM_LIMITS, defuse_mentions, to_mrkdwn
from adapters.slack_bot.reply.tool_cards import (
    THOUGHT_CARD,
    Chunk,
    InlineLines,
    sources_context,
    text_chunk,
    thought_chunk,
)
from adapters.slack_bot.reply.vote_blocks import vote_actions
from bot.reply.surface import EditSkipped
from bot.reply.thought_view import thought_line
from bot.tools.consent import ConfirmRequest
from bot.tools.events import ToolEvent, ToolSources
from bot.tools.gate import Decision

log = structlog.get_logger(__name__)

# A card that comes before any text waits this long for the reply's first text to open the stream: the card then
# follows the text written before its call, and still shows well within 300 ms of the call.
OPEN_GRACE_SECONDS = 0.1
# chat.startStream errors that say nothing about the place: it may stream the next time.
PASSING_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "request_timeout", "service_unavailable"})


class StreamReply:
    """Slack's native streaming (chat.startStream/appendStream/stopStream).

    Stream methods have their own tiers, so this surface spends them itself: appends only
    from spare budget (skipped text goes out with the next one), the first message's start
    and stop from the reservation made when this surface was chosen.

    The methods are called directly rather than through slack_sdk's `chat_stream` helper:
    the helper keeps text whose append failed in its buffer and sends it again with the
    next call, which would show it twice.

    Tool calls (a ToolView): a task card per call, sent in the stream as `task_update` chunks. A card's
    update is a spare append too (.stream_cards): one that can't go now waits, coalesced with that card's later
    updates, for the stream's next write (text, or the stop) or a retry a second later. A card that comes before
    any text opens the stream itself, with the start the first text would have spent; that text then
    goes into it. The stop adds the sources' context line. Where the stream fell back to a plain message,
    the calls are lines of its text instead (.tool_cards.InlineLines).
    """

    limits = STREAM_LIMITS

    def __init__(
        self,
        place: Place,
        budgets: WorkspaceBudgets,
        promise: str,
        recording: Recording | None = None,
        *,
        on_unavailable: Callable[[], None] | None = None,
        votes: str | None = None,
    ) -> None:
        """`promise`: the first message's start and stop, promised when this surface was chosen.
        `on_unavailable`: told when Slack won't stream here (so the place's next replies don't try).
        `votes`: the answer whose 👍 / 👎 its finished messages carry."""
        self._votes = [vote_actions(votes)] if votes else []
        self._place = place
        self._budgets = budgets
        self._limits = budgets.limits
        self._recording = recording
        self._waiting = Waiting(place, budgets, recording)
        self._promise = promise
        self._on_unavailable = on_unavailable
        self._first: str | None = None
        self._current: str | None = None  # the latest message
        self._early: str | None = None  # a message a card opened before any text: the first post fills it
        self._sent: dict[str, str] = {}  # per message: the text Slack has, before defusing
        self._not_streaming: set[str] = set()  # expired streams and plain fallback messages
        self._stopped: set[str] = set()
        # Messages whose last append was cut short (the bot stopping): Slack may or may not
        # have that text, so the stream ends empty and the message is rewritten whole.
        self._unsure: set[str] = set()
        self._model = ""
        self._events: list[ToolEvent] = []  # for lines, should the stream fall back
        self._lines: InlineLines | None = None  # the reply fell back to plain messages
        self._sources: tuple[str, ...] = ()
        self._writing = asyncio.Lock()  # stream calls, in order (a card's updates must not overtake each other)
        self._updating = asyncio.Lock()  # chat.update of plain messages
        self._posting = asyncio.Event()
        self._cards = StreamCards(
            place,
            budgets,
            self._writing,
            current=lambda: self._current,
            streaming=self._streaming,
            expired=self._not_streaming.add,
        )

    def citation_mark(self, number: int, url: str) -> str:
        """A knowledge passage's [n] as a link (Markdown, which Slack's text and streams both turn into <url|[n]>)."""
        return f"[[{number}]]({url})"

    async def show_waiting(self) -> None:
        await self._waiting.show()

    async def begin(self) -> bool:
        return True  # its appends are spare writes; its start and stop are promised

    async def end(self) -> None:
        await self._cards.close()

    def model_line(self, model: str, *, first_reply: bool) -> str:
        self._model = model  # added as a context block when the stream stops
        return ""

    def keep_thought(self, thought: str, seconds: int) -> str:
        """A thinking model's thought: a task card before the answer (a line, where the stream fell back)."""
        if self._lines is not None:
            return f"_{thought_line(seconds)}_\n\n"
        self._cards.add_card(thought_chunk(thought, seconds))
        return ""

    # -- text ----------------------------------------------------------------------------

    async def post(self, text: str, *, final: bool) -> str:
        assert self._place.thread_ts is not None, "streams are only chosen for threads"
        self._posting.set()
        await self._drop_placeholder()
        async with self._writing:
            handle, self._early = self._early, None
            filling = handle is not None
            if handle is None:
                if self._current is not None and self._lines is not None:
                    self._lines.new_message()
                handle = await self._open(text, final)
        if filling:
            await self._fill(handle, text, final)
        elif final and handle not in self._not_streaming:
            await self._stop(handle, text)
        return handle

    async def _open(self, text: str, final: bool) -> str:
        """A new message with `text` and the cards waiting: a stream, else (Slack won't stream here) a plain
        message, which later edits change with chat.update."""
        if self._lines is not None:
            return await self._post_plain(text, final)
        try:
            ts = await self._start_stream(**_content(defuse_mentions(text), self._cards.take()))
        except SlackApiError as error:
            self._fall_back(error, text)
            return await self._post_plain(text, final)
        await self._posted(ts, text, stream=True)
        return ts

    async def _start_stream(self, **content: Any) -> str:
        """chat.startStream on a start from the budget (the first message's, promised); on a SlackApiError its
        promised stop is given back too."""
        place = self._place
        promised = self._promise if self._first is None else None  # the first message's start and stop
        try:
            async with self._limits.write((self._budgets.stream_starts,)):
                response = await place.client.chat_startStream(
                    channel=place.channel,
                    thread_ts=str(place.thread_ts),
                    recipient_team_id=place.team,
                    recipient_user_id=place.user,
                    **content,
                )
        except SlackApiError:
            await self._limits.release((self._budgets.stream_stops,), promised)
            raise
        finally:
            await self._limits.release((self._budgets.stream_starts,), promised)
        ts = self._current = str(response["ts"])
        self._first = self._first or ts
        return ts

    async def _fill(self, ts: str, text: str, final: bool) -> None:
        """The first text, into the message a card opened."""
        if ts in self._not_streaming:
            await self._update(ts, text, final, must=True)
        elif final:
            await self._stop(ts, text)
        else:
            await self._append(ts, text, must=True)

    async def edit(self, handle: str, text: str, *, final: bool) -> None:
        if self._lines is not None and handle == self._current:
            self._lines.saw(text)  # a call finishing from now on follows this text
        if handle in self._not_streaming or not text.startswith(self._sent.get(handle, "")):
            await self._update(handle, text, final)
        elif final:
            await self._stop(handle, text)
        elif self._delta(handle, text):
            await self._append(handle, text, must=False)

    async def _append(self, handle: str, text: str, *, must: bool) -> None:
        appends = (self._budgets.appends,)
        charge = self._limits.write(appends) if must else await self._limits.spare(appends)
        if charge is None:
            raise EditSkipped("no chat.appendStream to spare")
        async with self._writing, charge:
            cards = self._cards.take()
            content = _content(self._delta(handle, text), cards)
            if not content:
                return
            request = self._place.client.chat_appendStream(channel=self._place.channel, ts=handle, **content)
            try:
                await self._call(handle, text, False, request, must=must)
            except BaseException:
                self._cards.put_back(cards)
                raise

    async def _stop(self, handle: str, text: str) -> None:
        unsure = handle in self._unsure
        try:
            async with self._writing, self._limits.write((self._budgets.stream_stops,)):
                delta = "" if unsure else self._delta(handle, text)
                blocks = self._under() + ([model_context(self._model)] if self._model else [])
                stop = self._place.client.chat_stopStream(
                    channel=self._place.channel, ts=handle, blocks=blocks or None, **_content(delta, self._cards.take())
                )
                await self._call(handle, text, True, stop)
                self._stopped.add(handle)
        finally:
            if handle == self._first:
                await self._limits.release((self._budgets.stream_stops,), self._promise)
        if unsure:
            await self._update(handle, text, True)

    async def _call(self, handle: str, text: str, final: bool, request: Awaitable[Any], *, must: bool = False) -> None:
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
            await self._update(handle, text, final, must=must)

    async def _update(self, handle: str, text: str, final: bool, *, must: bool = False) -> None:
        updates = (self._budgets.updates,)
        charge = self._limits.write(updates) if final or must else await self._limits.spare(updates)
        if charge is None:
            raise EditSkipped("no chat.update to spare")
        async with self._updating:
            mrkdwn = to_mrkdwn(self._with_lines(handle, text))
            blocks = blocks_with_model(mrkdwn, self._model, self._under()) if final else None
            async with charge:
                await self._place.client.chat_update(channel=self._place.channel, ts=handle, text=mrkdwn, blocks=blocks)
        self._shown(handle, text)

    async def _post_plain(self, text: str, final: bool = False) -> str:
        place = self._place
        mrkdwn = to_mrkdwn(self._with_lines(None, text))
        async with self._limits.write((self._budgets.posts(place.channel),)):
            response = await place.client.chat_postMessage(
                channel=place.channel,
                thread_ts=place.thread_ts,
                text=mrkdwn,
                blocks=blocks_with_model(mrkdwn, self._model, self._votes) if final else None,
                unfurl_links=False,
                unfurl_media=False,
            )
        ts = self._current = str(response["ts"])
        self._first = self._first or ts
        self._not_streaming.add(ts)
        await self._posted(ts, text, stream=False)
        return ts

    def _fall_back(self, error: SlackApiError, text: str = "") -> None:
        """No native stream here (channel type, app or workspace settings): plain messages from now on, the
        calls as lines of their text (those that came before it follow `text`, the text being posted)."""
        reason = error.response.get("error")
        log.warning("slack_stream_unavailable", channel=self._place.channel, error=reason)
        if reason not in PASSING_ERRORS and self._on_unavailable is not None:
            self._on_unavailable()
        self._lines = InlineLines()
        self._lines.saw(text)
        for event in self._events:
            self._lines.add(event)
        self._cards.take()

    def _with_lines(self, handle: str | None, text: str) -> str:
        """`text` with the calls' lines, for the latest plain message (`handle` None: a new one)."""
        if self._lines is None or handle not in (None, self._current):
            return text
        self._lines.saw(text)
        return self._lines.render(text)

    def _under(self) -> list[dict[str, Any]]:
        """The blocks under the last text: the sources (where the calls are no lines), and the vote buttons."""
        sources = [sources_context(self._sources)] if self._sources and self._lines is None else []
        return sources + self._votes

    async def _posted(self, ts: str, text: str, *, stream: bool) -> None:
        self._sent[ts] = text
        if self._recording is not None:
            await self._recording.posted({"channel": self._place.channel, "ts": ts, "stream": stream}, text)

    def _shown(self, handle: str, text: str) -> None:
        self._sent[handle] = text
        if self._recording is not None:
            self._recording.shown(text)

    def _streaming(self, handle: str) -> bool:
        """Whether the message is still a stream (not expired, stopped, or a plain message)."""
        return handle not in self._not_streaming and handle not in self._stopped

    def _delta(self, handle: str, text: str) -> str:
        """The defused text Slack doesn't have yet. Defusing the whole text, not the delta, catches
        a mention split between two appends ("<" at the end of one, "!channel>" in the next)."""
        return defuse_mentions(text)[len(defuse_mentions(self._sent.get(handle, ""))) :]

    async def _drop_placeholder(self) -> None:
        self._waiting.stop()
        placeholder = await self._waiting.take_placeholder()
        if placeholder is not None:  # a stream is a new message: the placeholder goes
            try:
                await self._place.client.chat_delete(channel=self._place.channel, ts=placeholder)
            except SlackApiError as error:
                log.warning("slack_placeholder_not_removed", error=error.response.get("error"))

    # -- tools -----------------------------------------------------------------------------

    async def show_tool(self, event: ToolEvent) -> None:
        self._events.append(event)
        if isinstance(event, ToolSources):
            self._sources = event.urls
        if self._lines is not None:
            self._lines.add(event)
            if not isinstance(event, ToolSources):  # the final text shows them
                await self._show_lines()
            return
        if isinstance(event, ToolSources):
            return  # the stop shows them
        self._cards.add(event)
        if self._current is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._posting.wait(), OPEN_GRACE_SECONDS)
            async with self._writing:
                if self._current is None:
                    await self._open_for_cards()
        await self._cards.send()

    async def _open_for_cards(self) -> None:
        """The first message, opened by the cards waiting (the caller holds `_writing`)."""
        await self._drop_placeholder()
        try:
            ts = await self._start_stream(chunks=self._cards.take())
        except SlackApiError as error:
            self._fall_back(error)
            if self._with_lines(None, "").strip():
                self._early = await self._post_plain("")
            return
        self._early = ts
        await self._posted(ts, "", stream=True)

    async def _show_lines(self) -> None:
        """A call's line, shown now on a spare update (the reply's next edit shows it otherwise)."""
        handle = self._current
        if handle is None:
            async with self._writing:
                if self._current is None and self._with_lines(None, "").strip():
                    self._early = await self._post_plain("")
            return
        charge = await self._limits.spare((self._budgets.updates,))
        if charge is None:
            return
        async with self._updating, charge:
            text = to_mrkdwn(self._with_lines(handle, self._sent.get(handle, "")))
            await self._place.client.chat_update(channel=self._place.channel, ts=handle, text=text)

    # -- asking ----------------------------------------------------------------------------

    async def tools_running(self, names: Sequence[str]) -> None:
        if self._recording is not None:
            await self._recording.tools_running(names)

    async def ask_to_run(self, request: ConfirmRequest) -> str:
        """Run / Cancel buttons in the reply's thread (see adapters.slack_bot.buttons.tools)."""
        async with self._limits.write((self._budgets.posts(self._place.channel),)):
            return await post_question(self._place, request)

    async def settle(self, handle: str, request: ConfirmRequest, decision: Decision) -> None:
        async with self._limits.write((self._budgets.updates,)):
            await settle_question(self._place, handle, request, decision)


def _content(markdown: str, cards: list[Chunk]) -> dict[str, Any]:
    """A stream call's text and cards: text alone as `markdown_text`, else everything as `chunks` (as
    slack_sdk's chat_stream helper sends them)."""
    if not cards:
        return {"markdown_text": markdown} if markdown else {}
    first = [card for card in cards if card["id"] == THOUGHT_CARD]  # the thought's card goes before the answer
    rest = [card for card in cards if card["id"] != THOUGHT_CARD]
    return {"chunks": first + ([text_chunk(markdown)] if markdown else []) + rest}
