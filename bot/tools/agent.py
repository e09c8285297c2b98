"""One answer with tools: the model is asked, the tools it calls are run (in parallel, each checked, and
asked about where it may change something), their results go back, and the model is asked again, up
to MAX_TOOL_ROUNDS rounds; then once more without tools. Text it writes before or between calls stays."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from bot.errors import FailureKind, ReplyFailure
from bot.loop import aclose_if_any, off_loop_if_large
from bot.model.backends import ChatMessage, ModelPiece, ToolSpec
from bot.model.thinking import Thought
from bot.model.tool_calls import ToolCall, ToolCalls
from bot.tools.builtin import BUILTIN_SERVER, BuiltinTool, crashed, last_frames, run_builtin
from bot.tools.events import ToolEvent, ToolFinished, ToolSources, ToolStarted, safe_sources
from bot.tools.gate import Decision
from bot.tools.toolbox import DISPLAY_CHARS, PreparedCall, ToolBox, ToolResult, declined, shorten

log = structlog.get_logger(__name__)

Ask = Callable[[PreparedCall], Awaitable[Decision]]
# Asks the model once: the messages and the tools offered → its text pieces, then the calls it makes.
AskModel = Callable[[list[ChatMessage], list[dict[str, Any]]], AsyncIterator[ModelPiece]]
Counter = Callable[[str], int]
Running = Callable[[Sequence[str]], Awaitable[None]]  # the tools running now, recorded before they start
CANCEL_SECONDS = 30.0
RECORD_SECONDS = 10.0  # for recording the tools running now with the reply (a store that can't by then won't)
LIMIT_NOTICE = (
    "I reached the limit of {rounds} rounds of tool calls for one question, so this answer uses what I found so far."
)


class _Ended:
    """A call's task ended (see _Running.events)."""


_ENDED = _Ended()
_Event = ToolEvent | _Ended
RunOne = Callable[[ToolCall, asyncio.Queue[_Event]], Coroutine[Any, Any, ToolResult]]


@dataclass
class ToolExchange:
    """What one answer did besides writing: kept with it in the history, so a follow-up can refer to it."""

    text: str = ""  # everything the model wrote, all rounds
    messages: list[ChatMessage] = field(default_factory=list)  # its tool calls and their results, in order
    notices: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)


