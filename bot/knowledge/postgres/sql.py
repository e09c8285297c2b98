"""The SQL of the PostgreSQL knowledge engine (engine.py beside it): its schema, its statements, and the rows they
take and give."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bot.knowledge.passages import Hit, Passage, Skipped

TABLE = "knowledge_passages"
MODEL_TABLE = "knowledge_model"  # one row: the embedding model the vectors were made with
SKIPPED_TABLE = "knowledge_skipped"  # a file's passages the database refused, shown by /knowledge list
# What was removed, and when by the database's clock: an addition decided before (queued in some process) that lands
# after is dropped. Kept REMOVALS_KEPT_SECONDS, far longer than an addition waits in a queue.
REMOVALS_TABLE = "knowledge_removals"
REMOVALS_KEPT_SECONDS = 86_400

# 'english', not 'simple': questions are sentences, so its stemming matches "deploying" to "deployment" and its
# stop words keep "how do I" from matching every passage in the OR of a question's words. Codes, numbers, file
# names and URLs are kept whole by the parser either way ("E4711", "0x80070005", "v1.2.3").
TEXT_SEARCH_CONFIG = "english"
# What the words search reads of a passage: its title and where it is in its source (a document's headings) count
# less than its text. A database made before the locator was read has its column's expression replaced once.
WORDS = (
    f"setweight(to_tsvector('{TEXT_SEARCH_CONFIG}', title), 'C') "
    f"|| setweight(to_tsvector('{TEXT_SEARCH_CONFIG}', locator), 'C') "
    f"|| setweight(to_tsvector('{TEXT_SEARCH_CONFIG}', text), 'A')"
)
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
# A passage's length in words, for BM25's length normalisation; its average comes from the statistics ANALYZE keeps.
LENGTH_COLUMN = (
    "length integer NOT NULL GENERATED ALWAYS AS "
    r"(coalesce(array_length(regexp_split_to_array(btrim(title || ' ' || text), '\s+'), 1), 0)) STORED"
)


def schema(dimensions: int) -> list[str]:
    """Idempotent: every statement may run on a database that already has it all."""
    return [
        "CREATE EXTENSION IF NOT EXISTS vector",
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
            embedding halfvec({int(dimensions)}) NOT NULL,
            words tsvector GENERATED ALWAYS AS ({WORDS}) STORED,
            {LENGTH_COLUMN},
            PRIMARY KEY (scope, key)
        )""",
        # A database made before the words search ranked by BM25 gets the column (the table is rewritten once).
        f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS {LENGTH_COLUMN}",
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

UPSERT = f"""
INSERT INTO {TABLE} AS p (scope, key, source, title, text, locator, url, channel, author, updated_at, embedding)
VALUES (%(scope)s, %(key)s, %(source)s, %(title)s, %(text)s, %(locator)s, %(url)s, %(channel)s, %(author)s,
        %(updated_at)s, %(embedding)s::halfvec)
ON CONFLICT (scope, key) DO UPDATE SET
    source = EXCLUDED.source, title = EXCLUDED.title, text = EXCLUDED.text, locator = EXCLUDED.locator,
    url = EXCLUDED.url, channel = EXCLUDED.channel, author = EXCLUDED.author, updated_at = EXCLUDED.updated_at,
    embedding = EXCLUDED.embedding
WHERE (p.source, p.title, p.text, p.locator, p.url, p.channel, p.author, p.updated_at)
    IS DISTINCT FROM (EXCLUDED.source, EXCLUDED.title, EXCLUDED.text, EXCLUDED.locator, EXCLUDED.url,
                      EXCLUDED.channel, EXCLUDED.author, EXCLUDED.updated_at)
"""

