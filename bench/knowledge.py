"""Benchmark: knowledge at a community's size: how fast messages become searchable, how long a search takes with
100,000 of them (alone, eight at once, and while messages keep arriving), and what it costs in memory and disk.

    python -m bench.knowledge [--messages 100000] [--embedder wordllama|minilm] [--questions 600] [--crawl 2000]

The bot's own knowledge (bot.knowledge: the embedder, then the engine on the embedded PostgreSQL in a fresh data
directory) is given a made-up support server's chat (bench/knowledge_corpus.py) in batches as the live indexing
adds them, plus 200 passages of deployment documents. A search is what a question costs before the model is asked:
the question embedded, then the engine's one hybrid query, scoped to the server and the deployment, with the
asker's readable channels (15 of the 20). Memory: the proportional set size (PSS) of the database's processes and
of this one (the embedder and the bot's side of the engine).

`--crawl PAGES`: then a docs site of that many pages (fakes.docs_site's generated tree, on loopback) is read into the
same knowledge the way the bot reads one (adapters.shared.web_knowledge: the fetcher, robots.txt and the sitemap, the
page worker, the passages embedded and stored), with no pause between requests: pages read a second, this process's
and the page worker's memory as the crawl goes (it must not grow with the site), the searches' latency while it
runs, and a second sync of the unchanged site.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import redis.asyncio as aioredis

from adapters.shared.files.isolation import IsolatedWorkers
from adapters.shared.knowledge_sources.channels import KnowledgeChannels
from adapters.shared.web_knowledge.fetch.addresses import PrivateAllowance
from adapters.shared.web_knowledge.fetch.fetching import WebFetcher
from adapters.shared.web_knowledge.sites.crawl import sync_site
from adapters.shared.web_knowledge.sites.page_reading import WORKER_MODULE, PageReader
from adapters.shared.web_knowledge.sources import ReadMemory, SyncReport, WebSource
from bench.knowledge_corpus import Community
from bot.knowledge.embedded import start_embedded_async, stop_embedded
from bot.knowledge.passages import DEPLOYMENT_SCOPE, Access, Embedder, Passage
from bot.knowledge.postgres import PostgresEngine
from bot.knowledge.service import Knowledge
from bot.knowledge.setup import DATABASE_FOLDER
from fakes.docs_site import FakeDocsSite
from fakes.harness.processes import REDIS_URL
from fakes.harness.server_folders import server_folder

SCOPE = "discord:1"
QUESTIONS = 300  # asked by the rounds of bench.discord and bench.slack, in turn
INGEST_BATCH = 64  # as the live indexing's (bot.knowledge.service.EMBED_BATCH)


def make_embedder(name: str, models: Path) -> Embedder:
    if name == "wordllama":
        from bot.knowledge.embeddings import LocalEmbedder

        return LocalEmbedder()
    from bot.knowledge.minilm import MiniLMEmbedder

    return MiniLMEmbedder(models)


def chat_passages(community: Community, count: int, first: int) -> list[Passage]:
    return [
        Passage(
            scope=SCOPE,
            source=f"channel:{message.channel}",
            key=f"{first + number}",
            text=message.text,
            title=f"#channel-{message.channel}",
            url=f"https://discord.com/channels/1/{message.channel}/{first + number}",
            channel=str(message.channel),
            author=str(number % 500),
            updated_at=time.time(),
        )
        for number, message in enumerate(community.messages(count))
    ]


def document_passages(community: Community, count: int) -> list[Passage]:
    return [
        Passage(
            scope=DEPLOYMENT_SCOPE,
            source="dir:guide.md",
            key=f"dir:guide.md#{number}",
            text=" ".join(community.message() for _ in range(6)),
            title="guide.md",
            locator=f"section {number}",
        )
        for number in range(count)
    ]


async def ingest(knowledge: Knowledge, passages: Sequence[Passage]) -> float:
    """Messages added a second, embedding included."""
    started = time.perf_counter()
    for start in range(0, len(passages), INGEST_BATCH):
        await knowledge.add(passages[start : start + INGEST_BATCH])
    return len(passages) / (time.perf_counter() - started)


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def searches(knowledge: Knowledge, questions: Sequence[str], access: Access, concurrent: int) -> list[float]:
    """Each search's milliseconds, `concurrent` at a time."""
    times: list[float] = []
    queue = list(questions)

    async def asker() -> None:
        while queue:
            question = queue.pop()
            started = time.perf_counter()
            await knowledge.search(question, access)
            times.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(asker() for _ in range(concurrent)))
    return times


