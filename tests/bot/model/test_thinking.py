"""Models that think: the thought in each of its four streamed forms told apart from the answer, shown as
SHOW_REASONING says, never stored as the answer nor sent back to the model; a model that only thinks is told so.
The core with the real AsyncInferenceClient against the loopback model server, and real Redis."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import get_args

import pytest

from bot.core import ChatCore, Turn
from bot.errors import FailureKind
from bot.model.thinking import Thought, ThoughtSplitter
from bot.reply.surface import SurfaceLimits
from bot.reply.thought_view import ShowReasoning
from bot.state.store import HistoryStore
from bot.turn.prompt import MistralTokenCounter
from fakes.memory_surface import MemorySurface
from fakes.model_server import FakeModelServer, Script, ThoughtStyle
from tests.conftest import make_core, remote_model_settings

THREAD = "thinking:t1"
THOUGHT = "Hmm, zebracorn facts.\nThe capital is Paris, so say Paris."
STYLES: tuple[ThoughtStyle, ...] = get_args(ThoughtStyle)
MakeCore = Callable[[ShowReasoning], ChatCore]


@dataclass
class KeepingSurface(MemorySurface):
    """A surface that keeps the thought itself (as Discord attaches thinking.md)."""

    kept: list[tuple[str, int]] = field(default_factory=list)

    def keep_thought(self, thought: str, seconds: int) -> str:
        self.kept.append((thought, seconds))
        return f"[thought attached, {seconds} s]\n"


def surface() -> MemorySurface:
    return MemorySurface(SurfaceLimits(max_length=2000, min_edit_interval=0.05))


def turn(text: str) -> Turn:
    return Turn(thread=THREAD, author_id="42", author_name="Ada", text=text)


@pytest.fixture
async def cores(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> AsyncIterator[MakeCore]:
    made: list[ChatCore] = []

    def make(mode: ShowReasoning) -> ChatCore:
        settings = remote_model_settings(model_server.base_url, timeout_seconds=2.0, loading_retries=0)
        made.append(make_core(settings, redis_store, token_counter, show_reasoning=mode))
        return made[-1]

    yield make
    for core in made:
        await core.aclose()


def assistant_messages(model_server: FakeModelServer) -> list[object]:
    return [m["content"] for m in model_server.requests[-1].body["messages"] if m["role"] == "assistant"]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("mode", list(ShowReasoning))
async def test_the_thought_is_shown_as_the_mode_says_and_never_stored_or_sent_back(
    cores: MakeCore, model_server: FakeModelServer, style: ThoughtStyle, mode: ShowReasoning
) -> None:
    core = cores(mode)
    model_server.default = Script(text="Paris.", thought=THOUGHT, thought_style=style, rate=200)
    shown = surface()
    result = await core.answer(turn("Capital of France?"), shown)
    assert result.failure is None
    final = shown.messages[-1]
    if mode is ShowReasoning.COLLAPSED:
        assert final == "💭 Thought for 1 s\n\nParis."
    elif mode is ShowReasoning.FULL:
        assert final == (
            "> **Thought** (1 s):\n> Hmm, zebracorn facts.\n> The capital is Paris, so say Paris.\n\nParis."
        )
    else:
        assert final == "Paris."
    if mode is not ShowReasoning.FULL:
        assert not any("zebracorn" in write.text for write in shown.writes)  # the raw thought never shows
    assert not any("think" in write.text.lower() for write in shown.writes if "Thinking…" not in write.text)
    [_, answer] = await core.history(THREAD)
    assert answer.content == "Paris." and not answer.failed

    model_server.default = Script(text="Two million.")
    await core.answer(turn("Population?"), surface())
    assert assistant_messages(model_server) == ["Paris."]  # the next request carries no thought


async def test_while_it_thinks_the_reply_says_so_each_second_then_drops_it(
    cores: MakeCore, model_server: FakeModelServer
) -> None:
    core = cores(ShowReasoning.COLLAPSED)
    # 1.75 s of thinking: "2 s" whether the first piece comes at once or a little late (1.5 s would sit on
    # the rounding edge, and come out "1 s" when a busy machine delays the first piece more than the last).
    model_server.default = Script(text="Done.", thought_tokens=70, rate=40)
    shown = surface()
    await core.answer(turn("Think hard"), shown)
    statuses = [write.text for write in shown.writes if "Thinking…" in write.text]
    assert statuses[0].startswith("💭 Thinking… 0 s") and any("Thinking… 1 s" in text for text in statuses)
    assert not any(" t1" in write.text for write in shown.writes)
    assert shown.messages == ["💭 Thought for 2 s\n\nDone."]
    assert len(shown.writes) <= 5  # about one write a second while thinking, within the renderer's pacing


async def test_a_surface_that_keeps_the_thought_gets_it_whole(cores: MakeCore, model_server: FakeModelServer) -> None:
    core = cores(ShowReasoning.COLLAPSED)
    model_server.default = Script(text="Paris.", thought=THOUGHT, thought_style="think_tags", rate=200)
    shown = KeepingSurface(SurfaceLimits(max_length=2000, min_edit_interval=0.05))
    await core.answer(turn("Capital of France?"), shown)
    assert shown.kept == [(THOUGHT, 1)]
    assert shown.messages == ["[thought attached, 1 s]\nParis."]
    [_, answer] = await core.history(THREAD)
    assert answer.content == "Paris."


@pytest.mark.parametrize("style", ["reasoning_content", "think_tags"])
async def test_a_model_that_spends_all_its_tokens_thinking_says_so(
    cores: MakeCore, model_server: FakeModelServer, style: ThoughtStyle
) -> None:
    core = cores(ShowReasoning.COLLAPSED)
    thinking_only = Script(text="Never.", thought_tokens=40, thought_style=style, failure="length", fail_after=20)
    model_server.default = thinking_only
    shown = surface()
    result = await core.answer(turn("Think forever"), shown)
    assert result.failure is not None and result.failure.kind is FailureKind.THOUGHT_ONLY
    assert shown.messages[-1] == (
        "⚠️ I used all my room for thinking and wrote no answer: ask again, or raise MAX_NEW_TOKENS."
    )
    [_, answer] = await core.history(THREAD)
    assert answer.content == "" and answer.failed.startswith("I used all my room for thinking")


async def test_text_that_merely_mentions_a_tag_is_the_answer(cores: MakeCore, model_server: FakeModelServer) -> None:
    core = cores(ShowReasoning.COLLAPSED)
    model_server.default = Script(text="Use <think> tags like <think>this</think>.", rate=200)
    shown = surface()
    await core.answer(turn("How do tags work?"), shown)
    assert shown.messages == ["Use <think> tags like <think>this</think>."]


@pytest.mark.parametrize(
    "text",
    [
        "<think>a thought</think>\n\nThe answer <think>stays</think>.",
        "\n  [THINK]one\ntwo[/THINK]Answer",
        "<think></think>Answer",
        "<think>never closed",
        "No thought at all, <think> later is text.",
        "<thinking is not a tag",
        "[THIN",
    ],
)
def test_tags_split_anywhere_across_pieces(text: str) -> None:
    whole = ThoughtSplitter()
    expected = whole.feed(text) + whole.flush()
    for seed in range(50):
        rng = random.Random(seed)
        splitter, pieces, at = ThoughtSplitter(), [], 0
        while at < len(text):
            size = rng.randint(1, 5)
            pieces += splitter.feed(text[at : at + size])
            at += size
        pieces += splitter.flush()
        assert _joined(pieces) == _joined(expected), (seed, pieces)


def test_the_splitter_tells_thought_from_answer() -> None:
    splitter = ThoughtSplitter()
    pieces = [*splitter.feed("<think>a th"), *splitter.feed("ought</th"), *splitter.feed("ink>\n\nHi"), "!"]
    assert _joined(pieces) == ("a thought", "Hi!") and splitter.passing
    assert _joined(ThoughtSplitter().feed("<think>never closed")) == ("never closed", "")
    plain = ThoughtSplitter()
    assert plain.feed("Hello") == ["Hello"] and plain.passing  # the answer started with no tag: passed through


def _joined(pieces: list[str | Thought]) -> tuple[str, str]:
    thought = "".join(piece.text for piece in pieces if isinstance(piece, Thought))
    return thought, "".join(piece for piece in pieces if isinstance(piece, str))
