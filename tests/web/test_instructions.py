"""A web conversation's Instructions (its own persona, issue 45): the real `python -m bot web` process in a real
headless Chromium. The header's Instructions button opens a panel to save or clear them; the conversation's next
questions are answered with them as the system message (placeholders filled), other conversations keep the bot's
default, a reload shows them again, a refusal says why, and deleting the conversation deletes them."""

from __future__ import annotations

import asyncio
import datetime
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Locator, expect

from fakes.harness.slack_world import eventually
from fakes.harness.web_world import WebBots, hello_of
from fakes.model_server import FakeModelServer, Script
from tests.web.test_web import ChatPage, Frames, chat_id_of

# Chromium is the module's (tests/web/conftest.py): its tests run in the module's event loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")

DEFAULT = "You are the default bot of these tests."
SAVED = "Instructions saved: they apply from the next message on."
CLEARED = "Instructions cleared: the bot's default applies from the next message on."
ON = re.compile(r"\bon\b")  # the button's mark: the conversation has instructions
HOSTILE = "<img src=x onerror=\"window.pwned = 'instructions'\"><b>Bold</b> & {user}"


@pytest_asyncio.fixture(loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text="Fine.", rate=400)) as server:
        yield server


class Panel:
    """The header's Instructions button and the panel it opens, in one page."""

    def __init__(self, chat: ChatPage) -> None:
        self.chat = chat
        self.button = chat.page.locator("#instructions-button")
        self.panel = chat.page.locator("#instructions-panel")
        self.text = chat.page.locator("#instructions-text")

    async def open(self) -> Locator:
        if not await self.panel.is_visible():
            await self.button.click()
        await expect(self.panel).to_be_visible()
        return self.text

    async def save(self, text: str, notice: str = SAVED) -> None:
        await (await self.open()).fill(text)
        await self.panel.locator("#instructions-save").click()
        await expect(self.chat.notice).to_have_text(notice)

    async def clear(self) -> None:
        await self.open()
        await self.panel.locator("#instructions-clear").click()
        await expect(self.chat.notice).to_have_text(CLEARED)

    async def shows(self, text: str) -> None:
        await expect(await self.open()).to_have_value(text)
        if text:
            await expect(self.button).to_have_class(ON)
        else:
            await expect(self.button).not_to_have_class(ON)


def system_of(model: FakeModelServer) -> str:
    """The system message of the model's last request."""
    messages = model.requests[-1].body["messages"]
    assert messages[0]["role"] == "system"
    content: str = messages[0]["content"]
    return content


async def asked(chat: ChatPage, text: str) -> None:
    await chat.ask(text)
    await chat.answer()


