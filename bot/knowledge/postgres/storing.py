"""How the engine stores passages: the rows it writes (each passage with its language and vector), in batches, each
row dropped when a removal recorded since its addition was decided takes it, and a row the database refuses left
out with its reason rather than failing its batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import structlog

from bot.knowledge.passages import Passage, Skipped
from bot.knowledge.postgres.languages import Languages
from bot.knowledge.postgres.sql import LOCK_SHARED, REMOVALS_SINCE, Row, kept, lock_name, platform_of, upsert_row

log = structlog.get_logger(__name__)

UPSERT_BATCH = 500
# What the database refuses in one row only (a NUL, a value past an index's row size, a character it can't encode):
# that passage is left out, the rest of its batch stored. Anything else (the connection lost) fails the batch.
REFUSED_ROW = (psycopg.DataError, psycopg.errors.ProgramLimitExceeded, UnicodeEncodeError)


def rows_of(passages: Sequence[Passage], vectors: Sequence[Sequence[float]], languages: Languages) -> list[Row]:
    if len(passages) != len(vectors):
        raise ValueError(f"{len(passages)} passages but {len(vectors)} vectors")
    return [
        (passage, upsert_row(passage, vector, languages.of_passage(passage.text)))
        for passage, vector in zip(passages, vectors, strict=True)
    ]


async def store_batches(
    conn: psycopg.AsyncConnection[Any], rows: list[Row], statement: str, decided: list[float], offset: float
) -> list[Skipped]:
    """Upsert `rows` in batches of their own transactions (`decided`: when each addition was decided, by this host's
    clock, `offset` seconds behind the database's)."""
    skipped: list[Skipped] = []
    for start in range(0, len(rows), UPSERT_BATCH):
        batch = rows[start : start + UPSERT_BATCH]
        async with conn.transaction():
            stored = await not_removed(conn, batch, decided[start : start + UPSERT_BATCH], offset)
            skipped += await insert_isolating(conn, stored, statement)
    return skipped


async def not_removed(
    conn: psycopg.AsyncConnection[Any], rows: list[Row], decided: list[float], offset: float
) -> list[Row]:
    """Those of `rows` that no removal recorded since their addition was decided (by this host's clock) matches,
    read under their scopes' shared locks: a removal either committed before, and is seen, or waits for these."""
    if not rows:
        return rows
    scopes = {passage.scope for passage, _ in rows}
    names = sorted({*scopes, *map(platform_of, scopes)})
    await conn.execute(LOCK_SHARED, {"names": [lock_name(name) for name in names]})
    since = min(decided) + offset
    removals = await (await conn.execute(REMOVALS_SINCE, {"scopes": names, "since": since})).fetchall()
    if not removals:
        return rows
    stored = kept(rows, [when + offset for when in decided], removals)
    if len(stored) < len(rows):
        log.info("knowledge_additions_dropped", removed_after_decided=len(rows) - len(stored))
    return stored


async def insert_isolating(conn: psycopg.AsyncConnection[Any], rows: Sequence[Row], statement: str) -> list[Skipped]:
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
    return await insert_isolating(conn, rows[:half], statement) + await insert_isolating(conn, rows[half:], statement)


def refusal(error: Exception) -> str:
    """Why the database refused a passage, in a line."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"the database refused it ({detail})"
