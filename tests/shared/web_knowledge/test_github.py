"""A GitHub repository as knowledge, against the loopback fake GitHub (fakes.github) with real Redis, the real
knowledge on the embedded PostgreSQL and WordLlama: its documentation, issues and discussions answer questions and
are cited by their GitHub links; a sync of an unchanged repository is a few requests and embeds nothing; edits,
deletions and removed files follow; the rate limits stop a sync, never stall it; a private repository is read only
with a token and only for the operator (KNOWLEDGE_URLS), and a server's repository made private leaves its
knowledge until it is public again."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace

import pytest

from adapters.shared.web_knowledge.github.files import docutils_id, github_slug, is_documentation, rst_sections
from adapters.shared.web_knowledge.github.repository import (
    GitHubSettings,
    parse_repository,
    repository_reader,
    sync_repository,
)
from adapters.shared.web_knowledge.sources import ReadMemory, SyncReport, WebSource
from bot.knowledge.embedded import EmbeddedDatabase, start_embedded, stop_embedded
from bot.knowledge.embeddings import LocalEmbedder
from bot.knowledge.passages import DEPLOYMENT_SCOPE, Access, Hit
from bot.knowledge.postgres import PostgresEngine
from bot.knowledge.service import Knowledge
from bot.state.redis_client import RedisClient, RedisClients
from fakes.github import FakeGitHub
from fakes.github_data import sample_repository
from fakes.harness.processes import REDIS_URL
from fakes.harness.server_folders import server_folder

REPO = "acme/widgets"
WEB = "https://github.com/acme/widgets"
TOKEN = "test-token"


@pytest.fixture(scope="module")
def github_database() -> Iterator[EmbeddedDatabase]:
    folder = server_folder("knowledge-github-test-")
    database = start_embedded(folder / "pg")
    yield database
    stop_embedded(folder / "pg")
    shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Repository:
    """One test's repository source: synced against the fake, asked questions."""

    github: FakeGitHub
    knowledge: Knowledge
    memory: ReadMemory
    source: WebSource
    settings: GitHubSettings
    redis: RedisClient
    key_prefix: str
    indexed: list[str] = field(default_factory=list)  # the texts embedded to be stored

    async def sync(self, **changes: object) -> SyncReport:
        settings = replace(self.settings, **changes)  # type: ignore[arg-type]
        return await sync_repository(self.source, settings, self.memory, self.knowledge, round_started=time.time())

    async def ask(self, question: str) -> list[Hit]:
        return await self.knowledge.search(question, Access((self.source.scope,)), limit=5)

    async def urls(self, question: str) -> list[str]:
        return [hit.passage.url for hit in await self.ask(question)]

    async def texts(self) -> str:
        """Every passage's text of the source, found by a broad question."""
        sources = await self.knowledge.sources(self.source.scope)
        return " ".join(info.title for info in sources)


@pytest.fixture
async def repository(github_database: EmbeddedDatabase, key_prefix: str) -> AsyncIterator[Repository]:
    knowledge = Knowledge(PostgresEngine(github_database.url), LocalEmbedder())
    await knowledge.start()
    clients = RedisClients.connect(REDIS_URL, cluster=False)
    source = WebSource(f"discord:{uuid.uuid4().int % 10**12}", WEB, "github")
    try:
        async with FakeGitHub() as github:
            github.repositories[REPO] = sample_repository()
            settings = GitHubSettings(api_url=github.api_url, token=TOKEN)
            memory = ReadMemory(clients.main, key_prefix, source)
            found = Repository(github, knowledge, memory, source, settings, clients.main, key_prefix)
            knowledge.count_indexed = lambda scope, model, texts: found.indexed.extend(texts)
            yield found
        await knowledge.forget_scope(source.scope)
    finally:
        await clients.aclose()
        await knowledge.aclose()


