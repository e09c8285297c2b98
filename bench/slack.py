"""Benchmark of the Slack adapter: the real bot process, a fake Slack enforcing tier limits.

    python -m bench.slack [--n 1,10,50] [--modes off,auto] [--json PATH]
    python -m bench.slack --workers 4 [--n 50,200,1000] [--delay-ms 50 --model-delay-ms 20]

The bot runs as `python -m bot slack` in Socket Mode against `FakeSlack` in this process,
which enforces Slack's per-workspace method limits (its defaults, see
tests/fakes/slack_server.py). The model is `python -m tests.fakes.model_server` in a process
of its own. Each round sends N mentions at once, each from its own person in its own channel,
in one workspace; every round starts in a fresh workspace (new team id), so its rate-limit
buckets and the bot's write budgets start full, as in a workspace that was quiet before.
Every round runs once per `--modes` value (SLACK_STREAMING).

Times compare the fake's `time.time()` stamps (acks, each message's edit history) with the
model server's (`GET /debug/requests`), matched by a marker in each question.

With `--workers W` the bot runs as W HTTP-mode workers (`SLACK_SIGNING_SECRET`, a `PORT` each)
sharing one Redis, and the fake delivers each event, signed, to one worker in turn (as a load
balancer would); the ack is the worker's HTTP answer. The same rounds run first with one HTTP
worker. `--delay-ms` puts the delay proxy between the workers and the fake Slack (Web API, and
the event deliveries to each worker); these runs use HTTP mode even with one worker. The
set-ups, the options they share with bench.discord and the table are bench/driver.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

from adapters.slack_bot import to_mrkdwn
from bench.common import (
    Phase,
    TargetCheck,
    connections_opened,
    failure_shown,
    figures,
    free_port,
    number,
    pin_process,
    redis_url,
    shared_core_env,
    spread,
)
from bench.driver import (
    CONNECTIONS,
    RATELIMITED,
    REDIS,
    RSS,
    WALL,
    Column,
    Options,
    Platform,
    Round,
    RoundSpec,
    SetUp,
    main,
)
from tests.fakes.model_server import Script
from tests.fakes.slack_server import FakeSlack, RecordedCall, SlackLimits, StoredMessage
from tests.slack.harness import SIGNING_SECRET, SlackHarness

ACK_MAX_S = 1.0
FIRST_P99_MS = 500.0
FIRST_MAX_N = 10
FINAL_P99_MS = 1500.0
MEDIUM_N = 50
MEDIUM_FIRST_P99_MS = 1000.0
FIRST_STILL_MARGIN = 1.05
LARGE_N = 200
LARGE_DONE_AFTER_MODEL_S = 10.0
MESSAGE_WRITES = ("chat.postMessage", "chat.update", "chat.startStream", "chat.appendStream", "chat.stopStream")
SHOWN_LIMITS = (
    "chat.update",
    "chat.startStream",
    "chat.appendStream",
    "chat.stopStream",
    "users.info",
    "assistant.threads.setStatus",
)
ABOUT = """\
  (chat.update Tier 3, users.info Tier 4, setStatus Tier 3; chat.startStream/stopStream ASSUMED Tier 2 and
   chat.appendStream Tier 4 - Slack publishes no tier for the stream start/stop methods)
