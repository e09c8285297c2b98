"""What the fake GitHub (fakes.github) holds, a repository's files, issues and discussions, and the JSON shapes of
GitHub's REST API for them, with the fields githubkit's models require."""

from __future__ import annotations

import base64
import hashlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

WEB = "https://github.com"
_ids = itertools.count(1000)
_REPO_URLS = [
    "archive",
    "assignees",
    "blobs",
    "branches",
    "collaborators",
    "comments",
    "commits",
    "compare",
    "contents",
    "contributors",
    "deployments",
    "downloads",
    "events",
    "forks",
    "git_commits",
    "git_refs",
    "git_tags",
    "issue_comment",
    "issue_events",
    "issues",
    "keys",
    "labels",
    "languages",
    "merges",
    "milestones",
    "notifications",
    "pulls",
    "releases",
    "stargazers",
    "statuses",
    "subscribers",
    "subscription",
    "tags",
    "teams",
    "trees",
    "hooks",
]


def iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def sha_of(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's blob id


@dataclass
class FakeComment:
    author: str
    body: str
    updated_at: float
    id: int = field(default_factory=lambda: next(_ids))


@dataclass
class FakeIssue:
    number: int
    title: str
    body: str
    author: str
    updated_at: float
    state: str = "open"
    pull_request: bool = False
    comments: list[FakeComment] = field(default_factory=list)
    deleted: bool = False
    id: int = field(default_factory=lambda: next(_ids))


@dataclass
class FakeDiscussion:
    number: int
    title: str
    body: str
    author: str
    updated_at: float
    comments: list[FakeComment] = field(default_factory=list)
    answer: int | None = None  # the id of the accepted comment


@dataclass
class FakeRepository:
    owner: str
    name: str
    files: dict[str, bytes] = field(default_factory=dict)
    issues: dict[int, FakeIssue] = field(default_factory=dict)
    discussions: dict[int, FakeDiscussion] = field(default_factory=dict)
    private: bool = False
    default_branch: str = "main"
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def web_url(self) -> str:
        return f"{WEB}/{self.owner}/{self.name}"

    def tree_sha(self) -> str:
        listed = "".join(f"{path}\0{sha_of(data)}\n" for path, data in sorted(self.files.items()))
        return hashlib.sha1(listed.encode()).hexdigest()  # an id, as git's

    def blob(self, sha: str) -> bytes | None:
        return next((data for data in self.files.values() if sha_of(data) == sha), None)


def user(login: str, api: str) -> dict[str, Any]:
    base = f"{api}/users/{login}"
    urls = {f"{name}_url": f"{base}/{name}" for name in ("followers", "following", "gists", "starred")}
    urls |= {f"{name}_url": f"{base}/{name}" for name in ("subscriptions", "organizations", "repos", "events")}
    return {
        "login": login, "id": abs(hash(login)) % 10**8, "node_id": f"U_{login}", "avatar_url": f"{WEB}/{login}.png",
        "gravatar_id": "", "url": base, "html_url": f"{WEB}/{login}", "received_events_url": f"{base}/received_events",
        "type": "User", "site_admin": False, **urls,
    }  # fmt: skip


def repository_json(repo: FakeRepository, api: str) -> dict[str, Any]:
    base = f"{api}/repos/{repo.owner}/{repo.name}"
    found: dict[str, Any] = {f"{name}_url": f"{base}/{name}" for name in _REPO_URLS}
    created = iso(1_700_000_000)
    counts = dict.fromkeys(("forks_count", "stargazers_count", "watchers_count", "size", "open_issues_count"), 0)
    counts |= dict.fromkeys(("subscribers_count", "network_count", "forks", "open_issues", "watchers"), 0)
    flags = dict.fromkeys(("fork", "has_projects", "has_wiki", "has_pages", "archived", "disabled"), False)
    return found | counts | flags | {
        "id": repo.id, "node_id": f"R_{repo.id}", "name": repo.name, "full_name": f"{repo.owner}/{repo.name}",
        "owner": user(repo.owner, api), "private": repo.private, "html_url": repo.web_url, "description": None,
        "url": base, "git_url": f"git://github.com/{repo.owner}/{repo.name}.git", "ssh_url": "git@github.com:x.git",
        "clone_url": f"{repo.web_url}.git", "svn_url": repo.web_url, "mirror_url": None, "homepage": None,
        "language": "Python", "default_branch": repo.default_branch, "has_issues": True, "has_discussions": True,
        "pushed_at": created, "created_at": created, "updated_at": created, "license": None,
        "visibility": "private" if repo.private else "public",
    }  # fmt: skip


def tree_json(repo: FakeRepository, api: str) -> dict[str, Any]:
    base = f"{api}/repos/{repo.owner}/{repo.name}/git"
    entries = [
        {"path": path, "mode": "100644", "type": "blob", "sha": sha_of(data), "size": len(data),
         "url": f"{base}/blobs/{sha_of(data)}"}
        for path, data in sorted(repo.files.items())
    ]  # fmt: skip
    folders = sorted({path.rsplit("/", 1)[0] for path in repo.files if "/" in path})
    entries += [{"path": name, "mode": "040000", "type": "tree", "sha": "0" * 40} for name in folders]
    return {"sha": repo.tree_sha(), "url": f"{base}/trees/{repo.tree_sha()}", "truncated": False, "tree": entries}


def blob_json(repo: FakeRepository, api: str, data: bytes) -> dict[str, Any]:
    sha = sha_of(data)
    return {
        "sha": sha, "node_id": f"B_{sha[:8]}", "size": len(data), "encoding": "base64",
        "url": f"{api}/repos/{repo.owner}/{repo.name}/git/blobs/{sha}",
        "content": base64.encodebytes(data).decode(),  # GitHub's: wrapped at 60 characters
    }  # fmt: skip


def issue_json(repo: FakeRepository, issue: FakeIssue, api: str) -> dict[str, Any]:
    base = f"{api}/repos/{repo.owner}/{repo.name}"
    kind = "pull" if issue.pull_request else "issues"
    found: dict[str, Any] = {
        "id": issue.id, "node_id": f"I_{issue.id}", "url": f"{base}/issues/{issue.number}", "repository_url": base,
        "labels_url": f"{base}/issues/{issue.number}/labels{{/name}}",
        "comments_url": f"{base}/issues/{issue.number}/comments", "events_url": f"{base}/issues/{issue.number}/events",
        "html_url": f"{repo.web_url}/{kind}/{issue.number}", "number": issue.number, "state": issue.state,
        "title": issue.title, "body": issue.body, "user": user(issue.author, api), "labels": [], "milestone": None,
        "locked": False, "comments": len(issue.comments), "author_association": "NONE",
        "closed_at": iso(issue.updated_at) if issue.state == "closed" else None,
        "created_at": iso(issue.updated_at - 3600), "updated_at": iso(issue.updated_at),
    }  # fmt: skip
    if issue.pull_request:
        pull = f"{repo.web_url}/pull/{issue.number}"
        found["pull_request"] = {
            "url": f"{base}/pulls/{issue.number}", "html_url": pull, "diff_url": f"{pull}.diff",
            "patch_url": f"{pull}.patch", "merged_at": None,
        }  # fmt: skip
    return found


def comment_json(repo: FakeRepository, issue: FakeIssue, comment: FakeComment, api: str) -> dict[str, Any]:
    base = f"{api}/repos/{repo.owner}/{repo.name}"
    kind = "pull" if issue.pull_request else "issues"
    return {
        "id": comment.id, "node_id": f"IC_{comment.id}", "url": f"{base}/issues/comments/{comment.id}",
        "html_url": f"{repo.web_url}/{kind}/{issue.number}#issuecomment-{comment.id}", "body": comment.body,
        "user": user(comment.author, api), "created_at": iso(comment.updated_at - 60),
        "updated_at": iso(comment.updated_at), "issue_url": f"{base}/issues/{issue.number}",
        "author_association": "NONE",
    }  # fmt: skip


def discussion_json(repo: FakeRepository, discussion: FakeDiscussion) -> dict[str, Any]:
    url = f"{repo.web_url}/discussions/{discussion.number}"

    def said(comment: FakeComment) -> dict[str, Any]:
        when = iso(comment.updated_at)
        return {"url": f"{url}#discussioncomment-{comment.id}", "body": comment.body, "updatedAt": when,
                "author": {"login": comment.author}}  # fmt: skip

    answer = next((said(c) for c in discussion.comments if c.id == discussion.answer), None)
    return {
        "number": discussion.number, "title": discussion.title, "url": url, "body": discussion.body,
        "updatedAt": iso(discussion.updated_at), "author": {"login": discussion.author}, "answer": answer,
        "comments": {"nodes": [said(comment) for comment in discussion.comments]},
    }  # fmt: skip


def sample_repository(owner: str = "acme", name: str = "widgets") -> FakeRepository:
    """A repository with a README, docs in Markdown and reStructuredText, issues (one with comments, one closed),
    a pull request, and a discussion with an accepted answer."""
    past = time.time() - 30 * 86400
    repo = FakeRepository(owner, name)
    repo.files = {
        "README.md": README.encode(),
        "docs/setup.md": SETUP.encode(),
        "docs/reference.rst": REFERENCE.encode(),
        "LICENSE": b"MIT License",
        "src/widgets.py": b"print('widgets')\n",
    }
    crash = FakeIssue(
        1,
        "Dashboard crashes on an empty data source",
        "Opening a dashboard whose data source has no rows raises ZeroDivisionError in the averages panel.",
        "maria",
        past,
    )
    crash.comments = [
        FakeComment("tom", "Reproduced on 2.3: the averages panel divides by the row count.", past),
        FakeComment("maria", "A workaround until the fix ships: hide the averages panel for empty sources.", past),
    ]
    theme = FakeIssue(2, "Dark theme draws white tooltips", "Tooltips stay white in the dark theme.", "li", past)
    theme.state = "closed"
    pull = FakeIssue(3, "Add CSV export of the zeppelin telemetry", "Exports every zeppelin panel as CSV.", "sam", past)
    pull.pull_request = True
    pull.comments = [FakeComment("tom", "The zeppelin export looks good to me.", past)]
    repo.issues = {issue.number: issue for issue in (crash, theme, pull)}
    asked = FakeDiscussion(
        4,
        "How do I change the refresh interval?",
        "The dashboard refreshes every five minutes; I need it faster for the control room.",
        "ana",
        past,
    )
    refresh = "Set WIDGETS_REFRESH_SECONDS=30 in the server's environment and restart it: it then refreshes every 30 s."
    asked.comments = [FakeComment("tom", "Maybe the settings page has it?", past), FakeComment("maria", refresh, past)]
    asked.answer = asked.comments[1].id
    repo.discussions = {asked.number: asked}
    return repo


README = """# Widgets

Widgets draws dashboards from SQL data sources.

## Installation

Install Widgets with `pip install acme-widgets`, then start the dashboard server with `widgets serve --port 8600`.

## Getting started

Open http://localhost:8600 and add a data source from the sidebar.
"""
SETUP = """# Setting up Widgets

## Data sources

Widgets reads PostgreSQL and MySQL. Give each data source a read-only user.

## Themes

Pick the light or dark theme in the settings page.
"""
REFERENCE = """Reference
=========

Command line
------------

``widgets serve`` starts the server; ``widgets export`` writes every dashboard as JSON to the current folder.
"""
