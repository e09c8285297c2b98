"""Web knowledge kept, in every process that has knowledge: KNOWLEDGE_URLS made the deployment's web sources (those
no longer in it removed, with their passages), then every web source synced as it becomes due (see syncing), read
by this process's readers (see readers), made at the first sync."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from adapters.shared.web_knowledge.registry import WebSources
from adapters.shared.web_knowledge.sources import ReadMemory, SyncReport, WebSource, forget_passages
from adapters.shared.web_knowledge.syncing import WebSync
from bot.app import Services
from bot.errors import ReplyFailure
from bot.knowledge.opener import KnowledgeOpener, KnowledgeUnavailable
from bot.knowledge.passages import DEPLOYMENT_SCOPE
from bot.knowledge.service import Knowledge
from config.web_knowledge import WebKnowledgeSettings

if TYPE_CHECKING:
    from adapters.shared.web_knowledge.readers import WebReaders

log = structlog.get_logger(__name__)


def web_sources(services: Services) -> WebSources:
    return WebSources(services.redis.main, services.settings.history.key_prefix)


class ReadersWhenNeeded:
    """The readers, made (their libraries imported) at the first sync."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._made: WebReaders | None = None

    def _readers(self) -> WebReaders:
        if self._made is None:
            from adapters.shared.web_knowledge.readers import WebReaders

            self._made = WebReaders(self._services)
        return self._made

    def memory(self, source: WebSource) -> ReadMemory:
        return ReadMemory(self._services.redis.main, self._services.settings.history.key_prefix, source)

    async def site(self, source: WebSource, memory: ReadMemory, knowledge: Knowledge, round_: float) -> SyncReport:
        return await self._readers().site(source, memory, knowledge, round_)

    async def github(self, source: WebSource, memory: ReadMemory, knowledge: Knowledge, round_: float) -> SyncReport:
        return await self._readers().github(source, memory, knowledge, round_)

    async def aclose(self) -> None:
        if self._made is not None:
            await self._made.aclose()


async def keep_web_knowledge(services: Services) -> None:
    """KNOWLEDGE_URLS settled, then every web source kept current, until cancelled. Without knowledge, nothing."""
    if services.knowledge is None:
        return
    readers = ReadersWhenNeeded(services)
    sources = web_sources(services)
    sync = WebSync(
        sources,
        services.knowledge,
        {"site": readers.site, "github": readers.github},
        readers.memory,
        services.settings.knowledge.web.sync_hours,
    )
    try:
        await settle_setting_sources(sources, services.knowledge, services.settings.knowledge.web)
        await sync.run()
    finally:
        await readers.aclose()


async def settle_setting_sources(sources: WebSources, opener: KnowledgeOpener, settings: WebKnowledgeSettings) -> None:
    """KNOWLEDGE_URLS' sources added as the deployment's; those it no longer names removed with their passages."""
    wanted = [WebSource(DEPLOYMENT_SCOPE, address.url, address.kind, from_setting=True) for address in settings.urls]
    try:
        known = [source for source in await sources.of_scope(DEPLOYMENT_SCOPE) if source.from_setting]
        for source in wanted:
            await sources.add(source)
        for source in known:
            if source.id not in {kept.id for kept in wanted}:
                await sources.remove(source)
                removed = await forget_passages(await opener.get(), source)
                log.info("knowledge_web_source_unset", url=source.url, passages=removed)
    except (ReplyFailure, KnowledgeUnavailable) as error:
        log.error("knowledge_urls_not_settled", error=str(error))
