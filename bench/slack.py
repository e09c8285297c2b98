"""Benchmark of the Slack adapter: the real bot process, a fake Slack enforcing tier limits.

    python -m bench.slack [--n 1,10,50] [--modes off,auto] [--json PATH]
    python -m bench.slack --workers 4 [--n 50,200,1000] [--delay-ms 50 --model-delay-ms 20]

The bot runs as `python -m bot slack` in Socket Mode against `FakeSlack` in this process,
which enforces Slack's per-workspace method limits (its defaults, see
tests/fakes/slack_server.py). The model is `python -m tests.fakes.model_server` in a process
of its own. Each round sends N mentions at once, each from its own person in its own channel,
in one workspace; every round starts in a fresh workspace (new team id), so its rate-limit
buckets and the bot's write budgets start full, as in a workspace that was quiet before.
The bot processes run on one CPU, this process and the model server on the others, as if they
were the remote services they stand in for (`--no-pin` lets them share every CPU).

Times compare the fake's `time.time()` stamps (acks, each message's edit history) with the
model server's (`GET /debug/requests`), matched by a marker in each question.

With `--workers W` the bot runs as W HTTP-mode workers (`SLACK_SIGNING_SECRET`, a `PORT` each)
sharing one Redis, and the fake delivers each event, signed, to one worker in turn (as a load
balancer would); the ack is the worker's HTTP answer. The same rounds run first with one HTTP
worker (`--no-compare` skips it), for the CPU comparison. `--delay-ms` and `--model-delay-ms`
put the delay proxy (bench/delay_proxy.py) between the workers and the fake Slack (Web API,
and the event deliveries to each worker) and the model server; the rounds then run without the
proxy, through it with no delay, and with the delay. What the delay adds is measured against the
proxy with no delay (see bench.discord). These runs use HTTP mode even with one worker.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from adapters.slack_bot import to_mrkdwn
from bench.common import (
    REDIS_URL,
    CpuSplit,
    ModelServerProcess,
    Phase,
    RedisUsage,
    TargetCheck,
    add_scale_options,
    allow_open_files,
    connections_opened,
    delay_allowed_ms,
    delete_keys,
    describe_problems,
    figures,
    free_port,
    logged_problems,
    machine,
    number,
    phase_checks,
    pin_process,
    plan_phases,
    process_cpu_seconds,
    redis_routes,
    redis_url,
    redis_usage,
    shared_core_env,
    split_cpus,
    spread,
)
from bench.delay_proxy import DelayProxy, Route, optional_proxy
from tests.fakes.model_server import Script
from tests.fakes.slack_server import FakeSlack, RecordedCall, SlackLimits
from tests.slack_harness import INDICATOR, SIGNING_SECRET, BotProcess, SlackHarness

ACK_MAX_S = 1.0
FIRST_P99_MS = 500.0
FIRST_MAX_N = 10
FINAL_P99_MS = 1500.0
ROUND_TIMEOUT_S = 120.0  # longer in proportion above LARGE_N mentions
STOP_SECONDS = 30.0  # SIGTERM → exit: the bot's own grace for replies being written (20 s) and some more
WARNING = "⚠️"
MEDIUM_N = 50
MEDIUM_FIRST_P99_MS = 1000.0
FIRST_STILL_MARGIN = 1.05
# The cores the workers have to themselves: the fake Slack and the model server need about one.
BOT_CORES = max(1, (os.cpu_count() or 2) - 1)
LARGE_N = 200
LARGE_DONE_AFTER_MODEL_S = 10.0
MESSAGE_WRITES = ("chat.postMessage", "chat.update", "chat.startStream", "chat.appendStream", "chat.stopStream")
MODE_NAMES = {"off": "chat.update (SLACK_STREAMING=off)", "auto": "native streams (SLACK_STREAMING=auto)"}


@dataclass(frozen=True)
class Options:
    ns: tuple[int, ...]
    modes: tuple[str, ...]
    tokens: int
    rate: float
    first_token_delay: float
    json_path: Path | None
    workers: int = 1
    compare: bool = True
    delay_ms: float = 0.0
    model_delay_ms: float = 0.0
    redis_delay_ms: float = 0.0
    pin: bool = True

    @property
    def delayed(self) -> bool:
        return max(self.delay_ms, self.model_delay_ms, self.redis_delay_ms) > 0

    @property
    def http(self) -> bool:
        """HTTP-mode workers (several, or a delayed run); else one process in Socket Mode."""
        return self.workers > 1 or self.delayed

    @property
    def phases(self) -> list[Phase]:
        return plan_phases(self.workers, self.delayed, self.compare)


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.slack", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n",
        default=None,
        help="simultaneous mentions per round, comma-separated (default 1,10,50; with --workers > 1 50,200,1000)",
    )
    add_scale_options(parser, "Slack (Web API and event delivery)")
    parser.add_argument("--modes", default="off,auto", help="SLACK_STREAMING values to run, comma-separated")
    parser.add_argument("--tokens", type=int, default=300, help="tokens per reply")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s per reply")
    parser.add_argument("--first-token-delay", type=float, default=0.2, help="seconds before the first token")
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="write results to this file")
    args = parser.parse_args(argv)
    ns = tuple(
        int(part) for part in (args.n or ("50,200,1000" if args.workers > 1 else "1,10,50")).split(",") if part.strip()
    )
    modes = tuple(part.strip() for part in args.modes.split(",") if part.strip())
    if not ns or min(ns) < 1:
        parser.error("--n needs positive whole numbers, e.g. 1,10,50")
    if not modes or any(mode not in MODE_NAMES for mode in modes):
        parser.error("--modes takes off and/or auto")
    if args.workers < 1 or min(args.delay_ms, args.model_delay_ms, args.redis_delay_ms) < 0:
        parser.error("--workers needs ≥ 1 and the delays ≥ 0")
    return Options(
        ns,
        modes,
        args.tokens,
        args.rate,
        args.first_token_delay,
        args.json_path,
        workers=args.workers,
        compare=args.compare,
        delay_ms=args.delay_ms,
        model_delay_ms=args.model_delay_ms,
        redis_delay_ms=args.redis_delay_ms,
        pin=args.pin,
    )


# -- the bot processes of a set-up -------------------------------------------------------


@dataclass
class Mention:
    channel: str
    user: str
    marker: str
    ts: str = ""
    envelope: str = ""  # Socket Mode
    sent_at: float | None = None  # when the event went to the bot (time.time())
    acked_at: float | None = None
    redeliveries: int = 0  # Slack's retries after a timed-out or failed delivery (HTTP mode)


@dataclass
class Workers:
    """The bot processes of one set-up, and how an event reaches them: over the Socket Mode
    connection, or signed to the HTTP workers in turn (`urls`, through the proxy when delayed)."""

    harnesses: list[SlackHarness]
    urls: list[str] = field(default_factory=list)
    delivered: int = 0

    @property
    def fake(self) -> FakeSlack:
        return self.harnesses[0].fake

    @property
    def bots(self) -> list[BotProcess]:
        return [bot for harness in self.harnesses for bot in harness.bots]

    def running(self) -> bool:
        return all(bot.running for bot in self.bots)

    def report(self) -> str:
        return "\n".join(harness.report() for harness in self.harnesses)

    def cpu_seconds(self) -> float:
        return sum(process_cpu_seconds(bot.pid) for bot in self.bots)

    async def deliver(self, item: Mention) -> None:
        fake = self.fake
        event = fake.app_mention_event(item.channel, item.user, item.marker)
        item.ts = event["ts"]
        if not self.urls:
            item.envelope = await fake.send_event(event)
            return
        url = self.urls[self.delivered % len(self.urls)]
        self.delivered += 1
        item.sent_at = time.time()
        attempts = await fake.deliver_event_http(url, fake.event_callback(event), signing_secret=SIGNING_SECRET)
        item.redeliveries = len(attempts) - 1
        status = attempts[-1][0]
        if status is not None and 200 <= status < 300:
            item.acked_at = time.time()

    async def stop(self) -> int:
        """SIGTERM every process; the first non-zero exit status (-9: killed after STOP_SECONDS), else 0."""
        codes = await asyncio.gather(*(bot.stop(STOP_SECONDS) for bot in self.bots if bot.running))
        return next((code for code in codes if code), 0)


# -- one round --------------------------------------------------------------------------


@dataclass
class RoundResult:
    mode: str
    n: int
    team: str
    ack_ms: dict[str, float | None]
    wait_ms: dict[str, float | None]  # the mention's delivery -> first text (what the person waits)
    first_ms: dict[str, float | None]
    final_ms: dict[str, float | None]
    writes_per_reply: dict[str, float]
    writes_by_method: dict[str, int]
    status_calls: int
    ratelimited: int
    ratelimited_by_method: dict[str, int]
    completed: int
    tokens: int
    bot_cpu_seconds: float
    cpu_per_1k_tokens: float | None
    wall_seconds: float
    connections_opened: int  # to the fake Slack's Web API, during the round (see connections_opened)
    redis: RedisUsage  # what the bots' Redis did during the round
    failures: list[str] = field(default_factory=list)
    redeliveries: int = 0
    phase: str = ""  # the set-up (workers, delay) when a run compares several


def expected_text(mode: str, options: Options) -> str:
    answer = Script(tokens=options.tokens).answer
    return to_mrkdwn(answer) if mode == "off" else answer


def reply_of(fake: FakeSlack, mention: Mention) -> list[Any]:
    return [m for m in fake.messages_in(mention.channel, mention.ts) if m.bot_id == fake.bot_id and m.ts != mention.ts]


def final_seen_at(fake: FakeSlack, mention: Mention, expected: str) -> float | None:
    replies = reply_of(fake, mention)
    if len(replies) != 1:
        return None
    return next((at for at, text in replies[0].history if text == expected), None)


def failure_shown(fake: FakeSlack, mention: Mention) -> str | None:
    """The reason shown when the reply ended with "⚠️ …" instead of the answer."""
    replies = reply_of(fake, mention)
    text = replies[-1].history[-1][1] if replies else ""
    return text[text.index(WARNING) :][:120] if WARNING in text and not text.endswith(INDICATOR) else None


def answered(fake: FakeSlack, mention: Mention, expected: str) -> bool:
    """The reply is over: the whole answer, or a reason why not."""
    return final_seen_at(fake, mention, expected) is not None or failure_shown(fake, mention) is not None


def writes_for(calls: Sequence[RecordedCall], mention: Mention, reply_ts: str | None) -> list[RecordedCall]:
    """`calls`: the round's calls in the mention's channel."""
    out = []
    for call in calls:
        if call.method not in MESSAGE_WRITES:
            continue
        if call.params.get("thread_ts") == mention.ts or (reply_ts and call.params.get("ts") == reply_ts):
            out.append(call)
    return out


async def run_round(workers: Workers, model: ModelServerProcess, mode: str, n: int, options: Options) -> RoundResult:
    fake = workers.fake
    team = workers.harnesses[0].new_workspace()
    round_id = uuid.uuid4().hex[:6]
    mentions = []
    for index in range(n):
        channel, user = f"C{round_id.upper()}{index:03d}", f"U{round_id.upper()}{index:03d}"
        fake.add_channel(channel, f"bench-{round_id}-{index}")
        fake.add_user(user, f"person{index}")
        mentions.append(Mention(channel, user, f"bench {round_id} {index}"))
    expected = expected_text(mode, options)
    calls_at, deliveries_at, limited_at = len(fake.calls), len(fake.deliveries), fake.ratelimited_count
    # The fake keeps every message and call of every round: a full collection of that heap stalls
    # it for tens of milliseconds, which would land in the middle of a round's deliveries.
    gc.collect()
    gc.freeze()
    cpu = workers.cpu_seconds()
    redis_before = await redis_usage()
    started = time.perf_counter()
    await asyncio.gather(*(workers.deliver(item) for item in mentions))
    deadline = time.monotonic() + ROUND_TIMEOUT_S * max(1.0, n / LARGE_N)
    while not all(answered(fake, item, expected) for item in mentions) and time.monotonic() < deadline:
        if not workers.running():
            raise RuntimeError(f"a bot exited during the round\n{workers.report()}")
        await asyncio.sleep(0.05)
    wall = time.perf_counter() - started
    # Let trailing calls (a stream's stop after its last append) land before counting writes.
    await settle(fake)
    bot_cpu = workers.cpu_seconds() - cpu
    redis = await redis_usage() - redis_before

    timings = {record.get("last_user_message"): record for record in await asyncio.to_thread(model.request_timings)}
    calls = fake.calls[calls_at:]
    calls_by_channel: dict[str, list[RecordedCall]] = {}
    for call in calls:
        calls_by_channel.setdefault(str(call.params.get("channel")), []).append(call)
    sent = {d.envelope_id: d.sent_at for d in fake.deliveries[deliveries_at:]}
    acks, waits, firsts, finals, writes, failures = [], [], [], [], [], []
    completed = 0
    for item in mentions:
        if item.envelope:  # Socket Mode: the fake's own records
            item.sent_at, item.acked_at = sent[item.envelope], fake.acks.get(item.envelope)
        assert item.sent_at is not None
        if item.acked_at is None:
            failures.append(f"{item.channel}: event never acked")
        else:
            acks.append((item.acked_at - item.sent_at) * 1000)
        record = timings.get(item.marker)
        replies = reply_of(fake, item)
        final_at = final_seen_at(fake, item, expected)
        if final_at is not None:
            completed += 1
        elif reason := failure_shown(fake, item):
            failures.append(f"{item.channel}: the reply shows {reason!r}")
        else:
            failures.append(f"{item.channel}: {len(replies)} replies, final text not shown")
        if record is None:
            failures.append(f"{item.channel}: no model request")
            continue
        if replies:
            waits.append((replies[0].history[0][0] - item.sent_at) * 1000)
        if replies and record.get("first_token_at"):
            firsts.append((replies[0].history[0][0] - record["first_token_at"]) * 1000)
        if final_at is not None and record.get("last_token_at"):
            finals.append((final_at - record["last_token_at"]) * 1000)
        writes.append(len(writes_for(calls_by_channel.get(item.channel, []), item, replies[0].ts if replies else None)))
    by_method: dict[str, int] = {}
    limited: dict[str, int] = {}
    for call in calls:
        if call.method in MESSAGE_WRITES:
            by_method[call.method] = by_method.get(call.method, 0) + 1
        if call.status == 429:
            limited[call.method] = limited.get(call.method, 0) + 1
    tokens = completed * options.tokens
    return RoundResult(
        mode=mode,
        n=n,
        team=team,
        ack_ms=spread(acks),
        wait_ms=spread(waits),
        first_ms=spread(firsts),
        final_ms=spread(finals),
        writes_per_reply={"mean": sum(writes) / len(writes) if writes else 0.0, "max": float(max(writes, default=0))},
        writes_by_method=by_method,
        status_calls=sum(1 for call in calls if call.method == "assistant.threads.setStatus"),
        ratelimited=fake.ratelimited_count - limited_at,
        ratelimited_by_method=limited,
        completed=completed,
        tokens=tokens,
        bot_cpu_seconds=bot_cpu,
        cpu_per_1k_tokens=bot_cpu / (tokens / 1000) if tokens else None,
        wall_seconds=wall,
        connections_opened=connections_opened(
            (c.connection for c in fake.calls[:calls_at]), (c.connection for c in calls)
        ),
        redis=redis,
        failures=failures,
        redeliveries=sum(item.redeliveries for item in mentions),
    )


async def settle(fake: FakeSlack, quiet: float = 0.5, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    seen = len(fake.calls)
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if len(fake.calls) != seen:
            seen, quiet_since = len(fake.calls), time.monotonic()
        elif time.monotonic() - quiet_since >= quiet:
            return


# -- targets and output -------------------------------------------------------------------


def evaluate(rows: Sequence[RoundResult]) -> list[TargetCheck]:
    def worst(values: Sequence[float | None]) -> float:
        present = [v for v in values if v is not None]
        return max(present) if present else float("inf")

    ack = worst([row.ack_ms["max"] for row in rows])
    limited = sum(row.ratelimited for row in rows)
    done, total = sum(row.completed for row in rows), sum(row.n for row in rows)
    final = worst([row.final_ms["p99"] for row in rows])
    small = [row for row in rows if row.n <= FIRST_MAX_N]
    first = worst([row.first_ms["p99"] for row in small])

    def where(metric: str, limit: float) -> str:
        over = [f"{row.mode} N={row.n}" for row in rows if (getattr(row, metric)["p99"] or 0) > limit]
        return f" (over at {', '.join(over)})" if over else ""

    checks = [
        TargetCheck(f"every envelope acked within {ACK_MAX_S:g} s", ack <= ACK_MAX_S * 1000, f"worst {ack:.1f} ms"),
        TargetCheck("zero 429s served", limited == 0, f"{limited} served"),
        TargetCheck("every reply completed", done == total, f"{done}/{total}"),
        TargetCheck(
            f"final text p99 ≤ {FINAL_P99_MS / 1000:g} s after the last token (every N)",
            final <= FINAL_P99_MS,
            f"worst {final:.0f} ms{where('final_ms', FINAL_P99_MS)}",
        ),
    ]
    if small:
        name = f"first text p99 ≤ {FIRST_P99_MS / 1000:g} s after the first token (N ≤ {FIRST_MAX_N})"
        checks.append(TargetCheck(name, first <= FIRST_P99_MS, f"worst {first:.0f} ms"))
    return checks


def evaluate_several(rows: Sequence[RoundResult]) -> list[TargetCheck]:
    """With several workers, also: at N = 200 every reply complete within 10 s of the model finishing."""
    checks = evaluate(rows)
    for row in rows:
        if row.n == LARGE_N:
            slowest = row.final_ms["max"] if row.completed == row.n else None
            name = (
                f"{row.mode} N={row.n}: every reply complete within {LARGE_DONE_AFTER_MODEL_S:g} s of the "
                "model finishing"
            )
            checks.append(
                TargetCheck(
                    name,
                    slowest is not None and slowest <= LARGE_DONE_AFTER_MODEL_S * 1000,
                    f"{row.completed}/{row.n} complete, slowest {number(slowest, 0)} ms",
                )
            )
    return checks


def first_text_still(rows: Sequence[RoundResult], phases: Sequence[Phase]) -> list[TargetCheck]:
    """First text at N = 50 with several workers: within 1 s p99, or, where one worker is not
    (fifty replies in one workspace are posted whole: chat.update's tier can't carry them live),
    no later than with one worker."""
    one = {(row.mode, row.n): row.first_ms["p99"] for row in rows if row.phase == phases[0].label}
    several = {phase.label for phase in phases[1:] if not phase.through_proxy}
    checks = []
    for row in rows:
        if row.n != MEDIUM_N or row.phase not in several:
            continue
        first, single = row.first_ms["p99"], one.get((row.mode, row.n))
        limit = max(MEDIUM_FIRST_P99_MS, (single or 0.0) * FIRST_STILL_MARGIN)
        checks.append(
            TargetCheck(
                f"{row.phase}, {row.mode} N={row.n}: first text p99 ≤ {limit / 1000:.2f} s "
                f"(1 s, or one worker's {number(single, 0)} ms + {FIRST_STILL_MARGIN - 1:.0%})",
                first is not None and first <= limit,
                f"{number(first, 0)} ms",
            )
        )
    return checks


def evaluate_run(options: Options, rows: Sequence[RoundResult]) -> list[TargetCheck]:
    def lags(row: RoundResult) -> dict[str, float | None]:
        return {f"{lag} {key}": getattr(row, f"{lag}_ms")[key] for lag in ("first", "final") for key in ("p50", "p99")}

    return phase_checks(
        rows,
        lambda row: row.phase,
        lambda row: f"{row.mode} N={row.n}",
        evaluate_several if options.workers > 1 else evaluate,
        options.phases,
        lambda row: row.cpu_per_1k_tokens,
        lags,
        lambda row: row.connections_opened,
        delay_allowed_ms(options.delay_ms, options.model_delay_ms, options.redis_delay_ms),
        2 * options.delay_ms,
    ) + (first_text_still(rows, options.phases) if options.workers > 1 and options.compare else [])


HEADER = (
    f"{'mode':>4} | {'N':>4} | {'ack p50/p99/max ms':>18} | {'mention→text p50/p99':>20} | "
    f"{'first p50/p99 ms':>16} | {'final p50/p99 ms':>16} | "
    f"{'writes mean/max':>15} | {'429s':>4} | {'done/N':>9} | {'bot CPU s/1k tok':>16} | {'new conns':>9} | "
    f"{'Redis cmds, ms/reply':>20} | {'wall s':>6}"
)


def format_row(row: RoundResult) -> str:
    ack = figures(row.ack_ms, 0, ("p50", "p99", "max"))
    wait = figures(row.wait_ms, 0)
    first = figures(row.first_ms, 0)
    final = figures(row.final_ms, 0)
    writes = f"{row.writes_per_reply['mean']:.2f}/{row.writes_per_reply['max']:.0f}"
    cpu = "-" if row.cpu_per_1k_tokens is None else f"{row.cpu_per_1k_tokens:.3f}"
    return (
        f"{row.mode:>4} | {row.n:>4} | {ack:>18} | {wait:>20} | {first:>16} | {final:>16} | {writes:>15} | "
        f"{row.ratelimited:>4} | {f'{row.completed}/{row.n}':>9} | {cpu:>16} | {row.connections_opened:>9} | "
        f"{row.redis.per_reply(row.n):>20} | {row.wall_seconds:>6.2f}"
    )


def print_header(options: Options, model: ModelServerProcess, info: dict[str, Any], split: CpuSplit | None) -> None:
    limits = SlackLimits()
    tiers = ", ".join(
        f"{method} {limit.per_minute:g}/min burst {limit.burst}"
        for method, limit in limits.methods.items()
        if method
        in (
            "chat.update",
            "chat.startStream",
            "chat.appendStream",
            "chat.stopStream",
            "users.info",
            "assistant.threads.setStatus",
        )
    )
    post = limits.post_message_per_channel
    how = (
        f"{options.workers} HTTP-mode worker{'s' if options.workers > 1 else ''}, each event to the next in turn"
        if options.http
        else "Socket Mode"
    )
    print(f"bench.slack: the real bot (python -m bot slack, {how}) against FakeSlack enforcing per-workspace limits:")
    print(
        f"  {tiers}; chat.postMessage {post.per_minute:g}/min burst {post.burst} per channel" if post else f"  {tiers}"
    )
    print("  (chat.update Tier 3, users.info Tier 4, setStatus Tier 3; chat.startStream/stopStream ASSUMED Tier 2 and")
    print("   chat.appendStream Tier 4 - Slack publishes no tier for the stream start/stop methods)")
    print(f"model: {' '.join(model.command[1:])} (own process)")
    print("rounds: N simultaneous @mentions in one workspace, one channel and one person each; a fresh workspace")
    print("        per round. ms columns: ack = event sent -> ack; mention→text = event sent -> first text")
    print("        in Slack; first = first token at the server -> first text in Slack; final = last token ->")
    print("        complete text in Slack. writes = message writes per reply (post/update/stream calls);")
    print("        new conns = connections the bot opened to the Web API during the round")
    print(
        f"machine: {info['nproc']} CPUs, {info['cpu_model']}, Python {info['python']}; "
        f"{split.describe() if split else 'all processes share every CPU'}"
    )
    if options.delayed:
        print(
            f"delay: {options.delay_ms:g} ms each way between the workers and the fake Slack (Web API, event "
            f"delivery), {options.model_delay_ms:g} ms each way to the model server, {options.redis_delay_ms:g} ms "
            "each way to Redis"
        )
    print()
    print(HEADER)
    print("-" * len(HEADER))


def print_details(rows: Sequence[RoundResult]) -> None:
    print()
    for row in rows:
        methods = ", ".join(f"{k} {v}" for k, v in sorted(row.writes_by_method.items()))
        limited = ", ".join(f"{k} {v}" for k, v in sorted(row.ratelimited_by_method.items())) or "none"
        where = f"{row.phase}, " if row.phase else ""
        retried = f"; {row.redeliveries} deliveries retried" if row.redeliveries else ""
        print(f"{where}{row.mode} N={row.n}: writes {methods}; setStatus {row.status_calls}; 429s {limited}{retried}")
        for failure in row.failures[:5]:
            print(f"  failure: {failure}")
        if len(row.failures) > 5:
            print(f"  … and {len(row.failures) - 5} more failures")


def print_checks(checks: Sequence[TargetCheck]) -> None:
    print()
    for check in checks:
        print(f"{'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}")


# -- main -----------------------------------------------------------------------------------


async def run_phase(
    mode: str, phase: Phase, options: Options, model: ModelServerProcess, prefix: str, split: CpuSplit | None
) -> tuple[list[RoundResult], str, int]:
    """The rounds of one set-up, the warnings and errors its bot processes logged, and their exit
    status after SIGTERM."""
    code = 0
    rows = []
    cores = len(split.bot) if split else BOT_CORES
    async with FakeSlack() as fake:
        key_prefix = f"{prefix}{mode}:" if len(options.phases) == 1 else f"{prefix}{mode}:{phase.label}:"
        harnesses = [
            SlackHarness(
                fake,
                model.base_url,
                key_prefix,
                mode="http" if options.http else "socket",
                streaming=mode,  # type: ignore[arg-type]
                model_timeout=60,
                extra_env={"LOG_LEVEL": "warning", **shared_core_env(phase.workers, cores)},
            )
            for _ in range(phase.workers)
        ]
        for harness in harnesses:
            harness.port = free_port() if options.http else 0
        routes = delay_routes(options, phase, fake, model, harnesses) if phase.through_proxy else []
        async with optional_proxy(routes) as proxy:
            workers = Workers(harnesses, [through(proxy, h.events_url) for h in harnesses] if options.http else [])
            for harness in harnesses:
                if proxy is not None:
                    harness.extra_env.update(
                        SLACK_API_URL=proxy.via(fake.api_url),
                        INFERENCE_BASE_URL=f"{proxy.via(model.base_url)}/v1",
                        REDIS_URL=redis_url(proxy),
                    )
            try:
                for harness in harnesses:
                    bot = await harness.start_bot()
                    if split is not None:
                        pin_process(bot.pid, split.bot)
                await warm_up(workers, mode, options)
                for n in options.ns:
                    row = await run_round(workers, model, mode, n, options)
                    row.phase = phase.label if len(options.phases) > 1 else ""
                    print(format_row(row), flush=True)
                    rows.append(row)
            finally:
                code = await workers.stop()
    return rows, describe_problems(logged_problems(line for bot in workers.bots for line in bot.lines)), code


def delay_routes(
    options: Options, phase: Phase, fake: FakeSlack, model: ModelServerProcess, harnesses: Sequence[SlackHarness]
) -> list[Route]:
    """The Web API, the model server, Redis, and each worker's port (the fake's deliveries)."""
    platform = phase.delay(options.delay_ms)
    return [
        Route(fake.port, platform),
        Route(model.port, phase.delay(options.model_delay_ms)),
        *redis_routes(phase, options.redis_delay_ms),
        *(Route(h.port, platform) for h in harnesses),
    ]


def through(proxy: DelayProxy | None, url: str) -> str:
    return url if proxy is None else proxy.via(url)


async def warm_up(workers: Workers, mode: str, options: Options) -> None:
    """One untimed reply per process first: bolt's authorization, connection pools and imports
    are set up."""
    fake = workers.fake
    workers.harnesses[0].new_workspace()
    mentions = [Mention(FakeSlack.DEFAULT_CHANNEL, FakeSlack.DEFAULT_USER, "warm up")]
    for index in range(1, len(workers.harnesses)):
        channel = f"C0WARM{index:03d}"
        fake.add_channel(channel, f"warm-up-{index}")
        mentions.append(Mention(channel, FakeSlack.DEFAULT_USER, f"warm up {index}"))
    await asyncio.gather(*(workers.deliver(item) for item in mentions))
    expected = expected_text(mode, options)
    deadline = time.monotonic() + 60
    while any(final_seen_at(fake, item, expected) is None for item in mentions):
        if time.monotonic() > deadline or not workers.running():
            raise RuntimeError(f"warm-up reply did not complete\n{workers.report()}")
        await asyncio.sleep(0.05)
    await settle(fake)


async def main_async(options: Options) -> int:
    info = machine()
    prefix = f"bench:slack:{uuid.uuid4().hex[:8]}:"
    split = split_cpus(options.pin)
    if split is not None:
        os.sched_setaffinity(0, split.rest)  # the fake Slack here, the model server as it starts
    rows: list[RoundResult] = []
    problems, codes = [], []
    with ModelServerProcess(
        tokens=options.tokens, rate=options.rate, first_token_delay=options.first_token_delay
    ) as model:
        print_header(options, model, info, split)
        try:
            for mode in options.modes:
                for phase in options.phases:
                    if len(options.phases) > 1:
                        print(f"-- {MODE_NAMES[mode]}, {phase.label}", flush=True)
                    phase_rows, logged, code = await run_phase(mode, phase, options, model, prefix, split)
                    rows.extend(phase_rows)
                    codes.append(code)
                    problems.append(
                        f"bot log, {MODE_NAMES[mode]}, {phase.label}: {logged}; exit status after SIGTERM {code}"
                    )
        finally:
            await delete_keys(prefix)
    checks = evaluate_run(options, rows)
    print_details(rows)
    print("\n".join(problems))
    print_checks(checks)
    if options.json_path:
        data = {
            "options": asdict(options),
            "machine": info,
            "redis": REDIS_URL,
            "rounds": [asdict(row) for row in rows],
            "targets": [asdict(check) for check in checks],
        }
        options.json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    return 0 if all(check.passed for check in checks) and not any(codes) else 1


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    allow_open_files(8 * max(options.ns) + 512)
    return asyncio.run(main_async(options))


if __name__ == "__main__":
    sys.exit(main())
