"""What a process's first questions would pay for, paid when the knowledge starts: the embedder's first run, and each
pooled database connection's first search (a new database process reads its catalogs and text search dictionaries
then: 30 to 45 ms more than the next ones, docs/BENCHMARKS.md). The searches find nothing: no passage has their
scope."""

from __future__ import annotations

import asyncio

import structlog

from bot.knowledge.passages import Access, Embedder, KnowledgeEngine

log = structlog.get_logger(__name__)

QUESTION = "How do I get started?"
SCOPE = "warm-up:none"
SEARCHES = 8  # the knowledge database's pooled connections (PostgresEngine's pool_size), each searched at once


async def warm_up(embedder: Embedder, engine: KnowledgeEngine) -> None:
    try:
        [vector] = await embedder.embed([QUESTION])
        await asyncio.gather(*(engine.search(QUESTION, vector, Access((SCOPE,)), 8) for _ in range(SEARCHES)))
    except Exception as error:  # noqa: BLE001 - a warm-up that failed costs the first questions, nothing else
        log.info("knowledge_warm_up_failed", error=str(error)[:200])