async def test_instructions_answer_their_conversation_alone_from_the_next_question_and_clear_back_to_the_default(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    await bots.start(SYSTEM_PROMPT=DEFAULT)
    context = await browser.new_context()
    chat = await ChatPage.open(context, bots.url)
    panel = Panel(chat)
    await panel.shows("")
    await asked(chat, "Hello?")
    assert system_of(model) == DEFAULT

    other_tab = await ChatPage.open(context, bots.url)  # shows the same conversation
    await panel.save("Talk to {user} on {date} like a pirate. {unknown} stays.")
    await expect(panel.panel).to_be_hidden()
    await Panel(other_tab).shows("Talk to {user} on {date} like a pirate. {unknown} stays.")  # sent to its tabs
    await asked(chat, "Ahoy?")
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    assert system_of(model) == f"Talk to web on {today} like a pirate. {{unknown}} stays."

    await chat.page.click("#new")  # another conversation: the bot's default
    await expect(chat.messages).to_have_count(0)
    await panel.shows("")
    await asked(chat, "Plain?")
    assert system_of(model) == DEFAULT
    await chat.page.locator("#conversations .open").nth(1).click()  # back to the first: its instructions
    await expect(chat.messages).to_have_count(4)
    await panel.shows("Talk to {user} on {date} like a pirate. {unknown} stays.")

    await chat.reload(messages=4)
    await panel.shows("Talk to {user} on {date} like a pirate. {unknown} stays.")
    await asked(chat, "Still a pirate?")
    assert system_of(model).startswith("Talk to web on ")

    await panel.clear()
    await panel.shows("")
    await asked(chat, "And now?")
    assert system_of(model) == DEFAULT
    await chat.reload(messages=8)
    await panel.shows("")
    assert chat.errors == [] and other_tab.errors == []


async def test_instructions_with_markup_are_text_and_run_nothing(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    await bots.start(SYSTEM_PROMPT=DEFAULT)
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    panel = Panel(chat)
    await panel.save(HOSTILE)
    await asked(chat, "Hi")
    assert system_of(model) == HOSTILE.replace("{user}", "web")  # as typed, to the model
    await chat.reload(messages=2)
    await panel.shows(HOSTILE)
    own = "div,p,span,button,textarea,.svg-icon,.svg-icon path"  # the panel's own elements (its close button's icon)
    assert await chat.page.locator(f"header img, header b, #instructions-panel *:not({own})").count() == 0
    assert await chat.page.evaluate("window.pwned") is None
    assert chat.errors == []


async def test_instructions_too_long_for_the_model_are_refused_with_the_reason_and_change_nothing(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    # 1,024 tokens of context, 500 of them for the answer: instructions get half of the other 524.
    await bots.start(SYSTEM_PROMPT=DEFAULT, CONTEXT_TOKENS="1024")
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    panel = Panel(chat)
    await panel.save("Be brief.")
    long = " ".join(f"rule{n}" for n in range(400))  # under 4,000 characters, far over 262 tokens
    assert len(long) < 4_000
    await (await panel.open()).fill(long)
    await panel.panel.locator("#instructions-save").click()
    await expect(chat.notice).to_contain_text("tokens long; the model reads 262 at most")
    await expect(panel.panel).to_be_visible()  # what was typed stays, to shorten it
    await expect(panel.text).to_have_value(long)
    await asked(chat, "Hi")
    assert system_of(model) == "Be brief."  # the saved ones still apply
    await chat.reload(messages=2)
    await panel.shows("Be brief.")
    assert chat.errors == []


async def test_the_server_checks_each_instructions_frame(bots: WebBots, key_prefix: str, raw_redis: Any) -> None:
    await bots.start(SYSTEM_PROMPT=DEFAULT)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        hello = await hello_of(session, bots.url)
        assert hello["instructions"] == "" and hello["maxInstructions"] == 4_000
        ws = Frames(await session.ws_connect(f"{bots.url}ws?conversation=0"))
        await eventually(lambda: bool(ws.seen), 5, "the hello")
        for frame in [
            {"type": "instructions", "id": "0", "text": 5},
            {"type": "instructions", "id": "0"},
            {"type": "instructions", "id": "../x", "text": "Be brief."},
            {"type": "instructions", "id": "abcdefabcdef", "text": "Be brief."},  # not a conversation of the browser
            {"type": "instructions", "id": "0", "text": "x" * 4_001},
        ]:
            await ws.ws.send_json(frame)
        await eventually(lambda: sum(frame["type"] == "notice" for frame in ws.seen) == 2, 5, "two notices")
        notices = [frame["text"] for frame in ws.seen if frame["type"] == "notice"]
        assert notices == [
            "This conversation was deleted.",
            "Instructions hold 4,000 characters at most; these have 4,001.",
        ]
        assert await raw_redis.keys(f"{key_prefix}persona:*") == []

        await ws.ws.send_json({"type": "instructions", "id": "0", "text": "  Be brief.  "})
        await eventually(lambda: any(frame["type"] == "instructions" for frame in ws.seen), 5, "the instructions")
        assert [frame for frame in ws.seen if frame["type"] == "instructions"] == [
            {"type": "instructions", "conversation": "0", "text": "Be brief."}
        ]
        place = f"web:conversation:{chat_id_of(session)}:0"
        assert await raw_redis.get(f"{key_prefix}persona:{{{place}}}") == "Be brief."
        assert (await hello_of(session, bots.url))["instructions"] == "Be brief."
        await ws.close()


async def test_deleting_a_conversation_deletes_its_instructions(
    model: FakeModelServer, bots: WebBots, browser: Browser, key_prefix: str, raw_redis: Any
) -> None:
    await bots.start(SYSTEM_PROMPT=DEFAULT)
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    panel = Panel(chat)
    await asked(chat, "First?")
    await chat.page.click("#new")
    rows = chat.page.locator("#conversations .conversation")
    await expect(rows).to_have_count(2)
    # The new conversation is the one shown (its `hello` came): the panel opened now stays open.
    await expect(rows.first).to_have_class("conversation current")
    await panel.shows("")
    await panel.save("Only here.")
    await asked(chat, "Second?")
    assert system_of(model) == "Only here."
    assert len(await raw_redis.keys(f"{key_prefix}persona:*")) == 1
    chat.page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await rows.first.locator(".delete").click()
    await expect(rows).to_have_count(1)
    await eventually_empty(raw_redis, f"{key_prefix}persona:*")
    await panel.shows("")
    await asked(chat, "Third?")
    assert system_of(model) == DEFAULT
    assert json.dumps(chat.errors) == "[]"


async def eventually_empty(raw_redis: Any, pattern: str) -> None:
    for _ in range(100):
        if not await raw_redis.keys(pattern):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{pattern} still matches {await raw_redis.keys(pattern)}")
