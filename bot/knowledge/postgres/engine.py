"""The knowledge engine on PostgreSQL with pgvector: one table of passages, found by their words (a generated
tsvector under a GIN index) and by their meaning (an HNSW index on the vectors), the two lists fused by reciprocal
rank in one statement. Postgres does the searching; this module only says what to ask."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
import structlog
from pgvector.psycopg import register_vector_async
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from bot.knowledge.passages import Access, Hit, Passage, Skipped, SourceInfo, StaleVectors, Transition
from bot.knowledge.postgres.languages import SAMPLE_CHARS, Languages
from bot.knowledge.postgres.search import SEARCH, search_statement
from bot.knowledge.postgres.sql import (
    DELETE_AUTHOR,
    DELETE_AUTHOR_EVERYWHERE,
    DELETE_KEYS,
    DELETE_LINKED,
    DELETE_SCOPE,
    DELETE_SOURCE,
    LOCK,
    LOCK_SHARED,
    NOW,
    RECORD_MODEL,
    RECORD_REMOVALS,
    RECORD_SKIPPED,
    REMOVALS_SINCE,
    SESSION_SETTINGS,
    SOURCES,
    TABLE,
    UPSERT,
    VECTOR_DIMENSIONS,
    Row,
    hit_from_row,
    kept,
    lock_name,
    platform_of,
    schema,
    skipped_row,
    upsert_row,
)
from bot.knowledge.postgres.transition import (
    NEXT_COLUMN,
    STORE,
    TRY_LOCK,
    UPSERT_NEXT,
    left,
    next_batch,
    prepare,
    read_transition,
    switch,
)
from bot.knowledge.postgres.upgrades import upgrade_words
from bot.loop import off_loop_if_large

log = structlog.get_logger(__name__)

# How many candidates each list (words, meaning) brings to the fusion, for `limit` hits.
CANDIDATES_PER_HIT = 4
MIN_CANDIDATES = 100
UPSERT_BATCH = 500
# The words list ranks at most LEXICAL_SCAN passages, looked up by the question's rarest lexemes, as many as are
# expected to match at most LEXICAL_BUDGET passages, none held by more than a COMMON_SHARE of them: a search costs
# about the same at 10,000 passages or 1,000,000 (docs/BENCHMARKS.md, "Knowledge").
LEXICAL_BUDGET = 800
LEXICAL_SCAN = 800
COMMON_SHARE = 0.05
# What the database refuses in one row only (a NUL, a value past an index's row size, a character it can't encode):
# that passage is left out, the rest of its batch stored. Anything else (the connection lost) fails the batch.
REFUSED_ROW = (psycopg.DataError, psycopg.errors.ProgramLimitExceeded, UnicodeEncodeError)
# During a re-embed: searched with the question in the new model (some passages not there yet), or in the old one
# (the statement reads the new column too, so that it fails rather than compare the old model's question with the
# new model's vectors once another process has made the switch).
SEARCH_NEXT = search_statement(NEXT_COLUMN, vectorless=True)
SEARCH_PREVIOUS = search_statement("embedding", vectorless=True, guard=f"p.{NEXT_COLUMN} IS NOT NULL AS reembedded")


class KnowledgeEngineError(RuntimeError):
    """The knowledge database cannot be used as configured; the message says why and what to do."""


def describe(url: str) -> str:
    """Where `url` points, without its password: `host/dbname`."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unreadable KNOWLEDGE_DATABASE_URL"
    return f"{parts.get('host') or 'localhost'}/{parts.get('dbname') or parts.get('user') or ''}"


