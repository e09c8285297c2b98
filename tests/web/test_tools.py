"""Tools in the web chat: the real `python -m bot web` process with the MCP server of
fakes/mcp_tools.py (over stdio, started by the bot from MCP_SERVERS_FILE), answering through
the loopback model server's ToolAgent, in a real headless Chromium.

A call shows as a chip in its answer (a spinner while it runs, then ✓ and its seconds or ✗ and
why), opening to its arguments and result; a tool that asks first asks with Run / Cancel; the
header's Tools menu lists the tools. Whatever a tool returns is shown as text."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Locator, expect

from bot.errors import FailureKind
from fakes.harness.processes import ROOT
from fakes.harness.slack_world import BotProcess, eventually
from fakes.harness.web_world import WebBots
from fakes.mcp_config import fake_server, servers_file
from fakes.mcp_failures import FAILING_TIMEOUT, FAILURES
from fakes.mcp_refusing import SECRET, refusing_server
from fakes.model_server import FakeModelServer, Script, ToolAgent, ToolCallScript
from tests.web.test_web import DEFAULT_NAME, ChatPage

# Chromium is the module's (tests/web/conftest.py): its tests run in the module's event loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")

# A tool result (and arguments) that would run script if it were ever parsed as HTML.
HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {"notes": tmp_path / "notes.txt", "events": tmp_path / "events.txt", "servers": tmp_path / "mcp.json"}


def tool_settings(files: dict[str, Path], *, broken: bool = False) -> dict[str, str]:
    """The bot's environment for the fake MCP server (and, `broken`, a server that never comes up)."""
    servers = {"fake": fake_server(MCP_NOTES_FILE=files["notes"], MCP_EVENTS_FILE=files["events"])}
    if broken:
        servers["broken"] = {"command": sys.executable, "args": ["-c", "raise SystemExit(3)"], "cwd": str(ROOT)}
    files["servers"] = servers_file(files["notes"].parent, **servers)
    return {"MCP_SERVERS_FILE": str(files["servers"]), "TOOL_TIMEOUT_SECONDS": "60"}


def agent(calls: dict[str, list[ToolCallScript]], **options: Any) -> ToolAgent:
    return ToolAgent(calls, base=Script(rate=200), **options)


@pytest_asyncio.fixture(loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text="Plain answer.", rate=200)) as server:
        yield server


async def start(bots: WebBots, files: dict[str, Path], *, broken: bool = False) -> BotProcess:
    bot = await bots.start(**tool_settings(files, broken=broken))
    await bot.wait_log("mcp_server_up", server="fake", timeout=20)
    return bot


def chip(chat: ChatPage, nth: int = 0) -> Locator:
    return chat.replies.last.locator(".tool-call").nth(nth)


async def expect_chip(
    call: Locator,
    name: str,
    state: str,
    *,
    note: str | re.Pattern[str] = "",
    arguments: str = "",
    result: str | re.Pattern[str] = "",
) -> None:
    """A chip shows `name` and its state (✓ and its seconds, ✗ and why, or a spinner); opened, its
    arguments and result, as text."""
    await expect(call).to_have_attribute("data-state", state)
    await expect(call.locator(".tool-name")).to_have_text(name)
    await expect(call.locator(".tool-status")).to_have_text("")  # an icon (SVG), needing no symbol font
    await expect(call.locator(".tool-status svg")).to_have_count(0 if state == "running" else 1)
    await expect(call.locator(".tool-note")).to_have_text(note)
    if arguments or result:
        if await call.get_attribute("open") is None:
            await call.locator("summary").click()
        await expect(call.locator(".tool-arguments")).to_be_visible()
        await expect(call.locator(".tool-arguments")).to_have_text(arguments)
        await expect(call.locator(".tool-result")).to_have_text(result)


SECONDS = re.compile(r"^\d+\.\d s$")


# -- tests ----------------------------------------------------------------------------------


