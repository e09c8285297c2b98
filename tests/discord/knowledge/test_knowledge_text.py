"""Text PostgreSQL refuses, through the real bot (issue 61): the fake Discord, the embedded PostgreSQL given as
KNOWLEDGE_DATABASE_URL, the embedded embeddings. A NUL or a lone surrogate in one person's message never loses the
others' (live or read from history), and a file added again with a NUL replaces its old text. And removals win over
additions still queued: `channel off` right after a burst leaves nothing of the channel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import pytest_asyncio

from fakes.discord import FakeInteraction, FakeUser, Perm
from fakes.harness.discord_world import DiscordWorld
from fakes.harness.server_folders import embedded_database_url

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(90)]

OLD_MESSAGES = 20


@dataclass
class Scene:
    world: DiscordWorld
    database: str
    admin: FakeUser
    people: list[FakeUser]
    channels: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with embedded_database_url("knowledge-text-") as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scene(database_url: str) -> AsyncIterator[Scene]:
    async with DiscordWorld.open() as world:
        admins = world.fake.add_role(world.guild, "admins", permissions=Perm.MANAGE_GUILD | Perm.MANAGE_CHANNELS)
        admin = world.add_user("admin", roles=[admins])
        people = [world.add_user(name) for name in ("alice", "bob", "carol")]
        channels = {name: world.add_channel(name) for name in ("live", "old", "files", "burst")}
        old = [f"Old note {n} about the office." for n in range(OLD_MESSAGES)]
        old[7] = "Old note 7: the boiler\x00 room is in the basement."
        world.fake.seed_history(channels["old"]["id"], OLD_MESSAGES, authors=people, content=lambda n: old[n])
        await world.start_bot(KNOWLEDGE_DATABASE_URL=database_url)
        yield Scene(world, database_url, admin, people, channels)
        await world.stop_bot(check=True)


async def knowledge(scene: Scene, channel: dict[str, Any], sub: str, **options: Any) -> str:
    interaction = await scene.world.fake.send_slash_command(channel["id"], scene.admin, "knowledge", {sub: options})
    return await answered(scene, interaction)


async def answered(scene: Scene, interaction: FakeInteraction) -> str:
    fake = scene.world.fake

    def text() -> str | None:
        if interaction.callback_type == 4:
            return str((interaction.response_data or {}).get("content", ""))
        return str((fake.original_response(interaction) or {}).get("content") or "") or None

    return await fake.wait_for(text, 30)


def texts(scene: Scene, channel: dict[str, Any]) -> dict[str, str]:
    with psycopg.connect(scene.database, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('knowledge_passages')").fetchone() == (None,):
            return {}
        found = conn.execute(
            "SELECT key, text FROM knowledge_passages WHERE source = %s", (f"channel:{channel['id']}",)
        ).fetchall()
    return dict(found)


async def until_texts(scene: Scene, channel: dict[str, Any], count: int, within: float) -> dict[str, str]:
    started = time.monotonic()
    while len(found := await asyncio.to_thread(texts, scene, channel)) < count:
        assert time.monotonic() - started < within, f"{len(found)} of {count} stored after {within} s"
        await asyncio.sleep(0.2)
    return found


async def test_a_nul_and_a_lone_surrogate_lose_no_ones_live_messages(scene: Scene) -> None:
    live = scene.channels["live"]
    assert (await knowledge(scene, live, "channel", state="on")).startswith("Done")
    said = [f"Update {n}: the project is on track." for n in range(12)]
    said[3] = "Update 3: the printer\x00 code is 1234."
    said[8] = "Update 8: caf\ud800 closes at five."
    posted = [await scene.world.say(live, scene.people[n % 3], text) for n, text in enumerate(said)]

    found = await until_texts(scene, live, 12, within=5.0)

    assert found[posted[3]["id"]] == "alice: Update 3: the printer code is 1234."
    assert found[posted[8]["id"]] == "carol: Update 8: caf\ufffd closes at five."


async def test_a_nul_in_history_loses_none_of_it(scene: Scene) -> None:
    old = scene.channels["old"]
    assert (await knowledge(scene, old, "channel", state="on")).startswith("Done")

    found = await until_texts(scene, old, OLD_MESSAGES, within=15.0)

    assert any(text.endswith(": Old note 7: the boiler room is in the basement.") for text in found.values())
    listed = await knowledge(scene, old, "list")
    assert "\\#old**: 20 passages" in listed and "reading its history" not in listed


async def test_a_file_added_again_with_a_nul_replaces_its_old_text(scene: Scene) -> None:
    files = scene.channels["files"]
    first = ("handbook.txt", "text/plain", b"The canteen opens at eight.")
    assert await knowledge(scene, files, "add", file=first) == 'Added "handbook.txt": 1 passage.'
    again = ("handbook.txt", "text/plain", b"The canteen opens at nine\x00 from Monday.")

    assert await knowledge(scene, files, "add", file=again) == 'Added "handbook.txt": 1 passage.'

    with psycopg.connect(scene.database, autocommit=True) as conn:
        rows = conn.execute("SELECT text FROM knowledge_passages WHERE title = 'handbook.txt'").fetchall()
    assert rows == [("The canteen opens at nine from Monday.",)]


async def test_channel_off_right_after_a_burst_leaves_nothing_of_it(scene: Scene) -> None:
    burst = scene.channels["burst"]
    assert (await knowledge(scene, burst, "channel", state="on")).startswith("Done")
    for n in range(150):
        await scene.world.say(burst, scene.people[n % 3], f"Burst message {n} about the release.")

    assert (await knowledge(scene, burst, "channel", state="off")).startswith("Done")
    # A mention after the burst, answered: every message of the burst reached the bot before it.
    world = scene.world
    mention = await world.mention(burst, scene.people[0], "Is the release still on?")
    await world.wait_bot_text(await world.wait_thread(mention), lambda text: bool(text.strip()), timeout=20)
    await asyncio.sleep(5)

    assert await asyncio.to_thread(texts, scene, burst) == {}
    assert "#burst" not in await knowledge(scene, burst, "list")
