"""The commands installed to a person's account as well as to servers: /ask and "Ask <bot>" work
in a server without the bot, a group DM and a DM between people, answered in the interaction's
response (the bot can neither read nor post there). The real bot process against the loopback
fake Discord and model server."""

from __future__ import annotations

import asyncio
import base64
import sys
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from fakes.discord import FakeInteraction, FakeUser, IntegrationType
from fakes.harness.discord_world import GLOBAL_COMMANDS, ORIGINAL_EDIT, ROOT, DiscordWorld, clean_env, log_shown
from fakes.harness.processes import BOT_START_SECONDS
from fakes.model_server import Script

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(60)]

EPHEMERAL = 1 << 6
DEFERRED = 5
MENU = "Ask mistralbot"


@dataclass
class Shared:
    world: DiscordWorld
    alice: FakeUser  # added the app to her account
    bob: FakeUser
    outside: dict[str, Any]  # a channel of a server without the bot
    outside_thread: dict[str, Any]
    group: dict[str, Any]  # alice and bob's group DM
    pair: dict[str, Any]  # alice and bob's DM


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared() -> AsyncIterator[Shared]:
    async with DiscordWorld.open() as world:
        fake = world.fake
        fake.installation_contexts.add(IntegrationType.USER_INSTALL)  # the portal's "User Install"
        world.add_channel("general")
        alice, bob = world.add_user("alice"), world.add_user("bob")
        elsewhere = fake.add_guild("Elsewhere", with_bot=False)
        outside = fake.add_text_channel(elsewhere, "outside")
        outside_thread = fake.add_thread(outside, "chat", owner=bob)
        group = fake.add_group_dm(alice, bob, name="friends")
        pair = fake.add_dm_between(alice, bob)
        fake.install_for_user(alice)
        await world.start_bot()
        yield Shared(world, alice, bob, outside, outside_thread, group, pair)
        if world.bot is not None:
            await world.stop_bot(check=True)


@pytest.fixture
def world(shared: Shared) -> Iterator[DiscordWorld]:
    with log_shown(shared.world) as world:
        yield world


async def answered(world: DiscordWorld, interaction: FakeInteraction, text: str) -> dict[str, Any]:
    """The interaction's original response, once it ends with `text` (the whole answer)."""

    def done() -> dict[str, Any] | None:
        message = world.fake.original_response(interaction)
        return message if message is not None and message["content"].endswith(text) else None

    try:
        return await world.fake.wait_for(done, 10)
    except TimeoutError:
        shown = world.fake.original_response(interaction)
        raise AssertionError(f"the response never ended with {text!r}: {shown}") from None


def bot_calls_to(world: DiscordWorld, channel: dict[str, Any]) -> list[str]:
    """The bot's own REST requests about `channel` (interaction webhooks name no channel)."""
    return [f"{r.route} → {r.status}" for r in world.fake.requests if f"/channels/{channel['id']}" in r.path]


def question_of(world: DiscordWorld, marker: str) -> list[tuple[str, Any]]:
    [request] = world.model_requests(marker)
    return [(m["role"], m["content"]) for m in request.body["messages"] if m["role"] != "system"]


async def test_the_commands_are_registered_for_both_installs_and_every_context(world: DiscordWorld) -> None:
    [sync] = [r for r in world.fake.requests if r.route == GLOBAL_COMMANDS]
    assert sync.status == 200
    everywhere = [MENU, "ask", "forget-me", "model", "persona", "reset", "tools", "usage"]
    # A server's knowledge, channels and budgets, the bot added.
    servers_only = ["Add to knowledge", "Mark as answer", "budget", "knowledge", "respond", "solved"]
    assert sorted(c["name"] for c in sync.json) == sorted(everywhere + servers_only)
    for command in sync.json:
        wanted = ([0], [0]) if command["name"] in servers_only else ([0, 1], [0, 1, 2])
        assert (command["integration_types"], command["contexts"]) == wanted, command["name"]
    assert "discord_user_install_off" not in world.stderr


