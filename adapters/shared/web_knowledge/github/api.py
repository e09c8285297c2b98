"""GitHub's REST and GraphQL APIs as a repository's reader needs them, through githubkit, within the rate limits.

githubkit (and its 56 MB of generated models) is imported only when a client is opened: a bot that syncs no GitHub
repository never loads it. What it answers is turned into the few plain fields the reader uses.

Rate limits: every response's `x-ratelimit-remaining` and `x-ratelimit-reset` are noted per resource (`core` for
REST, `graphql`), and a request is not sent once its resource has none left: `OutOfRequests`, the sync stops and the
next one goes on. A primary limit exceeded is never waited for (an hour, unauthenticated); a secondary one (403/429
with `retry-after`) is waited for once if it asks at most SECONDARY_WAIT_SECONDS, else it stops the sync too."""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import httpx
    from githubkit import GitHub, Response
    from githubkit.exception import GitHubException
    from githubkit.retry import RetryOption

T = TypeVar("T")
PAGE = 100  # items a REST list page asks for (GitHub's maximum)
SECONDARY_WAIT_SECONDS = 60  # a secondary limit's `retry-after` waited for, once; a longer one stops the sync
SERVER_ERROR_RETRIES = 2
TIMEOUT_SECONDS = 30.0


class _Timestamp(datetime):
    """A query's `since` as GitHub documents it, "YYYY-MM-DDTHH:MM:SSZ" (httpx would send str(datetime): a space,
    microseconds and "+00:00")."""

    def __str__(self) -> str:
        return self.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _since(when: datetime) -> datetime:
    return _Timestamp.fromtimestamp(when.timestamp(), tz=UTC)


class OutOfRequests(Exception):
    """GitHub's rate limit leaves no request for now: the sync stops, the next one goes on."""

    def __init__(self, reset_at: float) -> None:
        super().__init__(f"GitHub's rate limit is reached until {time.strftime('%H:%M UTC', time.gmtime(reset_at))}")
        self.reset_at = reset_at


