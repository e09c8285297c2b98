"""A docs site as a Discord server's knowledge, through the real bot process, the fake Discord, a loopback docs site
(fakes.docs_site: a sitemap index, robots.txt, pages wrapped in navigation, a header, a footer and a cookie banner)
and the real engine: `/knowledge add url:` reads the site in the background, a question is answered from its page
and cited with the page's heading and anchor, `/knowledge list` shows what was read, `/knowledge sync` follows a page
changed and one removed, `/knowledge remove` takes the site away with its pages, another server never sees it, and an
address that resolves to a private one is refused at once."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import pytest_asyncio

from bot.knowledge.embedded import start_embedded, stop_embedded
from fakes.citing_model import citing_responder
from fakes.discord import FakeGuild, FakeInteraction, FakeUser, Perm
from fakes.docs_site import FakeDocsSite
from fakes.docs_site_pages import CHROME_WORDS, changed_article
from fakes.harness.discord_world import DiscordWorld
from fakes.harness.server_folders import server_folder

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(90)]

ADMIN = Perm.MANAGE_GUILD | Perm.MANAGE_CHANNELS


@dataclass
class Scene:
    world: DiscordWorld
    site: FakeDocsSite
    database: str
    other: FakeGuild
    ask: dict[str, Any]
    elsewhere: dict[str, Any]
    admin: FakeUser
    alice: FakeUser


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    folder = server_folder("web-knowledge-discord-")  # nobody's, when root
    yield start_embedded(folder / "pg").url
    stop_embedded(folder / "pg")
    shutil.rmtree(folder, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scene(database_url: str) -> AsyncIterator[Scene]:
    site = FakeDocsSite(hostile=False, crawl_delay=None)
    await site.start()
    async with DiscordWorld.open() as world:
        fake, guild = world.fake, world.guild
        other = fake.add_guild("Other Guild")
        admin = world.add_user(
            "admin",
            roles=[
                fake.add_role(guild, "admins", permissions=ADMIN),
                fake.add_role(other, "admins", permissions=ADMIN),
            ],
        )
        alice = world.add_user("alice")
        ask, elsewhere = world.add_channel("ask"), fake.add_text_channel(other, "elsewhere")
        world.model.responder = citing_responder
        await world.start_bot(
            KNOWLEDGE_DATABASE_URL=database_url,
            KNOWLEDGE_ALLOW_PRIVATE_URLS=site.allowance,
            KNOWLEDGE_REQUEST_INTERVAL_SECONDS="0",
        )
        try:
            yield Scene(world, site, database_url, other, ask, elsewhere, admin, alice)
        finally:
            if world.bot is not None:
                await world.stop_bot(check=True)
            await site.stop()


async def knowledge(scene: Scene, channel: dict[str, Any], user: FakeUser, sub: str, **options: Any) -> str:
    interaction = await scene.world.fake.send_slash_command(channel["id"], user, "knowledge", {sub: options})
    return await answered(scene, interaction)


async def answered(scene: Scene, interaction: FakeInteraction) -> str:
    fake = scene.world.fake

    def text() -> str | None:
        if interaction.callback_type == 4:
            return str((interaction.response_data or {}).get("content", ""))
        return str((fake.original_response(interaction) or {}).get("content") or "") or None

    said = await fake.wait_for(text, 30)
    assert interaction.ephemeral
    return said


async def ask(scene: Scene, channel: dict[str, Any], question: str) -> tuple[str, str]:
    """The system prompt the model got for `question`, and the bot's answer in its thread."""
    world = scene.world
    thread = await world.wait_thread(await world.mention(channel, scene.alice, question))
    [request] = await world.wait_model_request(question, timeout=20)
    messages = await world.wait_bot_text(thread, lambda text: bool(text.strip()), timeout=20)
    return str(request.body["messages"][0]["content"]), "\n".join(m["content"] for m in messages)


