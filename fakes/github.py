"""Loopback fake of GitHub's REST and GraphQL APIs, as much as a repository's reader (adapters.shared.web_knowledge
.github) asks: a repository, its tree and blobs, its issues and their comments, its discussions.

Served at ``/`` (GraphQL at ``/graphql``, as api.github.com) and at ``/api/v3`` (GraphQL at ``/api/graphql``, as
GitHub Enterprise Server). Rate limits as GitHub's: every answer carries ``x-ratelimit-limit``, ``-remaining``,
``-reset``, ``-used`` and ``-resource`` (``core``, ``graphql``); 60 requests an hour without a token, 5,000 with one
of `tokens`; past it 403 with GitHub's message. `secondary_once(seconds)` answers the next request with a secondary
limit's 403 and ``retry-after``. GraphQL without a token: 401, as GitHub. A private repository: 404 without a token.

`requests` records each request's method, path and whether it had a token; the test hooks (`edit_issue`,
`edit_comment`, `delete_issue`, `set_file`, `remove_file`, `make_private`, `reset_limits`, `use_up`) change what it
serves.

    async with FakeGitHub() as github:
        github.repositories["acme/widgets"] = sample_repository()  # fakes.github_data
        settings = GitHubSettings(api_url=github.api_url)
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from aiohttp import web

from fakes.github_data import (
    FakeRepository,
    blob_json,
    comment_json,
    discussion_json,
    issue_json,
    repository_json,
    tree_json,
)

UNAUTHENTICATED_LIMIT = 60
TOKEN_LIMIT = 5_000
WINDOW_SECONDS = 3600
DOCS = "https://docs.github.com/rest"
RATE_LIMITED = (
    "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated requests get a higher rate limit. "
    "Check out the documentation for more details.)"
)
SECONDARY = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class GitHubRequest:
    method: str
    path: str
    token: bool


@dataclass
class _Window:
    limit: int
    used: int = 0
    reset: int = 0


class FakeGitHub:
    def __init__(self, tokens: frozenset[str] = frozenset({"test-token"})) -> None:
        self.tokens = tokens
        self.repositories: dict[str, FakeRepository] = {}
        self.requests: list[GitHubRequest] = []
        self._windows: dict[tuple[str, str], _Window] = {}
        self._secondary: int | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def enterprise_url(self) -> str:
        return f"{self.api_url}/api/v3"

    async def __aenter__(self) -> FakeGitHub:
        app = web.Application(middlewares=[self._limited])
        for prefix in ("", "/api/v3"):
            base = f"{prefix}/repos/{{owner}}/{{name}}"
            app.router.add_get(base, self._repository)
            app.router.add_get(f"{base}/git/trees/{{sha}}", self._tree)
            app.router.add_get(f"{base}/git/blobs/{{sha}}", self._blob)
            app.router.add_get(f"{base}/issues", self._issues)
            app.router.add_get(f"{base}/issues/comments", self._repository_comments)
            app.router.add_get(f"{base}/issues/{{number:\\d+}}", self._issue)
            app.router.add_get(f"{base}/issues/{{number:\\d+}}/comments", self._comments)
        app.router.add_post("/graphql", self._graphql)
        app.router.add_post("/api/graphql", self._graphql)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # Test hooks.
    def count(self) -> int:
        return len(self.requests)

    def edit_issue(self, repository: str, number: int, body: str) -> None:
        issue = self.repositories[repository].issues[number]
        issue.body, issue.updated_at = body, time.time()

    def edit_comment(self, repository: str, number: int, index: int, body: str) -> None:
        """A comment edited: its `updated_at` moves, its issue's doesn't (as GitHub)."""
        comment = self.repositories[repository].issues[number].comments[index]
        comment.body, comment.updated_at = body, time.time()

    def delete_issue(self, repository: str, number: int) -> None:
        self.repositories[repository].issues[number].deleted = True

    def set_file(self, repository: str, path: str, text: str) -> None:
        self.repositories[repository].files[path] = text.encode()

    def remove_file(self, repository: str, path: str) -> None:
        del self.repositories[repository].files[path]

    def make_private(self, repository: str, private: bool = True) -> None:
        self.repositories[repository].private = private

    def reset_limits(self) -> None:
        """The rate limits' hour is over."""
        self._windows.clear()

    def use_up(self, left: int = 0, token: str | None = None) -> None:
        """The current hour's requests (without a token, or `token`'s) spent but `left`."""
        window = self._window(token, "core")
        window.used = window.limit - left

    def secondary_once(self, retry_after: int = 1) -> None:
        self._secondary = retry_after

    # The rate limits, around every route.
    @web.middleware
    async def _limited(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        token = _token(request)
        self.requests.append(GitHubRequest(request.method, request.path, token is not None))
        if token is not None and token not in self.tokens:
            return web.json_response({"message": "Bad credentials", "documentation_url": DOCS}, status=401)
        resource = "graphql" if request.path.endswith("graphql") else "core"
        if resource == "graphql" and token is None:
            message = "This endpoint requires you to be authenticated."
            return web.json_response({"message": message, "documentation_url": DOCS}, status=401)
        window = self._window(token, resource)
        if self._secondary is not None:
            response = web.json_response({"message": SECONDARY, "documentation_url": DOCS}, status=403)
            response.headers["retry-after"] = str(self._secondary)
            self._secondary = None
            return self._headed(response, window, resource)
        if window.used >= window.limit:
            body = {"message": RATE_LIMITED, "documentation_url": DOCS}
            return self._headed(web.json_response(body, status=403), window, resource)
        window.used += 1
        return self._headed(await handler(request), window, resource)

    def _window(self, token: str | None, resource: str) -> _Window:
        key = (token or "", resource)
        window = self._windows.get(key)
        if window is None or window.reset <= time.time():
            limit = TOKEN_LIMIT if token else UNAUTHENTICATED_LIMIT
            window = self._windows[key] = _Window(limit, reset=int(time.time()) + WINDOW_SECONDS)
        return window

    @staticmethod
    def _headed(response: web.StreamResponse, window: _Window, resource: str) -> web.StreamResponse:
        response.headers["x-ratelimit-limit"] = str(window.limit)
        response.headers["x-ratelimit-remaining"] = str(max(window.limit - window.used, 0))
        response.headers["x-ratelimit-reset"] = str(window.reset)
        response.headers["x-ratelimit-used"] = str(window.used)
        response.headers["x-ratelimit-resource"] = resource
        return response

    # REST.
    def _repo(self, request: web.Request) -> FakeRepository:
        repo = self.repositories.get(f"{request.match_info['owner']}/{request.match_info['name']}")
        if repo is None or (repo.private and _token(request) is None):
            raise web.HTTPNotFound(
                text=json.dumps({"message": "Not Found", "documentation_url": DOCS}), content_type="application/json"
            )
        return repo

    def _api(self, request: web.Request) -> str:
        return self.enterprise_url if request.path.startswith("/api/v3/") else self.api_url

    async def _repository(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(repository_json(self._repo(request), self._api(request)))

    async def _tree(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(tree_json(self._repo(request), self._api(request)))

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        repo = self._repo(request)
        data = repo.blob(request.match_info["sha"])
        if data is None:
            return web.json_response({"message": "Not Found", "documentation_url": DOCS}, status=404)
        return web.json_response(blob_json(repo, self._api(request), data))

    async def _issues(self, request: web.Request) -> web.StreamResponse:
        repo, since = self._repo(request), _since(request)
        found = [i for i in repo.issues.values() if not i.deleted and i.updated_at >= since]
        found.sort(key=lambda issue: -issue.updated_at)
        return web.json_response([issue_json(repo, issue, self._api(request)) for issue in _page(request, found)])

    async def _issue(self, request: web.Request) -> web.StreamResponse:
        repo = self._repo(request)
        issue = repo.issues.get(int(request.match_info["number"]))
        if issue is None:
            return web.json_response({"message": "Not Found", "documentation_url": DOCS}, status=404)
        if issue.deleted:
            return web.json_response({"message": "This issue was deleted", "documentation_url": DOCS}, status=410)
        return web.json_response(issue_json(repo, issue, self._api(request)))

    async def _comments(self, request: web.Request) -> web.StreamResponse:
        repo = self._repo(request)
        issue = repo.issues.get(int(request.match_info["number"]))
        if issue is None or issue.deleted:
            return web.json_response({"message": "Not Found", "documentation_url": DOCS}, status=404)
        said = [comment_json(repo, issue, comment, self._api(request)) for comment in issue.comments]
        return web.json_response(_page(request, said))

    async def _repository_comments(self, request: web.Request) -> web.StreamResponse:
        repo, since = self._repo(request), _since(request)
        said = [
            comment_json(repo, issue, comment, self._api(request))
            for issue in repo.issues.values()
            if not issue.deleted
            for comment in issue.comments
            if comment.updated_at >= since
        ]
        return web.json_response(_page(request, said))

    # GraphQL: the discussions query the reader sends.
    async def _graphql(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        variables = body.get("variables") or {}
        repo = self.repositories.get(f"{variables.get('owner')}/{variables.get('name')}")
        if repo is None or "discussions" not in body.get("query", ""):
            message = (
                f"Could not resolve to a Repository with the name '{variables.get('owner')}/{variables.get('name')}'."
            )
            error = {"type": "NOT_FOUND", "path": ["repository"], "locations": [], "message": message}
            return web.json_response({"data": {"repository": None}, "errors": [error]})
        size = int(m.group(1)) if (m := re.search(r"discussions\(first: (\d+)", body["query"])) else 50
        ordered = sorted(repo.discussions.values(), key=lambda discussion: -discussion.updated_at)
        start = int(variables.get("after") or 0)
        nodes = [discussion_json(repo, discussion) for discussion in ordered[start : start + size]]
        more = start + size < len(ordered)
        info = {"hasNextPage": more, "endCursor": str(start + size) if more else None}
        return web.json_response({"data": {"repository": {"discussions": {"pageInfo": info, "nodes": nodes}}}})


def _token(request: web.Request) -> str | None:
    found = request.headers.get("Authorization", "")
    scheme, _, value = found.partition(" ")
    return value.strip() if scheme.lower() in ("token", "bearer") and value.strip() else None


def _since(request: web.Request) -> float:
    found = request.query.get("since")
    return datetime.fromisoformat(found.replace("Z", "+00:00")).timestamp() if found else 0.0


def _page(request: web.Request, items: list[Any]) -> list[Any]:
    per_page = min(int(request.query.get("per_page", "30")), 100)
    page = int(request.query.get("page", "1"))
    return items[(page - 1) * per_page : page * per_page]
