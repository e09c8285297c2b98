"""The forum tags helper (adapters.discord_bot.places.forum_tags) through the real discord.py against the fake
Discord's forums, its "say once" claimed in the real Redis: a tag found by its name in any case; Solved and Needs human
added where the bot has Manage Channels (said once), nothing added and the reason said once where it hasn't, or where
the forum has its 20 tags; a tag put on and taken off someone's post with Manage Threads, the post's other tags and its
title kept, and without it the reason said once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest

from adapters.discord_bot.places.forum_tags import NEEDS_HUMAN, SOLVED, ForumTags, Tagged, find_tag
from bot.state.coordination import Coordination
from bot.state.store import HistoryStore
from fakes.discord import FakeDiscord, Limits, Perm
from tests.fakes.test_fake_discord import World, connected_client, running_world

pytestmark = pytest.mark.timeout(30)

TAGS_EDIT = "PATCH /channels/{channel_id}"


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with running_world(limits=Limits.disabled()) as w:
        yield w


@pytest.fixture
def tags(redis_store: HistoryStore, key_prefix: str) -> ForumTags:
    coordination = Coordination(redis_store.client, key_prefix, 60)

    async def once(key: str) -> bool:
        return await coordination.claim(key, 60)

    return ForumTags(once)


class Said:
    def __init__(self) -> None:
        self.lines: list[str] = []

    async def __call__(self, text: str) -> None:
        self.lines.append(text)


def forum_of(client: discord.Client, forum: dict[str, Any]) -> discord.ForumChannel:
    found = client.get_channel(int(forum["id"]))
    assert isinstance(found, discord.ForumChannel)
    return found


async def bot_may(fake: FakeDiscord, client: discord.Client, forum: dict[str, Any], allow: int) -> None:
    await fake.set_overwrite(forum, fake.bot_user, allow=allow)
    channel = forum_of(client, forum)
    await fake.wait_for(lambda: channel.permissions_for(channel.guild.me).value & allow == allow)


async def test_a_tag_is_found_by_its_name_in_any_case(world: World) -> None:
    forum = world.fake.add_forum_channel(world.guild, "help", tags=["Solved", "Needs Human"])
    async with connected_client(world.fake) as client:
        channel = forum_of(client, forum)
        solved, needs_human = find_tag(channel, " solved "), find_tag(channel, "needs  human")
        assert solved is not None and solved.name == "Solved"
        assert needs_human is not None and needs_human.name == "Needs Human"
        assert find_tag(channel, "Bug") is None


async def test_missing_tags_are_added_with_manage_channels_and_said_once(world: World, tags: ForumTags) -> None:
    fake = world.fake
    forum = fake.add_forum_channel(world.guild, "help", tags=["Bug", "solved"])
    said = Said()
    async with connected_client(fake) as client:
        unchanged = await tags.ensure(forum_of(client, forum), said)
        assert [t.name for t in unchanged.available_tags] == ["Bug", "solved"]
        await tags.ensure(forum_of(client, forum), said)
        assert said.lines == ["I can't set **Needs human** in #help: I need Manage Channels there."]
        assert fake.requests_for(TAGS_EDIT) == []

        await bot_may(fake, client, forum, Perm.MANAGE_CHANNELS)
        edited = await tags.ensure(forum_of(client, forum), said)
        assert [t.name for t in edited.available_tags] == ["Bug", "solved", NEEDS_HUMAN]
        assert [t["name"] for t in fake.channels[int(forum["id"])]["available_tags"]] == ["Bug", "solved", NEEDS_HUMAN]
        await fake.wait_for(lambda: find_tag(forum_of(client, forum), NEEDS_HUMAN))  # CHANNEL_UPDATE
        await tags.ensure(forum_of(client, forum), said)
        assert said.lines[1:] == ["I added the tags **Needs human** to #help."]
        assert len(fake.requests_for(TAGS_EDIT)) == 1


async def test_a_forum_with_twenty_tags_gets_none_more(world: World, tags: ForumTags) -> None:
    fake = world.fake
    forum = fake.add_forum_channel(world.guild, "help", tags=[f"area {n}" for n in range(20)])
    said = Said()
    async with connected_client(fake) as client:
        await bot_may(fake, client, forum, Perm.MANAGE_CHANNELS)
        await tags.ensure(forum_of(client, forum), said)
        await tags.ensure(forum_of(client, forum), said)
        assert said.lines == [
            "#help has 20 tags already, Discord's most, so I can't add **Solved** and **Needs human**."
        ]
        assert fake.requests_for(TAGS_EDIT) == []


async def test_a_tag_goes_on_and_off_someones_post_its_title_and_other_tags_kept(world: World, tags: ForumTags) -> None:
    fake = world.fake
    forum = fake.add_forum_channel(world.guild, "help", tags=["VPN", SOLVED, NEEDS_HUMAN, "a", "b", "c", "d"])
    said = Said()
    async with connected_client(fake) as client:
        post, starter = await fake.create_forum_post(
            forum, world.alice, "vpn DROPS  after sleep!!", "help", applied_tags=[fake.tag_id(forum, "VPN")]
        )
        message = await client.wait_for("message", check=lambda m: m.id == int(starter["id"]), timeout=5)
        thread = message.channel
        assert isinstance(thread, discord.Thread)

        assert await tags.tag(thread, "solved", said) is Tagged.NOT_ALLOWED
        assert await tags.tag(thread, "solved", said) is Tagged.NOT_ALLOWED
        assert said.lines == ["I can't set **Solved** in #help: I need Manage Threads there."]

        await bot_may(fake, client, forum, Perm.MANAGE_THREADS)
        assert await tags.tag(thread, "solved", said) is Tagged.APPLIED
        stored = fake.channels[int(post["id"])]
        assert stored["applied_tags"] == [str(fake.tag_id(forum, name)) for name in ("VPN", SOLVED)]
        assert stored["name"] == "vpn DROPS  after sleep!!"
        assert all(set(r.json) == {"applied_tags"} for r in fake.requests_for(TAGS_EDIT))
        await fake.wait_for(lambda: len(thread.applied_tags) == 2)  # THREAD_UPDATE
        assert await tags.tag(thread, SOLVED, said) is Tagged.UNCHANGED

        assert await tags.tag(thread, SOLVED, said, on=False) is Tagged.REMOVED
        assert stored["applied_tags"] == [str(fake.tag_id(forum, "VPN"))]
        assert await tags.tag(thread, "Bug", said) is Tagged.NO_TAG

        await fake.set_post_tags(post, [fake.tag_id(forum, name) for name in ("VPN", "a", "b", "c", "d")])
        await fake.wait_for(lambda: len(thread.applied_tags) == 5)
        assert await tags.tag(thread, NEEDS_HUMAN, said) is Tagged.FULL
        assert len(said.lines) == 1
