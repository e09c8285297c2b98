"""The platform-neutral flow of one turn: history → prompt → model → live reply → history."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import structlog

from bot.errors import ReplyFailure
from bot.loop import finish_even_if_cancelled
from bot.model import ChatMessage, ModelBackend
from bot.prompt import PromptBuilder
from bot.render import LiveRenderer, RenderResult, ReplySurface
from bot.store import HistoryStore, StoredMessage

log = structlog.get_logger(__name__)

T = TypeVar("T")
# Tokenizing more than this many characters (~10 ms) on the event loop would pause every other
# reply's stream for that long; above it the work goes to a thread.
_OFF_LOOP_CHARS = 20_000


@dataclass(frozen=True)
class Turn:
    """One message addressed to the bot, as an adapter sees it."""

    thread: str  # the conversation's key, e.g. "discord:conv:123"
    author_id: str
    author_name: str
    text: str


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
    def __init__(self, backend: ModelBackend, store: HistoryStore, prompts: PromptBuilder) -> None:
        self.backend = backend
        self.store = store
        self._prompts = prompts
        self._locks = KeyedLocks()

    def describe(self) -> str:
        return self.backend.describe()

    async def answer(self, turn: Turn, surface: ReplySurface) -> RenderResult:
        """Answer one turn on `surface`; never raises for model, store or prompt failures."""
        started = time.perf_counter()
        async with self._locks.hold(turn.thread):
            result = await self._answer(turn, surface)
        _log_result(turn, result, started)
        return result

    async def reset(self, thread: str) -> None:
        async with self._locks.hold(thread):
            await self.store.clear(thread)

    async def _answer(self, turn: Turn, surface: ReplySurface) -> RenderResult:
        try:
            messages = await self._prepare(turn)
        except ReplyFailure as failure:
            log.warning("turn_refused", thread=turn.thread, kind=failure.kind.name, detail=failure.detail)
            return await LiveRenderer(surface).render(_failing(failure))
        renderer = LiveRenderer(surface)
        try:
            result = await renderer.render(self.backend.stream(messages))
        except asyncio.CancelledError:
            # Stopping: an answer the person already sees whole is still remembered.
            await finish_even_if_cancelled(self._remember(turn, renderer.result()))
            raise
        await finish_even_if_cancelled(self._remember(turn, result))
        return result

    async def _prepare(self, turn: Turn) -> list[ChatMessage]:
        """Store the person's message (refused first if it can never fit) and build the prompt."""
        tokens = await _maybe_off_loop(len(turn.text), self._prompts.check_fits, turn.text)
        message = StoredMessage("user", turn.text, turn.author_id, turn.author_name, time.time(), tokens)
        history = await self.store.begin_turn(turn.thread, message)
        size = sum(len(stored.content) for stored in history)
        return await _maybe_off_loop(size, self._prompts.build, history)

    async def _remember(self, turn: Turn, result: RenderResult) -> None:
        if not result.complete:
            return  # a partial answer is shown with its reason but not fed back to the model
        tokens = await _maybe_off_loop(len(result.text), self._prompts.count, result.text)
        try:
            await self.store.add_reply(turn.thread, StoredMessage("assistant", result.text, at=time.time(), tokens=tokens))
        except ReplyFailure as failure:
            log.error("reply_not_saved", thread=turn.thread, detail=failure.detail)


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


async def _failing(failure: ReplyFailure) -> AsyncIterator[str]:
    raise failure
    yield ""  # pragma: no cover - makes this an async generator


async def _maybe_off_loop(size: int, function: Callable[..., T], *args: object) -> T:
    if size > _OFF_LOOP_CHARS:
        return await asyncio.to_thread(function, *args)
    return function(*args)
