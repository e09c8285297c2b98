"""Removals win over queued additions, in every process (issue 61): two knowledge services, each with its own engine
and queue, on one embedded PostgreSQL, as two bot processes sharing a database. What one queued before another
removed its source, key or author never lands after the removal; what is added after it is stored."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest

from bot.knowledge.embedded import EmbeddedDatabase
from bot.knowledge.embeddings import LocalEmbedder
from bot.knowledge.passages import Passage
from bot.knowledge.postgres import PostgresEngine
from bot.knowledge.remote_embeddings import OpenAIEmbedder
from bot.knowledge.service import Knowledge
from fakes.model_server import FakeModelServer
from tests.bot.knowledge.conftest import MODEL


async def started(database: EmbeddedDatabase) -> Knowledge:
    knowledge = Knowledge(PostgresEngine(database.url), LocalEmbedder())
    await knowledge.start()
    return knowledge


@pytest.fixture
async def two(database: EmbeddedDatabase) -> AsyncIterator[tuple[Knowledge, Knowledge]]:
    first, second = await started(database), await started(database)
    yield first, second
    await first.aclose()
    await second.aclose()


def said(scope: str, channel: str, number: int, author: str = "u1") -> Passage:
    text = f"Message {number} of a burst in {channel} about the deployment."
    return Passage(
        scope, f"channel:{channel}", f"{channel}-{number}", text, f"#{channel}", channel=channel, author=author
    )


def count(database: EmbeddedDatabase, scope: str, where: str = "true", *parameters: object) -> int:
    with psycopg.connect(database.url, autocommit=True) as conn:
        query = f"SELECT count(*) FROM knowledge_passages WHERE scope = %s AND {where}"
        row = conn.execute(query, (scope, *parameters)).fetchone()
    return int(row[0]) if row else 0


async def test_a_source_removed_by_another_process_wins_over_a_burst_still_queued(
    two: tuple[Knowledge, Knowledge], database: EmbeddedDatabase
) -> None:
    adder, remover = two
    scope = f"test:{uuid.uuid4().hex[:12]}"
    adder.add_soon([said(scope, "burst", n) for n in range(150)])

    await remover.forget_source(scope, "channel:burst")
    await adder.settled()

    assert count(database, scope) == 0
    await adder.add([said(scope, "burst", n) for n in range(3)])  # switched on again: its history is read back
    assert count(database, scope) == 3


async def test_a_deleted_message_and_a_forgotten_author_stay_gone_whichever_process_queued_them(
    two: tuple[Knowledge, Knowledge], database: EmbeddedDatabase
) -> None:
    adder, remover = two
    scope = f"discord:{uuid.uuid4().int % 10**12}"
    adder.add_soon([said(scope, "general", n, author="carol" if n % 2 else "dave") for n in range(100)])

    await remover.forget_keys(scope, ["general-0", "general-2"])
    await remover.forget_author_everywhere("discord:", "carol")
    await adder.settled()

    assert count(database, scope, "author = 'carol'") == 0
    assert count(database, scope, "key = ANY(%s)", ["general-0", "general-2"]) == 0
    assert count(database, scope) == 48  # dave's other messages were not removed


async def test_a_source_removed_while_it_is_being_added_again_stays_removed(
    two: tuple[Knowledge, Knowledge], database: EmbeddedDatabase
) -> None:
    _, remover = two
    scope, source = f"test:{uuid.uuid4().hex[:12]}", "message:42"
    added = [Passage(scope, source, f"{source}#1", "bob: the fire drill is on Thursday.", "bob in #general")]
    async with FakeModelServer() as server:
        slow = Knowledge(PostgresEngine(database.url), OpenAIEmbedder(f"{server.base_url}/v1", MODEL, token=None))
        await slow.start()
        try:
            server.embeddings.delay_seconds = 1.0  # "Add to knowledge" embedding the message...
            adding = asyncio.create_task(slow.replace_source(scope, source, added))
            await asyncio.sleep(0.3)
            await remover.forget_source(scope, source)  # ...when its author deletes it
            await adding
        finally:
            await slow.aclose()
    assert count(database, scope) == 0
