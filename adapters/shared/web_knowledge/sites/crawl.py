"""A docs site's sync: its pages under the start URL made knowledge, one knowledge source a page, kept in sync.

Which pages: those the site's sitemaps list (robots.txt's Sitemap lines, else /sitemap.xml), else those reached by
following links breadth-first from the start URL, on its host and under its path, robots.txt obeyed for the bot's
own user agent token, MAX_DEPTH links deep at most and QUERIES_PER_PATH query strings of one path; `max_pages` at
most, the others counted as skipped. A page costs nothing when it hasn't changed: a sitemap lastmod no newer than
when it was read skips the request, a 304 or the same text skips the embedding (site_pages). A page gone (404, 410,
or no longer listed by a sitemap read whole, or no longer reached by a crawl that went everywhere it could) leaves
the knowledge; one that can't be read now keeps what it had.

A sync stopped halfway (a restart) is run again with the same `round_started`: the pages checked since are not
fetched again, their links taken from the memory, so the crawl goes on where it was."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from adapters.shared.web_knowledge.fetch.fetching import WebFetcher
from adapters.shared.web_knowledge.fetch.politeness import host_key
from adapters.shared.web_knowledge.fetch.robots import RobotsRules, read_robots, robots_url
from adapters.shared.web_knowledge.sites.page_reading import PageReader
from adapters.shared.web_knowledge.sites.pages import PageVisitor, Visit, Visited
from adapters.shared.web_knowledge.sites.sitemaps import read_sitemaps
from adapters.shared.web_knowledge.sites.urls import MAX_DEPTH, QueryCap, SiteScope
from adapters.shared.web_knowledge.sources import ReadMemory, SyncReport, WebSource
from bot.knowledge.service import Knowledge

IN_FLIGHT = 3  # pages read at once: the fetcher takes a host's requests one at a time, the workers parse meanwhile
Progress = Callable[[SyncReport], Awaitable[None]]


async def sync_site(
    source: WebSource,
    fetcher: WebFetcher,
    pages: PageReader,
    memory: ReadMemory,
    knowledge: Knowledge,
    *,
    max_pages: int,
    round_started: float,
    user_agent_token: str,
    progress: Progress | None = None,
) -> SyncReport:
    """One sync of the site `source` (kind "site"); `progress` is told the report so far after each page."""
    report = SyncReport()
    scope = SiteScope(source.url)
    robots = await read_robots(fetcher, scope.start, user_agent_token)
    if robots.parser is None and not robots.allow_all:  # unreadable now: nothing may be read, nothing is dropped
        report.failure(robots_url(scope.start), "robots.txt couldn't be read; trying again at the next sync")
        report.complete = False
        return report
    if robots.crawl_delay:
        fetcher.set_crawl_delay(host_key(scope.start), robots.crawl_delay)
    remembered = await memory.items()
    visitor = PageVisitor(source, fetcher, pages, memory, knowledge, scope, remembered, round_started)
    crawl = _Crawl(visitor, robots, report, max_pages, remembered, progress)
    listing = await read_sitemaps(fetcher, scope, robots.sitemaps)
    if listing is not None and listing.pages:
        await crawl.run([Visit(url, 0, lastmod) for url, lastmod in listing.pages.items()], follow=False)
        gone = set(remembered) - set(listing.pages) if listing.complete else set()
    else:
        await crawl.run([Visit(scope.start)], follow=True)
        gone = set(remembered) - crawl.handled if not crawl.cut else set()
    for url in sorted(gone):
        if remembered.get(url, {}).get("stored"):
            report.removed += 1
        await visitor.drop(url)
    return report


class _Crawl:
    """The pages of one round, IN_FLIGHT at a time, in the order given (breadth-first when following links)."""

    def __init__(
        self,
        visitor: PageVisitor,
        robots: RobotsRules,
        report: SyncReport,
        max_pages: int,
        remembered: dict[str, dict[str, Any]],
        progress: Progress | None,
    ) -> None:
        self._visitor = visitor
        self._robots = robots
        self._report = report
        self._max_pages = max_pages
        self._remembered = remembered
        self._progress = progress
        self._queries = QueryCap()
        self.handled: set[str] = set()  # taken from the frontier: checked, refused by robots.txt, or over the budget
        self.taken = 0
        self.cut = False  # pages were left for want of budget: what wasn't reached may still be there

    async def run(self, first: list[Visit], *, follow: bool) -> None:
        frontier = deque(first)
        queued = {visit.url for visit in first}
        # Results are taken in the order the pages were started, whichever finishes first: the frontier is then
        # the same breadth-first order every round, and so is what the caps leave out (no page flapping in and out).
        running: deque[tuple[Visit, asyncio.Task[Visited]]] = deque()
        try:
            while frontier or running:
                while frontier and len(running) < IN_FLIGHT:
                    visit = frontier.popleft()
                    if await self._admitted(visit):
                        running.append((visit, asyncio.create_task(self._visitor.visit(visit))))
                if not running:
                    continue
                visit, task = running[0]
                visited = await task
                running.popleft()
                self._count(visit, visited)
                if follow and visit.depth < MAX_DEPTH:
                    for link in visited.links:
                        if link not in queued and self._queries.take(link):
                            queued.add(link)
                            frontier.append(Visit(link, visit.depth + 1))
                if self._progress is not None:
                    await self._progress(self._report)
        finally:
            for _, left in running:
                left.cancel()
            await asyncio.gather(*(left for _, left in running), return_exceptions=True)

    async def _admitted(self, visit: Visit) -> bool:
        """Whether to check the page: robots.txt allows it (a page it now refuses leaves the knowledge) and the
        budget isn't spent."""
        self.handled.add(visit.url)
        if not self._robots.allowed(visit.url):
            self._report.skipped += 1
            if visit.url in self._remembered:
                await self._visitor.drop(visit.url)
            return False
        if self.taken >= self._max_pages:
            self._report.skipped += 1
            self.cut = True
            self.handled.discard(visit.url)  # not checked: not known to be gone either
            return False
        self.taken += 1
        return True

    def _count(self, visit: Visit, visited: Visited) -> None:
        report = self._report
        if visited.outcome == "failed":
            report.failure(visit.url, visited.reason)
        else:
            setattr(report, visited.outcome, getattr(report, visited.outcome) + 1)
