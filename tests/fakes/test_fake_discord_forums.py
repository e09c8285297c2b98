"""Self-tests of the fake Discord's forum channels: posts as Discord announces them, the bot's own posts, tags on a
post and on the forum (with their permissions and limits), and the thread listings; driven by the real discord.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest

from fakes.discord import FakeDiscord, Limits, Perm
from tests.fakes.test_fake_discord import World, connected_client, raw_request, running_world

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with running_world(limits=Limits.disabled()) as w:
        yield w


def forum_of(client: discord.Client, forum: dict[str, Any]) -> discord.ForumChannel:
    found = client.get_channel(int(forum["id"]))
    assert isinstance(found, discord.ForumChannel)
    return found


def dispatched(fake: FakeDiscord) -> list[str]:
    return [name for _, name, _ in fake.gateway.dispatched]


async def test_a_persons_post_is_a_thread_then_its_starter_message(world: World) -> None:
    fake = world.fake
    forum = fake.add_forum_channel(world.guild, "help", tags=["Solved", {"name": "Staff", "moderated": True}])
    async with connected_client(fake) as client:
        channel = forum_of(client, forum)
        assert [(t.name, t.moderated) for t in channel.available_tags] == [("Solved", False), ("Staff", True)]
        before = len(fake.gateway.dispatched)
        post, starter = await fake.create_forum_post(
            forum, world.alice, "VPN drops", "It drops after sleep", applied_tags=[fake.tag_id(forum, "Solved")]
        )
        message = await client.wait_for("message", check=lambda m: m.id == int(starter["id"]), timeout=5)
        assert dispatched(fake)[before:] == ["THREAD_CREATE", "MESSAGE_CREATE"]
        assert int(post["id"]) == message.id == message.channel.id
        thread = message.channel
        assert isinstance(thread, discord.Thread) and thread.parent_id == channel.id
        assert thread.name == "VPN drops" and thread.owner_id == world.alice.id
        assert [t.name for t in thread.applied_tags] == ["Solved"]
        assert message.content == "It drops after sleep"
        with pytest.raises(discord.HTTPException) as refused:
            await client.http.send_message(channel.id, params=discord.http.handle_message_parameters(content="hi"))
        assert refused.value.code == 50024


async def test_the_bots_post_and_its_limits(world: World) -> None:
    fake = world.fake
    forum = fake.add_forum_channel(
        world.guild, "help", tags=[*(f"t{i}" for i in range(7)), {"name": "Staff", "moderated": True}]
    )
    async with connected_client(fake) as client:
        channel = forum_of(client, forum)
        created = await channel.create_thread(name="Release notes", content="v2 is out", applied_tags=[])
        assert created.thread.id == created.message.id
        assert fake.messages_in(created.thread.id)[0]["content"] == "v2 is out"
        six = channel.available_tags[:6]
        with pytest.raises(discord.HTTPException) as too_many:
            await created.thread.edit(applied_tags=six)
        assert too_many.value.code == 50035 and "applied_tags" in str(too_many.value)
        updated = await created.thread.edit(applied_tags=six[:5])
        assert len(updated.applied_tags) == 5
        assert fake.channels[created.thread.id]["applied_tags"] == [str(t.id) for t in six[:5]]
        staff = channel.available_tags[-1]
        with pytest.raises(discord.Forbidden):  # a moderated tag, even on its own post: Manage Threads only
            await created.thread.edit(applied_tags=[staff])


async def test_tags_on_someone_elses_post_need_manage_threads(world: World) -> None:
    fake = world.fake
    forum = fake.add_forum_channel(world.guild, "help", tags=["Solved"])
    async with connected_client(fake) as client:
        post, starter = await fake.create_forum_post(forum, world.alice, "Question", "How?")
        message = await client.wait_for("message", check=lambda m: m.id == int(starter["id"]), timeout=5)
        thread = message.channel
        assert isinstance(thread, discord.Thread)
        solved = forum_of(client, forum).available_tags[0]
        with pytest.raises(discord.Forbidden):
            await thread.add_tags(solved)
        await fake.set_overwrite(forum, fake.bot_user, allow=Perm.MANAGE_THREADS)
        await fake.wait_for(lambda: forum_of(client, forum).permissions_for(thread.guild.me).manage_threads)
        await thread.add_tags(solved)
        await fake.wait_for(lambda: [t.name for t in thread.applied_tags] == ["Solved"])  # THREAD_UPDATE
        await fake.set_post_tags(post, [])
        await fake.wait_for(lambda: thread.applied_tags == [])


async def test_available_tags_need_manage_channels_and_are_at_most_twenty(world: World) -> None:
    fake = world.fake
    forum = fake.add_forum_channel(world.guild, "help", tags=["Bug"])
    async with connected_client(fake) as client:
        channel = forum_of(client, forum)
        with pytest.raises(discord.Forbidden):
            await channel.edit(available_tags=[*channel.available_tags, discord.ForumTag(name="Solved")])
        await fake.set_overwrite(forum, fake.bot_user, allow=Perm.MANAGE_CHANNELS)
        await fake.wait_for(lambda: forum_of(client, forum).permissions_for(channel.guild.me).manage_channels)
        channel = forum_of(client, forum)
        edited = await channel.edit(available_tags=[*channel.available_tags, discord.ForumTag(name="Solved")])
        assert [t.name for t in edited.available_tags] == ["Bug", "Solved"]
        assert edited.available_tags[0].id == fake.tag_id(forum, "Bug")  # the tag kept, with its id
        many = [discord.ForumTag(name=f"tag {i}") for i in range(21)]
        with pytest.raises(discord.HTTPException) as refused:
            await edited.edit(available_tags=many)
        assert refused.value.code == 50035 and "available_tags" in str(refused.value)


async def test_archived_and_active_posts_are_listed(world: World) -> None:
    fake = world.fake
    forum = fake.add_forum_channel(world.guild, "help")
    async with connected_client(fake) as client:
        old, _ = await fake.create_forum_post(forum, world.alice, "Old", "an old question")
        new, _ = await fake.create_forum_post(forum, world.alice, "New", "a new question")
        await fake.archive_thread(old["id"])
        channel = forum_of(client, forum)
        archived = [thread.id async for thread in channel.archived_threads(limit=None)]
        assert archived == [int(old["id"])]
        guild = channel.guild
        active = {thread.id for thread in await guild.active_threads()}
        assert int(new["id"]) in active and int(old["id"]) not in active
        await fake.set_overwrite(forum, fake.bot_user, deny=Perm.READ_MESSAGE_HISTORY)
        status, _, body = await raw_request(fake, "GET", f"/channels/{forum['id']}/threads/archived/public")
        assert (status, body["code"]) == (403, 50013)


async def test_a_person_without_send_messages_cannot_post(world: World) -> None:
    fake = world.fake
    forum = fake.add_forum_channel(world.guild, "announcements")
    await fake.set_overwrite(forum, world.guild.id, deny=Perm.SEND_MESSAGES)
    with pytest.raises(LookupError):
        await fake.create_forum_post(forum, world.alice, "Hi", "may I?")
    assert not [c for c in fake.channels.values() if c.get("parent_id") == forum["id"]]