async def test_a_read_only_call_shows_a_chip_that_opens_to_its_arguments_and_result_and_sources_are_links(
    model: FakeModelServer, bots: WebBots, browser: Browser, files: dict[str, Path]
) -> None:
    model.responder = agent(
        {"weather": [ToolCallScript("lookup", '{"query": "weather"}')]}, before_calls="Let me look."
    )
    await start(bots, files)
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await chat.ask("What's the weather?")
    text = await chat.answer()

    assert text.startswith("Let me look.") and "Using Result for weather: see https://example.org/weather" in text
    assert "✓" not in text and "lookup" not in text  # the call shows as a chip, not as a line of the text
    await expect(chat.replies.last.locator(".tool-call")).to_have_count(1)
    result = "Result for weather: see https://example.org/weather"
    await expect_chip(chip(chat), "lookup", "done", note=SECONDS, arguments='{"query": "weather"}', result=result)

    sources = chat.replies.last.locator(".sources li a")
    await expect(sources).to_have_count(2)
    urls = ["https://example.org/weather", "https://docs.example.org/weather"]
    assert [await link.get_attribute("href") for link in await sources.all()] == urls
    assert [await link.inner_text() for link in await sources.all()] == urls
    for link in await sources.all():
        assert await link.get_attribute("rel") == "noopener noreferrer nofollow"
        assert await link.get_attribute("target") == "_blank"
    assert await chat.replies.last.locator(".sources ol").count() == 1  # numbered
    assert chat.errors == []


async def test_a_result_with_markup_shows_as_text_and_runs_nothing(
    model: FakeModelServer, bots: WebBots, browser: Browser, files: dict[str, Path]
) -> None:
    model.responder = agent({"look": [ToolCallScript("lookup", json.dumps({"query": HOSTILE}))]})
    await start(bots, files)
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    dialogs: list[str] = []
    chat.page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await chat.ask("look it up")
    text = await chat.answer()

    assert HOSTILE in text  # the answer quotes the result: text too
    call = chip(chat)
    await expect(call).to_have_attribute("data-state", re.compile("done|failed"))
    await call.locator("summary").click()
    await expect(call.locator(".tool-arguments")).to_have_text(json.dumps({"query": HOSTILE}))
    assert HOSTILE in await call.locator(".tool-result").inner_text()
    assert await chat.page.locator("#messages img, #messages script, #messages iframe").count() == 0
    assert await chat.page.evaluate("window.pwned") is None
    assert dialogs == [] and chat.errors == []


