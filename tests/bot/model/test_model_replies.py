"""A whole turn through the core: the real AsyncInferenceClient against a loopback
OpenAI-compatible server, real Redis, and what the person ends up seeing."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import pytest

from adapters.shared.ratelimit import RateLimits
from bot.core import ChatCore, Turn
from bot.errors import FailureKind
from bot.model.breaker import CircuitBreaker
from bot.reply.surface import SurfaceLimits
from bot.state.store import HistoryStore, StoredMessage
from bot.turn.prompt import MistralTokenCounter
from fakes.harness.processes import free_port
from fakes.memory_surface import MemorySurface
from fakes.model_server import FakeModelServer, Script
from tests.conftest import OwnRedis, close_store, make_core, open_store, remote_model_settings

ANSWER = "Redis keeps data in memory and can persist it to disk."


def surface() -> MemorySurface:
    return MemorySurface(SurfaceLimits(max_length=2000, min_edit_interval=0.05))


def turn(text: str = "What is Redis?", thread: str = "t1") -> Turn:
    return Turn(thread=thread, author_id="42", author_name="Ada", text=text)


@pytest.fixture
async def core(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> AsyncIterator[ChatCore]:
    settings = remote_model_settings(model_server.base_url, timeout_seconds=1.0, loading_retries=2)
    core = make_core(settings, redis_store, token_counter)
    yield core
    await core.aclose()


@pytest.fixture
async def either_core(
    model_server: FakeModelServer,
    redis_store: HistoryStore,
    token_counter: MistralTokenCounter,
) -> AsyncIterator[ChatCore]:
    """A core with a short stall timeout and two retries for a model still loading."""
    settings = remote_model_settings(model_server.base_url, timeout_seconds=1.0, loading_retries=2)
    core = make_core(settings, redis_store, token_counter)
    yield core
    await core.aclose()


async def history(store: HistoryStore, thread: str = "t1") -> list[tuple[str, str]]:
    messages = (await store.begin_turn(thread, StoredMessage("user", "(probe)"))).messages
    return [(m.role, m.content) for m in messages[:-1]]


async def test_an_answer_streams_and_both_turns_are_remembered(
    core: ChatCore, model_server: FakeModelServer, redis_store: HistoryStore
) -> None:
    model_server.default = Script(text=ANSWER, rate=100)
    shown = surface()
    result = await core.answer(turn(), shown)
    assert shown.messages == [ANSWER]
    assert len(shown.writes) >= 2  # it appeared progressively, not all at once
    assert result.complete
    assert await history(redis_store) == [("user", "What is Redis?"), ("assistant", ANSWER)]


async def test_consecutive_replies_reuse_a_shared_connection_to_the_model(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    # Shared, kept-alive connections: always over TLS, and for a plain-HTTP server once many
    # replies stream (here from the first, with MODEL_OWN_CONNECTIONS=0).
    settings = remote_model_settings(model_server.base_url)
    core = make_core(settings, redis_store, token_counter)
    model_server.default = Script(text="Quick answer.")
    try:
        await core.answer(turn("one"), surface())
        await core.answer(turn("two"), surface())
    finally:
        await core.aclose()
    first, second = model_server.requests
    assert first.client_port is not None and first.client_port == second.client_port


async def test_the_request_carries_model_settings_system_prompt_and_history(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    model_server.default = Script(text="First answer.")
    await core.answer(turn("First question"), surface())
    model_server.default = Script(text="Second answer.")
    await core.answer(turn("Follow-up"), surface())
    body = model_server.requests[-1].body
    assert body["model"] == "mistralai/Mistral-7B-Instruct-v0.3"
    assert body["stream"] is True and body["max_tokens"] == 500
    assert body["messages"] == [
        {"role": "system", "content": "You are a test bot."},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "Follow-up"},
    ]
    assert model_server.requests[-1].headers.get("Authorization") == "Bearer hf_test"


FAILURES = [
    # (script, reason the person sees, partial text kept)
    (Script(text=ANSWER, failure="http_401"), FailureKind.AUTH, ""),
    (Script(text=ANSWER, failure="http_429", retry_after=0), FailureKind.RATE_LIMITED, ""),
    (Script(text=ANSWER, failure="http_503", retry_after=0), FailureKind.LOADING, ""),
    (Script(text=ANSWER, failure="http_400_context"), FailureKind.CONTEXT_TOO_LONG, ""),
    (Script(text=ANSWER, failure="http_500"), FailureKind.UNAVAILABLE, ""),
    (Script(text=ANSWER, failure="html_200"), FailureKind.BAD_RESPONSE, ""),
    (Script(text=ANSWER, failure="http_400_context", error_style="vllm"), FailureKind.CONTEXT_TOO_LONG, ""),
    (Script(text=ANSWER, failure="headers_timeout", headers_delay=3), FailureKind.TIMEOUT, ""),
    (Script(text=ANSWER, failure="stall", fail_after=3), FailureKind.STALLED, "Redis keeps data"),
    (Script(text=ANSWER, failure="cut", fail_after=3), FailureKind.CUT, "Redis keeps data"),
    (Script(text=ANSWER, failure="eof_no_done", fail_after=3), FailureKind.CUT, "Redis keeps data"),
    (Script(text=ANSWER, failure="sse_error", fail_after=3), FailureKind.UNAVAILABLE, "Redis keeps data"),
]


@pytest.mark.parametrize(
    ("script", "kind", "partial"), FAILURES, ids=[f"{s.failure}-{s.error_style}" for s, _, _ in FAILURES]
)
async def test_each_failure_shows_the_partial_text_and_a_human_reason(
    either_core: ChatCore,
    model_server: FakeModelServer,
    redis_store: HistoryStore,
    script: Script,
    kind: FailureKind,
    partial: str,
) -> None:
    model_server.default = replace(script, rate=script.rate or 100)
    shown = surface()
    result = await either_core.answer(turn(), shown)
    final = shown.messages[-1]
    assert final.startswith(partial)
    assert final.endswith("⚠️ " + kind.reason)
    assert not final.endswith(" ▌") and shown.writes[-1].final
    assert result.failure is not None and result.failure.kind is kind
    # The question is kept (the next message merges with it); the broken answer is not.
    # Kept with what it showed and why it failed: shown again on a reload, never merged into the next question.
    assert await history(redis_store) == [("user", "What is Redis?"), ("assistant", result.text)]
    [stored] = [m for m in (await redis_store.begin_turn("t1", StoredMessage("user", "next"))).messages if m.failed]
    assert stored.failed == kind.reason


@pytest.mark.parametrize("failure", ["cut", "stall", "sse_error"])
async def test_a_reply_held_to_be_posted_whole_still_shows_what_came_before_a_failure(
    either_core: ChatCore, model_server: FakeModelServer, failure: str, rate_limits: RateLimits
) -> None:
    # With no edit to spare the reply is posted once, whole, and its text waits for it below
    # huggingface_hub; a broken stream must still hand that text over with the reason.
    model_server.default = Script(text=ANSWER, failure=failure, fail_after=3, rate=50)
    no_streaming = rate_limits.bucket("test", "edits", 1, 60.0)
    assert await rate_limits.promise((no_streaming,))  # another reply has the only final edit
    held = MemorySurface(
        SurfaceLimits(max_length=2000, min_edit_interval=0.05), rate_limits=rate_limits, edit_budgets=[no_streaming]
    )
    result = await either_core.answer(turn(), held)
    assert len(held.writes) == 1
    assert held.messages[0].startswith("Redis keeps data\n\n⚠️ ")
    assert result.text == "Redis keeps data"
    if failure != "stall":  # a stall is declared after the timeout (1 s); the others are seen at once
        assert held.final_visible_at - model_server.requests[-1].last_token_at < 0.3


async def test_a_model_still_loading_is_retried_with_backoff_before_giving_up(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    model_server.default = Script(text=ANSWER)
    model_server.fail_503_times = 2
    shown = surface()
    await core.answer(turn(), shown)
    assert shown.messages == [ANSWER]
    assert [r.status for r in model_server.requests] == [503, 503, 200]


async def test_an_answer_cut_at_max_tokens_is_kept_with_a_note(
    core: ChatCore, model_server: FakeModelServer, redis_store: HistoryStore
) -> None:
    model_server.default = Script(text=ANSWER, failure="length", fail_after=4)
    shown = surface()
    await core.answer(turn(), shown)
    assert shown.messages[-1] == "Redis keeps data in\n\n⚠️ " + FailureKind.LENGTH.reason
    assert await history(redis_store) == [("user", "What is Redis?"), ("assistant", "Redis keeps data in")]


async def test_a_message_too_long_for_the_context_is_refused_before_the_model(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    core = make_core(remote_model_settings(model_server.base_url), redis_store, token_counter, context_tokens=1024)
    shown = surface()
    try:
        await core.answer(turn("word " * 3000), shown)
    finally:
        await core.aclose()
    assert shown.messages == ["⚠️ " + FailureKind.MESSAGE_TOO_LONG.reason]
    assert model_server.requests == []
    assert await history(redis_store) == []


async def test_redis_down_tells_the_person_instead_of_crashing(
    model_server: FakeModelServer, own_redis: OwnRedis, token_counter: MistralTokenCounter, history_settings
) -> None:
    store = open_store(own_redis.url, replace(history_settings, redis_url=own_redis.url))
    core = make_core(remote_model_settings(model_server.base_url), store, token_counter)
    try:
        own_redis.stop()
        shown = surface()
        await core.answer(turn(), shown)
        assert shown.messages == ["⚠️ " + FailureKind.STORE_UNAVAILABLE.reason]
        own_redis.start()
        model_server.default = Script(text="Back again.")
        shown = surface()
        await core.answer(turn("retry"), shown)
        assert shown.messages == ["Back again."]
    finally:
        await core.aclose()
        await close_store(store)


async def test_a_cancelled_reply_frees_the_model_connection(core: ChatCore, model_server: FakeModelServer) -> None:
    model_server.default = Script(tokens=500, rate=50)
    shown = surface()
    task = asyncio.create_task(core.answer(turn(), shown))
    await asyncio.sleep(0.4)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    for _ in range(50):
        if model_server.requests[-1].outcome == "disconnected":
            break
        await asyncio.sleep(0.05)
    assert model_server.requests[-1].outcome == "disconnected"
    assert shown.messages[-1].endswith(FailureKind.INTERRUPTED.reason)


async def test_a_follow_up_waits_for_the_previous_final_text(
    core: ChatCore, model_server: FakeModelServer, redis_store: HistoryStore
) -> None:
    model_server.default = Script(text="A slow first answer.", rate=40)
    first, second = surface(), surface()
    await asyncio.gather(core.answer(turn("one"), first), core.answer(turn("two"), second))
    # The second question was sent to the model with the first answer already in its history.
    assert model_server.requests[1].body["messages"][-2] == {"role": "assistant", "content": "A slow first answer."}
    assert await history(redis_store) == [
        ("user", "one"),
        ("assistant", "A slow first answer."),
        ("user", "two"),
        ("assistant", "A slow first answer."),
    ]


async def test_a_connection_dropped_before_any_answer_is_retried_once(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    scripts = iter([Script(failure="drop")])
    model_server.responder = lambda body: next(scripts, None)
    model_server.default = Script(text=ANSWER)
    shown = surface()
    await core.answer(turn(), shown)
    assert shown.messages == [ANSWER]
    assert [r.outcome for r in model_server.requests] == ["dropped", "completed"]


async def test_a_server_that_keeps_dropping_the_connection_is_reported_as_cut(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    model_server.default = Script(failure="drop")
    shown = surface()
    await core.answer(turn(), shown)
    assert shown.messages == ["⚠️ " + FailureKind.CUT.reason]
    assert len(model_server.requests) == 2


@pytest.fixture
async def own_store(own_redis: OwnRedis, history_settings) -> AsyncIterator[HistoryStore]:
    store = open_store(own_redis.url, replace(history_settings, redis_url=own_redis.url))
    await store.ping()
    yield store
    own_redis.thaw()
    await close_store(store)


async def test_a_model_server_without_a_configured_token_never_gets_one_found_elsewhere(
    model_server: FakeModelServer,
    redis_store: HistoryStore,
    token_counter: MistralTokenCounter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_personal_token_of_whoever_runs_it")  # what `hf auth login` leaves around
    core = make_core(remote_model_settings(model_server.base_url, hf_token=None), redis_store, token_counter)
    model_server.default = Script(text=ANSWER)
    shown = surface()
    try:
        await core.answer(turn(), shown)
    finally:
        await core.aclose()
    assert shown.messages == [ANSWER]
    assert "hf_personal" not in model_server.requests[-1].headers.get("Authorization", "")


@dataclass
class SlowFinalEdit(MemorySurface):
    """A platform slow to confirm the final edit: a stop can arrive while it is on its way."""

    final_edit_sent: asyncio.Event = field(default_factory=asyncio.Event)

    async def edit(self, handle: int, text: str, *, final: bool) -> None:
        if final:
            self.final_edit_sent.set()
            await asyncio.sleep(0.2)
        await super().edit(handle, text, final=final)


async def test_an_answer_finishing_as_the_bot_stops_still_lands_whole_and_is_remembered(
    core: ChatCore, model_server: FakeModelServer, redis_store: HistoryStore
) -> None:
    model_server.default = Script(text=ANSWER, rate=40)
    shown = SlowFinalEdit(SurfaceLimits(max_length=2000, min_edit_interval=0.05))
    answering = asyncio.create_task(core.answer(turn(), shown))
    await asyncio.wait_for(shown.final_edit_sent.wait(), 5)
    answering.cancel()  # what a shutdown does to every reply in flight
    with pytest.raises(asyncio.CancelledError):
        await answering
    assert shown.messages == [ANSWER]
    assert await history(redis_store) == [("user", "What is Redis?"), ("assistant", ANSWER)]


async def test_a_model_server_that_is_down_is_reported_as_unavailable(
    redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    settings = remote_model_settings(url, timeout_seconds=1.0, loading_retries=0)
    core = make_core(settings, redis_store, token_counter)
    try:
        shown = surface()
        await core.answer(turn(), shown)
    finally:
        await core.aclose()
    assert shown.messages == ["⚠️ " + FailureKind.UNAVAILABLE.reason]


async def test_after_failures_in_a_row_people_are_told_at_once_until_the_model_is_back(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    settings = remote_model_settings(model_server.base_url, timeout_seconds=1.0, loading_retries=0)
    core = make_core(settings, redis_store, token_counter, breaker=CircuitBreaker(failures=3, open_seconds=0.5))
    model_server.default = Script(text="Back again.", headers_delay=1.5)  # every request times out
    try:
        for i in range(3):
            shown = surface()
            await core.answer(turn(f"q{i}", thread=f"t{i}"), shown)
            assert shown.messages == ["⚠️ " + FailureKind.TIMEOUT.reason]
        asked = len(model_server.requests)
        started = time.monotonic()
        shown = surface()
        await core.answer(turn("while open", thread="t-open"), shown)
        assert time.monotonic() - started < 0.3  # told at once, not after another timeout
        assert shown.messages == ["⚠️ " + FailureKind.TIMEOUT.reason]
        assert len(model_server.requests) == asked  # the model was not asked
        await asyncio.sleep(0.6)
        model_server.default = Script(text="Back again.")
        shown = surface()
        await core.answer(turn("again", thread="t-again"), shown)
        assert shown.messages == ["Back again."]
    finally:
        await core.aclose()


async def test_replies_starting_together_wait_for_the_model_together_not_one_after_another(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    # Requests are set up one at a time; the wait for the server must not be part of that.
    model_server.default = Script(text="Slow to start.", headers_delay=0.5)
    surfaces = [surface() for _ in range(8)]
    started = asyncio.get_running_loop().time()
    await asyncio.gather(*(core.answer(turn(f"q{i}", thread=f"t{i}"), s) for i, s in enumerate(surfaces)))
    assert asyncio.get_running_loop().time() - started < 1.5  # one after another: 4 s
    assert all(s.messages == ["Slow to start."] for s in surfaces)


async def test_questions_past_the_process_limit_wait_their_turn_and_all_get_whole_answers(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    model_server.default = Script(text="One at a time, please.", rate=20)  # about 0.25 s each
    settings = remote_model_settings(model_server.base_url)
    core = make_core(settings, redis_store, token_counter, max_concurrent_replies=2)
    try:
        surfaces = [surface() for _ in range(5)]
        await asyncio.gather(*(core.answer(turn(f"q{i}", thread=f"t{i}"), s) for i, s in enumerate(surfaces)))
    finally:
        await core.aclose()
    assert all(s.messages == ["One at a time, please."] for s in surfaces)
    spans = sorted((r.received_at, r.finished_at or 0.0) for r in model_server.requests)
    assert len(spans) == 5
    most_at_once = max(sum(1 for start, end in spans if start <= at < end) for at, _ in spans)
    assert most_at_once == 2  # the model was never asked for more than two answers at once


async def test_when_older_messages_no_longer_fit_the_reply_says_so_once(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    # 1,024 tokens of context less 500 for the answer: about four of these turns fit.
    core = make_core(remote_model_settings(model_server.base_url), redis_store, token_counter, context_tokens=1024)
    model_server.default = Script(text=" ".join(f"word{i}" for i in range(40)))
    shown: list[MemorySurface] = []
    try:
        for i in range(8):
            shown.append(surface())
            await core.answer(turn(f"Question {i}: " + "tell me more " * 10), shown[-1])
    finally:
        await core.aclose()
    noticed = [i for i, s in enumerate(shown) if "messages were used" in s.messages[-1]]
    assert len(noticed) == 1, [s.messages[-1][-120:] for s in shown]
    first = noticed[0]
    assert first >= 2  # the first turns fit whole
    assert re.search(r"\n\nℹ️ .*only the last \d+ messages were used\.$", shown[first].messages[-1])
    sent = model_server.requests[first].body["messages"]
    assert not any("Question 0:" in m["content"] for m in sent)  # the oldest really was left out
    # The notice is not part of what the model is told later.
    assert not any("messages were used" in m["content"] for m in model_server.requests[-1].body["messages"])


async def test_an_answer_that_arrives_all_at_once_leaves_the_process_free_for_everything_else(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    """A process behind on its streams finds their pieces piled up. It reads them a few at a
    time, so the answers Redis sends its leases, the platform's events and the other replies are
    not held up until a whole pile is read."""
    model_server.default = Script(tokens=3000, rate=0, honor_max_tokens=False)  # sent in one go
    latest = 0.0
    answered = asyncio.Event()

    async def watch_the_loop() -> None:
        nonlocal latest
        while not answered.is_set():
            asked = time.monotonic()
            await asyncio.sleep(0.005)
            latest = max(latest, time.monotonic() - asked - 0.005)

    watcher = asyncio.create_task(watch_the_loop())
    result = await core.answer(turn(), surface())
    answered.set()
    await watcher
    assert result.complete and result.text == model_server.default.answer
    assert latest < 0.1, f"the event loop waited {latest * 1000:.0f} ms for the stream"