async def test_ask_in_a_server_without_the_bot_is_answered_in_the_interaction_response(
    shared: Shared, world: DiscordWorld
) -> None:
    world.answer("u1-ask", Script(text="Answered from outside.", rate=50))
    interaction = await world.fake.send_slash_command(
        shared.outside["id"], shared.alice, "ask", {"prompt": "u1-ask Hello?"}
    )
    assert interaction.payload["authorizing_integration_owners"] == {"1": str(shared.alice.id)}
    assert interaction.payload["context"] == 0
    response = await answered(world, interaction, "Answered from outside.")
    assert interaction.callback_type == DEFERRED and not response["flags"] & EPHEMERAL
    assert question_of(world, "u1-ask") == [("user", "u1-ask Hello?")]
    edits = [r for r in world.fake.requests_for(ORIGINAL_EDIT) if interaction.token in r.path]
    assert edits and all(r.status == 200 for r in edits)  # through the interaction's webhook
    assert bot_calls_to(world, shared.outside) == []  # never the channel itself


async def test_asks_in_a_thread_of_a_server_without_the_bot_continue_one_conversation(
    shared: Shared, world: DiscordWorld
) -> None:
    world.answer("u2-first", Script(text="I will remember 7.", rate=50))
    world.answer("u2-second", Script(text="It was 7.", rate=50))
    thread = shared.outside_thread
    first = await world.fake.send_slash_command(thread["id"], shared.alice, "ask", {"prompt": "u2-first Remember 7."})
    await answered(world, first, "I will remember 7.")
    second = await world.fake.send_slash_command(thread["id"], shared.alice, "ask", {"prompt": "u2-second Which?"})
    await answered(world, second, "It was 7.")
    assert question_of(world, "u2-second") == [
        ("user", "u2-first Remember 7."),
        ("assistant", "I will remember 7."),
        ("user", "u2-second Which?"),
    ]
    assert bot_calls_to(world, thread) == []


async def test_ask_in_a_group_dm_is_answered_and_the_next_ask_there_continues_it(
    shared: Shared, world: DiscordWorld
) -> None:
    world.answer("u3-first", Script(text="Noted: blue.", rate=50))
    world.answer("u3-second", Script(text="You said blue.", rate=50))
    first = await world.fake.send_slash_command(
        shared.group["id"], shared.alice, "ask", {"prompt": "u3-first My colour is blue."}
    )
    assert first.payload["context"] == 2 and first.payload["authorizing_integration_owners"] == {
        "1": str(shared.alice.id)
    }
    response = await answered(world, first, "Noted: blue.")
    assert not response["flags"] & EPHEMERAL
    second = await world.fake.send_slash_command(
        shared.group["id"], shared.alice, "ask", {"prompt": "u3-second Which colour?"}
    )
    await answered(world, second, "You said blue.")
    assert question_of(world, "u3-second") == [
        ("user", "u3-first My colour is blue."),
        ("assistant", "Noted: blue."),
        ("user", "u3-second Which colour?"),
    ]
    assert bot_calls_to(world, shared.group) == []

    reset = await world.fake.send_slash_command(shared.group["id"], shared.alice, "reset")
    await world.fake.wait_for(lambda: reset.acknowledged, 5)
    assert reset.callbacks[0]["data"]["content"].startswith("Done: I've forgotten this conversation.")


@pytest.mark.parametrize("where", ["outside", "pair"], ids=["server-without-the-bot", "dm-between-people"])
async def test_the_message_command_answers_about_the_message_in_the_interaction_response(
    shared: Shared, world: DiscordWorld, where: str
) -> None:
    channel = shared.outside if where == "outside" else shared.pair
    marker = f"u4-{where}"
    pointed = await world.fake.send_user_message(channel["id"], shared.bob, f"{marker} Is Rust garbage collected?")
    world.answer(marker, Script(text="No: it frees memory through ownership.", rate=50))
    interaction = await world.fake.send_message_command(channel["id"], shared.alice, MENU, pointed["id"])
    assert interaction.payload["authorizing_integration_owners"] == {"1": str(shared.alice.id)}
    response = await answered(world, interaction, "No: it frees memory through ownership.")
    assert interaction.callback_type == DEFERRED and not response["flags"] & EPHEMERAL
    assert response["interaction_metadata"]["target_message_id"] == pointed["id"]
    assert question_of(world, marker) == [
        ("user", f"bob wrote:\n> {marker} Is Rust garbage collected?\n\nAnswer or explain this message.")
    ]
    assert world.fake.thread_for_message(pointed["id"]) is None
    assert bot_calls_to(world, channel) == []


