"""Benchmark of the shared core alone: N concurrent conversations, no platform.

Every conversation streams through `ChatCore.answer` with the real `InferenceBackend`
(huggingface_hub's AsyncInferenceClient) from the loopback fake model server, which runs
in a process of its own so its CPU is not counted, onto a `MemorySurface` with a per-
conversation edit budget (like a Discord channel). History lives in the real Redis under
a key prefix of this run's own (`bench:<uuid>:`), deleted at the end.

    python -m bench.core --n 1,10,50,200,500 --tokens 300 --rate 50

Latencies compare the surface's write times with the server's token times, both
`time.time()` on the same machine: the server reports its timings on `GET /debug/requests`,
matched to conversations by a unique marker in each user message.

Each conversation gets its own `ChatCore` and `RedisHistoryStore`, sharing one backend and
one prompt builder: a core is only a holder of those, and an own store makes its
`round_trips` counter belong to exactly one turn, so the per-turn maximum is measured
rather than inferred from a shared total.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import math
import os
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


from bench.common import REDIS_URL, ModelServerProcess, TargetCheck, delete_keys, figures, machine, number, spread
from bot import loop
from bot.budget import WriteBudget
from bot.burst import ModelCallsFirst
from bot.core import PREPARING_MAX, ChatCore, Turn
from bot.logs import configure_logging
from bot.loop import freeze_startup_heap
from bot.model import InferenceBackend, create_backend
from bot.prompt import MistralTokenCounter, PromptBudget, PromptBuilder
from bot.render import RenderResult, SurfaceLimits
from bot.store import RedisHistoryStore, StoredMessage
from config.env import Env
from config.settings import Settings, load_settings
from tests.fakes.memory_surface import MemorySurface
from tests.fakes.model_server import Script, tokenize

AUTHOR_ID = "bench-user"
PREFILL_CONCURRENCY = 50
SURFACE_MAX_LENGTH = 2000

# Targets; which rounds each applies to is decided in `evaluate_targets`.
FIRST_VISIBLE_P99_MS = 50.0
FIRST_VISIBLE_MAX_N = 200
FINAL_VISIBLE_P99_MS = 100.0
MAX_ROUND_TRIPS = 2
CPU_PER_1K_TOKENS = 0.10


# -- options -------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    ns: tuple[int, ...]
    tokens: int
    rate: float
    first_token_delay: float
    edit_interval: float
    edit_limit: int
    edit_window: float
    history: int
    json_path: Path | None
    log_level: str
    profile_path: Path | None


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.core", description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="1,10,50,200,500", help="concurrent conversations per round, comma-separated")
    parser.add_argument("--tokens", type=int, default=300, help="tokens per reply")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s per reply")
    parser.add_argument("--first-token-delay", type=float, default=0.0, help="seconds before the first token")
    parser.add_argument("--edit-interval", type=float, default=1.0, help="SurfaceLimits.min_edit_interval")
    parser.add_argument("--edit-limit", type=int, default=5, help="edits per window per conversation")
    parser.add_argument("--edit-window", type=float, default=5.0, help="edit budget window (seconds)")
    parser.add_argument("--history", type=int, default=20, help="messages already in each thread")
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="write results to this file")
    parser.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--profile", dest="profile_path", type=Path, default=None,
                        help="cProfile the timed part of each round into PATH.N<n> (slows the run)")
    args = parser.parse_args(argv)
    ns = tuple(int(part) for part in args.n.split(",") if part.strip())
    if not ns or min(ns) < 1:
        parser.error("--n needs positive whole numbers, e.g. 1,10,50")
    return Options(
        ns=ns,
        tokens=args.tokens,
        rate=args.rate,
        first_token_delay=args.first_token_delay,
        edit_interval=args.edit_interval,
        edit_limit=args.edit_limit,
        edit_window=args.edit_window,
        history=args.history,
        json_path=args.json_path,
        log_level=args.log_level,
        profile_path=args.profile_path,
    )


# -- the fake model server, in its own process -----------------------------------------


# -- building the core ---------------------------------------------------------------


@dataclass(frozen=True)
class CoreParts:
    """What every conversation's core shares: settings, backend and prompt builder."""

    settings: Settings
    backend: InferenceBackend
    prompts: PromptBuilder
    preparing: asyncio.Semaphore  # one ChatCore's, shared as the bot's single core shares it
    model_calls: ModelCallsFirst  # the same: the bot's core and backend share one


