"""Web knowledge kept, in every process that has knowledge: KNOWLEDGE_URLS made the deployment's web sources (those
no longer in it removed, with their passages), then every web source synced as it becomes due (see syncing). The
fetcher is the process's one, so that its politeness (one request at a time a host, at least a second apart) holds
across the sites and servers it reads."""

from __future__ import annotations

import contextlib
import time

import structlog

from adapters.shared.files.isolation import IsolatedWorkers
from adapters.shared.web_knowledge.fetch.addresses import PrivateAllowance
from adapters.shared.web_knowledge.fetch.fetching import WebFetcher
from adapters.shared.web_knowledge.github.repository import GitHubSettings, sync_repository
from adapters.shared.web_knowledge.registry import WebSources
from adapters.shared.web_knowledge.sites.crawl import sync_site
from adapters.shared.web_knowledge.sites.page_reading import WORKER_MODULE, PageReader
from adapters.shared.web_knowledge.sources import ReadMemory, SyncReport, WebSource, forget_passages
from adapters.shared.web_knowledge.syncing import WebSync
from bot.app import Services
from bot.errors import ReplyFailure
from bot.knowledge.opener import KnowledgeOpener, KnowledgeUnavailable
from bot.knowledge.passages import DEPLOYMENT_SCOPE
from bot.knowledge.service import Knowledge
from config.web_knowledge import WebKnowledgeSettings

log = structlog.get_logger(__name__)

USER_AGENT_TOKEN = "MistralChatBot"  # what a site's robots.txt names to address this crawler
PROGRESS_SECONDS = 2.0


def user_agent(settings: WebKnowledgeSettings) -> str:
    contact = f"; +{settings.contact_url}" if settings.contact_url else ""
    return f"{USER_AGENT_TOKEN}/1.0 (knowledge crawler{contact})"


def web_sources(services: Services) -> WebSources:
    return WebSources(services.redis.main, services.settings.history.key_prefix)


class WebReaders:
    """How each kind of web source is read, with this process's fetcher."""

    def __init__(self, services: Services) -> None:
        self._settings = services.settings.knowledge.web
        self._redis, self._prefix = services.redis.main, services.settings.history.key_prefix
        self.sources = web_sources(services)
        allowance = PrivateAllowance.parse(" ".join(self._settings.allow_private))
        self.fetcher = WebFetcher(allowance, user_agent(self._settings), min_interval=self._settings.request_interval)
        # Started at the first page to read: no process at all where no site is knowledge.
        self.workers = IsolatedWorkers(workers=1, preload=(WORKER_MODULE,), warm=False)
        self._pages = PageReader(self.workers)
        self._github = GitHubSettings(self._settings.github_api_url, self._settings.github_token)

    def memory(self, source: WebSource) -> ReadMemory:
        return ReadMemory(self._redis, self._prefix, source)

    async def site(self, source: WebSource, memory: ReadMemory, knowledge: Knowledge, round_: float) -> SyncReport:
        return await sync_site(
            source,
            self.fetcher,
            self._pages,
            memory,
            knowledge,
            max_pages=self._settings.max_pages,
            round_started=round_,
            user_agent_token=USER_AGENT_TOKEN,
            progress=ProgressNotes(self.sources, source),
        )

    async def github(self, source: WebSource, memory: ReadMemory, knowledge: Knowledge, round_: float) -> SyncReport:
        return await sync_repository(source, self._github, memory, knowledge, round_started=round_)


class ProgressNotes:
    """A sync's report so far noted for /knowledge list, every PROGRESS_SECONDS at most."""

    def __init__(self, sources: WebSources, source: WebSource) -> None:
        self._sources, self._source = sources, source
        self._noted = 0.0

    async def __call__(self, report: SyncReport) -> None:
        if time.monotonic() - self._noted < PROGRESS_SECONDS:
            return
        self._noted = time.monotonic()
        with contextlib.suppress(ReplyFailure):  # logged by the store; only the list's figure waits
            await self._sources.progressed(self._source, report)


async def keep_web_knowledge(services: Services) -> None:
    """KNOWLEDGE_URLS settled, then every web source kept current, until cancelled. Without knowledge, nothing."""
    if services.knowledge is None:
        return
    readers = WebReaders(services)
    sources = readers.sources
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
        await readers.fetcher.aclose()
        await readers.workers.aclose()


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
