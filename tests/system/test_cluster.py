"""The bot on a Redis Cluster (REDIS_CLUSTER=true): three masters of the run's own (tests/system/cluster.py).

The single-node tests of history, claims, conversation locks and fencing, quotas, write budgets,
the reply ledger and /forget-me run here again, unchanged, against the cluster: they are imported
below, and pytest gives them this module's fixtures, whose `history_settings` (and every store
built from it) name the cluster.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest
import redis
from redis.asyncio.cluster import RedisCluster

from bot.state.locks import ConversationLocks
from bot.state.store import HistoryStore, StoredMessage
from config.settings import HistorySettings
from fakes.harness.discord_world import DiscordWorld
from fakes.harness.processes import REDIS_URL
from fakes.model_server import Script
from tests.bot.state.test_forget import (  # noqa: F401 - collected here as well, with this module's fixtures
    core,
    test_own_conversations_and_dms_go_whole_and_shared_threads_keep_everyone_elses_messages,
    test_the_same_user_id_in_another_slack_workspace_keeps_everything,
)
from tests.bot.state.test_store import (  # noqa: F401 - collected here as well, with this module's fixtures
    test_claim_succeeds_once_across_clients,
    test_history_expires_after_the_configured_ttl,
    test_history_is_trimmed_to_the_newest_messages,
    test_threads_are_separate_and_keys_are_hash_tagged,
    test_turn_returns_history_including_the_new_message,
    test_two_concurrent_writers_lose_nothing,
)
from tests.console.test_console import Console, clean_env
from tests.discord.test_discord import user_turns
from tests.shared.test_ratelimit import (  # noqa: F401 - collected here as well, with this module's fixtures
    test_a_full_channel_holds_up_its_own_writes_only,
    test_a_lone_process_gets_the_whole_limit_at_once,
    test_an_interim_edit_in_one_process_never_pushes_another_process_final_a_window_later,
    test_replies_started_by_four_workers_at_once_stream_no_more_than_a_slow_window_has_finals_for,
    test_two_processes_writing_at_once_stay_inside_the_limit_together_and_share_it,
)
from tests.shared.test_reply_records import (  # noqa: F401 - collected here as well, with this module's fixtures
    ledger,
    test_an_edit_shown_just_before_the_final_text_never_brings_the_record_back,
    test_interim_edits_reach_the_record_with_the_next_heartbeat,
)
from tests.system.cluster import OwnCluster
from tests.system.test_scale import (  # noqa: F401 - collected here as well, with this module's fixtures
    test_a_follow_up_taken_by_another_process_waits_for_the_first_answer_and_sees_it,
    test_a_persons_quota_is_counted_across_processes,
    test_a_reply_left_by_a_dead_process_is_finished_by_exactly_one_live_one,
    test_a_turn_that_lost_the_conversation_cannot_write_over_the_newer_turn,
    two_processes,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def key_prefix() -> str:
    """A prefix of the test's own; the cluster, keys and all, is removed at the end of the run."""
    return f"test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def history_settings(redis_cluster: OwnCluster, key_prefix: str) -> HistorySettings:
    return HistorySettings(redis_cluster.url, key_prefix, max_messages=40, ttl_seconds=3600, cluster=True)


@pytest.fixture
async def raw_redis(redis_cluster: OwnCluster) -> AsyncIterator[RedisCluster]:
    client = RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    yield client
    await client.aclose()


async def test_a_threads_keys_share_a_node_and_threads_spread_over_the_nodes(
    redis_store: HistoryStore, redis_cluster: OwnCluster, key_prefix: str
) -> None:
    locks = ConversationLocks(redis_store.client, redis_store.lock_key)
    threads = [f"discord:conv:{number}" for number in range(20)]
    node_of: dict[str, int] = {}
    for thread in threads:
        async with locks.hold(thread) as fence:
            await redis_store.begin_turn(thread, StoredMessage("user", f"hello in {thread}"), fence)
            node_of |= {
                key: port for port, keys in redis_cluster.keys_by_node(f"{key_prefix}*").items() for key in keys
            }
    for thread in threads:
        assert node_of[redis_store.key(thread)] == node_of[redis_store.lock_key(thread)]
    assert len({node_of[redis_store.key(thread)] for thread in threads}) >= 2, node_of
    for thread in threads[:3]:
        assert [m.content for m in await redis_store.read(thread)] == [f"hello in {thread}"]


async def test_start_up_against_an_unreachable_cluster_stops_with_a_clear_message() -> None:
    console = await Console.start("console", env=clean_env(REDIS_URL="redis://127.0.0.1:1/0", REDIS_CLUSTER="true"))
    code, stderr = await console.finish()
    assert code == 2, stderr
    # The reason in brackets is the cluster client's.
    assert "REDIS_URL: cannot reach Redis at redis://127.0.0.1:1/0 (Redis Cluster" in stderr
    assert "Traceback" not in stderr


async def test_the_bot_on_a_cluster_answers_a_thread_and_its_follow_up_with_the_first_answer(
    redis_cluster: OwnCluster, raw_redis: RedisCluster
) -> None:
    async with DiscordWorld.open() as world:
        channel = world.add_channel("general")
        alice = world.add_user("alice")
        world.answer("cl-one", Script(text="I will remember 7.", rate=50))
        world.answer("cl-two", Script(text="It was 7.", rate=50))
        await world.start_bot(REDIS_URL=redis_cluster.url, REDIS_CLUSTER="true")
        message = await world.mention(channel, alice, "cl-one Remember the number 7.")
        thread = await world.wait_thread(message)
        await world.wait_bot_text(thread["id"], "I will remember 7.")
        follow_up = await world.say(thread["id"], alice, "cl-two Which number was it?")
        await world.wait_bot_text(thread["id"], "It was 7.", after=follow_up["id"])
        [request] = world.model_requests("cl-two")
        assert user_turns(request.body) == [
            ("user", "cl-one Remember the number 7."),
            ("assistant", "I will remember 7."),
            ("user", "cl-two Which number was it?"),
        ]
        await world.stop_bot(check=True)
        history_key = f"{world.key_prefix}chat:{{discord:conv:{thread['id']}}}:history"
        stored = [json.loads(raw)["content"] for raw in await raw_redis.lrange(history_key, 0, -1)]
        assert stored == [
            "cl-one Remember the number 7.",
            "I will remember 7.",
            "cl-two Which number was it?",
            "It was 7.",
        ]
        with redis.Redis.from_url(REDIS_URL) as single_node:  # nothing went to the single server instead
            assert not list(single_node.scan_iter(match=f"{world.key_prefix}*"))