def bench_settings(server_url: str, key_prefix: str, options: Options) -> Settings:
    env = Env(
        {
            "INFERENCE_BASE_URL": f"{server_url}/v1",
            "HF_TOKEN": "hf_bench",
            "MODEL_TIMEOUT_SECONDS": "60",
            "MAX_NEW_TOKENS": str(max(500, options.tokens)),
            "REDIS_URL": REDIS_URL,
            "REDIS_KEY_PREFIX": key_prefix,
            "HISTORY_MAX_MESSAGES": str(max(40, options.history + 2)),
            # The loopback model server holds idle connections cheaply, like vLLM or TGI (README).
            "MODEL_SPARE_CONNECTIONS": "64",
            # The model client's tuning knobs (MODEL_READ_BATCH_MS, …) can be tried from the shell.
            **{name: value for name, value in os.environ.items() if name.startswith("MODEL_")},
        }
    )
    return load_settings(env)


def build_parts(settings: Settings) -> CoreParts:
    """Like bot.app.build_core, minus the store (one per conversation, see the module doc)."""
    model_calls = ModelCallsFirst()
    backend = create_backend(settings.model, context_tokens=settings.context_tokens, model_calls=model_calls)
    if not isinstance(backend, InferenceBackend):
        raise RuntimeError(f"expected the real InferenceBackend, got {type(backend).__name__}")
    counter = MistralTokenCounter()
    budget = PromptBudget(settings.context_tokens, settings.model.sampling.max_new_tokens)
    prompts = PromptBuilder(counter, settings.system_prompt, budget)
    return CoreParts(settings, backend, prompts, asyncio.Semaphore(PREPARING_MAX), model_calls)


# -- conversations -------------------------------------------------------------------


@dataclass
class Conversation:
    thread: str
    marker: str
    store: RedisHistoryStore
    core: ChatCore
    surface: MemorySurface
    round_trips_before: int = 0
    result: RenderResult | None = None
    error: str | None = None

    @property
    def turn(self) -> Turn:
        return Turn(self.thread, AUTHOR_ID, "Bench", f"Please answer, conversation {self.marker}.")


def new_surface(options: Options) -> MemorySurface:
    limits = SurfaceLimits(max_length=SURFACE_MAX_LENGTH, min_edit_interval=options.edit_interval)
    return MemorySurface(limits, post_budgets=(), edit_budgets=[WriteBudget(options.edit_limit, options.edit_window)])


def new_conversations(n: int, parts: CoreParts, options: Options) -> list[Conversation]:
    round_id = uuid.uuid4().hex[:8]
    conversations = []
    for index in range(n):
        store = RedisHistoryStore.from_url(REDIS_URL, parts.settings.history)
        conversations.append(
            Conversation(
                thread=f"bench:{n}:{round_id}:{index}",
                marker=f"m-{round_id}-{index}-{uuid.uuid4().hex[:8]}",
                store=store,
                core=ChatCore(parts.backend, store, parts.prompts, parts.preparing, parts.model_calls),
                surface=new_surface(options),
            )
        )
    return conversations


async def prefill(conversations: Sequence[Conversation], history: int, reply: str, prompts: PromptBuilder) -> None:
    """Give each thread `history` earlier messages (user/assistant pairs), before timing.

    Each carries its token count, as messages the core stores do.
    """
    gate = asyncio.Semaphore(PREFILL_CONCURRENCY)
    reply_tokens = prompts.count(reply)

    async def one(conversation: Conversation) -> None:
        async with gate:
            for index in range(history):
                if index % 2 == 0:
                    text = f"Earlier question {index // 2}?"
                    question = StoredMessage("user", text, AUTHOR_ID, "Bench", time.time(), prompts.count(text))
                    await conversation.store.begin_turn(conversation.thread, question)
                else:
                    earlier = StoredMessage("assistant", reply, at=time.time(), tokens=reply_tokens)
                    await conversation.store.add_reply(conversation.thread, earlier)
            await conversation.store.ping()  # opens the connection even with --history 0
            conversation.round_trips_before = conversation.store.round_trips

    await asyncio.gather(*(one(conversation) for conversation in conversations))


