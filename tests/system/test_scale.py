"""Several bot processes acting as one bot: Discord shards split the guilds, every event is
answered once however the shards overlap, and one conversation is answered in order whichever
process takes its next message."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.shared.reply_records import ReplyLedger, ReplyRecord
from bot.core import ChatCore, Turn
from bot.errors import FailureKind, ReplyFailure
from bot.reply.surface import SurfaceLimits
from bot.state.coordination import Coordination, TurnQuota
from bot.state.locks import ConversationLocks
from bot.state.redis_client import CONNECTIONS, RedisClients
from bot.state.store import HistoryStore, StoredMessage
from bot.turn.prompt import MistralTokenCounter
from config.settings import HistorySettings
from fakes.harness.discord_world import BotProcess, DiscordWorld
from fakes.harness.processes import BOT_START_SECONDS, REDIS_URL
from fakes.harness.slack_world import SIGNING_SECRET, SlackHarness, eventually
from fakes.memory_surface import MemorySurface
from fakes.model_server import FakeModelServer, Script
from fakes.slack import FakeSlack
from tests.conftest import close_store, make_core, open_store, remote_model_settings

pytestmark = pytest.mark.timeout(90)


# -- one conversation, two processes ------------------------------------------------------------


@dataclass
class Process:
    """One process of the bot: its core, and the Redis connections it answers through."""

    core: ChatCore
    store: HistoryStore
    coordination: Coordination

    async def answer(self, turn: Turn, surface: MemorySurface) -> None:
        await self.core.answer(turn, surface)


@pytest.fixture
async def two_processes(
    model_server: FakeModelServer, history_settings: HistorySettings, token_counter: MistralTokenCounter
) -> AsyncIterator[tuple[Process, Process]]:
    """Two cores with stores (Redis connections) of their own: two processes of one bot."""
    processes = []
    for _ in range(2):
        store = open_store(history_settings.redis_url or REDIS_URL, history_settings)
        coordination = Coordination(store.client, history_settings.key_prefix, 60)
        core = make_core(remote_model_settings(model_server.base_url), store, token_counter, coordination=coordination)
        processes.append(Process(core, store, coordination))
    yield processes[0], processes[1]
    for process in processes:
        await process.core.aclose()
        await close_store(process.store)


async def orphans(ledger: ReplyLedger) -> list[ReplyRecord]:
    """The replies of Discord a dead process left, each claimed by `ledger`'s process."""
    found: list[ReplyRecord] = []

    async def collect(record: ReplyRecord) -> None:
        found.append(record)

    await ledger.finish_orphans("discord", collect)
    return found


def shown() -> MemorySurface:
    return MemorySurface(SurfaceLimits(max_length=2000, min_edit_interval=0.05))


async def test_a_follow_up_taken_by_another_process_waits_for_the_first_answer_and_sees_it(
    two_processes: tuple[Process, Process], model_server: FakeModelServer
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
        ("user", "First question?"),
        ("assistant", first_answer),
        ("user", "Follow-up?"),
        ("assistant", "The second answer."),
    ]


async def test_a_turn_that_lost_the_conversation_cannot_write_over_the_newer_turn(
    two_processes: tuple[Process, Process],
) -> None:
    stalled_store, live_store = (core.store for core in two_processes)
    assert isinstance(stalled_store, HistoryStore) and isinstance(live_store, HistoryStore)
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


async def test_a_turn_whose_lease_lapsed_under_load_with_no_newer_turn_still_keeps_its_answer(
    two_processes: tuple[Process, Process],
) -> None:
    store = two_processes[0].store
    assert isinstance(store, HistoryStore)
    locks = ConversationLocks(store.client, store.lock_key)
    async with locks.hold("scale:lapsed") as fence:
        await store.begin_turn("scale:lapsed", StoredMessage("user", "question"), fence)
        await store.client.delete(store.lock_key("scale:lapsed"))  # its renewals queued past the lease
        await store.add_reply("scale:lapsed", StoredMessage("assistant", "answer"), fence)
    assert [m.content for m in await store.read("scale:lapsed")] == ["question", "answer"]


# -- shared by every process: quotas, and the replies a dead process left ----------------------


