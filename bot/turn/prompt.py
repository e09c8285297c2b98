"""Prompt building: system prompt + the newest history that fits the token budget.

Tokens are counted with Mistral-7B-Instruct-v0.3's own (v3) tokenizer, shipped inside mistral-common so it works
offline. Mistral's template wants alternating user/assistant turns ending on a user turn: same-role turns are merged.

An unanswered question (the model failed, the person stopped it, the bot was interrupted) is sent again only if it is
the one just before the new question, with a note that it went unanswered: "try again" and "go on" work, and failures
never pile up into one merged question. Older unanswered questions stay in the history people see, not in prompts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.errors import FailureKind, ReplyFailure
from bot.knowledge.citing import without_passages
from bot.model.backends import ChatMessage
from bot.state.store import StoredMessage

# Template tokens ([INST] … [/INST], </s>) per turn and per prompt, and "\n\n" between merged messages, rounded up:
# counted too low, a long conversation is refused by the server instead of its oldest turns being left out first.
TOKENS_PER_TURN = 4
TOKENS_PER_PROMPT = 3
_SEPARATOR_TOKENS = 2
# What an image is taken to cost in a vision model's context. Models differ (LLaVA 576 tokens, Qwen2-VL about 2,300
# for a 1,568 × 1,176 photo); counted too low, a conversation with many images is refused as above.
IMAGE_TOKENS = 1_500
# A tool result from an earlier answer is sent again at most this long: the answer that used it says what mattered.
EARLIER_RESULT_CHARS = 2_000


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...


class MistralTokenCounter:
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
    def budget(self) -> PromptBudget:
        return self._budget

    @property
    def history_budget(self) -> int:
        return self._budget.prompt_tokens - self._system_tokens

    def count(self, text: str) -> int:
        return self._counter.count(text)

    def check_fits(self, text: str) -> int:
        """The message's token count; refuses one that alone cannot fit, before it is stored."""
        tokens = self._counter.count(text)
        if tokens + TOKENS_PER_TURN > self.history_budget:
            detail = f"message needs {tokens + TOKENS_PER_TURN} tokens; the history budget is {self.history_budget}"
            raise ReplyFailure(FailureKind.MESSAGE_TOO_LONG, detail)
        return tokens

    def system_tokens(self, system_prompt: str) -> int:
        return self._counter.count(system_prompt) + TOKENS_PER_PROMPT if system_prompt else TOKENS_PER_PROMPT

    def build(
        self,
        history: Sequence[StoredMessage],
        *,
        sees_images: bool = False,
        system_prompt: str | None = None,
        appendix: tuple[str, int] = ("", 0),
    ) -> Prompt:
        """The model's messages for a history ending with the person's new message, images (as ids for `with_images`)
        only if `sees_images`; `system_prompt` (a persona) instead of the default one; `appendix`: text after the
        system prompt (knowledge passages) and its token count. Stored token counts are reused, so a turn costs no
        re-tokenizing of the whole thread."""
        history = worth_sending(history)
        named = len({m.author_id for m in history if m.role == "user" and m.author_id}) > 1  # several people: name them
        prompt_text = self._system_prompt if system_prompt is None else system_prompt
        system_tokens = self._system_tokens if system_prompt is None else self.system_tokens(system_prompt)
        added, added_tokens = appendix
        if added:
            prompt_text = f"{prompt_text}\n\n{added}" if prompt_text else added
            system_tokens += added_tokens + _SEPARATOR_TOKENS
        turns = _merge_same_role([self._turn(m, named, sees_images) for m in history])
        kept = self._newest_that_fit(turns, self._budget.prompt_tokens - system_tokens)
        system = {"role": "system", "content": prompt_text}
        messages: list[ChatMessage] = [system] if prompt_text else []
        for turn in kept:
            messages.extend(turn.messages())
        used = sum(turn.count for turn in kept)
        images = tuple(image for turn in kept for image in turn.images)
        tokens = system_tokens + sum(turn.tokens + TOKENS_PER_TURN for turn in kept)
        return Prompt(messages, used=used, left_out=len(history) - used, images=images, tokens=tokens)

    def _turn(self, message: StoredMessage, named: bool, sees_images: bool) -> _Turn:
        images = message.images if sees_images else ()
        tokens = (message.tokens or self._counter.count(message.content)) + IMAGE_TOKENS * len(images)
        if named and message.role == "user" and message.author_name:
            prefix = f"{message.author_name}: "
            return _Turn("user", prefix + message.content, tokens + self._counter.count(prefix), images=images)
        return _Turn(message.role, message.content, tokens, images=images, tools=message.tools)

    def _newest_that_fit(self, turns: list[_Turn], budget: int) -> list[_Turn]:
        remaining = budget
        kept: list[_Turn] = []
        for turn in reversed(turns):
            cost = turn.tokens + TOKENS_PER_TURN
            if kept and cost > remaining:
                break
            kept.append(turn)
            remaining -= cost
        kept.reverse()
        while kept and kept[0].role != "user":  # the template must open with a user turn
            kept.pop(0)
        return kept


