"""The operator's view of the tools: /tools lists each tool and whether it asks first, and a server that can't be
reached doesn't stop the bot: it is listed as down (with why) and the bot answers without it meanwhile."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator

import pytest

from adapters.jobs.tools import describe_tools
from bot.core import ChatCore, Turn
from bot.prompt import MistralTokenCounter
from bot.store import HistoryStore
from bot.surface import SurfaceLimits
from bot.tools.toolbox import ToolBox
from config.tools import ToolSettings
from config.tools_file import ServerConfig
from tests.conftest import ROOT, make_core, remote_model_settings
from tests.fakes.memory_surface import MemorySurface
from tests.fakes.model_server import FakeModelServer

FAKE = ServerConfig(name="fake", command=sys.executable, args=("-m", "tests.fakes.mcp_tools", "stdio"), cwd=str(ROOT))
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
