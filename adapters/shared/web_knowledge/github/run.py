"""One sync of a GitHub repository: what its passes (documentation files, issues, discussions) share, and how an item
(a file, an issue, a discussion) is stored, kept or removed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.shared.web_knowledge.github.api import GitHubApi
from adapters.shared.web_knowledge.sources import ReadMemory, SyncReport, WebSource
from bot.knowledge.passages import Passage
from bot.knowledge.service import Knowledge

SKEW_SECONDS = 120  # an incremental listing starts this long before the last one did: clocks differ


@dataclass
class Run:
    source: WebSource
    owner: str
    name: str
    web_url: str  # the repository's page: "https://github.com/owner/repo" (GitHub Enterprise: its host)
    branch: str
    api: GitHubApi
    memory: ReadMemory
    knowledge: Knowledge
    report: SyncReport
    remembered: dict[str, dict[str, Any]]  # the memory's items as this sync started
    started: float  # unix seconds: the next incremental listing starts there
    full_every: int

    @property
    def label(self) -> str:
        return f"{self.owner}/{self.name}"

    def remembered_under(self, prefix: str) -> dict[str, dict[str, Any]]:
        """The remembered items whose name starts with `prefix`, by the rest of it ("file:" → paths)."""
        return {item.removeprefix(prefix): state for item, state in self.remembered.items() if item.startswith(prefix)}

    def pass_state(self, name: str) -> tuple[datetime | None, int, bool]:
        """Where an incremental pass (issues, discussions) starts: since when (None: never done), how many incremental
        passes ran since the last full one, and whether this one is full (listing all, to see what was deleted)."""
        state = self.remembered.get(name, {})
        since, partial = state.get("since"), int(state.get("partial", 0))
        full = since is None or partial + 1 >= self.full_every
        start = None if since is None else datetime.fromtimestamp(float(since) - SKEW_SECONDS, tz=UTC)
        return start, partial, full

    async def pass_done(self, name: str, partial: int, full: bool) -> None:
        await self.memory.put(name, {"since": self.started, "partial": 0 if full else partial + 1})

    async def store(self, item: str, passages: list[Passage], state: dict[str, Any]) -> None:
        """The item's passages stored in place of its old ones, unless their text is the same (no embedding then)."""
        digest = _digest(passages)
        if self.remembered.get(item, {}).get("digest") == digest:
            self.report.unchanged += 1
        else:
            await self.knowledge.replace_source(self.source.scope, self.source.item_source(item), passages)
            self.report.read += 1
        await self.memory.put(item, {**state, "digest": digest})

    async def forget(self, item: str) -> None:
        await self.knowledge.forget_source(self.source.scope, self.source.item_source(item))
        await self.memory.remove(item)
        self.report.removed += 1

    def passage(self, item: str, number: int, text: str, title: str, url: str, updated_at: str) -> Passage:
        source = self.source.item_source(item)
        when = datetime.fromisoformat(updated_at.replace("Z", "+00:00")).timestamp()
        return Passage(self.source.scope, source, f"{source}#{number}", text, title, url=url, updated_at=when)


def _digest(passages: list[Passage]) -> str:
    found = hashlib.sha256()
    for passage in passages:
        for part in (passage.text, passage.title, passage.locator, passage.url):
            found.update(part.encode())
            found.update(b"\0")
    return found.hexdigest()[:32]
