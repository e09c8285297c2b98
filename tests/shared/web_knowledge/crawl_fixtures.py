"""The crawl's tests' fixtures (imported by their modules): the fake docs site on loopback, real Redis for the read
memory, the real knowledge on an embedded PostgreSQL (one a module) with WordLlama, the page workers, and a fetcher
allowed to reach the site (and not its canary)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from adapters.shared.files.isolation import IsolatedWorkers
from adapters.shared.web_knowledge.fetch.addresses import PrivateAllowance
from adapters.shared.web_knowledge.fetch.fetching import FetchLimits, WebFetcher
from adapters.shared.web_knowledge.sites.crawl import Progress, sync_site
from adapters.shared.web_knowledge.sites.page_reading import WORKER_MODULE, PageReader
from adapters.shared.web_knowledge.sources import ReadMemory, SyncReport, WebSource
from bot.knowledge.embedded import EmbeddedDatabase
from bot.knowledge.embeddings import LocalEmbedder
from bot.knowledge.postgres import PostgresEngine
from bot.knowledge.service import Knowledge
from bot.state.redis_client import RedisClients
from fakes.docs_site import FakeDocsSite
from fakes.harness.processes import REDIS_URL
from tests.bot.knowledge.conftest import database

__all__ = ["crawler", "database", "knowledge", "linked", "workers"]  # `database`: the embedded PostgreSQL, one a module
TOKEN = "AcmeTestBot"
LIMITS = FetchLimits(max_bytes=1_000_000, timeout_seconds=1.5)


@dataclass
class Crawler:
    """What a sync of the fake site needs, and a sync of it with a round of its own (or a given one)."""

    site: FakeDocsSite
    source: WebSource
    fetcher: WebFetcher
    pages: PageReader
    memory: ReadMemory
    knowledge: Knowledge
    database_url: str  # to read the passages stored

    async def sync(
        self, max_pages: int = 100, round_started: float | None = None, progress: Progress | None = None
    ) -> SyncReport:
        return await sync_site(
            self.source,
            self.fetcher,
            self.pages,
            self.memory,
            self.knowledge,
            max_pages=max_pages,
            round_started=time.time() if round_started is None else round_started,
            user_agent_token=TOKEN,
            progress=progress,
        )


@pytest.fixture
async def knowledge(database: EmbeddedDatabase) -> AsyncIterator[Knowledge]:
    knowledge = Knowledge(PostgresEngine(database.url), LocalEmbedder())
    await knowledge.start()
    yield knowledge
    await knowledge.aclose()


@pytest.fixture
async def workers() -> AsyncIterator[IsolatedWorkers]:
    workers = IsolatedWorkers(workers=2, preload=[WORKER_MODULE], warm=False)
    yield workers
    await workers.aclose()


async def make_crawler(
    site: FakeDocsSite, knowledge: Knowledge, workers: IsolatedWorkers, key_prefix: str, database_url: str
) -> AsyncIterator[Crawler]:
    await site.start()
    clients = RedisClients.connect(REDIS_URL, cluster=False)
    source = WebSource(f"discord:{uuid.uuid4().int % 10**12}", site.docs_url, "site")
    fetcher = WebFetcher(PrivateAllowance.parse(site.allowance), f"{TOKEN}/1.0", LIMITS, min_interval=0.0)
    memory = ReadMemory(clients.main, key_prefix, source)
    yield Crawler(site, source, fetcher, PageReader(workers), memory, knowledge, database_url)
    await fetcher.aclose()
    await clients.aclose()
    await site.stop()


@pytest.fixture
async def crawler(
    knowledge: Knowledge, workers: IsolatedWorkers, key_prefix: str, database: EmbeddedDatabase
) -> AsyncIterator[Crawler]:
    """The fake site with its sitemap index."""
    async for made in make_crawler(FakeDocsSite(), knowledge, workers, key_prefix, database.url):
        yield made


@pytest.fixture
async def linked(
    knowledge: Knowledge, workers: IsolatedWorkers, key_prefix: str, database: EmbeddedDatabase
) -> AsyncIterator[Crawler]:
    """The fake site without a sitemap: its pages found by following links."""
    async for made in make_crawler(FakeDocsSite(sitemap=False), knowledge, workers, key_prefix, database.url):
        yield made
