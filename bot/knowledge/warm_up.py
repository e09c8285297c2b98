"""What a process's first question would pay for, paid when the knowledge starts: the embedder's first run (its
buffers allocated). The database's pooled connections are warmed as they open (bot.knowledge.postgres.search)."""

from __future__ import annotations

import structlog

from bot.knowledge.passages import Embedder

log = structlog.get_logger(__name__)

QUESTION = "How do I get started?"


async def warm_up(embedder: Embedder) -> None:
    try:
        await embedder.embed([QUESTION])
    except Exception as error:  # noqa: BLE001 - a warm-up that failed costs the first question, nothing else
        log.info("knowledge_warm_up_failed", error=str(error)[:200])
