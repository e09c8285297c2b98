"""A GitHub repository's issues (not its pull requests) as knowledge: each issue one knowledge source, its title and
body one passage linked to the issue, each comment one linked to the comment. A closed issue keeps its knowledge.

Incremental: the issues updated since the last pass are listed (an issue's `updated_at` moves with a new comment),
and the comments created or edited since then (an edit doesn't move the issue's), one request each when nothing
changed. An issue whose `updated_at` and comment count are those read last time is not read again.

Deleted and transferred issues: GitHub lists neither, and says nothing of them in an incremental listing. Every
`full_every` passes the listing is full (every issue and pull request, 100 a request: a repository of 2,000 costs
20 requests, once in that many syncs) and a remembered issue missing from it leaves. An issue met only through an
edited comment is fetched alone, and leaves at once if it now answers 404 or 410, or lives in another repository
(a transfer answers 301, which is followed)."""

from __future__ import annotations

from datetime import datetime

from adapters.shared.knowledge_sources.document_passages import passage_texts
from adapters.shared.web_knowledge.github.api import PAGE, Comment, Failed, Issue
from adapters.shared.web_knowledge.github.run import Run
from bot.knowledge.passages import Passage

ISSUE = "issue:"  # an issue's item: "issue:12" → {"updated_at", "comments", "digest"}
ISSUES = "issues"  # the pass's: {"since": when the last complete pass started, "partial": passes since a full one}
GONE = frozenset({404, 410})


async def sync_issues(run: Run) -> None:
    since, partial, full = run.pass_state(ISSUES)
    listed = await _listed(run, None if full else since)
    touched = set() if since is None else await _commented(run, since)
    remembered = run.remembered_under(ISSUE)
    done = True
    for issue in listed.values():
        done = await _follow(run, issue, issue.number in touched) and done
    for number in touched - listed.keys():
        if str(number) in remembered:
            done = await _fetch_alone(run, number) and done
    if full:
        for gone in remembered.keys() - {str(number) for number in listed}:
            await run.forget(ISSUE + gone)
    else:
        seen = {str(number) for number in listed.keys() | touched}
        run.report.unchanged += len(remembered.keys() - seen)
    if done:
        await run.pass_done(ISSUES, partial, full)


async def _listed(run: Run, since: datetime | None) -> dict[int, Issue]:
    """The issues updated since `since` (None: all of them), pull requests left out."""
    found: dict[int, Issue] = {}
    page = 1
    while True:
        issues = await run.api.issues(run.owner, run.name, page, since)
        found.update((issue.number, issue) for issue in issues if not issue.pull_request)
        if len(issues) < PAGE:
            return found
        page += 1


async def _commented(run: Run, since: datetime) -> set[int]:
    """The numbers of the issues and pull requests with a comment created or edited since `since`."""
    numbers: set[int] = set()
    page = 1
    while True:
        comments = await run.api.comments_since(run.owner, run.name, since, page)
        numbers.update(comment.issue_number for comment in comments)
        if len(comments) < PAGE:
            return numbers
        page += 1


async def _fetch_alone(run: Run, number: int) -> bool:
    try:
        issue = await run.api.issue(run.owner, run.name, number)
    except Failed as error:
        if error.status in GONE:
            await run.forget(f"{ISSUE}{number}")
            return True
        run.report.failure(f"{run.web_url}/issues/{number}", str(error))
        return False
    here = issue.repository_url.lower().endswith(f"/repos/{run.owner}/{run.name}".lower())
    if not here or issue.pull_request:  # transferred elsewhere
        await run.forget(f"{ISSUE}{number}")
        return True
    return await _follow(run, issue, True)


async def _follow(run: Run, issue: Issue, comments_changed: bool) -> bool:
    """The issue read again (with its comments) unless it is as it was; False if it couldn't be read."""
    item = f"{ISSUE}{issue.number}"
    state = {"updated_at": issue.updated_at, "comments": issue.comments}
    kept = run.remembered.get(item, {})
    if not comments_changed and all(kept.get(name) == value for name, value in state.items()):
        run.report.unchanged += 1
        return True
    try:
        comments = await _comments(run, issue) if issue.comments else []
    except Failed as error:
        run.report.failure(issue.url, str(error))
        return False
    await run.store(item, issue_passages(run, issue, comments), state)
    return True


async def _comments(run: Run, issue: Issue) -> list[Comment]:
    found: list[Comment] = []
    page = 1
    while True:
        comments = await run.api.comments(run.owner, run.name, issue.number, page)
        found += comments
        if len(comments) < PAGE:
            return found
        page += 1


def issue_passages(run: Run, issue: Issue, comments: list[Comment]) -> list[Passage]:
    item = f"{ISSUE}{issue.number}"
    closed = " (closed)" if issue.state == "closed" else ""
    title = f"{run.label}#{issue.number}: {issue.title}{closed}"
    pieces = [(text, issue.url, issue.updated_at) for text in passage_texts(f"{issue.title}\n\n{issue.body}")]
    for comment in comments:
        said = f"@{comment.author}: {comment.body}" if comment.author else comment.body
        pieces += [(text, comment.url, comment.updated_at) for text in passage_texts(said)]
    return [run.passage(item, number, text, title, url, when) for number, (text, url, when) in enumerate(pieces, 1)]