model: {model} (own process)
rounds: N simultaneous @mentions in one workspace, one channel and one person each; a fresh workspace
        per round. ms columns: ack = event sent -> ack; mention→text = event sent -> first text
        in Slack; first = first token at the server -> first text in Slack; final = last token ->
        complete text in Slack. writes = message writes per reply (post/update/stream calls);
        new conns = connections the bot opened to the Web API during the round"""
MODE_NAMES = {"off": "chat.update (SLACK_STREAMING=off)", "auto": "native streams (SLACK_STREAMING=auto)"}


@dataclass(frozen=True, kw_only=True)
class SlackOptions(Options):
    modes: tuple[str, ...]

    @property
    def http(self) -> bool:
        """HTTP-mode workers (several, or a delayed run); else one process in Socket Mode."""
        return self.workers > 1 or self.delayed


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


@dataclass(kw_only=True)
class RoundResult(Round):
    LAGS = ("first", "final")

    mode: str
    team: str
    ack_ms: dict[str, float | None]
    wait_ms: dict[str, float | None]  # the mention's delivery -> first text (what the person waits)
    final_ms: dict[str, float | None]
    writes_per_reply: dict[str, float]
    writes_by_method: dict[str, int]
    status_calls: int
    ratelimited_by_method: dict[str, int]
    redeliveries: int = 0


class Slack(Platform[SlackOptions, RoundResult]):
    name = "slack"
    reaches = "Web API and event delivery"
    options_type = SlackOptions
    default_ns = "1,10,50"
    ns_help = "simultaneous mentions per round"
    round_timeout = 120.0
    columns: ClassVar[Sequence[Column[RoundResult]]] = (
        ("mode", 4, lambda row: row.mode),
        ("N", 4, lambda row: str(row.n)),
        ("ack p50/p99/max ms", 18, lambda row: figures(row.ack_ms, 0, ("p50", "p99", "max"))),
        ("mention→text p50/p99", 20, lambda row: figures(row.wait_ms, 0)),
        ("first p50/p99 ms", 16, lambda row: figures(row.first_ms, 0)),
        ("final p50/p99 ms", 16, lambda row: figures(row.final_ms, 0)),
        ("writes mean/max", 15, lambda row: f"{row.writes_per_reply['mean']:.2f}/{row.writes_per_reply['max']:.0f}"),
        RATELIMITED,
        ("done/N", 9, lambda row: f"{row.completed}/{row.n}"),
        ("bot CPU s/1k tok", 16, lambda row: number(row.cpu_per_1k_tokens, 3)),
        CONNECTIONS,
        REDIS,
        WALL,
        RSS,
    )

    @classmethod
    def add_options(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--modes", default="off,auto", help="SLACK_STREAMING values to run, comma-separated")

    @classmethod
    def read_options(cls, args: argparse.Namespace) -> str | None:
        args.modes = tuple(part.strip() for part in args.modes.split(",") if part.strip())
        ok = args.modes and all(mode in MODE_NAMES for mode in args.modes)
        return None if ok else "--modes takes off and/or auto"

    def intro(self) -> str:
        limits, workers = SlackLimits(), self.options.workers
        tiers = ", ".join(
            f"{method} {limit.per_minute:g}/min burst {limit.burst}"
            for method, limit in limits.methods.items()
            if method in SHOWN_LIMITS
        )
        if post := limits.post_message_per_channel:
            tiers += f"; chat.postMessage {post.per_minute:g}/min burst {post.burst} per channel"
        how = (
            f"{workers} HTTP-mode worker{'s' if workers > 1 else ''}, each event to the next in turn"
            if self.options.http
            else "Socket Mode"
        )
        return (
            f"bench.slack: the real bot (python -m bot slack, {how}) against FakeSlack enforcing per-workspace "
            f"limits:\n  {tiers}\n{ABOUT.format(model=' '.join(self.model.command[1:]))}"
        )

    def variants(self) -> Sequence[str]:
        return self.options.modes

    def label(self, variant: str, phase: Phase) -> str:
        return f"{MODE_NAMES[variant]}, {phase.label}"

    @contextlib.asynccontextmanager
    async def set_up(self, variant: str, phase: Phase, key_prefix: str) -> AsyncIterator[SlackSetUp]:
        http = self.options.http
        async with FakeSlack() as fake:
            harnesses = [
                SlackHarness(
                    fake,
                    self.model.base_url,
                    key_prefix,
                    mode="http" if http else "socket",
                    streaming=variant,  # type: ignore[arg-type]
                    model_timeout=60,
                    port=free_port() if http else 0,
                    bot_root=self.options.bot_root,
                    extra_env={"LOG_LEVEL": "warning", **shared_core_env(phase.workers, self.split)},
                )
                for _ in range(phase.workers)
            ]
            async with self.proxy(phase, [fake.port, *(h.port for h in harnesses)]) as proxy:
                if proxy is not None:
                    for harness in harnesses:
                        harness.extra_env.update(
                            SLACK_API_URL=proxy.via(fake.api_url),
                            INFERENCE_BASE_URL=f"{proxy.via(self.model.base_url)}/v1",
                            REDIS_URL=redis_url(proxy),
                        )
                urls = [proxy.via(h.events_url) if proxy else h.events_url for h in harnesses] if http else []
                yield SlackSetUp(self, variant, harnesses, urls)

    def evaluate(self, rows: Sequence[RoundResult]) -> list[TargetCheck]:
        def worst(values: Sequence[float | None]) -> float:
            return max((v for v in values if v is not None), default=float("inf"))

        def where(metric: str, limit: float) -> str:
            over = [row.name for row in rows if (getattr(row, metric)["p99"] or 0) > limit]
            return f" (over at {', '.join(over)})" if over else ""

        ack = worst([row.ack_ms["max"] for row in rows])
        limited = sum(row.ratelimited for row in rows)
        done, total = sum(row.completed for row in rows), sum(row.n for row in rows)
        final = worst([row.final_ms["p99"] for row in rows])
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
        if small := [row for row in rows if row.n <= FIRST_MAX_N]:
            first = worst([row.first_ms["p99"] for row in small])
            name = f"first text p99 ≤ {FIRST_P99_MS / 1000:g} s after the first token (N ≤ {FIRST_MAX_N})"
            checks.append(TargetCheck(name, first <= FIRST_P99_MS, f"worst {first:.0f} ms"))
        # With several workers, also: at N = 200 every reply complete within 10 s of the model finishing.
        for row in [row for row in rows if row.n == LARGE_N] if self.options.workers > 1 else []:
            slowest = row.final_ms["max"] if row.completed == row.n else None
            name = f"{row.name}: every reply complete within {LARGE_DONE_AFTER_MODEL_S:g} s of the model finishing"
            checks.append(
                TargetCheck(
                    name,
                    slowest is not None and slowest <= LARGE_DONE_AFTER_MODEL_S * 1000,
                    f"{row.completed}/{row.n} complete, slowest {number(slowest, 0)} ms",
                )
            )
        return checks

    def more_checks(self, rows: Sequence[RoundResult]) -> list[TargetCheck]:
        """First text at N = 50 with several workers: within 1 s p99, or, where one worker is not
        (fifty replies in one workspace are posted whole: chat.update's tier can't carry them live),
        no later than with one worker."""
        if self.options.workers == 1 or not self.options.compare:
            return []
        phases = self.options.phases
        one = {row.name: row.first_ms["p99"] for row in rows if row.phase == phases[0].label}
        several = {phase.label for phase in phases[1:] if not phase.through_proxy}
        checks = []
        for row in [row for row in rows if row.n == MEDIUM_N and row.phase in several]:
            first, single = row.first_ms["p99"], one.get(row.name)
            limit = max(MEDIUM_FIRST_P99_MS, (single or 0.0) * FIRST_STILL_MARGIN)
            checks.append(
                TargetCheck(
                    f"{row.phase}, {row.name}: first text p99 ≤ {limit / 1000:.2f} s (1 s, or one "
                    f"worker's {number(single, 0)} ms + {FIRST_STILL_MARGIN - 1:.0%})",
                    first is not None and first <= limit,
                    f"{number(first, 0)} ms",
                )
            )
        return checks

    def details(self, row: RoundResult) -> list[str]:
        methods = ", ".join(f"{k} {v}" for k, v in sorted(row.writes_by_method.items()))
        limited = ", ".join(f"{k} {v}" for k, v in sorted(row.ratelimited_by_method.items())) or "none"
        retried = f"; {row.redeliveries} deliveries retried" if row.redeliveries else ""
        where = f"{row.phase}, " if row.phase else ""
        summary = f"{where}{row.name}: writes {methods}; setStatus {row.status_calls}; 429s {limited}{retried}"
        return [summary, *super().details(row)]


class SlackSetUp(SetUp[RoundResult]):
    """The bot processes of one set-up, and how an event reaches them: over the Socket Mode
    connection, or signed to the HTTP workers in turn (`urls`, through the proxy when delayed)."""

    def __init__(self, platform: Slack, mode: str, harnesses: list[SlackHarness], urls: list[str]) -> None:
        super().__init__(platform)
        self.mode = mode
        self.harnesses = harnesses
        self.fake = harnesses[0].fake
        self.urls = urls
        self.delivered = 0
        answer = Script(tokens=self.options.tokens).answer
        self.expected = to_mrkdwn(answer) if mode == "off" else answer

    def log(self) -> str:
        return "\n".join(harness.report() for harness in self.harnesses)

    def running(self) -> bool:
        return all(bot.running for harness in self.harnesses for bot in harness.bots)

    async def start(self) -> None:
        """Each process started, pinned and ready; then one untimed reply from each: bolt's
        authorization, connection pools and imports are set up."""
        for harness in self.harnesses:
            try:
                bot = await harness.start_bot()
            finally:
                self.bots = [*self.bots, *harness.bots]
            if self.split is not None:
                pin_process(bot.pid, self.split.bot)
        fake = self.fake
        self.harnesses[0].new_workspace()
        mentions = [Mention(FakeSlack.DEFAULT_CHANNEL, FakeSlack.DEFAULT_USER, "warm up")]
        for index in range(1, len(self.harnesses)):
            fake.add_channel(f"C0WARM{index:03d}", f"warm-up-{index}")
            mentions.append(Mention(f"C0WARM{index:03d}", FakeSlack.DEFAULT_USER, f"warm up {index}"))
        await asyncio.gather(*(self.deliver(item) for item in mentions))
        deadline = time.monotonic() + 60
        while any(self.final_seen_at(item) is None for item in mentions):
            if time.monotonic() > deadline or not self.running():
                raise RuntimeError(f"warm-up reply did not complete\n{self.log()}")
            await asyncio.sleep(0.05)
        await settle(fake)

    async def deliver(self, item: Mention) -> None:
        event = self.fake.app_mention_event(item.channel, item.user, item.marker)
        item.ts = event["ts"]
        if not self.urls:
            item.envelope = await self.fake.send_event(event)
            return
        url = self.urls[self.delivered % len(self.urls)]
        self.delivered += 1
        item.sent_at = time.time()
        attempts = await self.fake.deliver_event_http(
            url, self.fake.event_callback(event), signing_secret=SIGNING_SECRET
        )
        item.redeliveries = len(attempts) - 1
        status = attempts[-1][0]
        if status is not None and 200 <= status < 300:
            item.acked_at = time.time()

    def replies(self, mention: Mention) -> list[StoredMessage]:
        messages = self.fake.messages_in(mention.channel, mention.ts)
        return [m for m in messages if m.bot_id == self.fake.bot_id and m.ts != mention.ts]

    def final_seen_at(self, mention: Mention) -> float | None:
        """When its one reply first showed the whole answer (None: not yet, or several replies)."""
        replies = self.replies(mention)
        history = replies[0].history if len(replies) == 1 else []
        return next((at for at, text in history if text == self.expected), None)

    def failure(self, mention: Mention) -> str | None:
        """The reason shown when the reply ended with "⚠️ …" instead of the answer."""
        replies = self.replies(mention)
        return failure_shown(replies[-1].history[-1][1]) if replies else None

    async def run_round(self, spec: RoundSpec) -> RoundResult:
        fake = self.fake
        team = self.harnesses[0].new_workspace()
        round_id = uuid.uuid4().hex[:6]
        mentions = []
        for index in range(spec.n):
            channel, user = f"C{round_id.upper()}{index:03d}", f"U{round_id.upper()}{index:03d}"
            fake.add_channel(channel, f"bench-{round_id}-{index}")
            fake.add_user(user, f"person{index}")
            mentions.append(Mention(channel, user, f"bench {round_id} {index}"))
        calls_at, deliveries_at, limited_at = len(fake.calls), len(fake.deliveries), fake.ratelimited_count

        async def send() -> None:
            await asyncio.gather(*(self.deliver(item) for item in mentions))

        def over() -> bool:
            if all(self.final_seen_at(item) is not None or self.failure(item) for item in mentions):
                return True
            if not self.running():
                raise RuntimeError(f"a bot exited during the round\n{self.log()}")
            return False

        # Let trailing calls (a stream's stop after its last append) land before counting writes.
        usage = await self.measure(spec.n, send, over, lambda: settle(fake))
        timings = {record.get("last_user_message"): record for record in usage.model_requests}
        calls = fake.calls[calls_at:]
        calls_by_channel: dict[str, list[RecordedCall]] = {}
        for call in calls:
            if call.method in MESSAGE_WRITES:
                calls_by_channel.setdefault(str(call.params.get("channel")), []).append(call)
        sent = {d.envelope_id: d.sent_at for d in fake.deliveries[deliveries_at:]}
        acks, waits, firsts, finals, writes, problems = [], [], [], [], [], []
        completed = 0
        for item in mentions:
            if item.envelope:  # Socket Mode: the fake's own records
                item.sent_at, item.acked_at = sent[item.envelope], fake.acks.get(item.envelope)
            assert item.sent_at is not None
            if item.acked_at is None:
                problems.append(f"{item.channel}: event never acked")
            else:
                acks.append((item.acked_at - item.sent_at) * 1000)
            record = timings.get(item.marker)
            replies = self.replies(item)
            final_at = self.final_seen_at(item)
            if final_at is not None:
                completed += 1
            elif reason := self.failure(item):
                problems.append(f"{item.channel}: the reply shows {reason!r}")
            else:
                problems.append(f"{item.channel}: {len(replies)} replies, final text not shown")
            if record is None:
                problems.append(f"{item.channel}: no model request")
                continue
            if replies:
                waits.append((replies[0].history[0][0] - item.sent_at) * 1000)
            if replies and record.get("first_token_at"):
                firsts.append((replies[0].history[0][0] - record["first_token_at"]) * 1000)
            if final_at is not None and record.get("last_token_at"):
                finals.append((final_at - record["last_token_at"]) * 1000)
            reply_ts = replies[0].ts if replies else None
            writes.append(sum(1 for call in calls_by_channel.get(item.channel, []) if _writes_to(call, item, reply_ts)))
        return RoundResult(
            name=f"{self.mode} {spec.name}",
            mode=self.mode,
            n=spec.n,
            team=team,
            ack_ms=spread(acks),
            wait_ms=spread(waits),
            first_ms=spread(firsts),
            final_ms=spread(finals),
            writes_per_reply={"mean": statistics.mean(writes) if writes else 0.0, "max": float(max(writes, default=0))},
            writes_by_method=dict(Counter(call.method for call in calls if call.method in MESSAGE_WRITES)),
            status_calls=sum(1 for call in calls if call.method == "assistant.threads.setStatus"),
            ratelimited=fake.ratelimited_count - limited_at,
            ratelimited_by_method=dict(Counter(call.method for call in calls if call.status == 429)),
            completed=completed,
            tokens=completed * self.options.tokens,
            cpu_seconds=usage.cpu_seconds,
            rss_mb=usage.rss_mb,
            wall_seconds=usage.wall_seconds,
            connections_opened=connections_opened(fake.calls, calls_at),
            redis=usage.redis,
            problems=problems,
            redeliveries=sum(item.redeliveries for item in mentions),
        )


def _writes_to(call: RecordedCall, mention: Mention, reply_ts: str | None) -> bool:
    """Whether `call`, a message write in the mention's channel, writes its reply."""
    return call.params.get("thread_ts") == mention.ts or bool(reply_ts and call.params.get("ts") == reply_ts)


async def settle(fake: FakeSlack, quiet: float = 0.5, limit: float = 10.0) -> None:
    """Until no call has come for `quiet` s (at most `limit` s)."""
    deadline = time.monotonic() + limit
    seen, quiet_since = len(fake.calls), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if len(fake.calls) != seen:
            seen, quiet_since = len(fake.calls), time.monotonic()
        elif time.monotonic() - quiet_since >= quiet:
            return


if __name__ == "__main__":
    sys.exit(main(Slack))
