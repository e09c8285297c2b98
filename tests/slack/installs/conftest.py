"""The scene for the OAuth mode's tests: one `python -m bot slack` process with SLACK_CLIENT_ID (HTTP), the
loopback Slack OAuth side (fakes/slack/oauth.py) in front of fresh fake workspaces, real Redis, and a person
installing the app from a browser."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlparse

import aiohttp
import pytest_asyncio
import redis.asyncio as aioredis
from cryptography.fernet import Fernet
from slack_sdk.oauth.installation_store.models import Installation

from adapters.slack_bot.installs.installations import RedisInstallationStore, TokenCipher
from bot.state.redis_client import close, connect
from fakes.harness.processes import REDIS_URL, delete_keys
from fakes.harness.slack_world import SlackHarness
from fakes.model_server import FakeModelServer, Script
from fakes.slack import FakeSlack
from fakes.slack.oauth import FakeSlackOAuth

ALICE = FakeSlack.DEFAULT_USER
GENERAL = FakeSlack.DEFAULT_CHANNEL
COOKIE = "slack-app-oauth-state"
TOKEN_KEY = Fernet.generate_key().decode()
EXPIRED = "already used or has expired"
TURN_ENDS = ("turn_finished", "reply_failed")

# -- the scene: one bot process, the OAuth side, Redis -----------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text="Hello from the fake model.")) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def prefix() -> AsyncIterator[str]:
    key_prefix = f"test:slack-oauth:{uuid.uuid4().hex[:12]}:"
    yield key_prefix
    delete_keys(key_prefix)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slack() -> AsyncIterator[FakeSlackOAuth]:
    async with FakeSlackOAuth() as oauth:
        yield oauth


def oauth_env(slack: FakeSlackOAuth, key: str | None = TOKEN_KEY) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": "",
        "SLACK_API_URL": slack.api_url,
        "SLACK_CLIENT_ID": slack.client_id,
        "SLACK_CLIENT_SECRET": slack.client_secret,
        "SLACK_TOKEN_ENCRYPTION_KEY": key or "",
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def harness(model: FakeModelServer, prefix: str, slack: FakeSlackOAuth) -> AsyncIterator[SlackHarness]:
    async with FakeSlack() as unused:  # the harness's own workspace: every call goes to `slack` instead
        harness = SlackHarness(unused, model.base_url, prefix, mode="http", extra_env=oauth_env(slack))
        await harness.start_bot()
        yield harness
        await harness.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def store(prefix: str) -> AsyncIterator[RedisInstallationStore]:
    client = connect(REDIS_URL, cluster=False)
    yield RedisInstallationStore(client, prefix, TokenCipher(TOKEN_KEY))
    await close(client)


@pytest_asyncio.fixture(loop_scope="module")
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    # The state cookie is Secure (never sent over http://): each request carries it by hand, as tests.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


@dataclass
class Page:
    status: int
    text: str
    cookies: list[str]
    content_security_policy: str = ""


@dataclass
class Installer:
    """A person installing the app from their browser."""

    session: aiohttp.ClientSession
    harness: SlackHarness
    slack: FakeSlackOAuth

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.harness.port}"

    async def get(self, path: str, query: dict[str, str] | None = None, cookie: str | None = None) -> Page:
        headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie is not None else {}
        url = f"{self.base}{path}" + (f"?{urlencode(query)}" if query else "")
        async with self.session.get(url, headers=headers, allow_redirects=False) as response:
            policy = response.headers.get("Content-Security-Policy", "")
            return Page(response.status, await response.text(), response.headers.getall("Set-Cookie", []), policy)

    async def open_install_page(self) -> tuple[Page, str, dict[str, list[str]]]:
        """The install page, the "Add to Slack" link's state and its query."""
        page = await self.get("/slack/install")
        assert page.status == 200, page.text
        link = html.unescape(re.search(r'<a class="button" href="([^"]+)"', page.text)[1])  # type: ignore[index]
        query = parse_qs(urlparse(link).query)
        return page, query["state"][0], query

    async def install(self, workspace: FakeSlack, user: str = ALICE, *, org_wide: bool = False) -> Page:
        _, state, _ = await self.open_install_page()
        code = self.slack.approve_install(state, team=workspace.team_id, user=user, org_wide=org_wide)
        return await self.get("/slack/oauth_redirect", {"code": code, "state": state}, cookie=state)


@pytest_asyncio.fixture(loop_scope="module")
async def installer(
    browser: aiohttp.ClientSession, harness: SlackHarness, slack: FakeSlackOAuth
) -> AsyncIterator[Installer]:
    yield Installer(browser, harness, slack)
    print(harness.report())  # pytest shows it only when the test failed
    for bot in harness.bots:
        assert bot.running, f"{bot.name} died\n{harness.report()}"


@pytest_asyncio.fixture(loop_scope="module")
async def workspaces(slack: FakeSlackOAuth) -> AsyncIterator[WorkspaceMaker]:
    maker = WorkspaceMaker(slack)
    yield maker
    for fake in maker.made:
        await fake.stop()


class WorkspaceMaker:
    """Fresh fake workspaces behind the OAuth side (each test's own team ids: Redis keeps installs)."""

    def __init__(self, slack: FakeSlackOAuth) -> None:
        self.slack = slack
        self.made: list[FakeSlack] = []

    async def new(self, name: str, *, enterprise: tuple[str, str] | None = None) -> FakeSlack:
        tag = uuid.uuid4().hex[:6].upper()
        fake = FakeSlack(
            team_id=f"T{tag}",
            bot_user_id=f"U0BOT{tag}",
            bot_id=f"B0BOT{tag}",
            enterprise_id=enterprise and enterprise[0],
        )
        await fake.start()
        self.made.append(fake)
        self.slack.add_workspace(fake, name, enterprise_name=enterprise and enterprise[1])
        return fake


async def find(store: RedisInstallationStore, team: FakeSlack) -> Installation | None:
    return await store.async_find_installation(enterprise_id=team.enterprise_id, team_id=team.team_id)


async def raw_values(prefix: str) -> dict[str, str]:
    """Every install record in Redis, as stored."""
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        values = {}
        async for key in client.scan_iter(match=f"{prefix}slack:install:*", count=500):
            if await client.type(key) == "string":
                values[key] = await client.get(key)
        return values
    finally:
        await client.aclose()


def refused(page: Page, words: str) -> None:
    assert page.status >= 400 or "cancelled" in words, page
    assert words in html.unescape(page.text), page.text
    assert "/slack/install" in page.text, "the page says where to start again"
    assert any(cookie.startswith(f"{COOKIE}=deleted") for cookie in page.cookies), page.cookies
