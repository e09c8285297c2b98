"""Knowledge from the web: KNOWLEDGE_URLS (docs sites and GitHub repositories for everyone), how a site is crawled
and how often, which private addresses an operator allows, and GitHub's API and token. `web_address` also checks
what an admin gives /knowledge add."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from config.env import ConfigError, Env

DEFAULT_MAX_PAGES = 2_000
MAX_MAX_PAGES = 100_000
DEFAULT_SYNC_HOURS = 24.0
DEFAULT_GITHUB_API_URL = "https://api.github.com"
# At least this long between two requests to one host (a robots.txt Crawl-delay asks for more).
DEFAULT_REQUEST_INTERVAL_SECONDS = 1.0
GITHUB_HOSTS = ("github.com", "www.github.com")
_REPOSITORY = re.compile(r"^/([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/([A-Za-z0-9._-]{1,100}?)(?:\.git)?(?:/.*)?$")

AddressKind = Literal["site", "github"]


@dataclass(frozen=True)
class WebAddress:
    kind: AddressKind
    url: str  # normalised: "https://docs.example.com/guide/", "https://github.com/owner/repo"


@dataclass(frozen=True)
class WebKnowledgeSettings:
    urls: tuple[WebAddress, ...] = ()  # KNOWLEDGE_URLS: knowledge for every server, workspace and the web chat
    max_pages: int = DEFAULT_MAX_PAGES  # KNOWLEDGE_MAX_PAGES: a site's pages read at most
    sync_hours: float = DEFAULT_SYNC_HOURS  # KNOWLEDGE_SYNC_HOURS: how often every web source is read again
    allow_private: tuple[str, ...] = ()  # KNOWLEDGE_ALLOW_PRIVATE_URLS: hosts, host:ports or networks allowed
    request_interval: float = DEFAULT_REQUEST_INTERVAL_SECONDS  # KNOWLEDGE_REQUEST_INTERVAL_SECONDS
    contact_url: str | None = None  # KNOWLEDGE_CONTACT_URL: in the crawler's User-Agent, for site owners
    github_api_url: str = DEFAULT_GITHUB_API_URL  # GITHUB_API_URL: GitHub Enterprise's, or a test server's
    github_token: str | None = None  # GITHUB_TOKEN: 5,000 requests an hour rather than 60, and private repositories


def web_knowledge_settings(env: Env) -> WebKnowledgeSettings:
    return WebKnowledgeSettings(
        urls=_addresses(env, "KNOWLEDGE_URLS"),
        max_pages=env.int("KNOWLEDGE_MAX_PAGES", DEFAULT_MAX_PAGES, minimum=1, maximum=MAX_MAX_PAGES),
        sync_hours=_positive(env, "KNOWLEDGE_SYNC_HOURS", DEFAULT_SYNC_HOURS),
        allow_private=tuple((env.raw("KNOWLEDGE_ALLOW_PRIVATE_URLS") or "").replace(",", " ").split()),
        request_interval=env.float(
            "KNOWLEDGE_REQUEST_INTERVAL_SECONDS", DEFAULT_REQUEST_INTERVAL_SECONDS, minimum=0.0, maximum=60.0
        ),
        contact_url=env.url("KNOWLEDGE_CONTACT_URL", None, ("http", "https", "mailto")),
        github_api_url=env.url("GITHUB_API_URL", DEFAULT_GITHUB_API_URL, ("http", "https")) or DEFAULT_GITHUB_API_URL,
        github_token=env.optional_str("GITHUB_TOKEN"),
    )


def web_address(text: str) -> WebAddress:
    """What `text` names: a GitHub repository ("github.com/owner/repo", its https URL) or a site's http(s) URL,
    normalised. Raises ValueError with a sentence for the person."""
    text = text.strip().strip("<>").split("|", 1)[0]  # Slack sends a link it recognised as <url|label>
    if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text} is not a web address: give a site's https:// address or github.com/owner/repo.")
    if parts.username or parts.password:
        raise ValueError("Give the address without a user name or password in it.")
    host = parts.hostname.lower()
    if host in GITHUB_HOSTS:
        return _repository(parts.path, text)
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    if ":" in host:  # IPv6
        netloc = f"[{host}]" if parts.port is None else f"[{host}]:{parts.port}"
    return WebAddress("site", urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, "")))


def _repository(path: str, text: str) -> WebAddress:
    match = _REPOSITORY.match(path)
    if match is None:
        raise ValueError(f"{text} is not a repository: give github.com/owner/repo.")
    return WebAddress("github", f"https://github.com/{match.group(1)}/{match.group(2)}")


def _addresses(env: Env, name: str) -> tuple[WebAddress, ...]:
    addresses: list[WebAddress] = []
    for word in (env.raw(name) or "").split():
        try:
            address = web_address(word)
        except ValueError as error:
            raise ConfigError(f"{name} is invalid: {error}") from None
        if address not in addresses:
            addresses.append(address)
    return tuple(addresses)


def _positive(env: Env, name: str, default: float) -> float:
    value = env.float(name, default, maximum=24.0 * 365)
    if not value > 0:  # also NaN
        raise ConfigError(f"{name}={env.raw(name)!r} is invalid: expected a number of hours > 0")
    return value