async def answer(conversation: Conversation, go: asyncio.Event) -> None:
    await go.wait()
    try:
        conversation.result = await conversation.core.answer(conversation.turn, conversation.surface)
    except Exception as error:  # noqa: BLE001 - answer() promises not to raise; record it if it does
        conversation.error = f"{type(error).__name__}: {error}"


@dataclass(frozen=True)
class Timed:
    cpu_seconds: float
    wall_seconds: float
    server_cpu_seconds: float


async def run_together(
    conversations: Sequence[Conversation], server_cpu: Callable[[], float], profile_path: Path | None = None
) -> Timed:
    """Start every turn at once; measure this process's CPU (all threads) until all end."""
    go = asyncio.Event()
    tasks = [asyncio.create_task(answer(conversation, go)) for conversation in conversations]
    await asyncio.sleep(0)  # every task is now parked on `go`
    gc.collect()
    profiler = cProfile.Profile() if profile_path else None
    cpu, wall, server = time.process_time(), time.perf_counter(), server_cpu()
    if profiler:
        profiler.enable()
    go.set()
    await asyncio.gather(*tasks)
    if profiler:
        profiler.disable()
    timed = Timed(time.process_time() - cpu, time.perf_counter() - wall, server_cpu() - server)
    if profiler and profile_path:
        profiler.dump_stats(profile_path)
    return timed


async def warm_up(backend: InferenceBackend, pieces: int = 3) -> None:
    """Stream a few tokens once, so first-use imports and caches are not timed."""
    stream = backend.stream([{"role": "user", "content": "warm-up"}])
    seen = 0
    try:
        async for _ in stream:
            seen += 1
            if seen >= pieces:
                break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def close_stores(conversations: Sequence[Conversation]) -> None:
    await asyncio.gather(*(conversation.store.aclose() for conversation in conversations))


# -- measuring -----------------------------------------------------------------------


@dataclass
class RoundResult:
    n: int
    completed: int
    correct: int
    first_visible_ms: dict[str, float | None]
    final_visible_ms: dict[str, float | None]
    edits_per_reply: dict[str, float]
    writes_per_reply: dict[str, float]
    round_trips_per_turn: dict[str, float]
    tokens: int
    cpu_seconds: float
    cpu_per_1k_tokens: float | None
    wall_seconds: float
    server_cpu_seconds: float
    server_late_ms: dict[str, float | None]  # how far the server's last token fell behind --rate
    failures: list[str] = field(default_factory=list)


def mean_max(values: Sequence[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values) if values else 0.0, "max": max(values, default=0.0)}


def by_marker(timings: Sequence[dict[str, Any]], markers: set[str]) -> dict[str, dict[str, Any]]:
    """The server's record for each conversation, found by the marker in its user message."""
    found: dict[str, dict[str, Any]] = {}
    for record in timings:
        marker = marker_in(record.get("last_user_message") or "")
        if marker in markers:
            found[marker] = record
    return found


def marker_in(content: str) -> str:
    """`Conversation.turn`'s text ends "… conversation <marker>.": the word before the period."""
    return content.rstrip(".").rsplit(" ", 1)[-1]


def squashed(text: str) -> str:
    return "".join(text.split())


def shows_exactly(surface: MemorySurface, expected: str) -> bool:
    """The surface's final messages show the model's text: exactly, or split only at whitespace."""
    if len(expected) <= SURFACE_MAX_LENGTH:
        return surface.messages == [expected]
    return squashed("".join(surface.messages)) == squashed(expected)


def conversation_failure(conversation: Conversation, record: dict[str, Any] | None, expected: str) -> str | None:
    result = conversation.result
    if conversation.error is not None:
        return f"{conversation.thread}: raised {conversation.error}"
    if result is None or result.failure is not None:
        detail = f"{result.failure.kind.name} {result.failure.detail}" if result and result.failure else "no result"
        return f"{conversation.thread}: {detail}"
    if record is None:
        return f"{conversation.thread}: the server has no request with marker {conversation.marker}"
    if not shows_exactly(conversation.surface, expected):
        return f"{conversation.thread}: surface text differs from the server's script"
    return None


def server_lateness_ms(record: dict[str, Any], rate: float) -> float | None:
    """How much longer the server took to send its tokens than --rate allows (its own lag)."""
    if rate <= 0 or not record.get("first_token_at") or not record.get("last_token_at"):
        return None
    ideal = (record["tokens_sent"] - 1) / rate
    return (record["last_token_at"] - record["first_token_at"] - ideal) * 1000


