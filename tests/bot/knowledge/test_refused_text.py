"""Text PostgreSQL refuses never loses anyone's content (issue 61): a NUL or a lone surrogate is cleaned where it
enters knowledge, a passage the database still refuses is left out of its batch with the reason while the rest are
stored, and a source replaced keeps its old passages until the new ones are in. Real embedded PostgreSQL, the
embedded WordLlama embedder; the remote embedder against the fake model server where embedding must fail."""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest

from bot.knowledge.embedded import EmbeddedDatabase
from bot.knowledge.embeddings import LocalEmbedder
from bot.knowledge.passages import Access, Passage
from bot.knowledge.postgres import PostgresEngine
from bot.knowledge.remote_embeddings import OpenAIEmbedder
from bot.knowledge.service import Knowledge
from fakes.model_server import FakeModelServer
from tests.bot.knowledge.conftest import MODEL


@pytest.fixture
async def knowledge(database: EmbeddedDatabase) -> AsyncIterator[Knowledge]:
    knowledge = Knowledge(PostgresEngine(database.url), LocalEmbedder())
    await knowledge.start()
    yield knowledge
    await knowledge.aclose()


def new_scope() -> str:
    return f"test:{uuid.uuid4().hex[:12]}"


def said(scope: str, number: int, text: str, author: str = "u1", title: str = "#general") -> Passage:
    return Passage(scope, "channel:c1", str(number), text, title, channel="c1", author=author, updated_at=number)


def stored(database: EmbeddedDatabase, scope: str) -> dict[str, str]:
    with psycopg.connect(database.url, autocommit=True) as conn:
        rows = conn.execute("SELECT key, text FROM knowledge_passages WHERE scope = %s", (scope,)).fetchall()
    return dict(rows)


def unindexable() -> str:
    """A value past a B-tree index's row size (2,704 bytes), random so that it can't be compressed under it."""
    return "".join(random.choices(string.ascii_letters + string.digits, k=6_000))


async def test_twelve_messages_with_a_nul_and_a_lone_surrogate_are_all_stored(
    knowledge: Knowledge, database: EmbeddedDatabase
) -> None:
    scope = new_scope()
    texts = [f"Message {n} about the quarterly report." for n in range(12)]
    texts[4] = "alice: the door code is 4711\x00 and the wifi is Lobby"
    texts[9] = "carol: caf\ud800 opens at nine"
    passages = [said(scope, n, text, author=f"u{n % 3}") for n, text in enumerate(texts)]
    passages[9] = Passage(scope, "channel:c1", "9", texts[9], "#caf\udc00", channel="c1", author="u0")

    skipped = await knowledge.add(passages)

    found = stored(database, scope)
    assert skipped == [] and len(found) == 12
    assert found["4"] == "alice: the door code is 4711 and the wifi is Lobby"
    assert found["9"] == "carol: caf\ufffd opens at nine"


async def test_queued_messages_are_cleaned_too(knowledge: Knowledge, database: EmbeddedDatabase) -> None:
    scope = new_scope()
    knowledge.add_soon([said(scope, n, f"Live message {n}\x00 of the day.") for n in range(5)])
    await knowledge.settled()
    assert sorted(stored(database, scope).values()) == [f"Live message {n} of the day." for n in range(5)]
    hits = await knowledge.search("Which live message\x00 of the day?", Access((scope,)))  # no DataError
    assert all(hit.passage.scope == scope for hit in hits)


async def test_a_passage_the_database_refuses_is_left_out_with_why_and_the_rest_are_stored(
    knowledge: Knowledge, database: EmbeddedDatabase
) -> None:
    scope = new_scope()
    passages = [said(scope, n, f"Note {n} on the release.") for n in range(10)]
    passages[6] = said(scope, 6, "Note 6 by someone whose id no index holds.", author=unindexable())

    [skipped] = await knowledge.add(passages)

    assert skipped.passage.key == "6" and "index row" in skipped.reason
    assert sorted(stored(database, scope), key=int) == [str(n) for n in range(10) if n != 6]


async def test_a_file_added_again_keeps_its_old_passages_until_the_new_ones_are_in(
    database: EmbeddedDatabase,
) -> None:
    scope, source = new_scope(), "file:handbook"
    pages = ["The canteen opens at eight.", "Parking is on level two."]

    def handbook(texts: list[str]) -> list[Passage]:
        return [
            Passage(scope, source, f"{source}#{n}", text, "handbook.txt", f"page {n}", updated_at=float(n))
            for n, text in enumerate(texts, 1)
        ]

    async with FakeModelServer() as server:
        knowledge = Knowledge(PostgresEngine(database.url), OpenAIEmbedder(f"{server.base_url}/v1", MODEL, token=None))
        await knowledge.start()
        try:
            await knowledge.replace_source(scope, source, handbook(pages))
            server.embeddings.failure = "http_500"
            with pytest.raises(Exception, match="500"):
                await knowledge.replace_source(scope, source, handbook(["The canteen\x00 moved.", "Gone."]))
            assert sorted(stored(database, scope).values()) == sorted(pages)  # nothing lost

            server.embeddings.failure = None
            refused = handbook(["The canteen moved to the roof\x00.", "Parking is gone."])
            refused[1] = Passage(scope, source, f"{source}#2", "Parking is gone.", "handbook.txt", author=unindexable())
            [skipped] = await knowledge.replace_source(scope, source, refused)
            assert skipped.passage.key == f"{source}#2"
            assert stored(database, scope) == {f"{source}#1": "The canteen moved to the roof."}
            [info] = await knowledge.sources(scope)
            assert (info.passages, info.skipped) == (1, 1) and "index row" in info.skipped_reason

            await knowledge.replace_source(scope, source, handbook(pages))
            [info] = await knowledge.sources(scope)
            assert (info.passages, info.skipped) == (2, 0)  # added again whole: nothing skipped any more
        finally:
            await knowledge.aclose()
