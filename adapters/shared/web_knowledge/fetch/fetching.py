"""Reading a web page for the knowledge, safely and politely.

Safely: only public addresses (addresses.py), every redirect followed by hand and checked before it is requested, a
body capped after decompression (a small gzip that inflates to gigabytes stops at the cap, without the memory), and a
time limit on each fetch. Politely (politeness.py): one request at a time to a host, a pause between two (raised by
robots.txt's Crawl-delay), and a 429 or 503 with a short Retry-After waited out before asking again, while other hosts
go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Literal

import aiohttp
import structlog
from yarl import URL

from adapters.shared.web_knowledge.fetch.addresses import (
    AddressRefused,
    PrivateAddressError,
    PrivateAllowance,
    PublicResolver,
    check_url,
)
from adapters.shared.web_knowledge.fetch.politeness import HostTurns, host_key, retry_after_seconds

log = structlog.get_logger(__name__)

FailureKind = Literal["refused", "too_big", "timeout", "redirects", "status", "network"]
DEFAULT_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RATE_LIMITED_STATUSES = frozenset({429, 503})
RETRIES_AFTER_RATE_LIMIT = 2
CHUNK_BYTES = 64 * 1024
Headers = dict[str, str]


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 5_000_000  # of the decompressed body
    timeout_seconds: float = 30.0  # a whole fetch, redirects and a slow body included (not waiting for its turn)
    max_redirects: int = 5
    max_retry_after_seconds: float = 120.0


@dataclass(frozen=True)
class Fetched:
    url: str  # where the redirects led
    status: int  # 200, or 304 (not modified: no body)
    body: bytes
    content_type: str  # lower case, without parameters
    charset: str | None
    etag: str | None
    last_modified: str | None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class FetchFailed(Exception):
    """A page that couldn't be read; `reason` is a sentence for the operator or the person who added the site."""

    def __init__(self, reason: str, kind: FailureKind, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind: FailureKind = kind
        self.status = status

    @property
    def gone(self) -> bool:
        return self.status in (404, 410)


@dataclass(frozen=True)
class _RetryAfter:
    status: int
    seconds: float | None  # None: no usable Retry-After


_Outcome = Fetched | URL | _RetryAfter  # a page, where it redirects to, or when to ask again


class _TimeBudget:
    """The seconds a fetch may spend talking to servers, shared by its redirects and retries."""

    def __init__(self, seconds: float) -> None:
        self._left = seconds

    @contextlib.asynccontextmanager
    async def spending(self) -> AsyncIterator[None]:
        if self._left <= 0:
            raise TimeoutError
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._left):
                yield
        finally:
            self._left -= time.monotonic() - started


