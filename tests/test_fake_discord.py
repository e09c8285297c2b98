"""Self-tests: the real discord.py Client (same event loop) against tests.fakes.discord_server."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands

from tests.fakes.discord_server import FakeDiscord, FakeGuild, FakeUser, Limits, RateLimit

pytestmark = pytest.mark.timeout(30)

MESSAGE_ROUTE = "POST /channels/{channel_id}/messages"
EDIT_ROUTE = "PATCH /channels/{channel_id}/messages/{message_id}"


@dataclass
class World:
    fake: FakeDiscord
    guild: FakeGuild
    general: dict[str, Any]
    locked: dict[str, Any]  # the bot may not create threads here
    alice: FakeUser


def populate(fake: FakeDiscord) -> World:
    guild = fake.add_guild("Test Guild")
    general = fake.add_text_channel(guild, "general")
    locked = fake.add_text_channel(guild, "no-threads", allow_threads=False)
    alice = fake.add_user("alice")
    return World(fake, guild, general, locked, alice)


@contextlib.asynccontextmanager
async def running_world(**fake_options: Any) -> AsyncIterator[World]:
    async with FakeDiscord(**fake_options) as fake:
        yield populate(fake)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with running_world(limits=Limits.disabled()) as w:
        yield w


@contextlib.contextmanager
def pointed_at(fake: FakeDiscord) -> Iterator[None]:
    """Route.BASE is read when each Route is built; DEFAULT_GATEWAY when a plain Client connects."""
    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_base_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


def content_intents() -> discord.Intents:
    intents = discord.Intents.default()
    intents.message_content = True
    return intents


@contextlib.asynccontextmanager
async def connected_client(
    fake: FakeDiscord, *, intents: discord.Intents | None = None, setup: Any = None
) -> AsyncIterator[discord.Client]:
    """A logged-in, READY discord.Client; ``setup(client)`` runs before it connects."""
    client = discord.Client(
        intents=intents or content_intents(),
        guild_ready_timeout=0.05,
        allowed_mentions=discord.AllowedMentions.none(),
    )
    if setup is not None:
        setup(client)
    with pointed_at(fake):
        task = asyncio.create_task(client.start(fake.token))
        try:
            await asyncio.wait_for(client.wait_until_ready(), 10)
            yield client
        finally:
            await client.close()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 5)


async def raw_request(fake: FakeDiscord, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bot {fake.token}", **kwargs.pop("headers", {})}
    async with aiohttp.ClientSession() as session:
        async with session.request(method, fake.api_base_url + path, headers=headers, **kwargs) as response:
            body = await response.json() if response.content_length else None
            return response.status, response.headers, body


# --------------------------------------------------------------------------------------------------
# Connection
# --------------------------------------------------------------------------------------------------


async def test_login_ready_and_guild_create(world: World) -> None:
    fake = world.fake
    async with connected_client(fake) as client:
        assert client.user is not None and client.user.id == fake.bot_user.id
        assert client.user.name == "mistralbot"
        assert client.application_id == fake.application_id
        guild = client.get_guild(world.guild.id)
        assert guild is not None and guild.me is not None
        assert {c.name for c in guild.text_channels} == {"general", "no-threads"}
        locked = guild.get_channel(int(world.locked["id"]))
        assert isinstance(locked, discord.TextChannel)
        assert not locked.permissions_for(guild.me).create_public_threads
        assert fake.identify_payload is not None
        assert fake.identify_payload["intents"] & discord.Intents(message_content=True).value
        connection = fake.gateway.connections[0]
        assert connection.query["compress"] == "zlib-stream" and connection.compressor is not None
    routes = [r.route for r in fake.requests]
    assert routes[:2] == ["GET /users/@me", "GET /oauth2/applications/@me"]


async def test_plain_text_gateway_frames_are_accepted() -> None:
    async with running_world(gateway_compression=False) as world:
        async with connected_client(world.fake) as client:
            assert client.get_guild(world.guild.id) is not None
            assert world.fake.gateway.connections[0].compressor is None


async def test_bad_token_is_a_login_failure(world: World) -> None:
    client = discord.Client(intents=discord.Intents.default())
    with pointed_at(world.fake):
        with pytest.raises(discord.LoginFailure):
            await client.login("wrong-token")
    await client.close()
    record = world.fake.requests[-1]
    assert record.status == 401 and record.response == {"message": "401: Unauthorized", "code": 0}


async def test_rest_headers_are_discord_like() -> None:
    async with running_world() as world:
        status, headers, body = await raw_request(world.fake, "GET", "/users/@me")
    assert status == 200 and body["username"] == "mistralbot"
    assert headers["Content-Type"] == "application/json"
    assert headers["Via"] == "1.1 google"
    for name in ("Limit", "Remaining", "Reset", "Reset-After", "Bucket"):
        assert f"X-RateLimit-{name}" in headers


# --------------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------------


async def test_user_message_with_mention_and_reply(world: World) -> None:
    fake, channel_id = world.fake, world.general["id"]
    async with connected_client(fake) as client:
        first = await fake.send_user_message(channel_id, world.alice, "hello bot")
        received = await client.wait_for("message", check=lambda m: m.id == int(first["id"]), timeout=5)
        assert received.content == "hello bot"
        assert received.author.id == world.alice.id and isinstance(received.author, discord.Member)
        assert client.user not in received.mentions

        reply = await fake.send_user_message(
            channel_id, world.alice, "and again", mentions_bot=True, reference_message_id=first["id"]
        )
        received = await client.wait_for("message", check=lambda m: m.id == int(reply["id"]), timeout=5)
        assert received.content == f"<@{fake.bot_user.id}> and again"
        assert client.user in received.mentions
        assert received.reference is not None and received.reference.message_id == int(first["id"])
        assert isinstance(received.reference.resolved, discord.Message)
        assert received.type is discord.MessageType.reply


async def test_content_is_blank_without_message_content_intent(world: World) -> None:
    fake, channel_id = world.fake, world.general["id"]
    async with connected_client(fake, intents=discord.Intents.default()) as client:
        plain = await fake.send_user_message(channel_id, world.alice, "secret")
        received = await client.wait_for("message", check=lambda m: m.id == int(plain["id"]), timeout=5)
        assert received.content == ""
        mention = await fake.send_user_message(channel_id, world.alice, "hi", mentions_bot=True)
        received = await client.wait_for("message", check=lambda m: m.id == int(mention["id"]), timeout=5)
        assert received.content.endswith("hi")
    assert fake.messages_in(channel_id)[0]["content"] == "secret"


async def test_send_edit_and_history(world: World) -> None:
    fake = world.fake
    async with connected_client(fake) as client:
        channel = client.get_channel(int(world.general["id"]))
        assert isinstance(channel, discord.TextChannel)
        echo = asyncio.ensure_future(client.wait_for("message", check=lambda m: m.author == client.user, timeout=5))
        sent = await channel.send(f"hi {world.alice.mention}")
        assert (await echo).id == sent.id  # Discord echoes the bot's own messages
        assert sent.mentions == []  # AllowedMentions.none() suppresses the ping
        edited = await sent.edit(content="hi there")
        assert edited.content == "hi there" and edited.edited_at is not None
        history = [m async for m in channel.history(limit=10)]
        assert [m.content for m in history] == ["hi there"]

    contents = [content for _, content in fake.edit_history(sent.id)]
    assert contents == [f"hi {world.alice.mention}", "hi there"]
    create = fake.requests_for(MESSAGE_ROUTE)[0]
    assert create.json["allowed_mentions"] == {"parse": []}
    assert create.status == 200
    assert fake.requests_for(EDIT_ROUTE)[0].json["content"] == "hi there"


async def test_validation_errors(world: World) -> None:
    async with connected_client(world.fake) as client:
        channel = client.get_channel(int(world.general["id"]))
        assert isinstance(channel, discord.TextChannel)
        with pytest.raises(discord.HTTPException) as too_long:
            await channel.send("x" * 2001)
        assert too_long.value.status == 400 and too_long.value.code == 50035
        assert "Must be 2000 or fewer in length." in too_long.value.text
        with pytest.raises(discord.HTTPException) as empty:
            await channel.send("")
        assert empty.value.status == 400 and empty.value.code == 50006
        ok = await channel.send("x" * 2000)
        with pytest.raises(discord.HTTPException) as edit_too_long:
            await ok.edit(content="y" * 2001)
        assert edit_too_long.value.code == 50035
    assert world.fake.messages_in(world.general["id"])[0]["content"] == "x" * 2000


async def test_threads(world: World) -> None:
    fake = world.fake
    async with connected_client(fake) as client:
        channel = client.get_channel(int(world.general["id"]))
        locked = client.get_channel(int(world.locked["id"]))
        assert isinstance(channel, discord.TextChannel) and isinstance(locked, discord.TextChannel)
        anchor = await channel.send("question")
        thread = await anchor.create_thread(name="Answer")
        assert thread.id == anchor.id and thread.parent_id == channel.id
        stored = fake.thread_for_message(anchor.id)
        assert stored is not None and stored["name"] == "Answer"
        await thread.send("inside")
        assert [m["content"] for m in fake.messages_in(thread.id)] == ["inside"]

        with pytest.raises(discord.HTTPException) as duplicate:
            await anchor.create_thread(name="again")
        assert duplicate.value.code == 160004
        other = await channel.send("another")
        with pytest.raises(discord.HTTPException) as long_name:
            await other.create_thread(name="n" * 101)
        assert long_name.value.status == 400 and long_name.value.code == 50035
        blocked = await locked.send("no threads here")
        with pytest.raises(discord.Forbidden) as forbidden:
            await blocked.create_thread(name="nope")
        assert forbidden.value.code == 50013
        standalone = await channel.create_thread(name="standalone", type=discord.ChannelType.public_thread)
        assert fake.channels[standalone.id]["parent_id"] == world.general["id"]


async def test_idle_threads_are_archived_like_discord() -> None:
    """A thread with no new message for its idle time is archived with THREAD_UPDATE, which
    drops it from discord.py's cache; edits there are refused; a new message unarchives it."""
    async with running_world(limits=Limits.disabled(), thread_archive_seconds=0.5) as world:
        fake = world.fake
        async with connected_client(fake) as client:
            channel = client.get_channel(int(world.general["id"]))
            assert isinstance(channel, discord.TextChannel)
            anchor = await channel.send("question")
            thread = await anchor.create_thread(name="Answer")
            assert thread.auto_archive_duration == 1440  # the default; the fake's idle time overrides it
            answer = await thread.send("answer")
            assert channel.guild.get_thread(thread.id) is not None

            # Edits are no activity: only a new message restarts the idle time.
            started = time.monotonic()
            await answer.edit(content="answer, edited")
            before, after = await client.wait_for("thread_update", timeout=5)
            assert after.id == thread.id and after.archived and not before.archived
            assert 0.4 <= time.monotonic() - started <= 2.0
            assert channel.guild.get_thread(thread.id) is None  # discord.py dropped it from its cache
            assert fake.channels[thread.id]["thread_metadata"]["archived"]
            assert [thread_id for _, thread_id in fake.archived] == [thread.id]
            assert thread.id not in {int(t["id"]) for t in fake._guild_create_payload(world.guild)["threads"]}

            with pytest.raises(discord.HTTPException) as refused:
                await answer.edit(content="too late")
            assert refused.value.status == 400 and refused.value.code == 50083
            with pytest.raises(discord.HTTPException) as no_reaction:
                await answer.add_reaction("👍")
            assert no_reaction.value.code == 50083

            # A person writing in it unarchives it (THREAD_UPDATE first), and discord.py has it again.
            joined = asyncio.ensure_future(client.wait_for("thread_join", timeout=5))
            sent = await fake.send_user_message(thread.id, world.alice, "one more thing", mentions_bot=True)
            received = await client.wait_for("message", check=lambda m: m.id == int(sent["id"]), timeout=5)
            assert (await joined).id == thread.id and not fake.channels[thread.id]["thread_metadata"]["archived"]
            assert isinstance(received.channel, discord.Thread) and received.channel.id == thread.id
            ids = (str(thread.id), sent["id"])
            events = [event for _, event, data in fake.gateway.dispatched if data.get("id") in ids]
            assert events[-2:] == ["THREAD_UPDATE", "MESSAGE_CREATE"]
            await received.channel.send("answered")  # the bot's own message is activity too

            _, again = await client.wait_for("thread_update", timeout=5)
            assert again.id == thread.id and again.archived and channel.guild.get_thread(thread.id) is None
            assert [thread_id for _, thread_id in fake.archived] == [thread.id, thread.id]


