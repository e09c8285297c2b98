"""What people pick a bot for, on Slack: /model (a DM's model, a channel's default for new
threads), images shared with a question, and the "Ask … about this" message shortcut. The real
bot process against the loopback fake Slack and model server, in Socket Mode."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from PIL import Image

from fakes.harness.processes import delete_keys
from fakes.harness.slack_world import SlackHarness, finished, started
from fakes.model_server import FakeModelServer, RecordedRequest, Script
from fakes.slack import FakeSlack

pytestmark = pytest.mark.asyncio(loop_scope="module")

TEXT_MODEL = "mistralai/Mistral-7B-Instruct-v0.3"
VISION_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
ALICE = FakeSlack.DEFAULT_USER
GENERAL = FakeSlack.DEFAULT_CHANNEL
BOB = "U0BOB0001"  # the bot's admin (SLACK_ADMIN_USER_IDS)
CAROL = "U0CAROL01"  # a workspace admin
VISION_CHANNEL = "C0VISION1"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text="Hello.")) as server:
        server.prefix_model = True  # every answer starts with "[<model>] "
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def harness(model: FakeModelServer) -> AsyncIterator[SlackHarness]:
    prefix = f"test:slack-choices:{uuid.uuid4().hex[:12]}:"
    fake = FakeSlack()
    fake.add_user(BOB, "bob")
    fake.add_user(CAROL, "carol").is_admin = True
    fake.add_channel(VISION_CHANNEL, "vision")
    harness = SlackHarness(
        fake,
        model.base_url,
        prefix,
        extra_env={"MODELS": VISION_MODEL, "VISION_MODELS": VISION_MODEL, "SLACK_ADMIN_USER_IDS": BOB},
    )
    yield await started(harness)
    try:
        await finished(harness)
    finally:
        delete_keys(prefix)


async def command(harness: SlackHarness, name: str, text: str, user: str, channel: str) -> str:
    envelope = await harness.fake.send_slash_command(name, text, user, channel)
    await harness.fake.wait_ack(envelope)
    return str((harness.fake.ack_payloads[envelope] or {}).get("text", ""))


def last_request(model: FakeModelServer, marker: str) -> RecordedRequest:
    return [r for r in model.requests if marker in (r.last_user_content() or "")][-1]


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 160, 90)).save(buffer, "PNG")
    return buffer.getvalue()


def sizes(urls: list[str]) -> list[tuple[int, int]]:
    return [Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size for url in urls]


def model_context(message: Any) -> list[str]:
    return list(message.context_texts)


async def test_model_in_a_dm_switches_it_and_the_reply_names_the_model(
    harness: SlackHarness, model: FakeModelServer
) -> None:
    dm = harness.new_dm(ALICE)
    await harness.say(dm, ALICE, "d1-first hi")
    await harness.wait_turn(dm, None)
    listing = await command(harness, "/model", "", ALICE, dm)
    assert listing.startswith("This conversation answers with *Mistral-7B-Instruct-v0.3*.")
    assert "• Qwen2.5-VL-7B-Instruct (sees images)" in listing

    said = await command(harness, "/model", "qwen2.5-vl-7b-instruct", ALICE, dm)
    assert said == "This conversation now answers with *Qwen2.5-VL-7B-Instruct*. The earlier messages are kept."
    await harness.say(dm, ALICE, "d1-second and now?")
    await harness.wait_turn(dm, None, count=2)
    request = last_request(model, "d1-second")
    assert request.model == VISION_MODEL
    assert [m["content"] for m in request.body["messages"][1:]] == [
        "d1-first hi",
        f"[{TEXT_MODEL}] Hello.",
        "d1-second and now?",
    ]
    replies = harness.replies(dm)
    assert model_context(replies[-1]) == ["Qwen2.5-VL-7B-Instruct"]  # the small grey line under it
    assert model_context(replies[0]) == ["Mistral-7B-Instruct-v0.3"]


async def test_a_channels_default_is_set_by_admins_only_and_new_threads_keep_theirs(
    harness: SlackHarness, model: FakeModelServer
) -> None:
    refused = await command(harness, "/model", VISION_MODEL, ALICE, GENERAL)
    assert refused == "Only workspace admins (or the people this bot names) may set a channel's model."

    earlier, _ = await harness.mention(GENERAL, ALICE, "c1-before a thread started earlier")
    await harness.wait_turn(GENERAL, earlier["ts"])
    said = await command(harness, "/model", VISION_MODEL, BOB, GENERAL)
    assert (
        said
        == "New conversations in this channel will answer with *Qwen2.5-VL-7B-Instruct*. Existing ones keep theirs."
    )

    mention, _ = await harness.mention(GENERAL, ALICE, "c1-new a new thread")
    await harness.wait_turn(GENERAL, mention["ts"])
    assert last_request(model, "c1-new").model == VISION_MODEL
    await harness.say(GENERAL, ALICE, "c1-old a follow-up in the earlier thread", thread_ts=earlier["ts"])
    await harness.wait_turn(GENERAL, earlier["ts"], count=2)
    assert last_request(model, "c1-old").model == TEXT_MODEL

    # A workspace admin may change it back; the thread started meanwhile keeps its model.
    said = await command(harness, "/model", "Mistral-7B-Instruct-v0.3", CAROL, GENERAL)
    assert (
        said
        == "New conversations in this channel will answer with *Mistral-7B-Instruct-v0.3*. Existing ones keep theirs."
    )
    await harness.say(GENERAL, ALICE, "c1-kept still the same model?", thread_ts=mention["ts"])
    await harness.wait_turn(GENERAL, mention["ts"], count=2)
    assert last_request(model, "c1-kept").model == VISION_MODEL


async def test_an_image_shared_with_a_mention_reaches_the_vision_model_scaled_down(
    harness: SlackHarness, model: FakeModelServer
) -> None:
    await command(harness, "/model", VISION_MODEL, BOB, VISION_CHANNEL)
    mention, _ = await harness.mention(
        VISION_CHANNEL, ALICE, "i1-look what is this?", files=[("chart.png", "image/png", png(2400, 1600))]
    )
    await harness.wait_turn(VISION_CHANNEL, mention["ts"])
    request = last_request(model, "i1-look")
    assert request.content_parts is not None and request.content_parts[0]["text"].endswith("what is this?")
    assert sizes(request.image_urls) == [(1568, 1045)]


async def test_the_message_shortcut_answers_about_the_message_in_its_thread(
    harness: SlackHarness, model: FakeModelServer
) -> None:
    pointed = harness.fake.message_event(
        VISION_CHANNEL,
        BOB,
        "s1-short our error rate doubled after the deploy",
        files=[("graph.png", "image/png", png(800, 600))],
    )
    await harness.fake.send_message_shortcut("ask_about_message", ALICE, VISION_CHANNEL, pointed["ts"])
    await harness.wait_turn(VISION_CHANNEL, pointed["ts"])
    request = last_request(model, "s1-short")
    assert request.content_parts is not None
    assert request.content_parts[0]["text"] == (
        "bob wrote:\n> s1-short our error rate doubled after the deploy\n\nAnswer or explain this message."
    )
    assert sizes(request.image_urls) == [(800, 600)]
    [reply] = harness.replies(VISION_CHANNEL, pointed["ts"])
    assert reply.text.startswith(f"[{VISION_MODEL}]")


async def test_persona_is_set_by_admins_only_and_is_the_system_message_of_the_channels_next_question(
    harness: SlackHarness, model: FakeModelServer
) -> None:
    refused = await command(harness, "/persona", "You are a pirate.", ALICE, GENERAL)
    assert refused == "Only workspace admins (or the people this bot names) may set a channel's persona."
    said = await command(harness, "/persona", "You are the helpdesk; you answer {user}.", BOB, GENERAL)
    assert said.startswith("Done: this channel's persona is set.")
    shown = await command(harness, "/persona", "", ALICE, GENERAL)
    assert shown == "The persona here comes from this channel:\n>>> You are the helpdesk; you answer {user}."

    mention, _ = await harness.mention(GENERAL, ALICE, "p1-printer broken")
    await harness.wait_turn(GENERAL, mention["ts"])
    assert last_request(model, "p1-printer").body["messages"][0]["content"] == "You are the helpdesk; you answer alice."
    dm = harness.new_dm(ALICE)  # a DM has no channel persona: the default
    await harness.say(dm, ALICE, "p1-dm hello")
    await harness.wait_turn(dm, None)
    assert "helpdesk" not in last_request(model, "p1-dm").body["messages"][0]["content"]

    assert (await command(harness, "/persona", "clear", CAROL, GENERAL)).startswith(
        "Done: this channel's persona is removed"
    )
