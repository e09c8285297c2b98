"""What /knowledge add, sync, list and remove do with web sources, the same on every platform: the adapter checks who
asks and shows the sentences. A server's or workspace's web sources are its own; KNOWLEDGE_URLS' are everyone's and
are listed, not removed, by a command."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import yarl

from adapters.shared.web_knowledge.fetch.addresses import AddressRefused, PrivateAllowance, check_url, is_public
from adapters.shared.web_knowledge.registry import SyncStatus, WebSources
from adapters.shared.web_knowledge.sources import SOURCE_PREFIX, SyncReport, WebSource, forget_passages
from bot.knowledge.passages import DEPLOYMENT_SCOPE
from bot.knowledge.service import Knowledge
from config.web_knowledge import WebKnowledgeSettings, web_address

MAX_SOURCES = 20  # web sources a server or workspace may add
Escape = Callable[[str], str]
When = Callable[[float], str]  # a moment as the platform shows it


@dataclass(frozen=True)
class Shown:
    """How a platform writes a line: bold, escaped text, a moment."""

    bold: Escape
    escape: Escape
    when: When


def is_web_source(source: str) -> bool:
    """A page's, file's, issue's or discussion's knowledge source: listed under its site or repository instead."""
    return source.startswith(SOURCE_PREFIX)


class WebCommands:
    def __init__(self, sources: WebSources, settings: WebKnowledgeSettings) -> None:
        self._sources, self._settings = sources, settings

    async def add(self, scope: str, text: str, added_by: str) -> str:
        """Add the site or repository `text` names to `scope`'s knowledge; a sentence for the admin."""
        try:
            address = web_address(text)
            if address.kind == "site":
                await check_address(address.url, self._settings.allow_private)
        except (ValueError, AddressRefused) as refused:
            return str(refused)
        if len(await self._sources.of_scope(scope)) >= MAX_SOURCES:
            return f"This server has {MAX_SOURCES} web sources already: remove one first."
        source = WebSource(scope, address.url, address.kind, added_by=added_by)
        if not await self._sources.add(source):
            return f"{address.url} is knowledge here already: `/knowledge sync` reads it again now."
        return f"Added {address.url}. " + self._reading(address.kind)

    def _reading(self, kind: str) -> str:
        hours = f"{self._settings.sync_hours:g} hours"
        if kind == "github":
            pace = (
                "With a GitHub token this takes minutes; without one GitHub allows 60 requests an hour, so a "
                "repository with many issues is read over several hours."
                if self._settings.github_token is None
                else "This takes a few minutes for most repositories."
            )
            return f"I'm reading its documentation, issues and discussions now. {pace} It is read again every {hours}."
        pages, seconds = self._settings.max_pages, max(self._settings.request_interval, 0.1)
        return (
            f"I'm reading its pages now, one at a time (at most {pages:,}, about {pages * seconds / 60:,.0f} minutes "
            f"for a site that big), and again every {hours}. `/knowledge list` shows how far I am."
        )

    async def sync(self, scope: str) -> str:
        everywhere = await self._sources.of_scope(DEPLOYMENT_SCOPE) if scope != DEPLOYMENT_SCOPE else []
        if not await self._sources.sync_now(scope):
            return "There's no site or repository in this server's knowledge: add one with `/knowledge add`."
        shared = " (the bot's own sites are read on their schedule)" if everywhere else ""
        return f"Reading this server's sites and repositories again now{shared}: `/knowledge list` shows how far I am."

    async def remove(self, scope: str, knowledge: Knowledge, name: str) -> str | None:
        """Remove the web source `name` names (its address, or its source id) with its passages; None if none."""
        source = await self._named(scope, name)
        if source is None:
            return None
        await self._sources.remove(source)
        removed = await forget_passages(knowledge, source)
        return f"Removed {source.url} from this server's knowledge ({removed:,} passages)."

    async def _named(self, scope: str, name: str) -> WebSource | None:
        sources = await self._sources.of_scope(scope)
        wanted = {name.strip(), name.strip().rstrip("/")}
        try:
            wanted.add(web_address(name).url)
        except ValueError:
            pass
        return next((s for s in sources if s.url in wanted or s.url.rstrip("/") in wanted or s.id in wanted), None)

    async def names(self, scope: str) -> list[str]:
        """The addresses of `scope`'s web sources (/knowledge remove's suggestions)."""
        return [source.url for source in await self._sources.of_scope(scope)]

    async def lines(self, scope: str, shown: Shown) -> list[str]:
        """A line for each web source of `scope` and of the deployment: what was read, and when it is read next."""
        sources = await self._sources.of_scope(scope)
        if scope != DEPLOYMENT_SCOPE:
            sources += await self._sources.of_scope(DEPLOYMENT_SCOPE)
        return [_line(source, await self._sources.status(source), shown) for source in sources]


def _line(source: WebSource, status: SyncStatus, shown: Shown) -> str:
    kind = "GitHub" if source.kind == "github" else "site"
    owner = ", the bot's own (KNOWLEDGE_URLS)" if source.scope == DEPLOYMENT_SCOPE else ""
    head = f"• {shown.bold(shown.escape(source.url))} ({kind}{owner})"
    if status.running:
        so_far = f": {_counts(status.progress)} so far" if status.progress else ""
        return f"{head}: being read now{so_far}"
    if status.report is None:
        return f"{head}: waiting to be read"
    stopped = "" if status.report.complete else "; stopped early, going on " + shown.when(status.due)
    synced = f"read {shown.when(status.finished)}" if status.finished else "not read in full yet"
    next_ = f", next {shown.when(status.due)}" if status.report.complete and status.due > time.time() else ""
    problem = f" (first: {shown.escape(status.report.problems[0])})" if status.report.problems else ""
    return f"{head}: {_counts(status.report)}{problem}; {synced}{next_}{stopped}"


def _counts(report: SyncReport | None) -> str:
    if report is None:
        return ""
    parts = [f"{report.pages:,} read"]
    parts += [f"{count:,} {what}" for count, what in ((report.failed, "failed"), (report.skipped, "skipped")) if count]
    return ", ".join(parts)


async def check_address(url: str, allow_private: tuple[str, ...]) -> None:
    """Refuse at once a site that resolves to no public address (the fetcher checks again on every connection)."""
    allowance = PrivateAllowance.parse(" ".join(allow_private))
    parsed = yarl.URL(url)
    check_url(parsed, allowance)
    host, port = parsed.host or "", parsed.port or 443
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise AddressRefused(f"I couldn't find {host}: check the address.") from None
    addresses = {ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in found}  # fe80::1%eth0
    if not any(is_public(address) or allowance.allows(host, port, address) for address in addresses):
        raise AddressRefused(f"{host} is a private address: I only read public sites.")
