"""/persona on Discord, through the real bot process and the fake Discord: set by a member with Manage Channels (or
Manage Server for the whole server), with `text:` or in the form `/persona set` opens without it, refused to anyone
else, shown with where it comes from, and in the system message of the next question asked in that channel."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from fakes.discord import FakeInteraction, FakeUser
from fakes.harness.discord_world import DiscordWorld
from fakes.harness.processes import REDIS_URL

MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5


@pytest.fixture
async def world() -> AsyncIterator[DiscordWorld]:
    async with DiscordWorld.open() as world:
        yield world


async def run(world: DiscordWorld, channel: dict[str, Any], user: FakeUser, options: dict[str, Any]) -> str:
    interaction: FakeInteraction = await world.fake.send_slash_command(channel["id"], user, "persona", options)
    await world.fake.wait_for(lambda: interaction.callback_type is not None, 10)
    assert interaction.ephemeral
    return str((interaction.response_data or {}).get("content", ""))


def said(interaction: FakeInteraction) -> str:
    assert interaction.ephemeral
    return str((interaction.response_data or {}).get("content", ""))


async def open_form(world: DiscordWorld, channel: dict[str, Any], user: FakeUser, **options: str) -> FakeInteraction:
    """`/persona set` without `text`: the form, or (to someone who may not) a refusal."""
    interaction = await world.fake.send_slash_command(channel["id"], user, "persona", {"set": options})
    await world.fake.wait_for(lambda: interaction.callback_type is not None, 10)
    return interaction


async def submit(world: DiscordWorld, form: FakeInteraction, text: str) -> str:
    [box] = form.text_inputs
    submitted = await world.fake.submit_modal(form, {box["custom_id"]: text})
    await world.fake.wait_for(lambda: submitted.callback_type is not None, 10)
    return said(submitted)


def long_persona(chars: int) -> str:
    rules = (f"Rule {n}: answer questions about printers, toner and paper jams politely." for n in range(1, 200))
    return " ".join(rules)[:chars].strip()


def system_message(world: DiscordWorld, marker: str) -> str:
    [request] = world.model_requests(marker)
    return str(request.body["messages"][0]["content"])


async def test_a_persona_set_by_a_channel_manager_answers_the_next_question_and_others_are_refused(
    world: DiscordWorld,
) -> None:
    helpdesk, games = world.add_channel("helpdesk"), world.add_channel("games")
    managers = world.fake.add_role(world.guild, "managers", permissions=MANAGE_CHANNELS)
    owners = world.fake.add_role(world.guild, "owners", permissions=MANAGE_GUILD | MANAGE_CHANNELS)
    alice, bob, carol = (
        world.add_user("alice", roles=[managers]),
        world.add_user("bob"),
        world.add_user("carol", roles=[owners]),
    )
    await world.start_bot(SYSTEM_PROMPT="You are the default bot.")

    refused = await run(world, helpdesk, bob, {"set": {"text": "You are a pirate."}})
    assert refused.startswith("Only members with Manage Channels")
    assert "Manage Server" in await run(world, helpdesk, alice, {"set": {"text": "x", "scope": "server"}})

    done = await run(world, helpdesk, alice, {"set": {"text": "You are the helpdesk of {server}, talking to {user}."}})
    assert done.startswith("Done: the persona of this channel is set.")
    shown = await run(world, helpdesk, bob, {"show": {}})
    assert shown.startswith("The persona here comes from this channel:")

    thread = await world.wait_thread(await world.mention(helpdesk, bob, "hd-1 my printer"))
    await world.wait_model_request("hd-1")
    assert system_message(world, "hd-1") == "You are the helpdesk of Test Guild, talking to bob."
    await world.say(thread["id"], bob, "hd-2 still broken")  # a thread takes its channel's
    await world.wait_model_request("hd-2")
    assert system_message(world, "hd-2").startswith("You are the helpdesk")

    await run(world, games, carol, {"set": {"text": "You are a game master.", "scope": "server"}})
    await world.wait_thread(await world.mention(games, bob, "gm-1 roll"))
    await world.wait_model_request("gm-1")
    assert system_message(world, "gm-1") == "You are a game master."  # the server's, in a channel without one

    assert "removed" in await run(world, helpdesk, alice, {"clear": {}})
    await world.wait_thread(await world.mention(helpdesk, bob, "hd-3 again"))
    await world.wait_model_request("hd-3")
    assert system_message(world, "hd-3") == "You are a game master."


async def test_leaving_a_server_deletes_its_settings_and_conversations_and_an_outage_does_not(
    world: DiscordWorld,
) -> None:
    channel = world.add_channel("helpdesk")
    owners = world.fake.add_role(world.guild, "owners", permissions=MANAGE_GUILD | MANAGE_CHANNELS)
    alice = world.add_user("alice", roles=[owners])
    await world.start_bot()
    await run(world, channel, alice, {"set": {"text": "The channel's persona."}})
    await run(world, channel, alice, {"set": {"text": "The server's persona.", "scope": "server"}})
    thread = await world.wait_thread(await world.mention(channel, alice, "gone-1 a question in the server"))
    await world.wait_bot_text(thread, bool, timeout=20)
    dm = world.fake.dm_channel_for(alice)
    await world.say(dm, alice, "kept-1 a question in a DM")
    await world.wait_bot_text(dm, bool, timeout=20)
    histories = [
        f"{world.key_prefix}chat:{{discord:{kind}}}:history" for kind in (f"conv:{thread['id']}", f"dm:{dm['id']}")
    ]
    redis = aioredis.from_url(REDIS_URL)
    try:

        async def kept() -> set[str]:
            return {(await redis.get(key)).decode() async for key in redis.scan_iter(f"{world.key_prefix}persona:*")}

        assert await kept() == {"The channel's persona.", "The server's persona."}
        assert [await redis.exists(key) for key in histories] == [1, 1]
        await world.fake.guild_outage(world.guild)
        # A DM after the outage, answered: the outage reached the bot before it (one gateway, in order).
        after_outage = await world.say(dm, alice, "kept-2 a question after the outage")
        await world.wait_bot_text(dm, bool, after=after_outage["id"], timeout=20)
        await world.settle(1.0)
        assert len(await kept()) == 2  # an outage is no goodbye
        await world.fake.remove_bot_from_guild(world.guild)
        await world.fake.wait_for(lambda: "guild_data_deleted" in world.stderr, 10)
        assert await kept() == set()
        assert [await redis.exists(key) for key in histories] == [0, 1]  # the server's conversation, not the DM
    finally:
        await redis.aclose()


async def test_a_channels_model_for_new_threads_is_set_by_channel_managers_and_threads_keep_theirs(
    world: DiscordWorld,
) -> None:
    channel = world.add_channel("vision")
    managers = world.fake.add_role(world.guild, "managers", permissions=MANAGE_CHANNELS)
    alice, bob = world.add_user("alice", roles=[managers]), world.add_user("bob")
    await world.start_bot(MODELS="other-model")
    earlier = await world.wait_thread(await world.mention(channel, bob, "m-1 before"))
    await world.wait_model_request("m-1")

    async def model(user: FakeUser, name: str) -> str:
        interaction = await world.fake.send_slash_command(channel["id"], user, "model", {"name": name})
        await world.fake.wait_for(lambda: interaction.callback_type is not None, 10)
        return str((interaction.response_data or {}).get("content", ""))

    assert (await model(bob, "other-model")).startswith("Only members with Manage Channels")
    assert await model(alice, "other-model") == (
        "New conversations in this channel will answer with **other-model**. Existing ones keep theirs."
    )
    await world.wait_thread(await world.mention(channel, bob, "m-2 a new thread"))
    [request] = await world.wait_model_request("m-2")
    assert request.body["model"] == "other-model"
    await world.say(earlier["id"], bob, "m-3 the earlier thread goes on")
    [request] = await world.wait_model_request("m-3")
    assert request.body["model"] == "mistralai/Mistral-7B-Instruct-v0.3"  # it keeps the model it started with


async def test_a_long_persona_written_in_the_form_answers_the_next_question_and_others_get_no_form(
    world: DiscordWorld,
) -> None:
    helpdesk = world.add_channel("helpdesk")
    managers = world.fake.add_role(world.guild, "managers", permissions=MANAGE_CHANNELS)
    alice, bob = world.add_user("alice", roles=[managers]), world.add_user("bob")
    await world.start_bot(SYSTEM_PROMPT="You are the default bot.")

    refused = await open_form(world, helpdesk, bob)
    assert refused.modal is None
    assert said(refused).startswith("Only members with Manage Channels")

    form = await open_form(world, helpdesk, alice)
    assert form.modal is not None and form.modal["title"] == "The persona of this channel"
    [box] = form.text_inputs
    assert (box["style"], box["max_length"], box.get("value")) == (2, 4000, None)  # a paragraph, empty so far
    persona = long_persona(3000)
    assert len(persona) > 2900
    assert (await submit(world, form, persona)).startswith("Done: the persona of this channel is set.")

    await world.wait_thread(await world.mention(helpdesk, bob, "lp-1 my printer"))
    await world.wait_model_request("lp-1")
    assert system_message(world, "lp-1") == persona

    again = await open_form(world, helpdesk, alice)  # opened again, the form holds it, to be edited
    assert [box["value"] for box in again.text_inputs] == [persona]
    world.guild.members[alice.id].role_ids.remove(managers)  # she loses the role while the form is open
    assert (await submit(world, again, "You are a pirate.")).startswith("Only members with Manage Channels")
    assert "Rule 1: answer" in await run(world, helpdesk, bob, {"show": {}})


async def test_the_servers_persona_through_the_form_needs_manage_server(world: DiscordWorld) -> None:
    helpdesk, games = world.add_channel("helpdesk"), world.add_channel("games")
    managers = world.fake.add_role(world.guild, "managers", permissions=MANAGE_CHANNELS)
    owners = world.fake.add_role(world.guild, "owners", permissions=MANAGE_GUILD)
    alice, carol = world.add_user("alice", roles=[managers]), world.add_user("carol", roles=[owners])
    await world.start_bot(SYSTEM_PROMPT="You are the default bot.")

    refused = await open_form(world, helpdesk, alice, scope="server")
    assert refused.modal is None and said(refused).startswith("Only members with Manage Server")

    form = await open_form(world, helpdesk, carol, scope="server")
    assert form.modal is not None and form.modal["title"] == "The persona of this server"
    done = await submit(world, form, "You are the game master of {server}.")
    assert done.startswith("Done: the persona of this server is set.")
    await world.wait_thread(await world.mention(games, alice, "sv-1 roll"))
    await world.wait_model_request("sv-1")
    assert system_message(world, "sv-1") == "You are the game master of Test Guild."  # every channel's
    assert [box["value"] for box in (await open_form(world, games, carol, scope="server")).text_inputs] == [
        "You are the game master of {server}."
    ]


async def test_a_persona_from_the_form_too_long_for_the_model_is_refused_with_the_reason(world: DiscordWorld) -> None:
    helpdesk = world.add_channel("helpdesk")
    managers = world.fake.add_role(world.guild, "managers", permissions=MANAGE_CHANNELS)
    alice = world.add_user("alice", roles=[managers])
    await world.start_bot(CONTEXT_TOKENS="2048", MAX_NEW_TOKENS="512")

    form = await open_form(world, helpdesk, alice)
    refused = await submit(world, form, long_persona(4000))
    assert re.fullmatch(
        r"That persona is [\d,]+ tokens long; the model reads [\d,]+ at most for it, .* Shorten it\.", refused
    )
    assert (await run(world, helpdesk, alice, {"show": {}})).startswith("The persona here comes from the bot's default")
