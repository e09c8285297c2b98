"""A site's robots.txt, read through the `WebFetcher` once a sync and parsed by Protego, as RFC 9309 says: none (a
4xx) allows everything; one that can't be read (a 5xx, a network failure, a timeout, a private address) allows
nothing until the next sync; only its first 500 KiB are read."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from protego import Protego
from yarl import URL

from adapters.shared.web_knowledge.fetch.fetching import FetchFailed, WebFetcher

log = structlog.get_logger(__name__)

ROBOTS_MAX_BYTES = 500 * 1024  # RFC 9309 2.5: crawlers must parse at least the first 500 KiB
ROBOTS_ACCEPT = "text/plain,*/*;q=0.5"


@dataclass(frozen=True)
class RobotsRules:
    """What a site's robots.txt lets a user agent read; `parser` None: everything allowed, or nothing."""

    user_agent_token: str
    parser: Protego | None = None
    allow_all: bool = True

    def allowed(self, url: str) -> bool:
        if self.parser is None:
            return self.allow_all
        return self.parser.can_fetch(url, self.user_agent_token)

    @property
    def crawl_delay(self) -> float | None:
        return None if self.parser is None else self.parser.crawl_delay(self.user_agent_token)

    @property
    def sitemaps(self) -> list[str]:
        return [] if self.parser is None else list(self.parser.sitemaps)


def robots_url(site_url: str) -> str:
    return str(URL(site_url).origin().with_path("/robots.txt"))


async def read_robots(fetcher: WebFetcher, site_url: str, user_agent_token: str) -> RobotsRules:
    url = robots_url(site_url)
    try:
        fetched = await fetcher.fetch(url, accept=ROBOTS_ACCEPT, keep_first=ROBOTS_MAX_BYTES)
    except FetchFailed as failed:
        allow_all = _none_there(failed)
        log.info("knowledge_web_robots_unread", url=url, allow_all=allow_all, kind=failed.kind, reason=failed.reason)
        return RobotsRules(user_agent_token, allow_all=allow_all)
    text = fetched.body.decode("utf-8", errors="replace")
    return RobotsRules(user_agent_token, Protego.parse(text))


def _none_there(failed: FetchFailed) -> bool:
    """A 4xx says there is no robots.txt for us: everything is allowed. A 429 asks us to slow down, which a 4xx
    doesn't (Google reads it as a 5xx): nothing, as after any other failure."""
    status = failed.status
    return failed.kind == "status" and status is not None and 400 <= status < 500 and status != 429
