"""A turn with tools, end to end in the core: the real AsyncInferenceClient against the loopback model server
streaming tool calls, the real MCP server of fakes/mcp_tools.py over stdio, and real Redis."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.core import ChatCore, Turn
from bot.reply.surface import SurfaceLimits
from bot.state.personas import Personas, Place
from bot.state.store import HistoryStore
from bot.tools.consent import ConfirmRequest
from bot.tools.gate import Answer, ConfirmGate, Decision
from bot.tools.toolbox import ToolBox
from bot.turn.prompt import MistralTokenCounter
from config.tools import ToolSettings
from config.tools_file import ServerConfig
from fakes.harness.processes import ROOT
from fakes.memory_surface import MemorySurface
from fakes.model_server import FakeModelServer, Script, ToolAgent, ToolCallScript
from tests.conftest import make_core, remote_model_settings

THREAD = "tools:t1"


def turn(text: str, author: str = "42") -> Turn:
    return Turn(thread=THREAD, author_id=author, author_name="Ada", text=text)


class AskingSurface(MemorySurface):
    """A chat whose person answers the bot's questions: `answers` is what they click, in order ("yes", "no", None for
    no click at all); `clicks` how many times each click is sent (a doubled click)."""

    def __init__(self, gate: ConfirmGate, answers: list[str | None], *, clicks: int = 1, clicker: str = "42") -> None:
        super().__init__(SurfaceLimits(max_length=2000, min_edit_interval=0.05, line_prefix="-# "))
        self.gate = gate
        self.answers = list(answers)
        self.clicks = clicks
        self.clicker = clicker
        self.asked: list[ConfirmRequest] = []
        self.settled: list[Decision] = []
        self.click_answers: list[Answer] = []

    async def ask_to_run(self, request: ConfirmRequest) -> int:
        self.asked.append(request)
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            for _ in range(self.clicks):
                self.click_answers.append(await self.gate.answer(request.key, self.clicker, yes=answer == "yes"))
        return len(self.asked)

    async def settle(self, handle: int, request: ConfirmRequest, decision: Decision) -> None:
        self.settled.append(decision)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {"notes": tmp_path / "notes.txt", "events": tmp_path / "events.txt", "timing": tmp_path / "timing.jsonl"}


def server_config(files: dict[str, Path], **fields: Any) -> ServerConfig:
    env = {name: str(files[key]) for name, key in (("MCP_NOTES_FILE", "notes"), ("MCP_EVENTS_FILE", "events"))}
    env["MCP_TIMING_FILE"] = str(files["timing"])
    return ServerConfig(
        name="fake",
        command=sys.executable,
        args=("-m", "fakes.mcp_tools", "stdio"),
        env=env,
        cwd=str(ROOT),
        **fields,
    )


@pytest.fixture
async def toolbox(files: dict[str, Path]) -> AsyncIterator[ToolBox]:
    box = ToolBox(
        ToolSettings(servers=(server_config(files, timeout_seconds=1.0),), confirm_seconds=1.0, result_max_chars=500)
    )
    await box.start(ready_within=20)
    assert box.servers[0].up, box.servers[0].problem
    yield box
    await box.aclose()


@pytest.fixture
async def core(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter, toolbox: ToolBox
) -> AsyncIterator[ChatCore]:
    settings = remote_model_settings(model_server.base_url, timeout_seconds=5.0, loading_retries=0)
    gate = ConfirmGate(redis_store.client, redis_store.settings.key_prefix)
    core = make_core(settings, redis_store, token_counter, tools=toolbox, gate=gate)
    yield core
    await core.aclose()


def start(run: dict[str, float]) -> float:
    return run["start"]


def agent(calls: dict[str, list[ToolCallScript]], **options: Any) -> ToolAgent:
    return ToolAgent(calls, base=Script(rate=200), **options)


async def test_a_read_only_tool_runs_its_result_goes_back_and_its_sources_are_listed(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    model_server.responder = agent(
        {"weather": [ToolCallScript("lookup", '{"query": "weather"}')]}, before_calls="Let me look."
    )
    surface = AskingSurface(core.gate, [])  # type: ignore[arg-type]
    result = await core.answer(turn("What's the weather?"), surface)

    assert result.failure is None
    shown = surface.messages[-1]
    assert shown.startswith("Let me look.\n\n-# ✓ `lookup`, ")
    assert "Using Result for weather: see https://example.org/weather" in shown
    assert "-# 1. <https://example.org/weather>" in shown and "-# 2. <https://docs.example.org/weather>" in shown
    assert surface.asked == []  # read-only: nobody is asked
    # The model got the call and its result, matched by id.
    asked_again = model_server.requests[-1].body["messages"]
    call_id = asked_again[-2]["tool_calls"][0]["id"]
    assert asked_again[-1]["tool_call_id"] == call_id
    assert asked_again[-1]["content"].startswith("Result for weather")
    # Kept with the conversation: a follow-up sends the call and its result again.
    [_, answer] = await core.history(THREAD)
    assert [message["role"] for message in answer.tools] == ["assistant", "tool"]
    model_server.responder = None
    await core.answer(turn("And tomorrow?"), AskingSurface(core.gate, []))  # type: ignore[arg-type]
    roles = [message["role"] for message in model_server.requests[-1].body["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]


async def test_two_calls_in_one_message_run_at_once(
    core: ChatCore, model_server: FakeModelServer, files: dict[str, Path]
) -> None:
    calls = [ToolCallScript("slow", '{"ms": 600, "tag": "a"}'), ToolCallScript("slow", '{"ms": 600, "tag": "b"}')]
    model_server.responder = agent({"both": calls})
    result = await core.answer(turn("both please"), AskingSurface(core.gate, []))  # type: ignore[arg-type]
    assert result.failure is None
    assert result.messages[-1].count("✓ `slow`") == 2
    first, second = sorted((json.loads(line) for line in files["timing"].read_text().splitlines()), key=start)
    assert second["start"] < first["end"]  # the second started while the first ran


async def test_a_tool_that_changes_something_asks_and_runs_once_after_a_yes(
    core: ChatCore, model_server: FakeModelServer, files: dict[str, Path]
) -> None:
    model_server.responder = agent({"note": [ToolCallScript("add_note", '{"text": "buy milk"}')]})
    surface = AskingSurface(core.gate, ["yes"], clicks=2)  # type: ignore[arg-type]
    result = await core.answer(turn("note: buy milk"), surface)
    assert result.failure is None
    assert [request.tool for request in surface.asked] == ["add_note"]
    assert surface.click_answers == [Answer.OK, Answer.SETTLED]  # the doubled click changes nothing
    assert files["notes"].read_text().splitlines() == ["buy milk"]
    assert surface.settled == [Decision(True, "approved")]
    assert "✓ `add_note`" in result.messages[-1]


async def test_a_no_or_no_answer_means_the_tool_does_not_run_and_the_model_is_told(
    core: ChatCore, model_server: FakeModelServer, files: dict[str, Path]
) -> None:
    model_server.responder = agent({"note": [ToolCallScript("add_note", '{"text": "x"}')]})
    for answers, why in ((["no"], "declined"), ([None], "no answer within 1 s")):
        surface = AskingSurface(core.gate, answers)  # type: ignore[arg-type]
        result = await core.answer(turn("note: x"), surface)
        assert result.failure is None
        assert f"✗ `add_note`: {why}" in result.messages[-1]
        assert "did not allow" in model_server.requests[-1].body["messages"][-1]["content"]
    assert not files["notes"].exists()


async def test_only_the_asker_can_say_yes(
    core: ChatCore, model_server: FakeModelServer, files: dict[str, Path]
) -> None:
    model_server.responder = agent({"note": [ToolCallScript("add_note", '{"text": "x"}')]})
    surface = AskingSurface(core.gate, ["yes"], clicker="someone-else")  # type: ignore[arg-type]
    result = await core.answer(turn("note: x"), surface)
    assert surface.click_answers == [Answer.NOT_YOURS]
    assert "✗ `add_note`: no answer within 1 s" in result.messages[-1]
    assert not files["notes"].exists()


DEEP = "[" * 1000 + "]" * 1000  # json.loads raises RecursionError
TOO_DEEP = "✗ `lookup`: the arguments are nested too deeply"


@pytest.mark.parametrize(
    ("call", "shown", "told"),
    [
        (ToolCallScript("hang", "{}"), "✗ `hang`: timed out", "Error:"),
        (ToolCallScript("fail", "{}"), "✗ `fail`:", "the lookup service is down"),
        (ToolCallScript("nope", "{}"), "✗ `nope`: no such tool", "there is no tool named 'nope'"),
        (ToolCallScript("lookup", '{"query": '), "✗ `lookup`: the arguments are not valid JSON", "not valid JSON"),
        (ToolCallScript("lookup", DEEP), TOO_DEEP, "nested too deeply"),
        (ToolCallScript("lookup", '{"query": ' + "[" * 100 + "]" * 100 + "}"), TOO_DEEP, "nested too deeply"),
        (ToolCallScript("lookup", "[1, 2]"), "✗ `lookup`: the arguments are not a JSON object", "not a JSON object"),
        (ToolCallScript("lookup", '{"q": 1}'), "✗ `lookup`: the arguments don't match", "'query' is a required"),
        # Its schema's pattern is no regular expression.
        (ToolCallScript("strict", '{"text": "x"}'), "✗ `strict`: its schema is invalid", "can't be called"),
        # Its schema refers to itself: checking the arguments raises RecursionError.
        (ToolCallScript("endless", '{"text": "x"}'), "✗ `endless`: failed inside the bot", "failed inside the bot"),
        (ToolCallScript("exit_now", "{}"), "✗ `exit_now`:", "Error:"),
        # A result nested deeper than the client reads: the SDK drops it, and the call times out.
        (ToolCallScript("deep_result", "{}"), "✗ `deep_result`: timed out", "Error:"),
    ],
)
async def test_a_failing_call_is_shown_the_model_gets_an_error_and_the_answer_goes_on(
    core: ChatCore, model_server: FakeModelServer, call: ToolCallScript, shown: str, told: str
) -> None:
    model_server.responder = agent({"go": [call]})
    async with asyncio.timeout(30):  # never waits forever (the call's own timeout is 1 s)
        result = await core.answer(turn("go"), AskingSurface(core.gate, []))  # type: ignore[arg-type]
    assert result.failure is None
    assert shown in result.messages[-1]
    assert told in model_server.requests[-1].body["messages"][-1]["content"]
    assert "Using " in result.messages[-1]  # the model answered after the error
    model_server.default = Script(text="Next answer.")
    async with asyncio.timeout(30):  # the conversation isn't held: the next question is answered
        following = await core.answer(turn("and then?"), AskingSurface(core.gate, []))  # type: ignore[arg-type]
    assert following.failure is None and following.messages[-1].startswith("Next answer.")


async def test_a_huge_result_is_cut_with_a_note(core: ChatCore, model_server: FakeModelServer) -> None:
    model_server.responder = agent({"big": [ToolCallScript("huge", "{}")]})
    await core.answer(turn("big"), AskingSurface(core.gate, []))  # type: ignore[arg-type]
    content = model_server.requests[-1].body["messages"][-1]["content"]
    assert content.endswith("[The result was cut: it had 100,000 characters; these are the first 500.]")


async def test_after_max_rounds_the_model_answers_without_tools_and_the_reply_says_so(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    model_server.responder = agent({"loop": [ToolCallScript("lookup", '{"query": "a"}')]}, rounds=99)
    result = await core.answer(turn("loop"), AskingSurface(core.gate, []))  # type: ignore[arg-type]
    with_tools = [request for request in model_server.requests if request.body.get("tools")]
    assert len(with_tools) == 5  # MAX_TOOL_ROUNDS
    assert not model_server.requests[-1].body.get("tools")
    assert "limit of 5 rounds of tool calls" in result.messages[-1]


async def test_stopping_the_answer_cancels_the_running_call(
    core: ChatCore, model_server: FakeModelServer, files: dict[str, Path]
) -> None:
    model_server.responder = agent({"wait": [ToolCallScript("hang", "{}")]})
    surface = AskingSurface(core.gate, [])  # type: ignore[arg-type]
    answering = asyncio.create_task(core.answer(turn("wait"), surface))
    for _ in range(100):
        if any("🔧 `hang`" in write.text for write in surface.writes):
            break
        await asyncio.sleep(0.02)
    assert core.stop(THREAD)
    result = await answering
    assert result.failure is not None and result.failure.kind.name == "STOPPED"
    for _ in range(50):
        if files["events"].exists() and "cancelled" in files["events"].read_text():
            break
        await asyncio.sleep(0.05)
    assert "cancelled" in files["events"].read_text()


async def test_a_thinking_model_with_tools_shows_its_thought_once_and_never_sends_it_back(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    thinking = Script(rate=200, thought="pondering zebracorns", thought_style="think_tags")
    model_server.responder = ToolAgent({"weather": [ToolCallScript("lookup", '{"query": "weather"}')]}, base=thinking)
    surface = AskingSurface(core.gate, [])  # type: ignore[arg-type]
    result = await core.answer(turn("What's the weather?"), surface)

    assert result.failure is None
    shown = surface.messages[-1]
    assert shown.startswith("-# 💭 Thought for 1 s\n\n-# ✓ `lookup`, ")  # the first thought's line only
    assert "\n\nUsing Result for weather" in shown and "Thinking…" not in shown
    assert not any("zebracorn" in write.text or "think>" in write.text for write in surface.writes)
    assert "zebracorn" not in str(model_server.requests[-1].body["messages"])  # not sent back between rounds
    [_, answer] = await core.history(THREAD)
    assert answer.content.startswith("Using Result for weather") and "zebracorn" not in answer.to_json()


async def test_a_channel_that_turned_tools_off_is_answered_without_them(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter, toolbox: ToolBox
) -> None:
    settings = remote_model_settings(model_server.base_url, timeout_seconds=5.0, loading_retries=0)
    places = Personas(redis_store.client, redis_store.settings.key_prefix, "Test.", size=len, max_tokens=200)
    core = make_core(settings, redis_store, token_counter, tools=toolbox, personas=places)
    quiet, busy = Place("discord", "channel", "1"), Place("discord", "channel", "2")
    model_server.default = Script(text="Plain answer.")
    try:
        await places.set_tools(quiet, False)
        for thread, place in (("tools:quiet", quiet), ("tools:busy", busy)):
            surface = MemorySurface(SurfaceLimits(max_length=2000))
            result = await core.answer(Turn(thread, "42", "Ada", "weather?", places=(place,)), surface)
            assert result.failure is None
        quiet_request, busy_request = model_server.requests[-2:]
        assert not quiet_request.body.get("tools")
        assert [tool["function"]["name"] for tool in busy_request.body["tools"]][:1] == ["lookup"]
        await places.set_tools(quiet, None)  # back to the bot's settings
        await core.answer(Turn("tools:quiet", "42", "Ada", "again", places=(quiet,)), surface)
        assert model_server.requests[-1].body.get("tools")
    finally:
        await core.aclose()
