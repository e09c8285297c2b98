"""A new embedding model on a database indexed with another: the passages re-embedded in the background, the
switch made at once when every one has its new vector.

While it lasts, the table holds both: `embedding` the recorded model's vectors (nullable meanwhile: a passage added
or edited since has none), `next_embedding` the new model's, of its own size under an HNSW index of its own, NULL
until the passage is re-embedded (the marker of what is left, kept in the database: a restart resumes there). The
model table names both (`name`, `next_name`). The switch, in one transaction under the table's exclusive lock, drops
the old column, renames the new one and records the new model."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
import psycopg
import structlog

from bot.knowledge.passages import Passage, Transition
from bot.knowledge.postgres.sql import MODEL_TABLE, PASSAGE_COLUMNS, TABLE

log = structlog.get_logger(__name__)

NEXT_COLUMN = "next_embedding"
NEXT_INDEX = f"{TABLE}_next_embedding"
# The model table made before re-embedding existed gets the second name.
ADD_NEXT_NAME = f"ALTER TABLE {MODEL_TABLE} ADD COLUMN IF NOT EXISTS next_name text"
MODELS = f"SELECT name, next_name FROM {MODEL_TABLE}"
COLUMN_DIMENSIONS = "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass(%(table)s) AND attname = %(name)s"
COUNT = f"SELECT count(*) FROM {TABLE}"
LEFT = f"SELECT count(*) FROM {TABLE} WHERE {NEXT_COLUMN} IS NULL"

_COLUMNS = ", ".join(PASSAGE_COLUMNS)
# In key order, from where the last batch stopped (the primary key's index): each batch costs the same.
BATCH_AFTER = f"""
SELECT {_COLUMNS} FROM {TABLE}
WHERE {NEXT_COLUMN} IS NULL AND (scope, key) > (%(scope)s, %(key)s)
ORDER BY scope, key LIMIT %(limit)s"""
BATCH_FIRST = f"SELECT {_COLUMNS} FROM {TABLE} WHERE {NEXT_COLUMN} IS NULL ORDER BY scope, key LIMIT %(limit)s"
# Only a passage still as it was read, and not given its new vector meanwhile (an edit brings its own): a passage
# removed meanwhile stays removed (an UPDATE never brings a row back).
# One statement for a batch, which never waits for a row another transaction holds (an addition being stored): that
# passage is skipped, and given its vector by that addition or on the next pass. So the re-embed never holds up nor
# deadlocks with what people add, and stops at once when asked.
STORE = f"""
WITH given AS (
    SELECT * FROM unnest(%(scopes)s::text[], %(keys)s::text[], %(texts)s::text[], %(titles)s::text[],
                         %(locators)s::text[], %(vectors)s::text[]) AS v(scope, key, text, title, locator, vector)
),
free AS (
    SELECT p.scope, p.key, v.vector
    FROM {TABLE} p JOIN given v ON p.scope = v.scope AND p.key = v.key
    WHERE p.{NEXT_COLUMN} IS NULL AND p.text = v.text AND p.title = v.title AND p.locator = v.locator
    FOR UPDATE OF p SKIP LOCKED
)
UPDATE {TABLE} p SET {NEXT_COLUMN} = f.vector::halfvec
FROM free f
WHERE p.scope = f.scope AND p.key = f.key"""
# The switch waits at most this long for the table (searches queue behind a waiting exclusive lock), then tries again.
SWITCH_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '200ms'"

# One process re-embeds at a time: it holds this session lock on a connection of its own while it works, released
# when it stops or its connection is lost.
TRY_LOCK = "SELECT pg_try_advisory_lock(hashtext('knowledge re-embedding'))"

# During the re-embed, a process embedding with the new model writes its vectors into the new column, and none into
# the old one (the old model's vector of an edited text would be stale).
UPSERT_NEXT = f"""
INSERT INTO {TABLE} AS p (scope, key, source, title, text, locator, url, channel, author, updated_at, language,
                          {NEXT_COLUMN})
