"""Benchmark of the Slack adapter: the real bot process, a fake Slack enforcing tier limits.

    python -m bench.slack [--n 1,10,50] [--modes off,auto] [--json PATH]
    python -m bench.slack --workers 4 [--n 50,200,1000] [--delay-ms 50 --model-delay-ms 20]
    python -m bench.slack --workspaces 2 [--cold-auth] [--n 10,50] [--modes off,auto]

The bot runs as `python -m bot slack` in Socket Mode against `FakeSlack` in this process,
which enforces Slack's per-workspace method limits (its defaults, see
fakes/slack/). The model is `python -m fakes.model_server` in a process
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
the event deliveries to each worker); these runs use HTTP mode even with one worker, as `--http`
does without a delay. The set-ups, the options they share with bench.discord and the table are
bench/driver.py's.

With `--workspaces W` the app is installed through OAuth to W workspaces instead of running with
one SLACK_BOT_TOKEN (SLACK_CLIENT_ID, SLACK_CLIENT_SECRET, SLACK_TOKEN_ENCRYPTION_KEY; HTTP mode):
the bot's Web API URL is `FakeSlackOAuth` (fakes/slack/oauth.py), which exchanges install
codes and routes every other call by its token to that workspace's own `FakeSlack`. Each round
installs W fresh workspaces (fresh rate-limit buckets, as above) through the bot's /slack/install
and /slack/oauth_redirect, as a person's browser would; the workspaces have the same channel and
user ids, and the round's N mentions are dealt over them in turn (N = 50, W = 2: 25 each). Before
the round each workspace sends every worker one message that asks nothing of the bot (channel
chatter), as for a workspace the bot has served before (`--cold-auth` skips it: the burst is then
the first thing the bot hears from the workspace, as after an install or a restart). A reply counts
as misplaced when it is not in its own workspace's thread.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode, urlparse

import aiohttp
from aiohttp import web
from cryptography.fernet import Fernet

from adapters.slack_bot.reply.text import to_mrkdwn
from bench.common import (
    REDIS_URL,
    Phase,
    Round,
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
    RoundSpec,
    SetUp,
    main,
)
from bench.knowledge import asked_in_turn, index_chat, mean_prompt_chars
from fakes.harness.server_folders import given_to_server_user
from fakes.harness.slack_world import SIGNING_SECRET, SlackHarness
from fakes.model_server import Script
from fakes.slack import FakeSlack, RecordedCall, SlackLimits, StoredMessage
from fakes.slack.oauth import FakeSlackOAuth

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
KNOWLEDGE = "+knowledge"  # a variant's suffix: its rounds in a workspace with --knowledge messages indexed
KNOWLEDGE_CHANNELS = 20
BOT_WINDOW_SECONDS = 13.0  # the bot's Slack write windows are 12 s (adapters/slack_bot/reply/surfaces.py)
MODE_NAMES = {"off": "chat.update (SLACK_STREAMING=off)", "auto": "native streams (SLACK_STREAMING=auto)"}
STATE_COOKIE = "slack-app-oauth-state"  # bolt's install state cookie (Secure: sent by hand over http://)
INSTALL_LINK = re.compile(r'<a class="button" href="([^"]+)"')
INSTALLER = FakeSlack.DEFAULT_USER


@dataclass(frozen=True, kw_only=True)
class SlackOptions(Options):
    modes: tuple[str, ...]
    http_mode: bool  # --http: one HTTP-mode worker even without a delay
    workspaces: int  # --workspaces: installs through OAuth to this many workspaces (0: one SLACK_BOT_TOKEN)
    cold_auth: bool  # --cold-auth: a round's new installs hear nothing before its mentions
    knowledge: int  # > 0: each mode's rounds run again in a workspace with this many messages indexed

    @property
    def http(self) -> bool:
        """HTTP-mode workers (several, a delayed run, --http or installs through OAuth); else one
        process in Socket Mode."""
        return self.workers > 1 or self.delayed or self.http_mode or self.oauth

    @property
    def oauth(self) -> bool:
        return self.workspaces > 0


@dataclass
class Mention:
    workspace: FakeSlack  # where it is said, and where its reply belongs
    channel: str
    user: str
    marker: str  # one word
    question: str = ""  # said before the marker
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
    misplaced: int = 0  # the bot's messages in the round's channels outside their own workspace's threads


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
        parser.add_argument(
            "--http", dest="http_mode", action="store_true", help="one HTTP-mode worker (default: Socket Mode)"
        )
        parser.add_argument(
            "--workspaces",
            type=int,
            default=0,
            help="install the app through OAuth to this many workspaces (HTTP mode) and deal each round's "
            "mentions over them (default: one SLACK_BOT_TOKEN, one workspace)",
        )
        parser.add_argument(
            "--knowledge",
            type=int,
            default=0,
            metavar="MESSAGES",
            help="run each mode's rounds again in a workspace with this many messages of its public channels "
            "indexed (bench/knowledge.py's made-up chat, WordLlama); both runs ask questions about that chat",
        )
        parser.add_argument(
            "--cold-auth",
            action="store_true",
            help="with --workspaces: a round's mentions are the first events its new installs send",
        )

    @classmethod
    def read_options(cls, args: argparse.Namespace) -> str | None:
        args.modes = tuple(part.strip() for part in args.modes.split(",") if part.strip())
        ok = args.modes and all(mode in MODE_NAMES for mode in args.modes)
        if not ok:
            return "--modes takes off and/or auto"
        if args.workspaces < 0:
            return "--workspaces takes a whole number ≥ 1"
        if args.knowledge and (args.workspaces or args.workers > 1):
            return "--knowledge runs one process in one workspace: leave --workspaces and --workers out"
        return "--cold-auth goes with --workspaces" if args.cold_auth and not args.workspaces else None

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
        about = ABOUT.format(model=" ".join(self.model.command[1:]))
        if spaces := self.options.workspaces:
            how += f"; installed through OAuth to {spaces} workspace{'s' if spaces > 1 else ''} (FakeSlackOAuth)"
            dealt = (
                f"dealt over {spaces} workspaces with the same channel and user ids, one channel\n"
                f"        and one person each; {spaces} fresh workspaces installed per round"
                if spaces > 1
                else "in one workspace, one channel and one person each; a fresh workspace\n        installed per round"
            )
            cold = " (its mentions the first events of each install)" if self.options.cold_auth else ""
            about = about.replace(
                "in one workspace, one channel and one person each; a fresh workspace\n        per round.",
                f"{dealt}{cold}.\n       ",
            )
        return (
            f"bench.slack: the real bot (python -m bot slack, {how}) against FakeSlack enforcing per-workspace "
            f"limits:\n  {tiers}\n{about}"
        )

    def variants(self) -> Sequence[str]:
        if not self.options.knowledge:
            return self.options.modes
        return [f"{mode}{with_knowledge}" for mode in self.options.modes for with_knowledge in ("", KNOWLEDGE)]

    def label(self, variant: str, phase: Phase) -> str:
        spaces = self.options.workspaces
        where = f", {spaces} workspace{'s' if spaces > 1 else ''} (OAuth)" if spaces else ""
        if variant.endswith(KNOWLEDGE):
            where += f", {self.options.knowledge:,} messages indexed"
        elif self.options.knowledge:
            where += ", no knowledge"
        return f"{MODE_NAMES[mode_of(variant)]}, {phase.label}{where}"

    @contextlib.asynccontextmanager
    async def set_up(self, variant: str, phase: Phase, key_prefix: str) -> AsyncIterator[SlackSetUp]:
        http = self.options.http
        oauth = RecordingOAuth() if self.options.oauth else None
        async with contextlib.AsyncExitStack() as stack:
            # With installs through OAuth the harness's own workspace only delivers the events.
            fake = await stack.enter_async_context(FakeSlack())
            if oauth is not None:
                await stack.enter_async_context(oauth)
            api = oauth if oauth is not None else fake
            # Not the checkout's own knowledge, if `make run` made some there.
            folder = given_to_server_user(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-knowledge-")))
            env = {"LOG_LEVEL": "warning", "KNOWLEDGE_DATA_DIR": str(folder)}
            env |= shared_core_env(phase.workers, self.split)
            knowledge_team = None
            if variant.endswith(KNOWLEDGE):
                knowledge_team = await self.index_messages(folder, key_prefix)
                env["EMBEDDING_MODEL"] = "wordllama"  # the model the messages were indexed with
            if oauth is not None:
                env |= oauth_env(oauth)
            harnesses = [
                SlackHarness(
                    fake,
                    self.model.base_url,
                    key_prefix,
                    mode="http" if http else "socket",
                    streaming=mode_of(variant),  # type: ignore[arg-type]
                    model_timeout=60,
                    port=free_port() if http else 0,
                    bot_root=self.options.bot_root,
                    extra_env=dict(env),
                )
                for _ in range(phase.workers)
            ]
            async with self.proxy(phase, [api.port, *(h.port for h in harnesses)]) as proxy:
                if proxy is not None:
                    for harness in harnesses:
                        harness.extra_env.update(
                            SLACK_API_URL=proxy.via(api.api_url),
                            INFERENCE_BASE_URL=f"{proxy.via(self.model.base_url)}/v1",
                            REDIS_URL=redis_url(proxy),
                        )
                urls = [proxy.via(h.events_url) if proxy else h.events_url for h in harnesses] if http else []
                if oauth is None:
                    yield SlackSetUp(self, mode_of(variant), harnesses, urls, knowledge_team)
                    return
                set_up = OAuthSetUp(self, mode_of(variant), harnesses, urls, oauth)
                try:
                    yield set_up
                finally:
                    for workspace in set_up.installed:
                        await workspace.stop()

    async def index_messages(self, folder: Path, key_prefix: str) -> str:
        """--knowledge messages of KNOWLEDGE_CHANNELS public channels of a workspace indexed in an embedded
        knowledge database in `folder` (the bot's KNOWLEDGE_DATA_DIR), the channels opted in; its team id."""
        team = f"T0KNOW{uuid.uuid4().hex[:6].upper()}"
        channels = [f"C0KNOW{index:03d}" for index in range(KNOWLEDGE_CHANNELS)]
        started = time.monotonic()
        await index_chat(
            folder, f"slack:{team}", channels, self.options.knowledge, redis_url=REDIS_URL, key_prefix=key_prefix
        )
        print(f"   indexed {self.options.knowledge:,} messages in {time.monotonic() - started:.0f} s", flush=True)
        return team

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
        if self.options.oauth:
            misplaced = sum(row.misplaced for row in rows)
            checks.append(
                TargetCheck(
                    "every reply in its own workspace, posted by that workspace's bot",
                    misplaced == 0,
                    f"{misplaced} misplaced",
                )
            )
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

    def __init__(
        self,
        platform: Slack,
        mode: str,
        harnesses: list[SlackHarness],
        urls: list[str],
        knowledge_team: str | None = None,
    ) -> None:
        super().__init__(platform)
        self.mode = mode
        self.knowledge_team = knowledge_team  # every round in this workspace, whose knowledge was indexed
        self.questions = asked_in_turn(KNOWLEDGE_CHANNELS) if platform.options.knowledge else None
        self.harnesses = harnesses
        self.fake = harnesses[0].fake  # delivers the events (and, with one token, is the workspace)
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
        [fake] = await self.new_workspaces(1)
        mentions = [Mention(fake, FakeSlack.DEFAULT_CHANNEL, FakeSlack.DEFAULT_USER, "warm-up")]
        for index in range(1, len(self.harnesses)):
            fake.add_channel(f"C0WARM{index:03d}", f"warm-up-{index}")
            mentions.append(Mention(fake, f"C0WARM{index:03d}", FakeSlack.DEFAULT_USER, f"warm-up-{index}"))
        await asyncio.gather(*(self.deliver(item) for item in mentions))
        deadline = time.monotonic() + 60
        while any(self.final_seen_at(item) is None for item in mentions):
            if time.monotonic() > deadline or not self.running():
                raise RuntimeError(f"warm-up reply did not complete\n{self.log()}")
            await asyncio.sleep(0.05)
        await settle(self.workspaces_in(mentions))

    async def new_workspaces(self, count: int) -> list[FakeSlack]:
        """Where a round's mentions are said: the fake under a fresh team id (fresh rate-limit
        buckets and bot budgets, both per workspace)."""
        if self.knowledge_team is None:
            self.harnesses[0].new_workspace()
        elif self.fake.team_id != self.knowledge_team:
            self.fake.team_id = self.knowledge_team
        else:
            # The same workspace every round (its knowledge): quiet until the bot's write windows have emptied,
            # and Slack's buckets full, as after a quiet minute.
            await asyncio.sleep(BOT_WINDOW_SECONDS)
            self.fake.reset_rate_limits()
        return [self.fake]

    def question(self) -> str:
        """With --knowledge, a question about the indexed chat (in both runs); else nothing."""
        return next(self.questions) if self.questions is not None else ""

    def round_workspaces(self) -> int:
        return 1

    @staticmethod
    def workspaces_in(mentions: Sequence[Mention]) -> list[FakeSlack]:
        return list({id(item.workspace): item.workspace for item in mentions}.values())

    def connections(self, marks: dict[int, int]) -> int:
        """Connections the bot opened to the Web API since `marks` (see connections_opened)."""
        return connections_opened(self.fake.calls, marks[id(self.fake)])

    def api_marks(self, workspaces: Sequence[FakeSlack]) -> dict[int, int]:
        """Where each workspace's record of calls stands (what `connections` counts from)."""
        return {id(fake): len(fake.calls) for fake in workspaces}

    async def deliver(self, item: Mention) -> None:
        workspace = item.workspace
        event = workspace.app_mention_event(item.channel, item.user, f"{item.question} {item.marker}".strip())
        item.ts = event["ts"]
        if not self.urls:
            item.envelope = await workspace.send_event(event)
            return
        url = self.urls[self.delivered % len(self.urls)]
        self.delivered += 1
        item.sent_at = time.time()
        attempts = await self.fake.deliver_event_http(
            url, workspace.event_callback(event), signing_secret=SIGNING_SECRET
        )
        item.redeliveries = len(attempts) - 1
        status = attempts[-1][0]
        if status is not None and 200 <= status < 300:
            item.acked_at = time.time()

    @staticmethod
    def replies(mention: Mention) -> list[StoredMessage]:
        workspace = mention.workspace
        messages = workspace.messages_in(mention.channel, mention.ts)
        return [m for m in messages if m.bot_id == workspace.bot_id and m.ts != mention.ts]

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
        workspaces = await self.new_workspaces(self.round_workspaces())
        round_id = uuid.uuid4().hex[:6]
        mentions = []
        # Dealt over the workspaces in turn; every one has the round's channel and user ids.
        for index in range(spec.n):
            fake, local = workspaces[index % len(workspaces)], index // len(workspaces)
            channel, user = f"C{round_id.upper()}{local:03d}", f"U{round_id.upper()}{local:03d}"
            for each in workspaces if index % len(workspaces) == 0 else ():
                each.add_channel(channel, f"bench-{round_id}-{local}")
                each.add_user(user, f"person{local}")
            mentions.append(Mention(fake, channel, user, f"bench-{round_id}-{index}", self.question()))
        calls_at = {id(fake): len(fake.calls) for fake in workspaces}
        limited_at = {id(fake): fake.ratelimited_count for fake in workspaces}
        api_at, deliveries_at = self.api_marks(workspaces), len(self.fake.deliveries)

        async def send() -> None:
            await asyncio.gather(*(self.deliver(item) for item in mentions))

        def over() -> bool:
            if all(self.final_seen_at(item) is not None or self.failure(item) for item in mentions):
                return True
            if not self.running():
                raise RuntimeError(f"a bot exited during the round\n{self.log()}")
            return False

        # Let trailing calls (a stream's stop after its last append) land before counting writes.
        usage = await self.measure(spec.n, send, over, lambda: settle(workspaces))
        timings = {last_word(record.get("last_user_message")): record for record in usage.model_requests}
        calls = [call for fake in workspaces for call in fake.calls[calls_at[id(fake)] :]]
        calls_by_channel: dict[tuple[int, str], list[RecordedCall]] = {}
        for fake in workspaces:
            for call in fake.calls[calls_at[id(fake)] :]:
                if call.method in MESSAGE_WRITES:
                    calls_by_channel.setdefault((id(fake), str(call.params.get("channel"))), []).append(call)
        sent = {d.envelope_id: d.sent_at for d in self.fake.deliveries[deliveries_at:]}
        acks, waits, firsts, finals, writes, problems = [], [], [], [], [], []
        completed = 0
        for item in mentions:
            if item.envelope:  # Socket Mode: the fake's own records
                item.sent_at, item.acked_at = sent[item.envelope], self.fake.acks.get(item.envelope)
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
            own = calls_by_channel.get((id(item.workspace), item.channel), [])
            writes.append(sum(1 for call in own if _writes_to(call, item, reply_ts)))
        misplaced = misplaced_replies(mentions, workspaces)
        problems += [f"misplaced: {where}" for where in misplaced]
        return RoundResult(
            name=f"{self.mode} {spec.name}",
            mode=self.mode,
            n=spec.n,
            team=",".join(fake.team_id for fake in workspaces),
            ack_ms=spread(acks),
            wait_ms=spread(waits),
            first_ms=spread(firsts),
            final_ms=spread(finals),
            writes_per_reply={"mean": statistics.mean(writes) if writes else 0.0, "max": float(max(writes, default=0))},
            writes_by_method=dict(Counter(call.method for call in calls if call.method in MESSAGE_WRITES)),
            status_calls=sum(1 for call in calls if call.method == "assistant.threads.setStatus"),
            ratelimited=sum(fake.ratelimited_count - limited_at[id(fake)] for fake in workspaces),
            ratelimited_by_method=dict(Counter(call.method for call in calls if call.status == 429)),
            completed=completed,
            tokens=completed * self.options.tokens,
            cpu_seconds=usage.cpu_seconds,
            rss_mb=usage.rss_mb,
            wall_seconds=usage.wall_seconds,
            connections_opened=self.connections(api_at),
            redis=usage.redis,
            problems=problems,
            redeliveries=sum(item.redeliveries for item in mentions),
            prompt_chars=mean_prompt_chars([timings[item.marker] for item in mentions if item.marker in timings]),
            misplaced=len(misplaced),
        )


class OAuthSetUp(SlackSetUp):
    """The bot installed through OAuth: each round's workspaces are new `FakeSlack`s behind
    `oauth`, installed through the bot's own pages as a person's browser does, with the same
    channel and user ids in each. The harness's fake only delivers the events, signed."""

    def __init__(
        self, platform: Slack, mode: str, harnesses: list[SlackHarness], urls: list[str], oauth: RecordingOAuth
    ) -> None:
        super().__init__(platform, mode, harnesses, urls)
        self.oauth = oauth
        self.spaces = platform.options.workspaces
        self.cold_auth = platform.options.cold_auth
        self.installed: list[FakeSlack] = []

    def round_workspaces(self) -> int:
        return self.spaces

    async def new_workspaces(self, count: int) -> list[FakeSlack]:
        """`count` new workspaces, each installed; then (unless --cold-auth) each says something to
        every worker that asks nothing of the bot, as a workspace the bot has served before."""
        made = []
        for _ in range(count):
            tag = uuid.uuid4().hex[:8].upper()
            fake = await FakeSlack(team_id=f"T{tag}", bot_user_id=f"U0BOT{tag}", bot_id=f"B0BOT{tag}").start()
            self.installed.append(fake)
            self.oauth.add_workspace(fake, f"bench-{tag.lower()}")
            await self.install(fake)
            made.append(fake)
        if not self.cold_auth:
            chatter = [
                (fake, url, fake.message_event(FakeSlack.DEFAULT_CHANNEL, INSTALLER, "good morning"))
                for fake in made
                for url in self.urls
            ]
            for fake, url, event in chatter:
                attempts = await self.fake.deliver_event_http(
                    url, fake.event_callback(event), signing_secret=SIGNING_SECRET
                )
                if attempts[-1][0] != 200:
                    raise RuntimeError(f"{fake.team_id}: a message was answered {attempts}\n{self.log()}")
        return made

    async def install(self, workspace: FakeSlack) -> None:
        """/slack/install, the "Add to Slack" link's state, the person allowing it, and the redirect
        back with its code (the state cookie sent by hand: it is Secure, and this is http://)."""
        base = f"http://127.0.0.1:{self.harnesses[0].port}"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as browser:
            async with browser.get(f"{base}/slack/install", allow_redirects=False) as page:
                text = await page.text()
            link = INSTALL_LINK.search(text)
            if page.status != 200 or link is None:
                raise RuntimeError(f"install page: {page.status} {text[:300]}\n{self.log()}")
            state = parse_qs(urlparse(html.unescape(link[1])).query)["state"][0]
            code = self.oauth.approve_install(state, team=workspace.team_id, user=INSTALLER)
            redirect = f"{base}/slack/oauth_redirect?{urlencode({'code': code, 'state': state})}"
            headers = {"Cookie": f"{STATE_COOKIE}={state}"}
            async with browser.get(redirect, headers=headers, allow_redirects=False) as page:
                text = await page.text()
            if page.status != 200:
                raise RuntimeError(f"{workspace.team_id} not installed: {page.status} {text[:300]}\n{self.log()}")

    def api_marks(self, workspaces: Sequence[FakeSlack]) -> dict[int, int]:
        return {id(self.oauth): len(self.oauth.requests)}

    def connections(self, marks: dict[int, int]) -> int:
        """The bot's connections are to the OAuth side, which forwards each call to its workspace."""
        return connections_opened(self.oauth.requests, marks[id(self.oauth)])


@dataclass(frozen=True)
class ApiRequest:
    method: str
    connection: Any  # the client's address and port: one per connection it opened


class RecordingOAuth(FakeSlackOAuth):
    """FakeSlackOAuth noting each Web API request it is sent, with the client's address: the
    workspaces' fakes behind it see only its own forwarding connections."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[ApiRequest] = []

    async def _handle_api(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append(ApiRequest(request.match_info["method"], peer))
        return await super()._handle_api(request)


def oauth_env(oauth: FakeSlackOAuth) -> dict[str, str]:
    """The bot installed to many workspaces: no bot token, the app's credentials, a new key for
    the stored tokens; Slack's Web API (and oauth.v2.access) at the OAuth side."""
    return {
        "SLACK_BOT_TOKEN": "",
        "SLACK_API_URL": oauth.api_url,
        "SLACK_CLIENT_ID": oauth.client_id,
        "SLACK_CLIENT_SECRET": oauth.client_secret,
        "SLACK_TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }


def misplaced_replies(mentions: Sequence[Mention], workspaces: Sequence[FakeSlack]) -> list[str]:
    """The bot's messages in the round's channels, in any of the round's `workspaces`, that are
    not in a thread of their own workspace's mentions there (a reply sent with another
    workspace's token lands in that one)."""
    threads = {(id(item.workspace), item.channel, item.ts) for item in mentions}
    channels = sorted({item.channel for item in mentions})  # every workspace of the round has them all
    return [
        f"{fake.team_id} {channel} ts {message.ts} (thread {message.thread_ts})"
        for fake in workspaces
        for channel in channels
        for message in fake.bot_messages_in(channel)
        if message.bot_id != fake.bot_id or (id(fake), channel, message.thread_ts) not in threads
    ]


def _writes_to(call: RecordedCall, mention: Mention, reply_ts: str | None) -> bool:
    """Whether `call`, a message write in the mention's channel, writes its reply."""
    return call.params.get("thread_ts") == mention.ts or bool(reply_ts and call.params.get("ts") == reply_ts)


async def settle(fakes: Sequence[FakeSlack], quiet: float = 0.5, limit: float = 10.0) -> None:
    """Until no call has come to any of `fakes` for `quiet` s (at most `limit` s)."""
    deadline = time.monotonic() + limit
    seen, quiet_since = sum(len(fake.calls) for fake in fakes), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if (calls := sum(len(fake.calls) for fake in fakes)) != seen:
            seen, quiet_since = calls, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet:
            return


def last_word(text: str | None) -> str:
    """A question's marker."""
    return (text or "").rsplit(" ", 1)[-1]


def mode_of(variant: str) -> str:
    """SLACK_STREAMING of a variant."""
    return variant.removesuffix(KNOWLEDGE)


if __name__ == "__main__":
    sys.exit(main(Slack))
