"""Threads handed to a help channel's helpers (adapters.shared.handoffs), against the real Redis: a thread is
handed off once however many clicks or processes race for it, a channel's helpers are mentioned at most the hourly
limit whatever the flood, and a thread a helper wrote in or handed off is theirs."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from adapters.shared.handoffs import Handed, HandOffs
from bot.state.redis_client import RedisClient, close, connect
from fakes.harness.processes import REDIS_URL


@pytest.fixture
async def redis() -> AsyncIterator[RedisClient]:
    client = connect(REDIS_URL, cluster=False)
    yield client
    await close(client)


def handoffs(redis: RedisClient, key_prefix: str, per_hour: int = 3) -> HandOffs:
    return HandOffs(redis, key_prefix, per_hour=per_hour, seconds=600, on_error=lambda: None)


async def test_a_thread_is_handed_off_once_even_when_two_processes_race(redis: RedisClient, key_prefix: str) -> None:
    other = connect(REDIS_URL, cluster=False)  # a second process's connections
    try:
        mine, theirs = handoffs(redis, key_prefix), handoffs(other, key_prefix)
        said = await asyncio.gather(*(one.hand_off("c1", "t1") for one in (mine, theirs) * 10))
    finally:
        await close(other)
    assert Counter(said) == {Handed.NOW: 1, Handed.BEFORE: 19}
    assert await mine.theirs("c1", "t1") == "handed_off"
    assert await mine.theirs("c1", "t2") is None


async def test_a_flood_mentions_the_helpers_at_most_the_hourly_limit(redis: RedisClient, key_prefix: str) -> None:
    store = handoffs(redis, key_prefix, per_hour=3)
    said = await asyncio.gather(*(store.hand_off("c1", f"t{n}") for n in range(100)))
    assert Counter(said) == {Handed.NOW: 3, Handed.LIMITED: 97}
    assert await store.hand_off("c2", "t1") is Handed.NOW  # another channel has its own hour
    assert await store.theirs("c1", "t99") in (None, "handed_off")


async def test_a_thread_a_helper_wrote_in_is_theirs(redis: RedisClient, key_prefix: str) -> None:
    store = handoffs(redis, key_prefix)
    await store.helper_wrote("c1", "t1")
    assert await store.theirs("c1", "t1") == "helper_answering"
