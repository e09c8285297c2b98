"""The SQL of the PostgreSQL knowledge engine (engine.py beside it): its schema, its statements, and the rows they
take and give."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async
from psycopg.conninfo import conninfo_to_dict

from bot.knowledge.passages import Hit, Passage, Skipped

TABLE = "knowledge_passages"
MODEL_TABLE = "knowledge_model"  # one row: the embedding model the vectors were made with
SKIPPED_TABLE = "knowledge_skipped"  # a file's passages the database refused, shown by /knowledge list
# What was removed, and when by the database's clock: an addition decided before (queued in some process) that lands
# after is dropped. Kept REMOVALS_KEPT_SECONDS, far longer than an addition waits in a queue.
REMOVALS_TABLE = "knowledge_removals"
REMOVALS_KEPT_SECONDS = 86_400

# Each passage is stemmed in its own language (bot.knowledge.postgres.languages: 'english' unless told otherwise),
# not 'simple': questions are sentences, so stemming matches "deploying" to "deployment" and stop words keep "how do
# I" from matching every passage in the OR of a question's words. Codes, numbers, file names and URLs are kept whole
# by the parser either way ("E4711", "0x80070005", "v1.2.3").
TEXT_SEARCH_CONFIG = "english"
# What the words search reads of a passage: its title and where it is in its source (a document's headings) count
# less than its text. A generated column needs an immutable expression, and a cast from text to a configuration is
# only stable because it reads the search path: this function names the configuration in pg_catalog, so the path
# can't change it, and is declared immutable. A database made before it is upgraded once (upgrades.py).
WORDS_FUNCTION = "knowledge_words"
# Made once (by whoever makes the table: another role of a shared database may use it, not replace it).
MAKE_WORDS_FUNCTION = f"""
DO $make$ BEGIN
    IF to_regprocedure('{WORDS_FUNCTION}(text, text, text, text)') IS NULL THEN
        CREATE FUNCTION {WORDS_FUNCTION}(language text, title text, locator text, body text) RETURNS tsvector
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $words$
            SELECT setweight(to_tsvector(('pg_catalog.' || language)::regconfig, title), 'C')
                || setweight(to_tsvector(('pg_catalog.' || language)::regconfig, locator), 'C')
                || setweight(to_tsvector(('pg_catalog.' || language)::regconfig, body), 'A')
        $words$;
    END IF;
END $make$"""
WORDS = f"{WORDS_FUNCTION}(language, title, locator, text)"
# A passage's length in words, for BM25's length normalisation; its average comes from the statistics ANALYZE keeps.
LENGTH_COLUMN = (
    "length integer NOT NULL GENERATED ALWAYS AS "
    r"(coalesce(array_length(regexp_split_to_array(btrim(title || ' ' || text), '\s+'), 1), 0)) STORED"
)


def schema(dimensions: int) -> list[str]:
    """Idempotent: every statement may run on a database that already has it all."""
    return [
        "CREATE EXTENSION IF NOT EXISTS vector",
        MAKE_WORDS_FUNCTION,
        f"""
        CREATE TABLE IF NOT EXISTS {TABLE} (
            scope text NOT NULL,
            key text NOT NULL,
            source text NOT NULL,
            title text NOT NULL,
            text text NOT NULL,
            locator text NOT NULL DEFAULT '',
            url text NOT NULL DEFAULT '',
            channel text NOT NULL DEFAULT '',
            author text NOT NULL DEFAULT '',
            updated_at double precision NOT NULL DEFAULT 0,
            language text NOT NULL DEFAULT '{TEXT_SEARCH_CONFIG}',
            embedding halfvec({int(dimensions)}) NOT NULL,
            words tsvector GENERATED ALWAYS AS ({WORDS}) STORED,
            {LENGTH_COLUMN},
            PRIMARY KEY (scope, key)
        )""",
        # A database made before the words search ranked by BM25 gets the column (the table is rewritten once).
        f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS {LENGTH_COLUMN}",
        # A database made before passages had a language: every one was English (no rewrite: a default).
        f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS language text NOT NULL DEFAULT '{TEXT_SEARCH_CONFIG}'",
        f"""
        CREATE TABLE IF NOT EXISTS {MODEL_TABLE} (
            only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
            name text NOT NULL
        )""",
        # No index on the source: what made a passage refused may be its source's length (an index's row limit).
        f"""
        CREATE TABLE IF NOT EXISTS {SKIPPED_TABLE} (
            scope text NOT NULL,
            source text NOT NULL,
            key text NOT NULL,
            title text NOT NULL,
            locator text NOT NULL,
            reason text NOT NULL,
            at double precision NOT NULL
        )""",
        f"CREATE INDEX IF NOT EXISTS {SKIPPED_TABLE}_scope ON {SKIPPED_TABLE} (scope)",
        # kind: scope, source, key, author, linked (value: a URL prefix), or author_everywhere (scope: a platform's
        # prefix, "discord:"). No index on the value: a key or source may be too long for one.
        f"""
        CREATE TABLE IF NOT EXISTS {REMOVALS_TABLE} (
            scope text NOT NULL,
            kind text NOT NULL,
            value text NOT NULL,
            at double precision NOT NULL
        )""",
        f"CREATE INDEX IF NOT EXISTS {REMOVALS_TABLE}_scope_at ON {REMOVALS_TABLE} (scope, at)",
        # fastupdate off: a search looks a question's lexemes up one by one, and each lookup would read the whole
        # list of rows added since the last vacuum that the index keeps pending (up to 4 MB) while messages arrive.
        f"CREATE INDEX IF NOT EXISTS {TABLE}_words ON {TABLE} USING gin (words) WITH (fastupdate = off)",
        f"ALTER INDEX {TABLE}_words SET (fastupdate = off)",
        # m 12 and ef_construction 40 rather than 16 and 64: inserts 2.7 times as fast (what bounds ingestion), the
        # same recall of the 40 nearest at ef_search 100 (docs/BENCHMARKS.md, "Knowledge").
        f"CREATE INDEX IF NOT EXISTS {TABLE}_embedding ON {TABLE} USING hnsw (embedding halfvec_cosine_ops) "
        "WITH (m = 12, ef_construction = 40)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_source ON {TABLE} (scope, source)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_author ON {TABLE} (scope, author)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_channel ON {TABLE} (scope, channel)",
    ]


# For vector columns the type modifier is the dimension count.
VECTOR_DIMENSIONS = (
    "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass(%(table)s) AND attname = 'embedding'"
)

# The first model to start on the database is recorded; every later start reads which it was.
RECORD_MODEL = f"INSERT INTO {MODEL_TABLE} (name) VALUES (%(name)s) ON CONFLICT (only_row) DO NOTHING"
RECORDED_MODEL = f"SELECT name FROM {MODEL_TABLE}"

# Every pooled connection: HNSW looks at 100 candidates, and keeps scanning (iterative scan, pgvector 0.8) when
# the scope and channel filters drop too many of them; JIT compiling would cost more than these queries take.
SESSION_SETTINGS = "SET hnsw.ef_search = 100; SET hnsw.iterative_scan = 'relaxed_order'; SET jit = off"


def describe(url: str) -> str:
    """Where `url` points, without its password: `host/dbname`."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unreadable KNOWLEDGE_DATABASE_URL"
    return f"{parts.get('host') or 'localhost'}/{parts.get('dbname') or parts.get('user') or ''}"


