"""What one turn's model calls used, counted as they happen: the answer's call, each tool round's, the thought in
them, the router's YES/NO before an unasked answer, and the question's embedding for the knowledge search.

A backend adds each call's tokens as the provider reports them (`usage` in the stream); when it reports none, from
the tokenizer (`estimate`), and the log says so once per model. A call under a budget has an output allowance
(`allowance`): past it the backend ends the answer at the next word, with a note (see bot.usage.budgets)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger(__name__)

_UNREPORTED: set[str] = set()  # models whose usage the log said once it had to count itself
IMAGE_TOKENS = 85  # what an image is counted as when the provider doesn't say (OpenAI's low-detail figure)


@dataclass(frozen=True)
class Counted:
    """One model call: its model's id, the tokens it read and wrote, and what it was for ("answer", "router",
    "embedding")."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    kind: str = "answer"

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class UsageMeter:
    """One turn's calls. `count` is the tokenizer the turn's prompt was measured with (the fallback's)."""

    def __init__(self, count: Callable[[str], int] = lambda text: max(1, len(text) // 4)) -> None:
        self.calls: list[Counted] = []
        self._count = count
        self.allowance: int | None = None  # completion tokens the current call may still write (None: no limit)
        self.stopped_for_budget = False  # an answer was ended because its budget ran out

    def add(self, model: str, prompt_tokens: int, completion_tokens: int, kind: str = "answer") -> None:
        self.calls.append(Counted(model, max(0, int(prompt_tokens)), max(0, int(completion_tokens)), kind))

    def estimate(self, model: str, messages: Sequence[dict[str, Any]], written: str, kind: str = "answer") -> None:
        """Count a call its provider reported no usage for: its messages and what it wrote, by the tokenizer."""
        if model not in _UNREPORTED:
            _UNREPORTED.add(model)
            log.warning("model_usage_not_reported", model=model, counted_by="tokenizer")
        self.add(model, self.prompt_tokens_of(messages), self._count(written) if written else 0, kind)

    def prompt_tokens_of(self, messages: Sequence[dict[str, Any]]) -> int:
        """The tokens of `messages` as the tokenizer counts them, an image as IMAGE_TOKENS."""
        text, images = [], 0
        for message in messages:
            content = message.get("content")
            if isinstance(content, str):
                text.append(content)
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and part.get("type") == "image_url":
                        images += 1
                    elif isinstance(part, dict) and isinstance(part.get("text"), str):
                        text.append(part["text"])
            if message.get("tool_calls"):
                text.append(json.dumps(message["tool_calls"], ensure_ascii=False))
        counted = self._count("\n".join(text)) if text else 0
        return counted + IMAGE_TOKENS * images + 4 * len(messages)  # a few tokens of each message's framing

    def count_text(self, text: str) -> int:
        return self._count(text)

    @property
    def prompt_tokens(self) -> int:
        return sum(call.prompt_tokens for call in self.calls)

    @property
    def completion_tokens(self) -> int:
        return sum(call.completion_tokens for call in self.calls)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def by_model(self) -> dict[str, tuple[int, int]]:
        """{model: (prompt tokens, completion tokens)} over every call."""
        totals: dict[str, tuple[int, int]] = {}
        for call in self.calls:
            prompt, completion = totals.get(call.model, (0, 0))
            totals[call.model] = (prompt + call.prompt_tokens, completion + call.completion_tokens)
        return totals


class OutputGuard:
    """Counts an answer's streamed pieces against its meter's allowance. Once the allowance is used up, `stops`
    says so at the first piece that starts a new word, so an answer is never cut mid-word."""

    MAX_OVER = 24  # pieces let through past the allowance to finish a word (a long word, a URL) at most

    def __init__(self, meter: UsageMeter | None) -> None:
        self._meter = meter
        self._pieces = 0

    def stops(self, piece: str) -> bool:
        """Whether `piece` must not be shown: the budget ran out and it starts a new word (or finishing the word
        took too long)."""
        meter = self._meter
        if meter is None or meter.allowance is None:
            return False
        self._pieces += 1
        over = self._pieces - meter.allowance
        if over <= 0:
            return False
        if over > self.MAX_OVER or not piece or piece[0].isspace() or piece[0] in ".,;:!?)\n":
            meter.stopped_for_budget = True
            return True
        return False

    @property
    def pieces(self) -> int:
        return self._pieces