async def test_run_runs_the_tool_once_and_cancel_does_not_run_it_while_the_answer_goes_on(
    model: FakeModelServer, bots: WebBots, browser: Browser, files: dict[str, Path]
) -> None:
    model.responder = agent(
        {
            "milk": [ToolCallScript("add_note", '{"text": "buy milk"}')],
            "eggs": [ToolCallScript("add_note", '{"text": "buy eggs"}')],
        }
    )
    await start(bots, files)
    context = await browser.new_context()
    chat = await ChatPage.open(context, bots.url)

    await chat.ask("note: milk")
    ask = chat.replies.last.locator(".tool-ask")
    question = 'May I run add_note (fake) with {"text": "buy milk"}?'
    await expect(ask.locator(".tool-question")).to_have_text(question)
    await expect(chip(chat)).to_have_attribute("data-state", "running")  # waiting for the answer
    await chat.page.reload()  # the page reloaded meanwhile asks again, and its click counts
    await chat.connected()
    await expect(ask.locator(".tool-question")).to_have_text(question)
    await expect(chip(chat)).to_have_attribute("data-state", "running")
    await ask.get_by_role("button", name="Run").click()
    await expect(ask).to_have_text("✓ add_note (fake) runs: approved.")
    await expect(ask.locator("button")).to_have_count(0)
    await chat.answer()
    await expect_chip(chip(chat), "add_note", "done", note=SECONDS, arguments='{"text": "buy milk"}', result="noted #1")
    assert files["notes"].read_text().splitlines() == ["buy milk"]

    # A second connection of the same browser (another tab): it sees the question too, and its
    # malformed clicks are ignored; its click on a question already answered is told so, alone.
    async with aiohttp.ClientSession() as session:
        other = await same_browser(session, context, bots.url)
        await chat.ask("note: eggs")
        confirm = await frame_of(other, "confirm")
        assert confirm["tool"] == "add_note" and confirm["arguments"] == '{"text": "buy eggs"}'
        key = confirm["key"]
        for bad in ({"key": key, "yes": "true"}, {"key": key.upper(), "yes": False}, {"key": key + "0", "yes": False}):
            await other.send_json({"type": "confirm", **bad})
        await other.send_json({"type": "tools"})  # an answer to this shows the bad clicks went unanswered
        assert (await frame_of(other, "tools", skip={"tool"}))["tools"]
        ask = chat.replies.last.locator(".tool-ask")
        await expect(ask.get_by_role("button", name="Cancel")).to_be_enabled()
        await ask.get_by_role("button", name="Cancel").click()
        await expect(ask).to_have_text("✗ add_note (fake) did not run: declined.")
        await other.send_json({"type": "confirm", "key": key, "yes": True})
        notice = await frame_of(
            other, "notice", skip={"tool", "confirmed", "sources", "reply", "conversations", "usage"}
        )
        assert notice["text"] == "This was already answered."
        await other.close()

    text = await chat.answer()
    assert text.startswith("Using The person did not allow this call (declined)")  # the model was told, and answered
    await expect_chip(chip(chat), "add_note", "failed", note="declined")
    assert files["notes"].read_text().splitlines() == ["buy milk"]  # not run again, nor for the eggs
    await expect(chat.notice).to_have_text("")  # the other tab's notice was its own


async def test_a_failing_call_shows_why(
    model: FakeModelServer, bots: WebBots, browser: Browser, files: dict[str, Path]
) -> None:
    model.responder = agent({"go": [ToolCallScript("fail", "{}"), ToolCallScript("nope", "{}")]})
    await start(bots, files)
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await chat.ask("go")
    await chat.answer()
    await expect(chat.replies.last.locator(".tool-call")).to_have_count(2)
    await expect(chip(chat, 0)).to_have_attribute("data-state", "failed")
    await expect(chip(chat, 0).locator(".tool-note")).to_contain_text("the lookup service is down")
    await expect(chip(chat, 0).locator(".tool-status svg")).to_have_count(1)
    await expect_chip(chip(chat, 1), "nope", "failed", note="no such tool")


async def test_the_tools_menu_lists_each_tool_which_ask_first_and_servers_that_are_down(
    model: FakeModelServer, bots: WebBots, browser: Browser, files: dict[str, Path]
) -> None:
    await start(bots, files, broken=True)
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    panel = chat.page.locator("#tools-panel")
    await expect(panel).to_be_hidden()
    await chat.page.click("#tools-button")
    await expect(panel).to_be_visible()
    entries = panel.locator(".tool-entry")
    await expect(entries.filter(has_text="lookup")).to_have_count(1)
    lookup = entries.filter(has=chat.page.locator("code", has_text=re.compile("^lookup$")))
    add_note = entries.filter(has=chat.page.locator("code", has_text=re.compile("^add_note$")))
    await expect(lookup).to_contain_text("Look something up.")
    await expect(lookup.locator(".asks-first")).to_have_count(0)
    await expect(add_note).to_contain_text("Write a note down.")
    await expect(add_note.locator(".asks-first")).to_have_text("asks first")
    await expect(panel.locator(".tool-down")).to_contain_text("broken is down:")
    await chat.page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
    assert chat.errors == []


