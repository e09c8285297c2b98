"""A GitHub repository as knowledge: the documentation files of its default branch (github_pages), its issues
(github_issues) and, with a token, its discussions (github_discussions), each item a knowledge source of the web
source, read again only when it changed.

GitHub allows 60 requests an hour without a token (GITHUB_TOKEN: 5,000, and GraphQL, which discussions need). A sync
that runs out stops with `complete` False and the next one goes on from there; it never waits for the limit to reset.
A repository that can't be read (private without a token, deleted, renamed away) fails the sync with the reason,
and its knowledge stays until the source is removed.

The API is GitHub's (https://api.github.com), GitHub Enterprise Server's (https://host/api/v3, its GraphQL at
https://host/api/graphql) or a test server's (GraphQL at <api_url>/graphql), as githubkit derives it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from adapters.shared.web_knowledge.github.api import Failed, GitHubApi, OutOfRequests
from adapters.shared.web_knowledge.github.discussions import sync_discussions
from adapters.shared.web_knowledge.github.files import sync_files
from adapters.shared.web_knowledge.github.issues import sync_issues
from adapters.shared.web_knowledge.github.run import Run
from adapters.shared.web_knowledge.sources import PROBLEMS_KEPT, ReadMemory, SyncReport, WebSource, forget_passages
from bot.knowledge.service import Knowledge

GITHUB_HOST = "github.com"
FULL_EVERY = 7  # every this many syncs (a week at the default 24 h), issues and discussions are listed whole: the
# deleted and transferred ones leave then
# The repository's own answer when it is private (to this token, or without one), deleted or unavailable for legal
# reasons: its knowledge follows it out.
GONE = (404, 451)
# A server's admin may add any public repository; a private one the operator's token opens is the operator's to add
# (KNOWLEDGE_URLS): else any server could read the operator's private repositories through the bot.
PRIVATE = (
    "the repository is private: only the bot's operator can make a private repository knowledge (KNOWLEDGE_URLS); "
    "its knowledge was removed"
)
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class GitHubSettings:
    api_url: str = "https://api.github.com"
    token: str | None = None  # GITHUB_TOKEN: 5,000 requests an hour instead of 60, discussions, private repositories
    full_every: int = FULL_EVERY


def parse_repository(text: str, host: str = GITHUB_HOST) -> tuple[str, str] | None:
    """(owner, repository) of "github.com/owner/repo" or "https://github.com/owner/repo(.git)(/…)"; None otherwise.
    `host`: a GitHub Enterprise Server's instead."""
    text = text.strip()
    if "://" not in text:
        text = f"https://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or (parts.hostname or "").removeprefix("www.") != host.removeprefix(
        "www."
    ):
        return None
    segments = [segment for segment in parts.path.split("/") if segment]
    if len(segments) < 2:
        return None
    owner, name = segments[0], segments[1].removesuffix(".git")
    return (owner, name) if _NAME.match(owner) and _NAME.match(name) and name not in (".", "..") else None


Reader = Callable[[WebSource, ReadMemory, Knowledge, float], Awaitable[SyncReport]]


def repository_reader(settings: GitHubSettings) -> Reader:
    """The reader a web sync calls for a "github" source: `reader(source, memory, knowledge, round_started)`."""

    async def read(source: WebSource, memory: ReadMemory, knowledge: Knowledge, round_started: float) -> SyncReport:
        return await sync_repository(source, settings, memory, knowledge, round_started=round_started)

    return read


async def sync_repository(
    source: WebSource, settings: GitHubSettings, memory: ReadMemory, knowledge: Knowledge, *, round_started: float
) -> SyncReport:
    """One sync of `source` ("https://github.com/owner/repo"): what changed since the last one read, what is gone
    removed, what it did reported."""
    report = SyncReport()
    found = parse_repository(source.url, urlsplit(source.url).hostname or GITHUB_HOST)
    if found is None:
        report.failure(source.url, "not a GitHub repository's address (https://github.com/owner/repo)")
        return report
    owner, name = found
    async with GitHubApi(settings.api_url, settings.token) as api:
        try:
            repository = await api.repository(owner, name)
        except Failed as error:
            report.failure(source.url, _unreadable(error, settings.token is not None))
            if error.status in GONE:  # no longer public (or no longer there): what it was leaves with it
                report.removed = await _forget(source, memory, knowledge)
            return report
        except OutOfRequests as error:
            _stopped(report, f"{source.url}: {error}; the next sync goes on", error.reset_at)
            return report
        if repository.private and not source.from_setting:
            report.failure(source.url, PRIVATE)
            report.removed = await _forget(source, memory, knowledge)
            return report
        parts = urlsplit(source.url)
        web_url = f"{parts.scheme}://{parts.netloc}/{owner}/{name}"
        remembered = await memory.items()
        run = Run(
            source, owner, name, web_url, repository.default_branch, api, memory, knowledge, report, remembered,
            round_started, settings.full_every,
        )  # fmt: skip
        await _passes(run, settings.token is not None)
    return report


async def _passes(run: Run, token: bool) -> None:
    """The files, the issues, then the discussions: a pass that fails is reported and the next one still runs; out of
    requests, the sync stops."""
    passes = [("files", sync_files), ("issues", sync_issues)]
    if token:
        passes.append(("discussions", sync_discussions))
    else:
        _noted(run.report, f"{run.web_url}: discussions are read only with a GitHub token (GITHUB_TOKEN)")
    for label, step in passes:
        try:
            await step(run)
        except Failed as error:
            run.report.failure(f"{run.web_url} ({label})", str(error))
        except OutOfRequests as error:
            _stopped(run.report, f"{run.web_url}: {error}; the next sync goes on", error.reset_at)
            return


async def _forget(source: WebSource, memory: ReadMemory, knowledge: Knowledge) -> int:
    """The repository's knowledge removed, and what was read of it: if it is public again, it is read anew."""
    await memory.clear()
    return await forget_passages(knowledge, source)


def _stopped(report: SyncReport, why: str, reset_at: float) -> None:
    report.complete = False
    report.retry_at = reset_at
    _noted(report, why)


def _noted(report: SyncReport, problem: str) -> None:
    if len(report.problems) < PROBLEMS_KEPT:
        report.problems.append(problem)


def _unreadable(error: Failed, token: bool) -> str:
    if error.status in (404, 451) or (error.status == 403 and not token):
        without = "" if token else "; private repositories are read only with a GitHub token (GITHUB_TOKEN)"
        gone = f"the repository can't be read ({error}): private, deleted or renamed{without}"
        return f"{gone}. Its knowledge was removed; it is read again if it becomes public"
    if error.status == 401:
        return f"GitHub refused the token ({error}). The repository's knowledge is kept"
    return f"GitHub couldn't be read ({error}). The repository's knowledge is kept"
