"""Benchmark: the decision before an unasked answer. In a channel set to `/respond questions`, every message is looked
at before the bot knows whether to answer it: what that costs per message, by kind of message.

    python -m bench.respond [--messages 100000] [--embedder minilm|wordllama] [--count 1000] [--router-delay-ms 0]
                            [--min-confidence X] [--data-dir DIR]

In this process, with the bot's own classes: a `Responder` (bot.respond.decision) with a real `Knowledge` (the
embedder, then the engine on the embedded PostgreSQL) holding a made-up support server's chat
(bench/knowledge_corpus.py: `--messages` messages and 200 document passages, indexed as bench/knowledge.py indexes
them). `--count` messages of a busy help channel are decided, first one at a time, then 50 arriving at once
(asyncio.gather of 50 decisions); then the same again with ROUTER_MODEL set, its one-word classifier on the fake model
server (fakes/model_server.py, in a child process) answering YES to a question in the product's words or asking
how, NO to the others, after `--router-delay-ms`.

The mix: 40% chatter ("thanks!", "lol", "+1"), 20% statements that ask nothing ("deploying now"), 10% questions
addressed to someone else, 30% questions: half about what the indexed chat said (the corpus' own questions, as the
other benchmarks ask them), half about nothing it said (lunch, football, recipes). Per kind and overall: the decision's
p50 / p99 (ms), and CPU per 1,000 messages: this process's (the bot's side: the text check, the embedder, the engine's
client, the router's HTTP client) and the database's processes' (from /proc, as bench/knowledge.py reads them).

The channel has helpers, so RESPOND_MIN_CONFIDENCE's gate runs: a question the knowledge found passages for only
below it is decided `weakly_covered` (handed to them) rather than answered; `--min-confidence` sets it (default: the
embedding model's own). After the first table, each kind's questions with passages found, by their best relevance,
and how many each threshold would hand to the helpers: what RESPOND_MIN_CONFIDENCE's defaults were chosen from.

`--data-dir DIR` keeps the indexed database there and reuses it on the next run with the same --messages and
--embedder (MiniLM indexes about 40 messages a second: 100,000 take most of an hour).

`--marks N` measures instead what marking a help thread solved costs, click to searchable: the bot's own flow
(adapters.shared.helpdesk.solving over the real Redis and the same knowledge) keeps the solution in Redis, embeds
the question with its accepted answer and stores the passage; when it returns, a search in other words finds it. N
marks of five threads one after another (each unmarked before the next): the mark's p50 / p99, and how many of the
marked threads the next question in other words found first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import uvloop

from adapters.launch import configure_logging
from adapters.shared.helpdesk.solving import Marked, Solving
from adapters.shared.knowledge_sources.channels import KnowledgeChannels
from adapters.shared.solved_threads import Answer, HelpThread, Solutions
from bench.common import ROOT, free_port, http_get_json, machine
from bench.knowledge import (
    SCOPE,
    chat_passages,
    chat_questions,
    database_pids,
    document_passages,
    ingest,
    make_embedder,
    percentile,
)
from bench.knowledge_corpus import PRODUCT, SMALL_TALK, Community
from bot.knowledge.embedded import start_embedded_async, stop_embedded
from bot.knowledge.opener import KnowledgeOpener
from bot.knowledge.passages import DEPLOYMENT_SCOPE, Access
from bot.knowledge.postgres import PostgresEngine
from bot.knowledge.service import Knowledge
from bot.metrics import Metrics
from bot.model.backends import InferenceBackend
from bot.respond.decision import (
    ANSWER_KNOWN,
    ANSWER_ROUTED,
    SKIP_NOT_COVERED,
    SKIP_ROUTED,
    SKIP_WEAK,
    Decision,
    Responder,
    RespondMode,
    Unprompted,
)
from bot.state.redis_client import close, connect
from config.env import Env
from config.settings import load_settings
from fakes.harness.processes import REDIS_URL
from fakes.harness.server_folders import server_folder
from fakes.model_server import FakeModelServer, Script

BURST = 50
ROUTER = "bench/router-yes-no"
# Reasons that come after a search.
SEARCHED = frozenset({ANSWER_KNOWN, SKIP_NOT_COVERED, ANSWER_ROUTED, SKIP_ROUTED, SKIP_WEAK})
ROUTED = frozenset({ANSWER_ROUTED, SKIP_ROUTED})
INDEXED_MARK = "indexed.json"
PRODUCT_WORDS = frozenset(PRODUCT)
HOW = frozenset({"how", "what's"})

CHATTER, STATEMENT, ELSEWHERE, COVERED, UNCOVERED = "chatter", "statement", "to someone else", "covered", "uncovered"
KINDS = ((CHATTER, 0.4), (STATEMENT, 0.2), (ELSEWHERE, 0.1), (COVERED, 0.15), (UNCOVERED, 0.15))

# What a busy help channel says between its questions.
CHATTER_TEXTS = [
    "thanks!",
    "thank you so much",
    "ty",
    "thx!",
    "lol",
    "lmao",
    "haha yes",
    "good morning",
    "gm",
    "morning all",
    "+1",
    "same here",
    "ok cool",
    "nice",
    "🎉",
    "👍",
    "congrats!",
    "np",
    "that worked, thanks",
    "awesome, thanks a lot",
]
STATEMENTS = [
    "deploying now",
    "I'll look at it after lunch",
    "back in 10",
    "merged, it goes out with the next release",
    "restarting the staging cluster, give it five minutes",
    "pushed the new config to staging",
    "the build is green again",
    "I'm on call this week",
    "out tomorrow, ping Sam for reviews",
    "rolled the canary back to the previous version",
    "updated the runbook with the new steps",
    "the migration finished overnight",
    "heading into the planning meeting",
    "I fixed the flaky test in the pipeline",
    "moving the dashboard to the new region today",
]
# Questions the people in the channel ask one another (the adapter has removed their mentions).
TO_OTHERS = [
    "can you review my PR when you get a minute?",
    "are you still on the migration?",
    "did you get my message about the certificate?",
    "could you restart the runner for me?",
    "what time works for the postmortem?",
    "is the staging deploy yours?",
]
# Questions nothing in the community's chat is about: words outside its vocabulary.
OFF_TOPIC = [
    "does anyone know a good {food} place near the {place}?",
    "who won the {sport} match last night?",
    "what's the best way to cook {food} at home?",
    "any tips for a weekend trip to {city}?",
    "how long should I boil {food} for?",
    "where can I buy cheap {thing} in {city}?",
    "is the {sport} final on tv tonight?",
    "how do I get my cat to stop scratching the {thing}?",
]
FOODS = ["ramen", "sushi", "pizza", "tacos", "pasta", "dumplings", "risotto", "pho", "curry", "falafel"]
PLACES = ["station", "river", "museum", "park", "harbour", "market"]
SPORTS = ["football", "tennis", "cricket", "basketball", "rugby", "hockey"]
CITIES = ["Lisbon", "Kyoto", "Oslo", "Prague", "Montreal", "Valencia", "Krakow", "Seville"]
THINGS = ["sofa", "curtains", "bicycles", "houseplants", "rugs", "armchair", "sneakers"]


@dataclass(frozen=True)
class Said:
    kind: str
    unprompted: Unprompted


@dataclass
class Decided:
    said: Said
    decision: Decision
    ms: float
    bench_cpu: float = 0.0  # s, one at a time only
    database_cpu: float = 0.0


@dataclass
class Pass:
    """One pass over the messages: each decision, and the CPU of the whole pass."""

    decided: list[Decided] = field(default_factory=list)
    bench_cpu: float = 0.0
    database_cpu: float = 0.0
    wall: float = 0.0


def the_mix(count: int, seed: int = 1) -> list[Said]:
    """`count` messages of a busy help channel in KINDS' shares, shuffled."""
    rng = random.Random(seed)
    covered = iter(_cycle([q for q in chat_questions(20) if q not in SMALL_TALK], rng))
    said: list[Said] = []
    for kind, share in KINDS:
        for number in range(round(count * share)):
            if kind == CHATTER:
                text, elsewhere = rng.choice(CHATTER_TEXTS), False
            elif kind == STATEMENT:
                text, elsewhere = rng.choice(STATEMENTS), False
            elif kind == ELSEWHERE:
                text, elsewhere = (rng.choice(TO_OTHERS) if number % 2 else next(covered)), True
            elif kind == COVERED:
                text, elsewhere = next(covered), False
            else:
                text, elsewhere = _off_topic(rng), False
            unprompted = Unprompted("discord", "help", f"{kind}-{number}", text, to_someone_else=elsewhere)
            said.append(Said(kind, unprompted))
    rng.shuffle(said)
    return said[:count]


