"""The knowledge search's one statement: the words list ranked by BM25 and the meaning list, fused; and what it is
asked with."""

from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
import structlog

from bot.knowledge.passages import Access
from bot.knowledge.postgres.sql import TABLE, configure_connection
from bot.knowledge.postgres.transition import NEXT_COLUMN

# A help thread's answer accepted from a helper or the bot (adapters.shared.helpdesk.solving) outranks the same words
# from others: its fused score weighs this much more, about two places among the first ten.
TRUSTED_SOURCE = "solved:helper:"
TRUSTED_WEIGHT = 1.1

# How many candidates each list (words, meaning) brings to the fusion, for `limit` hits.
CANDIDATES_PER_HIT = 4
MIN_CANDIDATES = 50
# The words list ranks at most LEXICAL_SCAN passages, looked up by the question's rarest lexemes, as many as are
# expected to match at most LEXICAL_BUDGET passages, none held by more than a COMMON_SHARE of them: a search costs
# about the same at 10,000 passages or 1,000,000 (docs/BENCHMARKS.md, "Knowledge").
LEXICAL_BUDGET = 800
LEXICAL_SCAN = 800
COMMON_SHARE = 0.05
# A vague question, whose rarest word is in more than LEXICAL_BUDGET passages ("how do I deploy the api?"), has
# VAGUE_SCAN of them ranked: its words can't tell them apart much, its meaning decides; and ranking 800 cost a
# search 3 ms more at the mean of 300 questions over 100,000 messages (docs/BENCHMARKS.md, "Knowledge").
VAGUE_SCAN = 200

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
# At most %(lexical_scan)s passages of each lookup are ranked, by every lexeme (%(vague_scan)s for a vague
# question). Each passage's `words` is the share of the question it holds, each lexeme weighing its rarity squared as
# in Lucene's classic tf-idf, so "E4711" outweighs "anyone", "seen", "error" and "before" together: what the
# relevance threshold reads.
# The meaning list: the nearest vectors by cosine distance through the HNSW index. Both filtered by access; their
# passages fused by score, each scored by both lists' measures (a passage only the words found has its cosine
# computed; one only the meaning found has no words): its cosine weighs %(meaning_weight)s (the model's, from
# bot.knowledge.vectors), the rest its words: the square of its share of the question's words as a share of the best
# candidate's, times the square root of its BM25 as a share of the best one's. Fused so rather than by rank, SciFact's
# training split gains 0.02 to 0.04 of nDCG@10 (docs/BENCHMARKS.md), and a rare word ("E4711") the question repeats
# still brings its passage first when a model's cosines (WordLlama's) prefer the passages of its common words.
_SEARCH = rf"""
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
    FROM unnest(to_tsvector(('pg_catalog.' || %(language)s)::regconfig, %(text)s)) AS q
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
           sum(weight) AS weight,
           CASE WHEN bool_or(rarity = 1 AND expected > %(lexical_budget)s) THEN %(vague_scan)s ELSE %(lexical_scan)s END
               AS scan
    FROM terms
),
matching AS MATERIALIZED (
    (SELECT p.scope, p.key, p.words, p.length
     FROM {TABLE} p, question q
     WHERE p.words @@ q.every
       AND p.scope = ANY(%(scopes)s) AND (p.channel = '' OR p.channel = ANY(%(channels)s))
     LIMIT (SELECT scan FROM question))
    UNION ALL
    (SELECT p.scope, p.key, p.words, p.length
     FROM {TABLE} p, question q
     WHERE p.words @@ q.lookup AND NOT coalesce(p.words @@ q.every, false)
       AND p.scope = ANY(%(scopes)s) AND (p.channel = '' OR p.channel = ANY(%(channels)s))
     LIMIT (SELECT scan FROM question))
),
held AS (
    SELECT m.scope, m.key, m.length, t.weight, t.idf,
           1 / greatest(1.6449341 - 1.6449341 * ts_rank('{{{{0, 1, 0, 1}}}}', m.words, t.query, 0), 0.001) - 0.5
               AS times
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
    SELECT p.scope, p.key, p.{{column}} <=> %(vector)s::halfvec AS distance
    FROM {TABLE} p
    WHERE p.scope = ANY(%(scopes)s) AND (p.channel = '' OR p.channel = ANY(%(channels)s)){{with_vector}}
    ORDER BY p.{{column}} <=> %(vector)s::halfvec
    LIMIT %(candidates)s
),
candidates AS (
    SELECT scope, key FROM lexical
    UNION
    SELECT scope, key FROM semantic
),
scored AS (
    SELECT p.scope, p.key, p.source, p.title, p.text, p.locator, p.url, p.channel, p.author, p.updated_at,
           1 - (p.{{column}} <=> %(vector)s::halfvec) AS relevance, coalesce(l.words, 0) AS words,
           coalesce(l.words / nullif((SELECT max(words) FROM lexical), 0), 0) AS held,
           coalesce(l.bm25 / nullif((SELECT max(bm25) FROM lexical), 0), 0) AS bm25{{guard}}
    FROM candidates c
    JOIN {TABLE} p USING (scope, key)
    LEFT JOIN lexical l USING (scope, key)
)
SELECT scope, key, source, title, text, locator, url, channel, author, updated_at, relevance, words
FROM scored
ORDER BY ((1 - %(meaning_weight)s) * held ^ 2 * sqrt(bm25) + %(meaning_weight)s * coalesce(relevance, 0))
             * (CASE WHEN starts_with(source, '{TRUSTED_SOURCE}') THEN {TRUSTED_WEIGHT} ELSE 1 END) DESC,
         relevance DESC NULLS LAST
LIMIT %(limit)s
"""