async def configure_connection(conn: psycopg.AsyncConnection[Any]) -> None:
    await register_vector_async(conn)
    await conn.execute(SESSION_SETTINGS)


UPSERT = f"""
INSERT INTO {TABLE} AS p (scope, key, source, title, text, locator, url, channel, author, updated_at, language,
                          embedding)
VALUES (%(scope)s, %(key)s, %(source)s, %(title)s, %(text)s, %(locator)s, %(url)s, %(channel)s, %(author)s,
        %(updated_at)s, %(language)s, %(embedding)s::halfvec)
ON CONFLICT (scope, key) DO UPDATE SET
    source = EXCLUDED.source, title = EXCLUDED.title, text = EXCLUDED.text, locator = EXCLUDED.locator,
    url = EXCLUDED.url, channel = EXCLUDED.channel, author = EXCLUDED.author, updated_at = EXCLUDED.updated_at,
    language = EXCLUDED.language, embedding = EXCLUDED.embedding
WHERE (p.source, p.title, p.text, p.locator, p.url, p.channel, p.author, p.updated_at, p.language)
    IS DISTINCT FROM (EXCLUDED.source, EXCLUDED.title, EXCLUDED.text, EXCLUDED.locator, EXCLUDED.url,
                      EXCLUDED.channel, EXCLUDED.author, EXCLUDED.updated_at, EXCLUDED.language)
"""

DELETE_KEYS = f"DELETE FROM {TABLE} WHERE scope = %(scope)s AND key = ANY(%(keys)s)"
# A source's or scope's refused passages go with it.
DELETE_SOURCE = f"""
WITH skipped AS (DELETE FROM {SKIPPED_TABLE} WHERE scope = %(scope)s AND source = %(source)s)
DELETE FROM {TABLE} WHERE scope = %(scope)s AND source = %(source)s"""
DELETE_SCOPE = f"""
WITH skipped AS (DELETE FROM {SKIPPED_TABLE} WHERE scope = %(scope)s)
DELETE FROM {TABLE} WHERE scope = %(scope)s"""
# A place deleted whole (a Discord thread): the passages whose links lead into it (rare: the scope's rows scanned).
DELETE_LINKED = f"DELETE FROM {TABLE} WHERE scope = %(scope)s AND starts_with(url, %(prefix)s)"
DELETE_AUTHOR = f"DELETE FROM {TABLE} WHERE scope = %(scope)s AND author = %(author)s"
# /forget-me: a person's passages in every server of a platform (rare: a scan is fine).
DELETE_AUTHOR_EVERYWHERE = f"DELETE FROM {TABLE} WHERE author = %(author)s AND starts_with(scope, %(prefix)s)"