def measure(
    conversations: Sequence[Conversation], timings: Sequence[dict[str, Any]], timed: Timed, expected: str, rate: float
) -> RoundResult:
    records = by_marker(timings, {c.marker for c in conversations})
    first_ms: list[float] = []
    final_ms: list[float] = []
    failures: list[str] = []
    correct = 0
    for conversation in conversations:
        record = records.get(conversation.marker)
        failure = conversation_failure(conversation, record, expected)
        if failure:
            failures.append(failure)
        else:
            correct += 1
        surface = conversation.surface
        if record and record.get("first_token_at") and surface.first_visible_at is not None:
            first_ms.append((surface.first_visible_at - record["first_token_at"]) * 1000)
        if record and record.get("last_token_at") and surface.final_visible_at is not None:
            final_ms.append((surface.final_visible_at - record["last_token_at"]) * 1000)
    results = [c.result for c in conversations if c.result is not None]
    tokens = sum(len(tokenize(result.text)) for result in results)
    trips = [float(c.store.round_trips - c.round_trips_before) for c in conversations]
    late = [ms for ms in (server_lateness_ms(r, rate) for r in records.values()) if ms is not None]
    return RoundResult(
        n=len(conversations),
        completed=sum(1 for result in results if result.complete),
        correct=correct,
        first_visible_ms=spread(first_ms),
        final_visible_ms=spread(final_ms),
        edits_per_reply=mean_max([float(c.surface.edits) for c in conversations]),
        writes_per_reply=mean_max([float(len(c.surface.writes)) for c in conversations]),
        round_trips_per_turn=mean_max(trips),
        tokens=tokens,
        cpu_seconds=timed.cpu_seconds,
        cpu_per_1k_tokens=timed.cpu_seconds / (tokens / 1000) if tokens else None,
        wall_seconds=timed.wall_seconds,
        server_cpu_seconds=timed.server_cpu_seconds,
        server_late_ms=spread(late),
        failures=failures,
    )


async def run_round(n: int, parts: CoreParts, server: ModelServerProcess, options: Options) -> RoundResult:
    expected = Script(tokens=options.tokens).answer
    conversations = new_conversations(n, parts, options)
    try:
        await prefill(conversations, options.history, expected, parts.prompts)
        profile = options.profile_path.with_name(f"{options.profile_path.name}.N{n}") if options.profile_path else None
        timed = await run_together(conversations, server.cpu_seconds, profile)
        timings = await asyncio.to_thread(server.request_timings)
        return measure(conversations, timings, timed, expected, options.rate)
    finally:
        await close_stores(conversations)


# -- reporting -----------------------------------------------------------------------


def evaluate_targets(rows: Sequence[RoundResult]) -> list[TargetCheck]:
    def worst(values: Sequence[float | None]) -> float:
        present = [v for v in values if v is not None]
        return max(present) if present else math.inf

    small = [row for row in rows if row.n <= FIRST_VISIBLE_MAX_N]
    first = worst([row.first_visible_ms["p99"] for row in small])
    final = worst([row.final_visible_ms["p99"] for row in rows])
    trips = worst([row.round_trips_per_turn["max"] for row in rows])
    cpu = worst([row.cpu_per_1k_tokens for row in rows])
    complete = all(row.correct == row.n for row in rows)
    checks = [
        TargetCheck(
            f"first visible p99 ≤ {FIRST_VISIBLE_P99_MS:.0f} ms (N ≤ {FIRST_VISIBLE_MAX_N})",
            bool(small) and first <= FIRST_VISIBLE_P99_MS,
            f"worst {first:.1f} ms" if small else f"no round with N ≤ {FIRST_VISIBLE_MAX_N}",
        ),
        TargetCheck(f"final visible p99 ≤ {FINAL_VISIBLE_P99_MS:.0f} ms (all N)", final <= FINAL_VISIBLE_P99_MS,
                    f"worst {final:.1f} ms"),
        TargetCheck(f"Redis round trips per turn ≤ {MAX_ROUND_TRIPS}", trips <= MAX_ROUND_TRIPS, f"worst {trips:.0f}"),
        TargetCheck(f"CPU ≤ {CPU_PER_1K_TOKENS:.2f} s per 1,000 tokens", cpu <= CPU_PER_1K_TOKENS,
                    f"worst {cpu:.3f} s"),
        TargetCheck("every reply complete and shown exactly", complete,
                    f"{sum(r.correct for r in rows)}/{sum(r.n for r in rows)} correct"),
    ]  # fmt: skip
    return checks


