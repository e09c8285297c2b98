"""The live reply renderer: shows a model's text as it streams, on any platform.

The adapter provides a `ReplySurface` (post, edit, length limit). The renderer posts as soon as text exists, edits as
the model writes (the surface skips what its platform has no room for), splits long replies at readable boundaries
without breaking code fences, and always lands the final text, with a short reason appended when the model failed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from bot.errors import FailureKind, ReplyFailure
from bot.loop import aclose_if_any, cancel_until_done, finish_even_if_cancelled
from bot.reply.split import split_head, with_note
from bot.reply.surface import EditSkipped, ReplySurface
from bot.tools.events import Tail

log = structlog.get_logger(__name__)

WARNING_PREFIX = "⚠️"  # starts the line saying why an answer failed
NOTICE_PREFIX = "ℹ️"  # starts each notice under an answer (files skipped, history left out)
# How soon an interim edit that was skipped (or failed) is tried again, even if the model sends nothing more: a stalled
# answer's shown text lags what it wrote by at most this. Each try may be a Redis call: at 0.5 s, fifty replies
# streaming at once on Discord (whose global limit keeps every slot for their finals) would try 100 times a second.
RETRY_EDIT_SECONDS = 1.0
# A cancelled waiting indicator ("typing…") still running after this long is cancelled again: it has nothing to finish.
WAITING_RECANCEL_SECONDS = 1.0
# Failures after which the text shown is still the complete answer: it is stored as answered, not as failed.
_COMPLETE_KINDS = frozenset({FailureKind.LENGTH, FailureKind.BUDGET_REACHED})


@dataclass
class RenderResult:
    text: str  # everything the model wrote
    failure: ReplyFailure | None
    messages: list[str] = field(default_factory=list)  # what each message finally shows
    writes: int = 0
    first_shown_at: float | None = None  # the renderer's clock when text first became visible
    saved: bool = True  # False: a complete answer that could not be added to the history
    model: str = ""  # the name of the model that answered (set by the core)
    sources: tuple[tuple[str, str], ...] = ()  # the sources listed under the answer: (label, url or "")

    @property
    def complete(self) -> bool:
        """The model finished its answer (possibly at the length limit)."""
        return bool(self.text) and (self.failure is None or self.failure.kind in _COMPLETE_KINDS)

    @property
    def outcome(self) -> str:
        """One word for the operator: OK, the failure's kind, or NOT_SAVED."""
        if self.failure is not None:
            return self.failure.kind.name
        return "OK" if self.saved else "NOT_SAVED"


def failure_note(failure: ReplyFailure) -> str:
    return f"{WARNING_PREFIX} {failure.reason}"


