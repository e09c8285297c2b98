"""robots.txt read through the fetcher from a real server on the loopback interface, as RFC 9309 says: its rules,
Crawl-delay and sitemaps for our user agent; none there (a 4xx) allows everything, one that can't be read (a 5xx)
nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.shared.web_knowledge.fetch.addresses import PrivateAllowance
from adapters.shared.web_knowledge.fetch.fetching import WebFetcher
from adapters.shared.web_knowledge.fetch.robots import read_robots
from tests.shared.web_knowledge.loopback_site import LoopbackSite, loopback_site

TOKEN = "MistralChatBot"


@pytest.fixture
async def site() -> AsyncIterator[LoopbackSite]:
    async with loopback_site() as started:
        yield started


@pytest.fixture
async def fetcher(site: LoopbackSite) -> AsyncIterator[WebFetcher]:
    made = WebFetcher(PrivateAllowance.parse(f"127.0.0.1:{site.port}"), f"{TOKEN}/1.0", min_interval=0.0)
    yield made
    await made.aclose()


async def test_its_rules_crawl_delay_and_sitemaps_are_ours(fetcher: WebFetcher, site: LoopbackSite) -> None:
    site.robots = (
        200,
        "User-agent: *\nDisallow: /\n\n"
        f"User-agent: {TOKEN}\nDisallow: /private/\nCrawl-delay: 2\n\n"
        f"Sitemap: {site.url('/sitemap.xml')}\n",
    )
    rules = await read_robots(fetcher, site.url("/guide/start.html"), TOKEN)
    assert rules.allowed(site.url("/guide/start.html"))
    assert not rules.allowed(site.url("/private/notes.html"))
    assert rules.crawl_delay == 2.0
    assert rules.sitemaps == [site.url("/sitemap.xml")]
    assert [request.path for request in site.requests] == ["/robots.txt"]


async def test_none_there_allows_everything(fetcher: WebFetcher, site: LoopbackSite) -> None:
    site.robots = (404, "Not found")
    rules = await read_robots(fetcher, site.origin, TOKEN)
    assert rules.allowed(site.url("/anything")) and rules.crawl_delay is None and rules.sitemaps == []


async def test_one_that_cannot_be_read_allows_nothing(fetcher: WebFetcher, site: LoopbackSite) -> None:
    site.robots = (500, "Internal error")
    rules = await read_robots(fetcher, site.origin, TOKEN)
    assert not rules.allowed(site.url("/")) and not rules.allowed(site.url("/guide/"))


async def test_a_private_site_allows_nothing(site: LoopbackSite) -> None:
    fetcher = WebFetcher(PrivateAllowance(), f"{TOKEN}/1.0")
    try:
        rules = await read_robots(fetcher, site.origin, TOKEN)
    finally:
        await fetcher.aclose()
    assert not rules.allowed(site.url("/page"))
    assert site.requests == []


async def test_only_the_first_500_kib_are_read(fetcher: WebFetcher, site: LoopbackSite) -> None:
    padding = "# a comment line, again and again\n" * 20_000  # 700 KB
    site.robots = (200, f"User-agent: *\nDisallow: /private/\n{padding}Disallow: /\n")
    rules = await read_robots(fetcher, site.origin, TOKEN)
    assert not rules.allowed(site.url("/private/a.html"))
    assert rules.allowed(site.url("/guide/")), "the rule past 500 KiB is not read"
