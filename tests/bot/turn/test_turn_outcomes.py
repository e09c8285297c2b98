"""What a failed, stopped or regenerated answer leaves behind: what people see again on a
reload, and what the model is sent next. The core with the real AsyncInferenceClient against the
loopback model server, and real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.core import ChatCore, Turn
from bot.reply.surface import SurfaceLimits
from bot.state.coordination import Coordination, TurnQuota
from bot.state.store import HistoryStore
from bot.turn.prompt import MistralTokenCounter
from fakes.memory_surface import MemorySurface
from fakes.model_server import FakeModelServer, Script
from tests.conftest import make_core, remote_model_settings

THREAD = "outcomes:t1"


def surface() -> MemorySurface:
    return MemorySurface(SurfaceLimits(max_length=2000, min_edit_interval=0.05))


def turn(text: str = "", **fields: object) -> Turn:
    return Turn(thread=THREAD, author_id="42", author_name="Ada", text=text, **fields)  # type: ignore[arg-type]


def sent(model_server: FakeModelServer) -> list[tuple[str, str]]:
    """The last request's messages after the system prompt, as (role, content)."""
    return [(m["role"], m["content"]) for m in model_server.requests[-1].body["messages"][1:]]


@pytest.fixture
async def core(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> AsyncIterator[ChatCore]:
    settings = remote_model_settings(model_server.base_url, timeout_seconds=1.0, loading_retries=0)
    core = make_core(settings, redis_store, token_counter)
    yield core
    await core.aclose()


async def test_a_failed_answer_is_kept_with_its_reason_and_the_model_is_told_it_went_unanswered(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    model_server.default = Script(text="Paris is", failure="cut", fail_after=2, rate=50)
    await core.answer(turn("Capital of France?"), surface())
    [question, answer] = await core.history(THREAD)
    assert (question.content, answer.content) == ("Capital of France?", "Paris is")
    assert answer.failed == "The connection to the model was cut before the answer finished."

    model_server.default = Script(text="Paris.")
    await core.answer(turn("Try again"), surface())
    assert sent(model_server) == [
        ("user", "Capital of France?"),
        (
            "assistant",
            "Paris is\n\n[This answer was not finished: "
            "The connection to the model was cut before the answer finished.]",
        ),
        ("user", "Try again"),
    ]


async def test_failures_in_a_row_never_pile_up_into_one_question(core: ChatCore, model_server: FakeModelServer) -> None:
    model_server.default = Script(failure="http_500")
    for question in ("First?", "Second?", "Third?"):
        await core.answer(turn(question), surface())
    model_server.default = Script(text="Back.")
    await core.answer(turn("Are you back?"), surface())
    assert sent(model_server) == [
        ("user", "Third?"),
        (
            "assistant",
            "[This answer was not finished: The model service is unavailable right now. Please try again later.]",
        ),
        ("user", "Are you back?"),
    ]
    # The person still sees every question with its error.
    shown = [(m.role, m.content, m.failed) for m in await core.history(THREAD)]
    assert [content for _, content, _ in shown if content] == ["First?", "Second?", "Third?", "Are you back?", "Back."]
    assert sum(1 for _, _, failed in shown if failed) == 3


async def test_stop_keeps_the_text_so_far_marked_as_stopped_and_frees_the_model(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    model_server.default = Script(text=" ".join(f"word{n}" for n in range(200)), rate=20)
    shown = surface()
    answering = asyncio.create_task(core.answer(turn("Tell me a long story"), shown))
    while not shown.messages:
        await asyncio.sleep(0.02)
    assert core.stop(THREAD)
    result = await asyncio.wait_for(answering, 2)
    assert result.failure is not None and result.failure.reason == "Stopped."
    assert shown.messages[-1].startswith("word0") and shown.messages[-1].endswith("\n\n⚠️ Stopped.")
    assert len(result.text.split()) < 50
    await asyncio.sleep(0.3)
    assert model_server.requests[-1].outcome != "completed"  # the stream was closed, not read to the end
    [_, answer] = await core.history(THREAD)
    assert answer.failed == "Stopped." and answer.content == result.text
    assert not core.stop(THREAD)  # nothing left to stop


async def test_regenerate_replaces_the_last_answer_and_asks_the_same_question_once(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    model_server.default = Script(text="A first answer.")
    await core.answer(turn("Name a colour"), surface())
    model_server.default = Script(text="Blue.")
    shown = surface()
    result = await core.answer(turn(again=True), shown)
    assert result.text == "Blue." and shown.messages == ["Blue."]
    assert sent(model_server) == [("user", "Name a colour")]
    assert [(m.role, m.content) for m in await core.history(THREAD)] == [
        ("user", "Name a colour"),
        ("assistant", "Blue."),
    ]


async def test_regenerate_in_an_empty_conversation_says_there_is_nothing_to_redo(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    shown = surface()
    await core.answer(turn(again=True), shown)
    assert shown.messages == ["⚠️ There is no question here to answer again."]
    assert not model_server.requests


async def test_quotas_are_counted_per_slack_workspace_whose_ids_may_repeat_anothers(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    coordination = Coordination(redis_store.client, redis_store.settings.key_prefix, 60)
    quota = TurnQuota(coordination, per_user=1, per_channel=1)
    core = make_core(remote_model_settings(model_server.base_url), redis_store, token_counter, quota=quota)
    try:
        first, again, elsewhere = (
            Turn(f"slack:{team}:C1:{n}", "U1", "Ada", "hi", channel=f"{team}:C1", workspace=team)
            for n, team in enumerate(("T1", "T1", "T2"))
        )
        assert (await core.answer(first, surface())).failure is None
        refused = await core.answer(again, surface())
        assert refused.failure is not None and "faster than I can answer" in refused.failure.reason
        assert (await core.answer(elsewhere, surface())).failure is None  # the same ids in another workspace
        assert await core.turns_left("slack:T2", "U1") == 0
        assert await core.turns_left("slack:T3", "U1") == 1
    finally:
        await core.aclose()
