"""The web knowledge's fetcher against real servers on the loopback interface: redirects followed by hand and counted,
nothing private reached (a redirect to another local port, a name that resolves to loopback, the cloud's metadata
address, other schemes, the test site itself when not allowed), bodies capped after decompression within bounded
memory, a page that never ends stopped by the time limit, conditional requests, and the politeness: a pause between
two requests to one host but none across hosts, and a 429's Retry-After waited out."""

from __future__ import annotations

import asyncio
import email.utils
import time
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters.shared.web_knowledge.fetch.addresses import PrivateAllowance
from adapters.shared.web_knowledge.fetch.fetching import FetchFailed, FetchLimits, WebFetcher
from adapters.shared.web_knowledge.fetch.politeness import host_key, retry_after_seconds
from tests.shared.web_knowledge.loopback_site import (
    ETAG,
    LAST_MODIFIED,
    MB,
    PAGE,
    LoopbackSite,
    gzip_bomb,
    loopback_site,
)

USER_AGENT = "MistralChatBot-test/1.0"
INTERVAL = 0.3


def allowing(*sites: LoopbackSite) -> PrivateAllowance:
    return PrivateAllowance.parse(" ".join(f"127.0.0.1:{site.port}" for site in sites))


@pytest.fixture
async def site() -> AsyncIterator[LoopbackSite]:
    async with loopback_site() as started:
        yield started


@pytest.fixture
async def other_site() -> AsyncIterator[LoopbackSite]:
    """A second server: another host for the politeness, or a private service (Redis, say) nobody may reach."""
    async with loopback_site() as started:
        yield started


@pytest.fixture
async def fetcher(site: LoopbackSite) -> AsyncIterator[WebFetcher]:
    made = WebFetcher(allowing(site), USER_AGENT, min_interval=0.0)
    yield made
    await made.aclose()


async def failure(fetcher: WebFetcher, url: str) -> FetchFailed:
    with pytest.raises(FetchFailed) as raised:
        await fetcher.fetch(url)
    return raised.value


async def test_a_page_is_read_with_its_type_charset_and_our_user_agent(fetcher: WebFetcher, site: LoopbackSite) -> None:
    fetched = await fetcher.fetch(site.url("/page"))
    assert fetched.status == 200 and fetched.body == PAGE
    assert (fetched.content_type, fetched.charset) == ("text/html", "utf-8")
    assert site.seen("/page")[0].headers["User-Agent"] == USER_AGENT


async def test_a_chain_of_three_redirects_is_followed_and_six_are_too_many(
    fetcher: WebFetcher, site: LoopbackSite
) -> None:
    fetched = await fetcher.fetch(site.url("/hop/3"))
    assert fetched.url == site.url("/hop/0") and fetched.body == PAGE

    failed = await failure(fetcher, site.url("/hop/6"))
    assert failed.kind == "redirects"
    assert not site.seen("/hop/0")[1:], "the hop past the limit is never requested"


async def test_a_redirect_to_another_local_port_never_reaches_it(
    fetcher: WebFetcher, site: LoopbackSite, other_site: LoopbackSite
) -> None:
    for target in (other_site.url("/page"), f"http://localhost:{other_site.port}/page"):
        failed = await failure(fetcher, site.url(f"/to?url={target}"))
        assert failed.kind == "refused" and "private address" in failed.reason
    assert other_site.requests == []


async def test_a_name_that_resolves_to_loopback_is_refused_at_connection(
    fetcher: WebFetcher, other_site: LoopbackSite
) -> None:
    failed = await failure(fetcher, f"http://localhost:{other_site.port}/page")
    assert failed.kind == "refused" and "localhost resolves to a private address" in failed.reason
    assert other_site.requests == []


async def test_the_cloud_metadata_address_and_other_schemes_are_refused_without_a_connection(
    fetcher: WebFetcher,
) -> None:
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[::ffff:169.254.169.254]/", "ftp://example.com/"):
        started = time.monotonic()
        failed = await failure(fetcher, url)
        assert failed.kind == "refused" and time.monotonic() - started < 0.5, url
    assert (await failure(fetcher, "file:///etc/passwd")).kind == "refused"
    assert (await failure(fetcher, "http://user:secret@example.com/")).kind == "refused"


