"""Prompt building with Mistral's real v3 tokenizer."""

from __future__ import annotations

import pytest
from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from bot.errors import FailureKind, ReplyFailure
from bot.state.store import StoredMessage
from bot.turn.prompt import MistralTokenCounter, PromptBudget, PromptBuilder

ROLES = {"system": SystemMessage, "user": UserMessage, "assistant": AssistantMessage}


def builder(counter: MistralTokenCounter, context: int = 8192, new: int = 500) -> PromptBuilder:
    return PromptBuilder(counter, "You are helpful.", PromptBudget(context, new))


def msg(role: str, text: str, who: str = "u1") -> StoredMessage:
    return StoredMessage(role, text, author_id=who if role == "user" else "", author_name=who.title())


def real_prompt_tokens(messages: list[dict[str, str]]) -> int:
    """Encode with Mistral's own chat template: raises if the turns don't alternate properly."""
    request = ChatCompletionRequest(messages=[ROLES[m["role"]](content=m["content"]) for m in messages])
    return len(MistralTokenizer.v3().encode_chat_completion(request).tokens)


def test_unanswered_questions_are_left_out_but_the_one_just_before_the_new_question(
    token_counter: MistralTokenCounter,
) -> None:
    failed = StoredMessage("assistant", "Half an", failed="The model stopped sending text mid-answer.")
    history = [
        msg("user", "lost in a crash"),
        msg("user", "failed early"),
        StoredMessage("assistant", "", failed="The model service is unavailable right now."),
        msg("user", "answered"),
        msg("assistant", "a"),
        msg("user", "cut off"),
        failed,
        msg("user", "go on"),
    ]
    prompt = builder(token_counter).build(history)
    assert prompt.messages == [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "answered"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "cut off"},
        {
            "role": "assistant",
            "content": "Half an\n\n[This answer was not finished: The model stopped sending text mid-answer.]",
        },
        {"role": "user", "content": "go on"},
    ]
    assert prompt.left_out == 0  # left out as unanswered, not for lack of room: no notice
    real_prompt_tokens(prompt.messages)


def test_oldest_turns_drop_first_and_the_prompt_fits_the_budget(token_counter: MistralTokenCounter) -> None:
    history = []
    for number in range(60):
        history += [msg("user", f"question {number} " + "lorem ipsum " * 40), msg("assistant", "answer " * 50)]
    history.append(msg("user", "the newest question"))
    prompts = builder(token_counter, context=2048, new=500)
    messages = prompts.build(history).messages
    assert messages[-1] == {"role": "user", "content": "the newest question"}
    assert messages[1]["role"] == "user"  # trimmed history still opens with a user turn
    assert "question 59" in messages[-3]["content"]
    assert "question 0 " not in " ".join(m["content"] for m in messages)
    assert real_prompt_tokens(messages) <= 2048 - 500


def test_a_message_too_long_on_its_own_is_refused_with_a_reason(token_counter: MistralTokenCounter) -> None:
    prompts = builder(token_counter, context=1024, new=500)
    with pytest.raises(ReplyFailure) as raised:
        prompts.check_fits("word " * 2000)
    assert raised.value.kind is FailureKind.MESSAGE_TOO_LONG
    prompts.check_fits("a short question")


def test_the_current_message_is_never_silently_dropped(token_counter: MistralTokenCounter) -> None:
    prompts = builder(token_counter, context=1024, new=500)
    big = "detail " * 400  # fits alone, but not with the older turns
    messages = prompts.build([msg("user", "older " * 300), msg("assistant", "ok " * 100), msg("user", big)]).messages
    assert messages[-1]["content"] == big
    assert len(messages) == 2


def test_several_people_in_a_thread_are_named_for_the_model(token_counter: MistralTokenCounter) -> None:
    history = [msg("user", "I like tea", "alice"), msg("assistant", "Nice."), msg("user", "I prefer coffee", "bob")]
    messages = builder(token_counter).build(history).messages
    assert messages[1]["content"] == "Alice: I like tea"
    assert messages[3]["content"] == "Bob: I prefer coffee"
    alone = builder(token_counter).build([msg("user", "just me", "alice")]).messages
    assert alone[-1]["content"] == "just me"


def test_token_count_matches_the_real_template_closely(token_counter: MistralTokenCounter) -> None:
    history = [msg("user", "Hello there"), msg("assistant", "Hi! How can I help?"), msg("user", "Explain Redis")]
    messages = builder(token_counter).build(history).messages
    estimated = sum(token_counter.count(m["content"]) + 4 for m in messages) + 3
    assert abs(estimated - real_prompt_tokens(messages)) <= len(messages) * 4
