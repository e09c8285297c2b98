"""/tools on Slack says whether the conversation's model uses the tools (and if not, which models do), and shows a
server that is down by its name and host alone: the real `python -m bot slack` process against the loopback fake
Slack and model server, with the MCP server of fakes/mcp_tools.py and one that refuses everyone (401) at a URL
whose path holds its key."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from fakes.harness.processes import delete_keys
from fakes.harness.slack_world import SlackHarness, eventually, finished, started
from fakes.mcp_config import fake_server, servers_file
from fakes.mcp_refusing import SECRET, refusing_server
from fakes.model_server import FakeModelServer, Script
from fakes.slack import FakeSlack
from tests.slack.test_slack_choices import command

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE = FakeSlack.DEFAULT_USER
GENERAL = FakeSlack.DEFAULT_CHANNEL


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hosted() -> AsyncIterator[str]:
    async with refusing_server() as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def harness(hosted: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SlackHarness]:
    servers = servers_file(tmp_path_factory.mktemp("slack-tools-status"), fake=fake_server(), hosted={"url": hosted})
    prefix = f"test:slack-tools-status:{uuid.uuid4().hex[:12]}:"
    async with FakeModelServer(Script(text="Hello.")) as model:
        env = {"MCP_SERVERS_FILE": str(servers), "MODELS": "small-model", "TOOL_MODELS": "small-model"}
        harness = await started(SlackHarness(FakeSlack(), model.base_url, prefix, extra_env=env))
        try:
            [bot] = harness.bots
            await bot.wait_log("mcp_server_up", server="fake", timeout=30)
            yield harness
        finally:
            try:
                await finished(harness)
            finally:
                delete_keys(prefix)


def refused_line(hosted: str) -> str:
    """How the listing shows the refusing server: a zero-width space inside "://" keeps its host from being a link."""
    host = hosted.split("/api/", 1)[0].replace("://", ":\u200b//")
    return f"⚠️ `hosted` is down: {host}: the server answered 401 Unauthorized. I keep trying to reach it."


async def test_tools_in_a_channel_names_the_models_that_use_them(harness: SlackHarness, hosted: str) -> None:
    listing = await command(harness, "/tools", "", ALICE, GENERAL)
    assert listing.startswith(
        "Tools are offered here to the models that can use them.\n"
        "*Mistral-7B-Instruct-v0.3* answers new conversations here and doesn't use tools: it answers from what it "
        "knows. The models here that do: *small-model*. Switch with /model small-model.\nThe tools connected:\n"
    )
    assert "• `lookup`: Look something up." in listing
    assert refused_line(hosted) in listing and SECRET not in listing


async def test_tools_in_a_dm_follows_the_dms_model(harness: SlackHarness) -> None:
    dm = harness.new_dm(ALICE)
    assert "*Mistral-7B-Instruct-v0.3* answers this conversation and doesn't use tools" in (
        await command(harness, "/tools", "", ALICE, dm)
    )
    await command(harness, "/model", "small-model", ALICE, dm)
    listing = await command(harness, "/tools", "", ALICE, dm)
    assert "*small-model* answers this conversation and uses these tools:\n• `lookup`" in listing


async def test_the_home_tab_and_the_log_never_show_a_servers_key(harness: SlackHarness, hosted: str) -> None:
    await harness.fake.send_event(harness.fake.app_home_opened_event(ALICE))
    await eventually(lambda: ALICE in harness.fake.home_views, what="the published Home tab")
    text = harness.fake.published_views[-1].text
    assert refused_line(hosted) in text and SECRET not in text
    assert all(SECRET not in bot.stderr for bot in harness.bots)