async def test_questions_find_the_readme_docs_and_accepted_answer_cited_by_link(repository: Repository) -> None:
    report = await repository.sync()
    assert report.complete and report.failed == 0, report
    assert report.read == 6  # README, docs/setup.md, docs/reference.rst; issues 1 and 2; discussion 4
    assert f"{WEB}/blob/main/README.md#installation" in await repository.urls("How do I install widgets with pip?")
    assert f"{WEB}/blob/main/docs/reference.rst#command-line" in await repository.urls(
        "Which command exports every dashboard as JSON?"
    )
    hits = await repository.ask("How can I make the dashboard refresh every 30 seconds?")
    answer = next(hit.passage for hit in hits if hit.passage.text.startswith("Accepted answer"))
    assert "WIDGETS_REFRESH_SECONDS" in answer.text
    assert answer.url.startswith(f"{WEB}/discussions/4#discussioncomment-")
    crash = await repository.ask("Why does the dashboard crash with ZeroDivisionError on an empty data source?")
    assert any(hit.passage.url == f"{WEB}/issues/1" for hit in crash)
    assert any("#issuecomment-" in hit.passage.url for hit in crash)
    titles = await repository.texts()
    assert "Dark theme draws white tooltips (closed)" in titles  # a closed issue is knowledge too
    zeppelin = await repository.ask("zeppelin telemetry CSV export")  # the pull request's
    assert "zeppelin" not in titles.lower() and all("zeppelin" not in hit.passage.text for hit in zeppelin)


async def test_a_second_sync_of_an_unchanged_repository_is_a_few_requests_and_embeds_nothing(
    repository: Repository,
) -> None:
    await repository.sync()
    before, repository.indexed[:] = repository.github.count(), []
    report = await repository.sync()
    assert repository.github.count() - before <= 5
    assert report.complete and report.read == 0 and report.unchanged == 6, report
    assert repository.indexed == []


async def test_an_edited_comment_or_issue_is_read_again_and_a_deleted_issue_leaves(repository: Repository) -> None:
    await repository.sync()
    fix = "Fixed in 2.4: upgrade with pip install --upgrade acme-widgets and the averages panel shows a dash."
    repository.github.edit_comment(REPO, 1, 1, fix)
    report = await repository.sync()
    assert report.read == 1 and report.complete, report
    hits = await repository.ask("Which version fixed the averages panel crash?")
    assert any(hit.passage.text.endswith(fix) and "#issuecomment-" in hit.passage.url for hit in hits)

    repository.github.edit_issue(REPO, 2, "Tooltips stay white in the dark theme since the 2.2 stylesheet.")
    report = await repository.sync()
    assert report.read == 1 and report.unchanged == 5, report
    assert any("2.2 stylesheet" in hit.passage.text for hit in await repository.ask("Which stylesheet broke tooltips?"))

    repository.github.delete_issue(REPO, 2)
    report = await repository.sync(full_every=1)
    assert report.removed == 1, report
    assert "tooltips" not in (await repository.texts()).lower()


async def test_a_changed_file_is_read_again_and_a_removed_one_leaves(repository: Repository) -> None:
    await repository.sync()
    repository.github.set_file(
        REPO, "docs/setup.md", "# Setting up Widgets\n\n## Data sources\n\nWidgets reads SQLite.\n"
    )
    report = await repository.sync()
    assert (report.read, report.removed) == (1, 0), report
    assert f"{WEB}/blob/main/docs/setup.md#data-sources" in await repository.urls("Can Widgets read SQLite?")

    repository.github.remove_file(REPO, "docs/reference.rst")
    report = await repository.sync()
    assert report.removed == 1, report
    assert "reference.rst" not in await repository.texts()


async def test_without_a_token_the_rate_limit_stops_a_sync_and_the_next_goes_on(repository: Repository) -> None:
    repository.github.use_up(left=4)
    report = await repository.sync(token=None)
    assert not report.complete and any("rate limit" in problem for problem in report.problems), report
    assert repository.github.count() == 4  # the last request left was the last one sent: no 403 asked for
    assert report.retry_at == pytest.approx(time.time() + 3600, abs=60), "the next sync waits for GitHub's reset"

    repository.github.reset_limits()
    report = await repository.sync(token=None)
    assert report.complete and report.failed == 0, report
    assert any("token" in problem for problem in report.problems)  # discussions need one
    assert f"{WEB}/blob/main/README.md#installation" in await repository.urls("How do I install widgets with pip?")
    assert all(not request.token for request in repository.github.requests)