class PostgresEngine:
    """KnowledgeEngine on one PostgreSQL database with pgvector, shared by every bot process pointing at it."""

    def __init__(self, url: str, *, pool_size: int = 8, languages: Languages | None = None) -> None:
        """`languages`: what each passage and question is stemmed in (KNOWLEDGE_LANGUAGE; told by its words)."""
        self._url = url
        self._languages = languages or Languages()
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self.dimensions = 0
        self.model = ""
        # The re-embed towards `model` under way (this process's view: another may have finished it since).
        self.transition: Transition | None = None
        self._reembedding: psycopg.AsyncConnection[Any] | None = None  # holding the re-embedding lock
        self._offset = 0.0  # the database's clock minus this host's, in seconds

    async def start(self, dimensions: int, model: str = "") -> None:
        try:
            async with await psycopg.AsyncConnection.connect(self._url, autocommit=True, connect_timeout=10) as conn:
                await self._make_schema(conn, dimensions, model)
                asked = time.time()
                row = await (await conn.execute(NOW)).fetchone()
                self._offset = float(row[0]) - (asked + time.time()) / 2 if row else 0.0
        except psycopg.OperationalError as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise KnowledgeEngineError(
                f"cannot reach the knowledge database at {describe(self._url)}: {reason}"
            ) from error
        self.dimensions = dimensions
        self.model = model
        self._pool = AsyncConnectionPool(
            self._url,
            min_size=1,
            max_size=self._pool_size,
            kwargs={"autocommit": True},
            configure=configure_connection,
            open=False,
            name="knowledge",
        )
        await self._pool.open(wait=True, timeout=30)

    async def _make_schema(self, conn: psycopg.AsyncConnection[Any], dimensions: int, model: str) -> None:
        # One process at a time: CREATE … IF NOT EXISTS races with itself when N bots start together.
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('knowledge schema'))")
            for statement in schema(dimensions):
                await conn.execute(statement)
            await upgrade_words(conn)
            row = await (await conn.execute(VECTOR_DIMENSIONS, {"table": TABLE})).fetchone()
            if model:
                await conn.execute(RECORD_MODEL, {"name": model})
            # Another model than the recorded one: its passages re-embedded in the background (transition.py).
            self.transition = await prepare(conn, dimensions, model)
        existing = int(row[0]) if row else dimensions
        if existing != dimensions and self.transition is None:
            raise KnowledgeEngineError(
                f"the knowledge table {TABLE} at {describe(self._url)} holds {existing}-dimension vectors but the "
                f"embedding model makes {dimensions}-dimension ones under the name they were made with "
                f"({model or 'none given'}): name the new model (EMBEDDING_MODEL) to re-embed them"
            )

    def _connection(self) -> Any:
        if self._pool is None:
            raise KnowledgeEngineError("the knowledge engine is used before start()")
        return self._pool.connection()

    async def _refreshed(self) -> bool:
        """Whether the re-embed this process saw under way has ended (another process made the switch), read now."""
        if self.transition is None:
            return False
        async with self._connection() as conn:
            self.transition = await read_transition(conn, self.model)
        if self.transition is None:
            log.info("knowledge_reembed_seen_done", model=self.model)
        return self.transition is None

    async def upsert(
        self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]], decided: Sequence[float] = ()
    ) -> list[Skipped]:
        try:
            return await self._upsert(passages, vectors, decided)
        except psycopg.errors.UndefinedColumn:
            if not await self._refreshed():
                raise
            return await self._upsert(passages, vectors, decided)

    async def _upsert(
        self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]], decided: Sequence[float]
    ) -> list[Skipped]:
        rows = await self._rows(passages, vectors)
        statement = UPSERT if self.transition is None else UPSERT_NEXT
        when = list(decided) or [time.time()] * len(rows)
        skipped: list[Skipped] = []
        async with self._connection() as conn:
            for start in range(0, len(rows), UPSERT_BATCH):
                batch = rows[start : start + UPSERT_BATCH]
                async with conn.transaction():
                    kept = await self._not_removed(conn, batch, when[start : start + UPSERT_BATCH])
                    skipped += await _insert_isolating(conn, kept, statement)
        return skipped

    async def _not_removed(
        self, conn: psycopg.AsyncConnection[Any], rows: list[Row], decided: list[float]
    ) -> list[Row]:
        """Those of `rows` that no removal recorded since their addition was decided (by this host's clock) matches,
        read under their scopes' shared locks: a removal either committed before, and is seen, or waits for these."""
        if not rows:
            return rows
        scopes = {passage.scope for passage, _ in rows}
        names = sorted({*scopes, *map(platform_of, scopes)})
        await conn.execute(LOCK_SHARED, {"names": [lock_name(name) for name in names]})
        since = min(decided) + self._offset
        removals = await (await conn.execute(REMOVALS_SINCE, {"scopes": names, "since": since})).fetchall()
        if not removals:
            return rows
        stored = kept(rows, [when + self._offset for when in decided], removals)
        if len(stored) < len(rows):
            log.info("knowledge_additions_dropped", removed_after_decided=len(rows) - len(stored))
        return stored

    async def replace_source(
        self,
        scope: str,
        source: str,
        passages: Sequence[Passage],
        vectors: Sequence[Sequence[float]],
        decided: float | None = None,
    ) -> list[Skipped]:
        try:
            return await self._replace_source(scope, source, passages, vectors, decided)
        except psycopg.errors.UndefinedColumn:
            if not await self._refreshed():
                raise
            return await self._replace_source(scope, source, passages, vectors, decided)

    async def _replace_source(
        self,
        scope: str,
        source: str,
        passages: Sequence[Passage],
        vectors: Sequence[Sequence[float]],
        decided: float | None,
    ) -> list[Skipped]:
        rows = await self._rows(passages, vectors)
        statement = UPSERT if self.transition is None else UPSERT_NEXT
        async with self._connection() as conn, conn.transaction():
            rows = await self._not_removed(conn, rows, [time.time() if decided is None else decided] * len(rows))
            await conn.execute(DELETE_SOURCE, {"scope": scope, "source": source})
            skipped: list[Skipped] = []
            for start in range(0, len(rows), UPSERT_BATCH):
                skipped += await _insert_isolating(conn, rows[start : start + UPSERT_BATCH], statement)
            async with conn.cursor() as cursor:
                await cursor.executemany(RECORD_SKIPPED, [skipped_row(scope, source, refused) for refused in skipped])
        return skipped

    async def _rows(self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]]) -> list[Row]:
        """The rows to store, each passage's language told (about 30 µs a passage: a long list off the loop)."""
        size = sum(min(len(passage.text), SAMPLE_CHARS) for passage in passages)
        return await off_loop_if_large(size, _rows, passages, vectors, self._languages)

    async def search(
        self, text: str, vector: Sequence[float], access: Access, limit: int, model: str = ""
    ) -> list[Hit]:
        if limit <= 0 or not access.scopes:
            return []
        try:
            return await self._search(self._search_statement(model), text, vector, access, limit)
        except psycopg.errors.UndefinedColumn:
            if not await self._refreshed():
                raise
            return await self._search(self._search_statement(model), text, vector, access, limit)

    def _search_statement(self, model: str) -> str:
        """The statement for a question's vector of `model` ("": the configured one)."""
        if self.transition is not None and model == self.transition.previous:
            return SEARCH_PREVIOUS
        if model and model != self.model:
            raise StaleVectors(f"the knowledge holds no vectors of {model} any more")
        return SEARCH if self.transition is None else SEARCH_NEXT

    async def _search(
        self, statement: str, text: str, vector: Sequence[float], access: Access, limit: int
    ) -> list[Hit]:
        parameters = {
            "text": text,
            "language": self._languages.of_question(text),
            "vector": np.asarray(vector, dtype=np.float32),
            "scopes": list(access.scopes),
            "channels": sorted(access.readable_channels),
            "candidates": max(MIN_CANDIDATES, CANDIDATES_PER_HIT * limit),
            "lexical_budget": LEXICAL_BUDGET,
            "lexical_scan": LEXICAL_SCAN,
            "common": COMMON_SHARE,
            "limit": limit,
        }
        async with self._connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(statement, parameters)
            rows = await cursor.fetchall()
        return [hit_from_row(row) for row in rows]

    async def _delete(self, statement: str, parameters: dict[str, Any], scope: str, kind: str, *values: str) -> int:
        """Delete, recording the removal (scope, kind, values) at the database's time in the same transaction, under
        the scope's lock: an addition decided before it and landing after is dropped, in any process."""
        async with self._connection() as conn, conn.transaction():
            await conn.execute(LOCK, {"name": lock_name(scope)})
            await conn.execute(RECORD_REMOVALS, {"scope": scope, "kind": kind, "values": list(values)})
            cursor = await conn.execute(statement, parameters)
            return int(cursor.rowcount)

    async def delete_keys(self, scope: str, keys: Sequence[str]) -> int:
        return await self._delete(DELETE_KEYS, {"scope": scope, "keys": list(keys)}, scope, "key", *keys) if keys else 0

    async def delete_source(self, scope: str, source: str) -> int:
        return await self._delete(DELETE_SOURCE, {"scope": scope, "source": source}, scope, "source", source)

    async def delete_linked(self, scope: str, url_prefix: str) -> int:
        if not url_prefix:
            return 0
        return await self._delete(DELETE_LINKED, {"scope": scope, "prefix": url_prefix}, scope, "linked", url_prefix)

    async def delete_scope(self, scope: str) -> int:
        return await self._delete(DELETE_SCOPE, {"scope": scope}, scope, "scope", "")

    async def delete_author(self, scope: str, author: str) -> int:
        if not author:
            return 0
        return await self._delete(DELETE_AUTHOR, {"scope": scope, "author": author}, scope, "author", author)

    async def delete_author_everywhere(self, scope_prefix: str, author: str) -> int:
        """`scope_prefix` is a platform's ("discord:"): the lock every addition on that platform takes."""
        if not author or not scope_prefix:
            return 0
        parameters = {"prefix": scope_prefix, "author": author}
        return await self._delete(DELETE_AUTHOR_EVERYWHERE, parameters, scope_prefix, "author_everywhere", author)

    async def sources(self, scope: str) -> list[SourceInfo]:
        async with self._connection() as conn:
            cursor = await conn.execute(SOURCES, {"scope": scope})
            rows = await cursor.fetchall()
        return [
            SourceInfo(scope, source, title, int(count), int(chars), float(at), int(skipped), reason, channel)
            for source, title, count, chars, at, skipped, reason, channel in rows
        ]

    async def reembed_lock(self) -> bool:
        if self._reembedding is not None and (self._reembedding.closed or self._reembedding.broken):
            self._reembedding = None  # the connection was lost, and the lock with it: taken again if free
        if self._reembedding is None:
            conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True, connect_timeout=10)
            row = await (await conn.execute(TRY_LOCK)).fetchone()
            if not (row and row[0]):
                await conn.close()
                return False
            await configure_connection(conn)
            self._reembedding = conn
        return True

    def _reembedding_connection(self) -> psycopg.AsyncConnection[Any]:
        if self._reembedding is None:
            raise KnowledgeEngineError("the knowledge is re-embedded without the re-embedding lock")
        return self._reembedding

    async def reembed_batch(self, after: tuple[str, str] | None, limit: int) -> list[Passage]:
        return await next_batch(self._reembedding_connection(), after, limit)

    async def store_reembedded(self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]]) -> None:
        rows = [
            {"scope": passage.scope, "key": passage.key, "text": passage.text, "title": passage.title,
             "locator": passage.locator, "vector": np.asarray(vector, dtype=np.float32)}
            for passage, vector in zip(passages, vectors, strict=True)
        ]  # fmt: skip
        async with self._reembedding_connection().cursor() as cursor:
            await cursor.executemany(STORE, rows)

    async def reembed_left(self) -> int:
        return await left(self._reembedding_connection())

    async def finish_reembed(self) -> bool:
        if not await switch(self._reembedding_connection()):
            return False
        self.transition = None
        await self._release_reembedding()
        return True

    async def reembed_status(self) -> Transition | None:
        await self._refreshed()
        return self.transition

    async def _release_reembedding(self) -> None:
        if self._reembedding is not None:
            await self._reembedding.close()  # the lock with it
            self._reembedding = None

    async def aclose(self) -> None:
        await self._release_reembedding()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def configure_connection(conn: psycopg.AsyncConnection[Any]) -> None:
    await register_vector_async(conn)
    await conn.execute(SESSION_SETTINGS)


