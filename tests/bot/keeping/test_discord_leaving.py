"""Every kind of record the bot keeps (bot.keeping.kinds) against the bot leaving a Discord server (GUILD_DELETE
without `unavailable`), through the real bot process, the fake Discord, Redis and a real PostgreSQL (embedded, as
KNOWLEDGE_DATABASE_URL): a server is filled the way people fill it (a knowledge channel, a message added from its
menu, a channel setting, a question answered under budgets, a 👎 with its reason), the bot is removed, and every
key naming the server, one of its channels or the question's thread in its name or its value is put to its kind: a
kind leaving removes must have none left; any other must say why and expire. Every key the bot wrote for the server
belongs to a listed kind."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from adapters.shared.feedback.records import Feedback
from bot.keeping.kinds import KINDS, Kind, Way
from fakes.discord import FakeInteraction, Perm
from fakes.harness.discord_world import DiscordWorld
from fakes.harness.processes import REDIS_URL
from fakes.harness.server_folders import embedded_database_url
from tests.bot.keeping.test_ways_out import SETTLE_SECONDS, Left, keys_naming, passages, removed_by

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

ADMIN = Perm.MANAGE_GUILD | Perm.MANAGE_CHANNELS


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with embedded_database_url("leaving-discord-") as url:
        yield url


async def answered(world: DiscordWorld, interaction: FakeInteraction) -> str:
    def text() -> str | None:
        if interaction.callback_type == 4:
            return str((interaction.response_data or {}).get("content", ""))
        return str((world.fake.original_response(interaction) or {}).get("content") or "") or None

    return await world.fake.wait_for(text, 30)


async def kept_for_votes(world: DiscordWorld, question: dict[str, Any]) -> None:
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        feedback = Feedback(client, world.key_prefix, answer_seconds=60)
        await world.fake.wait_for(lambda: feedback.answer(f"discord:{question['id']}"), 10)
    finally:
        await client.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def left(database_url: str) -> AsyncIterator[tuple[Left, Left]]:
    """The server's keys before the bot leaves it, and after."""
    async with DiscordWorld.open() as world:
        fake, guild = world.fake, world.guild
        admin = world.add_user("admin", roles=[fake.add_role(guild, "admins", permissions=ADMIN)])
        bob = world.add_user("bob")
        notes, lounge, ask = world.add_channel("notes"), world.add_channel("lounge"), world.add_channel("ask")
        budgets = {"USER_DAILY_BUDGET": "10000000", "SERVER_MONTHLY_BUDGET": "100000000"}
        await world.start_bot(KNOWLEDGE_DATABASE_URL=database_url, USER_TURNS_PER_MINUTE="100", **budgets)
        switched = await fake.send_slash_command(notes["id"], admin, "knowledge", {"channel": {"state": "on"}})
        assert (await answered(world, switched)).startswith("Done")
        await world.say(notes, bob, "Bob's note: the boiler key hangs by the door.")
        said = await world.say(lounge, bob, "The lounge closes at nine.")
        menu = await fake.send_message_command(lounge["id"], admin, "Add to knowledge", said["id"])
        assert "Added" in await answered(world, menu)
        respond = await fake.send_slash_command(lounge["id"], admin, "respond", {"mode": "questions"})
        assert "Done" in await answered(world, respond)

        question = await world.mention(ask, bob, "Where does the boiler key hang?")
        thread = await world.wait_thread(question, timeout=15)
        [answer] = await world.wait_bot_text(thread, lambda text: bool(text.strip()), timeout=20)
        await kept_for_votes(world, question)
        down = await fake.click_button(answer["id"], f"vote:down:{question['id']}", bob)
        await fake.wait_for(lambda: down.modal, 10)
        assert "Thanks" in await answered(world, await fake.submit_modal(down, {"reason": "It was vague"}))
        scope = f"discord:{guild.id}"
        started = time.monotonic()
        while await asyncio.to_thread(passages, database_url, scope) < 2:
            assert time.monotonic() - started < 20, "the server's passages"
            await asyncio.sleep(0.1)

        redis = aioredis.from_url(REDIS_URL)
        try:
            named = (str(guild.id), *(str(place["id"]) for place in (notes, lounge, ask, thread)))
            before = Left(None, await keys_naming(redis, world.key_prefix, named))
            await fake.remove_bot_from_guild(guild)
            gone, deadline = removed_by(Way.SERVER), time.monotonic() + SETTLE_SECONDS
            while True:
                keys = await keys_naming(redis, world.key_prefix, named)
                count = await asyncio.to_thread(passages, database_url, scope)
                settled = not count and not any(kind in gone for kind, _ in keys.values())
                if settled or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            yield before, Left(Way.SERVER, keys, count)
        finally:
            await redis.aclose()


async def test_every_key_the_bot_writes_for_a_server_is_of_a_listed_kind(left: tuple[Left, Left]) -> None:
    before, _ = left
    assert sorted(key for key, (kind, _) in before.keys.items() if not kind) == []
    written = {kind for kind, _ in before.keys.values()}
    assert {"answers", "knowledge gaps", "knowledge channels", "knowledge added messages", "place settings"} <= written
    assert {"usage", "budget counters", "conversation", "server's conversations"} <= written


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
async def test_each_kind_follows_the_bot_leaving_a_server(left: tuple[Left, Left], kind: Kind) -> None:
    _, after = left
    if kind.table:
        assert after.passages == 0, f"{kind.name}: {kind.removed[Way.SERVER]}"
        return
    staying = {key: ttl for key, (name, ttl) in after.keys.items() if name == kind.name}
    if Way.SERVER in kind.removed:
        assert staying == {}, f"{kind.name} should go ({kind.removed[Way.SERVER]}), left: {sorted(staying)}"
    else:
        assert kind.kept, f"{kind.name}: say why leaving a server doesn't remove it"
        assert not kind.expires or all(ttl > 0 for ttl in staying.values()), f"{kind.name} left without expiry"
