"""The web chat's tests: bot processes serving the chat (each module's `model` fixture answers them) and Debian's
Chromium, headless.

Chromium (and Playwright's driver) start once per module, not once per test: together they take about 3 s to start.
The modules that use it run their tests and async fixtures in the module's event loop (Playwright's objects belong
to the loop they were made in); each test has browser contexts of its own, closed after it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest_asyncio
import redis.asyncio as aioredis
from playwright.async_api import Browser, async_playwright

from fakes.harness.processes import REDIS_URL
from fakes.harness.web_world import WebBots
from fakes.model_server import FakeModelServer

CHROMIUM = shutil.which("chromium")


@pytest_asyncio.fixture(loop_scope="module")
async def bots(model: FakeModelServer, key_prefix: str) -> AsyncIterator[WebBots]:
    web_bots = WebBots(model.base_url, key_prefix)
    yield web_bots
    for bot in web_bots.started:  # shown with a failed test's report (pytest keeps a passing test's output to itself)
        print(f"--- {bot.name}'s log, its last lines:", *bot.stderr.splitlines()[-30:], sep="\n")
    await web_bots.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium() -> AsyncIterator[Browser]:
    assert CHROMIUM, "Debian's chromium is not installed: `make install-dev` installs it"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        await launched.close()


@pytest_asyncio.fixture(loop_scope="module")
async def browser(chromium: Browser) -> AsyncIterator[Browser]:
    """The module's Chromium; the contexts (and their pages) the test opened are closed after it."""
    yield chromium
    for context in chromium.contexts:
        await context.close()


@pytest_asyncio.fixture(loop_scope="module")
async def raw_redis() -> AsyncIterator[aioredis.Redis]:
    """tests.conftest's, in the module's event loop."""
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()