def describe(label: str, times: Sequence[float]) -> str:
    return (
        f"{label:<44} n={len(times):<5} p50 {statistics.median(times):6.1f} ms   p99 {percentile(times, 0.99):6.1f} ms"
        f"   max {max(times):6.1f} ms"
    )


def pss_mb(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return total / 1024


def database_pids(data_dir: Path) -> list[int]:
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    return [postmaster, *(int(pid) for pid in children)]


async def index_chat(
    folder: Path, scope: str, channels: Sequence[int | str], count: int, *, redis_url: str, key_prefix: str
) -> None:
    """`count` messages said in `channels` of `scope` and 200 passages of the server's documents, indexed with
    WordLlama in an embedded database in `folder` (a bot's KNOWLEDGE_DATA_DIR), as the live indexing would have;
    the database stopped after, and the channels opted in (in Redis, under the bot's `key_prefix`) as
    `/knowledge channel on` would have."""
    database = await start_embedded_async(folder / DATABASE_FOLDER)
    knowledge = Knowledge(PostgresEngine(database.url), make_embedder("wordllama", folder / "models"))
    await knowledge.start()
    community = Community(channels=len(channels))
    await knowledge.add([replace(passage, scope=scope) for passage in document_passages(community, 200)])
    passages = []
    for passage in chat_passages(community, count, 0):
        channel = str(channels[int(passage.channel)])
        passages.append(replace(passage, scope=scope, channel=channel, source=f"channel:{channel}"))
    await ingest(knowledge, passages)
    async with await psycopg.AsyncConnection.connect(database.url, autocommit=True) as conn:
        await conn.execute("VACUUM ANALYZE knowledge_passages")
    await knowledge.aclose()
    await asyncio.to_thread(stop_embedded, database.data_dir)
    redis = aioredis.from_url(redis_url)
    try:
        opted = KnowledgeChannels(redis, key_prefix)
        for opted_in in channels:
            await opted.opt_in(scope, str(opted_in), f"bench-{opted_in}")
    finally:
        await redis.aclose()


def chat_questions(channels: int) -> list[str]:
    """Questions about the first messages `index_chat` indexes in that many channels (the same made-up chat)."""
    community = Community(channels=channels)
    document_passages(community, 200)
    for _ in community.messages(10_000):
        pass
    return community.questions(QUESTIONS)


def asked_in_turn(channels: int) -> Iterator[str]:
    """`chat_questions`, one after another, for ever: what a round's mentions ask."""
    return itertools.cycle(chat_questions(channels))


def mean_prompt_chars(model_requests: Sequence[dict[str, Any]]) -> float | None:
    """How long a round's prompts (its requests' records) were on average: passages of knowledge make them longer."""
    sizes = [record["prompt_chars"] for record in model_requests if record.get("prompt_chars")]
    return statistics.mean(sizes) if sizes else None


def folder_mb(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 1e6


async def sizes(url: str) -> tuple[float, float]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        row = await (
            await conn.execute("SELECT pg_table_size('knowledge_passages'), pg_indexes_size('knowledge_passages')")
        ).fetchone()
    assert row is not None
    return row[0] / 1e6, row[1] / 1e6


async def run(messages: int, embedder_name: str, questions_count: int, crawl: int) -> None:
    folder = server_folder("knowledge-bench-")
    try:
        database = await start_embedded_async(folder / "postgres")
        engine = PostgresEngine(database.url)
        knowledge = Knowledge(engine, make_embedder(embedder_name, folder / "models"))
        await knowledge.start()
        print(
            f"embedder {knowledge.embedder.name} ({knowledge.embedder.dimensions} dimensions); "
            f"database started in {database.started_in:.1f} s; {os.cpu_count()} CPUs"
        )
        community = Community()
        await knowledge.add(document_passages(community, 200))
        corpus = chat_passages(community, messages, 0)
        rate = await ingest(knowledge, corpus)
        print(
            f"ingestion: {messages:,} messages at {rate:,.0f} a second (embedded and stored, batches of {INGEST_BATCH})"
        )
        async with await psycopg.AsyncConnection.connect(database.url, autocommit=True) as conn:
            await conn.execute("ANALYZE knowledge_passages")  # what autovacuum does after a load this size
        access = Access((SCOPE, DEPLOYMENT_SCOPE), frozenset(str(channel) for channel in range(15)))
        # A bot that has run a while: its pool's connections open, the database's caches warm (other questions).
        await searches(knowledge, community.questions(300), access, 4)
        questions = community.questions(questions_count)
        alone = await searches(knowledge, questions, access, 1)
        print(describe("search, one at a time", alone))
        print(describe("search, eight at once", await searches(knowledge, questions, access, 8)))
        more = chat_passages(community, max(2_000, messages // 10), messages)
        adding = asyncio.create_task(ingest(knowledge, more))
        during: list[float] = []
        while not adding.done():
            during += await searches(knowledge, questions[:20], access, 1)
        print(describe(f"search while {len(more):,} more are added", during))
        print(f"  (those added at {adding.result():,.0f} a second meanwhile)")
        if crawl:
            await crawl_figures(knowledge, questions, access, crawl)
        table, indexes = await sizes(database.url)
        print(
            f"memory (PSS): database {pss_mb(database_pids(database.data_dir)):.0f} MB, this process "
            f"{pss_mb([os.getpid()]):.0f} MB"
        )
        print(
            f"disk: table {table:.0f} MB + indexes {indexes:.0f} MB; data directory "
            f"{folder_mb(database.data_dir):.0f} MB"
        )
        await knowledge.aclose()
        stop_embedded(database.data_dir)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def crawl_figures(knowledge: Knowledge, questions: Sequence[str], access: Access, pages: int) -> None:
    """A site of `pages` pages read into `knowledge` while one search at a time runs; then read again unchanged."""
    site = FakeDocsSite(generated=pages, hostile=False, crawl_delay=None)
    await site.start()
    redis = aioredis.from_url(REDIS_URL)
    fetcher = WebFetcher(PrivateAllowance.parse(site.allowance), "bench", min_interval=0.0)
    workers = IsolatedWorkers(workers=1, preload=(WORKER_MODULE,), warm=False)
    source = WebSource(SCOPE, site.docs_url, "site")
    memory = ReadMemory(redis, f"bench:crawl:{os.getpid()}:", source)
    try:

        async def sync(round_started: float) -> SyncReport:
            return await sync_site(
                source, fetcher, PageReader(workers), memory, knowledge,
                max_pages=pages + 100, round_started=round_started, user_agent_token="bench",
            )  # fmt: skip

        started = time.perf_counter()
        crawling = asyncio.create_task(sync(time.time()))
        during, samples = [], []
        while not crawling.done():
            during += await searches(knowledge, questions[:20], access, 1)
            samples.append((len(await memory.items()), pss_mb([os.getpid()]), pss_mb(_children())))
        report, seconds = crawling.result(), time.perf_counter() - started
        print(f"crawl: {report.read:,} pages read and indexed in {seconds:.0f} s, {report.read / seconds:.1f} a second")
        print(describe("search while the site is read", during))
        for read, own, worker in samples[:: max(1, len(samples) // 5)] + samples[-1:]:
            print(f"  {read:>6,} pages read: this process {own:.0f} MB, page worker {worker:.0f} MB (PSS)")
        site.requests.clear()
        started = time.perf_counter()
        again = await sync(time.time())
        print(
            f"crawl again, unchanged: {again.unchanged:,} pages unchanged in {time.perf_counter() - started:.1f} s, "
            f"{sum(site.requests.values()):,} requests, {again.read} read"
        )
    finally:
        await fetcher.aclose()
        await workers.aclose()
        await memory.clear()
        await redis.aclose()
        await site.stop()


def _children() -> list[int]:
    """This process's children (the page worker's fork server and worker)."""
    found: list[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        found += [int(pid) for pid in (task / "children").read_text().split()]
    grandchildren = [int(pid) for pid in found for pid in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return found + grandchildren


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--embedder", choices=("wordllama", "minilm"), default="wordllama")
    parser.add_argument("--questions", type=int, default=600)
    parser.add_argument("--crawl", type=int, default=0, help="then read a docs site of this many pages")
    arguments = parser.parse_args()
    asyncio.run(run(arguments.messages, arguments.embedder, arguments.questions, arguments.crawl))


if __name__ == "__main__":
    main()
