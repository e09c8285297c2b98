"""The knowledge channels kept in Redis (adapters.shared.knowledge_sources.channels): the scopes of a platform that have
channels, which every process reads once for all its servers (one cached look), follow opt-ins and a server's
removal, each platform apart."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.shared.knowledge_sources.channels import KnowledgeChannels
from bot.state.redis_client import RedisClients
from fakes.harness.processes import REDIS_URL


@pytest.fixture
async def channels(key_prefix: str) -> AsyncIterator[KnowledgeChannels]:
    clients = RedisClients.connect(REDIS_URL, cluster=False)
    yield KnowledgeChannels(clients.main, key_prefix)
    await clients.aclose()


async def test_the_scopes_with_channels_follow_opt_ins_and_a_servers_removal(channels: KnowledgeChannels) -> None:
    assert await channels.scopes("discord") == frozenset()

    assert await channels.opt_in("discord:1", "10", "#general")
    assert not await channels.opt_in("discord:1", "10", "#general")
    await channels.opt_in("discord:2", "20", "#help")
    await channels.opt_in("slack:T1", "C1", "#random")

    assert await channels.scopes("discord") == {"discord:1", "discord:2"}
    assert await channels.scopes("slack") == {"slack:T1"}
    await channels.forget_scope("discord:2")
    assert await channels.scopes("discord") == {"discord:1"}
    assert await channels.channels("discord:2") == {}
