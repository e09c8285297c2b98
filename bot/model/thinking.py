"""A model's thought, told apart from its answer in every common form: `delta.reasoning_content` (vLLM,
DeepSeek), `delta.reasoning` (OpenRouter), or inline at the start of the text as `<think>…</think>` (Qwen,
DeepSeek-R1 served raw) or `[THINK]…[/THINK]` (Magistral). Tags may arrive split across stream pieces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Opening tag → closing tag of the inline forms.
_TAGS = {"<think>": "</think>", "[THINK]": "[/THINK]"}
_LONGEST_OPEN = max(len(tag) for tag in _TAGS)


@dataclass(frozen=True)
class Thought:
    """A piece of the model's thinking: never part of the answer, never sent back to the model."""

    text: str


def delta_thought(delta: Any) -> str:
    """The thought a streamed delta carries in a field of its own ("" for none). The deltas are dicts."""
    get = getattr(delta, "get", None)
    if get is None:
        return ""
    return str(get("reasoning_content") or get("reasoning") or "")


class ThoughtSplitter:
    """Splits the content of one stream into `Thought`s and answer text. Once the answer has started with no
    tag (or after the closing tag), `passing` is True and the caller hands text on without calling `feed`."""

    def __init__(self) -> None:
        self.passing = False
        self._held = ""  # text not yet told apart: a possible opening tag, or a possible start of the closing one
        self._close = ""  # the closing tag looked for ("" while the start is undecided)
        self._after = False  # the thought is over: the answer's leading blank lines are dropped

    def feed(self, text: str) -> list[str | Thought]:
        if self.passing:
            return [text]
        held = self._held + text
        self._held = ""
        if self._close:
            return self._thinking(held)
        return self._answer(held) if self._after else self._start(held)

    def flush(self) -> list[str | Thought]:
        """The stream ended: text still held is given out as it is (an unfinished thought as a thought)."""
        held, self._held = self._held, ""
        if not held:
            return []
        return [Thought(held)] if self._close else [held]

    def _start(self, text: str) -> list[str | Thought]:
        begun = text.lstrip()
        for opening, closing in _TAGS.items():
            if begun.startswith(opening):
                self._close = closing
                return self._thinking(begun[len(opening) :])
            if len(begun) < len(opening) and opening.startswith(begun):
                self._held = text  # maybe the start of a tag: wait for more
                return []
        if not begun and len(text) < _LONGEST_OPEN:
            self._held = text  # whitespace only so far
            return []
        self.passing = True
        return [text]

    def _thinking(self, text: str) -> list[str | Thought]:
        end = text.find(self._close)
        if end >= 0:
            pieces: list[str | Thought] = [Thought(text[:end])] if end else []
            rest = text[end + len(self._close) :]
            self._close, self._after = "", True
            return pieces + self._answer(rest)
        keep = _partial_suffix(text, self._close)  # a closing tag may be split across pieces
        self._held = text[len(text) - keep :] if keep else ""
        shown = text[: len(text) - keep]
        return [Thought(shown)] if shown else []

    def _answer(self, text: str) -> list[str | Thought]:
        answer = text.lstrip()
        if not answer:
            return []
        self.passing = True
        return [answer]


def _partial_suffix(text: str, tag: str) -> int:
    """The length of the longest end of `text` that is a start of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0
