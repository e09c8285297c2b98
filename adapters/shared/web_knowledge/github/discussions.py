"""A GitHub repository's discussions as knowledge, through GraphQL (which GitHub serves only with a token): each
discussion one knowledge source, its body, its accepted answer ("Accepted answer: …", linked to the answer) and its
first COMMENTS comments a passage each.

The discussions are read most recently updated first, 50 a request with their comments, until one older than the
last pass; every `full_every` passes all of them are read, so that a deleted one leaves and an edited comment (which
may not move its discussion's `updatedAt`) is caught. A discussion whose text is the same is not embedded again."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.shared.knowledge_sources.document_passages import passage_texts
from adapters.shared.web_knowledge.github.run import Run
from bot.knowledge.passages import Passage

DISCUSSION = "discussion:"  # a discussion's item: "discussion:3" → {"updated_at", "digest"}
DISCUSSIONS = "discussions"  # the pass's, as the issues'
PAGE = 50
COMMENTS = 50
QUERY = """
query($owner: String!, $name: String!, $after: String) {
  repository(owner: $owner, name: $name) {
    discussions(first: %d, after: $after, orderBy: {field: UPDATED_AT, direction: DESC}) {
      pageInfo { hasNextPage endCursor }
      nodes {
        number title url body updatedAt
        author { login }
        answer { url body updatedAt author { login } }
        comments(first: %d) { nodes { url body updatedAt author { login } } }
      }
    }
  }
}
""" % (PAGE, COMMENTS)  # noqa: UP031 - GraphQL's braces


async def sync_discussions(run: Run) -> None:
    since, partial, full = run.pass_state(DISCUSSIONS)
    variables: dict[str, Any] = {"owner": run.owner, "name": run.name, "after": None}
    seen: set[str] = set()
    while True:
        found = (await run.api.graphql(QUERY, variables))["repository"]["discussions"]
        recent = [node for node in found["nodes"] if full or since is None or _when(node["updatedAt"]) >= since]
        for node in recent:
            seen.add(str(node["number"]))
            await run.store(f"{DISCUSSION}{node['number']}", discussion_passages(run, node), {})
        if len(recent) < len(found["nodes"]) or not found["pageInfo"]["hasNextPage"]:
            break
        variables["after"] = found["pageInfo"]["endCursor"]
    remembered = run.remembered_under(DISCUSSION)
    if full:
        for number in remembered.keys() - seen:
            await run.forget(DISCUSSION + number)
    else:
        run.report.unchanged += len(remembered.keys() - seen)
    await run.pass_done(DISCUSSIONS, partial, full)


def discussion_passages(run: Run, node: dict[str, Any]) -> list[Passage]:
    item = f"{DISCUSSION}{node['number']}"
    title = f"{run.label} discussion #{node['number']}: {node['title']}"
    pieces = [(text, node["url"], node["updatedAt"]) for text in passage_texts(f"{node['title']}\n\n{node['body']}")]
    answer = node.get("answer")
    if answer:
        said = f"Accepted answer{_by(answer)}: {answer['body']}"
        pieces += [(text, answer["url"], answer["updatedAt"]) for text in passage_texts(said)]
    for comment in node["comments"]["nodes"]:
        if not answer or comment["url"] != answer["url"]:
            said = f"{_by(comment).removeprefix(' by ')}: {comment['body']}" if _by(comment) else comment["body"]
            pieces += [(text, comment["url"], comment["updatedAt"]) for text in passage_texts(said)]
    return [run.passage(item, number, text, title, url, when) for number, (text, url, when) in enumerate(pieces, 1)]


def _by(node: dict[str, Any]) -> str:
    author = node.get("author") or {}
    return f" by @{author['login']}" if author.get("login") else ""


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
