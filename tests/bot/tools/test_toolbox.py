"""The operator's view of the tools: /tools lists each tool and whether it asks first, and a server that can't be
reached doesn't stop the bot: it is listed as down (with why) and the bot answers without it meanwhile."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from adapters.shared.tool_words import describe_tools, tool_use
from bot.core import ChatCore, Turn
from bot.reply.surface import SurfaceLimits
from bot.state.personas import Personas, Place
from bot.state.store import HistoryStore
from bot.tools.toolbox import ToolBox
from bot.turn.prompt import MistralTokenCounter
from config.models import BackendKind, ModelCatalog, ModelChoice
from config.tools import ToolSettings
from config.tools_file import ServerConfig
from fakes.harness.processes import ROOT
from fakes.memory_surface import MemorySurface
from fakes.model_server import FakeModelServer
from tests.conftest import make_core, remote_model_settings

FAKE = ServerConfig(name="fake", command=sys.executable, args=("-m", "fakes.mcp_tools", "stdio"), cwd=str(ROOT))
MISSING = ServerConfig(name="gone", command="/nonexistent/mcp-server")


@pytest.fixture
async def toolbox() -> AsyncIterator[ToolBox]:
    box = ToolBox(ToolSettings(servers=(MISSING, FAKE)))
    started = time.monotonic()
    await box.start(ready_within=15)
    assert time.monotonic() - started < 15  # the missing one doesn't hold start-up past its wait
    yield box
    await box.aclose()


async def test_tools_lists_each_tool_whether_it_asks_and_the_server_that_is_down(toolbox: ToolBox) -> None:
    listing = describe_tools(toolbox)
    assert "• `lookup`: Look something up." in listing
    assert "• `add_note` (asks you first): Write a note down." in listing
    assert "⚠️ `gone` is down: " in listing and "/nonexistent/mcp-server" in listing
    assert "I keep trying to reach it." in listing


async def test_a_file_can_turn_asking_off_or_on_per_tool() -> None:
    quiet = ServerConfig(**{**FAKE.__dict__, "confirm": {"add_note": False, "lookup": True}})
    box = ToolBox(ToolSettings(servers=(quiet,)))
    await box.start(ready_within=15)
    try:
        asks = {tool.name: tool.asks_first for tool in box.listing()[0]}
        assert (asks["add_note"], asks["lookup"], asks["slow"]) == (False, True, False)
    finally:
        await box.aclose()


async def test_without_any_server_up_the_model_is_asked_without_tools(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    box = ToolBox(ToolSettings(servers=(MISSING,)))
    await box.start(ready_within=0.5)
    core: ChatCore = make_core(remote_model_settings(model_server.base_url), redis_store, token_counter, tools=box)
    try:
        surface = MemorySurface(SurfaceLimits(max_length=2000))
        result = await core.answer(Turn("tools:none", "1", "Ada", "hello"), surface)
        assert result.failure is None and "tools" not in model_server.requests[-1].body
        assert "No tools are available right now." in describe_tools(box)
    finally:
        await core.aclose()
        await box.aclose()


def surface() -> MemorySurface:
    return MemorySurface(SurfaceLimits(max_length=2000))


async def test_tools_says_whether_this_conversations_model_uses_them_and_which_models_do(
    toolbox: ToolBox, model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    remote = remote_model_settings(model_server.base_url)
    plain = ModelChoice("plain-model", "Plain", False, remote, tools=False)  # MODELS_FILE: `tools: false`
    caller = ModelChoice("caller-model", "Caller", False, remote)
    tiny = ModelChoice("tiny.gguf", "Tiny", False, replace(remote, backend=BackendKind.LOCAL))  # in-process
    places = Personas(redis_store.client, redis_store.settings.key_prefix, "Test.", size=len, max_tokens=200)
    models = ModelCatalog((plain, caller, tiny))
    core = make_core(remote, redis_store, token_counter, tools=toolbox, models=models, personas=places)
    here = (Place("console", "channel", "t"),)
    try:
        use = await tool_use(core, "tools:use", here)
        assert not use.uses and [choice.display_name for choice in use.takers] == ["Caller"]
        listing = describe_tools(toolbox, use=use)
        assert listing.startswith(
            "Plain answers this conversation and doesn't use tools: it answers from what it knows. "
            "The models here that do: Caller. Switch with /model Caller.\nThe tools connected:\n• `lookup`"
        )
        await core.answer(
            Turn("tools:use", "1", "Ada", "weather?", places=here), MemorySurface(SurfaceLimits(max_length=2000))
        )
        assert "tools" not in model_server.requests[-1].body  # as /tools said: Plain is offered none

        await core.choose_model("tools:use", "Caller")
        listing = describe_tools(toolbox, use=await tool_use(core, "tools:use", here))
        assert listing.startswith("Caller answers this conversation and uses these tools:\n• `lookup`")
        await core.answer(
            Turn("tools:use", "1", "Ada", "weather?", places=here), MemorySurface(SurfaceLimits(max_length=2000))
        )
        assert model_server.requests[-1].body["tools"]

        await places.set_tools(here[0], False)
        listing = describe_tools(toolbox, use=await tool_use(core, "tools:use", here))
        assert listing.startswith("Caller answers this conversation without tools: they are turned off here.\n")

        await core.choose_model("tools:use", "Tiny")
        await places.set_tools(here[0], None)
        listing = describe_tools(toolbox, use=await tool_use(core, "tools:use", here))
        assert listing.startswith("Tiny answers this conversation and doesn't use tools")
    finally:
        await places.set_tools(here[0], None)
        await core.aclose()
