"""A docs site crawled into knowledge: the fake site (fakes.docs_site) on loopback, read through its sitemap index or
by following links, stored in the real knowledge (embedded PostgreSQL, WordLlama) with the read memory in Redis."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import psycopg

from adapters.shared.web_knowledge.sources import SyncReport
from bot.knowledge.passages import Access
from bot.knowledge.postgres.sql import TABLE
from fakes.docs_site_pages import CHROME_WORDS, article_page, changed_article
from tests.shared.web_knowledge.crawl_fixtures import Crawler, crawler, database, knowledge, linked, workers

__all__ = ["crawler", "database", "knowledge", "linked", "workers"]  # the fixtures the tests use


@dataclass(frozen=True)
class Row:
    text: str
    title: str
    locator: str
    url: str


async def stored(crawler: Crawler) -> list[Row]:
    async with await psycopg.AsyncConnection.connect(crawler.database_url, autocommit=True) as conn:
        found = await conn.execute(
            f"SELECT text, title, locator, url FROM {TABLE} WHERE scope = %s", (crawler.source.scope,)
        )
        return [Row(*row) for row in await found.fetchall()]


def pages_of(rows: list[Row]) -> set[str]:
    return {row.url.split("#")[0].rsplit("/docs/", 1)[-1] for row in rows}


async def test_a_site_is_read_through_its_sitemap_index(crawler: Crawler) -> None:
    site = crawler.site
    report = await crawler.sync()

    rows = await stored(crawler)
    assert pages_of(rows) == {"", "install.html", "configure.html", "changing.html", "leaving.html", "upgrade.html"}
    assert site.requests["/docs/private/keys.html"] == 0  # robots.txt disallows it
    assert site.requests["/blog/news.html"] == 0  # listed, but outside the start URL's path
    assert site.canary.requests == []  # the redirect to another port was refused before it was requested
    for row in rows:
        assert not any(word.lower() in row.text.lower() for word in CHROME_WORDS), row
    proxy = next(row for row in rows if "ACME_PROXY" in row.text)
    assert proxy.title == "Configuring Acme | Acme Docs"
    assert proxy.locator == "Configuring Acme \u203a Proxy settings"
    assert proxy.url == site.docs_url + "configure.html#proxy"
    assert report.read == 6 and report.removed == 0
    assert report.skipped == 2  # the private page and the image
    assert report.failed == 3  # the redirect to the canary, the 50 MB page, the page that never ends
    assert any("huge.html" in problem for problem in report.problems)
    assert any("endless.html" in problem for problem in report.problems)

    hits = await crawler.knowledge.search(
        "How do I route the daemon through a corporate proxy?", Access((crawler.source.scope,)), limit=3
    )
    assert hits and hits[0].passage.url == site.docs_url + "configure.html#proxy"


async def test_a_second_sync_reads_only_what_changed(crawler: Crawler) -> None:
    site = crawler.site
    await crawler.sync()
    site.change("/docs/changing.html", changed_article("Release notes", "Release notes", "Version 2.0 adds plugins."))
    site.remove("/docs/leaving.html", 410)
    theme_only = article_page("/docs/install.html").replace("Copyright 2026", "Copyright 2027")
    site.change("/docs/install.html", theme_only)  # a new ETag and lastmod, the same article
    site.requests.clear()
    embedded: list[str] = []
    crawler.knowledge.count_indexed = lambda scope, model, texts: embedded.extend(texts)

    report = await crawler.sync()

    assert (report.read, report.removed, report.unchanged) == (1, 1, 4)
    for unchanged in ("/docs/", "/docs/configure.html"):
        assert site.requests[unchanged] == 0  # the sitemap's lastmod is no newer: not even asked
    assert site.requests["/docs/changing.html"] == 1 and site.requests["/docs/install.html"] == 1
    assert embedded and all("Version 2.0" in text for text in embedded)  # install.html's text is the same
    texts = " ".join(row.text for row in await stored(crawler))
    assert "Version 2.0 adds plugins" in texts and "Version 1.0" not in texts
    assert "XML-RPC" not in texts  # the page that left
    assert site.docs_url + "leaving.html" not in await crawler.memory.items()


async def test_an_unchanged_site_without_a_sitemap_costs_only_304s(linked: Crawler) -> None:
    site = linked.site
    first = await linked.sync()
    assert site.requests["/docs/private/keys.html"] == 0 and site.requests["/blog/news.html"] == 0
    calendar = [path for path in site.requests if path.startswith("/docs/calendar")]
    assert 0 < len(calendar) <= 20  # no more query strings of one path than the cap
    assert first.read >= 6
    site.responses.clear()
    embedded: list[str] = []
    linked.knowledge.count_indexed = lambda scope, model, texts: embedded.extend(texts)

    second = await linked.sync()

    stored_pages = [(path, status) for path, status in site.responses if path.endswith(".html") or "?" in path]
    ok = {"/docs/huge.html", "/docs/endless.html", "/docs/away.html", "/docs/old-install.html"}
    assert {status for path, status in stored_pages if path not in ok and "older" not in path} == {304}
    assert embedded == [] and second.read == 0 and second.unchanged == first.read


async def test_a_page_gone_from_a_linked_site_leaves(linked: Crawler) -> None:
    await linked.sync()
    linked.site.remove("/docs/leaving.html")
    report = await linked.sync()
    assert report.removed == 1
    assert "XML-RPC" not in " ".join(row.text for row in await stored(linked))


async def test_no_more_pages_than_max_pages(crawler: Crawler) -> None:
    seen: list[int] = []

    async def progress(so_far: SyncReport) -> None:
        seen.append(so_far.read)

    report = await crawler.sync(max_pages=3, progress=progress)
    assert report.read == 3 and report.skipped >= 6
    assert seen == [1, 2, 3]  # told after each page
    assert sum(crawler.site.page_requests().values()) == 3
    assert len(await crawler.memory.items()) == 3


async def test_an_interrupted_crawl_goes_on_where_it_stopped(crawler: Crawler) -> None:
    site = crawler.site
    site.crawl_delay = 0.3  # a page every 0.3 s: time to stop it halfway
    round_started = time.time()
    first = asyncio.create_task(crawler.sync(round_started=round_started))
    while sum(site.page_requests().values()) < 3:
        await asyncio.sleep(0.02)
    assert first.cancel()  # still running: stopped halfway
    with contextlib.suppress(asyncio.CancelledError):
        await first
    checked = {url for url, state in (await crawler.memory.items()).items() if state["checked"] >= round_started}
    assert 0 < len(checked) < 10
    before = site.page_requests()

    report = await crawler.sync(round_started=round_started)

    after = site.page_requests()
    for url in checked:
        path = url.removeprefix(site.base_url)
        assert after[path] == before[path], path  # not asked again
    assert pages_of(await stored(crawler)) == {
        "", "install.html", "configure.html", "changing.html", "leaving.html", "upgrade.html"
    }  # fmt: skip
    assert report.read + report.unchanged == 6