async def test_a_persons_quota_is_counted_across_processes(two_processes: tuple[Process, Process]) -> None:
    quotas = [TurnQuota(process.coordination, per_user=3) for process in two_processes]
    outcomes = await asyncio.gather(
        *(quotas[number % 2].check("discord", "ada", "general") for number in range(6)), return_exceptions=True
    )
    refused = [outcome for outcome in outcomes if isinstance(outcome, ReplyFailure)]
    assert outcomes.count(None) == 3 and len(refused) == 3, outcomes
    for failure in refused:
        assert failure.kind is FailureKind.QUOTA
        wait = re.search(r"Please wait (\d+) s", failure.reason)
        assert wait and 1 <= int(wait[1]) <= 60, failure.reason
    await quotas[1].check("discord", "bob", "general")  # someone else is not held back


async def test_a_reply_left_by_a_dead_process_is_finished_by_exactly_one_live_one(
    two_processes: tuple[Process, Process], history_settings: HistorySettings
) -> None:
    clients = [core.store.client for core in two_processes if isinstance(core.store, HistoryStore)]
    dead = ReplyLedger(clients[0], history_settings.key_prefix)
    live = [ReplyLedger(client, history_settings.key_prefix) for client in clients]
    for ledger in (dead, *live):
        await ledger.start()
    try:
        left = ReplyRecord(uuid.uuid4().hex, dead.process_id, "discord", "discord:conv:1", {"channel_id": "1"})
        await dead.save(left)
        in_progress = ReplyRecord(
            uuid.uuid4().hex, live[0].process_id, "discord", "discord:conv:2", {"channel_id": "2"}
        )
        await live[0].save(in_progress)
        await dead.stop()  # its lease is gone, as when a process dies and its lease lapses
        claims = await asyncio.gather(*(orphans(ledger) for ledger in live))
        assert sorted(len(claimed) for claimed in claims) == [0, 1], claims
        [claimed] = claims[0] + claims[1]
        assert (claimed.id, claimed.thread, claimed.place) == (left.id, "discord:conv:1", {"channel_id": "1"})
        assert [await orphans(ledger) for ledger in live] == [[], []]  # a live process's reply stays
    finally:
        for ledger in live:
            await ledger.stop()


async def test_a_process_whose_reply_records_wait_for_connections_is_never_taken_for_dead(
    history_settings: HistorySettings,
) -> None:
    """On a busy core a burst of reply records queues for the process's Redis connections; its
    heartbeat has connections of its own, so no other process finishes its live replies as
    interrupted meanwhile."""
    busy_clients, other_clients = (RedisClients.connect(REDIS_URL, cluster=history_settings.cluster) for _ in range(2))
    busy, other = (
        ReplyLedger(clients.main, history_settings.key_prefix, beat=clients.heartbeat, lease_seconds=1.0)
        for clients in (busy_clients, other_clients)
    )
    for ledger in (busy, other):
        await ledger.start()
    try:
        live = ReplyRecord(uuid.uuid4().hex, busy.process_id, "discord", "discord:conv:1", {"channel_id": "1"})
        await busy.save(live)
        nothing = f"{history_settings.key_prefix}nothing"
        held = [asyncio.ensure_future(busy_clients.main.blpop([nothing], timeout=3)) for _ in range(CONNECTIONS)]
        await asyncio.sleep(2.5)  # every record connection busy for more than two of its leases
        assert await orphans(other) == []
        await asyncio.gather(*held)
    finally:
        for ledger in (busy, other):
            await ledger.stop()
        await busy_clients.aclose()
        await other_clients.aclose()


# -- Discord shards -------------------------------------------------------------------------------


def log_lines(bot: BotProcess, event: str) -> list[str]:
    return [line for line in bot.stderr.splitlines() if event in line]


def claimed_elsewhere(bots: list[BotProcess], message: dict[str, Any]) -> list[int]:
    """The processes that received `message` and left it to the one that had claimed it."""
    key = f"discord:msg:{message['id']}"
    return [bot.pid for bot in bots if any(key in line for line in log_lines(bot, "event_claimed_elsewhere"))]