class WebFetcher:
    """Every page, sitemap and robots.txt the web knowledge reads, through one aiohttp session."""

    def __init__(
        self,
        allowance: PrivateAllowance,
        user_agent: str,
        limits: FetchLimits = FetchLimits(),  # frozen: one default shared is safe
        min_interval: float = 1.0,
    ) -> None:
        self._allowance = allowance
        self._user_agent = user_agent
        self._limits = limits
        self._politeness = HostTurns(min_interval)
        self._session: aiohttp.ClientSession | None = None
        self._resolver: PublicResolver | None = None

    def set_crawl_delay(self, host: str, seconds: float) -> None:
        """Raise the pause between two requests to a host ("host:port", `host_key`), up to a minute."""
        self._politeness.set_interval(host, seconds)

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = DEFAULT_ACCEPT,
        keep_first: int | None = None,
    ) -> Fetched:
        """GET a page. `keep_first`: keep that many bytes of a longer body instead of failing (robots.txt)."""
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        try:
            fetched = await self._follow(_parsed(url), headers, keep_first)
        except FetchFailed as failed:
            if failed.kind == "refused":  # someone asked for a private address: the operator may want to know who
                log.warning("knowledge_web_fetch_refused", url=url, reason=failed.reason)
            else:
                log.info(
                    "knowledge_web_fetch_failed", url=url, kind=failed.kind, status=failed.status, reason=failed.reason
                )
            raise
        if fetched.not_modified:  # a 304 need not repeat the validators: the ones we had are still good
            fetched = replace(fetched, etag=fetched.etag or etag, last_modified=fetched.last_modified or last_modified)
        return fetched

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

    async def _follow(self, url: URL, headers: Headers, keep_first: int | None) -> Fetched:
        budget = _TimeBudget(self._limits.timeout_seconds)
        for _ in range(self._limits.max_redirects + 1):
            outcome = await self._hop(url, headers, budget, keep_first)
            if isinstance(outcome, Fetched):
                return outcome
            url = outcome
        raise FetchFailed(f"{url}: more than {self._limits.max_redirects} redirects", "redirects")

    async def _hop(self, url: URL, headers: Headers, budget: _TimeBudget, keep_first: int | None) -> Fetched | URL:
        """One URL: a page, or where it redirects to; a 429 or 503 with a short Retry-After asked again."""
        try:
            check_url(url, self._allowance)
        except AddressRefused as refused:
            raise FetchFailed(str(refused), "refused") from refused
        key = host_key(url)
        for attempt in range(RETRIES_AFTER_RATE_LIMIT + 1):
            async with self._politeness.turn(key):
                outcome = await self._request(url, headers, budget, keep_first)
                if isinstance(outcome, _RetryAfter):
                    self._check_retry(url, outcome, attempt)
                    self._politeness.wait_before_next(key, outcome.seconds or 0.0)
                    log.info("knowledge_web_fetch_retry_after", url=str(url), seconds=outcome.seconds)
                    continue
                return outcome
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _check_retry(self, url: URL, outcome: _RetryAfter, attempt: int) -> None:
        seconds = outcome.seconds
        if attempt < RETRIES_AFTER_RATE_LIMIT and seconds is not None:
            if seconds <= self._limits.max_retry_after_seconds:
                return
        asks = "" if seconds is None else f" and asks to wait {seconds:.0f} s"
        raise FetchFailed(f"{url}: the server is busy ({outcome.status}){asks}", "status", outcome.status)

    async def _request(self, url: URL, headers: Headers, budget: _TimeBudget, keep_first: int | None) -> _Outcome:
        try:
            async with budget.spending():
                async with self._session_now().get(url, headers=headers, allow_redirects=False) as response:
                    return await self._outcome(url, response, keep_first)
        except TimeoutError:
            raise FetchFailed(f"{url}: no answer within {self._limits.timeout_seconds:g} s", "timeout") from None
        except aiohttp.ClientConnectorError as failed:
            if isinstance(failed.os_error, PrivateAddressError):
                raise FetchFailed(str(failed.os_error.refused), "refused") from failed
            raise FetchFailed(f"{url}: can't connect ({failed.strerror or failed})", "network") from failed
        except aiohttp.InvalidURL as failed:
            raise FetchFailed(f"{url} is not a valid address ({failed})", "refused") from failed
        except aiohttp.ClientError as failed:
            raise FetchFailed(f"{url}: the connection failed ({failed!r})", "network") from failed

    async def _outcome(self, url: URL, response: aiohttp.ClientResponse, keep_first: int | None) -> _Outcome:
        status = response.status
        if status in REDIRECT_STATUSES:
            return _redirect_target(url, response)
        if status in RATE_LIMITED_STATUSES:
            return _RetryAfter(status, retry_after_seconds(response.headers.get("Retry-After")))
        if status not in (200, 304):
            raise FetchFailed(f"{url}: the server answered {status} {response.reason or ''}".rstrip(), "status", status)
        body = b"" if status == 304 else await self._read_body(url, response, keep_first)
        headers = response.headers
        content_type = response.content_type.lower()
        return Fetched(
            str(url), status, body, content_type, response.charset, headers.get("ETag"), headers.get("Last-Modified")
        )

    async def _read_body(self, url: URL, response: aiohttp.ClientResponse, keep_first: int | None) -> bytes:
        """The decompressed body, read a chunk at a time (aiohttp inflates a chunk at a time) and stopped at the cap."""
        cap = self._limits.max_bytes if keep_first is None else keep_first
        length = response.content_length
        if keep_first is None and length is not None and length > cap:
            raise self._too_big(url, response)
        body = bytearray()
        async for chunk in response.content.iter_chunked(CHUNK_BYTES):
            body += chunk
            if len(body) > cap:
                if keep_first is not None:
                    response.close()
                    return bytes(body[:keep_first])
                raise self._too_big(url, response)
        return bytes(body)

    def _too_big(self, url: URL, response: aiohttp.ClientResponse) -> FetchFailed:
        response.close()
        return FetchFailed(f"{url}: the page is larger than {self._limits.max_bytes:,} bytes", "too_big")

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._resolver = PublicResolver(self._allowance)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=self._resolver),
                headers={"User-Agent": self._user_agent},
                timeout=aiohttp.ClientTimeout(total=self._limits.timeout_seconds),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # never through a proxy from the environment, which would resolve names for us
            )
        return self._session


def _parsed(url: str) -> URL:
    try:
        return URL(url).with_fragment(None)
    except ValueError as invalid:
        raise FetchFailed(f"{url} is not a valid address ({invalid})", "refused") from invalid


def _redirect_target(url: URL, response: aiohttp.ClientResponse) -> URL:
    location = response.headers.get("Location")
    if location:
        try:
            return url.join(URL(location)).with_fragment(None)
        except ValueError:
            pass
    raise FetchFailed(f"{url}: a redirect ({response.status}) to no valid address", "status", response.status)
