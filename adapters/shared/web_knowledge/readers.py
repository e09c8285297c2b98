"""How each kind of web source is read in this process: a docs site with the process's one fetcher (its politeness,
one request at a time a host, holds across every site and server it reads) and page worker, a GitHub repository with
GitHub's client. Imported at the first sync, so that a bot with no web source never loads the crawl's libraries."""

from __future__ import annotations

import contextlib
import time

from adapters.shared.files.isolation import IsolatedWorkers
from adapters.shared.web_knowledge.fetch.addresses import PrivateAllowance
from adapters.shared.web_knowledge.fetch.fetching import WebFetcher
from adapters.shared.web_knowledge.github.repository import GitHubSettings, sync_repository
from adapters.shared.web_knowledge.registry import WebSources
from adapters.shared.web_knowledge.sites.crawl import sync_site
from adapters.shared.web_knowledge.sites.page_reading import WORKER_MODULE, PageReader
from adapters.shared.web_knowledge.sources import ReadMemory, SyncReport, WebSource
from adapters.shared.web_knowledge.syncing import stop_if_cancelled
from bot.app import Services
from bot.errors import ReplyFailure
from bot.knowledge.service import Knowledge
from config.web_knowledge import WebKnowledgeSettings

USER_AGENT_TOKEN = "MistralChatBot"  # what a site's robots.txt names to address this crawler
PROGRESS_SECONDS = 2.0


def user_agent(settings: WebKnowledgeSettings) -> str:
    contact = f"; +{settings.contact_url}" if settings.contact_url else ""
    return f"{USER_AGENT_TOKEN}/1.0 (knowledge crawler{contact})"


class WebReaders:
    """How each kind of web source is read, with this process's fetcher."""

    def __init__(self, services: Services) -> None:
        self._settings = services.settings.knowledge.web
        self._redis, self._prefix = services.redis.main, services.settings.history.key_prefix
        self.sources = WebSources(self._redis, self._prefix)
        allowance = PrivateAllowance.parse(" ".join(self._settings.allow_private))
        self.fetcher = WebFetcher(allowance, user_agent(self._settings), min_interval=self._settings.request_interval)
        # Started at the first page to read: no process at all where no site is knowledge.
        self.workers = IsolatedWorkers(workers=1, preload=(WORKER_MODULE,), warm=False)
        self._pages = PageReader(self.workers)
        self._github = GitHubSettings(self._settings.github_api_url, self._settings.github_token)

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

    async def aclose(self) -> None:
        await self.fetcher.aclose()
        await self.workers.aclose()


class ProgressNotes:
    """A sync's report so far noted for /knowledge list, every PROGRESS_SECONDS at most."""

    def __init__(self, sources: WebSources, source: WebSource) -> None:
        self._sources, self._source = sources, source
        self._noted = 0.0

    async def __call__(self, report: SyncReport) -> None:
        stop_if_cancelled()  # after each page: a shutdown's cancellation is never lost in a store's client
        if time.monotonic() - self._noted < PROGRESS_SECONDS:
            return
        self._noted = time.monotonic()
        with contextlib.suppress(ReplyFailure):  # logged by the store; only the list's figure waits
            await self._sources.progressed(self._source, report)