async def test_the_invite_url_prints_the_server_and_the_user_install_links() -> None:
    bot_id = "123456789012345678"
    token = base64.b64encode(bot_id.encode()).decode().rstrip("=") + ".GxYzAb.c2VjcmV0LXBhcnQtb2YtdGhlLXRva2Vu"
    env = clean_env(DISCORD_TOKEN=token, REDIS_URL="redis://127.0.0.1:9/0")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "discord",
        "--invite-url",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), BOT_START_SECONDS)
    assert process.returncode == 0, err.decode()
    lines = [line for line in out.decode().splitlines() if line.strip()]
    assert [line.split(": ", 1)[0] for line in lines] == ["Add to a server", "Add to your account"]
    server, user = (urllib.parse.urlsplit(line.split(": ", 1)[1]) for line in lines)
    for url in (server, user):
        assert (url.scheme, url.netloc, url.path) == ("https", "discord.com", "/oauth2/authorize")
    server_query, user_query = urllib.parse.parse_qs(server.query), urllib.parse.parse_qs(user.query)
    assert server_query["client_id"] == user_query["client_id"] == [bot_id]
    assert server_query["integration_type"] == ["0"]
    assert server_query["scope"][0].split() == ["bot", "applications.commands"]
    permissions = int(server_query["permissions"][0])
    for bit in (10, 11, 16, 35, 38):  # view, send, read history, create public threads, send in threads
        assert permissions & (1 << bit), bit
    assert not permissions & (1 << 3)  # never Administrator
    assert user_query["integration_type"] == ["1"]
    assert user_query["scope"][0].split() == ["applications.commands"]  # no bot user on an account
    assert "permissions" not in user_query


async def test_without_user_installs_in_the_portal_the_commands_stay_with_servers() -> None:
    async with DiscordWorld.open() as world:  # a new application: servers only
        alice = world.add_user("alice")
        elsewhere = world.fake.add_guild("Elsewhere", with_bot=False)
        outside = world.fake.add_text_channel(elsewhere, "outside")
        try:
            await world.start_bot()
            [sync] = [r for r in world.fake.requests if r.route == GLOBAL_COMMANDS]
            assert sync.status == 200  # not refused for an install type the application lacks
            shapes = {c["name"]: (tuple(c["integration_types"]), tuple(c["contexts"])) for c in sync.json}
            # Never in the bot's DM either.
            servers_only = {"knowledge", "Add to knowledge", "respond", "budget", "solved", "Mark as answer"}
            assert {shape for name, shape in shapes.items() if name not in servers_only} == {((0,), (0, 1))}
            assert {shapes[name] for name in servers_only} == {((0,), (0,))}
            assert "discord_user_install_off" in world.stderr and "User Install" in world.stderr
            with pytest.raises(ValueError, match="does not support user installs"):
                world.fake.install_for_user(alice)
            with pytest.raises(LookupError):
                await world.fake.send_slash_command(outside["id"], alice, "ask", {"prompt": "hi"})
            dm = world.fake.dm_channel_for(alice)  # the bot's DM still works
            world.answer("u5-dm", Script(text="Hello in the DM.", rate=50))
            interaction = await world.fake.send_slash_command(dm["id"], alice, "ask", {"prompt": "u5-dm Hi"})
            await answered(world, interaction, "Hello in the DM.")
            await world.stop_bot(check=True)
        except BaseException:
            print(f"--- bot stderr ---\n{world.stderr}")
            raise
