"""The web chat drawn again after a reload, in a real headless Chromium against the real `python -m bot web` (with the
MCP server of fakes/mcp_tools.py and a model that thinks): each question with its files' chips and only the
text typed, each answer with its thought (closed, one click away), its tool calls and its sources, as they were shown
before the reload. The documents' text still reaches the model on follow-ups; the thought never does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Locator, expect

from adapters.web.redraw import MAX_THOUGHT_CHARS, answer_view, history_entry
from bot.state.store import StoredMessage
from fakes import documents
from fakes.harness.web_world import WebBots
from fakes.model_server import FakeModelServer, Script, ToolAgent, ToolCallScript
from tests.web.test_tools import start
from tests.web.test_web import ChatPage, conversation, file

# Chromium is the module's (tests/web/conftest.py): the tests that use it run in the module's event loop.
MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

PDF = "application/pdf"
REPORT = "The weather report: sunny all week in Lyon."
# Text that would run script if the page ever parsed it as HTML.
THOUGHT = 'The report says <img src=x onerror="window.pwned=1"> sunny.\nSo: look it up, then answer.'
HOSTILE_NAME = '<img src=x onerror="window.pwned=2">.txt'
SOURCES = ["https://example.org/weather", "https://docs.example.org/weather"]


@pytest_asyncio.fixture(loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text="Plain answer.", rate=200)) as server:
        yield server


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    return {"notes": tmp_path / "notes.txt", "events": tmp_path / "events.txt", "servers": tmp_path / "mcp.json"}


def thinking_agent() -> ToolAgent:
    """Looks the weather up when asked about it, thinking before each step (in a `reasoning` delta field)."""
    lookup = ToolCallScript("lookup", '{"query": "weather"}')
    return ToolAgent({"weather": [lookup]}, base=Script(rate=200, thought=THOUGHT, thought_style="reasoning"))


async def drawn(message: Locator) -> dict[str, Any]:
    """What a message shows: the order of its parts, its text, its files' chips, its thought, its calls, its sources."""
    thought = message.locator("details.thought")
    return {
        "parts": await message.evaluate(
            "(node) => [...(node.querySelector('.content') ?? node).children].map((child) => child.className)"
        ),
        "text": await message.locator(".body").inner_text(),
        "files": await message.locator(".file-chip .file-name").all_text_contents(),
        "thought": [
            (await details.locator("summary").inner_text(), await details.locator(".thought-text").text_content())
            for details in await thought.all()
        ],
        "thought open": [await details.get_attribute("open") for details in await thought.all()],
        "calls": await message.locator(".tool-call .tool-name").all_text_contents(),
        "sources": [
            (await link.get_attribute("href"), await link.inner_text())
            for link in await message.locator(".sources li a").all()
        ],
    }


