"""A thinking model on Slack, end to end (the real `python -m bot slack` process against the fake Slack): in the
native stream the thought is a finished task card before the answer; in edited messages a "Thought for N s" line.
The raw thought never shows in the text, and never goes back to the model."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from fakes.harness.processes import delete_keys
from fakes.harness.slack_world import SlackHarness, Streaming, finished, started
from fakes.model_server import FakeModelServer, Script
from fakes.slack import FakeSlack

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE, GENERAL = FakeSlack.DEFAULT_USER, FakeSlack.DEFAULT_CHANNEL
THOUGHT = "Zebracorns? Let me think.\nThey are imaginary <@U0BOB0001>."


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    script = Script(text="Zebracorns are imaginary.", thought=THOUGHT, thought_style="reasoning_content", rate=50)
    async with FakeModelServer(script) as server:
        yield server


async def slack(model: FakeModelServer, streaming: Streaming) -> AsyncIterator[SlackHarness]:
    prefix = f"test:slack-thinking:{uuid.uuid4().hex[:12]}:"
    harness = await started(SlackHarness(FakeSlack(), model.base_url, prefix, streaming=streaming))
    try:
        yield harness
    finally:
        try:
            await finished(harness)
        finally:
            delete_keys(prefix)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def streaming(model: FakeModelServer) -> AsyncIterator[SlackHarness]:
    async for harness in slack(model, "auto"):
        yield harness


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def editing(model: FakeModelServer) -> AsyncIterator[SlackHarness]:
    async for harness in slack(model, "off"):
        yield harness


async def test_in_the_stream_the_thought_is_a_card_before_the_answer(
    streaming: SlackHarness, model: FakeModelServer
) -> None:
    event, _ = await streaming.mention(GENERAL, ALICE, "What is a zebracorn?")
    thread = str(event["ts"])
    await streaming.wait_turn(GENERAL, thread)
    [reply] = streaming.replies(GENERAL, thread)
    assert reply.text == "Zebracorns are imaginary."
    card = reply.tasks["thought"]
    assert (card["title"], card["status"]) == ("💭 Thought for 1 s", "complete")
    assert card["output"].replace("\u200b", "") == THOUGHT and "<@" not in card["output"]  # no live mention

    await streaming.mention(GENERAL, ALICE, "Really?", thread_ts=thread)
    await streaming.wait_turn(GENERAL, thread, count=2)
    sent = [m["content"] for m in model.requests[-1].body["messages"] if m["role"] == "assistant"]
    assert sent == ["Zebracorns are imaginary."]


async def test_in_edited_messages_a_line_says_how_long_it_thought(editing: SlackHarness) -> None:
    event, _ = await editing.mention(GENERAL, ALICE, "What is a zebracorn?")
    thread = str(event["ts"])
    await editing.wait_turn(GENERAL, thread)
    [reply] = editing.replies(GENERAL, thread)
    assert reply.text == "💭 Thought for 1 s\n\nZebracorns are imaginary."
    assert "Zebracorns? Let me think" not in str(reply)