async def test_threads_archive_after_their_own_duration_by_default(world: World) -> None:
    fake = world.fake
    async with connected_client(fake) as client:
        channel = client.get_channel(int(world.general["id"]))
        assert isinstance(channel, discord.TextChannel)
        anchor = await channel.send("question")
        thread = await anchor.create_thread(name="Answer", auto_archive_duration=60)
        assert fake.archive_after(fake.channels[thread.id]) == 3600.0
        timer = fake._archive_timers[thread.id]
        assert 3590 < timer.when() - asyncio.get_running_loop().time() <= 3600
    assert fake.archived == []


async def test_direct_messages(world: World) -> None:
    fake = world.fake
    async with connected_client(fake) as client:
        user = await client.fetch_user(world.alice.id)
        sent = await user.send("hello in DMs")
        dm = fake.dm_channel_for(world.alice)
        assert sent.channel.id == int(dm["id"])
        incoming = await fake.send_user_message(dm["id"], world.alice, "reply in DMs")
        received = await client.wait_for("message", check=lambda m: m.id == int(incoming["id"]), timeout=5)
        assert isinstance(received.channel, discord.DMChannel) and received.content == "reply in DMs"


# --------------------------------------------------------------------------------------------------
# Rate limits
# --------------------------------------------------------------------------------------------------


