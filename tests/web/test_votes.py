"""👍 / 👎 under the web chat's answers, in a real headless Chromium against the real `python -m bot web`: one vote per
browser and answer, changeable, a 👎 with an optional reason typed under the answer, the vote kept with every
platform's (adapters.shared.feedback.records) and shown again after a reload; another browser can't vote on it, an
answer the bot no longer keeps says so, and Forget me deletes the votes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Locator, expect

from adapters.shared.feedback.records import Feedback
from adapters.shared.feedback.vote_replies import GONE, REASON_THANKS
from fakes.harness.web_world import WebBots
from fakes.model_server import FakeModelServer, Script
from tests.web.test_web import ChatPage

# Chromium is the module's (tests/web/conftest.py): its tests run in the module's event loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")

ANSWER = " ".join(f"word{n}" for n in range(30)) + "."  # 31 tokens: about 0.8 s of streaming at 40 a second
REASON = "It <b>missed</b> the point"
PROMPT = "What was wrong? (optional)"


@pytest_asyncio.fixture(loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text=ANSWER, rate=400)) as server:
        yield server


def buttons(reply: Locator) -> tuple[Locator, Locator]:
    return reply.get_by_role("button", name="Good answer"), reply.get_by_role("button", name="Bad answer")


async def pressed(reply: Locator, up: bool | None) -> None:
    """`reply` shows the vote `up` (👍), not `up` (👎), or None: neither."""
    good, bad = buttons(reply)
    await expect(good).to_have_attribute("aria-pressed", "true" if up is True else "false")
    await expect(bad).to_have_attribute("aria-pressed", "true" if up is False else "false")


async def vote_from_elsewhere(url: str, answer: str) -> list[dict[str, Any]]:
    """Another browser's page sends a 👍 on `answer`: the frames it gets back, up to the notice."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(url) as page:
            assert page.status == 200
        async with session.ws_connect(f"{url}ws") as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
            await ws.send_str(json.dumps({"type": "vote", "answer": answer, "up": True}))
            frames = [await ws.receive_json(timeout=5)]
            while frames[-1]["type"] != "notice":
                frames.append(await ws.receive_json(timeout=5))
    return frames


async def test_a_finished_answer_takes_one_changeable_vote_per_browser_and_forget_me_deletes_it(
    model: FakeModelServer, bots: WebBots, browser: Browser, key_prefix: str, raw_redis: Any
) -> None:
    model.default = Script(text=ANSWER, rate=40)
    await bots.start(USER_TURNS_PER_MINUTE="20")
    mine = await browser.new_context()
    chat = await ChatPage.open(mine, bots.url)
    await chat.ask("Say thirty words")
    reply = chat.replies.last
    await expect(reply).to_have_attribute("data-state", "streaming")
    assert await reply.locator(".votes").count() == 0  # not while it is written
    await chat.answer()
    good, bad = buttons(reply)
    await expect(good).to_be_visible()
    for button in (good, bad):  # drawn as SVG: they show without an emoji font (Debian's Chromium has none)
        await expect(button.locator("svg")).to_have_count(1)
        await expect(button).to_have_text("")
    await pressed(reply, None)

    await good.click()
    await pressed(reply, True)
    await bad.click()  # changes it
    await pressed(reply, False)
    reason = reply.get_by_role("textbox", name=PROMPT)
    await expect(reason).to_be_focused()
    await reason.fill(REASON)
    await reply.get_by_role("button", name="Send").click()
    await expect(chat.notice).to_have_text(REASON_THANKS)
    await expect(reason).to_have_count(0)

    chat_id = (await mine.cookies())[0]["value"]
    person = f"web:{chat_id}"
    votes = await raw_redis.keys(f"{key_prefix}feedback:answer:*:votes")
    assert len(votes) == 1 and await raw_redis.hgetall(votes[0]) == {person: "down"}  # one vote, changed
    counts = await raw_redis.hmget(votes[0].removesuffix(":votes"), "up", "down")
    assert counts == ["0", "1"]
    feedback = Feedback(raw_redis, key_prefix, answer_seconds=3600)
    downvoted = [gap for gap in await feedback.gaps("web") if gap.kind == "downvoted"]
    assert [(gap.question, gap.reason, gap.person) for gap in downvoted] == [("Say thirty words", REASON, person)]

    # The same answer, and the browser's vote on it, after a reload and in another tab.
    answer = await reply.get_attribute("data-answer")
    assert answer
    await chat.reload(messages=2)
    await pressed(chat.replies.last, False)
    assert await chat.replies.last.get_attribute("data-answer") == answer
    other_tab = await ChatPage.open(mine, bots.url)
    await pressed(other_tab.replies.last, False)
    await buttons(chat.replies.last)[0].click()  # every tab of the conversation shows the vote that stands
    await pressed(other_tab.replies.last, True)
    await pressed(chat.replies.last, True)
    assert await raw_redis.hgetall(votes[0]) == {person: "up"}

    # Another browser naming the answer is refused: the vote stays this browser's alone.
    frames = await vote_from_elsewhere(bots.url, answer)
    assert frames == [
        {"type": "voted", "answer": answer, "vote": None, "status": "missing"},
        {"type": "notice", "text": GONE, "level": "warning"},
    ]
    assert await raw_redis.hgetall(votes[0]) == {person: "up"}

    await chat.page.locator("#forget-button").click()
    await chat.page.locator("#forget-yes").click()
    await expect(chat.notice).to_have_text(
        "Deleted: 1 conversation of yours, your question counters, your feedback on answers, and your usage records."
    )
    assert await raw_redis.keys(f"{key_prefix}feedback:answer:*") == []
    assert await feedback.gaps("web") == []
    assert chat.errors == [] and other_tab.errors == []


async def test_no_votes_on_an_answer_with_no_text_and_one_the_bot_no_longer_keeps_says_so(
    model: FakeModelServer, bots: WebBots, browser: Browser, key_prefix: str, raw_redis: Any
) -> None:
    scripts = [Script(failure="http_500")]
    model.responder = lambda body: scripts.pop(0) if scripts else Script(text=ANSWER, rate=400)
    await bots.start()
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await chat.ask("One?")
    await chat.answer()
    await chat.ask("Two?")
    await chat.answer()
    failed, answered = chat.replies.first, chat.replies.last
    await expect(failed.locator(".warning")).to_have_count(1)
    await expect(buttons(answered)[0]).to_be_visible()
    await expect(failed.locator(".votes")).to_have_count(0)

    # The answer's record goes, as it does HISTORY_TTL_SECONDS after the answer (or with its conversation).
    records = await raw_redis.keys(f"{key_prefix}feedback:answer:*")
    assert len(records) == 1
    await raw_redis.delete(*records)
    await buttons(answered)[1].click()
    await expect(chat.notice).to_have_text(GONE)
    await pressed(answered, None)
    await expect(answered.get_by_role("textbox", name=PROMPT)).to_have_count(0)
    await chat.reload(messages=4)
    await expect(chat.replies.first.locator(".votes")).to_have_count(0)
    await pressed(chat.replies.last, None)
    assert chat.errors == []