# Additions and removals of a scope are serialised: an upsert holds its scopes' (and platforms') locks shared, a
# removal its scope's (or platform's) exclusively, so that an upsert either sees the removal recorded or committed
# before it, its rows then deleted.
LOCK_SHARED = "SELECT pg_advisory_xact_lock_shared(hashtextextended(name, 0)) FROM unnest(%(names)s::text[]) AS name"
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%(name)s, 0))"
NOW = "SELECT extract(epoch FROM clock_timestamp())::double precision"
REMOVALS_SINCE = f"SELECT scope, kind, value, at FROM {REMOVALS_TABLE} WHERE scope = ANY(%(scopes)s) AND at > %(since)s"
RECORD_REMOVALS = f"""
WITH old AS (
    DELETE FROM {REMOVALS_TABLE}
    WHERE scope = %(scope)s AND at < extract(epoch FROM clock_timestamp()) - {REMOVALS_KEPT_SECONDS}
)
INSERT INTO {REMOVALS_TABLE} (scope, kind, value, at)
SELECT %(scope)s, %(kind)s, value, extract(epoch FROM clock_timestamp()) FROM unnest(%(values)s::text[]) AS value"""

RECORD_SKIPPED = f"""
INSERT INTO {SKIPPED_TABLE} (scope, source, key, title, locator, reason, at)
VALUES (%(scope)s, %(source)s, %(key)s, %(title)s, %(locator)s, %(reason)s, %(at)s)"""

# A source's title is its latest passage's (a channel renamed shows its new name); a file whose every passage was
# refused is listed too, with none stored.
SOURCES = f"""
WITH stored AS (
    SELECT source, (array_agg(title ORDER BY updated_at DESC))[1] AS title, count(*) AS passages,
           sum(length(text)) AS characters, max(updated_at) AS at, max(channel) AS channel
    FROM {TABLE}
    WHERE scope = %(scope)s
    GROUP BY source
),
skipped AS (
    SELECT source, min(title) AS title, count(*) AS skipped, max(at) AS at,
           (array_agg(concat_ws(': ', nullif(locator, ''), reason) ORDER BY key))[1] AS reason
    FROM {SKIPPED_TABLE}
    WHERE scope = %(scope)s
    GROUP BY source
)
SELECT source, coalesce(s.title, k.title), coalesce(s.passages, 0), coalesce(s.characters, 0),
       greatest(s.at, k.at) AS at, coalesce(k.skipped, 0), coalesce(k.reason, ''), coalesce(s.channel, '')
FROM stored s FULL JOIN skipped k USING (source)
ORDER BY at DESC, source
"""


Row = tuple[Passage, dict[str, Any]]
PASSAGE_COLUMNS = ("scope", "key", "source", "title", "text", "locator", "url", "channel", "author", "updated_at")


def kept(rows: list[Row], decided: Sequence[float], removals: Sequence[tuple[str, str, str, float]]) -> list[Row]:
    """Those of `rows` no removal recorded after their addition was `decided` takes (both by the database's clock)."""
    return [
        row
        for row, when in zip(rows, decided, strict=True)
        if not any(at > when and removes(scope, kind, value, row[0]) for scope, kind, value, at in removals)
    ]


def removes(scope: str, kind: str, value: str, passage: Passage) -> bool:
    """Whether the removal (scope, kind, value) takes `passage`."""
    if kind == "author_everywhere":
        return passage.scope.startswith(scope) and passage.author == value
    if passage.scope != scope:
        return False
    named = {"source": passage.source, "key": passage.key, "author": passage.author}
    return kind == "scope" or named.get(kind) == value or (kind == "linked" and passage.url.startswith(value))


def platform_of(scope: str) -> str:
    """The platform's prefix of `scope` ("discord:"), which /forget-me removes an author from."""
    return scope.split(":", 1)[0] + ":"


def lock_name(scope: str) -> str:
    return f"knowledge:{scope}"


def skipped_row(scope: str, source: str, skipped: Skipped) -> dict[str, Any]:
    passage, reason = skipped.passage, skipped.reason
    return {"scope": scope, "source": source, "key": passage.key, "title": passage.title, "locator": passage.locator,
            "reason": reason, "at": passage.updated_at}  # fmt: skip


def upsert_row(passage: Passage, vector: Sequence[float], language: str = TEXT_SEARCH_CONFIG) -> dict[str, Any]:
    return {name: getattr(passage, name) for name in PASSAGE_COLUMNS} | {
        "language": language,
        "embedding": np.asarray(vector, dtype=np.float32),
    }


def hit_from_row(row: dict[str, Any]) -> Hit:
    passage = Passage(**{name: row[name] for name in PASSAGE_COLUMNS} | {"updated_at": float(row["updated_at"])})
    relevance = math.nan if row["relevance"] is None else float(row["relevance"])  # no vector yet: a re-embed
    return Hit(passage=passage, relevance=relevance, words=float(row["words"]))
