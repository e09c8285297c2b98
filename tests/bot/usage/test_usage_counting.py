"""What every model call counts, and the budgets held around it: the core with the real AsyncInferenceClient against
the loopback model server (its `usage` sent as OpenAI, as TGI, or not at all), the real MCP server for tool rounds,
and real Redis. The figures expected are the ones the model server reported, or its text counted by the tokenizer."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bot.core import ChatCore, Turn
from bot.reply.surface import SurfaceLimits
from bot.state.personas import Personas, Place
from bot.state.store import HistoryStore
from bot.tools.gate import ConfirmGate
from bot.tools.toolbox import ToolBox
from bot.turn.prompt import MistralTokenCounter
from bot.usage.days import day_of, month_window
from bot.usage.ledger import UsageLedger
from bot.usage.totals import UsageTotals
from config.models import ModelCatalog, ModelChoice, Price
from config.tools import ToolSettings
from config.usage import Budget, PlaceBudget, UsageSettings
from fakes.harness.processes import REDIS_URL, ROOT
from fakes.memory_surface import MemorySurface
from fakes.model_server import FakeModelServer, Script, ToolCallScript
from tests.bot.tools.test_tool_turns import AskingSurface, agent, server_config
from tests.conftest import make_core, remote_model_settings

PERSON = "usage:42"  # a turn's person: its quota scope (the thread's platform, "usage") and its author
SERVER = Place("usage", "server", "s1")
CHANNEL = Place("usage", "channel", "c1", server="s1")
PRICE = Price(input_per_million=2.0, output_per_million=6.0)
WORDS = " ".join(f"word{n}" for n in range(200))


def surface() -> MemorySurface:
    return MemorySurface(SurfaceLimits(max_length=4000, min_edit_interval=0.05))


def turn(text: str, thread: str = "", author: str = "42") -> Turn:
    thread = thread or f"usage:{uuid.uuid4().hex[:8]}"
    return Turn(thread=thread, author_id=author, author_name="Ada", text=text, places=(CHANNEL, SERVER))


def make(
    model_server: FakeModelServer,
    store: HistoryStore,
    counter: MistralTokenCounter,
    usage: UsageSettings | None = None,
    max_new_tokens: int = 64,
    model_id: str = "",
    **parts: object,
) -> ChatCore:
    settings = remote_model_settings(model_server.base_url, timeout_seconds=5.0, loading_retries=0)
    settings = replace(settings, sampling=replace(settings.sampling, max_new_tokens=max_new_tokens))
    settings = replace(settings, model_id=model_id or settings.model_id)
    catalog = ModelCatalog((ModelChoice(settings.model_id, "Priced", False, settings, price=PRICE),))
    personas = Personas(
        store.client, store.settings.key_prefix, "You are a test bot.", size=counter.count, max_tokens=2000
    )
    return make_core(settings, store, counter, models=catalog, usage=usage, personas=personas, **parts)


async def person_today(core: ChatCore, person: str = PERSON) -> UsageTotals:
    return await core.accounting.ledger.totals(person, [day_of(time.time())], kind="person")


def reported(model_server: FakeModelServer) -> tuple[int, int]:
    prompt = sum((request.usage or {}).get("prompt_tokens", 0) for request in model_server.requests)
    completion = sum((request.usage or {}).get("completion_tokens", 0) for request in model_server.requests)
    return prompt, completion


@pytest.fixture
async def core(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> AsyncIterator[ChatCore]:
    core = make(model_server, redis_store, token_counter)
    yield core
    await core.aclose()


@pytest.mark.parametrize("style", ["asked", "finish_chunk"])
async def test_an_answer_counts_what_the_provider_reported_and_what_it_cost(
    core: ChatCore, model_server: FakeModelServer, style: str
) -> None:
    model_server.default = Script(text="Paris is the capital of France.", usage_style=style)  # type: ignore[arg-type]
    await core.answer(turn("Capital of France?"), surface())
    await core.answer(turn("And of Spain?"), surface())

    assert all(request.body.get("stream_options") == {"include_usage": True} for request in model_server.requests)
    prompt, completion = reported(model_server)
    assert prompt > 0 and completion == 2 * len(Script(text="Paris is the capital of France.").token_list())
    today = await person_today(core)
    assert (today.prompt_tokens, today.completion_tokens, today.turns) == (prompt, completion, 2)
    assert today.cost_usd == pytest.approx(PRICE.cost(prompt, completion))
    server = await core.accounting.ledger.totals(SERVER.key, [day_of(time.time())], kind="scope")
    assert server.tokens == prompt + completion
    metrics = core._metrics.registry
    model = model_server.requests[0].model or ""
    assert metrics.get_sample_value("tokens_total", {"model": model, "kind": "output"}) == completion
    assert metrics.get_sample_value("cost_usd_total", {"model": model}) == pytest.approx(PRICE.cost(prompt, completion))


async def test_without_usage_from_the_provider_the_tokenizer_counts_and_the_log_says_so_once(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    model = f"silent-{uuid.uuid4().hex[:8]}"  # a model this process has not heard of yet
    core = make(model_server, redis_store, token_counter, model_id=model)
    text = "The answer, counted by the tokenizer since this server reports nothing."
    model_server.default = Script(text=text, usage_style="none", thought="Let me think about it first.")
    with capture_logs() as logs:
        await core.answer(turn("Count me"), surface())
        await core.answer(turn("Count me again"), surface())
    await core.aclose()

    assert [request.usage for request in model_server.requests] == [None, None]
    warned = [log for log in logs if log["event"] == "model_usage_not_reported"]
    assert [(log["model"], log["counted_by"]) for log in warned] == [(model, "tokenizer")]
    today = await person_today(core)
    thought_and_text = token_counter.count("Let me think about it first.") + token_counter.count(text)
    assert today.completion_tokens == pytest.approx(2 * thought_and_text, abs=4)
    assert today.prompt_tokens >= 2 * (token_counter.count("You are a test bot.") + 2)


async def test_a_thinking_models_thought_counts_as_output(core: ChatCore, model_server: FakeModelServer) -> None:
    model_server.default = Script(text="Four.", thought_tokens=30)
    await core.answer(turn("2 + 2?"), surface())
    _, completion = reported(model_server)
    assert completion >= 30
    assert (await person_today(core)).completion_tokens == completion


@pytest.fixture
async def toolbox(tmp_path: Path) -> AsyncIterator[ToolBox]:
    """The real MCP server of fakes/mcp_tools.py, for answers with tool rounds."""
    files = {"notes": tmp_path / "n.txt", "events": tmp_path / "e.txt", "timing": tmp_path / "t.jsonl"}
    box = ToolBox(ToolSettings(servers=(server_config(files, timeout_seconds=2.0),), confirm_seconds=1.0))
    await box.start(ready_within=20)
    yield box
    await box.aclose()


async def test_each_tool_round_is_a_call_and_counts(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter, toolbox: ToolBox
) -> None:
    gate = ConfirmGate(redis_store.client, redis_store.settings.key_prefix)
    core = make(model_server, redis_store, token_counter, tools=toolbox, gate=gate)
    try:
        model_server.responder = agent({"weather": [ToolCallScript("lookup", '{"query": "weather"}')]})
        result = await core.answer(turn("What's the weather?"), AskingSurface(gate, []))
        assert result.failure is None
        assert len(model_server.requests) == 2  # the call, then the answer with its result
        prompt, completion = reported(model_server)
        today = await person_today(core)
        assert (today.prompt_tokens, today.completion_tokens, today.turns) == (prompt, completion, 1)
    finally:
        await core.aclose()


async def test_a_budget_refuses_before_the_call_and_says_what_ran_out_and_when(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    core = make(model_server, redis_store, token_counter, UsageSettings(user_daily_budget=Budget(400, "tokens")))
    try:
        model_server.default = Script(text="Short answer.")
        first = await core.answer(turn("First question"), surface())
        assert first.failure is None
        used = (await person_today(core)).tokens
        # Held for the next: its prompt plus MAX_NEW_TOKENS (64), more than the 400 - used that are left? Spend it.
        while (await core.answer(turn("Another question"), shown := surface())).failure is None:
            assert len(model_server.requests) < 20
        asked = len(model_server.requests)
        refused = shown.messages[-1]
        assert "This question needs about " in refused and " left of your daily budget (" in refused
        assert "of 400 tokens used), so I didn't ask the model. It resets in " in refused and "00:00 UTC" in refused
        again = await core.answer(turn("One more"), surface())
        assert again.failure is not None and len(model_server.requests) == asked  # nothing sent to the model
        total = (await person_today(core)).tokens
        assert used <= total <= 400
        # The channel lowers each person's daily budget below what they used today: it has run out.
        assert core.personas is not None
        await core.personas.set_budget(CHANNEL, PlaceBudget(person_daily=Budget(total - 1, "tokens")))
        await core.answer(turn("And now?"), shown := surface())
        assert (
            f"Your daily budget has run out: {total:,} of {total - 1:,} tokens used, so I didn't ask the model. "
            in (shown.messages[-1])
        )
        await core.personas.set_budget(CHANNEL, None)
        # Another person has their own day.
        other = await core.answer(turn("Mine?", author="43"), surface())
        assert other.failure is None
    finally:
        await core.aclose()


async def test_a_refused_question_is_kept_with_why_so_the_conversation_stays_whole(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    core = make(model_server, redis_store, token_counter, UsageSettings(user_daily_budget=Budget(10, "tokens")))
    try:
        thread = f"usage:{uuid.uuid4().hex[:8]}"
        await core.answer(turn("Too big for the budget", thread=thread), surface())
        [question, answer] = await core.history(thread)
        assert question.content == "Too big for the budget"
        assert "more than your daily budget allows at all (10 tokens)" in answer.failed
        assert model_server.requests == []
    finally:
        await core.aclose()


async def test_a_server_ignoring_max_tokens_is_stopped_at_a_words_end_with_a_note(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    usage = UsageSettings(user_daily_budget=Budget(100_000, "tokens"))
    core = make(model_server, redis_store, token_counter, usage, max_new_tokens=20)
    try:
        model_server.default = Script(text=WORDS, honor_max_tokens=False, rate=400, usage_style="none")
        shown = surface()
        result = await core.answer(turn("Tell me everything"), shown)
        assert result.failure is not None and result.complete  # kept as an answer, with its note
        text = result.text
        assert "I stopped here: the usage budget ran out during this answer." in shown.messages[-1]
        written = text.split("I stopped here")[0].split()
        assert written and all(word in WORDS.split() for word in written)  # whole words only
        assert 15 <= len(written) <= 30
        today = await person_today(core)
        assert today.completion_tokens < 60  # what was shown, not the 200 words the server would have sent
    finally:
        await core.aclose()


async def test_a_channels_own_budget_applies_beside_the_servers(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    core = make(
        model_server, redis_store, token_counter, UsageSettings(server_monthly_budget=Budget(1_000_000, "tokens"))
    )
    try:
        assert core.personas is not None
        channel = Place("usage", "channel", uuid.uuid4().hex[:8], server="s1")
        await core.personas.set_budget(channel, PlaceBudget(monthly=Budget(50, "tokens")))
        shown = surface()
        refused = await core.answer(
            Turn(
                thread=f"usage:{uuid.uuid4().hex}",
                author_id="42",
                author_name="Ada",
                text="Hi?",
                places=(channel, SERVER),
            ),
            shown,
        )
        assert (
            refused.failure is not None
            and "more than this channel's monthly budget allows at all" in shown.messages[-1]
        )
        allowed = await core.answer(turn("Elsewhere in the server?"), surface())
        assert allowed.failure is None
        await core.personas.set_budget(channel, None)
    finally:
        await core.aclose()


async def test_fifty_questions_at_once_never_overspend_the_budget(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    budget = 2_000
    usage = UsageSettings(user_daily_budget=Budget(budget, "tokens"))
    cores = [make(model_server, redis_store, token_counter, usage) for _ in range(2)]  # two processes' cores
    try:
        model_server.default = Script(text="A short answer of a few words.", rate=100)
        author = f"p{uuid.uuid4().hex[:6]}"
        results = await asyncio.gather(
            *(cores[n % 2].answer(turn(f"Question {n}?", author=author), surface()) for n in range(50))
        )
        answered = [result for result in results if result.failure is None]
        used = (await person_today(cores[0], f"usage:{author}")).tokens
        assert used <= budget
        assert 1 <= len(answered) < 50
        assert len(model_server.requests) == len(answered)  # every refused one was refused before the call
    finally:
        for core in cores:
            await core.aclose()


async def test_fifty_questions_from_two_processes_never_overspend_the_budget(
    model_server: FakeModelServer, redis_store: HistoryStore, key_prefix: str
) -> None:
    budget, person = 2_000, f"p{uuid.uuid4().hex[:6]}"
    model_server.default = Script(text="A short answer of a few words.", rate=100)
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith(("DISCORD_", "SLACK_", "HF_"))},
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": key_prefix,
        "INFERENCE_BASE_URL": f"{model_server.base_url}/v1",
        "HF_TOKEN": "hf_test",
        "MAX_NEW_TOKENS": "64",
        "USER_DAILY_BUDGET": str(budget),
        "LOG_LEVEL": "warning",
    }
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fakes.usage_worker",
            "25",
            person,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(worker.communicate() for worker in workers)), 120)
    assert [worker.returncode for worker in workers] == [0, 0], [err.decode()[-2000:] for _, err in outputs]
    outcomes = [json.loads(line) for out, _ in outputs for line in out.decode().splitlines() if line.startswith("{")]
    assert len(outcomes) == 50
    answered = [outcome for outcome in outcomes if outcome["answered"]]
    refused = [outcome for outcome in outcomes if not outcome["answered"]]
    ledger = UsageLedger(redis_store.client, key_prefix)
    used = (await ledger.totals(f"worker:{person}", [day_of(time.time())], kind="person")).tokens
    assert used <= budget  # each hold is the prompt plus MAX_NEW_TOKENS: together they never pass the budget
    assert 1 <= len(answered) < 50 and len(model_server.requests) == len(answered)
    assert all("daily budget" in outcome["said"] and "I didn't ask the model" in outcome["said"] for outcome in refused)


async def test_a_budget_set_a_moment_ago_applies_to_the_next_question_and_no_hold_is_left(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    """Budgets are held while the prompt is built, from what the place set as last read; the budgets read with the
    prompt decide: one set since then applies at once, and what was held early is given back."""
    usage = UsageSettings(server_monthly_budget=Budget(10_000_000, "tokens"))
    core = make(model_server, redis_store, token_counter, usage)
    assert core.personas is not None
    channel = Place("usage", "channel", uuid.uuid4().hex[:8], server="s1")
    places = (channel, SERVER)
    try:
        first = await core.answer(Turn(f"usage:{uuid.uuid4().hex}", "42", "Ada", "One?", places=places), surface())
        assert first.failure is None
        await core.personas.set_budget(channel, PlaceBudget(monthly=Budget(50, "tokens")))
        shown = surface()
        refused = await core.answer(Turn(f"usage:{uuid.uuid4().hex}", "42", "Ada", "Two?", places=places), shown)
        assert refused.failure is not None and "this channel's monthly budget" in shown.messages[-1]
        await core.personas.set_budget(channel, None)
        again = await core.answer(Turn(f"usage:{uuid.uuid4().hex}", "42", "Ada", "Three?", places=places), surface())
        assert again.failure is None
        month = month_window()
        server = await core.accounting.ledger.holds.standing(f"place:{SERVER.key}:{month.label}:tokens", 10_000_000)
        assert server.reserved == 0  # every hold settled or given back
        assert server.used == (await person_today(core)).tokens
        assert len(model_server.requests) == 2
    finally:
        await core.aclose()


async def test_a_tool_round_the_budget_cannot_hold_ends_the_answer_with_a_note(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter, toolbox: ToolBox
) -> None:
    gate = ConfirmGate(redis_store.client, redis_store.settings.key_prefix)
    usage = UsageSettings(user_daily_budget=Budget(250, "tokens"))
    core = make(model_server, redis_store, token_counter, usage, tools=toolbox, gate=gate)
    try:
        model_server.responder = agent({"loop": [ToolCallScript("lookup", '{"query": "a"}')]}, rounds=99)
        result = await core.answer(turn("loop"), AskingSurface(gate, []))
        rounds = [request for request in model_server.requests if request.body.get("tools")]
        assert 1 <= len(rounds) < 5  # stopped before MAX_TOOL_ROUNDS: the next round didn't fit
        assert "I stopped here: the usage budget ran out during this answer." in result.messages[-1]
        today = await person_today(core)
        assert today.tokens <= 250 and today.turns == 1
        prompt, completion = reported(model_server)
        assert (today.prompt_tokens, today.completion_tokens) == (prompt, completion)  # every round counted
    finally:
        await core.aclose()