async def test_a_secondary_rate_limit_is_waited_out_once(repository: Repository) -> None:
    repository.github.secondary_once(retry_after=1)
    report = await repository.sync()
    assert report.complete and report.read == 6, report


async def test_a_repository_made_private_leaves_the_knowledge_and_comes_back_public(repository: Repository) -> None:
    question = "How do I install widgets with pip?"
    await repository.sync(token=None)
    repository.github.make_private(REPO)
    report = await repository.sync(token=None)
    assert report.failed == 1 and "private" in report.problems[0] and "removed" in report.problems[0], report
    assert report.removed > 0 and await repository.urls(question) == []

    report = await repository.sync()  # the operator's token opens it, but a server added it: still refused
    assert report.failed == 1 and "only the bot's operator" in report.problems[0], report
    assert await repository.urls(question) == []

    repository.github.make_private(REPO, private=False)
    report = await repository.sync(token=None)
    assert report.read == 5 and f"{WEB}/blob/main/README.md#installation" in await repository.urls(question), report


async def test_the_operators_private_repository_is_read_with_the_token(repository: Repository) -> None:
    repository.github.make_private(REPO)
    operators = replace(repository.source, scope=DEPLOYMENT_SCOPE, from_setting=True)
    memory = ReadMemory(repository.redis, repository.key_prefix, operators)
    try:
        report = await sync_repository(operators, repository.settings, memory, repository.knowledge, round_started=0.0)
        assert report.complete and report.failed == 0 and report.read == 6, report
    finally:
        await memory.clear()
        await repository.knowledge.forget_scope(DEPLOYMENT_SCOPE)


async def test_github_enterprise_serves_graphql_beside_its_rest_api(repository: Repository) -> None:
    read = repository_reader(GitHubSettings(api_url=repository.github.enterprise_url, token=TOKEN))
    report = await read(repository.source, repository.memory, repository.knowledge, time.time())
    assert report.complete and report.read == 6, report
    paths = {request.path for request in repository.github.requests}
    assert "/api/graphql" in paths and "/api/v3/repos/acme/widgets" in paths


def test_repository_addresses() -> None:
    assert parse_repository("github.com/acme/widgets") == ("acme", "widgets")
    assert parse_repository("https://github.com/acme/widgets.git") == ("acme", "widgets")
    assert parse_repository("https://www.github.com/acme/widgets/tree/main/docs") == ("acme", "widgets")
    assert parse_repository("https://www.github.com/acme/widgets", "www.github.com") == ("acme", "widgets")
    assert parse_repository("https://git.example.com/acme/widgets", "git.example.com") == ("acme", "widgets")
    assert parse_repository("https://gitlab.com/acme/widgets") is None
    assert parse_repository("https://github.com/acme") is None


def test_documentation_files_and_anchors() -> None:
    assert is_documentation("README.md", 10) and is_documentation("src/pkg/README.rst", 10)
    assert is_documentation("docs/guide/setup.mdx", 10) and is_documentation("CHANGELOG.md", 10)
    assert not is_documentation("src/notes.md", 10) and not is_documentation("node_modules/x/README.md", 10)
    assert github_slug("Install `widgets` (v2.0)!") == "install-widgets-v20"
    assert github_slug("See [the API](api.md) docs") == "see-the-api-docs"
    assert docutils_id("Command line: options") == "command-line-options"
    sections = rst_sections("=====\nTitle\n=====\n\nIntro.\n\nPart\n----\n\nText.\n")
    assert [(section.headings, section.text) for section in sections] == [
        (("Title",), "Intro."),
        (("Title", "Part"), "Text."),
    ]
