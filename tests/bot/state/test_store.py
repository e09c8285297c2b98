"""History in the real Redis: what a conversation keeps, for how long, and under failure."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
import redis.asyncio as aioredis

from bot.errors import FailureKind, ReplyFailure
from bot.state.coordination import Coordination
from bot.state.locks import ConversationLocks
from bot.state.redis_client import RedisClients, close, connect
from bot.state.store import HistoryStore, StoredMessage
from config.settings import HistorySettings
from tests.conftest import OwnRedis, close_store, open_store


def user(text: str, who: str = "u1") -> StoredMessage:
    return StoredMessage("user", text, author_id=who, author_name=f"Name {who}")


def reply(text: str) -> StoredMessage:
    return StoredMessage("assistant", text)


async def test_turn_returns_history_including_the_new_message(redis_store: HistoryStore) -> None:
    await redis_store.begin_turn("t1", user("hello"))
    await redis_store.add_reply("t1", reply("hi there"))
    history = (await redis_store.begin_turn("t1", user("how are you?"))).messages
    assert [(m.role, m.content) for m in history] == [
        ("user", "hello"),
        ("assistant", "hi there"),
        ("user", "how are you?"),
    ]
    assert history[0].author_name == "Name u1" and history[0].author_id == "u1"


async def test_threads_are_separate_and_keys_are_hash_tagged(
    redis_store: HistoryStore, raw_redis: aioredis.Redis, key_prefix: str
) -> None:
    await redis_store.begin_turn("discord:1", user("in thread one"))
    history = (await redis_store.begin_turn("discord:2", user("in thread two"))).messages
    assert [m.content for m in history] == ["in thread two"]
    keys = sorted([key async for key in raw_redis.scan_iter(match=f"{key_prefix}*")])
    assert keys == [f"{key_prefix}chat:{{discord:1}}:history", f"{key_prefix}chat:{{discord:2}}:history"]


async def test_history_is_trimmed_to_the_newest_messages(history_settings: HistorySettings) -> None:
    store = open_store(history_settings.redis_url or "", replace(history_settings, max_messages=4))
    try:
        for number in range(5):
            await store.begin_turn("t", user(f"q{number}"))
            await store.add_reply("t", reply(f"a{number}"))
        history = (await store.begin_turn("t", user("latest"))).messages
    finally:
        await close_store(store)
    assert [m.content for m in history] == ["a3", "q4", "a4", "latest"]


async def test_history_expires_after_the_configured_ttl(
    history_settings: HistorySettings, raw_redis: aioredis.Redis
) -> None:
    store = open_store(history_settings.redis_url or "", replace(history_settings, ttl_seconds=120))
    try:
        await store.begin_turn("t", user("hello"))
        ttl = await raw_redis.ttl(store.key("t"))
        assert 100 < ttl <= 120
        await store.add_reply("t", reply("hi"))
        assert 100 < await raw_redis.ttl(store.key("t")) <= 120
    finally:
        await close_store(store)


async def test_two_concurrent_writers_lose_nothing(history_settings: HistorySettings) -> None:
    url = history_settings.redis_url or ""
    roomy = replace(history_settings, max_messages=100)
    first = open_store(url, roomy)
    second = open_store(url, roomy)

    async def write(store: HistoryStore, who: str) -> None:
        for n in range(10):
            await store.begin_turn("shared", user(f"{who[0]}{n}", who))
            await store.add_reply("shared", reply(f"to {who[0]}{n}"))

    try:
        await asyncio.gather(write(first, "alice"), write(second, "bob"))
        history = (await first.begin_turn("shared", user("done", "alice"))).messages
    finally:
        await close_store(first)
        await close_store(second)
    contents = [m.content for m in history if m.role == "user"]
    assert sorted(contents[:-1]) == sorted([f"a{n}" for n in range(10)] + [f"b{n}" for n in range(10)])
    assert len(history) == 41
    # Each writer's own messages stay in the order it sent them.
    assert [c for c in contents if c.startswith("a")] == [f"a{n}" for n in range(10)]


async def test_history_survives_a_redis_restart_between_turns(own_redis: OwnRedis) -> None:
    settings = HistorySettings(redis_url=own_redis.url, key_prefix="t:", max_messages=40, ttl_seconds=3600)
    store = open_store(own_redis.url, settings)
    try:
        await store.begin_turn("t", user("before restart"))
        await store.add_reply("t", reply("noted"))
        own_redis.stop()
        own_redis.start()
        history = (await store.begin_turn("t", user("after restart"))).messages
    finally:
        await close_store(store)
    assert [m.content for m in history] == ["before restart", "noted", "after restart"]


async def test_redis_down_is_a_clear_failure_not_a_crash(own_redis: OwnRedis) -> None:
    settings = HistorySettings(redis_url=own_redis.url, key_prefix="t:", max_messages=40, ttl_seconds=3600)
    store = open_store(own_redis.url, settings)
    try:
        own_redis.stop()
        with pytest.raises(ReplyFailure) as raised:
            await store.begin_turn("t", user("anyone there?"))
        assert raised.value.kind is FailureKind.STORE_UNAVAILABLE
    finally:
        await close_store(store)


async def test_claim_succeeds_once_across_clients(history_settings: HistorySettings) -> None:
    url = history_settings.redis_url or ""
    clients = [connect(url, cluster=history_settings.cluster) for _ in range(3)]
    coordinations = [Coordination(client, history_settings.key_prefix, 60) for client in clients]
    try:
        results = await asyncio.gather(*(each.claim("event:Ev123", 60) for each in coordinations for _ in range(3)))
    finally:
        for client in clients:
            await close(client)
    assert results.count(True) == 1


async def test_memory_redis_runs_the_same_history_and_claims_for_a_console_session() -> None:
    """REDIS_URL=memory:// (the console's default) keeps everything in the process through the
    same scripts as Redis: trimmed history, the fence, a cleared conversation, one-time claims."""
    clients = RedisClients.in_memory()
    store = HistoryStore(clients.main, HistorySettings(None, "", max_messages=3, ttl_seconds=60))
    locks = ConversationLocks(clients.main, store.lock_key)
    async with locks.hold("c") as fence:
        await store.begin_turn("c", user("one"), fence)
        await store.add_reply("c", reply("two"), fence)
        history = (await store.begin_turn("c", user("three"), fence)).messages
        assert [m.content for m in history] == ["one", "two", "three"]
        history = (await store.begin_turn("c", user("four"), fence)).messages
        assert [m.content for m in history] == ["two", "three", "four"]
    async with locks.hold("c"):
        with pytest.raises(ReplyFailure) as refused:
            await store.add_reply("c", reply("late"), fence)  # the earlier turn's fence no longer holds
        assert refused.value.kind is FailureKind.STORE_UNAVAILABLE
    await store.clear("c")
    assert [m.content for m in (await store.begin_turn("c", user("fresh"))).messages] == ["fresh"]
    coordination = Coordination(clients.main, "", 60)
    assert await coordination.claim("e", 60) and not await coordination.claim("e", 60)
    await clients.aclose()