async def start_shard_process(world: DiscordWorld, shard_ids: str, count: int = 2) -> BotProcess:
    # At debug level a process logs the events it received and left to the process that claimed them first.
    env = world.bot_env(DISCORD_SHARD_COUNT=str(count), DISCORD_SHARD_IDS=shard_ids, LOG_LEVEL="debug")
    bot = await BotProcess.start("discord", env=env)
    await world.fake.wait_for(lambda: log_lines(bot, "discord_ready") or not bot.running, BOT_START_SECONDS)
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
            threads, messages = [], []
            for shard, channel in enumerate(channels):
                world.answer(f"shard-q{shard}", Script(text=f"Answer from the guild of shard {shard}.", rate=50))
                messages.append(await world.mention(channel, alice, f"shard-q{shard} hello"))
                threads.append(await world.wait_thread(messages[-1]))
                await world.wait_bot_text(threads[-1]["id"], f"Answer from the guild of shard {shard}.")
            # Both processes running a guild's shard got its message: the one that didn't answer says it found the
            # message claimed (so one answer is not just a second process that never heard it).
            everyone = [*processes, overlapping]
            for shard, message in enumerate(messages):
                await world.fake.wait_for(lambda m=message: len(claimed_elsewhere(everyone, m)) == 1, 10)
                [loser] = claimed_elsewhere(everyone, message)
                assert loser in (processes[shard].pid, overlapping.pid)
            await world.settle(1.0)
            for shard, thread in enumerate(threads):
                assert len(world.model_requests(f"shard-q{shard}")) == 1  # asked once
                assert len(world.bot_messages(thread)) == 1  # one answer, not two
            turns = {bot.pid: log_lines(bot, "turn_finished") for bot in [*processes, overlapping]}
            assert sum(len(lines) for lines in turns.values()) == 2, turns
            for shard, bot in enumerate(processes):  # a process never saw the other shard's guild
                other = threads[1 - shard]["id"]
                assert not [line for line in turns[bot.pid] if f"discord:conv:{other}" in line], turns
        finally:
            for bot in [*processes, overlapping]:
                assert await bot.stop() == 0, bot.stderr


async def test_shard_count_auto_runs_as_many_shards_as_discord_recommends_and_answers_on_each() -> None:
    async with DiscordWorld.open() as world:
        world.fake.recommended_shards = 2  # what GET /gateway/bot answers
        guilds = [world.fake.add_guild(f"Shard {shard} guild", shard=(shard, 2)) for shard in (0, 1)]
        channels = [world.fake.add_text_channel(guild, "general") for guild in guilds]
        alice = world.add_user("alice")
        bot = await BotProcess.start("discord", env=world.bot_env(DISCORD_SHARD_COUNT="auto"))
        try:
            await world.fake.wait_for(lambda: log_lines(bot, "discord_ready") or not bot.running, BOT_START_SECONDS)
            assert bot.running, bot.stderr
            ready = log_lines(bot, "discord_ready")[0]
            assert "shards=[0, 1]" in ready and "shard_count=2" in ready, ready
            for shard, channel in enumerate(channels):
                world.answer(f"auto-q{shard}", Script(text=f"Answer on shard {shard}.", rate=50))
                thread = await world.wait_thread(await world.mention(channel, alice, f"auto-q{shard} hello"))
                await world.wait_bot_text(thread["id"], f"Answer on shard {shard}.")
        finally:
            assert await bot.stop() == 0, bot.stderr


# -- Slack over HTTP: several workers behind one address --------------------------------------------


