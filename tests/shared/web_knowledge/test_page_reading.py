"""A page read for knowledge: its article's text cut at its headings, each section with its heading's anchor, the
theme around it (navigation, sidebar, cookie banner, footer) left out, its links made absolute; in the isolated
workers. And which URLs a crawl knows a page by, and which are under its start URL."""

from __future__ import annotations

import pytest

from adapters.shared.files.isolation import IsolatedWorkers
from adapters.shared.web_knowledge.sites.page_reading import WORKER_MODULE, PageReader, PageSection, is_html
from adapters.shared.web_knowledge.sites.page_worker import read_page
from adapters.shared.web_knowledge.sites.pages import page_passages
from adapters.shared.web_knowledge.sites.urls import QueryCap, SiteScope, normalized
from fakes.docs_site_pages import CHROME_WORDS, article_page, themed

URL = "https://docs.example.com/guide/install.html"
ANCHORED = themed(
    "Install",
    """<h1>Installing Acme</h1><p>Acme installs on every desktop system we know of, in a few minutes.</p>
<h2 id="needs">Requirements <a class="headerlink" href="#needs">¶</a></h2><p>Python 3.11 and ACME_HOME set.</p>
<section id="with-pip"><h2>Installing with <code>pip</code></h2><p>Run pip install acme in a virtual environment.</p>
<h3><a name="upgrading"></a>Upgrading</h3><p>Run pip install --upgrade acme to move to the newest release.</p></section>
<h2>Without an anchor</h2><p>This section's heading has no id, so its passages link to the page itself.</p>""",
)


def test_sections_keep_their_headings_and_anchors() -> None:
    page = read_page(ANCHORED.encode(), "utf-8", URL)
    assert page.title == "Install | Acme Docs"
    assert [(section.headings[-1], section.anchor) for section in page.sections] == [
        ("Installing Acme", ""),
        ("Requirements", "needs"),
        ("Installing with pip", "with-pip"),
        ("Upgrading", "upgrading"),
        ("Without an anchor", ""),
    ]
    assert page.sections[3].headings == ("Installing Acme", "Installing with pip", "Upgrading")
    assert page.sections[1].text == "Python 3.11 and ACME_HOME set."  # not Markdown's "ACME\_HOME"
    text = " ".join(section.text for section in page.sections)
    assert not any(word.lower() in text.lower() for word in CHROME_WORDS)


def test_links_are_absolute_without_fragments() -> None:
    html = """<html><head><base href="/docs/v2/"></head><body><p>Intro text of this page.</p>
    <a href="next.html#part">Next</a> <a href="https://other.example.org/x">Other</a> <a href="mailto:a@b.c">Mail</a>
    <a href="#top">Top</a> <a href="../v1/old.html">Old</a></body></html>"""
    page = read_page(html.encode(), None, "https://docs.example.com/docs/v2/index.html")
    assert page.links == (
        "https://docs.example.com/docs/v2/next.html",
        "https://other.example.org/x",
        "https://docs.example.com/docs/v2/",
        "https://docs.example.com/docs/v1/old.html",
    )


def test_the_charset_is_the_servers_or_the_pages() -> None:
    html = '<html><head><meta charset="iso-8859-1"><title>Caf\xe9</title></head><body><p>Le caf\xe9.</p></body></html>'
    assert read_page(html.encode("latin-1"), None, URL).title == "Café"
    assert read_page(html.encode("latin-1"), "iso-8859-1", URL).title == "Café"
    assert read_page(b"", None, URL).sections == ()


def test_passages_are_titled_located_and_linked() -> None:
    page = read_page(article_page("/docs/configure.html").encode(), None, "https://acme.test/docs/configure.html")
    passages = page_passages("discord:1", "web:abc:def", "https://acme.test/docs/configure.html", page, 5.0)
    proxy = next(passage for passage in passages if "ACME_PROXY" in passage.text)
    assert proxy.title == "Configuring Acme | Acme Docs"
    assert proxy.locator == "Configuring Acme \u203a Proxy settings"
    assert proxy.url == "https://acme.test/docs/configure.html#proxy"
    assert [passage.key for passage in passages] == [f"web:abc:def#{n}" for n in range(1, len(passages) + 1)]
    assert (proxy.channel, proxy.author, proxy.updated_at) == ("", "", 5.0)


async def test_pages_are_read_in_the_isolated_workers() -> None:
    workers = IsolatedWorkers(workers=1, preload=[WORKER_MODULE], warm=False)
    try:
        page = await PageReader(workers).read(ANCHORED.encode(), "utf-8", URL)
    finally:
        await workers.aclose()
    assert page.sections[1] == PageSection(("Installing Acme", "Requirements"), "needs", page.sections[1].text)
    assert is_html("text/html; charset=utf-8") and is_html("application/xhtml+xml") and not is_html("image/png")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://Docs.Example.com:443/a/b.html#part", "https://docs.example.com/a/b.html"),
        ("http://docs.example.com:8080?x=1", "http://docs.example.com:8080/?x=1"),
        ("ftp://docs.example.com/file", None),
        ("http://[::1]:99999/", None),
    ],
)
def test_urls_are_normalized(url: str, expected: str | None) -> None:
    assert normalized(url) == expected


def test_the_scope_is_the_start_urls_host_and_folder() -> None:
    folder = SiteScope("https://docs.example.com/guide")
    assert folder.contains("https://docs.example.com/guide") and folder.contains("https://docs.example.com/guide/a")
    assert not folder.contains("https://docs.example.com/guides/a")
    assert not folder.contains("http://docs.example.com/guide/a") and not folder.contains("https://x.com/guide/a")
    page = SiteScope("https://docs.example.com/guide/intro.html")
    assert page.contains("https://docs.example.com/guide/other.html")
    cap = QueryCap(per_path=2)
    taken = [cap.take(f"https://d.e/cal?month={month}") for month in range(4)]
    assert taken == [True, True, False, False] and cap.take("https://d.e/cal")
