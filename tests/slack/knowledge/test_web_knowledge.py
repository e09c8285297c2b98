"""A GitHub repository and a docs site as a Slack workspace's knowledge, through the real bot process, the fake Slack,
a fake GitHub (REST and GraphQL with GitHub's rate-limit headers, as GITHUB_API_URL), a loopback docs site and the
real engine: `/knowledge add github.com/owner/repo` reads its README, issues and discussions, and a question is
answered from the discussion's accepted answer, cited with its link; `/knowledge list` shows what was read;
KNOWLEDGE_URLS' site answers every workspace; `/knowledge remove` takes the repository away with its passages."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
import pytest_asyncio

from bot.knowledge.embedded import EmbeddedDatabase, start_embedded, stop_embedded
from fakes.citing_model import citing_responder
from fakes.docs_site import FakeDocsSite
from fakes.github import FakeGitHub
from fakes.github_data import sample_repository
from fakes.harness.processes import delete_keys
from fakes.harness.server_folders import server_folder
from fakes.harness.slack_world import SlackHarness, eventually, finished, started
from fakes.model_server import FakeModelServer, Script
from fakes.slack import FakeSlack

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(90)]

ALICE = FakeSlack.DEFAULT_USER  # an admin (SLACK_ADMIN_USER_IDS)
BOB = "U0BOB0001"
GENERAL = FakeSlack.DEFAULT_CHANNEL
REPOSITORY = "github.com/acme/widgets"


@pytest.fixture(scope="module")
def database() -> Iterator[EmbeddedDatabase]:
    folder = server_folder("web-knowledge-slack-")  # nobody's, when root
    database = start_embedded(folder / "pg")
    yield database
    stop_embedded(folder / "pg")
    shutil.rmtree(folder, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def github() -> AsyncIterator[FakeGitHub]:
    async with FakeGitHub() as github:
        github.repositories["acme/widgets"] = sample_repository()
        yield github


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site() -> AsyncIterator[FakeDocsSite]:
    site = FakeDocsSite(hostile=False, crawl_delay=None)
    await site.start()
    yield site
    await site.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text="ok")) as server:
        server.responder = citing_responder
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def harness(
    model: FakeModelServer, database: EmbeddedDatabase, github: FakeGitHub, site: FakeDocsSite
) -> AsyncIterator[SlackHarness]:
    prefix = f"test:slack-web-knowledge:{uuid.uuid4().hex[:12]}:"
    fake = FakeSlack()
    fake.add_user(BOB, "bob")
    env = {
        "KNOWLEDGE_DATABASE_URL": database.url,
        "SLACK_ADMIN_USER_IDS": ALICE,
        "USER_TURNS_PER_MINUTE": "100",
        "GITHUB_API_URL": github.api_url,
        "GITHUB_TOKEN": "test-token",
        "KNOWLEDGE_URLS": site.docs_url + "install.html",
        "KNOWLEDGE_ALLOW_PRIVATE_URLS": site.allowance,
        "KNOWLEDGE_REQUEST_INTERVAL_SECONDS": "0",
    }
    harness = SlackHarness(fake, model.base_url, prefix, extra_env=env)
    yield await started(harness)
    try:
        await finished(harness)
    finally:
        delete_keys(prefix)


async def command(harness: SlackHarness, user: str, text: str) -> str:
    fake = harness.fake
    before = len(fake.responses)
    await fake.send_slash_command("/knowledge", text, user, GENERAL)
    await eventually(lambda: len(fake.responses) > before, 20, "the answer to /knowledge")
    response = fake.responses[before]
    assert response.ephemeral and response.user == user
    return response.text


def stored(database: EmbeddedDatabase, scope: str) -> list[dict[str, Any]]:
    """The scope's passages read from the web."""
    with psycopg.connect(database.url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('knowledge_passages')").fetchone() == (None,):
            return []
        query = "SELECT text, url FROM knowledge_passages WHERE scope = %s AND source LIKE 'web:%%'"
        return [{"text": text, "url": url} for text, url in conn.execute(query, (scope,)).fetchall()]


async def until_stored(database: EmbeddedDatabase, scope: str, words: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not any(words in row["text"] for row in await asyncio.to_thread(stored, database, scope)):
        assert time.monotonic() < deadline, f"not stored within {seconds} s: {words}"
        await asyncio.sleep(0.2)


async def ask(harness: SlackHarness, model: FakeModelServer, question: str) -> tuple[str, str]:
    """The bot's reply in the mention's thread, and the system prompt the model was given."""
    event, _ = await harness.mention(GENERAL, BOB, question)
    await harness.wait_turn(GENERAL, event["ts"])
    [reply] = harness.replies(GENERAL, event["ts"])
    [request] = [r for r in model.requests if question in str(r.body["messages"][-1]["content"])]
    return reply.visible_text, str(request.body["messages"][0]["content"])


async def test_a_repository_is_read_and_its_accepted_answer_cited(
    harness: SlackHarness, model: FakeModelServer, database: EmbeddedDatabase, github: FakeGitHub
) -> None:
    team = harness.fake.team_id
    assert "Only workspace admins" in await command(harness, BOB, f"add {REPOSITORY}")
    said = await command(harness, ALICE, f"add <https://{REPOSITORY}|{REPOSITORY}>")
    assert said.startswith("Added https://github.com/acme/widgets.")
    await until_stored(database, f"slack:{team}", "WIDGETS_REFRESH_SECONDS")

    reply, system = await ask(harness, model, "What setting in the server's environment makes it refresh every 30 s?")
    assert "WIDGETS_REFRESH_SECONDS=30" in system and "Accepted answer" in system
    answer_url = next(row["url"] for row in stored(database, f"slack:{team}") if "WIDGETS_REFRESH" in row["text"])
    assert "/acme/widgets/discussions/4#discussioncomment-" in answer_url
    assert answer_url in reply
    texts = " ".join(row["text"] for row in stored(database, f"slack:{team}"))
    assert "zeppelin" not in texts, "a pull request is not knowledge"

    deadline = time.monotonic() + 30
    while "read <!date^" not in (listed := await command(harness, ALICE, "list")):
        assert time.monotonic() < deadline, listed
        await asyncio.sleep(0.5)
    assert "*https://github.com/acme/widgets* (GitHub)" in listed

    assert "Reading this workspace's sites" in await command(harness, ALICE, "sync")
    removed = await command(harness, ALICE, f"remove {REPOSITORY}")
    assert removed.startswith("Removed https://github.com/acme/widgets from this workspace's knowledge")
    assert stored(database, f"slack:{team}") == []


async def test_knowledge_urls_answer_every_workspace(
    harness: SlackHarness, model: FakeModelServer, database: EmbeddedDatabase, site: FakeDocsSite
) -> None:
    await until_stored(database, "deployment", "pip install acme")
    reply, system = await ask(harness, model, "How do I install the acme command with pip?")
    assert "pip install acme" in system
    assert f"{site.base_url}/docs/install.html#from-pip" in reply
    listed = await command(harness, ALICE, "list")
    assert "the bot's own (KNOWLEDGE_URLS)" in listed
    refused = await command(harness, ALICE, f"remove {site.docs_url}install.html")
    assert refused.startswith("No source is called"), "the operator's site is removed by the operator only"
    assert any("pip install acme" in row["text"] for row in stored(database, "deployment"))
