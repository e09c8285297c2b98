"""A site's sitemaps (sitemaps.org): a `<urlset>` of pages, each with its `lastmod`, or a `<sitemapindex>` of other
sitemaps; gzipped or not. They come from the site, so they are parsed as hostile: defusedxml refuses DTDs and
entities (no "billion laughs", no external file read), a gzip is unpacked to MAX_UNPACKED_BYTES at most, and no more
than MAX_ENTRIES entries are taken from one sitemap."""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException  # type: ignore[import-untyped]
from defusedxml.ElementTree import fromstring  # type: ignore[import-untyped]

from adapters.shared.web_knowledge.fetch.fetching import FetchFailed, WebFetcher
from adapters.shared.web_knowledge.sites.urls import SiteScope, normalized

# The protocol's own limits for one sitemap: 50,000 URLs, 50 MB unpacked.
MAX_ENTRIES = 50_000
MAX_UNPACKED_BYTES = 50 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
MAX_SITEMAPS = 50  # read in one sync: an index and its children
MAX_LISTED = 100_000  # pages taken from a site's sitemaps in all
SITEMAP_ACCEPT = "application/xml,text/xml;q=0.9,*/*;q=0.5"


@dataclass(frozen=True)
class SitemapPage:
    url: str
    lastmod: float | None  # unix seconds; None: the sitemap doesn't say


@dataclass(frozen=True)
class Sitemap:
    pages: tuple[SitemapPage, ...] = ()
    children: tuple[str, ...] = ()  # a sitemap index's sitemaps


@dataclass
class SiteListing:
    """The site's pages under the start URL that its sitemaps list."""

    pages: dict[str, float | None] = field(default_factory=dict)  # normalized URL → its lastmod, in the listed order
    complete: bool = True  # every sitemap was read: a page it no longer lists is gone


class SitemapUnreadable(Exception):
    """Not a sitemap: not XML, refused by defusedxml, a gzip unpacking past the limit, or another root."""


def parse_sitemap(data: bytes) -> Sitemap:
    """The pages or child sitemaps `data` lists (gzipped or not), MAX_ENTRIES at most."""
    if data.startswith(_GZIP_MAGIC):
        data = _gunzipped(data)
    try:
        root = fromstring(data, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as error:
        raise SitemapUnreadable(f"not a sitemap: {type(error).__name__}") from None
    kind = _local(root.tag)
    if kind == "sitemapindex":
        children = [loc for entry in _entries(root, "sitemap") if (loc := _text(entry, "loc"))]
        return Sitemap(children=tuple(children))
    if kind == "urlset":
        pages = [
            SitemapPage(loc, _time(_text(entry, "lastmod")))
            for entry in _entries(root, "url")
            if (loc := _text(entry, "loc"))
        ]
        return Sitemap(pages=tuple(pages))
    raise SitemapUnreadable(f"not a sitemap: a <{kind}> document")


def _gunzipped(data: bytes) -> bytes:
    unpacker = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        unpacked = unpacker.decompress(data, MAX_UNPACKED_BYTES)
    except zlib.error as error:
        raise SitemapUnreadable(f"a damaged gzip: {error}") from None
    if unpacker.unconsumed_tail:
        raise SitemapUnreadable(f"unpacks to more than {MAX_UNPACKED_BYTES // (1024 * 1024)} MB")
    return unpacked


def _entries(root: Any, name: str) -> list[Any]:
    found: list[Any] = []
    for child in root:
        if _local(child.tag) == name:
            found.append(child)
            if len(found) >= MAX_ENTRIES:
                break
    return found


def _text(entry: Any, name: str) -> str:
    for child in entry:
        if _local(child.tag) == name:
            return " ".join((child.text or "").split())
    return ""


def _local(tag: object) -> str:
    """A tag's name without its namespace (sitemaps are namespaced, some wrongly)."""
    return str(tag).rsplit("}", 1)[-1]


def _time(lastmod: str) -> float | None:
    """A W3C datetime ("2026-01-02", "2026-01-02T10:00:00+01:00", "…Z") in unix seconds; None if unreadable."""
    if not lastmod:
        return None
    try:
        moment = datetime.fromisoformat(lastmod)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


async def read_sitemaps(fetcher: WebFetcher, scope: SiteScope, declared: list[str]) -> SiteListing | None:
    """The pages the site's sitemaps list: those robots.txt `declared`, else /sitemap.xml at the root; only sitemaps
    on the site's own host are read. None: the site has no sitemap that could be read."""
    own = [url for url in (normalized(found) for found in declared) if url and url.startswith(scope.origin + "/")]
    waiting = deque(dict.fromkeys(own or [scope.root_url("/sitemap.xml")]))
    seen = set(waiting)
    listing, read, found = SiteListing(), 0, False
    while waiting and read < MAX_SITEMAPS:
        read += 1
        try:
            fetched = await fetcher.fetch(waiting.popleft(), accept=SITEMAP_ACCEPT)
            sitemap = await asyncio.to_thread(parse_sitemap, fetched.body)  # up to 50 MB: off the event loop
        except (FetchFailed, SitemapUnreadable):
            listing.complete = False
            continue
        found = True
        for child in sitemap.children:
            url = normalized(child)
            if url and url.startswith(scope.origin + "/") and url not in seen:
                seen.add(url)
                waiting.append(url)
        _add_pages(listing, scope, sitemap.pages)
    listing.complete = listing.complete and not waiting
    return listing if found else None


def _add_pages(listing: SiteListing, scope: SiteScope, pages: tuple[SitemapPage, ...]) -> None:
    for page in pages:
        url = normalized(page.url)
        if url is None or not scope.contains(url) or url in listing.pages:
            continue
        if len(listing.pages) >= MAX_LISTED:
            listing.complete = False  # what is past the cap is not known to be gone
            return
        listing.pages[url] = page.lastmod