class Failed(Exception):
    """GitHub answered with an error (`status`) or could not be reached (`status` 0)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Repository:
    default_branch: str
    private: bool


@dataclass(frozen=True)
class TreeFile:
    path: str
    sha: str
    size: int


@dataclass(frozen=True)
class Tree:
    sha: str
    files: list[TreeFile]
    truncated: bool


@dataclass(frozen=True)
class Comment:
    url: str  # its html_url: "…/issues/12#issuecomment-…"
    author: str
    body: str
    updated_at: str  # ISO 8601, as GitHub gives it
    issue_number: int


@dataclass(frozen=True)
class Issue:
    number: int
    title: str
    body: str
    url: str  # its html_url
    state: str
    author: str
    updated_at: str
    comments: int  # how many it has
    pull_request: bool
    repository_url: str  # the API URL of the repository it is in now (a transferred issue's differs)


class GitHubApi:
    """One sync's client: `async with GitHubApi(api_url, token) as api`. `requests` counts what was sent."""

    def __init__(self, api_url: str, token: str | None) -> None:
        from githubkit import GitHub

        self.requests = 0
        self._limits: dict[str, tuple[int, float]] = {}  # resource → (remaining, reset at, unix seconds)
        hooks = {"request": [self._counted], "response": [self._noted]}
        options: dict[str, Any] = {
            "base_url": api_url,
            "auto_retry": _retry,
            "http_cache": False,  # what is unchanged is known from the memory: no cache held in memory
            "async_event_hooks": hooks,
            "timeout": TIMEOUT_SECONDS,
        }
        self._github: GitHub[Any] = GitHub(token, **options) if token else GitHub(**options)
        self._open = AsyncExitStack()

    async def __aenter__(self) -> GitHubApi:
        await self._open.enter_async_context(self._github)  # one connection pool for the sync
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self._open.aclose()

    async def repository(self, owner: str, name: str) -> Repository:
        found = await self._rest(lambda: self._github.rest.repos.async_get(owner, name))
        return Repository(found.default_branch, found.private)

    async def tree(self, owner: str, name: str, branch: str) -> Tree:
        found = await self._rest(lambda: self._github.rest.git.async_get_tree(owner, name, branch, recursive="1"))
        files = [TreeFile(item.path, item.sha, item.size or 0) for item in found.tree if item.type == "blob"]
        return Tree(found.sha, files, found.truncated)

    async def blob(self, owner: str, name: str, sha: str) -> bytes:
        found = await self._rest(lambda: self._github.rest.git.async_get_blob(owner, name, sha))
        return base64.b64decode(found.content) if found.encoding == "base64" else str(found.content).encode()

    async def issues(self, owner: str, name: str, page: int, since: datetime | None) -> list[Issue]:
        """A page of the repository's issues and pull requests, open and closed, updated since `since` (None: all)."""
        kwargs: dict[str, Any] = {"state": "all", "sort": "updated", "direction": "desc", "per_page": PAGE}
        if since is not None:
            kwargs["since"] = _since(since)
        issues = self._github.rest.issues
        return [
            _issue(found)
            for found in await self._rest(lambda: issues.async_list_for_repo(owner, name, page=page, **kwargs))
        ]

    async def issue(self, owner: str, name: str, number: int) -> Issue:
        return _issue(await self._rest(lambda: self._github.rest.issues.async_get(owner, name, number)))

    async def comments(self, owner: str, name: str, number: int, page: int) -> list[Comment]:
        issues = self._github.rest.issues
        listed = await self._rest(lambda: issues.async_list_comments(owner, name, number, page=page, per_page=PAGE))
        return [_comment(found) for found in listed]

    async def comments_since(self, owner: str, name: str, since: datetime, page: int) -> list[Comment]:
        """A page of the comments on the repository's issues and pull requests created or edited since `since`."""
        issues, after = self._github.rest.issues, _since(since)
        call = lambda: issues.async_list_comments_for_repo(owner, name, since=after, page=page, per_page=PAGE)  # noqa: E731
        return [_comment(found) for found in await self._rest(call)]

    async def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        return await self._call("graphql", lambda: self._github.async_graphql(query, variables))

    async def _rest(self, call: Callable[[], Awaitable[Response[Any]]]) -> Any:
        """A REST call's answer, validated by githubkit's model (inside `_call`, whose errors it may raise)."""

        async def parsed() -> Any:
            return (await call()).parsed_data

        return await self._call("core", parsed)

    async def _call(self, resource: str, call: Callable[[], Awaitable[T]]) -> T:
        from githubkit.exception import GraphQLFailed, RateLimitExceeded, RequestError, RequestFailed, RequestTimeout
        from pydantic import ValidationError

        remaining, reset_at = self._limits.get(resource, (1, 0.0))
        if remaining <= 0 and reset_at > time.time():
            raise OutOfRequests(reset_at)
        try:
            return await call()
        except RateLimitExceeded as error:
            raise OutOfRequests(time.time() + error.retry_after.total_seconds()) from error
        except RequestFailed as error:
            raise Failed(error.response.status_code, _message(error.response.raw_response)) from error
        except GraphQLFailed as error:
            raise Failed(200, "; ".join(found.message for found in error.response.errors or [])) from error
        except RequestTimeout as error:
            raise Failed(0, "GitHub did not answer in time") from error
        except RequestError as error:
            raise Failed(0, f"GitHub could not be reached: {error.exc!r}") from error
        except ValidationError as error:  # an answer githubkit's models don't describe
            raise Failed(200, f"GitHub's answer wasn't understood: {error.error_count()} unexpected fields") from error

    async def _counted(self, request: httpx.Request) -> None:
        self.requests += 1

    async def _noted(self, response: httpx.Response) -> None:
        headers = response.headers
        if "x-ratelimit-remaining" in headers and "x-ratelimit-reset" in headers:
            resource = headers.get("x-ratelimit-resource", "core")
            self._limits[resource] = (int(headers["x-ratelimit-remaining"]), float(headers["x-ratelimit-reset"]))


def _retry(error: GitHubException, count: int) -> RetryOption:
    """Wait out a short secondary limit once, retry a server error twice; never wait for the primary limit."""
    from githubkit.exception import RequestFailed, SecondaryRateLimitExceeded
    from githubkit.retry import RetryOption

    if isinstance(error, SecondaryRateLimitExceeded):
        return RetryOption(
            count < 1 and error.retry_after <= timedelta(seconds=SECONDARY_WAIT_SECONDS), error.retry_after
        )
    if isinstance(error, RequestFailed) and error.response.status_code >= 500 and count < SERVER_ERROR_RETRIES:
        return RetryOption(True, timedelta(seconds=count + 1))
    return RetryOption(False)


def _message(response: httpx.Response) -> str:
    try:
        found = response.json()
    except ValueError:
        found = None
    message = found.get("message") if isinstance(found, dict) else None
    return f"HTTP {response.status_code}: {message or response.reason_phrase}"


def _issue(found: Any) -> Issue:
    return Issue(
        found.number,
        found.title,
        found.body or "",
        found.html_url,
        found.state,
        found.user.login if found.user else "",
        found.updated_at.isoformat(),
        found.comments,
        bool(found.pull_request),
        found.repository_url,
    )


def _comment(found: Any) -> Comment:
    number = int(found.issue_url.rstrip("/").rsplit("/", 1)[-1])
    author = found.user.login if found.user else ""
    return Comment(found.html_url, author, found.body or "", found.updated_at.isoformat(), number)
