"""What a knowledge database made by an earlier version is given at start, once: the words search reading passages'
locators (a Markdown section's headings) and stemming each passage in its own language."""

from __future__ import annotations

from typing import Any

import psycopg
import structlog

from bot.knowledge.postgres.sql import TABLE, WORDS, WORDS_FUNCTION

log = structlog.get_logger(__name__)

WORDS_EXPRESSION = """
SELECT pg_get_expr(d.adbin, d.adrelid)
FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
WHERE d.adrelid = to_regclass(%(table)s) AND a.attname = 'words'"""
SET_WORDS_EXPRESSION = f"ALTER TABLE {TABLE} ALTER COLUMN words SET EXPRESSION AS ({WORDS})"  # PostgreSQL 17+
# Before 17: the column made again, and its index.
REMAKE_WORDS = (
    f"ALTER TABLE {TABLE} DROP COLUMN words",
    f"ALTER TABLE {TABLE} ADD COLUMN words tsvector GENERATED ALWAYS AS ({WORDS}) STORED",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_words ON {TABLE} USING gin (words) WITH (fastupdate = off)",
)


async def upgrade_words(conn: psycopg.AsyncConnection[Any]) -> None:
    """A table whose words column is computed otherwise (made before locators were read, or before each passage had
    its language) gets today's expression, rewritten once. Its passages were all English-stemmed: they stay so."""
    row = await (await conn.execute(WORDS_EXPRESSION, {"table": TABLE})).fetchone()
    if row is None or WORDS_FUNCTION in str(row[0]):
        return
    log.info("knowledge_words_upgrading", table=TABLE)
    try:
        async with conn.transaction():
            await conn.execute(SET_WORDS_EXPRESSION)
    except psycopg.errors.SyntaxError:  # PostgreSQL before 17
        for statement in REMAKE_WORDS:
            await conn.execute(statement)
