"""The ways out on a Redis Cluster (three masters), whose keys of one server or conversation sit in different slots:
/reset's deletion of a conversation's answers with their gap entries and the people's index entries, the sweep of a
workspace's keys when the bot leaves it, and the index of added messages."""

from __future__ import annotations

import time

import pytest

from adapters.shared.feedback.records import AnswerInfo, Feedback
from adapters.shared.knowledge_sources.added import Added, AddedMessages
from adapters.shared.server_sweep import sweep_server
from bot.state.redis_client import close, connect
from tests.system.cluster import OwnCluster

pytestmark = pytest.mark.asyncio

TEAM = "T0CLUSTER"
SCOPE = f"slack:{TEAM}"


def answer(question: str, asker: str) -> AnswerInfo:
    return AnswerInfo("slack", SCOPE, "https://l/1", question, "Mistral 7B", (), asker, "C1", time.time())


async def test_reset_sweep_and_added_messages_on_a_cluster(redis_cluster: OwnCluster, key_prefix: str) -> None:
    client = connect(redis_cluster.url, cluster=True)
    try:
        feedback = Feedback(client, key_prefix, answer_seconds=3600)
        bob, alice = f"slack:{TEAM}:U0BOB", f"slack:{TEAM}:U0ALICE"
        await feedback.record_answer(f"{SCOPE}:C1:1.1", answer("Kept?", bob), thread=f"{SCOPE}:C1:1.1")
        await feedback.record_answer(f"{SCOPE}:D1:2.2", answer("Reset?", bob), thread=f"{SCOPE}:dm:D1")
        await feedback.vote(f"{SCOPE}:D1:2.2", alice, up=False)
        assert len(await feedback.gaps(SCOPE)) == 3  # two answers without a source, one 👎

        assert await feedback.forget_thread(f"{SCOPE}:dm:D1") == 1
        assert await feedback.answer(f"{SCOPE}:D1:2.2") is None
        assert [entry.question for entry in await feedback.gaps(SCOPE)] == ["Kept?"]
        assert await feedback.answer(f"{SCOPE}:C1:1.1") is not None

        added = AddedMessages(client, key_prefix, "slack")
        await added.note(SCOPE, "C1:3.3", Added(("message:C1:3.3", "file:abc")))
        assert await added.take(SCOPE, ["C1:3.3", "C1:4.4"]) == [Added(("message:C1:3.3", "file:abc"))]
        await added.note(SCOPE, "C1:5.5", Added(("message:C1:5.5",)))

        assert await sweep_server(client, key_prefix, "slack", TEAM) > 0
        left = [key async for key in client.scan_iter(match=f"{key_prefix}*{TEAM}*")]
        assert left == []
    finally:
        await close(client)  # the cluster, keys and all, is removed at the end of the run
