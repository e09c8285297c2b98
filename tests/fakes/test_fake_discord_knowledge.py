"""Self-tests of what the fake Discord offers for knowledge: edits and deletes of people's messages,
roles and channel permission overwrites, people's threads, channel history under its rate limit,
message context menus and attachment options, and the bot's removal; driven by the real discord.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from fakes.discord import FakeDiscord, Limits, Perm, RateLimit, overwrite
from tests.fakes.test_fake_discord import (
    World,
    connected_client,
    content_intents,
    raw_request,
    running_world,
)

pytestmark = pytest.mark.timeout(30)

HISTORY_ROUTE = "GET /channels/{channel_id}/messages"


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with running_world(limits=Limits.disabled()) as w:
        yield w


def dispatched(fake: FakeDiscord, event: str) -> list[dict[str, Any]]:
    return [data for _, name, data in fake.gateway.dispatched if name == event]


def text_channel(client: discord.Client, channel: dict[str, Any]) -> discord.TextChannel:
    found = client.get_channel(int(channel["id"]))
    assert isinstance(found, discord.TextChannel)
    return found


async def received_message(client: discord.Client, sent: dict[str, Any]) -> discord.Message:
    message: discord.Message = await client.wait_for("message", check=lambda m: m.id == int(sent["id"]), timeout=5)
    return message


# --------------------------------------------------------------------------------------------------
# Edits and deletes
# --------------------------------------------------------------------------------------------------


async def test_edits_deletes_and_bulk_deletes_reach_discord_py_and_the_messages_are_gone(world: World) -> None:
    fake, channel_id = world.fake, world.general["id"]
    async with connected_client(fake) as client:
        sent = await fake.send_user_message(channel_id, world.alice, "the deploy runs at 9")
        first = await fake.send_user_message(channel_id, world.alice, "one")
        second = await fake.send_user_message(channel_id, world.alice, "two")
        kept = await fake.send_user_message(channel_id, world.alice, "three")
        await received_message(client, kept)

        edit = asyncio.ensure_future(client.wait_for("raw_message_edit", timeout=5))
        await fake.edit_user_message(sent["id"], "the deploy runs at 10")
        raw_edit: discord.RawMessageUpdateEvent = await edit
        assert raw_edit.message_id == int(sent["id"]) and raw_edit.guild_id == world.guild.id
        assert raw_edit.message.content == "the deploy runs at 10" and raw_edit.message.edited_at is not None
        assert raw_edit.data["edited_timestamp"] is not None and raw_edit.data["member"]["roles"] == []

        delete = asyncio.ensure_future(client.wait_for("raw_message_delete", timeout=5))
        await fake.delete_user_message(sent["id"])
        raw_delete: discord.RawMessageDeleteEvent = await delete
        assert (raw_delete.message_id, raw_delete.channel_id) == (int(sent["id"]), int(channel_id))
        assert raw_delete.guild_id == world.guild.id
        assert dispatched(fake, "MESSAGE_DELETE")[-1] == {
            "id": sent["id"],
            "channel_id": channel_id,
            "guild_id": str(world.guild.id),
        }
        with pytest.raises(discord.NotFound) as gone:
            await text_channel(client, world.general).fetch_message(int(sent["id"]))
        assert gone.value.code == 10008

        bulk = asyncio.ensure_future(client.wait_for("raw_bulk_message_delete", timeout=5))
        await fake.delete_user_messages(channel_id, [first["id"], second["id"]])
        event: discord.RawBulkMessageDeleteEvent = await bulk
        assert event.message_ids == {int(first["id"]), int(second["id"])}
        assert (event.channel_id, event.guild_id) == (int(channel_id), world.guild.id)
        history = [m.content async for m in text_channel(client, world.general).history()]
        assert history == ["three"]
    assert dispatched(fake, "MESSAGE_DELETE_BULK")[-1] == {
        "ids": [first["id"], second["id"]],
        "channel_id": channel_id,
        "guild_id": str(world.guild.id),
    }
    with pytest.raises(LookupError):
        await fake.delete_user_messages(channel_id, [first["id"]])  # already gone


# --------------------------------------------------------------------------------------------------
# Roles and permission overwrites
# --------------------------------------------------------------------------------------------------


async def test_a_private_channel_is_seen_through_roles_and_overwrites_from_the_cache() -> None:
    """Without the Members intent: the member object of each message carries the author's roles, and
    discord.py computes View Channel from its cached roles and overwrites."""
    async with running_world(limits=Limits.disabled()) as world:
        fake, guild = world.fake, world.guild
        staff = fake.add_role(guild, "staff")
        carol = fake.add_user("carol", roles=[staff])
        private = fake.add_text_channel(guild, "staff-room")
        await fake.make_private_channel(private, roles=[staff])
        overwrites = {(o["id"], o["type"]): (o["allow"], o["deny"]) for o in private["permission_overwrites"]}
        assert overwrites[(str(guild.id), 0)] == ("0", str(Perm.VIEW_CHANNEL))
        assert overwrites[(str(staff), 0)] == (str(Perm.READ), "0")
        assert overwrites[(str(fake.bot_user.id), 1)] == (str(Perm.READ), "0")

        async with connected_client(fake) as client:
            room = text_channel(client, private)
            assert room.overwrites_for(room.guild.default_role).view_channel is False
            from_carol = await received_message(client, await fake.send_user_message(private["id"], carol, "secret"))
            assert isinstance(from_carol.author, discord.Member)
            assert [r.id for r in from_carol.author.roles if not r.is_default()] == [staff]
            assert room.permissions_for(from_carol.author).view_channel
            from_alice = await received_message(
                client, await fake.send_user_message(world.general["id"], world.alice, "hi")
            )
            assert isinstance(from_alice.author, discord.Member)
            assert not room.permissions_for(from_alice.author).view_channel
            assert text_channel(client, world.general).permissions_for(from_alice.author).view_channel
            assert room.permissions_for(room.guild.me).read_message_history

            with pytest.raises(LookupError, match="cannot see"):
                await fake.send_user_message(private["id"], world.alice, "Discord's client would not let her")
            # A member overwrite for alice, announced with CHANNEL_UPDATE.
            updated = asyncio.ensure_future(client.wait_for("guild_channel_update", timeout=5))
            await fake.set_overwrite(private, world.alice, allow=Perm.VIEW_CHANNEL)
            _, after = await updated
            assert isinstance(after, discord.TextChannel) and after.permissions_for(from_alice.author).view_channel
            # ... and an explicit member deny beats a role allow.
            updated = asyncio.ensure_future(client.wait_for("guild_channel_update", timeout=5))
            await fake.set_overwrite(private, carol, deny=Perm.VIEW_CHANNEL)
            await updated
            assert not room.permissions_for(from_carol.author).view_channel

            # Carol loses the role: her next message's member object says so.
            await fake.set_member_roles(guild, carol, [])
            await fake.set_overwrite(private, carol)  # removes her overwrite
            again = await received_message(client, await fake.send_user_message(world.general["id"], carol, "hm"))
            assert isinstance(again.author, discord.Member) and not room.permissions_for(again.author).view_channel
        assert fake.can_view(private, world.alice) and not fake.can_view(private, carol)
        assert dispatched(fake, "GUILD_MEMBER_UPDATE") != []  # dispatched; this client had no Members intent


async def test_member_and_role_updates_reach_a_client_with_the_members_intent() -> None:
    async with running_world(limits=Limits.disabled()) as world:
        fake, guild = world.fake, world.guild
        readers = fake.add_role(guild, "readers")
        private = fake.add_text_channel(guild, "handbook")
        await fake.make_private_channel(private, roles=[readers])
        intents = content_intents()
        intents.members = True
        async with connected_client(fake, intents=intents) as client:
            room = text_channel(client, private)
            alice = room.guild.get_member(world.alice.id)
            assert alice is not None and not room.permissions_for(alice).view_channel

            member_update = asyncio.ensure_future(client.wait_for("member_update", timeout=5))
            await fake.set_member_roles(guild, world.alice, [readers])
            _, alice = await member_update
            assert room.permissions_for(alice).view_channel

            role_update = asyncio.ensure_future(client.wait_for("guild_role_update", timeout=5))
            await fake.set_role_permissions(guild, guild.id, Perm.MEMBER_DEFAULT & ~Perm.READ_MESSAGE_HISTORY)
            await role_update
            general = text_channel(client, world.general)
            assert not general.permissions_for(alice).read_message_history
            assert room.permissions_for(alice).read_message_history  # the channel's role allow

            created = asyncio.ensure_future(client.wait_for("guild_role_create", timeout=5))
            admins = await fake.create_role(guild, "admins", permissions=Perm.ADMINISTRATOR)
            assert (await created).id == admins
            channel_created = asyncio.ensure_future(client.wait_for("guild_channel_create", timeout=5))
            locked = await fake.create_text_channel(
                guild, "admins-only", overwrites=[overwrite(guild.id, deny=Perm.VIEW_CHANNEL)]
            )
            made = await channel_created
            assert isinstance(made, discord.TextChannel) and not made.permissions_for(alice).view_channel
            await fake.set_member_roles(guild, world.alice, [readers, admins])
            await fake.wait_for(lambda: made.permissions_for(room.guild.get_member(world.alice.id)).view_channel)  # type: ignore[arg-type]

            deleted = asyncio.ensure_future(client.wait_for("guild_role_delete", timeout=5))
            await fake.delete_role(guild, readers)
            assert (await deleted).id == readers and room.guild.get_role(readers) is None
            assert guild.members[world.alice.id].role_ids == [admins]
            with pytest.raises(LookupError):
                await fake.delete_role(guild, guild.id)  # @everyone can't be deleted
        assert fake.can_view(locked, world.alice)


async def test_the_bot_gets_nothing_from_a_channel_it_cannot_view(world: World) -> None:
    fake, guild = world.fake, world.guild
    hidden = fake.add_text_channel(guild, "mods")
    await fake.make_private_channel(hidden, users=[world.alice], bot_can_read=False)
    async with connected_client(fake) as client:
        room = text_channel(client, hidden)  # a bot gets every channel of its guilds
        assert not room.permissions_for(room.guild.me).view_channel
        await fake.send_user_message(hidden["id"], world.alice, "not for the bot")
        seen = await received_message(client, await fake.send_user_message(world.general["id"], world.alice, "hi"))
        assert seen.channel.id == int(world.general["id"])
        assert [e for _, e, d in fake.gateway.withheld if d.get("channel_id") == hidden["id"]] == ["MESSAGE_CREATE"]
        with pytest.raises(discord.Forbidden) as refused:
            await room.send("hello?")
        assert refused.value.code == 50001
        with pytest.raises(discord.Forbidden) as no_history:
            [m async for m in room.history()]
        assert no_history.value.code == 50001

        # Let the bot in: CHANNEL_UPDATE, and from now on the channel's events reach it.
        updated = asyncio.ensure_future(client.wait_for("guild_channel_update", timeout=5))
        await fake.set_overwrite(hidden, fake.bot_user, allow=Perm.READ)
        await updated
        assert room.permissions_for(room.guild.me).view_channel
        later = await fake.send_user_message(hidden["id"], world.alice, "now the bot reads this")
        assert (await received_message(client, later)).content == "now the bot reads this"
        assert [m.content async for m in room.history()] == ["now the bot reads this", "not for the bot"]


# --------------------------------------------------------------------------------------------------
# People's threads
# --------------------------------------------------------------------------------------------------


async def test_threads_people_start_and_their_messages(world: World) -> None:
    fake, guild = world.fake, world.guild
    bob = fake.add_user("bob")
    async with connected_client(fake) as client:
        starter = await fake.send_user_message(world.general["id"], world.alice, "a question")
        await received_message(client, starter)
        created = asyncio.ensure_future(client.wait_for("thread_create", timeout=5))
        public = await fake.create_user_thread(world.general, world.alice, "Q", from_message_id=starter["id"])
        thread: discord.Thread = await created
        assert (thread.id, thread.parent_id, thread.type) == (
            int(starter["id"]),
            int(world.general["id"]),
            discord.ChannelType.public_thread,
        )
        assert thread.owner_id == world.alice.id and public["type"] == 11
        assert fake.message(starter["id"]).payload["thread"]["id"] == public["id"]
        inside = await received_message(client, await fake.send_user_message(public["id"], bob, "an answer"))
        assert isinstance(inside.channel, discord.Thread) and inside.channel.parent_id == int(world.general["id"])
        assert isinstance(inside.author, discord.Member) and inside.channel.permissions_for(inside.author).view_channel

        # A private thread reaches the bot only when it is a member.
        await fake.create_user_thread(world.general, world.alice, "just us", private=True, members=[bob])
        hidden = fake.channels[max(fake.channels)]
        assert hidden["type"] == 12 and not fake.can_view(hidden, fake.add_user("dave"))
        created = asyncio.ensure_future(client.wait_for("thread_create", timeout=5))
        shared = await fake.create_user_thread(
            world.general, bob, "with the bot", private=True, members=[fake.bot_user]
        )
        assert (await created).id == int(shared["id"])
        assert [d["id"] for _, e, d in fake.gateway.withheld if e == "THREAD_CREATE"] == [hidden["id"]]
        await fake.send_user_message(hidden["id"], bob, "private")
        seen = await received_message(client, await fake.send_user_message(shared["id"], bob, "hi bot"))
        assert isinstance(seen.channel, discord.Thread) and seen.channel.type is discord.ChannelType.private_thread
        assert [m.content async for m in seen.channel.history()] == ["hi bot"]
    threads = {t["id"] for t in fake._guild_create_payload(guild)["threads"]}
    assert threads == {public["id"], shared["id"]}


async def test_pre_existing_threads_are_in_guild_create(world: World) -> None:
    fake = world.fake
    thread = fake.add_thread(world.general, "old topic", owner=world.alice)
    fake.seed_history(thread["id"], 3, authors=[world.alice])
    async with connected_client(fake) as client:
        cached = client.get_channel(int(thread["id"]))
        assert isinstance(cached, discord.Thread) and cached.parent_id == int(world.general["id"])
        assert [m.content async for m in cached.history()] == ["message 2", "message 1", "message 0"]


# --------------------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------------------


async def test_history_pages_newest_first_under_a_per_channel_rate_limit() -> None:
    limits = Limits(message_history=RateLimit(5, 0.3))
    async with running_world(limits=limits) as world:
        fake, channel_id = world.fake, world.general["id"]
        bob = fake.add_user("bob")
        started = time.monotonic()
        seeded = fake.seed_history(channel_id, 1500, authors=[world.alice, bob])
        assert time.monotonic() - started < 1.0
        live = await fake.send_user_message(channel_id, world.alice, "today")
        assert [int(m.id) for m in seeded] == sorted(m.id for m in seeded) and seeded[-1].id < int(live["id"])

        async with connected_client(fake) as client:
            channel = text_channel(client, world.general)
            messages = [m async for m in channel.history(limit=None)]
            assert len(messages) == 1501 and messages[0].content == "today"
            assert messages[-1].content == "message 0" and messages[-1].author.id == world.alice.id
            assert messages[1].content == "message 1499" and messages[1].author.id == bob.id
            assert [m.id for m in messages] == sorted((m.id for m in messages), reverse=True)
            assert messages[-1].created_at < messages[1].created_at < messages[0].created_at
            middle = seeded[700]
            after = [m.content async for m in channel.history(limit=3, after=discord.Object(middle.id))]
            assert after == ["message 701", "message 702", "message 703"]  # discord.py turns them oldest first
            around = [m.content async for m in channel.history(limit=5, around=discord.Object(middle.id))]
            assert sorted(around) == ["message 698", "message 699", "message 700", "message 701", "message 702"]
        pages = fake.requests_for(HISTORY_ROUTE)
        assert all(int(r.query["limit"]) <= 100 for r in pages) and len(pages) >= 16
        assert fake.ratelimited_count == 0  # discord.py waited on X-RateLimit-Remaining: 0

        # Another process with the same token, ignoring the headers, gets 429s with Discord's body.
        path = f"/channels/{channel_id}/messages"
        answers = [await raw_request(fake, "GET", path, params={"limit": "1"}) for _ in range(6)]
        statuses = [status for status, _, _ in answers]
        assert 429 in statuses and statuses[0] == 200
        _, headers, body = answers[statuses.index(429)]
        assert body["retry_after"] > 0 and body["global"] is False and headers["Via"]
        assert headers["X-RateLimit-Remaining"] == "0" and headers["X-RateLimit-Limit"] == "5"
        assert "Retry-After" in headers and "X-RateLimit-Reset-After" in headers
        assert answers[0][1]["X-RateLimit-Bucket"] == headers["X-RateLimit-Bucket"]


async def test_history_limits_and_permissions_are_checked_like_discord(world: World) -> None:
    fake, guild, channel_id = world.fake, world.guild, world.general["id"]
    fake.seed_history(channel_id, 120, authors=[world.alice])
    path = f"/channels/{channel_id}/messages"
    status, _, body = await raw_request(fake, "GET", path)
    assert status == 200 and len(body) == 50 and body[0]["content"] == "message 119"
    status, _, body = await raw_request(fake, "GET", path, params={"limit": "100"})
    assert status == 200 and len(body) == 100
    for bad, code in (("101", "NUMBER_TYPE_MAX"), ("0", "NUMBER_TYPE_MIN"), ("x", "NUMBER_TYPE_COERCE")):
        status, _, body = await raw_request(fake, "GET", path, params={"limit": bad})
        assert (status, body["code"], body["errors"]["limit"]["_errors"][0]["code"]) == (400, 50035, code)
    oldest = fake.messages_in(channel_id)[0]["id"]
    status, _, body = await raw_request(fake, "GET", path, params={"before": oldest})
    assert (status, body) == (200, [])

    # Without Read Message History: an empty list, as Discord documents; without View Channel: 403.
    await fake.set_overwrite(world.general, fake.bot_user, deny=Perm.READ_MESSAGE_HISTORY)
    status, _, body = await raw_request(fake, "GET", path)
    assert (status, body) == (200, [])
    await fake.set_overwrite(world.general, guild.id, deny=Perm.VIEW_CHANNEL)
    await fake.set_overwrite(world.general, fake.bot_user)
    status, _, body = await raw_request(fake, "GET", path)
    assert (status, body["code"], body["message"]) == (403, 50001, "Missing Access")


async def test_history_is_seeded_through_the_control_api_too(world: World) -> None:
    fake, channel_id = world.fake, world.general["id"]
    async with aiohttp.ClientSession(fake.base_url) as session:
        body = {"channel_id": channel_id, "count": 3, "author_ids": [str(world.alice.id)]}
        async with session.post("/_fake/seed_history", json=body) as response:
            assert (await response.json())["count"] == 3
        first = fake.messages_in(channel_id)[0]["id"]
        async with session.post("/_fake/edit_message", json={"message_id": first, "content": "edited"}) as response:
            assert (await response.json())["edited_timestamp"] is not None
        async with session.post("/_fake/delete_message", json={"message_id": first}) as response:
            assert response.status == 200
    assert [m["content"] for m in fake.messages_in(channel_id)] == ["message 1", "message 2"]
    assert [e for _, e, _ in fake.gateway.dispatched][-2:] == ["MESSAGE_UPDATE", "MESSAGE_DELETE"]


async def test_seeding_a_large_history_is_fast(world: World) -> None:
    started = time.monotonic()
    seeded = world.fake.seed_history(world.general["id"], 100_000, authors=[world.alice], content=lambda i: f"note {i}")
    assert time.monotonic() - started < 3.0
    page = world.fake.history_page(world.general["id"], 100, before=seeded[50_000].id)
    assert [m.content for m in page[:2]] == ["note 49999", "note 49998"] and len(page) == 100


# --------------------------------------------------------------------------------------------------
# Context menu and attachment options
# --------------------------------------------------------------------------------------------------


def install_knowledge_commands(client: discord.Client) -> None:
    tree = app_commands.CommandTree(client)
    client.seen = []  # type: ignore[attr-defined]

    @tree.context_menu(name="Add to knowledge")
    @app_commands.default_permissions(manage_guild=True)
    async def add_to_knowledge(interaction: discord.Interaction, message: discord.Message) -> None:
        client.seen.append((interaction, message))  # type: ignore[attr-defined]
        await interaction.response.send_message(f"added {message.id}", ephemeral=True)

    @tree.command(name="knowledge-add", description="Add a document")
    async def knowledge_add(interaction: discord.Interaction, file: discord.Attachment) -> None:
        data = await file.read()
        await interaction.response.send_message(f"{file.filename} {file.content_type} {len(data)} bytes")

    client.tree = tree  # type: ignore[attr-defined]


async def test_the_message_context_menu_and_an_attachment_option(world: World) -> None:
    fake, guild = world.fake, world.guild
    admins = fake.add_role(guild, "admins", permissions=Perm.MEMBER_DEFAULT | Perm.MANAGE_GUILD)
    carol = fake.add_user("carol", roles=[admins])
    async with connected_client(fake, setup=install_knowledge_commands) as client:
        tree: app_commands.CommandTree = client.tree  # type: ignore[attr-defined]
        await tree.sync()
        [menu] = [c for c in fake.commands[None] if c["type"] == 3]
        assert menu["name"] == "Add to knowledge" and menu["default_member_permissions"] == str(Perm.MANAGE_GUILD)

        target = await fake.send_user_message(world.general["id"], world.alice, "the wiki moved to wiki.example")
        used = await fake.send_message_command(world.general["id"], carol, "Add to knowledge", target["id"])
        await fake.wait_for(lambda: used.acknowledged)
        [(interaction, message)] = client.seen  # type: ignore[attr-defined]
        assert message.id == int(target["id"]) and message.content == "the wiki moved to wiki.example"
        assert message.author.id == world.alice.id
        assert interaction.permissions.manage_guild and interaction.permissions.view_channel
        assert isinstance(interaction.user, discord.Member) and [r.id for r in interaction.user.roles][1:] == [admins]
        assert interaction.app_permissions.read_message_history
        data = used.payload["data"]
        assert (data["type"], data["target_id"]) == (3, target["id"])
        assert set(data["resolved"]["messages"]) == {target["id"]} and used.ephemeral

        hidden = fake.add_text_channel(guild, "hidden")
        await fake.make_private_channel(hidden, users=[carol])
        elsewhere = await fake.send_user_message(hidden["id"], carol, "not for alice")
        with pytest.raises(LookupError, match="cannot see"):
            await fake.send_message_command(hidden["id"], world.alice, "Add to knowledge", elsewhere["id"])

        document = b"# Handbook\n\nPage one.\n"
        upload = await fake.send_slash_command(
            world.general["id"], carol, "knowledge-add", {"file": ("handbook.md", "text/markdown", document)}
        )
        await fake.wait_for(lambda: upload.acknowledged)
        [(attachment_id, attachment)] = upload.payload["data"]["resolved"]["attachments"].items()
        assert upload.payload["data"]["options"] == [{"name": "file", "type": 11, "value": attachment_id}]
        assert attachment["url"].startswith(fake.base_url) and attachment["size"] == len(document)
        assert fake.original_response(upload)["content"] == f"handbook.md text/markdown {len(document)} bytes"  # type: ignore[index]
        assert fake.attachment_downloads == [int(attachment_id)]


# --------------------------------------------------------------------------------------------------
# The bot removed
# --------------------------------------------------------------------------------------------------


async def test_removing_the_bot_sends_guild_delete_and_closes_the_guild(world: World) -> None:
    fake = world.fake
    async with connected_client(fake) as client:
        removed = asyncio.ensure_future(client.wait_for("guild_remove", timeout=5))
        await fake.remove_bot_from_guild(world.guild)
        assert (await removed).id == world.guild.id and client.get_guild(world.guild.id) is None
        assert dispatched(fake, "GUILD_DELETE")[-1] == {"id": str(world.guild.id)}  # no "unavailable": removed
        with pytest.raises(discord.Forbidden) as refused:
            await client.http.send_message(int(world.general["id"]), params=discord.http.handle_message_parameters("x"))
        assert refused.value.code == 50001
        await fake.send_user_message(world.general["id"], world.alice, "after the bot left")
        assert fake.gateway.withheld[-1][1] == "MESSAGE_CREATE"
        assert fake.bot_user.id not in world.guild.members
        assert not [r for r in world.guild.roles.values() if r.bot_id == fake.bot_user.id]

        # Invited again: GUILD_CREATE, and its channels are the bot's again.
        joined = asyncio.ensure_future(client.wait_for("guild_join", timeout=5))
        await fake.add_bot_to_guild(world.guild)
        guild = await joined
        assert guild.id == world.guild.id and guild.me is not None
        assert [m.content async for m in text_channel(client, world.general).history()] == ["after the bot left"]
