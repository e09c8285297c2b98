"""What people pick a bot for, on Discord: their choice of model (/model), their images, and the
message they point at (a reply that mentions the bot, and "Ask <bot>" in a message's Apps menu).
The real bot process against the loopback fake Discord and model server."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from PIL import Image

from fakes.discord import FakeUser
from fakes.harness.discord_world import GLOBAL_COMMANDS, DiscordWorld, log_shown
from fakes.model_server import Script

pytestmark = pytest.mark.asyncio(loop_scope="module")

TEXT_MODEL = "mistralai/Mistral-7B-Instruct-v0.3"
VISION_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
EPHEMERAL = 1 << 6


@dataclass
class Shared:
    world: DiscordWorld
    channel: dict[str, Any]
    alice: FakeUser  # may switch models (has the role)
    bob: FakeUser  # may not


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared() -> AsyncIterator[Shared]:
    async with DiscordWorld.open() as world:
        channel = world.add_channel("general")
        switchers = world.fake.add_role(world.guild, "model-switchers")
        alice = world.add_user("alice", roles=[switchers])
        bob = world.add_user("bob")
        await world.start_bot(MODELS=VISION_MODEL, VISION_MODELS=VISION_MODEL, DISCORD_MODEL_ROLE_IDS=str(switchers))
        yield Shared(world, channel, alice, bob)
        if world.bot is not None:
            await world.stop_bot(check=True)


@pytest.fixture
def world(shared: Shared) -> Iterator[DiscordWorld]:
    with log_shown(shared.world) as world:
        yield world


def png(width: int, height: int, colour: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def image_parts(body: dict[str, Any]) -> list[Image.Image]:
    """The images of a model request's last message, decoded from their data URLs."""
    content = body["messages"][-1]["content"]
    urls = (
        [part["image_url"]["url"] for part in content if part["type"] == "image_url"]
        if isinstance(content, list)
        else []
    )
    return [Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) for url in urls]


