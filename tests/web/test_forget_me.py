"""The web page's Forget me, in a real headless Chromium against the real `python -m bot web`: confirmed in the page
first, it deletes every conversation of the browser (their histories, their instructions) and its question counters,
every tab of the browser then shows a fresh conversation, and the page says what was deleted. Another browser keeps
its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from fakes.harness.web_world import WebBots
from fakes.model_server import FakeModelServer, Script
from tests.web.test_web import ChatPage, conversation

# Chromium is the module's (tests/web/conftest.py): its tests run in the module's event loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text="Noted.", rate=400)) as server:
        yield server


async def asked(chat: ChatPage, text: str) -> None:
    await chat.ask(text)
    await chat.answer()


async def test_forget_me_deletes_every_conversation_of_the_browser_after_a_confirmation_in_the_page(
    model: FakeModelServer, bots: WebBots, browser: Browser, key_prefix: str, raw_redis: Any
) -> None:
    await bots.start(USER_TURNS_PER_MINUTE="20")
    mine = await browser.new_context()
    chat = await ChatPage.open(mine, bots.url)
    await asked(chat, "My secret is <b>1234</b>.")
    await chat.page.click("#new")
    await asked(chat, "Pears?")
    other_tab = await ChatPage.open(mine, bots.url)
    await expect(other_tab.messages).to_have_count(2)
    someone_else = await ChatPage.open(await browser.new_context(), bots.url)
    await asked(someone_else, "Someone else's question")
    chat_id = (await mine.cookies())[0]["value"]
    titles = chat.page.locator("#conversations .open")
    await expect(titles).to_have_count(2)

    button, confirm = chat.page.locator("#forget-button"), chat.page.locator("#forget-confirm")
    await expect(confirm).to_be_hidden()
    await button.click()  # asks first; Cancel changes nothing
    await expect(confirm).to_be_visible()
    await confirm.locator("#forget-no").click()
    await expect(confirm).to_be_hidden()
    await expect(chat.messages).to_have_count(2)
    await button.click()
    await confirm.locator("#forget-yes").click()

    await expect(chat.notice).to_have_text(
        "Deleted: 2 conversations of yours, your question counters, and your usage records."
    )
    await expect(chat.notice).to_have_class("info")
    for page in (chat, other_tab):
        await expect(page.messages).to_have_count(0)
        await expect(page.page.locator("#conversations .open")).to_have_text(["New conversation"])
    assert await raw_redis.keys(f"{key_prefix}chat:{{web:{chat_id}*}}:history") == []
    assert await raw_redis.keys(f"{key_prefix}chat:*:history") != []  # someone else's is kept

    await asked(chat, "What is my secret?")
    assert conversation(model.requests[-1].body) == ["What is my secret?"]
    await chat.reload(messages=2)
    await expect(titles).to_have_text(["What is my secret?"])
    await asked(someone_else, "Still there?")
    assert conversation(model.requests[-1].body) == ["Someone else's question", "Noted.", "Still there?"]
    assert chat.errors == [] and other_tab.errors == []