# One round trip. The words list ranks by BM25 (k1 1.2, b 0.75): each of the question's lexemes weighs its inverse
# passage frequency, saturated by how often the passage holds it and normalised by the passage's length. A lexeme's
# frequency is the statistics ANALYZE (autovacuum) keeps of the column for the common ones, and counted through the
# GIN index for the rest (no more frequent than the least common listed one), so the rare words, which
# decide a ranking, weigh what they should. How often a passage holds a lexeme is read from ts_rank of that lexeme
# alone: for n occurrences it is sum(1/i², i = 1..n)/(π²/6), whose tail, about 1/(n + ½), gives n back.
# What is ranked stays small whatever the question: passages are looked up by the rarest lexemes only, as many as
# keep the expected matches under %(lexical_budget)s (always the rarest one), and never by a lexeme in more than a
# %(common)s share of the passages (unless that is few passages): a question of only such words ("how do I
# deploy?" in a deployment channel) has no words list, its meaning finds its passages. Passages holding every one
# of the question's lexemes are looked up too, so one asked for by its own words is found however common they are.
# At most %(lexical_scan)s passages of each lookup are ranked, by every lexeme. Each passage's `words` is the
# share of the question it holds, each lexeme weighing its rarity squared as in Lucene's classic tf-idf, so "E4711"
# outweighs "anyone", "seen", "error" and "before" together: what the relevance threshold reads.
# The meaning list: the nearest vectors by cosine distance through the HNSW index. Both filtered by access, fused
# by reciprocal rank (k = 60), a words vote counting as much as the share of the question it holds.
SEARCH = rf"""
WITH common AS (
    SELECT e.lexeme, e.frequency
    FROM pg_stats s, unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS e(lexeme, frequency)
    WHERE s.schemaname = current_schema() AND s.tablename = '{TABLE}' AND s.attname = 'words'
),
size AS (
    SELECT CASE WHEN c.reltuples >= 1000 THEN c.reltuples ELSE (SELECT greatest(count(*), 1) FROM {TABLE}) END
               AS passages,
           coalesce((SELECT min(frequency) FROM common), 1) AS listed,
           (SELECT avg(bound::float8) FROM pg_stats s, unnest(s.histogram_bounds::text::int[]) AS bound
            WHERE s.schemaname = current_schema() AND s.tablename = '{TABLE}' AND s.attname = 'length') AS length
    FROM pg_class c
    WHERE c.oid = to_regclass('{TABLE}')
),
asked AS (
    SELECT DISTINCT q.lexeme, ('''' || replace(replace(q.lexeme, '\', '\\'), '''', '''''') || '''')::tsquery AS query
    FROM unnest(to_tsvector('{TEXT_SEARCH_CONFIG}', %(text)s)) AS q
),
lexemes AS (
    SELECT a.lexeme, a.query, least(greatest(coalesce(c.frequency, least(
               (SELECT count(*) FROM {TABLE} p WHERE p.words @@ a.query) / s.passages, s.listed
           )), 0.5 / s.passages), 0.9) AS frequency
    FROM asked a
    CROSS JOIN size s
    LEFT JOIN common c ON c.lexeme = a.lexeme
),
terms AS MATERIALIZED (
    SELECT l.query, ln(1.0 / l.frequency) ^ 2 AS weight,
           ln(1 + (1 - l.frequency + 0.5 / s.passages) / (l.frequency + 0.5 / s.passages)) AS idf,
           l.frequency <= %(common)s OR l.frequency * s.passages <= %(lexical_scan)s AS telling,
           s.passages * sum(l.frequency) OVER (ORDER BY l.frequency, l.lexeme) AS expected,
           row_number() OVER (ORDER BY l.frequency, l.lexeme) AS rarity
    FROM lexemes l, size s
),
question AS (
    SELECT string_agg(query::text, ' | ')
               FILTER (WHERE telling AND (rarity = 1 OR expected <= %(lexical_budget)s))::tsquery AS lookup,
           CASE WHEN count(*) > 1 THEN string_agg(query::text, ' & ')::tsquery END AS every,
           sum(weight) AS weight
    FROM terms
),
matching AS MATERIALIZED (
    (SELECT p.scope, p.key, p.words, p.length
     FROM {TABLE} p, question q
     WHERE p.words @@ q.every
       AND p.scope = ANY(%(scopes)s) AND (p.channel = '' OR p.channel = ANY(%(channels)s))
     LIMIT %(lexical_scan)s)
    UNION ALL
    (SELECT p.scope, p.key, p.words, p.length
     FROM {TABLE} p, question q
     WHERE p.words @@ q.lookup AND NOT coalesce(p.words @@ q.every, false)
       AND p.scope = ANY(%(scopes)s) AND (p.channel = '' OR p.channel = ANY(%(channels)s))
     LIMIT %(lexical_scan)s)
),
held AS (
    SELECT m.scope, m.key, m.length, t.weight, t.idf,
           1 / greatest(1.6449341 - 1.6449341 * ts_rank('{{0, 1, 0, 1}}', m.words, t.query, 0), 0.001) - 0.5 AS times
    FROM matching m
    JOIN terms t ON m.words @@ t.query
),
lexical AS MATERIALIZED (
    SELECT h.scope, h.key, sum(h.weight) / q.weight AS words,
           sum(h.idf * h.times * 2.2
               / (h.times + 1.2 * (0.25 + 0.75 * h.length / coalesce(nullif(s.length, 0), nullif(h.length, 0), 1))))
               AS bm25
    FROM held h, question q, size s
    GROUP BY h.scope, h.key, q.weight
    ORDER BY bm25 DESC
    LIMIT %(candidates)s
),
semantic AS MATERIALIZED (
    SELECT p.scope, p.key, p.embedding <=> %(vector)s::halfvec AS distance
    FROM {TABLE} p
    WHERE p.scope = ANY(%(scopes)s) AND (p.channel = '' OR p.channel = ANY(%(channels)s))
    ORDER BY p.embedding <=> %(vector)s::halfvec
    LIMIT %(candidates)s
),
fused AS (
    SELECT scope, key, sum(vote / (60 + rank)) AS score
    FROM (
        SELECT scope, key, words AS vote, row_number() OVER (ORDER BY bm25 DESC) AS rank FROM lexical
        UNION ALL
        SELECT scope, key, 1.0, row_number() OVER (ORDER BY distance) FROM semantic
    ) AS ranked
    GROUP BY scope, key
)
SELECT p.scope, p.key, p.source, p.title, p.text, p.locator, p.url, p.channel, p.author, p.updated_at,
       1 - (p.embedding <=> %(vector)s::halfvec) AS relevance, coalesce(l.words, 0) AS words
FROM fused f
JOIN {TABLE} p USING (scope, key)
LEFT JOIN lexical l USING (scope, key)
ORDER BY f.score DESC, relevance DESC
LIMIT %(limit)s
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


def upsert_row(passage: Passage, vector: Sequence[float]) -> dict[str, Any]:
    return {name: getattr(passage, name) for name in PASSAGE_COLUMNS} | {
        "embedding": np.asarray(vector, dtype=np.float32)
    }


def hit_from_row(row: dict[str, Any]) -> Hit:
    passage = Passage(**{name: row[name] for name in PASSAGE_COLUMNS} | {"updated_at": float(row["updated_at"])})
    return Hit(passage=passage, relevance=float(row["relevance"]), words=float(row["words"]))