@MODULE_LOOP
async def test_after_a_reload_a_question_shows_its_files_chips_and_an_answer_its_thought_and_sources(
    model: FakeModelServer, bots: WebBots, browser: Browser, paths: dict[str, Path], key_prefix: str, raw_redis: Any
) -> None:
    model.responder = thinking_agent()
    await start(bots, paths)
    context = await browser.new_context()
    chat = await ChatPage.open(context, bots.url)
    await chat.attach(
        file("report.pdf", documents.pdf([REPORT]), PDF), file(HOSTILE_NAME, b"Pack an umbrella.", "text/plain")
    )
    await chat.ask("What's the weather like, per the report?")
    answer = await chat.answer()
    assert answer.startswith("Using Result for weather")
    question, reply = chat.messages.nth(0), chat.replies.last
    before = [await drawn(question), await drawn(reply)]
    # As it was sent: the chips and the text typed; the answer with its thought closed above its call and sources.
    assert before[0]["files"] == ["report.pdf", HOSTILE_NAME]
    assert before[0]["text"].endswith("What's the weather like, per the report?") and REPORT not in before[0]["text"]
    [(summary, thought)] = before[1]["thought"]
    assert summary.strip().startswith("Thought for ") and THOUGHT in (thought or "")
    assert before[1]["thought open"] == [None]
    assert before[1]["calls"] == ["lookup"]
    assert before[1]["sources"] == [(url, url) for url in SOURCES]
    assert before[1]["parts"][:4] == ["thought", "tool-calls", "body", "sources"]

    await chat.reload(messages=2)
    after = [await drawn(chat.messages.nth(0)), await drawn(chat.replies.last)]
    assert after == before
    assert REPORT not in await chat.page.locator("#messages").inner_text()  # the document's text is not shown
    for link in await chat.replies.last.locator(".sources a").all():
        assert await link.get_attribute("rel") == "noopener noreferrer nofollow"
    await expect(chat.page.locator("#messages img, #messages script")).to_have_count(0)
    assert await chat.page.evaluate("window.pwned") is None

    # The model is sent what it was before: the question with its documents' text, the answer without its thought.
    await chat.ask("Thanks!")
    await chat.answer()
    sent = model.requests[-1].body["messages"]
    earlier = conversation(model.requests[-1].body)
    assert earlier[0].startswith("What's the weather like, per the report?\n\n") and REPORT in earlier[0]
    assert "Pack an umbrella." in earlier[0]
    assert not any("look it up" in str(message) for message in sent)
    assert chat.errors == []

    # /reset forgets it all: what the page drew it from is kept with the messages themselves.
    await chat.ask("/reset")
    await expect(chat.messages).to_have_count(0)
    await chat.reload(messages=0)
    chat_id = (await context.cookies())[0]["value"]
    assert await raw_redis.keys(f"{key_prefix}chat:{{web:{chat_id}*}}:history") == []


@MODULE_LOOP
async def test_after_a_reload_a_question_of_files_alone_shows_only_their_chips(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    await bots.start()
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await chat.attach(file("report.pdf", documents.pdf([REPORT]), PDF))
    await chat.page.press("#input", "Enter")  # the document alone
    await chat.answer()
    assert model.requests[-1].body["messages"][-1]["content"].startswith("What is in this file?\n\n")
    before = await drawn(chat.messages.nth(0))
    assert before["files"] == ["report.pdf"] and "".join(before["text"].split()) == "report.pdf"  # the chip alone

    await chat.reload(messages=2)
    assert await drawn(chat.messages.nth(0)) == before
    assert chat.errors == []


@MODULE_LOOP
async def test_after_a_reload_a_thought_shown_in_full_is_quoted_before_its_answer_again(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    model.default = Script(text="Paris.", thought=THOUGHT, thought_style="reasoning", rate=200)
    await bots.start(SHOW_REASONING="full")
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await chat.ask("Capital of France?")
    answer = await chat.answer()
    assert answer.startswith("> Thought (1 s):\n> The report says") and answer.endswith("\nParis."), answer

    await chat.reload(messages=2)
    assert await chat.replies.last.locator(".body").inner_text() == answer
    assert await chat.page.evaluate("window.pwned") is None
    await chat.ask("And of Italy?")
    await chat.answer()
    assert [m["content"] for m in model.requests[-1].body["messages"] if m["role"] == "assistant"] == ["Paris."]
    assert chat.errors == []


def test_what_an_answer_keeps_is_bounded_and_only_http_links_are_sources() -> None:
    kept = answer_view(
        ["javascript:alert(1)", "https://example.org/a", "https://example.org/" + "x" * 3000, "ftp://example.org/b"],
        {"text": "t" * (MAX_THOUGHT_CHARS + 500), "seconds": 3},
    )
    entry = history_entry(StoredMessage("assistant", "An answer.", view=kept))
    assert entry["sources"] == ["https://example.org/a"]
    assert len(entry["thought"]["text"]) == MAX_THOUGHT_CHARS and entry["thought"]["text"].endswith("…")
    assert entry["thought"]["seconds"] == 3 and entry["text"] == "An answer."
    # What a stored message's view can't be read as is left out, never shown as something else.
    odd = {"sources": "https://example.org/a", "thought": {"text": 5, "seconds": "3"}, "before": None}
    assert history_entry(StoredMessage("assistant", "An answer.", view=odd)) == {
        "role": "assistant",
        "text": "An answer.",
        "images": 0,
    }
