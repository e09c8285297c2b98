"""A whole turn through the core: the real AsyncInferenceClient against a loopback
OpenAI-compatible server, real Redis, and what the person ends up seeing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import pytest

from bot.budget import WriteBudget
from bot.core import ChatCore, Turn
from bot.errors import FailureKind
from bot.prompt import MistralTokenCounter
from bot.render import SurfaceLimits
from bot.store import RedisHistoryStore, StoredMessage
from tests.conftest import OwnRedis, free_port, make_core, remote_model_settings
from tests.fakes.memory_surface import MemorySurface
from tests.fakes.model_server import FakeModelServer, Script

ANSWER = "Redis keeps data in memory and can persist it to disk."


def surface() -> MemorySurface:
    return MemorySurface(SurfaceLimits(max_length=2000, min_edit_interval=0.05))


def turn(text: str = "What is Redis?", thread: str = "t1") -> Turn:
    return Turn(thread=thread, author_id="42", author_name="Ada", text=text)


@pytest.fixture
async def core(
    model_server: FakeModelServer, redis_store: RedisHistoryStore, token_counter: MistralTokenCounter
) -> AsyncIterator[ChatCore]:
    settings = remote_model_settings(model_server.base_url, timeout_seconds=1.0, loading_retries=2)
    core = make_core(settings, redis_store, token_counter)
    yield core
    await core.backend.aclose()


@pytest.fixture(params=["own connection", "shared connections"])
async def either_core(
    request: pytest.FixtureRequest,
    model_server: FakeModelServer,
    redis_store: RedisHistoryStore,
    token_counter: MistralTokenCounter,
) -> AsyncIterator[ChatCore]:
    """A core whose one reply at a time streams on a connection of its own (read when shown),
    or on shared kept-alive connections (read on the tick, peeked at in between)."""
    own_connections = 8 if request.param == "own connection" else 0
    settings = remote_model_settings(
        model_server.base_url, timeout_seconds=1.0, loading_retries=2, own_connections=own_connections
    )
    core = make_core(settings, redis_store, token_counter)
    yield core
    await core.backend.aclose()


async def history(store: RedisHistoryStore, thread: str = "t1") -> list[tuple[str, str]]:
    messages = await store.begin_turn(thread, StoredMessage("user", "(probe)"))
    return [(m.role, m.content) for m in messages[:-1]]


async def test_an_answer_streams_and_both_turns_are_remembered(
    core: ChatCore, model_server: FakeModelServer, redis_store: RedisHistoryStore
) -> None:
    model_server.default = Script(text=ANSWER, rate=100)
    shown = surface()
    result = await core.answer(turn(), shown)
    assert shown.messages == [ANSWER]
    assert len(shown.writes) >= 2  # it appeared progressively, not all at once
    assert result.complete
    assert await history(redis_store) == [("user", "What is Redis?"), ("assistant", ANSWER)]


async def test_consecutive_replies_reuse_a_shared_connection_to_the_model(
    model_server: FakeModelServer, redis_store: RedisHistoryStore, token_counter: MistralTokenCounter
) -> None:
    # Shared, kept-alive connections: always over TLS, and for a plain-HTTP server once many
    # replies stream (here from the first, with MODEL_OWN_CONNECTIONS=0).
    settings = remote_model_settings(model_server.base_url, own_connections=0)
    core = make_core(settings, redis_store, token_counter)
    model_server.default = Script(text="Quick answer.")
    try:
        await core.answer(turn("one"), surface())
        await core.answer(turn("two"), surface())
    finally:
        await core.backend.aclose()
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
    (Script(text=ANSWER, failure="http_400_context", error_style="vllm"), FailureKind.CONTEXT_TOO_LONG, ""),
    (Script(text=ANSWER, failure="headers_timeout", headers_delay=3), FailureKind.TIMEOUT, ""),
    (Script(text=ANSWER, failure="stall", fail_after=3), FailureKind.STALLED, "Redis keeps data"),
    (Script(text=ANSWER, failure="cut", fail_after=3), FailureKind.CUT, "Redis keeps data"),
    (Script(text=ANSWER, failure="eof_no_done", fail_after=3), FailureKind.CUT, "Redis keeps data"),
    (Script(text=ANSWER, failure="sse_error", fail_after=3), FailureKind.UNAVAILABLE, "Redis keeps data"),
]


@pytest.mark.parametrize(("script", "kind", "partial"), FAILURES, ids=[f"{s.failure}-{s.error_style}" for s, _, _ in FAILURES])
async def test_each_failure_shows_the_partial_text_and_a_human_reason(
    either_core: ChatCore,
    model_server: FakeModelServer,
    redis_store: RedisHistoryStore,
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
    assert await history(redis_store) == [("user", "What is Redis?")]


@pytest.mark.parametrize("failure", ["cut", "stall", "sse_error"])
async def test_a_reply_held_to_be_posted_whole_still_shows_what_came_before_a_failure(
    either_core: ChatCore, model_server: FakeModelServer, failure: str
) -> None:
    # With no edit to spare the reply is posted once, whole, and its text waits for it below
    # huggingface_hub; a broken stream must still hand that text over with the reason.
    model_server.default = Script(text=ANSWER, failure=failure, fail_after=3, rate=50)
    no_streaming = WriteBudget(5, 5.0, max_streaming=0)
    held = MemorySurface(SurfaceLimits(max_length=2000, min_edit_interval=0.05), edit_budgets=[no_streaming])
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
    core: ChatCore, model_server: FakeModelServer, redis_store: RedisHistoryStore
) -> None:
    model_server.default = Script(text=ANSWER, failure="length", fail_after=4)
    shown = surface()
    await core.answer(turn(), shown)
    assert shown.messages[-1] == "Redis keeps data in\n\n⚠️ " + FailureKind.LENGTH.reason
    assert await history(redis_store) == [("user", "What is Redis?"), ("assistant", "Redis keeps data in")]


async def test_a_message_too_long_for_the_context_is_refused_before_the_model(
    model_server: FakeModelServer, redis_store: RedisHistoryStore, token_counter: MistralTokenCounter
) -> None:
    core = make_core(remote_model_settings(model_server.base_url), redis_store, token_counter, context_tokens=1024)
    shown = surface()
    try:
        await core.answer(turn("word " * 3000), shown)
    finally:
        await core.backend.aclose()
    assert shown.messages == ["⚠️ " + FailureKind.MESSAGE_TOO_LONG.reason]
    assert model_server.requests == []
    assert await history(redis_store) == []


async def test_redis_down_tells_the_person_instead_of_crashing(
    model_server: FakeModelServer, own_redis: OwnRedis, token_counter: MistralTokenCounter, history_settings
) -> None:
    store = RedisHistoryStore.from_url(own_redis.url, replace(history_settings, redis_url=own_redis.url))
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
        await core.backend.aclose()
        await store.aclose()


async def test_a_cancelled_reply_frees_the_model_connection(
    core: ChatCore, model_server: FakeModelServer
) -> None:
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
    core: ChatCore, model_server: FakeModelServer, redis_store: RedisHistoryStore
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
async def own_store(own_redis: OwnRedis, history_settings) -> AsyncIterator[RedisHistoryStore]:
    store = RedisHistoryStore.from_url(own_redis.url, replace(history_settings, redis_url=own_redis.url))
    await store.ping()
    yield store
    own_redis.thaw()
    await store.aclose()


async def test_a_new_conversation_asks_the_model_while_its_question_is_being_stored(
    model_server: FakeModelServer, own_redis: OwnRedis, own_store: RedisHistoryStore, token_counter: MistralTokenCounter
) -> None:
    core = make_core(remote_model_settings(model_server.base_url), own_store, token_counter)
    model_server.default = Script(text=ANSWER)
    shown = surface()
    try:
        own_redis.freeze()
        answering = asyncio.create_task(core.answer(replace(turn(thread="new"), new_conversation=True), shown))
        for _ in range(40):
            if model_server.requests:
                break
            await asyncio.sleep(0.05)
        assert len(model_server.requests) == 1  # asked while Redis is not answering
        await asyncio.sleep(0.2)
        assert shown.messages == []  # no text before the question is stored
        own_redis.thaw()
        await answering
    finally:
        await core.backend.aclose()
    assert shown.messages == [ANSWER]
    assert await history(own_store, "new") == [("user", "What is Redis?"), ("assistant", ANSWER)]


async def test_a_new_conversation_whose_question_cannot_be_stored_says_so(
    model_server: FakeModelServer, own_redis: OwnRedis, own_store: RedisHistoryStore, token_counter: MistralTokenCounter
) -> None:
    core = make_core(remote_model_settings(model_server.base_url), own_store, token_counter)
    model_server.default = Script(tokens=200, rate=20)
    shown = surface()
    try:
        own_redis.stop()
        await core.answer(replace(turn(thread="new"), new_conversation=True), shown)
    finally:
        await core.backend.aclose()
    assert shown.messages == ["⚠️ " + FailureKind.STORE_UNAVAILABLE.reason]
    for _ in range(40):  # the model request it had started is given up
        if model_server.requests[-1].outcome == "disconnected":
            break
        await asyncio.sleep(0.05)
    assert model_server.requests[-1].outcome == "disconnected"


async def test_a_model_server_without_a_configured_token_never_gets_one_found_elsewhere(
    model_server: FakeModelServer, redis_store: RedisHistoryStore, token_counter: MistralTokenCounter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_personal_token_of_whoever_runs_it")  # what `hf auth login` leaves around
    core = make_core(remote_model_settings(model_server.base_url, hf_token=None), redis_store, token_counter)
    model_server.default = Script(text=ANSWER)
    shown = surface()
    try:
        await core.answer(turn(), shown)
    finally:
        await core.backend.aclose()
    assert shown.messages == [ANSWER]
    assert "Authorization" not in model_server.requests[-1].headers


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
    core: ChatCore, model_server: FakeModelServer, redis_store: RedisHistoryStore
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


def distinct_texts(shown: MemorySurface) -> int:
    return len({write.text for write in shown.writes})


# A long batch interval makes the batching visible: a reply grows in steps of ~15 words
# even though the surface could show every word (edits every 50 ms).
BATCH = 0.3


def batched_core(
    model_server: FakeModelServer,
    redis_store: RedisHistoryStore,
    token_counter: MistralTokenCounter,
    *,
    batch: float = BATCH,
    own_connections: int = 0,
) -> tuple[ChatCore, str]:
    """A core reading the model in `batch`-second batches, and the 60-token (1.2 s) answer it will get.

    By default every reply shares kept-alive connections and is read on the batching tick.
    """
    settings = remote_model_settings(model_server.base_url, read_batch_seconds=batch, own_connections=own_connections)
    model_server.default = Script(tokens=60, rate=50)
    return make_core(settings, redis_store, token_counter), "".join(Script(tokens=60).token_list())


async def test_streamed_tokens_are_read_in_batches_and_first_and_last_words_still_show_promptly(
    model_server: FakeModelServer, redis_store: RedisHistoryStore, token_counter: MistralTokenCounter
) -> None:
    core, expected = batched_core(model_server, redis_store, token_counter)
    try:
        for question in ("first", "second"):  # the second on the kept-alive connection the first batched
            shown = surface()
            await core.answer(turn(question), shown)
            record = model_server.requests[-1]
            assert shown.messages == [expected]
            assert distinct_texts(shown) <= 1.2 / BATCH + 3
            assert shown.first_visible_at - record.first_token_at < BATCH / 2  # the first words never wait
            assert shown.final_visible_at - record.last_token_at < BATCH + 0.2
        assert model_server.requests[0].client_port == model_server.requests[1].client_port
    finally:
        await core.backend.aclose()


async def test_many_replies_streaming_at_once_are_read_in_batches_too(
    model_server: FakeModelServer, redis_store: RedisHistoryStore, token_counter: MistralTokenCounter
) -> None:
    core, expected = batched_core(model_server, redis_store, token_counter)
    surfaces = [surface() for _ in range(80)]
    try:
        await asyncio.gather(*(core.answer(turn(f"q{i}", thread=f"t{i}"), s) for i, s in enumerate(surfaces)))
    finally:
        await core.backend.aclose()
    last_token_at = {r.body["messages"][-1]["content"]: r.last_token_at for r in model_server.requests}
    for i, shown in enumerate(surfaces):
        assert shown.messages == [expected]
        assert distinct_texts(shown) <= 1.2 / BATCH + 3
        assert shown.final_visible_at - last_token_at[f"q{i}"] < BATCH + 0.2


async def test_a_quiet_reply_on_a_connection_of_its_own_shows_its_last_words_as_soon_as_they_come(
    model_server: FakeModelServer, redis_store: RedisHistoryStore, token_counter: MistralTokenCounter
) -> None:
    # Edits once a second and a one-second read tick: on the tick, the words that come after the
    # edit at ~1 s would be read ~0.8 s after the model's last token. The server closing the
    # connection at the end of the reply is read at once.
    core, expected = batched_core(model_server, redis_store, token_counter, batch=1.0, own_connections=8)
    try:
        for question in ("first", "second"):
            shown = MemorySurface(SurfaceLimits(max_length=2000, min_edit_interval=1.0))
            await core.answer(turn(question), shown)
            record = model_server.requests[-1]
            assert shown.messages == [expected]
            assert shown.final_visible_at - record.last_token_at < 0.3
            assert shown.first_visible_at - record.first_token_at < 0.3  # not on the 1 s tick
            assert len(shown.writes) == 3  # still live: first words, an edit a second later, the final text
    finally:
        await core.backend.aclose()


async def test_many_replies_from_a_plain_http_server_each_show_their_last_words_as_soon_as_they_come(
    model_server: FakeModelServer, redis_store: RedisHistoryStore, token_counter: MistralTokenCounter
) -> None:
    # By default every reply from a plain-HTTP server has a connection of its own, however many
    # stream at once: with a one-second read tick, shared connections would show the last words
    # of many replies up to a second late.
    default = remote_model_settings(model_server.base_url).own_connections
    core, expected = batched_core(model_server, redis_store, token_counter, batch=1.0, own_connections=default)
    surfaces = [MemorySurface(SurfaceLimits(max_length=2000, min_edit_interval=1.0)) for _ in range(40)]
    try:
        await asyncio.gather(*(core.answer(turn(f"q{i}", thread=f"t{i}"), s) for i, s in enumerate(surfaces)))
    finally:
        await core.backend.aclose()
    records = {r.body["messages"][-1]["content"]: r for r in model_server.requests}
    assert len({r.client_port for r in records.values()}) == len(surfaces)
    for i, shown in enumerate(surfaces):
        assert shown.messages == [expected]
        assert shown.final_visible_at - records[f"q{i}"].last_token_at < 0.3
        assert len(shown.writes) == 3  # still live: first words, an edit a second later, the final text


async def spares_ready(model_server: FakeModelServer, count: int, timeout: float = 5.0) -> set[int]:
    """Waits until the server sees `count` connections open; returns their client ports."""
    deadline = asyncio.get_running_loop().time() + timeout
    while len(ports := model_server.open_connection_ports()) != count:
        assert asyncio.get_running_loop().time() < deadline, f"{len(ports)} connections open, expected {count}"
        await asyncio.sleep(0.05)
    return ports


@asynccontextmanager
async def core_with_spares(
    model_server: FakeModelServer, redis_store: RedisHistoryStore, token_counter: MistralTokenCounter, spares: int
) -> AsyncIterator[tuple[ChatCore, set[int]]]:
    """A core started as the bot starts it (`warm`), and the ports of the spare connections it opened."""
    core = make_core(remote_model_settings(model_server.base_url, spare_connections=spares), redis_store, token_counter)
    model_server.default = Script(text=ANSWER)
    try:
        await core.backend.warm()
        yield core, await spares_ready(model_server, spares)
    finally:
        await core.backend.aclose()


async def test_replies_go_out_on_connections_opened_before_anyone_asked(
    model_server: FakeModelServer, redis_store: RedisHistoryStore, token_counter: MistralTokenCounter
) -> None:
    # Opening a connection costs the bot as much as building the request; a burst of mentions
    # would pay it for every reply before the last request leaves. Spares are opened at start.
    async with core_with_spares(model_server, redis_store, token_counter, 3) as (core, opened_at_start):
        assert model_server.requests == []
        surfaces = [surface() for _ in range(3)]
        await asyncio.gather(*(core.answer(turn(f"q{i}", thread=f"t{i}"), s) for i, s in enumerate(surfaces)))
        assert [s.messages for s in surfaces] == [[ANSWER]] * 3
        assert {r.client_port for r in model_server.requests} == opened_at_start
        # A moment after the burst, as many are ready again for the next one.
        reopened = await spares_ready(model_server, 3)
        assert not reopened & opened_at_start


async def test_spare_connections_the_server_closed_are_not_used_and_are_opened_again(
    model_server: FakeModelServer, redis_store: RedisHistoryStore, token_counter: MistralTokenCounter
) -> None:
    async with core_with_spares(model_server, redis_store, token_counter, 2) as (core, closed):
        model_server.close_connections()  # an idle timeout on the server's side
        await spares_ready(model_server, 0)
        shown = surface()
        await core.answer(turn(), shown)
        assert shown.messages == [ANSWER]
        assert model_server.requests[-1].client_port not in closed
        assert len(model_server.requests) == 1  # no request was lost on a dead connection
        await spares_ready(model_server, 2)


async def test_a_model_server_down_at_start_neither_stops_the_start_nor_hides_the_reason_later(
    redis_store: RedisHistoryStore, token_counter: MistralTokenCounter
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    settings = remote_model_settings(url, timeout_seconds=1.0, loading_retries=0, spare_connections=2)
    core = make_core(settings, redis_store, token_counter)
    try:
        await asyncio.wait_for(core.backend.warm(), 3.0)  # no spare could be opened: the bot starts anyway
        shown = surface()
        await core.answer(turn(), shown)
    finally:
        await core.backend.aclose()
    assert shown.messages == ["⚠️ " + FailureKind.UNAVAILABLE.reason]


async def test_a_server_that_keeps_a_connection_open_anyway_is_read_on_the_tick(
    model_server: FakeModelServer, redis_store: RedisHistoryStore, token_counter: MistralTokenCounter
) -> None:
    # The bot asks for its own connection, but this server keeps it open: read only when the
    # reply is shown (once a second), the end would wait for the next of those reads.
    core, expected = batched_core(model_server, redis_store, token_counter, batch=0.1, own_connections=8)
    model_server.default = Script(tokens=60, rate=50, keeps_connection_open=True)
    try:
        shown = MemorySurface(SurfaceLimits(max_length=2000, min_edit_interval=1.0))
        await core.answer(turn(), shown)
        record = model_server.requests[-1]
        assert shown.messages == [expected]
        assert shown.final_visible_at - record.last_token_at < 0.3
    finally:
        await core.backend.aclose()


async def test_with_read_batching_off_every_word_can_show_as_it_comes(
    model_server: FakeModelServer, redis_store: RedisHistoryStore, token_counter: MistralTokenCounter
) -> None:
    settings = remote_model_settings(model_server.base_url, read_batch_seconds=0.0)
    core = make_core(settings, redis_store, token_counter)
    model_server.default = Script(tokens=60, rate=50)
    try:
        shown = surface()
        await core.answer(turn(), shown)
        assert shown.messages == ["".join(Script(tokens=60).token_list())]
        assert distinct_texts(shown) >= 12  # an edit every ~50 ms over 1.2 s
    finally:
        await core.backend.aclose()


async def test_after_a_run_of_failed_requests_the_bot_still_answers(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    # Model requests are built a few at a time; a failed one must give its place back.
    model_server.default = Script(failure="http_401")
    failed = [surface() for _ in range(20)]
    answers = asyncio.gather(*(core.answer(turn(f"q{i}", thread=f"t{i}"), s) for i, s in enumerate(failed)))
    await asyncio.wait_for(answers, 10)
    assert all("token" in s.messages[0].lower() for s in failed)
    model_server.default = Script(text="Back again.")
    shown = surface()
    await asyncio.wait_for(core.answer(turn("again", thread="t-again"), shown), 5)
    assert shown.messages == ["Back again."]


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


async def test_turns_that_come_in_together_all_get_their_whole_answers_from_a_server_that_answers_at_once(
    model_server: FakeModelServer, redis_store: RedisHistoryStore, token_counter: MistralTokenCounter
) -> None:
    # During a burst the answers wait unread until every turn has sent its request; a server
    # that answers at once must still have every word of every answer shown, soon.
    core = make_core(remote_model_settings(model_server.base_url, spare_connections=4), redis_store, token_counter)
    model_server.default = Script(text=ANSWER)
    try:
        await core.backend.warm()
        shown = [surface() for _ in range(12)]
        turns = [Turn(f"burst-{i}", "42", "Ada", f"Question {i}?", new_conversation=True) for i in range(12)]
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(core.answer(t, s) for t, s in zip(turns, shown, strict=True))), 10)
        took = time.monotonic() - started
    finally:
        await core.backend.aclose()
    assert [s.messages for s in shown] == [[ANSWER]] * 12
    assert took < 2.0  # held for a fraction of a second at most, never until the model's timeout (5 s)