def text_of(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(p["text"] for p in content if p["type"] == "text")


async def callback_text(world: DiscordWorld, interaction: Any) -> dict[str, Any]:
    await world.fake.wait_for(lambda: interaction.acknowledged, 5)
    return dict(interaction.callbacks[0]["data"])


async def test_model_switches_a_thread_for_every_later_turn_and_keeps_its_history(
    shared: Shared, world: DiscordWorld
) -> None:
    world.answer("m1-first", Script(text="First, from Mistral.", rate=50))
    world.answer("m1-second", Script(text="Second, from Qwen.", rate=50))
    message = await world.mention(shared.channel, shared.alice, "m1-first Hello")
    thread = await world.wait_thread(message)
    # With a choice of models, the thread's first reply names its model in small text.
    await world.wait_bot_text(thread["id"], "First, from Mistral.\n\n-# Mistral-7B-Instruct-v0.3")

    shown = await world.fake.send_slash_command(thread["id"], shared.alice, "model")
    listing = await callback_text(world, shown)
    assert listing["flags"] & EPHEMERAL
    assert "This conversation answers with **Mistral-7B-Instruct-v0.3**." in listing["content"]
    assert "• Qwen2.5-VL-7B-Instruct (sees images)" in listing["content"]

    choices = await world.fake.send_autocomplete(thread["id"], shared.alice, "model", {"name": "qw"})
    assert choices == [{"name": "Qwen2.5-VL-7B-Instruct", "value": VISION_MODEL}]

    switch = await world.fake.send_slash_command(thread["id"], shared.alice, "model", {"name": VISION_MODEL})
    said = await callback_text(world, switch)
    assert not said.get("flags", 0) & EPHEMERAL  # everyone in the thread sees the switch
    assert said["content"] == (
        "This conversation now answers with **Qwen2.5-VL-7B-Instruct**. The earlier messages are kept."
    )

    followup = await world.say(thread["id"], shared.alice, "m1-second And now?")
    await world.wait_bot_text(thread["id"], "Second, from Qwen.", after=followup["id"])
    [request] = world.model_requests("m1-second")
    assert request.body["model"] == VISION_MODEL
    assert [m["content"] for m in request.body["messages"][1:]] == [
        "m1-first Hello",
        "First, from Mistral.",
        "m1-second And now?",
    ]


async def test_someone_without_the_role_is_told_why_and_nothing_switches(shared: Shared, world: DiscordWorld) -> None:
    world.answer("m2-ask", Script(text="Still Mistral.", rate=50))
    message = await world.mention(shared.channel, shared.bob, "m2-ask Hi")
    thread = await world.wait_thread(message)
    await world.wait_bot_text(thread["id"], "Still Mistral.\n\n-# Mistral-7B-Instruct-v0.3")
    switch = await world.fake.send_slash_command(thread["id"], shared.bob, "model", {"name": VISION_MODEL})
    refused = await callback_text(world, switch)
    assert refused["flags"] & EPHEMERAL
    assert refused["content"] == "Only some roles on this server may switch models, and you don't have one of them."
    again = await world.say(thread["id"], shared.bob, "m2-ask Again")
    await world.wait_bot_text(thread["id"], "Still Mistral.", after=again["id"])
    assert {r.body["model"] for r in world.model_requests("m2-ask")} == {TEXT_MODEL}


async def test_an_unknown_model_name_gets_the_list_and_dms_cant_switch_under_roles(
    shared: Shared, world: DiscordWorld
) -> None:
    dm = world.fake.dm_channel_for(shared.alice)
    unknown = await world.fake.send_slash_command(dm["id"], shared.alice, "model", {"name": "gpt-17"})
    said = await callback_text(world, unknown)
    assert said["content"].startswith("There is no model called 'gpt-17' here.\nThe models here:")
    switch = await world.fake.send_slash_command(dm["id"], shared.alice, "model", {"name": VISION_MODEL})
    said = await callback_text(world, switch)
    assert said["content"] == "Only members with certain server roles may switch models, so it can't be done in a DM."


async def test_an_image_reaches_the_vision_model_scaled_down_and_a_text_model_says_it_did_not_look(
    shared: Shared, world: DiscordWorld
) -> None:
    world.answer("m3-text", Script(text="I can't see it.", rate=50))
    message = await world.fake.send_user_message(
        shared.channel["id"],
        shared.alice,
        "m3-text What is this?",
        mentions_bot=True,
        files=[("photo.png", "image/png", png(3000, 2000))],
    )
    thread = await world.wait_thread(message)
    await world.wait_bot_text(
        thread["id"],
        "I can't see it.\n\nℹ️ Mistral-7B-Instruct-v0.3 can't see images, so I didn't look at the image. "
        "/model Qwen2.5-VL-7B-Instruct can.\n-# Mistral-7B-Instruct-v0.3",
    )
    [request] = world.model_requests("m3-text")
    assert request.body["messages"][-1]["content"] == "m3-text What is this?"

    switch = await world.fake.send_slash_command(
        thread["id"], shared.alice, "model", {"name": "Qwen2.5-VL-7B-Instruct"}
    )
    await callback_text(world, switch)
    world.answer("m3-vision", Script(text="A blue rectangle.", rate=50))
    followup = await world.say(thread["id"], shared.alice, "m3-vision Now?")
    await world.wait_bot_text(thread["id"], "A blue rectangle.", after=followup["id"])
    [request] = world.model_requests("m3-vision")
    earlier = request.body["messages"][1]["content"]
    [image] = [
        Image.open(io.BytesIO(base64.b64decode(p["image_url"]["url"].split(",", 1)[1])))
        for p in earlier
        if p["type"] == "image_url"
    ]
    assert image.size == (1568, 1045)  # the image of the first question, kept and scaled down


async def test_bad_images_get_a_notice_each_and_the_question_is_still_answered(
    shared: Shared, world: DiscordWorld
) -> None:
    world.answer("m4-bad", Script(text="Answered anyway.", rate=50))
    pointer = await world.fake.send_user_message(shared.channel["id"], shared.alice, "m4-bad setup", mentions_bot=True)
    thread = await world.wait_thread(pointer)
    await world.wait_bot_text(thread["id"], lambda text: text.startswith("Answered anyway."))
    switch = await world.fake.send_slash_command(thread["id"], shared.alice, "model", {"name": VISION_MODEL})
    await callback_text(world, switch)
    bomb = io.BytesIO()
    Image.new("1", (30000, 30000)).save(bomb, "PNG")
    message = await world.fake.send_user_message(
        thread["id"],
        shared.alice,
        "m4-bad Look",
        files=[
            ("broken.png", "image/png", b"\x89PNG\r\n\x1a\nnot really"),
            ("notes.jpg", "image/jpeg", b"just some text, not a picture"),
            ("bomb.png", "image/png", bomb.getvalue()),
            ("fine.png", "image/png", png(200, 100)),
        ],
    )
    [final] = await world.wait_bot_text(
        thread["id"], lambda text: text.startswith("Answered anyway."), after=message["id"]
    )
    assert "ℹ️ broken.png could not be read as an image." in final["content"]
    assert "ℹ️ notes.jpg could not be read as an image." in final["content"]
    assert "ℹ️ bomb.png is too large to look at" in final["content"]
    request = world.model_requests("m4-bad")[-1]
    assert [image.size for image in image_parts(request.body)] == [(200, 100)]


async def test_a_mention_replying_to_someone_elses_message_asks_about_that_message(
    shared: Shared, world: DiscordWorld
) -> None:
    pointed = await world.fake.send_user_message(
        shared.channel["id"],
        shared.bob,
        "The deploy failed with exit code 137",
        files=[("graph.png", "image/png", png(400, 300))],
    )
    world.answer("m5-why", Script(text="137 means the process was killed (out of memory).", rate=50))
    message = await world.fake.send_user_message(
        shared.channel["id"],
        shared.alice,
        "m5-why what does this mean?",
        mentions_bot=True,
        reference_message_id=pointed["id"],
    )
    thread = await world.wait_thread(message)
    await world.wait_bot_text(thread["id"], lambda text: text.startswith("137 means the process was killed"))
    [request] = world.model_requests("m5-why")
    assert text_of(request.body) == "bob wrote:\n> The deploy failed with exit code 137\n\nm5-why what does this mean?"


async def test_ask_from_a_messages_apps_menu_answers_about_it_in_a_thread_from_it(
    shared: Shared, world: DiscordWorld
) -> None:
    syncs = [r for r in world.fake.requests if r.route == GLOBAL_COMMANDS]
    registered = {c["name"]: c for c in syncs[0].json}
    assert sorted(registered) == [
        "Add to knowledge",
        "Ask mistralbot",
        "Mark as answer",
        "ask",
        "budget",
        "forget-me",
        "knowledge",
        "model",
        "persona",
        "reset",
        "respond",
        "solved",
        "tools",
        "usage",
    ]
    assert registered["Ask mistralbot"]["type"] == 3

    pointed = await world.fake.send_user_message(shared.channel["id"], shared.bob, "m6-menu Is Python compiled?")
    world.answer("m6-menu", Script(text="It compiles to bytecode, then interprets it.", rate=50))
    interaction = await world.fake.send_message_command(
        shared.channel["id"], shared.alice, "Ask mistralbot", pointed["id"]
    )
    await world.fake.wait_for(lambda: interaction.acknowledged, 5)
    thread = await world.wait_thread(pointed)
    await world.wait_bot_text(thread["id"], lambda text: text.startswith("It compiles to bytecode"))
    [request] = world.model_requests("m6-menu")
    assert text_of(request.body) == "bob wrote:\n> m6-menu Is Python compiled?\n\nAnswer or explain this message."
    # The person who asked is told where, privately.
    told = await world.fake.wait_for(lambda: world.fake.original_response(interaction), 5)
    assert thread["id"] in told["content"] and told["flags"] & EPHEMERAL

    # A follow-up in that thread continues the conversation.
    world.answer("m6-more", Script(text="CPython, yes.", rate=50))
    followup = await world.say(thread["id"], shared.alice, "m6-more Even CPython?")
    await world.wait_bot_text(thread["id"], "CPython, yes.", after=followup["id"])
