"""Benchmark: how well the bot's knowledge finds what answers a question, on any BEIR-format folder (`corpus.jsonl`
or `corpus.jsonl.gz` of {"_id", "title", "text"}, `queries.jsonl` of {"_id", "text"}, `qrels/<split>.tsv` with the
header `query-id corpus-id score`).

    python -m bench.retrieval FOLDER [--as files|messages] [--embedder minilm|wordllama] [--split NAME]
        [--limit 100] [--max-queries N] [--keep DIR] [--json FILE] [--run FILE]
        [--rerank-url URL [--rerank-model NAME] [--rerank-candidates N]]

Nothing takes a path of its own: the corpus is indexed the way the bot indexes knowledge, and each question is
searched the way a turn searches it.

- `--as files` (default): each document is a Markdown file (`# title`, then its text) in a KNOWLEDGE_DIR-style
  folder, added by the bot's KnowledgeFolder (adapters/shared/knowledge_sources/folder.py) as at start-up: the same
  reading, cutting into passages and titles. `--as messages`: each document is a message (its title, a blank line,
  its text) posted in a Slack knowledge channel, given to the channels' feed (channel_feed.py) as the live events
  are, its passage Slack's (adapters/slack_bot/knowledge/messages.py), added in the background (Knowledge.add_soon).
- Each judged question is a `Turn` of someone who may read that knowledge, searched by bot/turn/searching.py's
  TurnKnowledge.search, then cut to what the prompt carries by TurnKnowledge.shown, as bot/turn/preparation.py does:
  the "prompt" figures score exactly the passages the model would read, the "raw" ones Knowledge.search's ranking
  asked for `--limit` passages (before the prompt's cut; Recall@100 needs `--limit 100`). A hit counts for the
  document its passage came from (found through its source or key), once, at the rank of its first passage.
- The prompt's size is the bot's, from the same environment variables (CONTEXT_TOKENS, MAX_NEW_TOKENS,
  SYSTEM_PROMPT, KNOWLEDGE_PROMPT_SHARE, KNOWLEDGE_MIN_RELEVANCE), for a bot answering with a model server when
  none is configured; no `.env` is read. So is its reranker (RERANK_BASE_URL, RERANK_MODEL, RERANK_API_KEY,
  RERANK_CANDIDATES, RERANK_TIMEOUT_SECONDS), or `--rerank-url` (with `--rerank-model`, `--rerank-candidates`):
  any Text Embeddings Inference, Cohere- or Jina-shaped `/rerank` server (`python -m fakes.rerank_server` is a
  loopback one that scores by shared words: its figures are the hop's cost, not a cross-encoder's gain). A
  reranker's failures are counted and the search goes on in fusion's order, as the bot's does.

Scores, as BEIR computes them (pytrec_eval): nDCG@10 with the judgments' grades as gains and a log2 discount, the
ideal DCG from the judgments; Recall@k the share of a question's relevant (score > 0) documents in its first k;
each averaged over the questions that have judgments. Also: the share of questions whose prompt got no passage,
indexing throughput (documents and passages a second, embedding included) and the search's latency (the question
embedded, then the engine's query: TurnKnowledge.search's time) at p50 and p99. The last line is a row for
docs/BENCHMARKS.md.

`--keep DIR` keeps the embedded database, the model file and the generated files in DIR/<as>-<embedder>/: a second
run with the same DIR finds the corpus indexed and only searches again. `--json FILE` writes the figures and each
question's rankings. `--run FILE` scores a ranking made elsewhere (a TREC run: `qid Q0 docid rank score tag` a
line) with the same judgments and formulas instead, indexing nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import math
import os
import re
import shutil
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
import uvloop

from adapters.launch import configure_logging
from adapters.shared.knowledge_sources.channel_feed import ChannelChange, ChannelFeed
from adapters.shared.knowledge_sources.channels import KnowledgeChannels
from adapters.shared.knowledge_sources.folder import SOURCE_PREFIX, KnowledgeFolder
from adapters.shared.knowledge_sources.live import LiveChanges
from adapters.slack_bot.knowledge.messages import indexable, message_key, message_passage, scope_of
from bench.knowledge import make_embedder, percentile
from bot.knowledge.embedded import start_embedded_async, stop_embedded
from bot.knowledge.opener import KnowledgeOpener
from bot.knowledge.passages import DEPLOYMENT_SCOPE, Access, Hit, Passage
from bot.knowledge.postgres import PostgresEngine
from bot.knowledge.rerank import Reranking, make_reranking
from bot.knowledge.service import Knowledge
from bot.knowledge.setup import DATABASE_FOLDER
from bot.state.redis_client import RedisClients
from bot.turn.message import Turn
from bot.turn.prompt import MistralTokenCounter, PromptBudget, PromptBuilder
from bot.turn.searching import QUESTION_CHARS, TurnKnowledge
from config.env import Env
from config.knowledge import DEFAULT_RERANK_CANDIDATES, DEFAULT_RERANK_TIMEOUT_SECONDS, RerankSettings
from config.settings import Settings, load_settings
from fakes.harness.server_folders import given_to_server_user, server_folder

TEAM = "TBENCH"  # the Slack workspace of --as messages
CHANNEL = "CKNOWLEDGE"
CHANNEL_TITLE = "#knowledge"
AUTHOR = "UAUTHOR"
BOT_USER = "UBOT"
FIRST_TS = 1_700_000_000
KEY_PREFIX = "bench:"
FEED_CHUNK = 1_000  # messages given to the feed before waiting for them to be added: well within its queue
WARM_UP = 10  # questions searched first, untimed: the pool's connections open, the question's model loaded
KEPT_MARK = "indexed.json"
CUTS = (10, 100)


# --- The BEIR folder ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    title: str
    text: str


@dataclass(frozen=True)
class Dataset:
    documents: dict[str, Document]
    questions: dict[str, str]  # the judged ones only, in the judgments' order
    judged: dict[str, dict[str, int]]  # question → document → grade
    split: str


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def corpus_file(folder: Path) -> Path:
    for name in ("corpus.jsonl", "corpus.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    raise SystemExit(f"{folder}: no corpus.jsonl or corpus.jsonl.gz")


def qrels_file(folder: Path, split: str | None) -> Path:
    if split is not None:
        return folder / "qrels" / f"{split}.tsv"
    found = sorted((folder / "qrels").glob("*.tsv"))
    if not found:
        raise SystemExit(f"{folder}: no qrels/*.tsv")
    return found[0]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    judged: dict[str, dict[str, int]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) < 3 or (number == 0 and not fields[2].strip().lstrip("-").isdigit()):
            continue  # the header, or a blank line
        judged.setdefault(fields[0].strip(), {})[fields[1].strip()] = int(fields[2])
    return judged


def load_dataset(folder: Path, split: str | None, max_queries: int | None) -> Dataset:
    qrels = qrels_file(folder, split)
    judged = read_qrels(qrels)
    texts = {str(row["_id"]): str(row["text"]) for row in read_jsonl(folder / "queries.jsonl")}
    asked = [question for question in judged if question in texts][:max_queries]
    documents = {
        str(row["_id"]): Document(str(row.get("title") or ""), str(row.get("text") or ""))
        for row in read_jsonl(corpus_file(folder))
    }
    return Dataset(documents, {q: texts[q] for q in asked}, {q: judged[q] for q in asked}, qrels.stem)


# --- Scores ------------------------------------------------------------------------------------------------------


def dcg(gains: Sequence[int]) -> float:
    return sum(gain / math.log2(rank + 2) for rank, gain in enumerate(gains))


def ndcg_at(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """nDCG@k as pytrec_eval's ndcg_cut: the grades as gains, the ideal from all the question's judgments."""
    ideal = dcg(sorted((grade for grade in judged.values() if grade > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg([max(judged.get(document, 0), 0) for document in ranking[:k]]) / ideal


def recall_at(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    relevant = {document for document, grade in judged.items() if grade > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


@dataclass(frozen=True)
class Scores:
    ndcg10: float
    recall10: float
    recall100: float
    empty: float  # the share of questions with nothing found


def scores(rankings: Mapping[str, Sequence[str]], judged: Mapping[str, Mapping[str, int]]) -> Scores:
    """The means over the judged questions (one missing from `rankings` found nothing)."""
    lists = [(rankings.get(question, ()), judgments) for question, judgments in judged.items()]
    if not lists:
        return Scores(0.0, 0.0, 0.0, 0.0)
    return Scores(
        statistics.fmean(ndcg_at(ranking, judgments, 10) for ranking, judgments in lists),
        statistics.fmean(recall_at(ranking, judgments, 10) for ranking, judgments in lists),
        statistics.fmean(recall_at(ranking, judgments, 100) for ranking, judgments in lists),
        sum(not ranking for ranking, _ in lists) / len(lists),
    )


def documents_of(hits: Sequence[Hit], owner: Callable[[Passage], str | None]) -> list[str]:
    """The documents of `hits` in order, each once, at its first passage's rank."""
    return list(dict.fromkeys(found for hit in hits if (found := owner(hit.passage)) is not None))


