"""Knowledge sources on the web page, in a real headless Chromium against the real `python -m bot web` with a
KNOWLEDGE_DIR and a fake model that cites what it quotes: a Markdown section is cited by its title and heading path,
each [n] mark of the answer shows its source (and the passage the answer used) when pointed at, tapped or focused,
after a reload too, as text only."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Locator, WebSocketRoute, expect

from adapters.web.redraw import MAX_QUOTE_CHARS, answer_view, history_entry
from bot.state.store import StoredMessage
from fakes.citing_model import citing_responder
from fakes.harness.web_world import WebBots
from fakes.model_server import FakeModelServer, Script
from tests.web.test_web import DEFAULT_NAME, ChatPage

# Chromium is the module's (tests/web/conftest.py): its tests run in the module's event loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")

NOBODY = 65534
HANDBOOK = """# Office handbook

## Kitchen

Keep the kitchen tidy and the fridge clean.

## Dogs at work

Dogs are welcome on Fridays in the second-floor area, on a lead.
"""
LABEL = "Office handbook \u203a Dogs at work"
QUESTION = "Can I bring my dog to work?"
HOSTILE = 'Dogs <script>window.ran = 1</script><img src=x onerror="window.ran = 2"> <b>welcome</b>'


@pytest.fixture
def folders() -> Iterator[tuple[Path, Path]]:
    root = Path(tempfile.mkdtemp(prefix="knowledge-web-sources-"))
    docs, data = root / "docs", root / "data"
    docs.mkdir()
    if os.geteuid() == 0:  # the embedded server runs as its folder's owner, never as root
        os.chown(root, NOBODY, NOBODY)
    (docs / "docs_policy.md").write_text(HANDBOOK, encoding="utf-8")
    yield docs, data
    shutil.rmtree(root, ignore_errors=True)


@pytest_asyncio.fixture(loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer() as server:
        server.responder = citing_responder
        yield server


async def cited_answer(chat: ChatPage, seconds: float = 90) -> str:
    """Ask until the answer cites the handbook: the folder is read in the background after start-up."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        await chat.ask(QUESTION)
        text = await chat.answer()
        if "Sources:" in text or asyncio.get_running_loop().time() > deadline:
            return text
        await asyncio.sleep(0.5)


def mark(reply: Locator, number: int = 1) -> Locator:
    return reply.locator(".body").get_by_role("button", name=re.compile(rf"^Source {number}: "))


def popover(reply: Locator) -> Locator:
    return reply.locator(".cite-popover")


async def test_a_markdown_section_is_cited_by_its_heading_path_and_its_mark_shows_it(
    folders: tuple[Path, Path], bots: WebBots, browser: Browser
) -> None:
    docs, data = folders
    await bots.start(KNOWLEDGE_DIR=str(docs), KNOWLEDGE_DATA_DIR=str(data), HF_TOKEN="hf_test")
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    text = await cited_answer(chat)
    assert "second-floor area" in text
    assert text.split("Sources:")[1].strip() == f"[1] {LABEL}"  # not the file's name
    assert "docs" not in text.lower() and "policy" not in text.lower()

    for reload in (False, True):  # and drawn again from the history, the same
        if reload:
            await chat.page.reload()
            await chat.connected()
        reply = chat.replies.last
        await expect(mark(reply)).to_have_count(1)  # the answer's [1]; the sources list's own stays text
        await expect(mark(reply)).to_have_text("[1]")
        await expect(mark(reply)).to_have_accessible_name(f"Source 1: {LABEL}")
        await expect(popover(reply)).to_be_hidden()
        await mark(reply).hover()
        await expect(popover(reply)).to_be_visible()
        await expect(popover(reply).locator(".cite-label")).to_have_text(LABEL)
        await chat.page.mouse.move(0, 0)
        await expect(popover(reply)).to_be_hidden()
        await mark(reply).focus()  # from the keyboard
        await expect(popover(reply)).to_be_visible()
        await chat.page.keyboard.press("Escape")
        await expect(popover(reply)).to_be_hidden()
    assert chat.errors == []


async def test_a_mark_shows_the_passage_the_answer_used(
    folders: tuple[Path, Path], bots: WebBots, browser: Browser
) -> None:
    docs, data = folders
    await bots.start(KNOWLEDGE_DIR=str(docs), KNOWLEDGE_DATA_DIR=str(data), HF_TOKEN="hf_test")
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    assert "Sources:" in await cited_answer(chat)
    for reload in (False, True):
        if reload:
            await chat.page.reload()
            await chat.connected()
        reply = chat.replies.last
        await mark(reply).hover()
        await expect(popover(reply).locator(".cite-text")).to_have_text(
            "Dogs are welcome on Fridays in the second-floor area, on a lead.", timeout=2000
        )


async def test_a_marks_passage_shows_as_text_never_markup(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    """The page's half of `cited`: the passages come in the answer's `sources` frame (put in here by the test, on
    the socket's way to the page), each shown literally, long ones cut, a link only for http(s)."""
    answer = f"Dogs are welcome [1], not cats [2].\n\nSources:\n[1] {LABEL}\n[2] Pets"
    model.responder = lambda body: Script(text=answer)
    cited = [
        {"number": 1, "label": LABEL, "url": "https://example.org/handbook", "text": HOSTILE},
        {"number": 2, "label": "Pets <i>all</i>", "url": "javascript:alert(1)", "text": "x" * 2000},
    ]

    def routed(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        ws.on_message(server.send)

        def to_page(message: str | bytes) -> None:
            ws.send(message)
            frame: dict[str, Any] = json.loads(message)
            if frame.get("type") == "reply" and not frame.get("streaming"):
                ws.send(json.dumps({"type": "sources", "question": frame["question"], "urls": [], "cited": cited}))

        server.on_message(to_page)

    await bots.start()
    page = await (await browser.new_context()).new_page()
    await page.route_web_socket(re.compile(r"/ws"), routed)
    chat = ChatPage(page, DEFAULT_NAME, picker=False)
    await page.goto(bots.url)
    await chat.connected()
    await chat.ask("Dogs?")
    await chat.answer()
    reply = chat.replies.last
    await expect(reply.locator(".cite-text")).to_have_count(2)  # the frame came (its passages, not yet shown)

    await mark(reply, 1).click()  # a tap or click opens it
    first = popover(reply).first
    await expect(first).to_be_visible()
    await expect(first.locator(".cite-text")).to_have_text(HOSTILE)
    assert await first.locator("script, img, b").count() == 0
    await expect(first.locator(".cite-link a")).to_have_attribute("href", "https://example.org/handbook")
    await mark(reply, 1).click()  # and closes it
    await expect(first).to_be_hidden()

    await mark(reply, 2).focus()
    second = popover(reply).nth(1)
    await expect(second.locator(".cite-label")).to_have_text("Pets <i>all</i>")  # the server's label, as text
    shown = await second.locator(".cite-text").inner_text()
    assert len(shown) == MAX_QUOTE_CHARS and shown.endswith("…")
    assert await second.locator("a").count() == 0  # not an http(s) link
    assert await page.evaluate("window.ran") is None
    assert chat.errors == []


async def test_an_answer_keeps_the_passages_it_cites_for_its_reload() -> None:
    passage = {"number": 1, "label": LABEL, "url": "javascript:x", "text": "  " + "y" * 700}
    view = answer_view([], None, cited=[passage, {"number": "2"}, "3"])
    entry = history_entry(StoredMessage(role="assistant", content="[1]", view=view))
    assert entry["cited"] == [{"number": 1, "label": LABEL, "url": "", "text": "y" * (MAX_QUOTE_CHARS - 1) + "…"}]
