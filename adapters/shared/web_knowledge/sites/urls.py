"""Which URLs a docs site's crawl may read: one spelling per page (no fragment, no default port, the host in lower
case), on the start URL's host and under its path, and never endlessly many of one path (a calendar's `?month=N`, a
listing's `?page=N` that has no last page)."""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
QUERIES_PER_PATH = 20  # distinct query strings read of one path: a calendar has no last month
MAX_DEPTH = 12  # links followed from the start URL; a docs page is rarely more than a few clicks deep


def normalized(url: str) -> str | None:
    """The one spelling of `url` the crawl knows it by; None if it is not an http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # an invalid port or IPv6 host
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


class SiteScope:
    """The pages of a site the start URL covers: "https://docs.example.com/guide/" covers its host's pages under
    /guide/ (and /guide itself); a start URL naming a page ("…/guide/intro.html") covers its folder."""

    def __init__(self, start_url: str) -> None:
        start = normalized(start_url)
        if start is None:
            raise ValueError(f"not an http(s) URL: {start_url}")
        self.start = start
        parts = urlsplit(start)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        path = parts.path
        last = path.rsplit("/", 1)[-1]
        if path.endswith("/"):
            self._folder = path
        elif "." in last:
            self._folder = path[: len(path) - len(last)]
        else:
            self._folder = path + "/"
        self._exact = self._folder.rstrip("/") or "/"

    def contains(self, url: str) -> bool:
        """`url` (normalized) is one of the site's pages under the start URL's path."""
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            return False
        return parts.path == self._exact or parts.path.startswith(self._folder)

    def root_url(self, path: str) -> str:
        return self.origin + path


class QueryCap:
    """Counts the distinct query strings of each path taken: past QUERIES_PER_PATH, a path's others are refused."""

    def __init__(self, per_path: int = QUERIES_PER_PATH) -> None:
        self._per_path = per_path
        self._taken: Counter[str] = Counter()

    def take(self, url: str) -> bool:
        parts = urlsplit(url)
        if not parts.query:
            return True
        if self._taken[parts.path] >= self._per_path:
            return False
        self._taken[parts.path] += 1
        return True