class ToolTurn:
    def __init__(
        self,
        ask_model: AskModel,
        toolbox: ToolBox,
        ask: Ask,
        *,
        room_tokens: int,
        count: Counter,
        running: Running | None = None,
        builtins: Sequence[BuiltinTool] = (),
    ) -> None:
        """`room_tokens`: what the prompt leaves of the context for this answer's tool calls and results;
        `builtins`: the bot's own tools offered with the servers' (a name a server also has is the bot's)."""
        self._builtins = {tool.name: tool for tool in builtins}
        self._running_now: list[str] = []
        self._asked_at = 0.0  # when the model's last calls arrived
        self._record_running = running
        self._ask_model = ask_model
        self._toolbox = toolbox
        self._ask = ask
        self._room = room_tokens
        self._count = count
        self.exchange = ToolExchange()

    async def pieces(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str | Thought | ToolEvent]:
        prompt = list(messages)
        rounds = self._toolbox.settings.max_rounds
        for round_number in range(rounds + 1):
            offered = self._offered() if round_number < rounds else []
            written = len(self.exchange.text)
            running: _Running | None = None
            try:
                async for piece in self._model(prompt, offered):
                    if isinstance(piece, Thought):
                        yield piece  # shown apart (see bot.reply.thought_view), never part of the exchange
                    elif isinstance(piece, ToolCalls):
                        self._asked_at = piece.received_at
                        # Started at once: the model's stream closes meanwhile, off the calls' way.
                        running = self._start(piece.calls) if offered else None
                    else:
                        resumed = len(self.exchange.text) == written and round_number and piece
                        text = _paragraph_after(self.exchange.text) + piece if resumed else piece
                        self.exchange.text += text
                        yield text
                if running is None:
                    break
                async for event in running.events():
                    yield event
            finally:
                if running is not None:
                    await running.cancel()
            said = self.exchange.text[written:].lstrip("\n")
            calls = running.calls
            asked = {"role": "assistant", "content": said or None, "tool_calls": [c.message_part() for c in calls]}
            answers = [_tool_message(call, result) for call, result in zip(calls, running.results(), strict=True)]
            size = sum(len(answer["content"]) for answer in answers)
            answers = await off_loop_if_large(size, self._fit, asked, answers)
            prompt += [asked, *answers]
            self.exchange.messages += [asked, *answers]
            if round_number + 1 == rounds:
                self.exchange.notices.append(LIMIT_NOTICE.format(rounds=rounds))
            log.info("tool_results_to_model", call=calls[0].id, at=round(time.time(), 4))
        if not self.exchange.text.strip() and self.exchange.messages:
            raise ReplyFailure(FailureKind.EMPTY, "no text after tool calls")
        if sources := safe_sources(self.exchange.links):
            yield ToolSources(sources)

    def _offered(self) -> list[ToolSpec]:
        servers = [spec for spec in self._toolbox.specs() if spec["function"]["name"] not in self._builtins]
        return [*servers, *(tool.spec for tool in self._builtins.values())]

    def _start(self, calls: Sequence[ToolCall]) -> _Running:
        """The calls, each running in a task of its own."""
        return _Running(tuple(calls), self._run_one)

    def _fit(self, asked: ChatMessage, answers: list[ChatMessage]) -> list[ChatMessage]:
        """The results, cut further where this turn's calls and results would overflow the context."""
        used = self._count(str(asked)) + sum(self._count(answer["content"]) for answer in answers)
        self._room -= used
        if self._room >= 0:
            return answers
        over = -self._room
        self._room = 0
        for answer in sorted(answers, key=lambda answer: -len(answer["content"])):
            content: str = answer["content"]
            tokens = self._count(content)
            if over <= 0 or tokens < 50:
                continue
            keep = max(0, len(content) * (tokens - over) // tokens - 200)
            answer["content"] = f"{content[:keep]}\n\n[The result was cut to fit what I can read at once.]"
            over -= tokens - self._count(answer["content"])
        return answers

    async def _model(self, prompt: list[ChatMessage], offered: list[dict[str, Any]]) -> AsyncIterator[ModelPiece]:
        pieces = self._ask_model(prompt, offered)
        try:
            async for piece in pieces:
                yield piece
        finally:
            await aclose_if_any(pieces)

    async def _run_one(self, call: ToolCall, events: asyncio.Queue[_Event]) -> ToolResult:
        """The call, checked, asked about and run: never raises but CancelledError, and always says it started and
        finished (whatever fails, the call ends as failed with why, and the answer goes on)."""
        server, shown = "", shorten(call.arguments.strip() or "{}", DISPLAY_CHARS)
        started = False
        try:
            if (builtin := self._builtins.get(call.name)) is not None:
                server = BUILTIN_SERVER
                events.put_nowait(ToolStarted(call.id, call.name, server, shown))
                started = True
                result = await run_builtin(builtin, call)
            else:
                prepared = self._toolbox.prepare(call)
                server = prepared.tool.server if isinstance(prepared, PreparedCall) else ""
                events.put_nowait(ToolStarted(call.id, call.name, server, shown))
                started = True
                result = prepared if isinstance(prepared, ToolResult) else await self._checked_run(prepared)
        except Exception as error:  # noqa: BLE001 - a bug of ours must not leave the answer waiting for this call
            log.error("tool_call_crashed", tool=call.name, error=repr(error)[:300], where=last_frames(error))
            result = crashed()
        if not started:
            events.put_nowait(ToolStarted(call.id, call.name, server, shown))
        if result.ok:
            self.exchange.links += result.links
        log.info(
            "tool_call",
            tool=call.name,
            server=server,
            call=call.id,
            ok=result.ok,
            asked_at=round(self._asked_at, 4),
            sent_at=round(result.sent_at, 4),
            seconds=round(result.seconds, 4),
        )
        finished = ToolFinished(
            call.id,
            call.name,
            server,
            result.ok,
            result.seconds,
            result.error,
            shown,
            shorten(result.content, DISPLAY_CHARS),
            safe_sources(list(result.links)) if result.ok else (),
        )
        events.put_nowait(finished)
        return result

    async def _checked_run(self, prepared: PreparedCall) -> ToolResult:
        if not prepared.asks_first:
            return await self._toolbox.run(prepared)
        decision = await self._ask(prepared)
        if not decision.approved:
            return declined(prepared, decision.why)
        # A call that may change something is recorded with the reply before it starts: if the bot dies meanwhile,
        # the reply says it may or may not have completed (read-only calls skip the round trip).
        await self._note_running(prepared.call.name, starts=True)
        try:
            return await self._toolbox.run(prepared)
        finally:
            await asyncio.shield(self._note_running(prepared.call.name, starts=False))

    async def _note_running(self, name: str, *, starts: bool) -> None:
        if starts:
            self._running_now.append(name)
        else:
            self._running_now.remove(name)
        if self._record_running is not None:
            try:
                async with asyncio.timeout(RECORD_SECONDS):
                    await self._record_running(tuple(self._running_now))
            except Exception:
                log.warning("tool_running_not_recorded", tool=name, exc_info=True)


class _Running:
    """One round's calls, running: their events as they happen, then their results in the calls' order."""

    def __init__(self, calls: tuple[ToolCall, ...], run: RunOne) -> None:
        self.calls = calls
        self._queue: asyncio.Queue[_Event] = asyncio.Queue()
        self._tasks = [asyncio.create_task(run(call, self._queue)) for call in calls]
        for task in self._tasks:  # told after the task's own last event, whichever way it ended
            task.add_done_callback(lambda _: self._queue.put_nowait(_ENDED))

    async def events(self) -> AsyncIterator[ToolEvent]:
        """Each call's events, until every call's task has ended (one that died without saying it finished is
        shown as failed): never waits longer than the calls run."""
        ended, unsaid = 0, collections.Counter(call.id for call in self.calls)  # the calls not yet said to be finished
        while ended < len(self._tasks):
            event = await self._queue.get()
            if isinstance(event, _Ended):
                ended += 1
                continue
            if isinstance(event, ToolFinished):
                unsaid[event.call_id] -= 1
            yield event
        for call, task in zip(self.calls, self._tasks, strict=True):
            if unsaid[call.id] > 0 and (task.cancelled() or task.exception() is not None):
                unsaid[call.id] -= 1
                if (error := None if task.cancelled() else task.exception()) is not None:
                    log.error("tool_call_died", tool=call.name, error=repr(error)[:300], where=last_frames(error))
                shown = shorten(call.arguments.strip() or "{}", DISPLAY_CHARS)
                yield ToolFinished(call.id, call.name, "", False, 0.0, self._result(task).error, shown)

    def results(self) -> list[ToolResult]:
        return [self._result(task) for task in self._tasks]

    async def cancel(self) -> None:
        """Cancel the calls still running (the answer stopped: Stop, /reset, shutdown)."""
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            if self._tasks:  # each call's own clean-up is bounded; this bounds them all
                await asyncio.wait(self._tasks, timeout=CANCEL_SECONDS)

    @staticmethod
    def _result(task: asyncio.Task[ToolResult]) -> ToolResult:
        if task.cancelled():
            return ToolResult(False, "Error: the call was stopped.", error="stopped")
        if task.exception() is not None:
            return crashed()
        return task.result()


def _paragraph_after(text: str) -> str:
    """What goes between the text before a round of calls and the text after it."""
    return "" if not text or text.endswith("\n\n") else "\n" if text.endswith("\n") else "\n\n"


def _tool_message(call: ToolCall, result: ToolResult) -> ChatMessage:
    return {"role": "tool", "tool_call_id": call.id, "content": result.content}
