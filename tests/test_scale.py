"""Several bot processes acting as one bot: Discord shards split the guilds, every event is
answered once however the shards overlap, and one conversation is answered in order whichever
process takes its next message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.core import ChatCore, Turn
from bot.errors import FailureKind, ReplyFailure
from bot.locks import ConversationLocks
from bot.prompt import MistralTokenCounter
from bot.render import SurfaceLimits
from bot.store import RedisHistoryStore, StoredMessage
from config.settings import HistorySettings
from tests.conftest import REDIS_URL, make_core, remote_model_settings
from tests.discord_harness import BotProcess, DiscordWorld
from tests.fakes.memory_surface import MemorySurface
from tests.fakes.model_server import FakeModelServer, Script

pytestmark = pytest.mark.timeout(90)


# -- one conversation, two processes ------------------------------------------------------------


@pytest.fixture
async def two_processes(
    model_server: FakeModelServer, history_settings: HistorySettings, token_counter: MistralTokenCounter
) -> AsyncIterator[tuple[ChatCore, ChatCore]]:
    """Two cores with stores (Redis connections) of their own: two processes of one bot."""
    cores = []
    for _ in range(2):
        store = RedisHistoryStore.from_url(REDIS_URL, history_settings)
        locks = ConversationLocks(store.client, store.lock_key)
        cores.append(make_core(remote_model_settings(model_server.base_url), store, token_counter, locks=locks))
    yield cores[0], cores[1]
    for core in cores:
        await core.backend.aclose()
        await core.store.aclose()


def shown() -> MemorySurface:
    return MemorySurface(SurfaceLimits(max_length=2000, min_edit_interval=0.05))


async def test_a_follow_up_taken_by_another_process_waits_for_the_first_answer_and_sees_it(
    two_processes: tuple[ChatCore, ChatCore], model_server: FakeModelServer
) -> None:
    first_process, second_process = two_processes
    first_answer = "The first answer, written slowly over a second or so."
    model_server.responder = lambda body: Script(
        text=first_answer if len(body["messages"]) <= 2 else "The second answer.", rate=12
    )
    first = asyncio.create_task(first_process.answer(Turn("scale:t", "1", "Ada", "First question?"), shown()))
    await asyncio.sleep(0.3)  # the first is streaming when the follow-up comes
    second_surface = shown()
    await second_process.answer(Turn("scale:t", "2", "Bob", "Follow-up?"), second_surface)
    await first
    assert second_surface.messages == ["The second answer."]
    follow_up = model_server.requests[-1].body["messages"]
    assert {"role": "assistant", "content": first_answer} in follow_up  # it waited for the final text
    history = await second_process.store.read("scale:t")
    assert [(m.role, m.content) for m in history] == [
        ("user", "First question?"), ("assistant", first_answer), ("user", "Follow-up?"), ("assistant", "The second answer.")
    ]  # fmt: skip


async def test_a_turn_that_lost_the_conversation_cannot_write_over_the_newer_turn(
    two_processes: tuple[ChatCore, ChatCore],
) -> None:
    stalled_store, live_store = (core.store for core in two_processes)
    assert isinstance(stalled_store, RedisHistoryStore) and isinstance(live_store, RedisHistoryStore)
    stalled_locks = ConversationLocks(stalled_store.client, stalled_store.lock_key)
    live_locks = ConversationLocks(live_store.client, live_store.lock_key)
    async with stalled_locks.hold("scale:fenced") as stalled_fence:
        await stalled_store.client.delete(stalled_store.lock_key("scale:fenced"))  # its lease lapsed (a long pause)
        async with live_locks.hold("scale:fenced") as live_fence:
            await live_store.begin_turn("scale:fenced", StoredMessage("user", "newer question"), live_fence)
            with pytest.raises(ReplyFailure) as refused:
                await stalled_store.add_reply("scale:fenced", StoredMessage("assistant", "stale answer"), stalled_fence)
            assert refused.value.kind is FailureKind.STORE_UNAVAILABLE
    assert [m.content for m in await live_store.read("scale:fenced")] == ["newer question"]


# -- Discord shards -------------------------------------------------------------------------------


def log_lines(bot: BotProcess, event: str) -> list[str]:
    return [line for line in bot.stderr.splitlines() if event in line]


async def start_shard_process(world: DiscordWorld, shard_ids: str, count: int = 2) -> BotProcess:
    bot = await BotProcess.start("discord", env=world.bot_env(DISCORD_SHARD_COUNT=str(count), DISCORD_SHARD_IDS=shard_ids))
    await world.fake.wait_for(lambda: log_lines(bot, "discord_ready") or not bot.running, 30)
    assert bot.running, bot.stderr
    return bot


async def test_two_processes_with_a_shard_each_answer_their_own_guilds_and_overlaps_answer_once() -> None:
    async with DiscordWorld.open() as world:
        guilds = [world.fake.add_guild(f"Shard {shard} guild", shard=(shard, 2)) for shard in (0, 1)]
        channels = [world.fake.add_text_channel(guild, "general") for guild in guilds]
        alice = world.add_user("alice")
        processes = [await start_shard_process(world, "0"), await start_shard_process(world, "1")]
        overlapping = await start_shard_process(world, "0,1")  # misconfigured, or a replacement started early
        try:
            for shard, bot in enumerate(processes):
                assert f"shards=[{shard}]" in log_lines(bot, "discord_ready")[0]
            assert "shards=[0, 1]" in log_lines(overlapping, "discord_ready")[0]
            threads = []
            for shard, channel in enumerate(channels):
                world.answer(f"shard-q{shard}", Script(text=f"Answer from the guild of shard {shard}.", rate=50))
                message = await world.mention(channel, alice, f"shard-q{shard} hello")
                threads.append(await world.wait_thread(message))
                await world.wait_bot_text(threads[-1]["id"], f"Answer from the guild of shard {shard}.")
            await world.settle(1.0)
            for shard, thread in enumerate(threads):
                assert len(world.model_requests(f"shard-q{shard}")) == 1  # asked once
                assert len(world.bot_messages(thread)) == 1  # one answer, not two
            turns = {bot.pid: log_lines(bot, "turn_finished") for bot in processes + [overlapping]}
            assert sum(len(lines) for lines in turns.values()) == 2, turns
            for shard, bot in enumerate(processes):  # a process never saw the other shard's guild
                other = threads[1 - shard]["id"]
                assert not [line for line in turns[bot.pid] if f"discord:conv:{other}" in line], turns
        finally:
            for bot in processes + [overlapping]:
                assert await bot.stop() == 0, bot.stderr
