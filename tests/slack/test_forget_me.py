"""/forget-me on Slack, through the real bot process and the fake Slack: the answer comes through the command's
response_url, for the person alone, saying what was deleted; their own thread and DM start afresh, the shared
thread goes on without their part, and the same user id in another workspace keeps everything."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from fakes.harness.processes import delete_keys
from fakes.harness.slack_world import SlackHarness, eventually, finished, started, user_contents
from fakes.model_server import FakeModelServer, Script
from fakes.slack import FakeSlack, ResponseUrlPost

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE = FakeSlack.DEFAULT_USER
GENERAL = FakeSlack.DEFAULT_CHANNEL
BOB = "U0BOB0001"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text="Noted.")) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def harness(model: FakeModelServer) -> AsyncIterator[SlackHarness]:
    prefix = f"test:slack-forget:{uuid.uuid4().hex[:12]}:"
    fake = FakeSlack()
    fake.add_user(BOB, "bob")
    harness = SlackHarness(fake, model.base_url, prefix, extra_env={"USER_TURNS_PER_MINUTE": "20"})
    yield await started(harness)
    try:
        await finished(harness)
    finally:
        delete_keys(prefix)


def asked(model: FakeModelServer, marker: str) -> list[str]:
    [request] = [r for r in model.requests if marker in (r.last_user_content() or "")]
    return [str(content) for content in user_contents(request)]


async def forget(harness: SlackHarness, user: str, channel: str) -> ResponseUrlPost:
    fake = harness.fake
    before = len(fake.responses)
    envelope = await fake.send_slash_command("/forget-me", "", user, channel)
    await fake.wait_ack(envelope)
    assert not (fake.ack_payloads[envelope] or {}).get("text")
    await eventually(lambda: len(fake.responses) > before, 20, "the response to /forget-me")
    [response] = fake.responses[before:]
    assert response.status == 200 and response.user == user and response.source == "slash_command"
    return response


async def test_forget_me_deletes_their_conversations_here_and_their_part_of_shared_threads(
    harness: SlackHarness, model: FakeModelServer
) -> None:
    fake = harness.fake
    elsewhere = harness.new_workspace()  # the same user ids, another workspace
    other_thread, _ = await harness.mention(GENERAL, ALICE, "w-1 in the other workspace")
    await harness.wait_turn(GENERAL, other_thread["ts"])

    here = harness.new_workspace()
    own, _ = await harness.mention(GENERAL, ALICE, "a-1 my secret is 1234")
    await harness.wait_turn(GENERAL, own["ts"])
    dm = harness.new_dm(ALICE)
    await harness.say(dm, ALICE, "a-2 my name is Alice")
    await harness.wait_turn(dm, None)
    shared, _ = await harness.mention(GENERAL, BOB, "b-1 bob opens this")
    await harness.wait_turn(GENERAL, shared["ts"])
    await harness.say(GENERAL, ALICE, "a-3 alice chimes in", thread_ts=shared["ts"])
    await harness.wait_turn(GENERAL, shared["ts"], count=2)
    await harness.say(GENERAL, BOB, "b-2 bob again", thread_ts=shared["ts"])
    await harness.wait_turn(GENERAL, shared["ts"], count=3)

    response = await forget(harness, ALICE, GENERAL)
    assert response.ephemeral
    assert response.text == (
        "Deleted: 2 conversations of yours (1 DM), your messages in 1 shared thread, your question counters, and your "
        "usage records."
    )

    await harness.say(GENERAL, ALICE, "a-4 what is my secret?", thread_ts=own["ts"])
    await harness.wait_turn(GENERAL, own["ts"], count=2)
    assert asked(model, "a-4") == ["a-4 what is my secret?"]
    await harness.say(dm, ALICE, "a-5 what is my name?")
    await harness.wait_turn(dm, None, count=2)
    assert asked(model, "a-5") == ["a-5 what is my name?"]
    await harness.say(GENERAL, BOB, "b-3 what did alice say?", thread_ts=shared["ts"])
    await harness.wait_turn(GENERAL, shared["ts"], count=4)
    shared_prompt = asked(model, "b-3")
    assert len(shared_prompt) == 5 and not any("a-3" in text for text in shared_prompt)
    assert shared_prompt[0].endswith("b-1 bob opens this") and shared_prompt[2].endswith("b-2 bob again")

    fake.team_id = elsewhere
    await harness.say(GENERAL, ALICE, "w-2 still there?", thread_ts=other_thread["ts"])
    await harness.wait_turn(GENERAL, other_thread["ts"], count=2)
    assert asked(model, "w-2") == ["w-1 in the other workspace", "Noted.", "w-2 still there?"]
    fake.team_id = here


async def test_forget_me_with_nothing_kept_says_so(harness: SlackHarness) -> None:
    harness.new_workspace()
    response = await forget(harness, BOB, GENERAL)
    assert response.ephemeral
    assert response.text == (
        "There was nothing of yours to delete: I keep no conversations or question counters of yours."
    )
