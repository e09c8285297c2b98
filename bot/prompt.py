"""Prompt building: system prompt + the newest history that fits the token budget.

Tokens are counted with Mistral's own v3 tokenizer (shipped inside mistral-common, so it
works offline). Mistral's template wants user/assistant turns alternating and ending on a
user turn, so consecutive same-role turns are merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.errors import FailureKind, ReplyFailure
from bot.model import ChatMessage
from bot.store import StoredMessage

# [INST] … [/INST] and </s> around each turn, rounded up.
TOKENS_PER_TURN = 4
TOKENS_PER_PROMPT = 3


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...


class MistralTokenCounter:
    """Counts tokens with the Mistral-7B-Instruct-v0.3 (v3) SentencePiece tokenizer."""

    def __init__(self) -> None:
        from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

        self._tokenizer = MistralTokenizer.v3().instruct_tokenizer.tokenizer

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, bos=False, eos=False))


@dataclass(frozen=True)
class PromptBudget:
    context_tokens: int
    max_new_tokens: int

    @property
    def prompt_tokens(self) -> int:
        return self.context_tokens - self.max_new_tokens


class PromptBuilder:
    def __init__(self, counter: TokenCounter, system_prompt: str, budget: PromptBudget) -> None:
        self._counter = counter
        self._system_prompt = system_prompt
        self._system_tokens = counter.count(system_prompt) + TOKENS_PER_PROMPT if system_prompt else TOKENS_PER_PROMPT
        self._budget = budget

    @property
    def history_budget(self) -> int:
        return self._budget.prompt_tokens - self._system_tokens

    def check_fits(self, text: str) -> None:
        """Refuse a message that alone cannot fit, before it is stored anywhere."""
        needed = self._counter.count(text) + TOKENS_PER_TURN
        if needed > self.history_budget:
            raise ReplyFailure(
                FailureKind.MESSAGE_TOO_LONG,
                f"message needs {needed} tokens; the history budget is {self.history_budget}",
            )

    def build(self, history: Sequence[StoredMessage]) -> list[ChatMessage]:
        """The model's messages for a history whose last entry is the person's new message."""
        named = _has_several_people(history)
        turns = _merge_same_role([(m.role, _render(m, named)) for m in history])
        kept = self._newest_that_fit(turns)
        messages: list[ChatMessage] = []
        if self._system_prompt:
            messages.append({"role": "system", "content": self._system_prompt})
        messages.extend({"role": role, "content": content} for role, content in kept)
        return messages

    def _newest_that_fit(self, turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
        remaining = self.history_budget
        kept: list[tuple[str, str]] = []
        for role, content in reversed(turns):
            cost = self._counter.count(content) + TOKENS_PER_TURN
            if kept and cost > remaining:
                break
            kept.append((role, content))
            remaining -= cost
        kept.reverse()
        while kept and kept[0][0] != "user":  # the template must open with a user turn
            kept.pop(0)
        return kept


def _has_several_people(history: Sequence[StoredMessage]) -> bool:
    return len({m.author_id for m in history if m.role == "user" and m.author_id}) > 1


def _render(message: StoredMessage, named: bool) -> str:
    if named and message.role == "user" and message.author_name:
        return f"{message.author_name}: {message.content}"
    return message.content


def _merge_same_role(turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    merged: list[tuple[str, str]] = []
    for role, content in turns:
        if merged and merged[-1][0] == role:
            merged[-1] = (role, f"{merged[-1][1]}\n\n{content}")
        else:
            merged.append((role, content))
    return merged
