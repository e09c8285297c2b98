"""The platform-neutral flow of one turn: history → prompt → model → live reply → history."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import structlog

from bot.burst import BEHIND_FIRST_WRITES_SECONDS, ModelCallsFirst
from bot.errors import ReplyFailure
from bot.loop import finish_even_if_cancelled, retrieve_outcome
from bot.model import ChatMessage, ModelBackend
from bot.prompt import PromptBuilder
from bot.render import LiveRenderer, RenderResult, ReplySurface
from bot.sse import TextDemand
from bot.store import HistoryStore, StoredMessage

log = structlog.get_logger(__name__)

T = TypeVar("T")
# Tokenizing more than this many characters on the event loop would stall other replies.
_OFF_LOOP_CHARS = 20_000
PREPARING_MAX = 16


@dataclass(frozen=True)
class Turn:
    """One message addressed to the bot, as an adapter sees it."""

    thread: str  # the conversation's key, e.g. "discord:thread:123"
    author_id: str
    author_name: str
    text: str
    # The key was made from this very message (a thread started from it), so it has no
    # history: the model is asked without waiting for Redis, which stores the message meanwhile.
    # Its first words wait for the thread, opened once a burst has asked the model (see
    # `bot.burst`): so does reading its answer.
    new_conversation: bool = False


class KeyedLocks:
    """One lock per conversation, so a follow-up waits for the previous reply's final text."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class ChatCore:
    def __init__(
        self,
        backend: ModelBackend,
        store: HistoryStore,
        prompts: PromptBuilder,
        preparing: asyncio.Semaphore | None = None,
        model_calls: ModelCallsFirst | None = None,
    ) -> None:
        """`preparing`: how many turns read their history and build their prompt at once.

        Each is ~0.3 ms of the event loop (Redis reply, decoding, prompt); a burst of hundreds
        prepared in one go would hold back the first words of the replies already answered.
        Cores sharing one event loop may share it.

        `model_calls`: what waits for a burst's model requests (the backend's answers too, when
        it was given the same one).
        """
        self.backend = backend
        self.store = store
        self._prompts = prompts
        self._locks = KeyedLocks()
        self._preparing = preparing or asyncio.Semaphore(PREPARING_MAX)
        self.model_calls = model_calls or ModelCallsFirst()

    def describe(self) -> str:
        return self.backend.describe()

    async def answer(self, turn: Turn, surface: ReplySurface) -> RenderResult:
        """Answer one turn on `surface`; never raises for model, store or prompt failures."""
        started = time.perf_counter()
        async with self._locks.hold(turn.thread):
            called = self.model_calls.arrived()
            try:
                result = await self._answer(turn, surface, called)
            finally:
                called()
        self._log_result(turn, result, started)
        return result

    async def _answer(self, turn: Turn, surface: ReplySurface, called: Callable[[], None]) -> RenderResult:
        try:
            async with self._preparing:
                messages, stored = await self._prepare(turn)
        except ReplyFailure as failure:
            log.warning("turn_refused", thread=turn.thread, kind=failure.kind.name, detail=failure.detail)
            called()
            return await LiveRenderer(surface).render(_failing(failure))
        # The renderer tells the model stream when it will show text next; the stream tells
        # when the request is out.
        demand = TextDemand(on_asked=called, shown_after_burst=turn.new_conversation)
        pieces = self.backend.stream(messages, demand)
        if stored is not None:
            pieces = _once_stored(stored, pieces)
        renderer = LiveRenderer(surface, demand=demand)
        try:
            result = await renderer.render(pieces)
        except asyncio.CancelledError:
            # Stopping: an answer the person already sees whole is still remembered.
            await finish_even_if_cancelled(self._remember(turn, renderer.result(), stored))
            raise
        await finish_even_if_cancelled(self._remember(turn, result, stored))
        return result

    async def reset(self, thread: str) -> None:
        async with self._locks.hold(thread):
            await self.store.clear(thread)

    async def _prepare(self, turn: Turn) -> tuple[list[ChatMessage], asyncio.Task[object] | None]:
        """The prompt, and the user's message being stored when that happens alongside the model call."""
        tokens = await _maybe_off_loop(len(turn.text), self._prompts.check_fits, turn.text)
        message = StoredMessage("user", turn.text, turn.author_id, turn.author_name, time.time(), tokens)
        if turn.new_conversation:
            stored = asyncio.create_task(self._store_once_called(turn.thread, message))
            stored.add_done_callback(retrieve_outcome)  # a failure is reported by the reply
            return self._prompts.build([message]), stored
        history = await self.store.begin_turn(turn.thread, message)
        size = sum(len(m.content) for m in history)
        return await _maybe_off_loop(size, self._prompts.build, history), None

    async def _store_once_called(self, thread: str, message: StoredMessage) -> None:
        # A beat after the burst's model requests, after the writes the platform needs for the
        # first words too (Discord: a thread to post them in); the words wait for this write.
        await self.model_calls.settled(then=BEHIND_FIRST_WRITES_SECONDS)
        await self.store.begin_turn(thread, message)

    async def _remember(self, turn: Turn, result: RenderResult, stored: asyncio.Task[object] | None) -> None:
        if stored is not None:
            await asyncio.wait({stored})  # the question lands before its answer, and before a follow-up
        if not result.complete:
            return  # a partial answer is shown with its reason but not fed back to the model
        tokens = await _maybe_off_loop(len(result.text), self._prompts.count, result.text)
        try:
            await self.store.add_reply(turn.thread, StoredMessage("assistant", result.text, at=time.time(), tokens=tokens))
        except ReplyFailure as failure:
            log.error("reply_not_saved", thread=turn.thread, detail=failure.detail)

    @staticmethod
    def _log_result(turn: Turn, result: RenderResult, started: float) -> None:
        log.info(
            "turn_finished",
            thread=turn.thread,
            outcome=result.failure.kind.name if result.failure else "OK",
            detail=result.failure.detail if result.failure else None,
            chars=len(result.text),
            messages=len(result.messages),
            writes=result.writes,
            seconds=round(time.perf_counter() - started, 3),
        )


async def _once_stored(stored: asyncio.Task[object], pieces: AsyncIterator[str]) -> AsyncIterator[str]:
    """The model's pieces, shown only once the user's message is stored.

    The model request goes out first (iterating `pieces` sends it); a store that failed
    meanwhile ends the reply with its reason instead of an answer that would be forgotten.
    """
    checked = False
    try:
        async for piece in pieces:
            if not checked:
                await stored
                checked = True
            yield piece
        await stored
    finally:
        aclose = getattr(pieces, "aclose", None)
        if aclose is not None:
            await aclose()


async def _failing(failure: ReplyFailure) -> AsyncIterator[str]:
    raise failure
    yield ""  # pragma: no cover - makes this an async generator


async def _maybe_off_loop(size: int, function: Callable[..., T], *args: object) -> T:
    if size > _OFF_LOOP_CHARS:
        return await asyncio.to_thread(function, *args)
    return function(*args)
