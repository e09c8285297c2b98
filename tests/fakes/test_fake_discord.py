"""Self-tests: the real discord.py Client (same event loop) against fakes.discord."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands

from fakes.discord import (
    FakeDiscord,
    FakeGuild,
    FakeUser,
    InteractionCallbackRejected,
    Limits,
    RateLimit,
)

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
    from fakes.discord import Intent

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


async def test_a_file_added_by_an_edit_is_attached_and_bad_uploads_are_refused(world: World) -> None:
    async with connected_client(world.fake) as client:
        channel = client.get_channel(int(world.general["id"]))
        assert isinstance(channel, discord.TextChannel)
        sent = await channel.send("thinking ▌")
        edited = await sent.edit(content="done", attachments=[discord.File(io.BytesIO(b"why"), filename="thinking.md")])
        assert [(a.filename, await a.read()) for a in edited.attachments] == [("thinking.md", b"why")]
        kept = await edited.edit(content="done again")  # no attachments given: they stay
        assert [a.filename for a in kept.attachments] == ["thinking.md"]
    path = f"/channels/{world.general['id']}/messages"

    def form(attachments: list[dict[str, Any]], files: dict[str, bytes]) -> aiohttp.FormData:
        data = aiohttp.FormData()
        data.add_field("payload_json", json.dumps({"content": "x", "attachments": attachments}))
        for name, body in files.items():
            data.add_field(name, body, filename="a.txt", content_type="text/plain")
        return data

    missing = form([{"id": 1, "filename": "a.txt"}], {"files[0]": b"a"})
    status, _, body = await raw_request(world.fake, "POST", path, data=missing)
    assert (status, body["code"], body["errors"]["attachments"]["0"]["id"]["_errors"][0]["code"]) == (
        400,
        50035,
        "ATTACHMENT_NOT_FOUND",
    )
    eleven = form([], {f"files[{i}]": b"a" for i in range(11)})
    status, _, body = await raw_request(world.fake, "POST", path, data=eleven)
    assert (status, body["code"]) == (400, 50035)
    huge = form([], {"files[0]": b"x" * (10 * 1024 * 1024 + 1)})
    status, _, body = await raw_request(world.fake, "POST", path, data=huge)
    assert (status, body["code"]) == (413, 40005)


# --------------------------------------------------------------------------------------------------
# Context menus, autocomplete, options, replies and images
# --------------------------------------------------------------------------------------------------


def image_bytes(image_format: str, size: tuple[int, int] = (3, 2)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=image_format)
    return buffer.getvalue()


def install_context_menu_and_model(client: discord.Client) -> None:
    """A message command with a human name, and /model name:<autocompleted> plus /pick with choices."""
    tree = app_commands.CommandTree(client)

    @tree.context_menu(name="Explain This")
    async def explain(interaction: discord.Interaction, message: discord.Message) -> None:
        files = ", ".join(f"{a.filename} {a.content_type} {a.width}x{a.height}" for a in message.attachments)
        await interaction.response.send_message(f"{message.author.name} said {message.content!r} with {files}")

    async def model_names(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        names = ["mistral-small", "mistral-large", "codestral"]
        return [app_commands.Choice(name=n, value=n) for n in names if current.lower() in n]

    @tree.command(name="model", description="Pick the model")
    @app_commands.autocomplete(name=model_names)
    async def model(interaction: discord.Interaction, name: str | None = None) -> None:
        await interaction.response.send_message(f"model is now {name}", ephemeral=True)

    @tree.command(name="pick", description="Pick a size")
    @app_commands.choices(
        size=[app_commands.Choice(name="Small", value="s"), app_commands.Choice(name="Big", value="b")]
    )
    async def pick(interaction: discord.Interaction, size: app_commands.Choice[str], count: int = 1) -> None:
        await interaction.response.send_message(f"{count} x {size.name}")

    client.tree = tree  # type: ignore[attr-defined]


async def test_message_command_registers_and_delivers_the_full_target_message(world: World) -> None:
    fake = world.fake
    async with connected_client(fake, setup=install_context_menu_and_model) as client:
        tree: app_commands.CommandTree = client.tree  # type: ignore[attr-defined]
        await tree.sync()
        [registered] = [c for c in fake.commands[None] if c["type"] == 3]
        assert registered["name"] == "Explain This" and registered["description"] == ""

        png = image_bytes("PNG", (4, 3))
        target = await fake.send_user_message(
            world.general["id"], world.alice, "look at this", files=[("cat.png", "image/png", png)]
        )
        interaction = await fake.send_message_command(world.general["id"], world.alice, "Explain This", target["id"])
        await fake.wait_for(lambda: interaction.acknowledged)

    data = interaction.payload["data"]
    assert interaction.payload["type"] == 2 and data["type"] == 3 and data["name"] == "Explain This"
    assert data["target_id"] == target["id"] and "options" not in data
    resolved = data["resolved"]["messages"][target["id"]]
    assert resolved["author"]["id"] == str(world.alice.id) and resolved["content"] == "look at this"
    assert [(a["filename"], a["width"], a["height"]) for a in resolved["attachments"]] == [("cat.png", 4, 3)]
    reply = fake.original_response(interaction)
    assert reply is not None and reply["content"] == "alice said 'look at this' with cat.png image/png 4x3"
    assert reply["type"] == 23  # CONTEXT_MENU_COMMAND
    assert reply["interaction_metadata"]["command_type"] == 3
    assert reply["interaction_metadata"]["target_message_id"] == target["id"]
    with pytest.raises(LookupError, match="message command 'Nope'"):
        await fake.send_message_command(world.general["id"], world.alice, "Nope", target["id"])
    with pytest.raises(LookupError, match="no message"):
        await fake.send_message_command(world.locked["id"], world.alice, "Explain This", target["id"])
    with pytest.raises(TypeError, match="channel first"):
        await fake.send_message_command(world.alice, world.general["id"], "Explain This", target["id"])  # type: ignore[arg-type]


async def test_command_registration_is_validated_like_discord(world: World) -> None:
    fake = world.fake
    path = f"/applications/{fake.application_id}/commands"

    def option(name: str, option_type: int = 3, **extra: Any) -> dict[str, Any]:
        return {"name": name, "description": f"the {name}", "type": option_type, **extra}

    good = [
        {"name": "Explain This", "type": 3},  # spaces and capitals: fine for a context menu
        {"name": "Ask About", "type": 3, "description": ""},  # an empty description is accepted
        {"name": "model", "description": "Pick", "options": [option("name", autocomplete=True, required=True)]},
    ]
    status, _, body = await raw_request(fake, "PUT", path, json=good)
    assert status == 200 and [c["type"] for c in body] == [3, 3, 1]
    assert body[2]["options"][0]["autocomplete"] is True

    bad = [
        {"name": "With Description", "type": 3, "description": "nope"},
        {"name": "With Options", "type": 3, "options": [option("x")]},
        {"name": "x" * 33, "type": 3},
        {"name": "Upper", "description": "capitals are for context menus"},
        {"name": "nodesc"},
        {
            "name": "opts",
            "description": "bad options",
            "options": [
                option("flag", 5, autocomplete=True),
                option("both", autocomplete=True, choices=[{"name": "a", "value": "a"}]),
                option("optional"),
                option("late", required=True),
                option("Bad Name"),
                option("kind", 99),
                option("long", choices=[{"name": "n" * 101, "value": "v" * 101}]),
            ],
        },
        {"name": "Explain This", "type": 3},
        {"name": "Explain This", "type": 3},
    ]
    status, _, body = await raw_request(fake, "PUT", path, json=bad)
    assert status == 400 and body["code"] == 50035
    errors = body["errors"]

    def codes(*keys: str) -> list[str]:
        node = errors
        for key in keys:
            node = node[key]
        return [e["code"] for e in node["_errors"]]

    assert codes("0", "description") == ["APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION_INVALID"]
    assert codes("1", "options") == ["APPLICATION_COMMAND_CONTEXT_MENU_OPTIONS_INVALID"]
    assert codes("2", "name") == ["BASE_TYPE_BAD_LENGTH"]
    assert codes("3", "name") == ["APPLICATION_COMMAND_INVALID_NAME"]
    assert codes("4", "description") == ["BASE_TYPE_REQUIRED"]
    assert codes("5", "options", "0", "autocomplete") == ["APPLICATION_COMMAND_OPTION_TYPE_INVALID"]
    assert codes("5", "options", "1", "autocomplete") == ["APPLICATION_COMMAND_AUTOCOMPLETE_CHOICES_INVALID"]
    assert codes("5", "options", "3") == ["APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID"]
    assert codes("5", "options", "4", "name") == ["APPLICATION_COMMAND_INVALID_NAME"]
    assert codes("5", "options", "5", "type") == ["BASE_TYPE_CHOICES"]
    assert codes("5", "options", "6", "choices", "0", "name") == ["BASE_TYPE_BAD_LENGTH"]
    assert codes("5", "options", "6", "choices", "0", "value") == ["BASE_TYPE_MAX_LENGTH"]
    assert codes("7", "name") == ["APPLICATION_COMMANDS_DUPLICATE_NAME"]
    assert [c["name"] for c in fake.commands[None]] == ["Explain This", "Ask About", "model"]  # unchanged

    too_many = [{"name": f"Menu {i}", "type": 3} for i in range(16)]
    status, _, body = await raw_request(fake, "PUT", path, json=too_many)
    assert (status, body["code"]) == (400, 30032)


async def test_autocomplete_returns_the_bots_choices(world: World) -> None:
    fake = world.fake
    async with connected_client(fake, setup=install_context_menu_and_model) as client:
        tree: app_commands.CommandTree = client.tree  # type: ignore[attr-defined]
        await tree.sync()
        [model] = [c for c in fake.commands[None] if c["name"] == "model"]
        assert model["options"] == [
            {"type": 3, "name": "name", "description": "…", "required": False, "autocomplete": True}
        ]
        choices = await fake.send_autocomplete(world.general["id"], world.alice, "model", {"name": "MISTRAL"})
        assert choices == [
            {"name": "mistral-small", "value": "mistral-small"},
            {"name": "mistral-large", "value": "mistral-large"},
        ]
        assert await fake.send_autocomplete(world.general["id"], world.alice, "model", {"name": "zzz"}) == []
        interaction = fake.interactions[-1]
        assert interaction.payload["type"] == 4 and interaction.callback_type == 8
        assert interaction.payload["data"]["options"] == [{"name": "name", "type": 3, "value": "zzz", "focused": True}]
        assert interaction.original_message_id is None  # an autocomplete answer is no message

        with pytest.raises(ValueError, match="not registered with autocomplete"):
            await fake.send_autocomplete(world.general["id"], world.alice, "pick", {"size": "s"})

        chosen = await fake.send_slash_command(world.general["id"], world.alice, "model", {"name": "codestral"})
        await fake.wait_for(lambda: chosen.acknowledged)
        assert fake.original_response(chosen)["content"] == "model is now codestral"  # type: ignore[index]


async def test_autocomplete_answers_are_validated(world: World) -> None:
    """A raw callback (no discord.py tree answers): wrong type, too many or too long choices → 400."""
    fake = world.fake
    path = f"/applications/{fake.application_id}/commands"
    command = {
        "name": "model",
        "description": "Pick",
        "options": [{"name": "name", "description": "d", "type": 3, "autocomplete": True}],
    }
    await raw_request(fake, "PUT", path, json=[command])

    async def answer_with(body: dict[str, Any]) -> tuple[int, Any]:
        count = len(fake.interactions)
        task = asyncio.ensure_future(fake.send_autocomplete(world.general["id"], world.alice, "model", {"name": "m"}))
        interaction = await fake.wait_for(lambda: len(fake.interactions) > count and fake.interactions[-1])
        callback = f"/interactions/{interaction.id}/{interaction.token}/callback"
        status, _, response = await raw_request(fake, "POST", callback, json=body)
        with pytest.raises(InteractionCallbackRejected) as rejected:
            await task
        assert rejected.value.body == response  # send_autocomplete raises with Discord's error
        return status, response

    async with connected_client(fake):
        status, body = await answer_with({"type": 4, "data": {"content": "no"}})
        assert status == 400 and body["errors"]["type"]["_errors"][0]["code"] == "BASE_TYPE_CHOICES"
        many = [{"name": f"m{i}", "value": f"m{i}"} for i in range(26)]
        status, body = await answer_with({"type": 8, "data": {"choices": many}})
        assert status == 400 and "25 or fewer" in json.dumps(body)
        status, body = await answer_with({"type": 8, "data": {"choices": [{"name": "n" * 101, "value": "v"}]}})
        assert status == 400 and body["errors"]["data"]["choices"]["0"]["name"]["_errors"][0]["code"] == (
            "BASE_TYPE_BAD_LENGTH"
        )
        assert fake.interactions[-1].rejected and fake.interactions[-1].choices is None
        assert len(fake.interactions) == 3


async def test_slash_command_options_are_checked_like_discords_client(world: World) -> None:
    fake = world.fake
    async with connected_client(fake, setup=install_context_menu_and_model) as client:
        tree: app_commands.CommandTree = client.tree  # type: ignore[attr-defined]
        await tree.sync()
        [pick] = [c for c in fake.commands[None] if c["name"] == "pick"]
        assert [(o["name"], o["type"], o["required"]) for o in pick["options"]] == [
            ("size", 3, True),
            ("count", 4, False),
        ]

        interaction = await fake.send_slash_command(world.general["id"], world.alice, "pick", {"size": "b", "count": 2})
        await fake.wait_for(lambda: interaction.acknowledged)
        assert interaction.payload["data"]["options"] == [
            {"name": "size", "type": 3, "value": "b"},
            {"name": "count", "type": 4, "value": 2},
        ]
        assert fake.original_response(interaction)["content"] == "2 x Big"  # type: ignore[index]
        bare = await fake.send_slash_command(world.general["id"], world.alice, "model")
        assert "options" not in bare.payload["data"]  # Discord omits options nobody filled in

        with pytest.raises(LookupError, match="no option 'colour'"):
            await fake.send_slash_command(world.general["id"], world.alice, "pick", {"size": "s", "colour": "red"})
        with pytest.raises(ValueError, match="one of its choices"):
            await fake.send_slash_command(world.general["id"], world.alice, "pick", {"size": "huge"})
        with pytest.raises(ValueError, match="required option"):
            await fake.send_slash_command(world.general["id"], world.alice, "pick", {"count": 3})
        with pytest.raises(TypeError, match="does not fit"):
            await fake.send_slash_command(world.general["id"], world.alice, "pick", {"size": "s", "count": "3"})


async def test_a_reply_carries_the_full_referenced_message(world: World) -> None:
    fake, channel_id = world.fake, world.general["id"]
    bob = fake.add_user("bob")
    async with connected_client(fake) as client:
        original = await fake.send_user_message(
            channel_id, world.alice, "the spec", files=[("spec.md", "text/markdown", b"# Spec\n")]
        )
        reply = await fake.send_user_message(
            channel_id, bob, "summarize that", mentions_bot=True, reference_message_id=original["id"]
        )
        received = await client.wait_for("message", check=lambda m: m.id == int(reply["id"]), timeout=5)
        resolved = received.reference.resolved if received.reference else None
        assert isinstance(resolved, discord.Message) and resolved.content == "the spec"
        assert resolved.author.id == world.alice.id and [a.filename for a in resolved.attachments] == ["spec.md"]
        assert await resolved.attachments[0].read() == b"# Spec\n"
        again = await fake.send_user_message(channel_id, world.alice, "and this?", reference_message_id=reply["id"])

    referenced = reply["referenced_message"]
    assert reply["type"] == 19 and reply["message_reference"]["message_id"] == original["id"]
    assert referenced["author"]["id"] == str(world.alice.id) and referenced["content"] == "the spec"
    assert [(a["filename"], a["content_type"]) for a in referenced["attachments"]] == [("spec.md", "text/markdown")]
    assert "width" not in referenced["attachments"][0]
    # One level only: the replied-to reply comes without its own referenced_message.
    assert again["referenced_message"]["id"] == reply["id"]
    assert "referenced_message" not in again["referenced_message"]
    assert again["referenced_message"]["message_reference"]["message_id"] == original["id"]


async def test_image_attachments_have_their_type_and_size(world: World) -> None:
    fake = world.fake
    files = [
        ("a.png", "image/png", image_bytes("PNG", (5, 4))),
        ("b.jpg", "image/jpeg", image_bytes("JPEG", (7, 6))),
        ("c.gif", "image/gif", image_bytes("GIF", (2, 9))),
        ("d.webp", "image/webp", image_bytes("WEBP", (8, 1))),
        ("mislabelled.bin", "application/octet-stream", image_bytes("PNG", (1, 1))),
        ("broken.png", "image/png", b"\x89PNG\r\n\x1a\n"),  # only the signature: no size
        ("notes.txt", "text/plain", b"hello"),
    ]
    async with connected_client(fake) as client:
        sent = await fake.send_user_message(world.general["id"], world.alice, "pictures", files=files)
        received = await client.wait_for("message", check=lambda m: m.id == int(sent["id"]), timeout=5)
        shapes = [(a.content_type, a.width, a.height) for a in received.attachments]
        assert await received.attachments[1].read() == files[1][2]

        channel = client.get_channel(int(world.general["id"]))
        assert isinstance(channel, discord.TextChannel)
        uploaded = await channel.send(file=discord.File(io.BytesIO(files[0][2]), filename="chart.png"))
        [bot_image] = uploaded.attachments
        assert (bot_image.content_type, bot_image.width, bot_image.height) == ("image/png", 5, 4)
        assert await bot_image.read() == files[0][2]  # the bot's own uploads are on the CDN too

    assert shapes == [
        ("image/png", 5, 4),
        ("image/jpeg", 7, 6),
        ("image/gif", 2, 9),
        ("image/webp", 8, 1),
        ("image/png", 1, 1),
        ("image/png", None, None),
        ("text/plain", None, None),
    ]
    assert all("width" not in a for a in sent["attachments"][5:])
    async with aiohttp.ClientSession() as http:
        async with http.get(sent["attachments"][3]["url"]) as response:
            assert response.status == 200 and response.headers["Content-Type"] == "image/webp"


# --------------------------------------------------------------------------------------------------
# Installs: to a server (with the bot) and to a person's account
# --------------------------------------------------------------------------------------------------


async def test_integration_types_and_contexts_are_validated_like_discord(world: World) -> None:
    fake = world.fake
    path = f"/applications/{fake.application_id}/commands"
    status, _, app = await raw_request(fake, "GET", "/applications/@me")
    assert status == 200 and app["integration_types_config"] == {"0": {}}  # a new application: servers only

    plain = {"name": "plain", "description": "d"}
    status, _, body = await raw_request(fake, "PUT", path, json=[plain, {**plain, "name": "dms", "contexts": [0, 1]}])
    assert status == 200 and [c["integration_types"] for c in body] == [[0], [0]]  # the application's
    assert [c["contexts"] for c in body] == [None, [0, 1]]

    bad = [
        {**plain, "integration_types": [0, 1]},  # no user installs on this application
        {**plain, "name": "gdm", "contexts": [0, 2]},  # PRIVATE_CHANNEL without USER_INSTALL
        {**plain, "name": "odd", "integration_types": [5], "contexts": [3]},
        {**plain, "name": "shape", "contexts": "everywhere"},
    ]
    status, _, body = await raw_request(fake, "PUT", path, json=bad)
    assert status == 400 and body["code"] == 50035
    errors = body["errors"]
    assert errors["0"]["integration_types"]["1"]["_errors"][0]["code"] == "INTEGRATION_TYPE_NOT_SUPPORTED"
    assert errors["1"]["contexts"]["_errors"][0]["code"] == "PRIVATE_CHANNEL_CONTEXT_NEEDS_USER_INSTALL"
    assert errors["2"]["integration_types"]["0"]["_errors"][0]["code"] == "BASE_TYPE_CHOICES"
    assert errors["2"]["contexts"]["0"]["_errors"][0]["code"] == "BASE_TYPE_CHOICES"
    assert errors["3"]["contexts"]["_errors"][0]["code"] == "LIST_TYPE_CONVERT"
    assert [c["name"] for c in fake.commands[None]] == ["plain", "dms"]  # unchanged

    # Guild commands carry them to no effect.
    guild_path = f"/applications/{fake.application_id}/guilds/{world.guild.id}/commands"
    status, _, body = await raw_request(fake, "PUT", guild_path, json=[{**plain, "integration_types": [0, 1]}])
    assert status == 200

    fake.installation_contexts.add(1)  # the portal's "User Install" ticked
    everywhere = {**plain, "integration_types": [0, 1], "contexts": [0, 1, 2]}
    status, _, body = await raw_request(fake, "PUT", path, json=[everywhere, {**plain, "name": "default"}])
    assert status == 200 and [c["integration_types"] for c in body] == [[0, 1], [0, 1]]
    status, _, app = await raw_request(fake, "GET", "/applications/@me")
    assert app["integration_types_config"] == {"0": {}, "1": {}}


def install_anywhere(client: discord.Client) -> None:
    """/where (everywhere, both installs) and /here (guild installs, guilds only)."""
    tree = app_commands.CommandTree(
        client,
        allowed_installs=app_commands.AppInstallationType(guild=True, user=True),
        allowed_contexts=app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=True),
    )

    @tree.command(name="where", description="Where am I")
    async def where(interaction: discord.Interaction) -> None:
        context = interaction.context
        kind = "guild" if context.guild else "bot dm" if context.dm_channel else "private"
        installs = f"guild={interaction.is_guild_integration()} user={interaction.is_user_integration()}"
        channel = type(interaction.channel).__name__
        await interaction.response.defer(thinking=True)
        await interaction.edit_original_response(content=f"{kind} {installs} {channel}")

    @tree.command(name="here", description="Guilds with the bot only")
    @app_commands.allowed_installs(guilds=True, users=False)
    @app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
    async def here(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("here")

    client.tree = tree  # type: ignore[attr-defined]


async def test_user_installs_reach_places_without_the_bot_only_through_the_interaction() -> None:
    async with running_world(limits=Limits.disabled(), installation_contexts=(0, 1)) as world:
        fake, alice = world.fake, world.alice
        bob = fake.add_user("bob")
        elsewhere = fake.add_guild("Elsewhere", with_bot=False)
        outside = fake.add_text_channel(elsewhere, "outside")
        group = fake.add_group_dm(alice, bob, name="friends")
        pair = fake.add_dm_between(alice, bob)
        bot_dm = fake.dm_channel_for(alice)
        seen: list[int] = []

        def setup(client: discord.Client) -> None:
            install_anywhere(client)

            @client.event
            async def on_message(message: discord.Message) -> None:
                if message.author.id == bob.id:
                    seen.append(message.channel.id)

        async with connected_client(fake, setup=setup) as client:
            await client.tree.sync()  # type: ignore[attr-defined]
            assert client.get_guild(elsewhere.id) is None  # not in READY, no GUILD_CREATE
            with pytest.raises(LookupError, match="has not installed the app"):
                await fake.send_slash_command(outside["id"], alice, "where")
            fake.install_for_user(alice)

            async def where(channel: dict[str, Any]) -> tuple[Any, str]:
                interaction = await fake.send_slash_command(channel["id"], alice, "where")
                said = await fake.wait_for(lambda: (m := fake.original_response(interaction)) and m["content"])
                return interaction, said

            outside_interaction, said = await where(outside)
            assert said == "guild guild=False user=True TextChannel"
            payload = outside_interaction.payload
            assert payload["authorizing_integration_owners"] == {"1": str(alice.id)}
            assert payload["context"] == 0 and payload["guild_id"] == str(elsewhere.id) and "member" in payload
            assert int(payload["app_permissions"]) == (1 << 15) | (1 << 14) | (1 << 17)
            group_interaction, said = await where(group)
            assert said == "private guild=False user=True GroupChannel"
            assert group_interaction.payload["context"] == 2 and "guild_id" not in group_interaction.payload
            assert group_interaction.payload["authorizing_integration_owners"] == {"1": str(alice.id)}
            assert (await where(pair))[1] == "private guild=False user=True DMChannel"
            bot_dm_interaction, said = await where(bot_dm)
            assert said == "bot dm guild=False user=True DMChannel"
            assert bot_dm_interaction.payload["authorizing_integration_owners"] == {"0": "0", "1": str(alice.id)}
            home_interaction, said = await where(world.general)
            assert said == "guild guild=True user=True TextChannel"
            assert home_interaction.payload["authorizing_integration_owners"] == {
                "0": str(world.guild.id),
                "1": str(alice.id),
            }
            with pytest.raises(LookupError, match="not offered in a DM or group DM"):
                await fake.send_slash_command(group["id"], alice, "here")
            with pytest.raises(LookupError, match="has not installed the app"):
                await fake.send_slash_command(group["id"], bob, "where")

            # Nothing from those places reaches the bot, and its REST calls there fail.
            await fake.send_user_message(outside["id"], bob, "hello outside", mentions_bot=True)
            await fake.send_user_message(group["id"], bob, "hello group")
            await fake.send_user_message(world.general["id"], bob, "hello home")  # arrives after the others
            await fake.wait_for(lambda: int(world.general["id"]) in seen)
            assert seen == [int(world.general["id"])]
            withheld = [(event, data.get("channel_id")) for _, event, data in fake.gateway.withheld]
            assert ("MESSAGE_CREATE", outside["id"]) in withheld and ("MESSAGE_CREATE", group["id"]) in withheld
            for channel, status, code in ((outside, 403, 50001), (group, 404, 10003), (pair, 404, 10003)):
                got, _, body = await raw_request(
                    fake, "POST", f"/channels/{channel['id']}/messages", json={"content": "x"}
                )
                assert (got, body["code"]) == (status, code)
                got, _, body = await raw_request(fake, "GET", f"/channels/{channel['id']}")
                assert (got, body["code"]) == (status, code)
            status, _, _ = await raw_request(
                fake, "PUT", f"/applications/{fake.application_id}/guilds/{elsewhere.id}/commands", json=[]
            )
            assert status == 403

    async with running_world() as guild_only:
        with pytest.raises(ValueError, match="does not support user installs"):
            guild_only.fake.install_for_user(guild_only.alice)