@dataclass(frozen=True)
class Prompt:
    messages: list[ChatMessage]
    used: int  # messages of the thread in the prompt
    left_out: int  # older messages that no longer fit
    images: tuple[str, ...] = ()  # ids of the images its messages refer to
    tokens: int = 0  # its size, as counted against the budget

    def with_images(self, urls: Mapping[str, str]) -> list[ChatMessage]:
        """The messages, each image id replaced by its data URL (images no longer kept left out)."""
        return [_fill_images(message, urls) for message in self.messages] if self.images else self.messages


def _fill_images(message: ChatMessage, urls: Mapping[str, str]) -> ChatMessage:
    content = message["content"]
    if isinstance(content, str):
        return message
    parts: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": urls[part["image"]]}} if "image" in part else part
        for part in content
        if "image" not in part or part["image"] in urls
    ]
    return {**message, "content": parts}


def worth_sending(history: Sequence[StoredMessage]) -> list[StoredMessage]:
    """The answered turns and the new question (the last message); of the unanswered questions only the one just
    before the new question, with a note of why it went unanswered."""
    *earlier, new = history
    kept: list[StoredMessage] = []
    for index, message in enumerate(earlier):
        following = earlier[index + 1] if index + 1 < len(earlier) else None
        if message.role == "assistant":
            if not message.failed:
                kept.append(message)
        elif following is not None and following.role == "assistant" and not following.failed:
            kept.append(message)
        elif following is None or (index + 2 == len(earlier) and following.role == "assistant"):
            kept += [message, _unanswered(following)]
    return [*kept, new]


def _unanswered(failed: StoredMessage | None) -> StoredMessage:
    reason = failed.failed if failed else "the bot was interrupted"
    shown = f"{failed.content}\n\n" if failed and failed.content else ""
    return StoredMessage("assistant", f"{shown}[This answer was not finished: {reason}]")


@dataclass(frozen=True)
class _Turn:
    role: str
    content: str
    tokens: int
    count: int = 1  # stored messages merged into it
    images: tuple[str, ...] = ()
    tools: tuple[dict[str, Any], ...] = ()  # an answer's tool calls and results, before its last text

    def messages(self) -> list[ChatMessage]:
        """Plain text, or OpenAI-style content parts when it has images (ids until filled in); an answer that called
        tools as its calls, their (shortened) results and the text it wrote after them."""
        if self.tools:
            return earlier_tool_messages(self.tools, self.content)
        if not self.images:
            return [{"role": self.role, "content": self.content}]
        parts = [{"type": "text", "text": self.content}, *({"image": image} for image in self.images)]
        return [{"role": self.role, "content": parts}]


def earlier_tool_messages(tools: Sequence[dict[str, Any]], content: str) -> list[ChatMessage]:
    """A stored answer's calls and results (each result at most EARLIER_RESULT_CHARS; a knowledge search's never, even
    in a history kept before searches were stored as a note), then its last text: what it wrote after the text that
    went with its calls."""
    messages: list[ChatMessage] = []
    said = 0  # how far into `content` the calls' own text reaches
    for message in without_passages(tools):
        if message.get("role") == "tool":
            result = str(message.get("content") or "")
            if len(result) > EARLIER_RESULT_CHARS:
                result = result[:EARLIER_RESULT_CHARS] + " […]"
            messages.append({**message, "content": result})
        else:
            text = str(message.get("content") or "")
            found = content.find(text, said) if text else -1
            said = found + len(text) if found >= 0 else said
            messages.append(message)
    return [*messages, {"role": "assistant", "content": content[said:].lstrip("\n")}]


def _merge_same_role(turns: list[_Turn]) -> list[_Turn]:
    merged: list[_Turn] = []
    for turn in turns:
        if merged and merged[-1].role == turn.role:
            last = merged[-1]
            content = f"{last.content}\n\n{turn.content}"
            tokens = last.tokens + turn.tokens + _SEPARATOR_TOKENS
            merged[-1] = _Turn(
                turn.role, content, tokens, last.count + turn.count, last.images + turn.images, last.tools + turn.tools
            )
        else:
            merged.append(turn)
    return merged
