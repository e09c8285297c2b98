"""Knowledge indexed with one embedding model and started with another: it starts and answers at once, its passages
are re-embedded in the background by one process, resuming after a stop, and the switch leaves every passage with
its new vector (added, edited and forgotten ones as they should be). Real PostgreSQL, real models: WordLlama and
all-MiniLM-L6-v2, both in-process."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from structlog.testing import capture_logs

from bot.knowledge.embeddings import MODELS_FOLDER, WORDLLAMA_NAME, LocalEmbedder
from bot.knowledge.minilm import MINILM_DIMENSIONS, MINILM_NAME, MiniLMEmbedder
from bot.knowledge.passages import Access, Embedder, Passage, Transition
from bot.knowledge.postgres import PostgresEngine
from bot.knowledge.postgres.sql import MODEL_TABLE, TABLE
from bot.knowledge.reembedding import Pace, in_process_embedder
from bot.knowledge.service import Knowledge
from bot.knowledge.setup import open_knowledge
from bot.knowledge.warm_up import QUESTION as WARM_UP_QUESTION
from config.env import Env
from config.settings import load_settings
from fakes.harness.server_folders import embedded_database_url, remove

SCOPE = "discord:42"
ACCESS = Access((SCOPE,), frozenset({"c1"}))
VPN = "To work from home, install WireGuard and import the office profile; then connect before opening the intranet."
VPN_QUESTION = "How do I connect to the office network from home?"
TOPICS = (
    "The pizza order for Friday's lunch is two margheritas and a vegetarian one.",
    "Our football team won the match on Saturday, three goals to one.",
    "Remember to water the plants in the office kitchen before the weekend.",
    "The updated logo uses a darker shade of blue and a rounded font.",
    "Happy birthday Maria, the cake is in the fridge on the second floor!",
    "Parking spaces in the basement are reserved for visitors this week.",
    "The library closes early on public holidays.",
    "I recommend the hiking trail along the lake, it takes about three hours.",
)
# Passages enough for several batches: m00 is the VPN's, the others other topics.
PASSAGES = [
    Passage(SCOPE, "channel:c1", f"m{number:02}", VPN if number == 0 else f"{TOPICS[number % len(TOPICS)]} ({number})",
            "#general", channel="c1")
    for number in range(24)
]  # fmt: skip
ROTATION = Passage(
    SCOPE, "channel:c1", "m99", "The staging database password rotates every Monday.", "#general", channel="c1"
)
REEMBED_LOCK = "hashtext('knowledge re-embedding')"  # the one bot.knowledge.postgres.transition takes
SLOW = Pace(batch=3, watch_seconds=0.1, progress_seconds=0.0)


class Counting:
    """An embedder that counts the texts it embeds."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimensions = inner.dimensions
        self.passages = 0

    async def start(self) -> None:
        await self.inner.start()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.passages += sum(1 for text in texts if text != WARM_UP_QUESTION)  # the start's probe is no passage
        return await self.inner.embed(texts)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def models() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="reembed-models-"))
    yield folder
    remove(folder)


@pytest.fixture
def url() -> Iterator[str]:
    with embedded_database_url("reembed-test-") as url:
        yield url


def upgraded(url: str, models: Path, pace: Pace = SLOW, counting: Counting | None = None) -> Knowledge:
    """The knowledge started with all-MiniLM-L6-v2, as a bot after an upgrade, searching with WordLlama meanwhile."""
    knowledge = Knowledge(PostgresEngine(url), counting or MiniLMEmbedder(models))
    knowledge.previous_embedder = in_process_embedder(models)
    knowledge.reembed_pace = pace
    return knowledge


async def indexed_with_wordllama(url: str, passages: Sequence[Passage] = PASSAGES) -> None:
    knowledge = Knowledge(PostgresEngine(url), LocalEmbedder())
    await knowledge.start()
    await knowledge.add(passages)
    await knowledge.aclose()


async def query(url: str, statement: str) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await (await conn.execute(statement)).fetchall()


async def left(url: str) -> int:
    [(count,)] = await query(url, f"SELECT count(*) FROM {TABLE} WHERE next_embedding IS NULL")
    return int(count)  # type: ignore[call-overload]