async def test_429_is_retried_by_discord_py() -> None:
    limits = Limits(message_create=RateLimit(2, 0.6))
    async with running_world(limits=limits) as world:
        fake, channel_id = world.fake, world.general["id"]
        async with connected_client(fake) as client:
            channel = client.get_channel(int(channel_id))
            assert isinstance(channel, discord.TextChannel)
            # Another process sharing the token drains the bucket discord.py does not know about yet.
            for _ in range(2):
                path = f"/channels/{channel_id}/messages"
                status, headers, _ = await raw_request(fake, "POST", path, json={"content": "x"})
                assert status == 200
            assert headers["X-RateLimit-Remaining"] == "0"
            started = time.monotonic()
            sent = await channel.send("after the limit")
            assert time.monotonic() - started >= 0.2
        statuses = [r.status for r in fake.requests_for(MESSAGE_ROUTE)]
        assert statuses == [200, 200, 429, 200]
        assert fake.ratelimited_count == 1 and not fake.ratelimited[0].is_global
        limited = fake.requests_for(MESSAGE_ROUTE)[2].response
        assert limited["message"] == "You are being rate limited." and limited["global"] is False
        assert fake.messages_in(channel_id)[-1]["id"] == str(sent.id)


async def test_bucket_headers_make_discord_py_wait_instead_of_429() -> None:
    limits = Limits(message_create=RateLimit(2, 0.4))
    async with running_world(limits=limits) as world:
        fake = world.fake
        async with connected_client(fake) as client:
            channel = client.get_channel(int(world.general["id"]))
            assert isinstance(channel, discord.TextChannel)
            await asyncio.gather(*(channel.send(f"m{i}") for i in range(5)))
        assert fake.ratelimited_count == 0
        assert len(fake.messages_in(world.general["id"])) == 5


