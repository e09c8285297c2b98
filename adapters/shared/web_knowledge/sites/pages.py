"""One page of a docs site's crawl: fetched (conditionally, with what the memory holds of it), read in the isolated
workers, and its passages put in the knowledge when its text changed; what happened remembered, so that a sync
stopped halfway goes on without reading it again.

A page's memory (sources.ReadMemory, by its normalized URL):

  checked   when it was last checked (unix seconds): a page checked since the round started is not read again in it
  outcome   what that check did ("read", "unchanged", "failed", "skipped"), and `reason` for a failure
  stored    the knowledge holds its passages
  etag, modified, lastmod, hash    its ETag and Last-Modified, its sitemap lastmod, its text's digest when read
  links, depth                     its links within the site, and how many links from the start URL it is
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from adapters.shared.knowledge_sources.document_passages import passage_texts
from adapters.shared.knowledge_sources.headings import TITLE_SEPARATOR
from adapters.shared.web_knowledge.fetch.fetching import Fetched, FetchFailed, WebFetcher
from adapters.shared.web_knowledge.sites.page_reading import PageReader, PageUnreadable, ReadPage, is_html
from adapters.shared.web_knowledge.sites.urls import SiteScope, normalized
from adapters.shared.web_knowledge.sources import ReadMemory, WebSource
from bot.knowledge.passages import Passage
from bot.knowledge.service import Knowledge

Outcome = Literal["read", "unchanged", "failed", "skipped", "removed"]
PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
LINKS_KEPT = 500  # a page's links within the site remembered (a docs index links to every page: a few hundred)


@dataclass(frozen=True)
class Visit:
    url: str  # normalized
    depth: int = 0
    lastmod: float | None = None  # the sitemap's


@dataclass(frozen=True)
class Visited:
    outcome: Outcome
    links: tuple[str, ...] = ()  # within the site, normalized
    reason: str = ""


class PageVisitor:
    """Checks the pages of one site's sync round; `remembered` is the memory as the round found it."""

    def __init__(
        self,
        source: WebSource,
        fetcher: WebFetcher,
        pages: PageReader,
        memory: ReadMemory,
        knowledge: Knowledge,
        scope: SiteScope,
        remembered: dict[str, dict[str, Any]],
        round_started: float,
    ) -> None:
        self._source = source
        self._fetcher = fetcher
        self._pages = pages
        self._memory = memory
        self._knowledge = knowledge
        self._scope = scope
        self._remembered = remembered
        self._round_started = round_started

    async def visit(self, visit: Visit) -> Visited:
        state = self._remembered.get(visit.url) or {}
        links = tuple(str(link) for link in state.get("links", ()))
        if float(state.get("checked", 0.0)) >= self._round_started:  # done before a restart, in this round
            return Visited(state.get("outcome", "unchanged"), links, str(state.get("reason", "")))
        if state.get("stored") and _not_newer(visit.lastmod, state.get("lastmod")):
            await self._remember(visit.url, state, outcome="unchanged")
            return Visited("unchanged", links)
        stored = bool(state.get("stored"))
        try:
            fetched = await self._fetcher.fetch(
                visit.url,
                etag=state.get("etag") if stored else None,
                last_modified=state.get("modified") if stored else None,
                accept=PAGE_ACCEPT,
            )
        except FetchFailed as failed:
            if failed.gone and stored:
                await self.drop(visit.url)
                return Visited("removed")
            return await self._failed(visit.url, state, links, _without_url(failed.reason))
        if fetched.not_modified and stored:
            await self._remember(
                visit.url, state, outcome="unchanged", etag=fetched.etag, modified=fetched.last_modified
            )
            return Visited("unchanged", links)
        return await self._fetched(visit, state, fetched)

    async def _fetched(self, visit: Visit, state: dict[str, Any], fetched: Fetched) -> Visited:
        final = normalized(fetched.url)
        if final is None or not self._scope.contains(final):
            return await self._skipped(visit.url, state, "redirected off the site")
        if not is_html(fetched.content_type):
            return await self._skipped(visit.url, state, f"not HTML ({fetched.content_type or 'no type'})")
        try:
            page = await self._pages.read(fetched.body, fetched.charset, final)
        except PageUnreadable as unreadable:
            return await self._failed(visit.url, state, tuple(state.get("links", ())), f"unreadable: {unreadable}")
        links = self._within(page.links)
        known = {"etag": fetched.etag, "modified": fetched.last_modified, "lastmod": visit.lastmod, "links": links}
        digest = page.digest
        if state.get("stored") and state.get("hash") == digest:
            await self._remember(visit.url, state, outcome="unchanged", **known)
            return Visited("unchanged", links)
        item = self._source.item_source(visit.url)
        passages = page_passages(self._source.scope, item, final, page, time.time())
        if not passages:
            return await self._skipped(visit.url, state, "no text")
        try:
            await self._knowledge.replace_source(self._source.scope, item, passages)
        except Exception as error:  # noqa: BLE001 - the embedder or the database failed: kept as it was, tried next time
            return await self._failed(visit.url, state, links, f"not stored: {type(error).__name__}: {error}")
        fresh = {"stored": True, "hash": digest, "depth": visit.depth, **known}
        await self._remember(visit.url, state, outcome="read", **fresh)
        return Visited("read", links)

    async def drop(self, url: str) -> None:
        """The page leaves the knowledge and the memory (gone, no longer listed, or no longer a page of the site)."""
        await self._knowledge.forget_source(self._source.scope, self._source.item_source(url))
        await self._memory.remove(url)
        self._remembered.pop(url, None)

    async def _skipped(self, url: str, state: dict[str, Any], reason: str) -> Visited:
        if state.get("stored"):
            await self._knowledge.forget_source(self._source.scope, self._source.item_source(url))
        await self._memory.put(url, {"checked": time.time(), "outcome": "skipped", "reason": reason})
        return Visited("skipped", reason=reason)

    async def _failed(self, url: str, state: dict[str, Any], links: tuple[str, ...], reason: str) -> Visited:
        await self._remember(url, state, outcome="failed", reason=reason)
        return Visited("failed", links, reason)

    async def _remember(self, url: str, state: dict[str, Any], **changes: Any) -> None:
        kept = {name: value for name, value in state.items() if name != "reason"}
        await self._memory.put(url, {**kept, **changes, "checked": time.time()})

    def _within(self, links: tuple[str, ...]) -> tuple[str, ...]:
        found: dict[str, None] = {}
        for link in links:
            url = normalized(link)
            if url is not None and self._scope.contains(url):
                found[url] = None
                if len(found) >= LINKS_KEPT:
                    break
        return tuple(found)


def page_passages(scope: str, item: str, url: str, page: ReadPage, updated_at: float) -> list[Passage]:
    """The passages of the page at `url`, knowledge source `item`: each section's text cut to size, titled by the
    page, located by its headings, linked to its heading's anchor where it has one."""
    passages: list[Passage] = []
    for section in page.sections:
        locator = TITLE_SEPARATOR.join(section.headings)
        link = f"{url}#{section.anchor}" if section.anchor else url
        for piece in passage_texts(section.text):
            key = f"{item}#{len(passages) + 1}"
            passages.append(Passage(scope, item, key, piece, page.title or url, locator, link, updated_at=updated_at))
    return passages


def _without_url(reason: str) -> str:
    """The fetcher's reason without the URL it starts with: the report puts the page's URL before it already."""
    if reason.startswith(("http://", "https://")) and ": " in reason:
        return reason.split(": ", 1)[1]
    return reason


def _not_newer(listed: float | None, remembered: object) -> bool:
    """The sitemap's lastmod is no newer than when the page was read: not fetched at all."""
    return listed is not None and isinstance(remembered, int | float) and listed <= remembered
