"""Knowledge from the web: a docs site or a GitHub repository added to a server's, workspace's or (KNOWLEDGE_URLS)
everyone's knowledge. What every reader of such a source shares:

- `WebSource`: what was added, and the prefix of its knowledge sources (one a page, file, issue or discussion), so
  that removing it removes them all;
- `SyncReport`: what one sync did, shown by /knowledge list;
- `ReadMemory`: what a source's reader remembers between syncs and across a restart (an ETag, a page's hash, an
  issue's `updated_at`), one Redis hash a source:

  {prefix}knowledge:web:read:{scope}:{source id}    item (a page's URL, "issue:12") → its state as JSON
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

from bot.knowledge.service import Knowledge
from bot.state.redis_client import RedisClient, served

T = TypeVar("T")
Kind = Literal["site", "github"]
SOURCE_PREFIX = "web:"
PROBLEMS_KEPT = 5


@dataclass(frozen=True)
class WebSource:
    scope: str  # "discord:<guild>", "slack:<team>", or DEPLOYMENT_SCOPE for KNOWLEDGE_URLS
    url: str  # a site's start URL ("https://docs.example.com/guide/"), or "https://github.com/owner/repo"
    kind: Kind
    from_setting: bool = False  # KNOWLEDGE_URLS': not removable by a command
    added_by: str = ""  # the platform user who added it ("" from the setting)

    @property
    def id(self) -> str:
        return hashlib.sha256(f"{self.scope}\0{self.url}".encode()).hexdigest()[:16]

    @property
    def source_prefix(self) -> str:
        """Every knowledge source of this web source starts with it: "web:<id>:"."""
        return f"{SOURCE_PREFIX}{self.id}:"

    def item_source(self, item: str) -> str:
        """The knowledge source of one of its items (a page's URL, "issue:12"): one per item, replaced as a whole."""
        return self.source_prefix + hashlib.sha256(item.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | bytes) -> WebSource:
        data: dict[str, Any] = json.loads(raw)
        kind: Kind = "github" if data.get("kind") == "github" else "site"
        return cls(
            str(data["scope"]), str(data["url"]), kind, bool(data.get("from_setting")), str(data.get("added_by", ""))
        )


@dataclass
class SyncReport:
    """What a sync of one web source did, item by item (a page, a file, an issue, a discussion)."""

    read: int = 0  # new or changed: its text (re)read and stored
    unchanged: int = 0  # not modified (304, the same SHA or updated_at, the same text)
    failed: int = 0  # couldn't be read this time (kept as it was)
    skipped: int = 0  # not read on purpose: robots.txt, not HTML, past KNOWLEDGE_MAX_PAGES, off the site
    removed: int = 0  # gone (404/410, out of the sitemap, deleted): left the knowledge
    problems: list[str] = field(default_factory=list)  # the first few failures, "url: reason"
    complete: bool = True  # False: stopped early (a rate limit, a shutdown); the next sync goes on from there
    retry_at: float = 0.0  # stopped by a rate limit: not before this (unix seconds; 0: the usual retry)

    def failure(self, where: str, reason: str) -> None:
        self.failed += 1
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append(f"{where}: {reason}")

    @property
    def pages(self) -> int:
        """Items the knowledge holds after this sync."""
        return self.read + self.unchanged

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | bytes) -> SyncReport:
        data: dict[str, Any] = json.loads(raw)
        counts = {name: int(data.get(name, 0)) for name in ("read", "unchanged", "failed", "skipped", "removed")}
        problems = [str(problem) for problem in data.get("problems", [])]
        retry_at = float(data.get("retry_at", 0.0))
        return cls(**counts, problems=problems, complete=bool(data.get("complete")), retry_at=retry_at)


class ReadMemory:
    """What one web source's reader remembers of each item between syncs (and across a restart: a sync stopped
    halfway goes on where it was)."""

    def __init__(self, redis: RedisClient, key_prefix: str, source: WebSource) -> None:
        self._redis = redis
        self._key = f"{key_prefix}knowledge:web:read:{source.scope}:{source.id}"

    async def get(self, item: str) -> dict[str, Any] | None:
        raw = await self._run(self._redis.hget(self._key, item))
        return None if raw is None else dict(json.loads(raw))

    async def put(self, item: str, state: dict[str, Any]) -> None:
        await self._run(self._redis.hset(self._key, item, json.dumps(state, ensure_ascii=False)))

    async def remove(self, item: str) -> None:
        await self._run(self._redis.hdel(self._key, item))

    async def items(self) -> dict[str, dict[str, Any]]:
        """Every item remembered, with its state (bounded by KNOWLEDGE_MAX_PAGES for a site)."""
        found = await self._run(self._redis.hgetall(self._key))
        return {_text(item): dict(json.loads(raw)) for item, raw in found.items()}

    async def clear(self) -> None:
        await self._run(self._redis.delete(self._key))

    async def _run(self, command: Awaitable[T]) -> T:
        return await served(command, "knowledge_web_store_error")


async def forget_passages(knowledge: Knowledge, source: WebSource) -> int:
    """Every passage of `source`'s pages, files, issues and discussions removed; how many."""
    removed = 0
    for info in await knowledge.sources(source.scope):
        if info.source.startswith(source.source_prefix):
            removed += await knowledge.forget_source(source.scope, info.source)
    return removed


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