async def test_injected_global_429_is_retried(world: World) -> None:
    fake = world.fake
    async with connected_client(fake) as client:
        fake.inject_ratelimit("GET /channels/{channel_id}", retry_after=0.2, is_global=True)
        channel = await client.fetch_channel(int(world.general["id"]))
        assert channel.id == int(world.general["id"])
    hit = fake.ratelimited[0]
    assert hit.is_global and hit.injected
    assert [r.status for r in fake.requests_for("GET /channels/{channel_id}")] == [429, 200]


# --------------------------------------------------------------------------------------------------
# Application commands and interactions
# --------------------------------------------------------------------------------------------------


def install_commands(client: discord.Client) -> None:
    tree = app_commands.CommandTree(client)

    @tree.command(name="ask", description="Ask the bot")
    async def ask(interaction: discord.Interaction, prompt: str) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content=f"thinking about {prompt}")
        await interaction.edit_original_response(content=f"answer to {prompt}")
        await interaction.followup.send("and a follow-up")

    @tree.command(name="secret", description="Ephemeral reply")
    async def secret(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("only you", ephemeral=True)

    client.tree = tree  # type: ignore[attr-defined]


async def test_slash_command_sync_defer_and_edit(world: World) -> None:
    fake = world.fake
    async with connected_client(fake, setup=install_commands) as client:
        tree: app_commands.CommandTree = client.tree  # type: ignore[attr-defined]
        synced = await tree.sync()
        assert {c.name for c in synced} == {"ask", "secret"}
        assert all(c.id for c in synced)
        assert {c["name"] for c in fake.commands[None]} == {"ask", "secret"}

        interaction = await fake.send_slash_command(world.general["id"], world.alice, "ask", {"prompt": "life"})
        await fake.wait_for(lambda: interaction.followup_message_ids)
        assert interaction.callback_type == 5
        original = fake.original_response(interaction)
        assert original is not None and original["content"] == "answer to life"
        assert not original["flags"] & 128  # no longer "thinking…"
        contents = [c for _, c in fake.edit_history(original["id"])]
        assert contents == ["", "thinking about life", "answer to life"]
        assert fake.message(interaction.followup_message_ids[0]).content == "and a follow-up"

        secret = await fake.send_slash_command(world.general["id"], world.alice, "secret")
        await fake.wait_for(lambda: secret.acknowledged)
        assert secret.callback_type == 4
        assert fake.original_response(secret)["flags"] & 64  # type: ignore[index]

    callbacks = fake.requests_for("POST /interactions/{webhook_id}/{webhook_token}/callback")
    assert callbacks[0].json["type"] == 5 and "Authorization" not in callbacks[0].headers
    edits = fake.requests_for("PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original")
    assert [r.status for r in edits] == [200, 200]


async def test_guild_command_sync(world: World) -> None:
    fake = world.fake
    async with connected_client(fake, setup=install_commands) as client:
        tree: app_commands.CommandTree = client.tree  # type: ignore[attr-defined]
        guild = discord.Object(world.guild.id)
        tree.copy_global_to(guild=guild)
        await tree.sync(guild=guild)
        assert {c["name"] for c in fake.commands[world.guild.id]} == {"ask", "secret"}
        interaction = await fake.send_slash_command(world.general["id"], world.alice, "secret")
        assert interaction.payload["data"]["guild_id"] == str(world.guild.id)
        await fake.wait_for(lambda: interaction.acknowledged)


# --------------------------------------------------------------------------------------------------
# Gateway resume
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("close_code", [4000, None], ids=["close-4000", "abnormal"])
async def test_gateway_disconnect_then_resume(world: World, close_code: int | None) -> None:
    fake = world.fake
    async with connected_client(fake) as client:
        resumed = asyncio.ensure_future(client.wait_for("resumed", timeout=10))
        await fake.disconnect_gateway(close_code)
        missed = await fake.send_user_message(world.general["id"], world.alice, "sent while away")
        received = await client.wait_for("message", check=lambda m: m.id == int(missed["id"]), timeout=10)
        await resumed
        assert received.content == "sent while away"
        await fake.wait_connected(timeout=5)
    assert fake.gateway.identify_count == 1 and fake.gateway.resume_count == 1
    assert fake.gateway.replayed_count >= 1  # the message was buffered, then replayed on RESUME
    assert len(fake.gateway.connections) == 2


def skip_identify_delay(client: discord.Client) -> None:
    """discord.py sleeps 5 s before every non-initial IDENTIFY (Client.before_identify_hook)."""

    async def no_delay(shard_id: int | None, *, initial: bool = False) -> None:
        return None

    client.before_identify_hook = no_delay  # type: ignore[method-assign]


async def test_reconnect_and_invalid_session(world: World) -> None:
    fake = world.fake
    async with connected_client(fake, setup=skip_identify_delay) as client:
        resumed = asyncio.ensure_future(client.wait_for("resumed", timeout=10))
        await fake.send_reconnect()
        await resumed
        assert fake.gateway.identify_count == 1 and fake.gateway.resume_count == 1

        await fake.invalidate_session(resumable=False)
        await fake.wait_for(lambda: fake.gateway.identify_count == 2 and fake.connected, timeout=10)
        incoming = await fake.send_user_message(world.general["id"], world.alice, "after re-identify")
        received = await client.wait_for("message", check=lambda m: m.id == int(incoming["id"]), timeout=5)
        assert received.content == "after re-identify"


async def test_disallowed_privileged_intent_closes_4014() -> None:
    from tests.fakes.discord_server import Intent

    async with running_world(disallowed_intents=Intent.MESSAGE_CONTENT) as world:
        client = discord.Client(intents=content_intents())
        with pointed_at(world.fake), pytest.raises(discord.PrivilegedIntentsRequired):
            await asyncio.wait_for(client.start(world.fake.token), 10)
        await client.close()


async def test_file_upload_uses_multipart_payload_json(world: World) -> None:
    async with connected_client(world.fake) as client:
        channel = client.get_channel(int(world.general["id"]))
        assert isinstance(channel, discord.TextChannel)
        sent = await channel.send("see attached", file=discord.File(io.BytesIO(b"hello"), filename="a.txt"))
        assert [a.filename for a in sent.attachments] == ["a.txt"]
    record = world.fake.requests_for(MESSAGE_ROUTE)[0]
    assert record.json["content"] == "see attached"
    assert [(f.filename, f.size) for f in record.files] == [("a.txt", 5)]
