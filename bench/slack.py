"""Benchmark of the Slack adapter: the real bot process, a fake Slack enforcing tier limits.

    python -m bench.slack [--n 1,10,50] [--modes off,auto] [--json PATH]

The bot runs as `python -m bot slack` in Socket Mode against `FakeSlack` in this process,
which enforces Slack's per-workspace method limits (its defaults, see
tests/fakes/slack_server.py). The model is `python -m tests.fakes.model_server` in a process
of its own. Each round sends N mentions at once, each from its own person in its own channel,
in one workspace; every round starts in a fresh workspace (new team id), so its rate-limit
buckets and the bot's write budgets start full, as in a workspace that was quiet before.

Times compare the fake's `time.time()` stamps (acks, each message's edit history) with the
model server's (`GET /debug/requests`), matched by a marker in each question.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


from adapters.slack_bot import to_mrkdwn
from bench.common import (
    REDIS_URL, ModelServerProcess, TargetCheck, delete_keys, figures, machine, process_cpu_seconds, spread,
)  # fmt: skip
from tests.fakes.model_server import Script
from tests.fakes.slack_server import FakeSlack, RecordedCall, SlackLimits
from tests.slack_harness import BotProcess, SlackHarness

ACK_MAX_S = 1.0
FIRST_P99_MS = 500.0
FIRST_MAX_N = 10
FINAL_P99_MS = 1500.0
ROUND_TIMEOUT_S = 120.0
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


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.slack", description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="1,10,50", help="simultaneous mentions per round, comma-separated")
    parser.add_argument("--modes", default="off,auto", help="SLACK_STREAMING values to run, comma-separated")
    parser.add_argument("--tokens", type=int, default=300, help="tokens per reply")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s per reply")
    parser.add_argument("--first-token-delay", type=float, default=0.2, help="seconds before the first token")
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="write results to this file")
    args = parser.parse_args(argv)
    ns = tuple(int(part) for part in args.n.split(",") if part.strip())
    modes = tuple(part.strip() for part in args.modes.split(",") if part.strip())
    if not ns or min(ns) < 1:
        parser.error("--n needs positive whole numbers, e.g. 1,10,50")
    if not modes or any(mode not in MODE_NAMES for mode in modes):
        parser.error("--modes takes off and/or auto")
    return Options(ns, modes, args.tokens, args.rate, args.first_token_delay, args.json_path)


# -- the model server, in its own process -----------------------------------------------


# -- one round --------------------------------------------------------------------------


@dataclass
class Mention:
    channel: str
    user: str
    marker: str
    ts: str = ""
    envelope: str = ""


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
    failures: list[str] = field(default_factory=list)


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


def writes_for(calls: Sequence[RecordedCall], mention: Mention, reply_ts: str | None) -> list[RecordedCall]:
    out = []
    for call in calls:
        if call.method not in MESSAGE_WRITES or call.params.get("channel") != mention.channel:
            continue
        if call.params.get("thread_ts") == mention.ts or (reply_ts and call.params.get("ts") == reply_ts):
            out.append(call)
    return out


async def run_round(harness: SlackHarness, bot: BotProcess, model: ModelServerProcess, mode: str, n: int,
                    options: Options) -> RoundResult:  # fmt: skip
    fake = harness.fake
    team = harness.new_workspace()
    round_id = uuid.uuid4().hex[:6]
    mentions = []
    for index in range(n):
        channel, user = f"C{round_id.upper()}{index:03d}", f"U{round_id.upper()}{index:03d}"
        fake.add_channel(channel, f"bench-{round_id}-{index}")
        fake.add_user(user, f"person{index}")
        mentions.append(Mention(channel, user, f"bench {round_id} {index}"))
    expected = expected_text(mode, options)
    calls_at, deliveries_at, limited_at = len(fake.calls), len(fake.deliveries), fake.ratelimited_count
    cpu = process_cpu_seconds(bot.pid)
    started = time.perf_counter()

    async def mention(item: Mention) -> None:
        event = fake.app_mention_event(item.channel, item.user, item.marker)
        item.ts = event["ts"]
        item.envelope = await fake.send_event(event)

    await asyncio.gather(*(mention(item) for item in mentions))
    deadline = time.monotonic() + ROUND_TIMEOUT_S
    while any(final_seen_at(fake, item, expected) is None for item in mentions) and time.monotonic() < deadline:
        if not bot.running:
            raise RuntimeError(f"the bot exited during the round\n{harness.report()}")
        await asyncio.sleep(0.05)
    wall = time.perf_counter() - started
    # Let trailing calls (a stream's stop after its last append) land before counting writes.
    await settle(fake)
    bot_cpu = process_cpu_seconds(bot.pid) - cpu

    timings = {record.get("last_user_message"): record for record in await asyncio.to_thread(model.request_timings)}
    calls = fake.calls[calls_at:]
    acks, waits, firsts, finals, writes, failures = [], [], [], [], [], []
    completed = 0
    for item in mentions:
        acked = fake.acks.get(item.envelope)
        delivery = next(d for d in fake.deliveries[deliveries_at:] if d.envelope_id == item.envelope)
        if acked is None:
            failures.append(f"{item.channel}: envelope never acked")
        else:
            acks.append((acked - delivery.sent_at) * 1000)
        record = timings.get(item.marker)
        replies = reply_of(fake, item)
        final_at = final_seen_at(fake, item, expected)
        if final_at is not None:
            completed += 1
        else:
            failures.append(f"{item.channel}: {len(replies)} replies, final text not shown")
        if record is None:
            failures.append(f"{item.channel}: no model request")
            continue
        if replies:
            waits.append((replies[0].history[0][0] - delivery.sent_at) * 1000)
        if replies and record.get("first_token_at"):
            firsts.append((replies[0].history[0][0] - record["first_token_at"]) * 1000)
        if final_at is not None and record.get("last_token_at"):
            finals.append((final_at - record["last_token_at"]) * 1000)
        writes.append(len(writes_for(calls, item, replies[0].ts if replies else None)))
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
        failures=failures,
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

    return [
        TargetCheck(f"every envelope acked within {ACK_MAX_S:g} s", ack <= ACK_MAX_S * 1000, f"worst {ack:.1f} ms"),
        TargetCheck("zero 429s served", limited == 0, f"{limited} served"),
        TargetCheck("every reply completed", done == total, f"{done}/{total}"),
        TargetCheck(f"final text p99 ≤ {FINAL_P99_MS / 1000:g} s after the last token (every N)",
                    final <= FINAL_P99_MS, f"worst {final:.0f} ms{where('final_ms', FINAL_P99_MS)}"),
        TargetCheck(f"first text p99 ≤ {FIRST_P99_MS / 1000:g} s after the first token (N ≤ {FIRST_MAX_N})",
                    bool(small) and first <= FIRST_P99_MS, f"worst {first:.0f} ms"),
    ]  # fmt: skip


HEADER = (
    f"{'mode':>4} | {'N':>3} | {'ack p50/p99/max ms':>18} | {'mention→text p50/p99':>20} | "
    f"{'first p50/p99 ms':>16} | {'final p50/p99 ms':>16} | "
    f"{'writes mean/max':>15} | {'429s':>4} | {'done/N':>6} | {'bot CPU s/1k tok':>16} | {'wall s':>6}"
)


def format_row(row: RoundResult) -> str:
    ack = figures(row.ack_ms, 0, ("p50", "p99", "max"))
    wait = figures(row.wait_ms, 0)
    first = figures(row.first_ms, 0)
    final = figures(row.final_ms, 0)
    writes = f"{row.writes_per_reply['mean']:.2f}/{row.writes_per_reply['max']:.0f}"
    cpu = "-" if row.cpu_per_1k_tokens is None else f"{row.cpu_per_1k_tokens:.3f}"
    return (
        f"{row.mode:>4} | {row.n:>3} | {ack:>18} | {wait:>20} | {first:>16} | {final:>16} | {writes:>15} | "
        f"{row.ratelimited:>4} | {row.completed:>3}/{row.n:<2} | {cpu:>16} | {row.wall_seconds:>6.2f}"
    )


def print_header(options: Options, model: ModelServerProcess, info: dict[str, Any]) -> None:
    limits = SlackLimits()
    tiers = ", ".join(
        f"{method} {limit.per_minute:g}/min burst {limit.burst}"
        for method, limit in limits.methods.items()
        if method in ("chat.update", "chat.startStream", "chat.appendStream", "chat.stopStream", "users.info",
                      "assistant.threads.setStatus")
    )  # fmt: skip
    post = limits.post_message_per_channel
    print("bench.slack: the real bot (python -m bot slack, Socket Mode) against FakeSlack enforcing per-workspace limits:")
    print(f"  {tiers}; chat.postMessage {post.per_minute:g}/min burst {post.burst} per channel" if post else f"  {tiers}")
    print("  (chat.update Tier 3, users.info Tier 4, setStatus Tier 3; chat.startStream/stopStream ASSUMED Tier 2 and")
    print("   chat.appendStream Tier 4 - Slack publishes no tier for the stream start/stop methods)")
    print(f"model: {' '.join(model.command[1:])} (own process)")
    print("rounds: N simultaneous @mentions in one workspace, one channel and one person each; a fresh workspace")
    print("        per round. ms columns: ack = envelope sent -> ack; mention→text = envelope sent -> first text")
    print("        in Slack; first = first token at the server -> first text in Slack; final = last token ->")
    print("        complete text in Slack. writes = message writes per reply (post/update/stream calls)")
    print(f"machine: {info['nproc']} CPUs, {info['cpu_model']}, Python {info['python']}")
    print()
    print(HEADER)
    print("-" * len(HEADER))


def print_details(rows: Sequence[RoundResult]) -> None:
    print()
    for row in rows:
        methods = ", ".join(f"{k} {v}" for k, v in sorted(row.writes_by_method.items()))
        limited = ", ".join(f"{k} {v}" for k, v in sorted(row.ratelimited_by_method.items())) or "none"
        print(f"{row.mode} N={row.n}: writes {methods}; setStatus {row.status_calls}; 429s {limited}")
        for failure in row.failures[:5]:
            print(f"  failure: {failure}")
        if len(row.failures) > 5:
            print(f"  … and {len(row.failures) - 5} more failures")


def print_checks(checks: Sequence[TargetCheck]) -> None:
    print()
    for check in checks:
        print(f"{'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}")


# -- main -----------------------------------------------------------------------------------


async def run_mode(mode: str, options: Options, model: ModelServerProcess, prefix: str) -> list[RoundResult]:
    rows = []
    async with FakeSlack() as fake:
        harness = SlackHarness(fake, model.base_url, f"{prefix}{mode}:", streaming=mode,  # type: ignore[arg-type]
                               model_timeout=60, extra_env={"LOG_LEVEL": "warning"})  # fmt: skip
        try:
            bot = await harness.start_bot()
            await warm_up(harness, bot, mode, options)
            for n in options.ns:
                row = await run_round(harness, bot, model, mode, n, options)
                print(format_row(row), flush=True)
                rows.append(row)
            await harness.close()
        finally:
            for bot in harness.bots:
                if bot.running:
                    await bot.stop()
    return rows


async def warm_up(harness: SlackHarness, bot: BotProcess, mode: str, options: Options) -> None:
    """One untimed reply first: bolt's authorization, connection pools and imports are set up."""
    harness.new_workspace()
    event = harness.fake.app_mention_event(FakeSlack.DEFAULT_CHANNEL, FakeSlack.DEFAULT_USER, "warm up")
    await harness.fake.send_event(event)
    expected = expected_text(mode, options)
    deadline = time.monotonic() + 60
    mention = Mention(FakeSlack.DEFAULT_CHANNEL, FakeSlack.DEFAULT_USER, "warm up", ts=event["ts"])
    while final_seen_at(harness.fake, mention, expected) is None:
        if time.monotonic() > deadline or not bot.running:
            raise RuntimeError(f"warm-up reply did not complete\n{harness.report()}")
        await asyncio.sleep(0.05)
    await settle(harness.fake)


async def main_async(options: Options) -> int:
    info = machine()
    prefix = f"bench:slack:{uuid.uuid4().hex[:8]}:"
    rows: list[RoundResult] = []
    with ModelServerProcess(
        tokens=options.tokens, rate=options.rate, first_token_delay=options.first_token_delay
    ) as model:
        print_header(options, model, info)
        try:
            for mode in options.modes:
                rows.extend(await run_mode(mode, options, model, prefix))
        finally:
            await delete_keys(prefix)
    checks = evaluate(rows)
    print_details(rows)
    print_checks(checks)
    if options.json_path:
        data = {"options": asdict(options), "machine": info, "redis": REDIS_URL,
                "rounds": [asdict(row) for row in rows], "targets": [asdict(check) for check in checks]}  # fmt: skip
        options.json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    return 0 if all(check.passed for check in checks) else 1


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(main_async(parse_options(argv)))


if __name__ == "__main__":
    sys.exit(main())