def web_passages(scene: Scene, scope: str) -> list[tuple[str, str, str]]:
    """(text, locator, url) of the scope's passages read from the web."""
    with psycopg.connect(scene.database, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('knowledge_passages')").fetchone() == (None,):
            return []
        query = "SELECT text, locator, url FROM knowledge_passages WHERE scope = %s AND source LIKE 'web:%%'"
        return [(str(a), str(b), str(c)) for a, b, c in conn.execute(query, (scope,)).fetchall()]


async def until(check: Any, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.2)


async def test_a_docs_site_is_read_cited_by_heading_and_followed_until_removed(scene: Scene) -> None:
    site, scope = scene.site, f"discord:{scene.world.guild.id}"
    refused = await knowledge(scene, scene.ask, scene.alice, "add", url=site.docs_url)
    assert "Manage Server" in refused and web_passages(scene, scope) == []

    said = await knowledge(scene, scene.ask, scene.admin, "add", url=site.docs_url)
    assert said.startswith(f"Added {site.docs_url}.")
    await until(lambda: any("ACME_PROXY" in text for text, _, _ in web_passages(scene, scope)), "the site read")

    system, answer = await ask(scene, scene.ask, "How do I set the proxy for the acme daemon?")
    assert "ACME_PROXY" in system
    assert "Configuring Acme \u203a Proxy settings" in answer
    assert f"<{site.base_url}/docs/configure.html#proxy>" in answer
    stored = web_passages(scene, scope)
    assert not [text for text, _, _ in stored if any(word in text for word in CHROME_WORDS)], "only the article"
    assert not [text for text, _, _ in stored if "marmalade-seven" in text], "robots.txt's disallowed page"

    listed = await synced_list(scene)
    assert f"**{site.docs_url}** (site)" in listed and "next <t:" in listed

    site.change("/docs/configure.html", changed_article("Configuring Acme", "Proxy settings", "Set ACME_HTTPS_PROXY."))
    site.remove("/docs/leaving.html", 410)
    assert "again now" in await knowledge(scene, scene.ask, scene.admin, "sync")
    await until(
        lambda: (
            (texts := " ".join(text for text, _, _ in web_passages(scene, scope)))
            and "ACME_HTTPS_PROXY" in texts
            and "XML-RPC" not in texts
        ),
        "the changed page read again and the removed one gone",
    )

    removed = await knowledge(scene, scene.ask, scene.admin, "remove", source=site.docs_url)
    assert removed.startswith(f"Removed {site.docs_url}")
    assert web_passages(scene, scope) == []
    assert site.docs_url not in await knowledge(scene, scene.ask, scene.admin, "list")


async def synced_list(scene: Scene, seconds: float = 30.0) -> str:
    """/knowledge list once the site's first sync has ended."""
    deadline = time.monotonic() + seconds
    while "read <t:" not in (listed := await knowledge(scene, scene.ask, scene.admin, "list")):
        assert time.monotonic() < deadline, f"the sync didn't end within {seconds} s: {listed}"
        await asyncio.sleep(0.5)
    return listed


async def test_another_server_never_sees_the_site(scene: Scene) -> None:
    site = scene.site
    await knowledge(scene, scene.ask, scene.admin, "add", url=site.docs_url + "install.html")
    scope = f"discord:{scene.world.guild.id}"
    await until(lambda: any("pip install" in text for text, _, _ in web_passages(scene, scope)), "the page read")
    system, _ = await ask(scene, scene.elsewhere, "How do I install acme with pip?")
    assert "pip install acme" not in system


async def test_a_private_address_or_something_else_is_refused_at_once(scene: Scene) -> None:
    canary = f"http://127.0.0.1:{scene.site.canary.port}/"
    said = await knowledge(scene, scene.ask, scene.admin, "add", url=canary)
    assert "private address" in said
    assert "not a web address" in await knowledge(scene, scene.ask, scene.admin, "add", url="ftp://example.com/")
    assert "`file:` or a `url:`" in await knowledge(scene, scene.ask, scene.admin, "add")
    assert scene.site.canary.requests == []