async def test_without_an_allowance_the_local_site_is_refused(site: LoopbackSite) -> None:
    fetcher = WebFetcher(PrivateAllowance(), USER_AGENT)
    try:
        for url in (site.url("/page"), f"http://localhost:{site.port}/page"):
            failed = await failure(fetcher, url)
            assert failed.kind == "refused" and "I only read public sites" in failed.reason
    finally:
        await fetcher.aclose()
    assert site.requests == []


async def test_huge_bodies_stop_at_the_cap_in_bounded_memory(fetcher: WebFetcher, site: LoopbackSite) -> None:
    gzip_bomb()  # made before the memory is measured
    for path in ("/huge", "/huge-declared", "/bomb"):
        tracemalloc.start()
        started = time.monotonic()
        try:
            failed = await failure(fetcher, site.url(path))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert failed.kind == "too_big", path
        assert time.monotonic() - started < 3.0, path
        assert peak < 16 * MB, f"{path}: {peak:,} bytes at the peak"


async def test_a_page_that_never_ends_fails_within_the_time_limit(site: LoopbackSite) -> None:
    fetcher = WebFetcher(allowing(site), USER_AGENT, FetchLimits(timeout_seconds=2.0), min_interval=0.0)
    started = time.monotonic()
    try:
        failed = await failure(fetcher, site.url("/endless"))
    finally:
        await fetcher.aclose()
    assert failed.kind == "timeout"
    assert 1.9 < time.monotonic() - started < 3.0


async def test_conditional_requests_send_the_validators_back(fetcher: WebFetcher, site: LoopbackSite) -> None:
    first = await fetcher.fetch(site.url("/conditional"))
    assert (first.etag, first.last_modified, first.not_modified) == (ETAG, LAST_MODIFIED, False)

    again = await fetcher.fetch(site.url("/conditional"), etag=first.etag, last_modified=first.last_modified)
    assert again.not_modified and again.body == b"" and again.etag == ETAG
    sent = site.seen("/conditional")[1].headers
    assert (sent["If-None-Match"], sent["If-Modified-Since"]) == (ETAG, LAST_MODIFIED)


async def test_one_host_gets_a_pause_between_requests_and_another_host_none(
    site: LoopbackSite, other_site: LoopbackSite
) -> None:
    fetcher = WebFetcher(allowing(site, other_site), USER_AGENT, min_interval=INTERVAL)
    try:
        started = time.monotonic()
        await asyncio.gather(
            fetcher.fetch(site.url("/page")), fetcher.fetch(site.url("/page")), fetcher.fetch(other_site.url("/page"))
        )
    finally:
        await fetcher.aclose()
    first, second = (request.at for request in site.seen("/page"))
    assert second - first >= INTERVAL - 0.02
    assert other_site.seen("/page")[0].at - started < INTERVAL / 2


async def test_a_crawl_delay_lengthens_the_pause(fetcher: WebFetcher, site: LoopbackSite) -> None:
    fetcher.set_crawl_delay(host_key(site.origin), INTERVAL)
    await asyncio.gather(fetcher.fetch(site.url("/page")), fetcher.fetch(site.url("/page")))
    first, second = (request.at for request in site.seen("/page"))
    assert second - first >= INTERVAL - 0.02


async def test_a_429s_retry_after_is_waited_out_and_a_long_one_fails(fetcher: WebFetcher, site: LoopbackSite) -> None:
    fetched = await fetcher.fetch(site.url("/busy"))
    assert fetched.status == 200
    refused, retried = (request.at for request in site.seen("/busy"))
    assert retried - refused >= 0.95

    failed = await failure(fetcher, site.url("/busy-long"))
    assert (failed.kind, failed.status) == ("status", 503)
    assert len(site.seen("/busy-long")) == 1


def test_retry_after_is_read_in_seconds_or_as_a_date() -> None:
    in_a_minute = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert retry_after_seconds("7") == 7.0
    assert 55 < (retry_after_seconds(in_a_minute) or 0) <= 60
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


async def test_a_missing_page_is_gone(fetcher: WebFetcher, site: LoopbackSite) -> None:
    failed = await failure(fetcher, site.url("/nowhere"))
    assert (failed.kind, failed.status, failed.gone) == ("status", 404, True)
