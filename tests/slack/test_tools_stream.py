"""Task cards in Slack's native stream, the surface alone (adapters.slack_bot.reply.stream.StreamReply) against
the fake Slack and real Redis: which call carries a card, and what happens to a card the rate limits
hold back. And the lines a plain message shows of the calls (adapters.slack_bot.reply.tool_cards.InlineLines)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from slack_sdk.web.async_client import AsyncWebClient

from adapters.shared.ratelimit import RateLimits
from adapters.slack_bot.reply.stream import StreamReply
from adapters.slack_bot.reply.surfaces import Place, WorkspaceBudgets
from adapters.slack_bot.reply.tool_cards import InlineLines, inert
from bot.state.redis_client import RedisClient, close, connect
from bot.tools.events import ToolFinished, ToolSources, ToolStarted
from fakes.harness.processes import REDIS_URL, delete_keys
from fakes.slack import FakeSlack

ALICE = FakeSlack.DEFAULT_USER
GENERAL = FakeSlack.DEFAULT_CHANNEL


@dataclass
class Setup:
    fake: FakeSlack
    budgets: WorkspaceBudgets
    thread_ts: str

    async def reply(self) -> StreamReply:
        budgets = self.budgets
        promise = await budgets.limits.promise((budgets.stream_starts, budgets.stream_stops))
        assert promise is not None
        client = AsyncWebClient(token=self.fake.bot_token, base_url=self.fake.api_url)
        return StreamReply(Place(client, self.fake.team_id, GENERAL, self.thread_ts, ALICE), budgets, promise)

    async def use_up_spare_appends(self) -> None:
        for _ in range(100):
            spare = await self.budgets.limits.spare((self.budgets.appends,))
            if spare is None:
                return
            async with spare:
                pass
        raise AssertionError("the appends never ran out")

    def stream_calls(self) -> list[tuple[str, list[dict]]]:
        """Each stream call: its method and its chunks (text alone as a markdown_text chunk)."""
        calls = []
        for call in self.fake.calls:
            if call.method.startswith("chat.") and "Stream" in call.method:
                chunks = list(call.params.get("chunks") or [])
                if call.params.get("markdown_text"):
                    chunks.insert(0, {"type": "markdown_text", "text": call.params["markdown_text"]})
                calls.append((call.method, chunks))
        return calls


@pytest_asyncio.fixture
async def redis() -> AsyncIterator[RedisClient]:
    client = connect(REDIS_URL, cluster=False, retries=0)
    yield client
    await close(client)


@pytest_asyncio.fixture
async def setup(redis: RedisClient) -> AsyncIterator[Setup]:
    prefix = f"test:slack-cards:{uuid.uuid4().hex[:12]}:"
    async with FakeSlack() as fake:
        parent = fake.app_mention_event(GENERAL, ALICE, "hi")
        yield Setup(fake, WorkspaceBudgets(RateLimits(redis, prefix), fake.team_id), parent["ts"])
    delete_keys(prefix)


def started(call: str, name: str = "lookup") -> ToolStarted:
    return ToolStarted(call, name, "fake", '{"query": "x"}')


def finished(call: str, *, ok: bool = True, **fields: object) -> ToolFinished:
    return ToolFinished(call, "lookup", "fake", ok, 0.2, arguments='{"query": "x"}', **fields)  # type: ignore[arg-type]


def card(method_chunks: tuple[str, list[dict]]) -> list[tuple[str, str]]:
    return [(c["id"], c["status"]) if c["type"] == "task_update" else ("text", c["text"]) for c in method_chunks[1]]


async def test_a_card_before_any_text_opens_the_stream_and_the_text_follows_in_it(setup: Setup) -> None:
    reply = await setup.reply()
    await reply.show_tool(started("c1"))
    await reply.show_tool(finished("c1", result="found it"))  # a spare append: at once
    handle = await reply.post("The answer.", final=False)
    await reply.edit(handle, "The answer. All of it.", final=True)
    await reply.end()

    calls = setup.stream_calls()
    assert [(method, card((method, chunks))) for method, chunks in calls] == [
        ("chat.startStream", [("c1", "in_progress")]),
        ("chat.appendStream", [("c1", "complete")]),
        ("chat.appendStream", [("text", "The answer.")]),  # the first text goes into the card's stream
        ("chat.stopStream", [("text", " All of it.")]),
    ]
    message = setup.fake.find_message(GENERAL, handle)
    assert message is not None and message.text == "The answer. All of it." and message.stream_state == "stopped"
    assert message.tasks["c1"]["output"] == "found it"


async def test_cards_held_back_by_the_rate_limits_go_with_the_stop_each_with_its_latest_status(setup: Setup) -> None:
    await setup.use_up_spare_appends()
    reply = await setup.reply()
    await reply.show_tool(started("c1"))  # opens the stream: the start was promised, no append needed
    await reply.show_tool(finished("c1", sources=("https://a.example/x",)))
    await reply.show_tool(started("c2", "hang"))
    await reply.show_tool(finished("c2", ok=False, error="timed out after 1 s"))
    await reply.show_tool(ToolSources(("https://a.example/x",)))
    handle = await reply.post("Done.", final=True)
    await reply.end()

    calls = setup.stream_calls()
    assert [(method, card((method, chunks))) for method, chunks in calls] == [
        ("chat.startStream", [("c1", "in_progress")]),
        ("chat.stopStream", [("text", "Done."), ("c1", "complete"), ("c2", "error")]),  # c2 never in progress
    ]
    message = setup.fake.find_message(GENERAL, handle)
    assert message is not None
    assert message.task_statuses("c1") == ["in_progress", "complete"] and message.task_statuses("c2") == ["error"]
    assert message.tasks["c1"]["sources"] == [{"type": "url", "url": "https://a.example/x", "text": "a.example/x"}]
    assert message.context_texts == ["Sources: <https://a.example/x|1>"]


async def test_a_card_held_back_is_tried_again_while_no_text_comes(setup: Setup) -> None:
    reply = await setup.reply()
    await reply.show_tool(started("c1"))
    setup.fake.inject_error("chat.appendStream", "internal_error")  # the card's update fails once
    await reply.show_tool(finished("c1"))
    message = setup.fake.find_message(GENERAL, setup.fake.calls_to("chat.startStream")[0].response["ts"])
    assert message is not None and message.task_statuses("c1") == ["in_progress"]
    await asyncio.sleep(1.3)  # a second later, without any text
    assert message.task_statuses("c1") == ["in_progress", "complete"]
    await reply.post("Done.", final=True)
    await reply.end()
    assert message.task_statuses("c1") == ["in_progress", "complete"]  # not again with the stop


async def test_a_card_and_the_first_text_together_open_one_stream(setup: Setup) -> None:
    reply = await setup.reply()
    showing = asyncio.create_task(reply.show_tool(started("c1")))
    await asyncio.sleep(0.02)  # the call came just after the text began
    handle = await reply.post("Let me look.", final=False)
    await showing
    await reply.edit(handle, "Let me look.", final=True)
    await reply.end()
    starts = setup.fake.calls_to("chat.startStream")
    assert len(starts) == 1
    message = setup.fake.find_message(GENERAL, handle)
    assert message is not None and message.text == "Let me look." and list(message.tasks) == ["c1"]


# -- lines, where a stream fell back to a plain message ---------------------------------------------


def test_lines_go_where_the_text_was_when_the_call_finished() -> None:
    lines = InlineLines()
    lines.saw("")
    lines.add(started("c1"))
    assert lines.render("") == "🔧 `lookup` …"
    lines.add(finished("c1"))
    lines.saw("Let me look.")
    lines.add(started("c2", "hang"))
    lines.add(ToolFinished("c2", "hang", "fake", False, 1.0, "timed out after 1 s"))
    lines.add(ToolSources(("https://a.example/x",)))
    assert lines.render("Let me look. Found it.") == (
        "✓ `lookup`, 0.2 s\n\nLet me look.\n\n✗ `hang`: timed out after 1 s\n\n Found it.\n\n"
        "Sources:\n1. <https://a.example/x>"
    )
    lines.new_message()  # the reply goes on in another message: what is left of it
    assert lines.render("More.") == "More.\n\nSources:\n1. <https://a.example/x>"
    assert InlineLines().render("Untouched\n") == "Untouched\n"


def test_nothing_a_tool_returns_is_a_mention_or_a_link() -> None:
    assert "<!channel>" not in inert("<!channel> <@U1> <https://x.example|y>")
    assert "://" not in inert("see https://example.org and www.example.org")
    assert inert("see https://example.org").replace("\u200b", "") == "see https://example.org"


@pytest.mark.parametrize("status", ["pending", "in_progress", "complete", "error"])
def test_the_fake_takes_each_status(status: str) -> None:
    from fakes.slack import chunk_errors

    assert chunk_errors({"type": "task_update", "id": "a", "title": "t", "status": status}, "/chunks/0") == []
