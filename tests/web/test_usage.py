"""The web chat's sidebar usage line, in a real headless Chromium against the real `python -m bot web`: loaded with
the page, it shows exactly the tokens (and the cost, from MODELS_FILE's price) the model server reported for the
browser's answers, is brought up to date after each answer without a reload, says what is left of the daily budget,
shows each browser its own usage alone, and shows none once Forget me deleted it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from config.settings import DEFAULT_MODEL_ID
from fakes.harness.web_world import WebBots
from fakes.model_server import FakeModelServer, RecordedRequest, Script
from tests.web.test_web import ChatPage

# Chromium is the module's (tests/web/conftest.py): its tests run in the module's event loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")

ANSWER = " ".join(f"word{n}" for n in range(12)) + "."
BUDGET = 100_000  # USER_DAILY_BUDGET, in tokens
CENTS_PER_TOKEN = 1  # MODELS_FILE's price: $10,000 per million tokens, in and out (a whole cent a token)


@pytest_asyncio.fixture(loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text=ANSWER, rate=400)) as server:
        yield server


def reported(requests: Sequence[RecordedRequest]) -> int:
    """The tokens the model server reported for `requests`: each message's words plus 4 read, the tokens it sent."""
    total = 0
    for request in requests:
        assert request.outcome == "completed"
        assert request.body.get("stream_options") == {"include_usage": True}  # so it reported them
        for message in request.body["messages"]:
            assert isinstance(message["content"], str)
            total += len(message["content"].split()) + 4
        total += request.tokens_sent
    return total


def line(tokens: int) -> str:
    """The usage line of a browser that used `tokens` today (and nothing before this month)."""
    if not tokens:
        return "Today: 0 tokens — this month: 0 tokens"
    cost = f"${tokens * CENTS_PER_TOKEN / 100:,.2f}"
    return f"Today: {tokens:,} tokens · {cost} — this month: {tokens:,} tokens · {cost}"


def left(tokens: int) -> str:
    return f"Your daily budget: {BUDGET - tokens:,} tokens left of {BUDGET:,} tokens"


async def test_the_sidebar_shows_the_browsers_own_usage_as_the_model_reported_it_after_each_answer(
    model: FakeModelServer, bots: WebBots, browser: Browser, tmp_path: Path
) -> None:
    models_file = tmp_path / "models.yml"
    price = 10_000 * CENTS_PER_TOKEN
    models_file.write_text(f"models:\n  - id: {DEFAULT_MODEL_ID}\n    price: {{input: {price}, output: {price}}}\n")
    await bots.start(MODELS_FILE=str(models_file), USER_DAILY_BUDGET=str(BUDGET))
    mine = await browser.new_context()
    chat = await ChatPage.open(mine, bots.url)
    usage, budgets = chat.page.locator("#usage-line"), chat.page.locator("#usage-budgets li")
    await expect(usage).to_have_text(line(0))  # with the page
    await expect(budgets).to_have_text([left(0)])

    await chat.ask("How many tokens does this question take?")
    await chat.answer()
    first = reported(model.requests)
    assert len(model.requests) == 1 and first > 0
    await expect(usage).to_have_text(line(first))
    await expect(budgets).to_have_text([left(first)])

    await chat.page.evaluate("window.notReloaded = true")
    await chat.ask("And this one, with the first question and answer before it?")
    await chat.answer()
    both = reported(model.requests)
    assert len(model.requests) == 2 and both > 2 * first  # the second read the first question and answer too
    await expect(usage).to_have_text(line(both))
    await expect(budgets).to_have_text([left(both)])
    assert await chat.page.evaluate("window.notReloaded") is True  # brought up to date in place
    title = await chat.page.locator("#usage").get_attribute("title")
    assert title is not None and f"Today: {both:,} tokens" in title  # the whole /usage report, as its tooltip

    # Another browser sees its own usage: none, then its answer's alone; the first browser's stays its own.
    theirs = await ChatPage.open(await browser.new_context(), bots.url)
    their_usage = theirs.page.locator("#usage-line")
    await expect(their_usage).to_have_text(line(0))
    await expect(theirs.page.locator("#usage-budgets li")).to_have_text([left(0)])
    await theirs.ask("Mine?")
    await theirs.answer()
    their_tokens = reported(model.requests[2:])
    await expect(their_usage).to_have_text(line(their_tokens))
    await expect(usage).to_have_text(line(both))

    # Another tab of the first browser is shown the browser's usage with the page, and each answer's after it.
    other_tab = await ChatPage.open(mine, bots.url)
    await expect(other_tab.page.locator("#usage-line")).to_have_text(line(both))
    await chat.ask("Once more?")
    await chat.answer()
    mine_now = both + reported(model.requests[3:])
    await expect(usage).to_have_text(line(mine_now))
    await expect(other_tab.page.locator("#usage-line")).to_have_text(line(mine_now))
    await chat.reload(messages=6)
    await expect(usage).to_have_text(line(mine_now))
    await expect(their_usage).to_have_text(line(their_tokens))

    # Forget me deletes the browser's usage counts: every page of it shows none (the other browser's stay).
    await chat.page.locator("#forget-button").click()
    await chat.page.locator("#forget-yes").click()
    await expect(usage).to_have_text(line(0))
    await expect(other_tab.page.locator("#usage-line")).to_have_text(line(0))
    await expect(their_usage).to_have_text(line(their_tokens))
    assert chat.errors == [] and theirs.errors == [] and other_tab.errors == []