async def test_without_tools_there_is_no_tools_menu(bots: WebBots, browser: Browser) -> None:
    await bots.start(MCP_SERVERS_FILE="")
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await expect(chat.page.locator("#tools-button")).to_be_hidden()


async def test_after_a_reload_a_stored_answer_shows_its_calls(
    model: FakeModelServer, bots: WebBots, browser: Browser, files: dict[str, Path]
) -> None:
    model.responder = agent({"both": [ToolCallScript("lookup", '{"query": "tea"}'), ToolCallScript("fail", "{}")]})
    await start(bots, files)
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await chat.ask("both please")
    await chat.answer()
    await expect(chat.replies.last.locator(".tool-call")).to_have_count(2)

    await chat.reload(messages=2)
    await expect(chat.replies.last.locator(".tool-call")).to_have_count(2)
    result = "Result for tea: see https://example.org/tea"
    await expect_chip(chip(chat, 0), "lookup", "done", arguments='{"query": "tea"}', result=result)
    failed = re.compile("^Error: .*the lookup service is down$")
    await expect_chip(chip(chat, 1), "fail", "failed", arguments="{}", result=failed)
    assert chat.errors == []


async def test_stop_during_a_call_that_hangs_ends_the_call_and_the_answer(
    model: FakeModelServer, bots: WebBots, browser: Browser, files: dict[str, Path]
) -> None:
    model.responder = agent({"wait": [ToolCallScript("hang", "{}")]})
    await start(bots, files)
    context = await browser.new_context()
    chat = await ChatPage.open(context, bots.url)
    await chat.ask("wait for it")
    await expect_chip(chip(chat), "hang", "running")
    # Another tab, opened meanwhile, shows the answer with its call running.
    other = await ChatPage.open(context, bots.url)
    await expect_chip(chip(other), "hang", "running")

    await chat.page.click("#stop")
    for page in (chat, other):
        await expect_chip(chip(page), "hang", "failed", note="stopped")
        await expect(page.replies.last).to_have_attribute("data-state", "done")
        assert (await page.replies.last.locator(".body").inner_text()).endswith(FailureKind.STOPPED.reason)
        await expect(page.page.locator("#stop")).to_be_hidden()
    await eventually(lambda: files["events"].exists() and "cancelled" in files["events"].read_text(), 10, "cancel")


async def test_a_call_nested_too_deep_fails_and_the_next_question_is_answered(
    model: FakeModelServer, bots: WebBots, browser: Browser, files: dict[str, Path]
) -> None:
    model.responder = agent({"nested": [ToolCallScript("lookup", "[" * 1000 + "]" * 1000)]})
    await start(bots, files)
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await chat.ask("nested please")
    assert (await chat.answer()).startswith("Using Error: the arguments are nested too deeply")
    await expect_chip(chip(chat), "lookup", "failed", note="the arguments are nested too deeply (more than 64 levels)")
    await chat.ask("and now?")  # the conversation isn't held
    assert await chat.answer() == "Plain answer."


async def test_calls_that_fail_every_way_each_show_why_and_the_answer_and_the_next_go_on(
    model: FakeModelServer, bots: WebBots, browser: Browser, files: dict[str, Path]
) -> None:
    # Those that log a traceback by design are left to the other tests (this harness refuses any): ours for a failure
    # inside the bot, the SDK's for a message it can't read.
    failures = {call: why for call, why in FAILURES.items() if call.name not in ("endless", "deep_result")}
    model.responder = agent({"every way": list(failures)})
    bot = await bots.start(**{**tool_settings(files), "TOOL_TIMEOUT_SECONDS": str(FAILING_TIMEOUT)})
    await bot.wait_log("mcp_server_up", server="fake", timeout=20)
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await chat.ask("fail every way please")
    assert (await chat.answer(timeout=30)).startswith("Using Error:")
    await expect(chat.replies.last.locator(".tool-call")).to_have_count(len(failures))
    for number, (call, why) in enumerate(failures.items()):
        await expect(chip(chat, number)).to_have_attribute("data-state", "failed")
        await expect(chip(chat, number).locator(".tool-name")).to_have_text(call.name)
        await expect(chip(chat, number).locator(".tool-note")).to_contain_text(why)
    await chat.ask("and now?")  # the conversation isn't held
    assert await chat.answer() == "Plain answer."


