"""A web page's HTML read in the isolated workers only (adapters.shared.files.isolation): their fork server imports
this module, and with it lxml and trafilatura; the bot's process never does. `read_page` is what
adapters.shared.web_knowledge.sites.page_reading calls here.

trafilatura finds the main text (the navigation, header, footer, cookie banners and other boilerplate dropped) and
gives it as Markdown with its headings; lxml finds, in the whole page, each heading's anchor and every link."""

from __future__ import annotations

import codecs
import copy
import re
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import lxml.html  # type: ignore[import-untyped]  # no stubs: its trees are Any here
import trafilatura
from lxml.etree import ParserError  # type: ignore[import-untyped]

from adapters.shared.knowledge_sources.headings import markdown_sections
from adapters.shared.web_knowledge.sites.page_reading import PageSection, ReadPage

MAX_LINKS = 2_000  # a page's links kept for the crawl to follow
MAX_TITLE_CHARS = 300
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_NOT_WORDS = re.compile(r"[\W_]+", re.UNICODE)
_MARKDOWN_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!~|<>])")
_HEADING_DECORATION = " \t¶#§🔗"


def read_page(body: bytes, charset: str | None, url: str) -> ReadPage:
    """The page's title, its main text's sections (with their anchors) and its links."""
    tree = _parsed(body, charset)
    if tree is None:
        return ReadPage("", (), ())
    markdown = trafilatura.extract(
        _without_chrome(copy.deepcopy(tree)),
        url=url,
        output_format="markdown",
        include_formatting=True,
        include_comments=False,
        include_images=False,
        include_links=False,
        include_tables=True,
        deduplicate=False,
        favor_precision=True,  # a short page's navigation is otherwise taken for its text
    )
    return ReadPage(_title(tree), _sections(markdown or "", _anchors(tree)), _links(tree, url))


def _without_chrome(tree: Any) -> Any:
    """The page without what a docs theme puts around the article, which trafilatura may otherwise keep on a short
    page: the navigation, sidebars, the footer, the site's header (not an article's) and cookie banners."""
    chrome = tree.xpath(
        "//nav | //aside | //footer | //header[not(ancestor::article or ancestor::main)]"
        " | //*[@role='navigation' or @role='banner' or @role='contentinfo' or @role='complementary']"
        " | //*[contains(translate(concat(@id, ' ', @class), 'COKIENS', 'cokiens'), 'cookie')"
        " or contains(translate(concat(@id, ' ', @class), 'CONSET', 'conset'), 'consent')]"
    )
    for element in chrome:
        if element.getparent() is not None:
            element.drop_tree()
    return tree


def _parsed(body: bytes, charset: str | None) -> Any:
    try:
        parser = lxml.html.HTMLParser(encoding=_known_encoding(charset))
        return lxml.html.document_fromstring(body, parser=parser)
    except (ParserError, ValueError):  # empty, or nothing lxml can make a document of
        return None


def _known_encoding(charset: str | None) -> str | None:
    if not charset:
        return None  # libxml2 reads a <meta charset>, else guesses
    try:
        return codecs.lookup(charset).name
    except LookupError:  # a charset Python doesn't know: libxml2 guesses
        return None


def _title(tree: Any) -> str:
    for found in (tree.find(".//title"), tree.find(".//h1")):
        if found is not None and (text := " ".join(found.text_content().split())):
            return text[:MAX_TITLE_CHARS]
    return ""


def _anchors(tree: Any) -> list[tuple[str, str]]:
    """Each heading's words (to match it with the Markdown's) and its anchor, in the page's order."""
    found: list[tuple[str, str]] = []
    for heading in tree.iter(*_HEADINGS):
        anchor = _anchor_of(heading)
        if anchor:
            found.append((_words(heading.text_content()), anchor))
    return found


def _anchor_of(heading: Any) -> str:
    """Its own id, or an id or name inside it, or that of the section it opens (Sphinx's `<section id>`)."""
    if heading.get("id"):
        return str(heading.get("id"))
    for inner in heading.iter():
        if inner is not heading and (inner.get("id") or (inner.tag == "a" and inner.get("name"))):
            return str(inner.get("id") or inner.get("name"))
    parent = heading.getparent()
    if parent is not None and parent.get("id") and len(parent) and parent[0] is heading:
        return str(parent.get("id"))
    return ""


def _sections(markdown: str, anchors: list[tuple[str, str]]) -> tuple[PageSection, ...]:
    """The Markdown cut at its headings; each section's own heading matched, in order, with the page's anchors."""
    sections: list[PageSection] = []
    position = 0
    for section in markdown_sections(markdown):
        headings = tuple(_plain(name) for name in section.headings)
        anchor = ""
        if headings:
            own = _words(headings[-1])
            for index in range(position, len(anchors)):
                if anchors[index][0] == own:
                    anchor, position = anchors[index][1], index + 1
                    break
        sections.append(PageSection(headings, anchor, _unescaped(section.text)))
    return tuple(sections)


def _plain(heading: str) -> str:
    """A Markdown heading as a citation shows it: no code or emphasis marks, no permalink sign."""
    return _unescaped(heading.replace("`", "").replace("**", "")).strip(_HEADING_DECORATION)


def _unescaped(markdown: str) -> str:
    """The text as the page says it ("ACME_PROXY"), not as Markdown escapes it ("ACME\\_PROXY"); done once the
    Markdown is cut at its headings, so that an escaped "#" starts no heading."""
    return _MARKDOWN_ESCAPE.sub(r"\1", markdown)


def _words(text: str) -> str:
    """A heading's words alone, as the HTML and the Markdown both have them (no markup, case or decoration)."""
    return " ".join(_NOT_WORDS.sub(" ", text).split()).casefold()


def _links(tree: Any, url: str) -> tuple[str, ...]:
    base = url
    for href in tree.xpath("//base/@href")[:1]:
        base = urljoin(url, str(href).strip())
    links: dict[str, None] = {}
    for href in tree.xpath("//a/@href"):
        try:
            link = urldefrag(urljoin(base, str(href).strip())).url
            scheme = urlsplit(link).scheme
        except ValueError:  # a malformed address (an IPv6 host without its bracket)
            continue
        if scheme in ("http", "https"):
            links[link] = None
            if len(links) >= MAX_LINKS:
                break
    return tuple(links)