VALUES (%(scope)s, %(key)s, %(source)s, %(title)s, %(text)s, %(locator)s, %(url)s, %(channel)s, %(author)s,
        %(updated_at)s, %(language)s, %(embedding)s::halfvec)
ON CONFLICT (scope, key) DO UPDATE SET
    source = EXCLUDED.source, title = EXCLUDED.title, text = EXCLUDED.text, locator = EXCLUDED.locator,
    url = EXCLUDED.url, channel = EXCLUDED.channel, author = EXCLUDED.author, updated_at = EXCLUDED.updated_at,
    language = EXCLUDED.language, {NEXT_COLUMN} = EXCLUDED.{NEXT_COLUMN},
    embedding = CASE WHEN (p.title, p.text, p.locator) IS DISTINCT FROM (EXCLUDED.title, EXCLUDED.text,
                                                                        EXCLUDED.locator)
                     THEN NULL ELSE p.embedding END
WHERE (p.source, p.title, p.text, p.locator, p.url, p.channel, p.author, p.updated_at, p.language)
    IS DISTINCT FROM (EXCLUDED.source, EXCLUDED.title, EXCLUDED.text, EXCLUDED.locator, EXCLUDED.url,
                      EXCLUDED.channel, EXCLUDED.author, EXCLUDED.updated_at, EXCLUDED.language)
   OR p.{NEXT_COLUMN} IS NULL