def search_statement(column: str = "embedding", *, vectorless: bool = False, guard: str = "") -> str:
    """The statement searching the vectors of `column`; `vectorless`: some passages have none there (during a
    re-embed, bot.knowledge.postgres.transition), left out of the meaning list, their relevance NULL; `guard`: one
    more column read, so that the statement fails once that column is gone."""
    return _SEARCH.format(
        column=column,
        with_vector=f" AND p.{column} IS NOT NULL" if vectorless else "",
        guard=f", {guard}" if guard else "",
    )


SEARCH = search_statement()
# During a re-embed: searched with the question in the new model (some passages not there yet), or in the old one
# (the statement reads the new column too, so that it fails rather than compare the old model's question with the
# new model's vectors once another process has made the switch).
SEARCH_NEXT = search_statement(NEXT_COLUMN, vectorless=True)
SEARCH_PREVIOUS = search_statement("embedding", vectorless=True, guard=f"p.{NEXT_COLUMN} IS NOT NULL AS reembedded")


def search_parameters(
    text: str, language: str, vector: Sequence[float], access: Access, limit: int, meaning_weight: float
) -> dict[str, Any]:
    """The statement's parameters for a question (`language`: its text search configuration; `meaning_weight`: its
    embedding model's, bot.knowledge.vectors) and who asks."""
    return {
        "text": text,
        "language": language,
        "vector": np.asarray(vector, dtype=np.float32),
        "scopes": list(access.scopes),
        "channels": sorted(access.readable_channels),
        "candidates": max(MIN_CANDIDATES, CANDIDATES_PER_HIT * limit),
        "lexical_budget": LEXICAL_BUDGET,
        "lexical_scan": LEXICAL_SCAN,
        "vague_scan": VAGUE_SCAN,
        "common": COMMON_SHARE,
        "limit": limit,
        "meaning_weight": meaning_weight,
    }


log = structlog.get_logger(__name__)
WARM_UP_QUESTION = "How do I get started?"
WARM_UP_SCOPE = "warm-up:none"  # no passage's: a warm-up search finds nothing


async def warmed_connection(
    conn: psycopg.AsyncConnection[Any], *, statement: str, dimensions: int, language: str
) -> None:
    """A pooled connection configured, then its first search made before a question's: a new database process reads
    its catalogs and text search dictionaries then, 30 to 45 ms more than its next searches (docs/BENCHMARKS.md). A
    failed warm-up leaves the connection as it is."""
    await configure_connection(conn)
    vector = [1.0] + [0.0] * (dimensions - 1)
    parameters = search_parameters(WARM_UP_QUESTION, language, vector, Access((WARM_UP_SCOPE,)), 1, 0.5)
    try:
        await conn.execute(statement, parameters)
    except psycopg.Error as error:
        log.info("knowledge_connection_not_warmed", error=str(error)[:200])
