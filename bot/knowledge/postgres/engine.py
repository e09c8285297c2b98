"""The knowledge engine on PostgreSQL with pgvector: one table of passages, found by their words (a generated
tsvector under a GIN index) and by their meaning (an HNSW index on the vectors), the two lists fused by score in one
statement. Postgres does the searching; this module only says what to ask."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import psycopg
import structlog
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from bot.knowledge.passages import Access, Hit, Passage, Skipped, SourceInfo, StaleVectors, Transition
from bot.knowledge.postgres.languages import Languages
from bot.knowledge.postgres.search import (
    SEARCH,
    SEARCH_NEXT,
    SEARCH_PREVIOUS,
    WARM_UP_QUESTION,
    search_parameters,
    warmed_connection,
)
from bot.knowledge.postgres.sql import (
    DELETE_AUTHOR,
    DELETE_AUTHOR_EVERYWHERE,
    DELETE_KEYS,
    DELETE_LINKED,
    DELETE_SCOPE,
    DELETE_SOURCE,
    LOCK,
    NOW,
    RECORD_MODEL,
    RECORD_REMOVALS,
    RECORD_SKIPPED,
    SOURCES,
    TABLE,
    UPSERT,
    VECTOR_DIMENSIONS,
    Row,
    configure_connection,
    describe,
    hit_from_row,
    lock_name,
    schema,
    skipped_row,
)
from bot.knowledge.postgres.storing import UPSERT_BATCH, insert_isolating, not_removed, rows_of, store_batches
from bot.knowledge.postgres.transition import UPSERT_NEXT, ReembedLock, prepare, read_transition
from bot.knowledge.postgres.upgrades import upgrade_words
from bot.knowledge.vectors import meaning_weight_for
from bot.loop import off_loop_if_large

log = structlog.get_logger(__name__)
T = TypeVar("T")


class KnowledgeEngineError(RuntimeError):
    """The knowledge database cannot be used as configured; the message says why and what to do."""


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
        self._reembedding = ReembedLock(url)
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
        language = await self._languages.of_question_soon(WARM_UP_QUESTION)
        warmed = partial(
            warmed_connection, statement=self._search_statement(""), dimensions=dimensions, language=language
        )
        self._pool = AsyncConnectionPool(
            self._url, min_size=1, max_size=self._pool_size, kwargs={"autocommit": True}, configure=warmed, open=False
        )
        await self._pool.open(wait=True, timeout=30)
        await self._pool.resize(self._pool_size, self._pool_size)  # the others opened and warmed in the background

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

    async def _again_after_switch(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call`, made again once when another process switched the model under it (its statement named a column
        the switch removed)."""
        try:
            return await call()
        except psycopg.errors.UndefinedColumn:
            if not await self._refreshed():
                raise
            return await call()

    async def upsert(
        self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]], decided: Sequence[float] = ()
    ) -> list[Skipped]:
        return await self._again_after_switch(lambda: self._upsert(passages, vectors, decided))

    async def _upsert(
        self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]], decided: Sequence[float]
    ) -> list[Skipped]:
        rows = await self._rows(passages, vectors)
        statement = UPSERT if self.transition is None else UPSERT_NEXT
        when = list(decided) or [time.time()] * len(rows)
        async with self._connection() as conn:
            return await store_batches(conn, rows, statement, when, self._offset)

    async def replace_source(
        self,
        scope: str,
        source: str,
        passages: Sequence[Passage],
        vectors: Sequence[Sequence[float]],
        decided: float | None = None,
    ) -> list[Skipped]:
        return await self._again_after_switch(lambda: self._replace_source(scope, source, passages, vectors, decided))

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
            when = [time.time() if decided is None else decided] * len(rows)
            rows = await not_removed(conn, rows, when, self._offset)
            await conn.execute(DELETE_SOURCE, {"scope": scope, "source": source})
            skipped: list[Skipped] = []
            for start in range(0, len(rows), UPSERT_BATCH):
                skipped += await insert_isolating(conn, rows[start : start + UPSERT_BATCH], statement)
            async with conn.cursor() as cursor:
                await cursor.executemany(RECORD_SKIPPED, [skipped_row(scope, source, refused) for refused in skipped])
        return skipped

    async def _rows(self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]]) -> list[Row]:
        """The rows to store, each passage's language told (about 30 µs a passage: a long list off the loop)."""
        size = self._languages.work(passage.text for passage in passages)
        return await off_loop_if_large(size, rows_of, passages, vectors, self._languages)

    async def search(
        self, text: str, vector: Sequence[float], access: Access, limit: int, model: str = ""
    ) -> list[Hit]:
        if limit <= 0 or not access.scopes:
            return []
        weight = meaning_weight_for(model or self.model)
        return await self._again_after_switch(
            lambda: self._search(self._search_statement(model), text, vector, access, limit, weight)
        )

    def _search_statement(self, model: str) -> str:
        """The statement for a question's vector of `model` ("": the configured one)."""
        if self.transition is not None and model == self.transition.previous:
            return SEARCH_PREVIOUS
        if model and model != self.model:
            raise StaleVectors(f"the knowledge holds no vectors of {model} any more")
        return SEARCH if self.transition is None else SEARCH_NEXT

    async def _search(
        self, statement: str, text: str, vector: Sequence[float], access: Access, limit: int, meaning_weight: float
    ) -> list[Hit]:
        language = await self._languages.of_question_soon(text)
        parameters = search_parameters(text, language, vector, access, limit, meaning_weight)
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
        return await self._reembedding.take(configure_connection)

    async def reembed_batch(self, after: tuple[str, str] | None, limit: int) -> list[Passage]:
        return await self._reembedding.batch(after, limit)

    async def store_reembedded(self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]]) -> None:
        await self._reembedding.store(passages, vectors)

    async def reembed_left(self) -> int:
        return await self._reembedding.left()

    async def finish_reembed(self) -> bool:
        if not await self._reembedding.switch():
            return False
        self.transition = None
        await self._reembedding.release()
        return True

    async def reembed_status(self) -> Transition | None:
        await self._refreshed()
        return self.transition

    async def aclose(self) -> None:
        await self._reembedding.release()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
