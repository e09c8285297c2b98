"""What a turn with tools shows while it runs: each call starting and finishing, and the sources its
results point to. A surface that can show them natively (Slack's task cards, the web chat's chips)
takes the events itself; on any other the renderer shows them as compact lines (`ToolLines`)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bot.model.thinking import Thought

MAX_SOURCES = 5
# A link is shown only in this plain form: nothing that could close the <…> around it, start markup or a mention.
_SAFE_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")


@dataclass(frozen=True)
class ToolStarted:
    call_id: str
    name: str
    server: str
    arguments: str  # shortened, for display


@dataclass(frozen=True)
class ToolFinished:
    call_id: str
    name: str
    server: str
    ok: bool
    seconds: float
    error: str = ""  # why it failed, or "declined"
    arguments: str = ""  # shortened, for display
    result: str = ""  # shortened, for display
    sources: tuple[str, ...] = ()  # the links its result gave (see safe_sources)


@dataclass(frozen=True)
class ToolSources:
    """Every call's links, once the answer is written: listed under it."""

    urls: tuple[str, ...]


ToolEvent = ToolStarted | ToolFinished | ToolSources


@dataclass(frozen=True)
class Tail:
    """Lines shown after the text while the reply is written (the calls running now), replaced by the next Tail.
    One that doesn't `stay` ("Thinking… 3 s") is dropped from the final text if the reply ends with it."""

    text: str
    stays: bool = True


@runtime_checkable
class ToolView(Protocol):
    """A surface that shows tool calls and sources itself."""

    async def show_tool(self, event: ToolEvent) -> None: ...


@runtime_checkable
class ToolRecorder(Protocol):
    """A surface whose reply is recorded for finishing after a crash (see adapters.shared.reply_records)."""

    async def tools_running(self, names: Sequence[str]) -> None:
        """The tools running now, recorded before they start: a reply cut by a crash then says a tool may or may not
        have completed (it is never run again)."""


def safe_sources(urls: list[str]) -> tuple[str, ...]:
    """The first MAX_SOURCES distinct links that are plain http(s) URLs."""
    kept: list[str] = []
    for found in urls:
        url = found.rstrip(".,;:!?)'\"")
        if _SAFE_URL.fullmatch(url) and url not in kept:
            kept.append(url)
    return tuple(kept[:MAX_SOURCES])


class ToolLines:
    """Tool events as lines of the reply's text: "🔧 `lookup` …" while running (in the tail), then a line that stays,
    "✓ `lookup`, 0.4 s" or "✗ `lookup`: timed out"; sources as a numbered list of <url>s under the answer."""

    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix  # before each line: Discord's "-# " makes them small
        self._running: dict[str, str] = {}
        self._last = ""  # the last text given out: "" at the start, else its last character
        self._after_lines = False

    async def present(self, pieces: AsyncIterator[str | Thought | ToolEvent]) -> AsyncIterator[str | Tail | Thought]:
        async for piece in pieces:
            if isinstance(piece, Thought):
                yield piece
            elif isinstance(piece, str):
                text = piece
                if piece and self._after_lines:
                    self._after_lines = False
                    text = "\n" + piece.lstrip("\n")  # one blank line after the calls' lines
                yield self._text(text)
            else:
                for shown in self._event(piece):
                    yield shown

    def _event(self, event: ToolEvent) -> list[str | Tail]:
        if isinstance(event, ToolStarted):
            self._running[event.call_id] = event.name
            return [self._tail()]
        if isinstance(event, ToolFinished):
            self._running.pop(event.call_id, None)
            return [self._line(finished_line(event)), self._tail()]
        if not event.urls:
            return []
        lines: list[str | Tail] = [self._line("Sources:")]
        lines += [self._line(f"{number}. <{url}>") for number, url in enumerate(event.urls, 1)]
        return lines

    def _tail(self) -> Tail:
        lines = "\n".join(f"{self._prefix}🔧 `{name}` …" for name in self._running.values())
        return Tail(("\n\n" if self._last not in ("", "\n") else "") + lines if lines else "")

    def _line(self, line: str) -> str:
        start = "" if self._last == "" or self._after_lines else "\n" if self._last == "\n" else "\n\n"
        self._after_lines = True
        return self._text(f"{start}{self._prefix}{line}\n")

    def _text(self, text: str) -> str:
        if text:
            self._last = text[-1]
        return text


def finished_line(event: ToolFinished) -> str:
    if event.ok:
        return f"✓ `{event.name}`, {event.seconds:.1f} s"
    return f"✗ `{event.name}`: {event.error}"