class LiveRenderer:
    def __init__(
        self, surface: ReplySurface, *, notices: Sequence[str] = (), footer: str = "", clock: Any = time.monotonic
    ) -> None:
        """`notices`: short lines the final text ends with (files skipped, history left out); `footer`: a last line
        after them (which model answered)."""
        self._surface = surface
        self._notices = tuple(notices)
        self._footer = footer
        self._limits = surface.limits
        self._clock = clock
        self._parts: list[str] = []
        self._tail = ""  # shown after the text while it is written (see bot.tools.events.Tail)
        self._tail_stays = True
        self._changed = asyncio.Event()
        self._done = asyncio.Event()
        self._failure: ReplyFailure | None = None
        self._handle: Any = None
        self._start = 0  # where the current message begins in the model's text
        self._reopen = ""  # code fence reopened at the top of the current message
        self._shown = ""
        self._last_write = 0.0
        self._sealed: list[str] = []
        self._writes = 0
        self._first_shown_at: float | None = None
        self._waiting: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None

    def add_notice(self, notice: str) -> None:
        """A notice for the end of the final text, learnt while the answer is written."""
        self._notices += (notice,)

    def stop(self, failure: ReplyFailure) -> None:
        """End the answer now: the model is no longer read, and the text so far stays with `failure`'s reason."""
        if self._reader is not None and not self._reader.done():
            self._failure = failure
            self._reader.cancel()

    async def render(self, pieces: AsyncIterator[str | Tail]) -> RenderResult:
        # The reader first: tasks start in order, so the model request is on its way before
        # the surface does anything for the waiting indicator (such as opening a thread).
        reader = self._reader = asyncio.create_task(self._read(pieces))
        # Stopped before its first step, the reader never runs its `finally`: the writing must still learn it ended.
        reader.add_done_callback(self._reader_ended)
        self._waiting = asyncio.create_task(self._show_waiting())
        try:
            await self._write_loop()
        finally:
            self._stop_waiting()
            reader.cancel()  # a no-op once it has ended
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        return self.result()

    def _reader_ended(self, _: asyncio.Task[None]) -> None:
        self._done.set()
        self._changed.set()

    def result(self) -> RenderResult:
        """What the model wrote and what is shown, so far (all of it once render() returned)."""
        return RenderResult(
            self._text(), self._failure, [*self._sealed, self._shown], self._writes, self._first_shown_at
        )

    # -- reading the model ---------------------------------------------------------

    async def _read(self, pieces: AsyncIterator[str | Tail]) -> None:
        try:
            async for piece in pieces:
                if isinstance(piece, Tail):
                    self._tail, self._tail_stays = piece.text, piece.stays
                else:
                    self._parts.append(piece)
                self._changed.set()
        except ReplyFailure as failure:
            self._failure = failure
        except Exception as error:
            log.exception("model_stream_crashed")
            self._failure = ReplyFailure(FailureKind.INTERNAL, f"{type(error).__name__}: {error}")
        finally:
            await aclose_if_any(pieces)  # frees the model connection even when we stop early
            self._done.set()
            self._changed.set()

    def _text(self) -> str:
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    # -- writing -------------------------------------------------------------------

    async def _write_loop(self) -> None:
        try:
            await self._changed.wait()
            live = not self._done.is_set() and await self._surface.begin()
            if not live:
                await self._done.wait()  # held: nothing to show until the answer is whole
            while not self._done.is_set():
                self._changed.clear()
                shown_all = await self._write_progress()
                await self._pause(retrying=not shown_all)
                if shown_all:
                    await self._changed.wait()
        except asyncio.CancelledError:
            self._failure = self._failure or ReplyFailure(FailureKind.INTERRUPTED, "reply cancelled")
            await asyncio.shield(self._write_final_safely())
            raise
        # The model is done: its final text lands even if the bot is stopping meanwhile.
        await finish_even_if_cancelled(self._write_final())

    async def _pause(self, *, retrying: bool) -> None:
        if self._handle is None:
            return
        delay = RETRY_EDIT_SECONDS if retrying else self._limits.min_edit_interval - (self._clock() - self._last_write)
        if delay > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._done.wait(), delay)

    async def _write_progress(self) -> bool:
        """Show the text so far; False if it could not be shown now (no write to spare, or the edit failed)."""
        text = self._text()
        await self._seal_overflow(text, streaming=True)
        body = self._body(text)
        if not body.strip():
            if not self._tail.strip():
                return True
            body = ""
        shown = (body + self._tail if body else self._tail.lstrip()) + self._limits.indicator
        if self._handle is None:
            self._handle = await self._post(shown, final=False)
        elif shown != self._shown:
            await self._edit(shown, final=False)
        return self._shown == shown

    async def _write_final_safely(self) -> None:
        try:
            await asyncio.wait_for(self._write_final(), timeout=10)
        except Exception:
            log.exception("final_write_failed_during_cancel")

    async def _write_final(self) -> None:
        self._stop_waiting()
        text = self._final_source()
        await self._seal_overflow(text, streaming=False)
        shown = self._body(text)
        try:
            if self._handle is not None:
                await self._edit(shown, final=True)
            elif shown.strip():
                self._handle = await self._post(shown, final=True)
        finally:
            await self._surface.end()

    def _final_source(self) -> str:
        text = self._text() + (self._tail if self._tail_stays else "")  # a call still running stays shown
        if self._failure is None and not text.strip():
            self._failure = ReplyFailure(FailureKind.EMPTY, "no text")
        notes = [f"{NOTICE_PREFIX} {notice}" for notice in self._notices]
        if self._failure is not None:
            notes.append(failure_note(self._failure))
        if self._footer:
            notes.append(self._footer)
        if not notes:
            return text
        return with_note(text, "\n".join(notes), fence_in=self._body(text))

    def _body(self, text: str) -> str:
        return self._reopen + text[self._start :]

    async def _seal_overflow(self, text: str, *, streaming: bool) -> None:
        """Finish messages that are full and move the rest of the text to a new one."""
        limits = self._limits
        room = limits.max_length - (limits.measure(limits.indicator + self._tail) if streaming else 0)
        while limits.measure(self._body(text)) > room:
            piece, reopen = split_head(text[self._start :], self._reopen, limits.max_length, limits.measure)
            if self._handle is not None:
                await self._edit(piece.shown, final=True)
            else:
                await self._post(piece.shown, final=True)
            self._sealed.append(piece.shown)
            self._handle, self._shown = None, ""
            self._start += piece.consumed
            self._reopen = reopen

    async def _post(self, text: str, *, final: bool) -> Any:
        self._stop_waiting()
        handle = await self._surface.post(text, final=final)
        self._note_write(text)
        return handle

    async def _edit(self, text: str, *, final: bool) -> None:
        try:
            await self._surface.edit(self._handle, text, final=final)
        except EditSkipped:
            pass
        except Exception:
            if final:
                raise
            log.warning("interim_edit_failed", exc_info=True)  # the final edit will carry the text
        else:
            self._note_write(text)

    def _note_write(self, text: str) -> None:
        self._shown = text
        self._writes += 1
        self._last_write = self._clock()
        if self._first_shown_at is None:
            self._first_shown_at = self._last_write

    # -- waiting indicator ---------------------------------------------------------

    async def _show_waiting(self) -> None:
        try:
            await self._surface.show_waiting()
        except Exception:
            log.warning("waiting_indicator_failed", exc_info=True)

    def _stop_waiting(self) -> None:
        if self._waiting is not None and not self._waiting.done():
            # Cancelled again each second until it has ended (see cancel_until_done): an indicator whose cancellation
            # was lost would show "typing…" for good, and keep the whole reply (surface, messages, thread) in memory.
            cancel_until_done(self._waiting, WAITING_RECANCEL_SECONDS)
