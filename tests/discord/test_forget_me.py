"""/forget-me on Discord, through the real bot process and the fake Discord: the reply is ephemeral and says what
was deleted; the person's own thread and DM start afresh, the shared thread goes on without their part, and someone
else's conversations are untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from fakes.discord import FakeInteraction, FakeUser
from fakes.harness.discord_world import DiscordWorld

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def world() -> AsyncIterator[DiscordWorld]:
    async with DiscordWorld.open() as world:
        yield world


def asked(world: DiscordWorld, marker: str) -> list[str]:
    """The messages (after the system prompt) of the model request for `marker`'s question."""
    [request] = world.model_requests(marker)
    return [str(message["content"]) for message in request.body["messages"][1:]]


async def say_and_wait(world: DiscordWorld, channel: dict[str, Any], user: FakeUser, text: str) -> None:
    message = await world.say(channel, user, text)
    await world.wait_bot_text(channel, bool, after=message["id"], timeout=20)


async def forget(world: DiscordWorld, channel: dict[str, Any], user: FakeUser) -> FakeInteraction:
    interaction = await world.fake.send_slash_command(channel["id"], user, "forget-me")
    await world.fake.wait_for(lambda: (world.fake.original_response(interaction) or {}).get("content"), 20)
    return interaction


async def test_forget_me_deletes_their_conversations_and_their_part_of_shared_threads_and_says_so_to_them_alone(
    world: DiscordWorld,
) -> None:
    channel = world.add_channel("general")
    alice, bob = world.add_user("alice"), world.add_user("bob")
    await world.start_bot(USER_TURNS_PER_MINUTE="20")

    own = await world.wait_thread(await world.mention(channel, alice, "a-1 my secret is 1234"))
    await world.wait_bot_text(own, bool, timeout=20)
    dm = world.fake.dm_channel_for(alice)
    await say_and_wait(world, dm, alice, "a-2 in my DM: my name is Alice")
    shared = await world.wait_thread(await world.mention(channel, bob, "b-1 bob opens this"))
    await world.wait_bot_text(shared, bool, timeout=20)
    await say_and_wait(world, shared, alice, "a-3 alice chimes in")
    await say_and_wait(world, shared, bob, "b-2 bob again")
    bobs_dm = world.fake.dm_channel_for(bob)
    await say_and_wait(world, bobs_dm, bob, "b-3 bob's DM")

    interaction = await forget(world, channel, alice)
    assert interaction.ephemeral  # deferred as ephemeral: the answer is alice's alone
    assert world.fake.original_response(interaction)["content"] == (
        "Deleted: 2 conversations of yours (1 DM), your messages in 1 shared thread, your question counters, and your "
        "usage records."
    )

    await say_and_wait(world, own, alice, "a-4 what is my secret?")
    assert asked(world, "a-4") == ["a-4 what is my secret?"]  # the thread starts afresh
    await say_and_wait(world, dm, alice, "a-5 what is my name?")
    assert asked(world, "a-5") == ["a-5 what is my name?"]
    await say_and_wait(world, shared, bob, "b-4 what did alice say?")
    shared_prompt = asked(world, "b-4")
    assert len(shared_prompt) == 5 and shared_prompt[0].endswith("b-1 bob opens this")
    assert shared_prompt[2].endswith("b-2 bob again") and not any("a-3" in text for text in shared_prompt)
    await say_and_wait(world, bobs_dm, bob, "b-5 still there?")
    assert asked(world, "b-5")[0] == "b-3 bob's DM"

    again = await forget(world, dm, alice)  # in a DM too; their new questions are theirs to delete again
    assert again.ephemeral
    assert world.fake.original_response(again)["content"] == (
        "Deleted: 2 conversations of yours (1 DM), your question counters, and your usage records."
    )
