"""A forum channel as knowledge, on Discord, through the real bot process, the fake Discord's forums, the real engine
(an embedded PostgreSQL with pgvector) and the embedded embeddings: `/knowledge channel on` in a forum reads its
existing posts (active and archived) with their messages, each passage titled by its post's title; a post's answer is
then found and cited with a link into the post, and a new post is knowledge within moments, its first message linked
by the post's own link. One bot for the module; the model is the fake that cites the passages it is given."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import pytest_asyncio

from bot.knowledge.embedded import start_embedded, stop_embedded
from fakes.citing_model import citing_responder
from fakes.discord import FakeInteraction, FakeUser, Perm
from fakes.harness.discord_world import DiscordWorld, log_shown
from fakes.harness.server_folders import server_folder

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

ADMIN = Perm.MANAGE_GUILD | Perm.MANAGE_CHANNELS
SEP = "\u203a"
ARCHIVE_PAGE = 100  # Discord's most archived threads a request


@dataclass
class Scene:
    world: DiscordWorld
    database: str
    forum: dict[str, Any]
    ask: dict[str, Any]
    admin: FakeUser
    alice: FakeUser
    bob: FakeUser
    posts: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]  # title → (post, starter, reply)
    archived_first: tuple[dict[str, Any], dict[str, Any]]  # an active post of that forum; the starter of one archived
    # before a page of others


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    folder = server_folder("forum-knowledge-discord-")  # nobody's, when root
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def database_url(folder: Path) -> Iterator[str]:
    yield start_embedded(folder / "pg").url
    stop_embedded(folder / "pg")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scene(database_url: str) -> AsyncIterator[Scene]:
    async with DiscordWorld.open() as world:
        fake = world.fake
        admins = fake.add_role(world.guild, "admins", permissions=ADMIN)
        admin = world.add_user("admin", roles=[admins])
        alice, bob = world.add_user("alice"), world.add_user("bob")
        forum = fake.add_forum_channel(world.guild, "support", tags=["Solved"])
        ask = world.add_channel("ask")
        world.model.responder = citing_responder
        archived_first = await archived_before_a_page(world, alice, bob)
        await world.start_bot(KNOWLEDGE_DATABASE_URL=database_url)
        posts = {}
        for title, question, answer in (
            ("Parking garage", "Where do visitors park?", "Visitors park in the garage under building B, level -2."),
            ("Printer jams", "Tray 2 keeps jamming", "Fan the paper before loading tray 2; it stops the jams."),
        ):
            post, starter = await fake.create_forum_post(forum, alice, title, question)
            reply = await world.say(post, bob, answer)
            posts[title] = (post, starter, reply)
        await fake.archive_thread(posts["Printer jams"][0]["id"])  # an archived post: read all the same
        yield Scene(world, database_url, forum, ask, admin, alice, bob, posts, archived_first)
        if world.bot is not None:
            await world.stop_bot(check=True)


async def archived_before_a_page(
    world: DiscordWorld, alice: FakeUser, bob: FakeUser
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A forum whose first post was archived before more posts than Discord lists in a page of its archive."""
    fake = world.fake
    archive = fake.add_forum_channel(world.guild, "archive")
    text = "The badge reader resets with the red button held ten seconds."
    first, first_starter = await fake.create_forum_post(archive, alice, "Badge reader", text)
    await fake.archive_thread(first["id"])  # archived first: the last of the archive's listing
    for number in range(ARCHIVE_PAGE + 4):
        post, _ = await fake.create_forum_post(archive, bob, f"Old post {number}", f"Nothing much {number}.")
        await fake.archive_thread(post["id"])
    rules, _ = await fake.create_forum_post(archive, alice, "Rules", "One question a post.")  # where the admin is
    return rules, first_starter


@pytest.fixture
def world(scene: Scene) -> Iterator[DiscordWorld]:
    with log_shown(scene.world) as world:
        yield world


async def knowledge(scene: Scene, channel: dict[str, Any], user: FakeUser, **options: Any) -> str:
    fake = scene.world.fake
    interaction: FakeInteraction = await fake.send_slash_command(channel["id"], user, "knowledge", {"channel": options})

    def text() -> str | None:
        shown = fake.original_response(interaction) or {}
        return str(shown.get("content") or "") or None

    return await fake.wait_for(text, 30)


def passages(scene: Scene, keys: list[str]) -> list[tuple[str, str, str]]:
    with psycopg.connect(scene.database, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('knowledge_passages')").fetchone() == (None,):
            return []
        found = conn.execute("SELECT key, title, url FROM knowledge_passages WHERE key = ANY(%s)", (keys,)).fetchall()
        return [(str(key), str(title), str(url)) for key, title, url in found]


async def until_passages(scene: Scene, keys: list[str], within: float = 30.0) -> dict[str, tuple[str, str]]:
    started = time.monotonic()
    while len(found := await asyncio.to_thread(passages, scene, keys)) < len(keys):
        assert time.monotonic() - started < within, f"never knowledge: {keys}, found {found}"
        await asyncio.sleep(0.2)
    return {key: (title, url) for key, title, url in found}


async def test_a_forum_made_knowledge_reads_its_posts_and_cites_them(scene: Scene, world: DiscordWorld) -> None:
    in_a_post = scene.posts["Parking garage"][0]  # a forum has no message box: the command is run in a post
    said = await knowledge(scene, in_a_post, scene.admin, state="on")
    assert said.startswith("Done: messages in #support and its posts are knowledge")
    guild = world.guild.id
    keys = [message["id"] for post in scene.posts.values() for message in post[1:]]
    found = await until_passages(scene, keys)
    for title, (post, starter, reply) in scene.posts.items():
        assert found[starter["id"]] == (f"#support {SEP} {title}", f"https://discord.com/channels/{guild}/{post['id']}")
        assert found[reply["id"]][0] == f"#support {SEP} {title}"
        assert found[reply["id"]][1] == f"https://discord.com/channels/{guild}/{post['id']}/{reply['id']}"

    question = "Which level of the garage do visitors use?"
    thread = await world.wait_thread(await world.mention(scene.ask, scene.alice, question))
    messages = await world.wait_bot_text(thread, lambda text: "level -2" in text, timeout=30)
    answer = "\n".join(m["content"] for m in messages)
    post = scene.posts["Parking garage"][0]
    assert f"https://discord.com/channels/{guild}/{post['id']}" in answer and "Parking garage" in answer


async def test_a_new_post_in_a_knowledge_forum_is_knowledge_at_once(scene: Scene, world: DiscordWorld) -> None:
    post, starter = await world.fake.create_forum_post(
        scene.forum, scene.bob, "Wi-Fi password", "The guest Wi-Fi password is on the fridge."
    )
    found = await until_passages(scene, [starter["id"]], within=10)
    link = f"https://discord.com/channels/{world.guild.id}/{post['id']}"
    assert found[starter["id"]] == (f"#support {SEP} Wi-Fi password", link)
    await world.fake.delete_thread(post)
    started = time.monotonic()
    while await asyncio.to_thread(passages, scene, [starter["id"]]):
        assert time.monotonic() - started < 10, "a deleted post's first message stayed knowledge"
        await asyncio.sleep(0.2)


async def test_a_forums_posts_archived_beyond_discords_first_page_are_read(scene: Scene) -> None:
    rules, first_starter = scene.archived_first
    said = await knowledge(scene, rules, scene.admin, state="on")
    assert said.startswith("Done: messages in #archive and its posts are knowledge")
    await until_passages(scene, [first_starter["id"]], within=60)