HEADER = (
    f"{'N':>5} | {'first p50/p99 ms':>17} | {'final p50/p99 ms':>17} | {'edits mean/max':>14} | "
    f"{'writes mean/max':>15} | {'RT/turn max':>11} | {'CPU s/1k tok':>12} | {'done/N':>9} | {'wall s':>6} | "
    f"{'srv CPU s':>9} | {'srv late p99 ms':>15} | failures"
)


def format_row(row: RoundResult) -> str:
    first = figures(row.first_visible_ms)
    final = figures(row.final_visible_ms)
    edits = f"{row.edits_per_reply['mean']:.2f}/{row.edits_per_reply['max']:.0f}"
    writes = f"{row.writes_per_reply['mean']:.2f}/{row.writes_per_reply['max']:.0f}"
    cpu = "-" if row.cpu_per_1k_tokens is None else f"{row.cpu_per_1k_tokens:.4f}"
    done = f"{row.completed}/{row.n}"
    return (
        f"{row.n:>5} | {first:>17} | {final:>17} | {edits:>14} | {writes:>15} | "
        f"{row.round_trips_per_turn['max']:>11.0f} | {cpu:>12} | {done:>9} | {row.wall_seconds:>6.2f} | "
        f"{row.server_cpu_seconds:>9.2f} | {number(row.server_late_ms['p99']):>15} | {len(row.failures)}"
    )


def print_header(options: Options, info: dict[str, Any]) -> None:
    print(
        f"bench.core: {options.tokens} tokens at {options.rate:g}/s, "
        f"first-token delay {options.first_token_delay:g} s, edit interval {options.edit_interval:g} s, "
        f"edit budget {options.edit_limit}/{options.edit_window:g} s, history {options.history} messages"
    )
    print(f"machine: {info['nproc']} CPUs, {info['cpu_model']}, Python {info['python']}")
    print(HEADER)
    print("-" * len(HEADER))


def print_summary(rows: Sequence[RoundResult], checks: Sequence[TargetCheck]) -> None:
    for row in rows:
        for failure in row.failures[:5]:
            print(f"  N={row.n} failure: {failure}")
        if len(row.failures) > 5:
            print(f"  N={row.n}: … and {len(row.failures) - 5} more failures")
    print()
    for check in checks:
        print(f"{'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}")


def write_json(path: Path, options: Options, info: dict[str, Any], rows: Sequence[RoundResult],
               checks: Sequence[TargetCheck]) -> None:  # fmt: skip
    data = {
        "options": asdict(options),
        "machine": info,
        "rounds": [asdict(row) for row in rows],
        "targets": [asdict(check) for check in checks],
    }
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


# -- main ----------------------------------------------------------------------------


def raise_open_files_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def run(options: Options, server: ModelServerProcess, prefix: str) -> list[RoundResult]:
    settings = bench_settings(server.base_url, prefix, options)
    parts = await asyncio.to_thread(build_parts, settings)  # tokenizer load: setup, not timed
    await parts.backend.warm()  # as bot.app.build_core does
    freeze_startup_heap()
    await warm_up(parts.backend)
    rows = []
    try:
        for n in options.ns:
            row = await run_round(n, parts, server, options)
            print(format_row(row), flush=True)
            rows.append(row)
    finally:
        await parts.backend.aclose()
        await delete_keys(prefix)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    configure_logging(options.log_level.upper())
    # Per conversation: one model connection, one Redis connection, plus headroom.
    raise_open_files_limit(4 * max(options.ns) + 256)
    info = machine()
    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    print_header(options, info)
    with ModelServerProcess(
        tokens=options.tokens, rate=options.rate, first_token_delay=options.first_token_delay
    ) as server:
        rows = loop.run(run(options, server, prefix))
    checks = evaluate_targets(rows)
    print_summary(rows, checks)
    if options.json_path is not None:
        write_json(options.json_path, options, info, rows, checks)
    return 0 if all(check.passed for check in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
