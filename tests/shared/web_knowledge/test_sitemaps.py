"""Sitemaps parsed as hostile input: an index and its sitemaps, gzipped or not, lastmod read; a DTD, an entity
bomb or a gzip bomb refused."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import pytest

from adapters.shared.web_knowledge.sites import sitemaps
from adapters.shared.web_knowledge.sites.sitemaps import SitemapPage, SitemapUnreadable, parse_sitemap
from fakes.docs_site_pages import sitemap_xml

WHEN = datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp()


def test_a_urlset_lists_pages_with_their_lastmod() -> None:
    xml = sitemap_xml([("https://d.e/a.html", WHEN), ("https://d.e/b.html", None)], index=False)
    assert parse_sitemap(xml.encode()).pages == (
        SitemapPage("https://d.e/a.html", WHEN),
        SitemapPage("https://d.e/b.html", None),
    )
    dated = xml.replace("</loc>", "</loc><lastmod>2026-03-01</lastmod>", 1).encode()
    assert parse_sitemap(dated).pages[0].lastmod == datetime(2026, 3, 1, tzinfo=UTC).timestamp()


def test_an_index_lists_sitemaps_gzipped_or_not() -> None:
    xml = sitemap_xml([("https://d.e/s1.xml", WHEN), ("https://d.e/s2.xml.gz", None)], index=True).encode()
    for data in (xml, gzip.compress(xml)):
        assert parse_sitemap(data).children == ("https://d.e/s1.xml", "https://d.e/s2.xml.gz")


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        b"<urlset><url><loc>&b;</loc></url></urlset>",
        b'<!DOCTYPE urlset SYSTEM "file:///etc/passwd"><urlset/>',
        b"<html><body>Not found</body></html>",
        b"not xml at all",
    ],
)
def test_what_is_not_a_plain_sitemap_is_refused(data: bytes) -> None:
    with pytest.raises(SitemapUnreadable):
        parse_sitemap(data)


def test_a_gzip_bomb_stops_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sitemaps, "MAX_UNPACKED_BYTES", 1_000_000)
    bomb = gzip.compress(b"<urlset>" + b" " * 20_000_000 + b"</urlset>")
    with pytest.raises(SitemapUnreadable, match="unpacks to more than"):
        parse_sitemap(bomb)


def test_no_more_entries_than_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sitemaps, "MAX_ENTRIES", 3)
    xml = sitemap_xml([(f"https://d.e/{n}.html", None) for n in range(10)], index=False)
    assert len(parse_sitemap(xml.encode()).pages) == 3
