"""What a reply shows of its model's thought: "Thinking… N s" while the model thinks (never the thought itself), then,
as SHOW_REASONING says, a "Thought for N s" line with the thought one click away (`collapsed`: a surface that can keep
it, a `ThoughtView`, does so its own way), the thought quoted before the answer (`full`), or nothing (`off`).

What is shown before the answer is `ThoughtShow.prefix`: it is no part of the answer, and never stored as such."""

from __future__ import annotations

import enum
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol, runtime_checkable

from bot.errors import FailureKind, ReplyFailure
from bot.model.thinking import Thought
from bot.reply.surface import ReplySurface
from bot.tools.events import Tail

THINKING_ICON = "💭"


class ShowReasoning(enum.Enum):
    COLLAPSED = "collapsed"
    FULL = "full"
    OFF = "off"


@runtime_checkable
class ThoughtView(Protocol):
    """A surface that keeps the thought one click away (a file, a closed section, a button)."""

    def keep_thought(self, thought: str, seconds: int) -> str:
        """Keep `thought` for the final reply; return the line the answer starts with ("" for none)."""


def seconds_taken(seconds: float) -> int:
    return max(1, round(seconds))


def thought_line(seconds: int) -> str:
    return f"{THINKING_ICON} Thought for {seconds} s"


def quoted_thought(thought: str, seconds: int) -> str:
    """`full`: the thought as a quoted block headed as such, before the answer."""
    lines = thought.strip().splitlines() or [""]
    quoted = "\n".join(f"> {line}" if line.strip() else ">" for line in lines)
    return f"> **Thought** ({seconds} s):\n{quoted}\n\n"


class ThoughtShow:
    """Turns the Thoughts of a reply's stream into what its surface shows; text and tails pass through."""

    def __init__(self, mode: ShowReasoning, surface: ReplySurface, clock: Callable[[], float] = time.monotonic) -> None:
        self.prefix = ""  # shown before the answer: no part of it
        self._mode = mode
        self._surface = surface
        self._clock = clock
        self._parts: list[str] = []
        self._started: float | None = None  # when the current thinking began
        self._shown_second = -1
        self._wrote = False  # text was given out (the status then goes on a line of its own)

    @property
    def thought(self) -> str:
        return "".join(self._parts)

    async def present(self, pieces: AsyncIterator[str | Tail | Thought]) -> AsyncIterator[str | Tail]:
        try:
            async for piece in pieces:
                if isinstance(piece, Thought):
                    if status := self._thinking(piece.text):
                        yield status
                elif isinstance(piece, str) and self._started is not None:
                    if answer := piece.lstrip() if not self._wrote else piece:
                        for shown in self._answer_starts(answer):
                            yield shown
                else:
                    self._wrote = self._wrote or (isinstance(piece, str) and bool(piece))
                    yield piece
        except ReplyFailure as failure:
            if failure.kind is FailureKind.LENGTH and self._started is not None and not self._wrote:
                raise ReplyFailure(FailureKind.THOUGHT_ONLY, "max_tokens reached while thinking") from failure
            raise

    def _thinking(self, text: str) -> Tail | None:
        now = self._clock()
        if self._started is None:
            self._started, self._shown_second = now, -1
        self._parts.append(text)
        second = int(now - self._started)
        if second == self._shown_second or not self._surface.limits.thinking_status:
            return None  # the status changes about once a second, whatever the rate of thought pieces
        self._shown_second = second
        start = "\n\n" if self._wrote else ""
        return Tail(f"{start}{self._surface.limits.line_prefix}{THINKING_ICON} Thinking… {second} s", stays=False)

    def _answer_starts(self, answer: str) -> list[str | Tail]:
        assert self._started is not None
        seconds = seconds_taken(self._clock() - self._started)
        self._started = None
        shown: list[str | Tail] = [Tail("")]
        if not self._wrote:  # the first thinking only: later rounds (after tool calls) show just their status
            self.prefix = self._opening(seconds)
            if self.prefix:
                shown.append(self.prefix)
        self._wrote = True
        shown.append(answer)
        return shown

    def _opening(self, seconds: int) -> str:
        if self._mode is ShowReasoning.OFF or not self.thought.strip():
            return ""
        if self._mode is ShowReasoning.FULL:
            return quoted_thought(self.thought, seconds)
        if isinstance(self._surface, ThoughtView):
            return self._surface.keep_thought(self.thought.strip(), seconds)
        return f"{self._surface.limits.line_prefix}{thought_line(seconds)}\n\n"
