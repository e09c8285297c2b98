"""A docs site's page read for knowledge: its main text (navigation, header, footer and banners dropped) cut at its
headings, each section with the anchor a citation can link to, and the page's links for the crawl to follow.

Pages are untrusted HTML: they are parsed in the isolated workers (adapters.shared.files.isolation), by
adapters.shared.web_knowledge.sites.page_worker, which only the workers import; the bot's process never parses them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from adapters.shared.files.isolation import IsolatedWorkers, WorkFailed, call_in_worker

WORKER_MODULE = "adapters.shared.web_knowledge.sites.page_worker"
PAGE_SECONDS = 10.0  # a page of a few MB parses in well under a second; a page that takes longer is hostile
HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass(frozen=True)
class PageSection:
    headings: tuple[str, ...]  # the heading path down to this section's own, outermost first ("": none)
    anchor: str  # its heading's id, for a link to it ("" when it has none)
    text: str


@dataclass(frozen=True)
class ReadPage:
    title: str
    sections: tuple[PageSection, ...]
    links: tuple[str, ...]  # absolute http(s) URLs, fragments dropped, in the page's order, each once

    @property
    def digest(self) -> str:
        """What the knowledge holds of it: the same digest, the same passages (nothing to embed again)."""
        hashed = hashlib.sha256(self.title.encode())
        for section in self.sections:
            for part in (*section.headings, section.anchor, section.text):
                hashed.update(b"\0" + part.encode())
            hashed.update(b"\1")
        return hashed.hexdigest()


class PageUnreadable(Exception):
    """A page whose HTML couldn't be read (its worker ran out of memory or time, or died)."""


def is_html(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in HTML_TYPES


class PageReader:
    """Reads pages in the isolated workers, `seconds` at most each. Make the workers with
    `preload=[WORKER_MODULE]` so that their fork server imports the parsers once."""

    def __init__(self, workers: IsolatedWorkers, seconds: float = PAGE_SECONDS, owner: str = "web-knowledge") -> None:
        """`owner`: whose turns the pages take in the workers (IsolatedWorkers.turn), shared fairly with the people
        whose files the same workers read."""
        self._workers = workers
        self._seconds = seconds
        self._owner = owner

    async def read(self, body: bytes, charset: str | None, url: str) -> ReadPage:
        """The page at `url` (its final URL, after redirects: its links are resolved against it)."""
        try:
            async with self._workers.turn(self._owner):
                read = await self._workers.run_within(
                    self._seconds, call_in_worker, WORKER_MODULE, "read_page", body, charset, url
                )
        except WorkFailed as failed:
            raise PageUnreadable(str(failed)) from failed
        if not isinstance(read, ReadPage):
            raise TypeError(f"the page worker returned {type(read).__name__}")
        return read