def read_run(path: Path) -> dict[str, list[str]]:
    """A TREC run's rankings, each question's documents by descending score (ties: by rank)."""
    rows: dict[str, list[tuple[float, int, str]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) >= 5:
            rows.setdefault(fields[0], []).append((-float(fields[4]), int(fields[3]), fields[2]))
    return {question: list(dict.fromkeys(doc for *_, doc in sorted(found))) for question, found in rows.items()}


# --- The corpus indexed as the bot indexes knowledge ---------------------------------------------------------------


@dataclass
class Indexed:
    access: Access
    owners: dict[str, str]  # a passage's source (files) or key (messages) → its document
    documents: int = 0
    passages: int = 0
    seconds: float | None = None  # None: found indexed (--keep)

    def owner(self, passage: Passage) -> str | None:
        return self.owners.get(passage.source) or self.owners.get(passage.key)


def safe_name(document: str) -> str:
    """A file name for the document's id: the id itself when it is plain, else a plain form and a hash of it."""
    plain = re.sub(r"[^A-Za-z0-9_-]", "_", document)[:80].lstrip("_") or "document"
    if plain == document:
        return f"{plain}.md"
    return f"{plain}-{hashlib.sha256(document.encode()).hexdigest()[:10]}.md"


def markdown(document: Document) -> str:
    return f"# {document.title}\n\n{document.text}\n" if document.title else f"{document.text}\n"


def write_files(folder: Path, documents: Mapping[str, Document]) -> dict[str, str]:
    """The documents as files in `folder` (those already there as they are left alone, so a kept folder is found
    added; others removed): source → document."""
    folder.mkdir(parents=True, exist_ok=True)
    owners: dict[str, str] = {}
    for document, content in documents.items():
        path = folder / safe_name(document)
        text = markdown(content)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        owners[SOURCE_PREFIX + path.name] = document
    for stale in {path.name for path in folder.iterdir()} - {source[len(SOURCE_PREFIX) :] for source in owners}:
        (folder / stale).unlink()
    return owners


async def passages_of(knowledge: Knowledge, scope: str) -> int:
    return sum(info.passages for info in await knowledge.sources(scope))


async def index_files(knowledge: Knowledge, folder: Path, documents: Mapping[str, Document]) -> Indexed:
    """Each document a file of a KNOWLEDGE_DIR, added by the bot's KnowledgeFolder as at its start."""
    owners = await asyncio.to_thread(write_files, folder, documents)
    indexed = Indexed(Access((DEPLOYMENT_SCOPE,)), owners, len(documents))
    started = time.perf_counter()
    added = await KnowledgeFolder(knowledge, folder, None).add_all()
    if added == len(documents):  # else found indexed, or partly (a run stopped): no throughput to tell
        indexed.seconds = time.perf_counter() - started
    indexed.passages = await passages_of(knowledge, DEPLOYMENT_SCOPE)
    return indexed


def slack_escaped(text: str) -> str:
    """A message's text as Slack sends it: &, < and > escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def posted(number: int, document: Document) -> dict[str, Any]:
    """The document as a Slack message event's message."""
    text = f"{document.title}\n\n{document.text}" if document.title else document.text
    return {"type": "message", "user": AUTHOR, "ts": f"{FIRST_TS + number}.000100", "text": slack_escaped(text)}


def change_for(message: dict[str, Any]) -> ChannelChange:
    """A message posted in the knowledge channel, as Slack's feed (adapters/slack_bot/knowledge/feed.py) gives it."""

    async def passage(title: str) -> Passage | None:
        if not indexable(message, BOT_USER):
            return None
        url = f"https://bench.slack.com/archives/{CHANNEL}/p{message['ts'].replace('.', '')}"
        return message_passage(TEAM, CHANNEL, title, message, url)

    return ChannelChange(TEAM, scope_of(TEAM), CHANNEL, "", (message_key(CHANNEL, message["ts"]),), passage)


async def channel_feed(knowledge: Knowledge, redis: RedisClients) -> ChannelFeed:
    channels = KnowledgeChannels(redis.main, KEY_PREFIX)
    await channels.opt_in(scope_of(TEAM), CHANNEL, CHANNEL_TITLE)

    async def started() -> Knowledge:
        return knowledge

    async def claimed(key: str) -> bool:
        return True

    opener = KnowledgeOpener(started, lambda _: None)
    live = LiveChanges(redis.main, KEY_PREFIX, "slack")
    return ChannelFeed("slack", channels, live, opener, claimed, scopes_listed=True)


async def index_messages(knowledge: Knowledge, kept: Path, corpus: str, documents: Mapping[str, Document]) -> Indexed:
    """Each document a message posted in a knowledge channel, added as the live feed adds them (unless `kept` says
    this corpus was added before)."""
    messages = [posted(number, document) for number, document in enumerate(documents.values())]
    owners = {message_key(CHANNEL, m["ts"]): doc for m, doc in zip(messages, documents, strict=True)}
    access = Access((scope_of(TEAM), DEPLOYMENT_SCOPE), frozenset({CHANNEL}))
    indexed = Indexed(access, owners, len(documents))
    mark = {"corpus": corpus, "documents": len(documents)}
    if (kept / KEPT_MARK).is_file() and json.loads((kept / KEPT_MARK).read_text()) == mark:
        indexed.passages = await passages_of(knowledge, scope_of(TEAM))
        return indexed
    redis = RedisClients.in_memory()
    feed = await channel_feed(knowledge, redis)
    started = time.perf_counter()
    for start in range(0, len(messages), FEED_CHUNK):
        for message in messages[start : start + FEED_CHUNK]:
            await feed.apply(change_for(message))
        await knowledge.settled()
    indexed.seconds = time.perf_counter() - started
    await redis.aclose()
    indexed.passages = await passages_of(knowledge, scope_of(TEAM))
    (kept / KEPT_MARK).write_text(json.dumps(mark))
    return indexed


# --- The questions, asked as turns ---------------------------------------------------------------------------------


def bot_settings() -> Settings:
    """The bot's settings from this environment (no `.env`), for a bot answering with a model server when none is
    configured: what sizes the prompt and its share for knowledge."""
    values = dict(os.environ)
    if not any(values.get(name) for name in ("INFERENCE_BASE_URL", "LOCAL_MODEL_PATH", "HF_TOKEN")):
        values["INFERENCE_BASE_URL"] = "http://model.invalid/v1"
    return load_settings(Env(values), dotenv_path=None)


@dataclass
class Answers:
    prompt: dict[str, list[str]] = field(default_factory=dict)  # the documents the prompt carries, in order
    raw: dict[str, list[str]] = field(default_factory=dict)  # Knowledge.search's, asked for --limit passages
    milliseconds: list[float] = field(default_factory=list)  # each turn's search
    failed: int = 0  # searches that failed or ran past the turn's time (the answer then goes on without knowledge)
    shown: list[int] = field(default_factory=list)  # passages in each prompt


async def ask(turns: TurnKnowledge, prompts: PromptBuilder, turn: Turn) -> tuple[list[Hit], float, bool]:
    """The passages the turn's prompt carries, the search's milliseconds, and whether it failed."""
    started = time.perf_counter()
    hits = await turns.search(turn)
    elapsed = (time.perf_counter() - started) * 1000
    system_tokens = prompts.budget.prompt_tokens - prompts.history_budget  # the default persona's, as preparation's
    shown = await turns.shown(hits or [], system_tokens, prompts.count(turn.text))
    return list(shown.hits), elapsed, hits is None


async def answer_all(
    knowledge: Knowledge, settings: Settings, dataset: Dataset, indexed: Indexed, limit: int
) -> Answers:
    counter = await asyncio.to_thread(MistralTokenCounter)
    budget = PromptBudget(settings.context_tokens, settings.model.sampling.max_new_tokens)
    prompts = PromptBuilder(counter, settings.system_prompt, budget)
    turns = TurnKnowledge(knowledge, prompts, settings.knowledge.prompt_share)
    asked = {
        question: Turn(f"bench:retrieval:{question}", "U1", "bench", text, knowledge=indexed.access)
        for question, text in dataset.questions.items()
    }
    for turn in list(asked.values())[:WARM_UP]:
        await turns.search(turn)
    answers = Answers()
    for question, turn in asked.items():
        shown, milliseconds, failed = await ask(turns, prompts, turn)
        answers.prompt[question] = documents_of(shown, indexed.owner)
        answers.milliseconds.append(milliseconds)
        answers.failed += failed
        answers.shown.append(len(shown))
        raw = await knowledge.search(turn.text[:QUESTION_CHARS], indexed.access, limit)
        answers.raw[question] = documents_of(raw, indexed.owner)
    return answers


# --- A run -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    folder: Path
    mode: str
    embedder: str
    split: str | None
    limit: int
    max_queries: int | None
    keep: Path | None
    json_file: Path | None
    run_file: Path | None
    rerank_url: str | None = None
    rerank_model: str | None = None
    rerank_candidates: int | None = None


def reranking_for(options: Options, settings: Settings) -> Reranking | None:
    """The bot's reranker from the environment, or the one `--rerank-url` names (the environment's key and time)."""
    configured = settings.knowledge.rerank
    if options.rerank_url is not None:
        configured = RerankSettings(
            options.rerank_url,
            options.rerank_model,
            os.environ.get("RERANK_API_KEY") or None,
            configured.candidates if configured else DEFAULT_RERANK_CANDIDATES,
            configured.timeout_seconds if configured else DEFAULT_RERANK_TIMEOUT_SECONDS,
        )
    if configured is not None and options.rerank_candidates is not None:
        configured = replace(configured, candidates=options.rerank_candidates)
    return make_reranking(configured)


@asynccontextmanager
async def started_knowledge(options: Options, failures: list[str]) -> AsyncIterator[tuple[Knowledge, Path, str]]:
    """The bot's knowledge on an embedded database in the kept folder (or a new one, removed after), that folder and
    the database's URL. Its reranker's failures, if any, are added to `failures`."""
    if options.keep is not None:
        folder = options.keep / f"{options.mode}-{options.embedder}"
        folder.mkdir(parents=True, exist_ok=True)
        given_to_server_user(folder)
    else:
        folder = server_folder("retrieval-bench-")
    database = await start_embedded_async(folder / DATABASE_FOLDER)
    settings = bot_settings()
    reranking = reranking_for(options, settings)
    if reranking is not None:
        reranking.count_failure = failures.append
    knowledge = Knowledge(
        PostgresEngine(database.url),
        make_embedder(options.embedder, folder / "models"),
        settings.knowledge.min_relevance,
        reranking,
    )
    try:
        await knowledge.start()
        yield knowledge, folder, database.url
    finally:
        await knowledge.aclose()
        await asyncio.to_thread(stop_embedded, database.data_dir)
        if options.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


async def analyze(url: str) -> None:
    """What autovacuum does within a minute of a load this size, done now: the planner knows the table."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("ANALYZE knowledge_passages")


async def index(knowledge: Knowledge, folder: Path, url: str, options: Options, dataset: Dataset) -> Indexed:
    if options.mode == "files":
        indexed = await index_files(knowledge, folder / "knowledge", dataset.documents)
    else:
        indexed = await index_messages(knowledge, folder, str(options.folder.resolve()), dataset.documents)
    await analyze(url)  # a kept folder too: the engine's start may have added a column ANALYZE hasn't seen
    return indexed


@dataclass(frozen=True)
class Figures:
    corpus: str
    split: str
    mode: str
    embedder: str
    questions: int
    prompt: Scores
    raw: Scores
    limit: int
    documents: int = 0
    passages: int = 0
    index_seconds: float | None = None
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    failed: int = 0
    mean_shown: float = 0.0
    reranker: str = ""  # "": none; else its name and how many candidates it scored
    rerank_failures: int = 0


def figures_of(
    options: Options, dataset: Dataset, indexed: Indexed, answers: Answers, reranking: Reranking | None = None
) -> Figures:
    times = answers.milliseconds or [0.0]
    return Figures(
        options.folder.name,
        dataset.split,
        options.mode,
        options.embedder,
        len(dataset.questions),
        scores(answers.prompt, dataset.judged),
        scores(answers.raw, dataset.judged),
        options.limit,
        indexed.documents,
        indexed.passages,
        indexed.seconds,
        statistics.median(times),
        percentile(times, 0.99),
        answers.failed,
        statistics.fmean(answers.shown or [0]),
        f"{reranking.reranker.name} ({reranking.candidates})" if reranking is not None else "",
    )


def rate(count: int, seconds: float | None) -> str:
    return "kept" if seconds is None else f"{count / seconds:,.1f}"


def report(figures: Figures) -> str:
    prompt, raw = figures.prompt, figures.raw
    indexing = (
        "found indexed (--keep)"
        if figures.index_seconds is None
        else f"{figures.index_seconds:,.0f} s: {rate(figures.documents, figures.index_seconds)} documents and "
        f"{rate(figures.passages, figures.index_seconds)} passages a second"
    )
    header = (
        "| corpus (split) | as | embedder | questions | prompt nDCG@10 | prompt Recall@10 | no passage in prompt | "
        "raw nDCG@10 | raw Recall@10 | raw Recall@100 | documents/s | passages/s | search p50 | search p99 |"
    )
    ranked_by = f"{figures.embedder}, reranked by {figures.reranker}" if figures.reranker else figures.embedder
    row = (
        f"| {figures.corpus} ({figures.split}) | {figures.mode} | {ranked_by} | {figures.questions:,} | "
        f"{prompt.ndcg10:.3f} | {prompt.recall10:.3f} | {prompt.empty:.1%} | {raw.ndcg10:.3f} | {raw.recall10:.3f} | "
        f"{raw.recall100:.3f} | {rate(figures.documents, figures.index_seconds)} | "
        f"{rate(figures.passages, figures.index_seconds)} | {figures.p50_ms:.0f} ms | {figures.p99_ms:.0f} ms |"
    )
    return "\n".join(
        [
            f"{figures.documents:,} documents in {figures.passages:,} passages; indexing {indexing}",
            f"prompt (what the model reads): {figures.mean_shown:.1f} passages on average; searches failed or late: "
            f"{figures.failed}",
            f"raw (Knowledge.search, {figures.limit} asked): Recall@100 {raw.recall100:.3f}",
            f"reranked by {figures.reranker}: {figures.rerank_failures} failures (those kept fusion's order)"
            if figures.reranker
            else "not reranked",
            "",
            header,
            "|" + "---|" * header.count(" | ") + "---|",
            row,
        ]
    )


async def measure(options: Options) -> tuple[Figures, Answers]:
    dataset = load_dataset(options.folder, options.split, options.max_queries)
    settings = bot_settings()
    print(
        f"{len(dataset.documents):,} documents, {len(dataset.questions):,} judged questions ({dataset.split}); "
        f"prompt {settings.context_tokens - settings.model.sampling.max_new_tokens:,} tokens, "
        f"{settings.knowledge.prompt_share:.0%} for knowledge; {os.cpu_count()} CPUs",
        flush=True,
    )
    failures: list[str] = []
    async with started_knowledge(options, failures) as (knowledge, folder, url):
        indexed = await index(knowledge, folder, url, options, dataset)
        answers = await answer_all(knowledge, settings, dataset, indexed, options.limit)
        figures = figures_of(options, dataset, indexed, answers, knowledge.reranking)
    return replace(figures, rerank_failures=len(failures)), answers


def score_run(options: Options) -> None:
    dataset = load_dataset(options.folder, options.split, options.max_queries)
    found = scores(read_run(options.run_file or Path()), dataset.judged)
    print(
        f"| {options.folder.name} ({dataset.split}) | {len(dataset.questions):,} questions | "
        f"nDCG@10 {found.ndcg10:.4f} | Recall@10 {found.recall10:.4f} | Recall@100 {found.recall100:.4f} | "
        f"none found {found.empty:.4f} |"
    )
    if options.json_file is not None:
        options.json_file.write_text(json.dumps({"scores": asdict(found)}, indent=1))


def run(options: Options) -> None:
    if options.run_file is not None:
        score_run(options)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # the bot's loop (adapters/launch.py)
        figures, answers = runner.run(measure(options))
    print(report(figures))
    if options.json_file is not None:
        rankings = {"prompt": answers.prompt, "raw": answers.raw}
        options.json_file.write_text(json.dumps({"figures": asdict(figures), "rankings": rankings}, indent=1))


def parse(arguments: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--as", dest="mode", choices=("files", "messages"), default="files")
    parser.add_argument("--embedder", choices=("minilm", "wordllama"), default="minilm")
    parser.add_argument("--split", help="the qrels/<split>.tsv to score (default: the first there)")
    parser.add_argument("--limit", type=int, default=100, help="passages the raw search is asked for")
    parser.add_argument("--max-queries", type=int)
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the database and files in this folder")
    parser.add_argument("--json", dest="json_file", type=Path, help="write the figures and rankings here")
    parser.add_argument("--run", dest="run_file", type=Path, help="score this TREC run instead of the bot")
    parser.add_argument("--rerank-url", help="rerank on this /rerank server (else RERANK_BASE_URL's, if set)")
    parser.add_argument("--rerank-model", help="the model asked for (a Cohere- or Jina-shaped API)")
    parser.add_argument("--rerank-candidates", type=int, help="how many of fusion's best are reranked")
    found = parser.parse_args(arguments)
    return Options(
        found.folder,
        found.mode,
        found.embedder,
        found.split,
        found.limit,
        found.max_queries,
        found.keep.resolve() if found.keep else None,
        found.json_file,
        found.run_file,
        found.rerank_url,
        found.rerank_model,
        found.rerank_candidates,
    )


def main() -> None:
    configure_logging("warning")  # the bot's logs, without a line per file or passage added
    run(parse())


if __name__ == "__main__":
    main()