class Hold:
    """The re-embed held: no process re-embeds until `at(key)`, and then `key`'s passage (its row locked, which the
    re-embed skips) has no new vector and the switch waits until the block ends, whatever the machine's pace."""

    def __init__(self, gate: psycopg.AsyncConnection[object], rows: psycopg.AsyncConnection[object]) -> None:
        self._gate, self._rows = gate, rows

    async def at(self, key: str) -> None:
        await self._rows.execute(f"SELECT 1 FROM {TABLE} WHERE key = %(key)s FOR UPDATE", {"key": key})
        await self._gate.execute(f"SELECT pg_advisory_unlock({REEMBED_LOCK})")


@asynccontextmanager
async def held(url: str) -> AsyncIterator[Hold]:
    """Taken before the knowledge starts (a row lock then would keep its schema's statements waiting)."""
    async with (
        await psycopg.AsyncConnection.connect(url, autocommit=True) as gate,
        await psycopg.AsyncConnection.connect(url) as rows,
    ):
        await gate.execute(f"SELECT pg_advisory_lock({REEMBED_LOCK})")
        yield Hold(gate, rows)


async def eventually(check: Callable[[], bool], seconds: float = 30.0) -> None:
    async with asyncio.timeout(seconds):
        while not check():
            await asyncio.sleep(0.02)


async def switched_to_minilm(url: str) -> None:
    """The record names the new model, the searched vectors are its size, every passage has one, the old are gone."""
    assert await query(url, f"SELECT name, next_name FROM {MODEL_TABLE}") == [(MINILM_NAME, None)]
    columns = await query(
        url, f"SELECT attname, atttypmod, attnotnull FROM pg_attribute WHERE attrelid = '{TABLE}'::regclass "
        "AND attname LIKE '%embedding%' AND NOT attisdropped",
    )  # fmt: skip
    assert columns == [("embedding", MINILM_DIMENSIONS, True)]


def keys(hits: Sequence[object]) -> list[str]:
    return [hit.passage.key for hit in hits]  # type: ignore[attr-defined]


async def test_a_new_model_starts_at_once_answers_from_the_old_vectors_and_switches_when_done(
    url: str, models: Path
) -> None:
    await indexed_with_wordllama(url)
    knowledge = upgraded(url, models)
    with capture_logs() as logs:
        async with held(url) as hold:
            await knowledge.start()  # no refusal
            await hold.at("m06")
            assert knowledge.engine.transition == Transition(WORDLLAMA_NAME, MINILM_NAME, MINILM_DIMENSIONS)
            assert knowledge.reembedder is not None
            reembedder = knowledge.reembedder
            await eventually(lambda: reembedder.question_embedder() is not None)  # WordLlama, for the old vectors
            during = await knowledge.search(VPN_QUESTION, ACCESS)
            assert await left(url) > 0  # asked during the re-embed
        try:
            await reembedder.wait()
            after = await knowledge.search(VPN_QUESTION, ACCESS)
        finally:
            await knowledge.aclose()
    assert keys(during)[:1] == ["m00"]
    assert keys(after)[:1] == ["m00"]
    await switched_to_minilm(url)
    events = {entry["event"]: entry for entry in logs}
    started = {"previous": WORDLLAMA_NAME, "model": MINILM_NAME, "passages": len(PASSAGES)}
    assert started.items() <= events["knowledge_reembed_started"].items()
    assert "knowledge_reembed_progress" in events
    assert events["knowledge_reembed_done"]["done"] >= len(PASSAGES)  # the held one embedded again when free

    # Started again: searched with MiniLM's vectors alone, by meaning (a paraphrase sharing none of the words).
    again = Knowledge(PostgresEngine(url), MiniLMEmbedder(models))
    await again.start()
    try:
        assert again.engine.transition is None
        assert again.reembedder is None
        hits = await again.search("How can I reach the company network remotely?", ACCESS)
    finally:
        await again.aclose()
    assert keys(hits)[:1] == ["m00"]