"""


def _begin_statements(dimensions: int) -> list[str]:
    return [
        f"ALTER TABLE {TABLE} DROP COLUMN IF EXISTS {NEXT_COLUMN}",
        f"ALTER TABLE {TABLE} ADD COLUMN {NEXT_COLUMN} halfvec({int(dimensions)})",
        # As the old index (sql.py): built as vectors arrive, so the switch has nothing left to build.
        f"CREATE INDEX {NEXT_INDEX} ON {TABLE} USING hnsw ({NEXT_COLUMN} halfvec_cosine_ops) "
        "WITH (m = 12, ef_construction = 40)",
        f"ALTER TABLE {TABLE} ALTER COLUMN embedding DROP NOT NULL",
    ]


SWITCH = (
    f"ALTER TABLE {TABLE} DROP COLUMN embedding",  # and its index
    f"ALTER TABLE {TABLE} RENAME COLUMN {NEXT_COLUMN} TO embedding",
    f"ALTER TABLE {TABLE} ALTER COLUMN embedding SET NOT NULL",
    f"ALTER INDEX {NEXT_INDEX} RENAME TO {TABLE}_embedding",
    f"UPDATE {MODEL_TABLE} SET name = next_name, next_name = NULL",
)


async def read_transition(conn: psycopg.AsyncConnection[Any], model: str) -> Transition | None:
    """The re-embed towards `model` under way, if any."""
    row = await (await conn.execute(MODELS)).fetchone()
    if row is None or not model or row[1] != model:
        return None
    dimensions = await (await conn.execute(COLUMN_DIMENSIONS, {"table": TABLE, "name": NEXT_COLUMN})).fetchone()
    return Transition(str(row[0]), model, int(dimensions[0])) if dimensions else None


async def prepare(conn: psycopg.AsyncConnection[Any], dimensions: int, model: str) -> Transition | None:
    """Inside the schema's transaction: a re-embed begun (or resumed) when the recorded model isn't `model`."""
    await conn.execute(ADD_NEXT_NAME)
    row = await (await conn.execute(MODELS)).fetchone()
    if row is None or not model:
        return None
    recorded, next_name = row
    if recorded == model and next_name is None:
        return None
    if recorded == model and next_name != model:
        # Back to the recorded model while a re-embed to another ran: the passages added meanwhile have none of its
        # vectors, so every one is re-embedded with it.
        log.warning("knowledge_reembed_abandoned", model=model, towards=next_name)
    found = await (await conn.execute(COLUMN_DIMENSIONS, {"table": TABLE, "name": NEXT_COLUMN})).fetchone()
    total = int((await (await conn.execute(COUNT)).fetchone() or (0,))[0])
    if next_name == model and found is not None and int(found[0]) == dimensions:
        left = int((await (await conn.execute(LEFT)).fetchone() or (0,))[0])
        log.info("knowledge_reembed_resuming", previous=recorded, model=model, passages=total, left=left)
    else:
        for statement in _begin_statements(dimensions):
            await conn.execute(statement)
        await conn.execute(f"UPDATE {MODEL_TABLE} SET next_name = %(name)s", {"name": model})
        log.info("knowledge_reembed_started", previous=recorded, model=model, passages=total)
    return Transition(str(recorded), model, dimensions)


async def next_batch(conn: psycopg.AsyncConnection[Any], after: tuple[str, str] | None, limit: int) -> list[Passage]:
    """Up to `limit` passages without their new vector, in key order after `after` (None: from the first)."""
    if after is None:
        cursor = await conn.execute(BATCH_FIRST, {"limit": limit})
    else:
        cursor = await conn.execute(BATCH_AFTER, {"scope": after[0], "key": after[1], "limit": limit})
    passages = []
    for row in await cursor.fetchall():
        fields = dict(zip(PASSAGE_COLUMNS, row, strict=True))
        passages.append(Passage(**fields | {"updated_at": float(fields["updated_at"])}))
    return passages


async def left(conn: psycopg.AsyncConnection[Any]) -> int:
    row = await (await conn.execute(LEFT)).fetchone()
    return int(row[0]) if row else 0


async def switch(conn: psycopg.AsyncConnection[Any]) -> bool:
    """The new vectors made the searched ones, the model recorded and the old vectors dropped, at once; False (and
    nothing changed) if a passage still lacks its new vector."""
    try:
        async with conn.transaction():
            await conn.execute(SWITCH_LOCK_TIMEOUT)
            await conn.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
            if await (await conn.execute(f"SELECT 1 FROM {TABLE} WHERE {NEXT_COLUMN} IS NULL LIMIT 1")).fetchone():
                return False
            for statement in SWITCH:
                await conn.execute(statement)
    except psycopg.errors.LockNotAvailable:  # a long transaction holds the table: tried again
        log.info("knowledge_reembed_switch_waiting")
        return False
    return True


class ReembedLock:
    """The connection of the one process re-embedding, holding the lock while it works, and its work on it."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def take(self, configure: Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]]) -> bool:
        """Whether this process holds the lock (taken now if free); `configure` readies its connection."""
        if self._conn is not None and (self._conn.closed or self._conn.broken):
            self._conn = None  # the connection was lost, and the lock with it: taken again if free
        if self._conn is None:
            conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True, connect_timeout=10)
            row = await (await conn.execute(TRY_LOCK)).fetchone()
            if not (row and row[0]):
                await conn.close()
                return False
            await configure(conn)
            self._conn = conn
        return True

    def _held(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None:
            raise RuntimeError("the knowledge is re-embedded without the re-embedding lock")
        return self._conn

    async def batch(self, after: tuple[str, str] | None, limit: int) -> list[Passage]:
        return await next_batch(self._held(), after, limit)

    async def store(self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]]) -> None:
        if len(passages) != len(vectors):
            raise ValueError(f"{len(passages)} passages but {len(vectors)} vectors")
        await self._held().execute(STORE, {
            "scopes": [passage.scope for passage in passages], "keys": [passage.key for passage in passages],
            "texts": [passage.text for passage in passages], "titles": [passage.title for passage in passages],
            "locators": [passage.locator for passage in passages],
            "vectors": [_literal(vector) for vector in vectors],
        })  # fmt: skip

    async def left(self) -> int:
        return await left(self._held())

    async def switch(self) -> bool:
        return await switch(self._held())

    async def release(self) -> None:
        if self._conn is not None:
            await self._conn.close()  # the lock with it
            self._conn = None


def _literal(vector: Sequence[float]) -> str:
    """A vector as PostgreSQL reads one: "[0.1,-0.2,…]" (half precision is all the column keeps)."""
    return "[" + ",".join(f"{value:.5g}" for value in np.asarray(vector, dtype=np.float32).tolist()) + "]"
