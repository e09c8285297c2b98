"""The reply ledger: what a reply shows reaches Redis with the process's heartbeat, not with each
interim edit, and a finished reply's record never comes back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from adapters.shared.reply_records import HEARTBEAT_SHARE, ReplyLedger
from bot.reply.surface import SurfaceLimits
from bot.state.redis_client import RedisClients
from config.settings import HistorySettings
from fakes.harness.processes import REDIS_URL

LEASE = 1.0
BEAT = LEASE * HEARTBEAT_SHARE
LIMITS = SurfaceLimits(max_length=2000, indicator=" ▌")


@pytest.fixture
async def ledger(history_settings: HistorySettings) -> AsyncIterator[ReplyLedger]:
    clients = RedisClients.connect(history_settings.redis_url or REDIS_URL, cluster=history_settings.cluster)
    ledger = ReplyLedger(clients.main, history_settings.key_prefix, beat=clients.heartbeat, lease_seconds=LEASE)
    await ledger.start()
    yield ledger
    await ledger.stop()
    await clients.aclose()


async def recorded(raw_redis: aioredis.Redis, prefix: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in await raw_redis.hvals(f"{prefix}replies")]


async def test_interim_edits_reach_the_record_with_the_next_heartbeat(
    ledger: ReplyLedger, raw_redis: aioredis.Redis, history_settings: HistorySettings
) -> None:
    prefix = history_settings.key_prefix
    recording = ledger.open("discord", "discord:conv:1", {"channel_id": "1"}, LIMITS)
    await recording.posted({"message_id": "10"}, "The answer ▌")
    [record] = await recorded(raw_redis, prefix)
    assert record["messages"] == [{"handle": {"message_id": "10"}, "text": "The answer"}]
    for words in range(1, 30):
        recording.shown("The answer" + " grows" * words + " ▌")
    [record] = await recorded(raw_redis, prefix)
    assert record["messages"][0]["text"] == "The answer"  # not one write per edit
    await asyncio.sleep(BEAT * 2)
    [record] = await recorded(raw_redis, prefix)
    assert record["messages"][0]["text"] == "The answer" + " grows" * 29
    await recording.close()
    assert await recorded(raw_redis, prefix) == []


async def test_an_edit_shown_just_before_the_final_text_never_brings_the_record_back(
    ledger: ReplyLedger, raw_redis: aioredis.Redis, history_settings: HistorySettings
) -> None:
    recording = ledger.open("slack", "slack:T:C:1.0", {"channel": "C"}, LIMITS)
    await recording.posted({"ts": "1.1"}, "Almost ▌")
    recording.shown("Almost done ▌")  # waits for the next beat…
    await recording.close()  # …but the final text landed first
    await asyncio.sleep(BEAT * 2)
    assert await recorded(raw_redis, history_settings.key_prefix) == []