async def test_passages_added_edited_and_forgotten_during_the_re_embed_come_out_right(url: str, models: Path) -> None:
    await indexed_with_wordllama(url)
    # An old model this process can't run (a remote one's): searched by words and the new vectors made so far.
    knowledge = Knowledge(PostgresEngine(url), MiniLMEmbedder(models))
    knowledge.reembed_pace = SLOW
    try:
        async with held(url) as hold:
            await knowledge.start()
            await hold.at("m06")
            assert knowledge.reembedder is not None
            assert knowledge.reembedder.question_embedder() is None
            edited = replace(PASSAGES[21], text="The coffee machine on the third floor is broken.")
            await knowledge.add([ROTATION, edited])
            assert await knowledge.forget_keys(SCOPE, ["m23"]) == 1
            during = await knowledge.search("staging database password", ACCESS)
            found_by_words = await knowledge.search("library holidays 6", ACCESS)  # not re-embedded yet
            assert await query(url, f"SELECT next_embedding IS NULL FROM {TABLE} WHERE key = 'm06'") == [(True,)]
        await knowledge.reembedder.wait()
        # By meaning alone, with MiniLM's vectors.
        rotated = await knowledge.search("When do the credentials for the test environment change?", ACCESS)
        coffee = await knowledge.search("Where is the espresso maker out of order?", ACCESS)
    finally:
        await knowledge.aclose()
    assert keys(during)[:1] == ["m99"]
    assert "m06" in keys(found_by_words)
    assert keys(rotated)[:1] == ["m99"]
    assert keys(coffee)[:1] == ["m21"]
    await switched_to_minilm(url)
    stored = {key for (key,) in await query(url, f"SELECT key FROM {TABLE}")}
    assert stored == {passage.key for passage in PASSAGES} - {"m23"} | {"m99"}  # nothing lost, nothing back


async def test_two_processes_on_one_database_re_embed_once(url: str, models: Path) -> None:
    await indexed_with_wordllama(url)
    fast = Pace(batch=4, watch_seconds=0.1)
    first, second = Counting(MiniLMEmbedder(models)), Counting(MiniLMEmbedder(models))
    processes = [upgraded(url, models, fast, first), upgraded(url, models, fast, second)]
    await asyncio.gather(*(knowledge.start() for knowledge in processes))
    try:
        for knowledge in processes:
            assert knowledge.reembedder is not None
            await knowledge.reembedder.wait()
            assert knowledge.engine.transition is None  # the other one's switch seen too
    finally:
        for knowledge in processes:
            await knowledge.aclose()
    assert sorted([first.passages, second.passages]) == [0, len(PASSAGES)]
    await switched_to_minilm(url)


async def test_processes_that_missed_the_switch_store_and_search_the_new_vectors(url: str, models: Path) -> None:
    await indexed_with_wordllama(url)
    worker = upgraded(url, models, Pace(batch=4, watch_seconds=0.1))
    # Two more processes that won't look again by themselves: they learn of the switch from the database's answers.
    adding, asking = upgraded(url, models, Pace(watch_seconds=600)), upgraded(url, models, Pace(watch_seconds=600))
    try:
        async with held(url) as hold:
            await worker.start()
            await adding.start()
            await asking.start()
            await hold.at("m06")  # the worker re-embeds (the others look again in 10 minutes)
            assert asking.reembedder is not None
            late = asking.reembedder
            await eventually(lambda: late.question_embedder() is not None)  # would ask the old vectors
        assert worker.reembedder is not None
        await worker.reembedder.wait()
        assert adding.engine.transition is not None  # as they saw it
        assert asking.engine.transition is not None
        await adding.add([ROTATION])
        hits = await asking.search("How can I reach the company network remotely?", ACCESS)
        rotated = await asking.search("When do the credentials for the test environment change?", ACCESS)
    finally:
        for knowledge in (worker, adding, asking):
            await knowledge.aclose()
    assert adding.engine.transition is None
    assert asking.engine.transition is None
    assert keys(hits)[:1] == ["m00"]  # asked again with MiniLM, by meaning alone
    assert keys(rotated)[:1] == ["m99"]
    await switched_to_minilm(url)