async def test_slack_http_workers_answer_a_thread_in_order_whichever_worker_gets_each_message(
    model_server: FakeModelServer, key_prefix: str
) -> None:
    first_answer = "The first answer, written over about two seconds by a slow model."
    model_server.responder = lambda body: Script(
        text=first_answer if len(body["messages"]) <= 2 else "The follow-up's answer.", rate=6
    )
    async with FakeSlack() as fake:
        workers = [SlackHarness(fake, model_server.base_url, key_prefix, mode="http") for _ in range(2)]
        try:
            for worker in workers:
                await worker.start_bot()
            general = FakeSlack.DEFAULT_CHANNEL
            mention = fake.app_mention_event(general, FakeSlack.DEFAULT_USER, "First question?")
            await fake.deliver_event_http(
                workers[0].events_url, fake.event_callback(mention), signing_secret=SIGNING_SECRET
            )
            await asyncio.sleep(0.5)  # the first answer is streaming when the follow-up comes
            follow_up = fake.message_event(general, FakeSlack.DEFAULT_USER, "Follow-up?", thread_ts=mention["ts"])
            payload = fake.event_callback(follow_up)
            # To the other worker, then again to the first (a retry landing elsewhere): the event
            # is claimed by the worker that got it first, a few milliseconds after its ack.
            await fake.deliver_event_http(workers[1].events_url, payload, signing_secret=SIGNING_SECRET)
            await asyncio.sleep(0.3)
            await fake.deliver_event_http(workers[0].events_url, payload, signing_secret=SIGNING_SECRET)
            key = workers[0].thread_key(general, mention["ts"])

            def finished():
                return [line for w in workers for bot in w.bots for line in bot.logs("turn_finished", thread=key)]

            await eventually(lambda: len(finished()) >= 2, 15, "both turns to finish")
            await asyncio.sleep(0.3)
            assert {bot.pid for w in workers for bot in w.bots if bot.logs("turn_finished", thread=key)} == {
                w.bots[0].pid for w in workers
            }  # each worker answered one of the two
            replies = workers[0].replies(general, mention["ts"])
            assert [reply.text for reply in replies] == [first_answer, "The follow-up's answer."]
            assert len(model_server.requests) == 2  # the follow-up was answered once
            asked = model_server.requests[-1].body["messages"]
            assert {"role": "assistant", "content": first_answer} in asked  # it waited for the final text
        finally:
            for worker in workers:
                await worker.close()


# -- Discord: two processes, one rate limit ------------------------------------------------------------


async def burst_over_two_shards(world: DiscordWorld, per_shard: int) -> tuple[list[BotProcess], list[list[dict]]]:
    """Two processes with a shard each; `per_shard` mentions in as many channels of each shard's
    guild, all at once. Returns the processes and each shard's threads."""
    guilds = [world.fake.add_guild(f"Shard {shard} guild", shard=(shard, 2)) for shard in (0, 1)]
    channels = [[world.fake.add_text_channel(guild, f"room-{n}") for n in range(per_shard)] for guild in guilds]
    alice = world.add_user("alice")
    processes = [await start_shard_process(world, "0"), await start_shard_process(world, "1")]
    world.answer("burst-q", Script(text=" ".join(f"word{n}" for n in range(40)) + ".", rate=20))  # 2 s each
    mentions = await asyncio.gather(
        *(
            world.mention(channel, alice, f"burst-q {shard}-{n}")
            for shard in (0, 1)
            for n, channel in enumerate(channels[shard])
        )
    )
    threads = [
        [await world.wait_thread(mention) for mention in mentions[shard * per_shard : (shard + 1) * per_shard]]
        for shard in (0, 1)
    ]
    return processes, threads


ANSWER = " ".join(f"word{n}" for n in range(40)) + "."


async def test_a_burst_spread_over_two_processes_stays_inside_discords_global_limit() -> None:
    async with DiscordWorld.open() as world:
        processes, threads = await burst_over_two_shards(world, per_shard=25)
        try:
            for thread in threads[0] + threads[1]:
                await world.wait_bot_text(thread["id"], ANSWER, timeout=30)
            assert world.fake.ratelimited == []  # fifty replies, two processes, not one 429
        finally:
            for bot in processes:
                assert await bot.stop() == 0, bot.stderr


async def test_a_process_killed_mid_burst_leaves_the_other_writing_inside_the_limit() -> None:
    async with DiscordWorld.open() as world:
        processes, threads = await burst_over_two_shards(world, per_shard=25)
        try:
            await asyncio.sleep(0.5)  # both are streaming
            processes[0].process.kill()
            await processes[0].process.wait()
            for thread in threads[1]:  # the survivor's replies all land, its writes never refused
                await world.wait_bot_text(thread["id"], ANSWER, timeout=30)
            assert world.fake.ratelimited == []
        finally:
            assert await processes[1].stop() == 0, processes[1].stderr
            processes[0].cleanup()
