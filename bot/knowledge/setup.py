"""Knowledge from the settings: the engine (KNOWLEDGE_DATABASE_URL, else the embedded server in KNOWLEDGE_DATA_DIR)
and the embedder, started, with the reranker (RERANK_BASE_URL) if any; and whether to start it with the bot. Its
libraries are imported only when it starts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot.knowledge.opener import KnowledgeUnavailable
from bot.knowledge.service import Knowledge
from config.knowledge import KnowledgeSettings
from config.settings import Settings

DATABASE_FOLDER = "postgres"  # under KNOWLEDGE_DATA_DIR: the embedded server's files
START_SECONDS = 60.0  # an embedded server's first start (initdb) takes a few seconds; a remote one may be slow


def wanted_at_start(settings: KnowledgeSettings) -> bool:
    """Configured, or used before (the embedded server's data is there): started with the bot, so the first
    question doesn't wait for it."""
    return bool(
        settings.folder
        or settings.web.urls
        or settings.database_url
        or (settings.data_dir / DATABASE_FOLDER / "PG_VERSION").exists()
    )


async def open_knowledge(settings: Settings, rerank_failed: Callable[[str], None] | None = None) -> Knowledge:
    """Started knowledge; raises KnowledgeUnavailable with the reason in one sentence. `rerank_failed` is told of
    each search whose reranker failed, by kind (a metric). A reranker is not reached at start: one that is down
    costs nothing but its ordering."""
    from bot.knowledge.embedded import EmbeddedDatabaseError, start_embedded_async
    from bot.knowledge.embeddings import MODELS_FOLDER, EmbeddingError, make_embedder
    from bot.knowledge.postgres import KnowledgeEngineError, PostgresEngine
    from bot.knowledge.postgres.languages import Languages
    from bot.knowledge.reembedding import in_process_embedder
    from bot.knowledge.rerank import make_reranking

    own = settings.knowledge
    try:
        async with asyncio.timeout(START_SECONDS):
            url = own.database_url or (await start_embedded_async(own.data_dir / DATABASE_FOLDER)).url
            reranking = make_reranking(own.rerank)
            if reranking is not None and rerank_failed is not None:
                reranking.count_failure = rerank_failed
            engine = PostgresEngine(url, languages=Languages(own.language))
            knowledge = Knowledge(engine, make_embedder(settings), own.min_relevance, reranking)
            # Knowledge indexed with another model is re-embedded; the old model searches meanwhile if it runs here.
            knowledge.previous_embedder = in_process_embedder(own.data_dir / MODELS_FOLDER)
            await knowledge.start()
            return knowledge
    except (EmbeddedDatabaseError, KnowledgeEngineError, EmbeddingError, OSError) as error:
        raise KnowledgeUnavailable(f"Knowledge is unavailable: {error}") from error
    except TimeoutError:
        raise KnowledgeUnavailable(
            f"Knowledge is unavailable: its engine did not start in {START_SECONDS:g} s"
        ) from None