async def test_a_re_embed_stopped_half_way_resumes_where_it_stopped(url: str, models: Path) -> None:
    await indexed_with_wordllama(url)
    knowledge = upgraded(url, models)
    async with held(url) as hold:
        await knowledge.start()
        await hold.at("m12")
        try:
            async with asyncio.timeout(30):
                while await left(url) > len(PASSAGES) // 2:
                    await asyncio.sleep(0.02)
        finally:
            await knowledge.aclose()  # stopped half-way (m12 at least left: held)
    stopped_at = await left(url)
    assert 0 < stopped_at <= len(PASSAGES) // 2
    assert await query(url, f"SELECT name, next_name FROM {MODEL_TABLE}") == [(WORDLLAMA_NAME, MINILM_NAME)]

    counting = Counting(MiniLMEmbedder(models))
    resumed = upgraded(url, models, Pace(batch=4), counting)
    with capture_logs() as logs:
        await resumed.start()
        try:
            assert resumed.reembedder is not None
            await resumed.reembedder.wait()
        finally:
            await resumed.aclose()
    assert counting.passages == stopped_at  # only what was left
    assert any(entry["event"] == "knowledge_reembed_resuming" and entry["left"] == stopped_at for entry in logs)
    await switched_to_minilm(url)


async def test_going_back_to_the_recorded_model_half_way_re_embeds_with_it_and_loses_nothing(
    url: str, models: Path
) -> None:
    await indexed_with_wordllama(url)
    upgrade = upgraded(url, models)
    async with held(url) as hold:
        await upgrade.start()
        await hold.at("m06")
        try:
            await upgrade.add([ROTATION])  # with MiniLM's vector only
        finally:
            await upgrade.aclose()  # stopped half-way

    back = Knowledge(PostgresEngine(url), LocalEmbedder())  # the operator set EMBEDDING_MODEL back
    back.reembed_pace = Pace(batch=8, watch_seconds=0.1)
    with capture_logs() as logs:
        await back.start()
        try:
            assert back.engine.transition == Transition(WORDLLAMA_NAME, WORDLLAMA_NAME, 256)
            during = await back.search(VPN_QUESTION, ACCESS)  # the old vectors, the question in the same model
            assert back.reembedder is not None
            await back.reembedder.wait()
            rotated = await back.search("staging credentials rotation", ACCESS)
        finally:
            await back.aclose()
    assert any(entry["event"] == "knowledge_reembed_abandoned" for entry in logs)
    assert keys(during)[:1] == ["m00"]
    assert "m99" in keys(rotated)
    assert await query(url, f"SELECT name, next_name FROM {MODEL_TABLE}") == [(WORDLLAMA_NAME, None)]
    assert await query(url, f"SELECT count(*) FROM {TABLE} WHERE embedding IS NULL") == [(0,)]


async def test_the_bot_started_with_another_model_searches_with_the_old_one_it_can_still_run(
    url: str, models: Path
) -> None:
    """As the bot opens it from its settings: indexed with the default model, started with EMBEDDING_MODEL=wordllama."""
    first = Knowledge(PostgresEngine(url), MiniLMEmbedder(models / MODELS_FOLDER))
    await first.start()
    await first.add(PASSAGES)
    await first.aclose()
    env = {"KNOWLEDGE_DATABASE_URL": url, "KNOWLEDGE_DATA_DIR": str(models), "EMBEDDING_MODEL": "wordllama"}
    async with held(url) as hold:
        knowledge = await open_knowledge(load_settings(Env(env)))
        await hold.at("m06")  # WordLlama is quick: no switch before the search
        assert knowledge.engine.transition == Transition(MINILM_NAME, WORDLLAMA_NAME, 256)
        assert knowledge.reembedder is not None
        reembedder = knowledge.reembedder
        await eventually(
            lambda: (embedder := reembedder.question_embedder()) is not None and embedder.name == MINILM_NAME
        )
        during = await knowledge.search("How can I reach the company network remotely?", ACCESS)  # by meaning
    try:
        await reembedder.wait()
    finally:
        await knowledge.aclose()
    assert keys(during)[:1] == ["m00"]
    assert await query(url, f"SELECT name, next_name FROM {MODEL_TABLE}") == [(WORDLLAMA_NAME, None)]
