"""Messages made knowledge with "Add to knowledge" follow their author's deletes and edits, through the real bot
process, the fake Discord and a real PostgreSQL (embedded, given as KNOWLEDGE_DATABASE_URL): in a channel that is
not a knowledge channel, an edit re-reads the message's text and a delete removes it with its file within two
seconds (a deleted thread's message too), also when the process that added it is gone (another process follows
it); once its author's /forget-me took it out, an edit doesn't bring it back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
import pytest_asyncio

from fakes.discord import FakeInteraction, FakeUser, Perm
from fakes.harness.discord_world import DiscordWorld
from fakes.harness.server_folders import embedded_database_url

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

FOLLOWED_SECONDS = 2.0
ADMIN = Perm.MANAGE_GUILD | Perm.MANAGE_CHANNELS


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with embedded_database_url("added-discord-") as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(database_url: str) -> AsyncIterator[DiscordWorld]:
    async with DiscordWorld.open() as world:
        yield world  # each test sets its server up, then starts the bot


def passages(database_url: str, scope: str) -> dict[str, str]:
    """The scope's passages: key → text (none before the bot has made its table)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('knowledge_passages')").fetchone() == (None,):
            return {}
        found = conn.execute("SELECT key, text FROM knowledge_passages WHERE scope = %s", (scope,)).fetchall()
        return {str(key): str(text) for key, text in found}


async def until(database_url: str, scope: str, check: Any, what: str, within: float = FOLLOWED_SECONDS) -> None:
    started = time.monotonic()
    while not check(await asyncio.to_thread(passages, database_url, scope)):
        assert time.monotonic() - started < within, f"not within {within} s: {what}"
        await asyncio.sleep(0.05)


async def answered(world: DiscordWorld, interaction: FakeInteraction) -> str:
    def text() -> str | None:
        if interaction.callback_type == 4:
            return str((interaction.response_data or {}).get("content", ""))
        return str((world.fake.original_response(interaction) or {}).get("content") or "") or None

    return await world.fake.wait_for(text, 30)


async def answered_after(world: DiscordWorld, channel: dict[str, Any], user: FakeUser) -> None:
    """A mention in `channel`, answered: whatever happened there before it reached the bot (one gateway, in order)."""
    mention = await world.mention(channel, user, "Are you there?")
    await world.wait_bot_text(await world.wait_thread(mention), lambda text: bool(text.strip()), timeout=20)


async def test_an_added_message_follows_its_edit_and_its_delete_in_any_process(
    world: DiscordWorld, database_url: str
) -> None:
    fake, scope = world.fake, f"discord:{world.guild.id}"
    admin = world.add_user("admin", roles=[fake.add_role(world.guild, "admins", permissions=ADMIN)])
    bob = world.add_user("bob")
    lounge = world.add_channel("lounge")  # never switched on: not a knowledge channel
    await world.start_bot(KNOWLEDGE_DATABASE_URL=database_url)
    files = [("parking.txt", "text/plain", b"Visitors park on level minus two, bays 40 to 60.")]
    said = await world.say(lounge, bob, "The office closes at 18:00 on Fridays.", files=files)
    menu = await fake.send_message_command(lounge["id"], admin, "Add to knowledge", said["id"])
    assert "Added bob's message in #lounge." in await answered(world, menu)
    text = f"message:{said['id']}#1"
    await until(database_url, scope, lambda found: text in found and len(found) == 2, "the message and its file")

    await fake.edit_user_message(said["id"], "The office closes at 16:00 on Fridays.")
    await until(database_url, scope, lambda found: "16:00" in found.get(text, ""), "the edit re-read")

    thread = await fake.create_user_thread(lounge, bob, "bikes")
    in_thread = await world.say(thread, bob, "Bikes go in the courtyard rack.")
    menu = await fake.send_message_command(thread["id"], admin, "Add to knowledge", in_thread["id"])
    assert "Added bob's message" in await answered(world, menu)
    threaded = f"message:{in_thread['id']}#1"
    await until(database_url, scope, lambda found: threaded in found, "the thread's message")
    await fake.delete_thread(thread)  # Discord names none of its messages
    await until(database_url, scope, lambda found: threaded not in found, "the deleted thread's message removed")

    forget = await fake.send_slash_command(lounge["id"], bob, "forget-me")
    assert "1 of your messages the bot had as knowledge" in await answered(world, forget)
    await fake.edit_user_message(said["id"], "The office closes at 14:00 on Fridays.")
    await answered_after(world, lounge, bob)  # so the edit reached the bot
    await asyncio.sleep(1.0)
    assert text not in await asyncio.to_thread(
        passages, database_url, scope
    )  # forgotten: an edit doesn't bring it back

    await world.stop_bot()  # the process that added it is gone: the next one follows the delete
    await world.start_bot(KNOWLEDGE_DATABASE_URL=database_url)
    await fake.delete_user_message(said["id"])
    removed = "the message and its file removed"  # the new process starts its knowledge for it first
    await until(database_url, scope, lambda found: found == {}, removed, within=FOLLOWED_SECONDS + 3)

    other = await world.say(lounge, bob, "Lunch is served at noon.")
    await fake.delete_user_message(other["id"])  # a message never added: nothing else changes
    await answered_after(world, lounge, bob)  # so the deletion reached the bot
    await asyncio.sleep(0.5)
    assert await asyncio.to_thread(passages, database_url, scope) == {}