def _cycle(items: list[str], rng: random.Random) -> Iterator[str]:
    while True:
        rng.shuffle(items)
        yield from items


def _off_topic(rng: random.Random) -> str:
    return rng.choice(OFF_TOPIC).format(
        food=rng.choice(FOODS),
        place=rng.choice(PLACES),
        sport=rng.choice(SPORTS),
        city=rng.choice(CITIES),
        thing=rng.choice(THINGS),
    )


def database_cpu(data_dir: Path) -> float:
    """The database's CPU so far: its processes' (every thread, to the ns where schedstat is kept) and what the
    postmaster's children that have exited used (cutime + cstime, in ticks)."""
    pids = database_pids(data_dir)
    total = sum(_cpu_of(pid) for pid in pids)
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pids[0]}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return total


def _cpu_of(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0  # exited meanwhile


async def with_helpers() -> bool:
    """The channel has helpers: a weakly covered question is handed to them (RESPOND_MIN_CONFIDENCE's gate runs)."""
    return True


async def one_at_a_time(responder: Responder, said: Sequence[Said], access: Access, data_dir: Path) -> Pass:
    """Each message decided alone, its CPU measured around it (nothing else runs meanwhile)."""

    async def readable() -> Access | None:
        return access

    result = Pass()
    started = time.perf_counter()
    for message in said:
        database_before = database_cpu(data_dir)
        cpu_before = time.process_time()
        began = time.perf_counter()
        decision = await responder.decide(message.unprompted, RespondMode.QUESTIONS, readable, with_helpers)
        ms = (time.perf_counter() - began) * 1000
        cpu = time.process_time() - cpu_before
        database = database_cpu(data_dir) - database_before
        result.decided.append(Decided(message, decision, ms, cpu, database))
        result.bench_cpu += cpu
        result.database_cpu += database
    result.wall = time.perf_counter() - started
    return result


async def in_bursts(responder: Responder, said: Sequence[Said], access: Access, data_dir: Path) -> Pass:
    """BURST messages arriving at once, the next BURST once those are decided: each decision's time from the burst's
    arrival; the CPU of the whole pass."""

    async def readable() -> Access | None:
        return access

    async def decide(message: Said, arrived: float) -> Decided:
        decision = await responder.decide(message.unprompted, RespondMode.QUESTIONS, readable, with_helpers)
        return Decided(message, decision, (time.perf_counter() - arrived) * 1000)

    result = Pass()
    database_before, cpu_before, started = database_cpu(data_dir), time.process_time(), time.perf_counter()
    for start in range(0, len(said), BURST):
        arrived = time.perf_counter()
        result.decided += await asyncio.gather(*(decide(message, arrived) for message in said[start : start + BURST]))
    result.wall = time.perf_counter() - started
    result.bench_cpu = time.process_time() - cpu_before
    result.database_cpu = database_cpu(data_dir) - database_before
    return result


def ms(value: float) -> str:
    return f"{value:.3f}" if value < 1 else f"{value:.1f}"


def report(title: str, alone: Pass, burst: Pass) -> None:
    """The table: per kind and overall."""
    print(f"\n{title}")
    header = (
        f"{'kind':<16} {'n':>5} {'searched':>8} {'routed':>6} {'answered':>8} | {'alone p50':>9} {'p99 ms':>7} | "
        f"{'CPU s/1,000: bench':>18} {'database':>8} | {'50 at once p50':>14} {'p99 ms':>7}"
    )
    print(header)
    print("-" * len(header))
    by_kind = {kind: [d for d in alone.decided if d.said.kind == kind] for kind, _ in KINDS}
    burst_by_kind = {kind: [d for d in burst.decided if d.said.kind == kind] for kind, _ in KINDS}
    for kind, rows in [*by_kind.items(), ("all", alone.decided)]:
        burst_rows = burst_by_kind.get(kind, burst.decided)
        if not rows:
            continue
        times, burst_times = [d.ms for d in rows], [d.ms for d in burst_rows]
        searched = sum(1 for d in rows if d.decision.reason in SEARCHED)
        routed = sum(1 for d in rows if d.decision.reason in ROUTED)
        answered = sum(1 for d in rows if d.decision.answer)
        bench = sum(d.bench_cpu for d in rows) / len(rows) * 1000
        database = sum(d.database_cpu for d in rows) / len(rows) * 1000
        print(
            f"{kind:<16} {len(rows):>5} {searched:>8} {routed:>6} {answered:>8} | "
            f"{ms(statistics.median(times)):>9} {ms(percentile(times, 0.99)):>7} | "
            f"{bench:>18.3f} {database:>8.3f} | "
            f"{ms(statistics.median(burst_times)):>14} {ms(percentile(burst_times, 0.99)):>7}"
        )
    n = len(alone.decided)
    print(
        f"whole passes: one at a time {alone.wall:.2f} s, CPU {alone.bench_cpu / n * 1000:.3f} s bench + "
        f"{alone.database_cpu / n * 1000:.3f} s database per 1,000; 50 at once {burst.wall:.2f} s, CPU "
        f"{burst.bench_cpu / n * 1000:.3f} s bench + {burst.database_cpu / n * 1000:.3f} s database per 1,000"
    )
    reasons = Counter(f"{d.said.kind}: {d.decision.reason}" for d in alone.decided)
    print("decisions (one at a time): " + ", ".join(f"{key} {value}" for key, value in sorted(reasons.items())))
    searched_chatter = sorted(
        {
            d.said.unprompted.text
            for d in alone.decided
            if d.decision.reason in SEARCHED and d.said.kind in (CHATTER, STATEMENT)
        }
    )
    if searched_chatter:
        print("searched although they ask nothing: " + "; ".join(repr(text) for text in searched_chatter))


class RouterServer:
    """The fake model server in a child process (its CPU is not the bot's), as ROUTER_MODEL's server."""

    def __init__(self, delay_ms: float) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._command = [
            sys.executable,
            "-m",
            "bench.respond",
            "--serve-router",
            str(self.port),
            "--router-delay-ms",
            f"{delay_ms:g}",
        ]
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RouterServer:
        self._process = subprocess.Popen(self._command, cwd=ROOT, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the router's model server exited with {self._process.returncode}")
            with contextlib.suppress(OSError):
                http_get_json(f"{self.base_url}/health", timeout=1.0)
                return self
            time.sleep(0.05)
        raise RuntimeError("the router's model server did not start within 20 s")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)

    def requests(self) -> int:
        return len(http_get_json(f"{self.base_url}/debug/requests", timeout=30)["requests"])


def router_verdict(body: dict[str, Any], delay: float) -> Script:
    """YES to a question in the product's words or asking how to do something, NO to the others (who won the match,
    a good place for lunch), after `delay` seconds."""
    words = [word.strip("?,.!'") for word in str(body["messages"][-1]["content"]).casefold().split()]
    yes = bool(words) and (words[0] in HOW or any(word in PRODUCT_WORDS for word in words))
    return Script(text="YES" if yes else "NO", first_token_delay=delay)


CONFIDENCES = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


def confidence_report(alone: Pass) -> None:
    """The best relevance of each question the knowledge found passages for, by kind, and how many of them each
    RESPOND_MIN_CONFIDENCE would hand to the helpers (a weakly covered one is found, then gated: its hits count)."""
    best: dict[str, list[float]] = {}
    for decided in alone.decided:
        found = [hit.relevance for hit in decided.decision.found or () if not math.isnan(hit.relevance)]
        if found:
            best.setdefault(decided.said.kind, []).append(max(found))
    print("\nbest relevance of the questions with passages found (RESPOND_MIN_CONFIDENCE's scale)")
    for kind, values in sorted(best.items()):
        ranked = sorted(values)
        below = ", ".join(f"<{floor:g}: {sum(v < floor for v in ranked)}" for floor in CONFIDENCES)
        print(
            f"{kind:<12} {len(ranked):>4} found | min {ranked[0]:.3f} p10 {percentile(ranked, 0.1):.3f} "
            f"p50 {percentile(ranked, 0.5):.3f} max {ranked[-1]:.3f} | {below}",
            flush=True,
        )


async def serve_router(port: int, delay: float) -> None:
    server = FakeModelServer(Script(text="NO", first_token_delay=delay), port=port)
    server.responder = lambda body: router_verdict(body, delay)
    await server.start()
    await asyncio.Event().wait()


def responder_for(
    knowledge: Knowledge, router_url: str | None, min_confidence: float | None = None
) -> tuple[Responder, InferenceBackend]:
    """The bot's Responder, its settings read as the bot reads them (ROUTER_MODEL on the default model's server)."""
    env = {"INFERENCE_BASE_URL": f"{router_url or 'http://127.0.0.1:9'}/v1", "MODEL_TIMEOUT_SECONDS": "5"}
    if min_confidence is not None:
        env["RESPOND_MIN_CONFIDENCE"] = str(min_confidence)
    if router_url is not None:
        env["ROUTER_MODEL"] = ROUTER
    settings = load_settings(Env(env))
    backend = InferenceBackend()
    return Responder(backend, settings.models, settings.respond, Metrics(), lambda: knowledge), backend


async def indexed(folder: Path, messages: int, embedder_name: str) -> Path:
    """The database's data directory in `folder`, holding `messages` of the community indexed with the embedder
    (done now unless `folder` already holds them)."""
    data_dir = folder / "postgres"
    mark = folder / INDEXED_MARK
    wanted = {"messages": messages, "embedder": embedder_name}
    if mark.exists() and json.loads(mark.read_text()) == wanted:
        print(f"reusing the {messages:,} messages indexed in {folder}")
        return data_dir
    shutil.rmtree(data_dir, ignore_errors=True)
    database = await start_embedded_async(data_dir)
    knowledge = Knowledge(PostgresEngine(database.url), make_embedder(embedder_name, folder / "models"))
    await knowledge.start()
    community = Community()
    await knowledge.add(document_passages(community, 200))
    rate = await ingest(knowledge, chat_passages(community, messages, 0))
    print(f"indexed {messages:,} messages at {rate:,.0f} a second ({knowledge.embedder.name})", flush=True)
    async with await psycopg.AsyncConnection.connect(database.url, autocommit=True) as conn:
        await conn.execute("VACUUM ANALYZE knowledge_passages")
    await knowledge.aclose()
    await asyncio.to_thread(stop_embedded, database.data_dir)
    mark.write_text(json.dumps(wanted))
    return data_dir


# Questions with their accepted answers, and the next person's question in other words.
SOLVED_THREADS = (
    ("How do I reset the badge reader on floor 2?", "Hold its red button for ten seconds.", "badge reader frozen"),
    ("The VPN drops every night at 2am", "Update the client to 4.2: the nightly key rotation.", "vpn drops at night"),
    ("Where do visitors park?", "Garage under building B, level -2.", "parking for guests"),
    ("Printer on floor 3 prints blank pages", "Replace the toner cartridge, the drum is fine.", "printer empty pages"),
    ("How do I get a second monitor?", "Ask IT with the hardware form on the intranet.", "extra screen request"),
)


async def marks(knowledge: Knowledge, count: int) -> None:
    """`count` help threads marked solved, each timed from the click to searchable, then unmarked."""
    redis = connect(REDIS_URL, cluster=False)
    prefix = f"bench-solved-{uuid.uuid4().hex[:8]}:"

    async def opened() -> Knowledge:
        return knowledge

    channels = KnowledgeChannels(redis, prefix)
    solving = Solving(Solutions(redis, prefix, "bench"), KnowledgeOpener(opened, lambda _: None), "bench", channels)
    times, found = [], 0
    try:
        for number in range(count):
            question, answer_text, other_words = SOLVED_THREADS[number % len(SOLVED_THREADS)]
            asked = f"{question} ({number})"
            thread = HelpThread(SCOPE, "help", f"t{number}", "asker", asked, "#help", f"u{number}", "")
            started = time.perf_counter()
            marked, lost = await solving.mark(thread, Answer(f"m{number}", "", "the bot", answer_text, True), "asker")
            times.append((time.perf_counter() - started) * 1_000)
            assert marked is Marked.MARKED and not lost, (marked, lost)
            hits = await knowledge.search(other_words, Access((SCOPE, DEPLOYMENT_SCOPE)))
            found += bool(hits) and hits[0].passage.url == f"u{number}"
            await solving.unmark(SCOPE, f"t{number}")  # the next mark of the same words competes with none
    finally:
        await close(redis)
    print(f"{count} marks, embedder {knowledge.embedder.name}")
    print(f"mark -> searchable: p50 {statistics.median(times):.1f} ms, p99 {percentile(times, 0.99):.1f} ms")
    print(f"the next question in other words found the solved thread first: {found}/{count}")


async def run(arguments: argparse.Namespace) -> None:
    info = machine()
    print(
        f"bench.respond: {arguments.count:,} messages of a help channel in `/respond questions`, "
        f"{arguments.messages:,} indexed; {info['nproc']} CPUs, {info['cpu_model']}, Python {info['python']}; "
        f"load {os.getloadavg()[0]:.2f}"
    )
    kept = arguments.data_dir is not None
    folder = arguments.data_dir or server_folder("respond-bench-")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        data_dir = await indexed(folder, arguments.messages, arguments.embedder)
        database = await start_embedded_async(data_dir)
        knowledge = Knowledge(PostgresEngine(database.url), make_embedder(arguments.embedder, folder / "models"))
        await knowledge.start()
        if arguments.marks:
            await marks(knowledge, arguments.marks)
            await knowledge.aclose()
            await asyncio.to_thread(stop_embedded, database.data_dir)
            return
        access = Access((SCOPE, DEPLOYMENT_SCOPE), frozenset(str(channel) for channel in range(15)))
        said = the_mix(arguments.count)
        # A bot that has run a while: its pool's connections open, the database's caches warm (other messages).
        warm = the_mix(200, seed=2)
        responder, backend = responder_for(knowledge, None, arguments.min_confidence)
        await one_at_a_time(responder, warm, access, data_dir)
        print(f"embedder {knowledge.embedder.name}; load before measuring {os.getloadavg()[0]:.2f}", flush=True)
        alone = await one_at_a_time(responder, said, access, data_dir)
        burst = await in_bursts(responder, said, access, data_dir)
        await backend.aclose()
        report("no ROUTER_MODEL", alone, burst)
        confidence_report(alone)
        with RouterServer(arguments.router_delay_ms) as server:
            responder, backend = responder_for(knowledge, server.base_url, arguments.min_confidence)
            await one_at_a_time(responder, warm, access, data_dir)
            before = server.requests()
            alone = await one_at_a_time(responder, said, access, data_dir)
            between = server.requests()
            burst = await in_bursts(responder, said, access, data_dir)
            after = server.requests()
            await backend.aclose()
        report(
            f"ROUTER_MODEL on the fake model server, its word after {arguments.router_delay_ms:g} ms "
            f"(router requests: {between - before} one at a time, {after - between} 50 at once)",
            alone,
            burst,
        )
        print(f"\nload at the end {os.getloadavg()[0]:.2f}")
        await knowledge.aclose()
        await asyncio.to_thread(stop_embedded, database.data_dir)
    finally:
        if not kept:
            shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000, help="messages of the community indexed")
    parser.add_argument("--embedder", choices=("minilm", "wordllama"), default="minilm")
    parser.add_argument("--count", type=int, default=1_000, help="messages of the help channel decided")
    parser.add_argument("--router-delay-ms", type=float, default=0.0, help="the router model's first-token delay")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep (and reuse) the indexed database here")
    parser.add_argument(
        "--min-confidence", type=float, default=None, help="RESPOND_MIN_CONFIDENCE (default: the embedder's own)"
    )
    parser.add_argument("--marks", type=int, default=0, help="measure this many solved marks instead (see above)")
    parser.add_argument("--serve-router", type=int, default=None, help=argparse.SUPPRESS)  # the child process
    arguments = parser.parse_args()
    if arguments.serve_router is not None:
        uvloop.run(serve_router(arguments.serve_router, arguments.router_delay_ms / 1000))
        return
    configure_logging("info")  # the bot's default LOG_LEVEL: a decision's debug line is not written
    uvloop.run(run(arguments))  # the bot's event loop (adapters.launch)


if __name__ == "__main__":
    main()