async def _insert_isolating(
    conn: psycopg.AsyncConnection[Any], rows: Sequence[Row], statement: str = UPSERT
) -> list[Skipped]:
    """Upsert `rows` inside the caller's transaction; a batch the database refuses is tried again by halves (each
    in a savepoint), down to the one passage it refuses, which is left out and returned with the database's reason."""
    if not rows:
        return []
    try:
        async with conn.transaction(), conn.cursor() as cursor:
            await cursor.executemany(statement, [row for _, row in rows])
        return []
    except REFUSED_ROW as error:
        if len(rows) == 1:
            return [Skipped(rows[0][0], refusal(error))]
    half = len(rows) // 2
    return await _insert_isolating(conn, rows[:half], statement) + await _insert_isolating(conn, rows[half:], statement)


def refusal(error: Exception) -> str:
    """Why the database refused a passage, in a line."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"the database refused it ({detail})"


def _rows(passages: Sequence[Passage], vectors: Sequence[Sequence[float]], languages: Languages) -> list[Row]:
    if len(passages) != len(vectors):
        raise ValueError(f"{len(passages)} passages but {len(vectors)} vectors")
    return [
        (passage, upsert_row(passage, vector, languages.of_passage(passage.text)))
        for passage, vector in zip(passages, vectors, strict=True)
    ]
