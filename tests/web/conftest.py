"""The web chat's tests: bot processes serving the chat (each module's `model` fixture answers them) and Debian's
Chromium, headless."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from tests.fakes.model_server import FakeModelServer
from tests.web.harness import WebBots

CHROMIUM = shutil.which("chromium")


@pytest.fixture
async def bots(model: FakeModelServer, key_prefix: str) -> AsyncIterator[WebBots]:
    web_bots = WebBots(model.base_url, key_prefix)
    yield web_bots
    await web_bots.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM, "Debian's chromium is not installed: `make install-dev` installs it"
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        await chromium.close()