async def test_the_tools_menu_says_whether_the_conversations_model_uses_them_and_hides_a_servers_key(
    model: FakeModelServer, bots: WebBots, browser: Browser, files: dict[str, Path]
) -> None:
    async with refusing_server() as hosted:
        servers = servers_file(files["notes"].parent, fake=fake_server(), hosted={"url": hosted})
        bot = await bots.start(MCP_SERVERS_FILE=str(servers), MODELS="small-model", TOOL_MODELS="small-model")
        await bot.wait_log("mcp_server_up", server="fake", timeout=20)
        context = await browser.new_context()
        chat = await ChatPage.open(context, bots.url, picker=True)
        async with aiohttp.ClientSession() as session:
            hello = await hello_of(session, context, bots.url)
        assert (hello["tools"], hello["toolsConnected"]) == (False, True)  # the default model uses none

        panel = chat.page.locator("#tools-panel")
        await chat.page.click("#tools-button")
        await expect(panel.locator(".tool-summary")).to_have_text(
            f"{DEFAULT_NAME} answers this conversation and doesn't use tools: it answers from what it knows. "
            "The models here that do: small-model. Pick one in the model menu."
        )
        await expect(panel.locator(".tool-entry")).not_to_have_count(0)
        host = hosted.split("/api/", 1)[0]
        await expect(panel.locator(".tool-down")).to_have_text(
            f"⚠️ hosted is down: {host}: the server answered 401 Unauthorized. I keep trying to reach it."
        )
        assert SECRET not in await panel.inner_text()
        await chat.page.keyboard.press("Escape")

        await chat.choose("small-model")
        await chat.page.click("#tools-button")
        await expect(panel.locator(".tool-summary")).to_have_text(
            "small-model answers this conversation and uses these tools."
        )
        async with aiohttp.ClientSession() as session:
            assert (await hello_of(session, context, bots.url))["tools"] is True
        assert SECRET not in bot.stderr  # nor in the log
        assert chat.errors == []


# -- helpers --------------------------------------------------------------------------------


async def hello_of(session: aiohttp.ClientSession, context: BrowserContext, url: str) -> dict[str, Any]:
    """The `hello` a new connection of the browser `context` is gets."""
    ws, hello = await connect_as(session, context, url)
    await ws.close()
    return hello


async def same_browser(
    session: aiohttp.ClientSession, context: BrowserContext, url: str
) -> aiohttp.ClientWebSocketResponse:
    """A websocket of the browser `context` is (its cookie), showing its last conversation."""
    ws, _ = await connect_as(session, context, url)
    return ws


async def connect_as(
    session: aiohttp.ClientSession, context: BrowserContext, url: str
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    """A websocket of the browser `context` is (its cookie), and the `hello` it got."""
    cookie = next(cookie for cookie in await context.cookies() if cookie["name"] == "chat_id")
    headers = {"Cookie": f"chat_id={cookie['value']}", "Origin": url.rstrip("/")}
    ws = await session.ws_connect(f"{url}ws", headers=headers, max_msg_size=0)
    hello: dict[str, Any] = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello"
    return ws, hello


async def frame_of(ws: aiohttp.ClientWebSocketResponse, kind: str, skip: set[str] | None = None) -> dict[str, Any]:
    """The next frame of type `kind`; frames of other types are passed over (only those in `skip`, if given)."""
    while True:
        frame: dict[str, Any] = await ws.receive_json(timeout=10)
        if frame["type"] == kind:
            return frame
        assert skip is None or frame["type"] in skip, frame
