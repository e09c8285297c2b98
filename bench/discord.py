"""Benchmark of the Discord adapter: the real bot process against the fake Discord.

    python -m bench.discord [--n 1,10,50,200] [--shared 5] [--json PATH]
    python -m bench.discord --workers 4 [--n 50,200,1000] [--delay-ms 50 --model-delay-ms 20]
    python -m bench.discord --respond --n 50 --shared 50

Three processes: this one runs the loopback fake Discord (REST + gateway) enforcing
Discord's default limits (5 message creates and 5 edits per 5 s per channel, 5 thread
creates per 5 s per channel, 50 requests/s global); `python -m fakes.model_server`
streams every answer (300 tokens at 50 tokens/s after 0.2 s by default); and the bot,
`python -m bot discord` (from `--bot-root`, this checkout by default), with its history in
the real Redis under a key prefix of this run's own (deleted at the end).

Each round sends its mentions at once: N rounds put one mention in each of N channels, the
shared round puts `--shared` mentions in one channel. Per conversation it measures, with
`time.time()` on this machine:
  first   model's first token (server's record) → the bot's first message in the thread exists
  full    model's last token → the final edit showing the whole text, without the indicator
  model   the fake wrote MESSAGE_CREATE to the bot's gateway socket → the model server received the request
  writes  message creates + edits the bot sent for the reply
and per round the 429s the fake served, the connections the bot opened to its REST API and the
bot's CPU seconds (all its threads) per 1,000 tokens.
The model server's timings come from its `GET /debug/requests`, matched by a marker in
each question.

With `--workers W` the bot runs as W processes, process i with `DISCORD_SHARD_COUNT=W
DISCORD_SHARD_IDS=i`, against the one fake Discord (which counts the global limit across all
of them); the mentions are spread over W guilds, one on each shard. The same rounds run first
with one process running every shard. `--delay-ms` puts the delay proxy between the bot
processes and the fake Discord's REST API and gateway. The set-ups, the options they share
with bench.slack and the table are bench/driver.py's.

With `--respond` the rounds' channels are set to answer every message (CHANNELS_FILE, `respond: all`) and the
rounds' messages are plain messages, mentioning nobody: each is answered in a thread of its own, as a mention is,
if a slot of its channel's thread creations comes within RESPOND_MAX_DELAY_SECONDS (30 s) of it, else it gets no
answer and counts as late (the bot's `unasked_message_too_late`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from bench.common import (
    INDICATOR,
    Phase,
    Round,
    TargetCheck,
    connections_opened,
    failure_shown,
    figures,
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
from fakes.delay_proxy import DelayProxy
from fakes.discord import FakeDiscord, Limits
from fakes.harness.server_folders import given_to_server_user
from fakes.model_server import Script

MESSAGE_WRITES = ("POST /channels/{channel_id}/messages", "PATCH /channels/{channel_id}/messages/{message_id}")
THREAD_CREATE = "POST /channels/{channel_id}/messages/{message_id}/threads"
TYPING = "POST /channels/{channel_id}/typing"
COMMAND_SYNC = (
    "PUT /applications/{application_id}/commands",
    "PUT /applications/{application_id}/guilds/{guild_id}/commands",
)
STRIPPED_PREFIXES = ("DISCORD_", "SLACK_")
STRIPPED = (
    "HF_TOKEN",
    "LOCAL_MODEL_PATH",
    "REDIS_URL",
    "INFERENCE_BASE_URL",
    "REDIS_KEY_PREFIX",
    "LOG_LEVEL",
    "MAX_NEW_TOKENS",
    "SYSTEM_PROMPT",
    "LOG_FORMAT",
)
# Untimed replies each process writes before the rounds: besides opening its connections, a
# process counts a write from its arrival only once 20 writes have measured the way to Discord
# (bot.budget.FLOOR_SAMPLES), as one that has been running a while has.
WARM_UP_PER_GUILD = 3
KNOWLEDGE = "knowledge"  # the variant with --knowledge messages indexed
BUDGETS = "budgets"  # the variant with --budgets: every turn held against a person's and a server's budget
# Budgets no round reaches: every turn checks and holds both, none is refused.
BUDGET_ENV = {"USER_DAILY_BUDGET": "1000000000", "SERVER_MONTHLY_BUDGET": "1000000000"}
TOO_LATE = re.compile(r"unasked_message_too_late\b.*?\bmessage=(\d+)")  # the bot's log: a message left unanswered

# Targets
SMALL_N = 10
SMALL_FIRST_P99_MS = 50.0
SMALL_FULL_P99_MS = 150.0
MEDIUM_N = 50
MEDIUM_P99_MS = 1000.0
LARGE_N = 200
LARGE_DONE_AFTER_MODEL_S = 10.0
CPU_PER_1K_TOKENS = 0.30  # at N = 50 (llmcord: 0.40 on the same set-up)


@dataclass(frozen=True, kw_only=True)
class DiscordOptions(Options):
    shared: int
    bot_log_level: str
    requests_path: Path | None
    thread_archive_seconds: float | None  # None: each thread's auto-archive duration, as Discord
    knowledge: int  # > 0: the rounds run again with this many messages of the guild's channels indexed
    respond: bool  # the rounds' messages mention nobody, in channels set to `respond: all`
    budgets: bool  # the rounds run again with USER_DAILY_BUDGET and SERVER_MONTHLY_BUDGET set


class BotProcess:
    """`python -m bot discord` from `root`, its stderr in a temporary file until it stops."""

    def __init__(self, env: dict[str, str], root: Path) -> None:
        self.env = env
        self._root = root
        self._stderr = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the child process
            prefix="bench-discord-bot-", suffix=".log", delete=False
        )
        self.process: asyncio.subprocess.Process | None = None
        self.log = ""  # its stderr, once stopped

    async def start(self, cpus: frozenset[int] | None) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "discord",
            cwd=self._root,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=self._stderr,
        )
        if cpus is not None:
            pin_process(self.process.pid, cpus)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stderr(self) -> str:
        return Path(self._stderr.name).read_text(errors="replace")

    async def stop(self, timeout: float) -> int:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._stderr.close()
        self.log = self.stderr()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._stderr.name)
        return self.process.returncode or 0 if self.process is not None else 0


@dataclass
class Conversation:
    marker: str
    channel_id: int
    message_id: int = 0
    dispatched_at: float | None = None
    thread_id: int | None = None
    done: bool = False
    first_visible_at: float | None = None
    full_visible_at: float | None = None
    failure: str | None = None  # the reply ended with a "⚠️ reason" instead of the model's text
    late: bool = False  # --respond: left unanswered, its thread not possible within RESPOND_MAX_DELAY_SECONDS


@dataclass(kw_only=True)
class RoundResult(Round):
    channels: int
    full_ms: dict[str, float | None]  # the model's last token → the final edit, the whole text without the indicator
    mention_to_model_ms: dict[str, float | None]
    writes_per_reply: dict[str, float | None]
    other_writes: dict[str, int]  # thread creates, typing
    ratelimited_routes: dict[str, int]
    done_after_model_s: float | None  # the slowest reply: fully visible − its model's last token
    model_late_ms: dict[str, float | None]  # how far the model server fell behind its --rate
    peak_global_per_s: int  # most requests counting towards the global limit that arrived within 1 s
    late: int = 0  # --respond: messages left unanswered, too late for a thread
    asked_twice: int = 0  # --respond: messages whose answer the model server was asked for more than once


class Discord(Platform[DiscordOptions, RoundResult]):
    name = "discord"
    reaches = "REST and gateway"
    options_type = DiscordOptions
    default_ns = "1,10,50,200"
    ns_help = "simultaneous mentions, one channel each"
    round_timeout = 60.0
    columns: ClassVar[Sequence[Column[RoundResult]]] = (
        ("round", 10, lambda row: row.name),
        ("done", 9, lambda row: f"{row.completed}/{row.n}"),
        RATELIMITED,
        ("first p50/p99 ms", 17, lambda row: figures(row.first_ms)),
        ("full p50/p99 ms", 17, lambda row: figures(row.full_ms)),
        ("mention→model ms", 17, lambda row: figures(row.mention_to_model_ms)),
        ("writes p50/p99", 14, lambda row: figures(row.writes_per_reply, 0)),
        ("thr/typ", 7, lambda row: f"{row.other_writes['thread creates']}/{row.other_writes['typing']}"),
        ("CPU s/1k tok", 12, lambda row: number(row.cpu_per_1k_tokens, 4)),
        ("done after model s", 18, lambda row: number(row.done_after_model_s, 2)),
        ("peak req/s", 10, lambda row: str(row.peak_global_per_s)),
        CONNECTIONS,
        ("model late p99 ms", 17, lambda row: number(row.model_late_ms["p99"])),
        REDIS,
        WALL,
        RSS,
    )

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.requests: list[dict[str, Any]] = []  # every request the fake received, for --requests

    @classmethod
    def add_options(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--shared",
            type=int,
            default=None,
            help="mentions at once in one channel (0: skip; default 5, with --workers > 1 0)",
        )
        parser.add_argument("--bot-log-level", default="info", choices=("debug", "info", "warning", "error"))
        parser.add_argument(
            "--requests",
            dest="requests_path",
            type=Path,
            default=None,
            help="write every request the fake received (time, route, path, status) here as JSON",
        )
        parser.add_argument(
            "--thread-archive-seconds",
            type=float,
            default=None,
            help="the fake archives a thread this many s after its last new message (default: its "
            "auto-archive duration, as Discord does; set it longer than an answer takes, as an archived "
            "thread refuses edits); a long run at a short one shows memory levelling off",
        )

        parser.add_argument(
            "--knowledge",
            type=int,
            default=0,
            help="run the rounds again with this many of the guild's messages indexed (bench/knowledge.py's "
            "made-up chat, in the rounds' channels; EMBEDDING_MODEL=wordllama), one process",
        )
        parser.add_argument(
            "--budgets",
            action="store_true",
            help="run the rounds again with USER_DAILY_BUDGET and SERVER_MONTHLY_BUDGET set (never reached): what "
            "the budgets' check-and-hold adds to mention → model",
        )
        parser.add_argument(
            "--respond",
            action="store_true",
            help="the rounds' channels answer without a mention (CHANNELS_FILE `respond: all`) and the rounds send "
            "plain messages: answered, late (no thread within RESPOND_MAX_DELAY_SECONDS), 429s",
        )

    @classmethod
    def read_options(cls, args: argparse.Namespace) -> str | None:
        if args.knowledge and args.budgets:
            return "--knowledge and --budgets each run the rounds a second time: give one"
        if args.knowledge and args.workers > 1:
            return "--knowledge runs one process: leave --workers out"
        if args.respond and args.bot_log_level not in ("debug", "info"):
            return "--respond reads the late messages from the bot's log: --bot-log-level info or debug"
        args.shared = args.shared if args.shared is not None else (0 if args.workers > 1 else 5)
        if args.thread_archive_seconds is not None and args.thread_archive_seconds <= 0:
            return "--thread-archive-seconds needs a positive number"
        return "--shared needs ≥ 0" if args.shared < 0 else None

    def intro(self) -> str:
        options = self.options
        return (
            f"bench.discord: bot process `python -m bot discord` vs fake Discord (default limits); model "
            f"{options.tokens} tokens at {options.rate:g}/s after {options.first_token_delay:g} s"
            + (f", each after {options.think_tokens} tokens of thought" if options.think_tokens else "")
            + ("; plain messages in channels set to `respond: all`" if options.respond else "")
        )

    def variants(self) -> Sequence[str]:
        if self.options.budgets:
            return ("", BUDGETS)
        return ("", KNOWLEDGE) if self.options.knowledge else ("",)

    def label(self, variant: str, phase: Phase) -> str:
        if variant == KNOWLEDGE:
            return f"{phase.label}, {self.options.knowledge:,} messages indexed"
        if self.options.budgets:
            return f"{phase.label}, {'budgets' if variant == BUDGETS else 'no budget'}"
        return f"{phase.label}, no knowledge" if self.options.knowledge else phase.label

    def note(self, phase: Phase) -> str:
        if phase.workers > 1:
            return f": process i runs shard i of {phase.workers}"
        return f": one process runs the {self.options.workers} guilds" if self.options.workers > 1 else ""

    def rounds(self) -> list[RoundSpec]:
        shared = self.options.shared
        return super().rounds() + ([RoundSpec(f"{shared} in 1 ch", 1, shared)] if shared else [])

    @contextlib.asynccontextmanager
    async def set_up(self, variant: str, phase: Phase, key_prefix: str) -> AsyncIterator[DiscordSetUp]:
        archive = self.options.thread_archive_seconds
        async with (
            FakeDiscord(limits=Limits(), thread_archive_seconds=archive) as fake,
            self.proxy(phase, [fake.port]) as proxy,
        ):
            set_up = DiscordSetUp(self, fake, self.bot_env(fake, key_prefix, phase, proxy), phase.workers)
            with tempfile.TemporaryDirectory(prefix="bench-knowledge-") as folder:
                given_to_server_user(folder)  # as root the bot runs its database as the folder's owner
                for bot in set_up.bots:  # not the checkout's own knowledge, if `make run` made some there
                    bot.env["KNOWLEDGE_DATA_DIR"] = folder
                    if variant == BUDGETS:
                        bot.env.update(BUDGET_ENV)
                if variant == KNOWLEDGE:
                    await set_up.index_messages(Path(folder), self.options.knowledge)
                if self.options.respond:
                    set_up.answer_every_message(Path(folder))
                yield set_up
        self.requests += [
            {
                "time": r.time,
                "route": r.route,
                "path": r.path,
                "status": r.status,
                "phase": phase.label,
                "connection": r.connection,
            }
            for r in fake.requests
        ]
        if self.options.requests_path is not None:
            self.options.requests_path.write_text(json.dumps(self.requests))

    def bot_env(self, fake: FakeDiscord, key_prefix: str, phase: Phase, proxy: DelayProxy | None) -> dict[str, str]:
        """The bot's settings; with `proxy`, every URL goes through it."""
        via = proxy.via if proxy is not None else str
        env = {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED_PREFIXES) and k not in STRIPPED}
        env.update(
            DISCORD_TOKEN=fake.token,
            DISCORD_API_BASE_URL=via(fake.api_base_url),
            DISCORD_GATEWAY_URL=via(fake.gateway_url),
            INFERENCE_BASE_URL=f"{via(self.model.base_url)}/v1",
            REDIS_URL=redis_url(proxy),
            REDIS_KEY_PREFIX=key_prefix,
            MODEL_TIMEOUT_SECONDS="60",
            MAX_NEW_TOKENS=str(max(500, self.options.tokens + self.options.think_tokens)),
            LOG_LEVEL=self.options.bot_log_level,
            **shared_core_env(phase.workers, self.split),
        )
        return env

    def evaluate(self, rows: Sequence[RoundResult]) -> list[TargetCheck]:
        def one_per_channel(n: int) -> RoundResult | None:
            return next((r for r in rows if r.n == n and r.channels == n), None)

        def at_most(value: float | None, limit: float) -> bool:
            return value is not None and value <= limit

        checks = []
        for row in rows:
            detail = f"{row.completed}/{row.n} completed, {row.ratelimited} 429s {row.ratelimited_routes or ''}"
            if self.options.respond:  # a message too late for its thread gets no answer, by design
                detail = f"{row.completed} answered, {row.late} late, {row.asked_twice} asked twice, " + detail
                passed = row.completed + row.late == row.n and row.asked_twice == 0 and row.ratelimited == 0
                name = f"{row.name}: each message answered once or counted late, zero 429s"
                checks.append(TargetCheck(name, passed, detail.rstrip()))
                continue
            passed = row.completed == row.n and row.ratelimited == 0
            checks.append(TargetCheck(f"{row.name}: every reply completed, zero 429s", passed, detail.rstrip()))
        if small := one_per_channel(SMALL_N):
            first, full = small.first_ms["p99"], small.full_ms["p99"]
            checks.append(
                TargetCheck(
                    f"N={SMALL_N}: first visible p99 ≤ {SMALL_FIRST_P99_MS:.0f} ms",
                    at_most(first, SMALL_FIRST_P99_MS),
                    f"{number(first)} ms",
                )
            )
            checks.append(
                TargetCheck(
                    f"N={SMALL_N}: full text p99 ≤ {SMALL_FULL_P99_MS:.0f} ms",
                    at_most(full, SMALL_FULL_P99_MS),
                    f"{number(full)} ms",
                )
            )
        medium = one_per_channel(MEDIUM_N)
        for row in ([medium] if medium else []) + [r for r in rows if r.channels == 1 and r.n > 1]:
            first, full = row.first_ms["p99"], row.full_ms["p99"]
            checks.append(
                TargetCheck(
                    f"{row.name}: first and full p99 ≤ {MEDIUM_P99_MS:.0f} ms",
                    at_most(first, MEDIUM_P99_MS) and at_most(full, MEDIUM_P99_MS),
                    f"first {number(first)} ms, full {number(full)} ms",
                )
            )
        if large := one_per_channel(LARGE_N):
            name = f"N={LARGE_N}: all complete within {LARGE_DONE_AFTER_MODEL_S:.0f} s of the model finishing"
            checks.append(
                TargetCheck(
                    name,
                    at_most(large.done_after_model_s, LARGE_DONE_AFTER_MODEL_S),
                    f"{number(large.done_after_model_s, 2)} s",
                )
            )
        if medium:
            detail = f"{number(medium.cpu_per_1k_tokens, 4)} s ({medium.cpu_seconds:.2f} s for {medium.tokens} tokens)"
            checks.append(
                TargetCheck(
                    f"{medium.name}: bot CPU ≤ {CPU_PER_1K_TOKENS:.2f} s per 1,000 tokens",
                    at_most(medium.cpu_per_1k_tokens, CPU_PER_1K_TOKENS),
                    detail,
                )
            )
        return checks

    def details(self, row: RoundResult) -> list[str]:
        if not self.options.respond:
            return super().details(row)
        where = f"{row.phase}, " if row.phase else ""
        answered = (
            f"  {where}{row.name}: {row.completed} of {row.n} plain messages answered, {row.late} late (no thread "
            f"within RESPOND_MAX_DELAY_SECONDS), {row.other_writes['thread creates']} threads, {row.ratelimited} 429s"
        )
        return [answered, *super().details(row)]


class DiscordSetUp(SetUp[RoundResult]):
    """The fake Discord with a guild per shard of the run's process count (whatever this set-up
    runs them in), the rounds' channels, and a bot process per shard of this set-up."""

    def __init__(self, platform: Discord, fake: FakeDiscord, env: dict[str, str], workers: int) -> None:
        super().__init__(platform)
        count = self.options.workers
        self.fake = fake
        self.expected = Script(tokens=self.options.tokens).answer
        guilds = (
            [fake.add_guild("Bench Guild")]
            if count == 1
            else [fake.add_guild(f"Bench shard {i}", shard=(i, count)) for i in range(count)]
        )
        self.guild_id = guilds[0].id
        self.user = fake.add_user("bencher")
        self.warm = [
            int(fake.add_text_channel(guild, f"warm-up-{i}")["id"])
            for guild in guilds
            for i in range(WARM_UP_PER_GUILD)
        ]
        self.channels = {
            spec.name: [
                int(fake.add_text_channel(guilds[i % len(guilds)], f"{spec.name}-{i}")["id"])
                for i in range(spec.channels)
            ]
            for spec in platform.rounds()
        }
        # With --knowledge both variants ask about what the indexed chat said (else "Please answer …").
        self.questions = asked_in_turn(sum(map(len, self.channels.values()))) if self.options.knowledge else None
        # Process `shard` of `workers` (one process: every shard, as many as Discord recommends).
        shards = [
            {} if workers == 1 else {"DISCORD_SHARD_COUNT": str(workers), "DISCORD_SHARD_IDS": str(shard)}
            for shard in range(workers)
        ]
        self.bots: list[BotProcess] = [BotProcess({**env, **shard_env}, self.options.bot_root) for shard_env in shards]

    async def index_messages(self, folder: Path, count: int) -> None:
        """`count` messages of the rounds' channels indexed in an embedded knowledge database in `folder`, which
        the bot processes then use."""
        channels = [channel for ids in self.channels.values() for channel in ids]
        started = time.monotonic()
        env = self.bots[0].env
        await index_chat(
            folder,
            f"discord:{self.guild_id}",
            channels,
            count,
            redis_url=env["REDIS_URL"],
            key_prefix=env["REDIS_KEY_PREFIX"],
        )
        print(f"   indexed {count:,} messages in {time.monotonic() - started:.0f} s", flush=True)
        for bot in self.bots:
            bot.env["EMBEDDING_MODEL"] = "wordllama"  # the model the messages were indexed with

    def answer_every_message(self, folder: Path) -> None:
        """The rounds' channels set to answer every message (`respond: all`) in a CHANNELS_FILE in `folder`."""
        path = folder / "channels.yaml"
        channels = [channel for ids in self.channels.values() for channel in ids]
        path.write_text("channels:\n" + "".join(f'  "{channel}": {{respond: all}}\n' for channel in channels))
        for bot in self.bots:
            bot.env["CHANNELS_FILE"] = str(path)

    async def start(self, timeout: float = 60.0) -> None:
        """Every process has synced its commands and has a live gateway session; then a warm-up round."""
        for bot in self.bots:
            await bot.start(self.split.bot if self.split else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for bot in self.bots:
                if bot.process is not None and bot.process.returncode is not None:
                    raise RuntimeError(f"the bot exited with {bot.process.returncode}:\n{bot.stderr()[-4000:]}")
            synced = sum(1 for r in self.fake.requests if r.route in COMMAND_SYNC and r.status == 200)
            sessions = sum(1 for session in self.fake.gateway.sessions.values() if session.connected)
            if synced >= len(self.bots) and sessions >= len(self.bots):
                await self._round("warm-up", self.warm, 1, plain=False)
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the bot did not connect within {timeout:.0f} s:\n{self.bots[0].stderr()[-4000:]}")

    async def run_round(self, spec: RoundSpec) -> RoundResult:
        return await self._round(spec.name, self.channels[spec.name], spec.per_channel, plain=self.options.respond)

    def log(self) -> str:
        if len(self.bots) == 1:
            return self.bots[0].log
        return "".join(f"===== process {i} =====\n{bot.log}" for i, bot in enumerate(self.bots))

    async def _round(self, name: str, channel_ids: Sequence[int], per_channel: int, *, plain: bool) -> RoundResult:
        """`plain`: messages mentioning nobody (in channels that answer every message), else mentions."""
        fake = self.fake
        slug = "".join(ch if ch.isalnum() else "-" for ch in name)
        conversations = [
            Conversation(f"bm-{slug}-{i}-{uuid.uuid4().hex[:8]}", channel_id)
            for i, channel_id in enumerate(c for c in channel_ids for _ in range(per_channel))
        ]
        requests_at, limited_at, dispatched_at = len(fake.requests), len(fake.ratelimited), len(fake.gateway.dispatched)

        async def send() -> None:
            sent = await asyncio.gather(
                *(
                    fake.send_user_message(
                        c.channel_id, self.user, f"{self._question()} {c.marker}", mentions_bot=not plain
                    )
                    for c in conversations
                )
            )
            for conversation, payload in zip(conversations, sent, strict=True):
                conversation.message_id = int(payload["id"])
            dispatched = {
                data.get("id"): at
                for at, event, data in fake.gateway.dispatched[dispatched_at:]
                if event == "MESSAGE_CREATE"
            }
            for conversation in conversations:
                conversation.dispatched_at = dispatched.get(str(conversation.message_id))

        def over() -> bool:
            late = self._too_late() if plain else set()
            for conversation in conversations:
                if not (conversation.done or conversation.failure or conversation.late):
                    self._check(conversation)
                    conversation.late = str(conversation.message_id) in late
            return all(c.done or c.failure or c.late for c in conversations)

        # Let the bot finish its bookkeeping (history write) before reading the CPU.
        usage = await self.measure(len(conversations), send, over, lambda: asyncio.sleep(0.3))
        records = {(r.get("last_user_message") or "").rsplit(" ", 1)[-1]: r for r in usage.model_requests}
        requests = fake.requests[requests_at:]
        writes_by_channel = Counter(r.path.split("/")[2] for r in requests if r.route in MESSAGE_WRITES)
        first, full, to_model, writes, late = [], [], [], [], []
        problems = []
        for conversation in conversations:
            record = records.get(conversation.marker)
            if conversation.late:
                continue  # no answer, by design: counted as late
            if conversation.failure is not None:
                problems.append(f"{conversation.marker}: the reply shows {conversation.failure!r}")
            if record is None:
                if conversation.failure is None:
                    problems.append(f"{conversation.marker}: the model server never got its request")
                continue
            if conversation.dispatched_at is not None:
                to_model.append((record["received_at"] - conversation.dispatched_at) * 1000)
            if conversation.first_visible_at is not None and record.get("first_token_at"):
                first.append((conversation.first_visible_at - record["first_token_at"]) * 1000)
            if conversation.done and conversation.full_visible_at is not None and record.get("last_token_at"):
                full.append((conversation.full_visible_at - record["last_token_at"]) * 1000)
            elif conversation.failure is None:
                problems.append(f"{conversation.marker}: not completed (thread {conversation.thread_id})")
            if record.get("first_token_at") and record.get("last_token_at") and self.options.rate > 0:
                ideal = (record["tokens_sent"] - 1) / self.options.rate
                late.append((record["last_token_at"] - record["first_token_at"] - ideal) * 1000)
            if conversation.thread_id is not None:
                writes.append(float(writes_by_channel[str(conversation.thread_id)]))
        limited = fake.ratelimited[limited_at:]
        completed = len(full)
        await asyncio.sleep(1.0)  # a second between rounds
        return RoundResult(
            name=name,
            n=len(conversations),
            channels=len(set(channel_ids)),
            completed=completed,
            first_ms=spread(first),
            full_ms=spread(full),
            mention_to_model_ms=spread(to_model),
            writes_per_reply=spread(writes),
            ratelimited=len(limited),
            ratelimited_routes=dict(Counter(f"{hit.route}{' (global)' if hit.is_global else ''}" for hit in limited)),
            other_writes={
                "thread creates": sum(1 for r in requests if r.route == THREAD_CREATE),
                "typing": sum(1 for r in requests if r.route == TYPING),
            },
            tokens=completed * (self.options.tokens + self.options.think_tokens),  # thought tokens are streamed too
            cpu_seconds=usage.cpu_seconds,
            rss_mb=usage.rss_mb,
            done_after_model_s=max(full) / 1000 if full and completed == len(conversations) else None,
            model_late_ms=spread(late),
            peak_global_per_s=_peak_global_per_s(requests),
            wall_seconds=usage.wall_seconds,
            connections_opened=connections_opened(fake.requests, requests_at),
            redis=usage.redis,
            problems=problems,
            prompt_chars=mean_prompt_chars([records[c.marker] for c in conversations if c.marker in records]),
            late=sum(1 for c in conversations if c.late),
            asked_twice=_asked_twice(usage.model_requests, {c.marker for c in conversations}),
        )

    def _too_late(self) -> set[str]:
        """The messages the bot processes logged as too late for an answer so far."""
        return {match[1] for bot in self.bots for match in TOO_LATE.finditer(bot.stderr())}

    def _question(self) -> str:
        return next(self.questions) if self.questions is not None else "Please answer"

    def _check(self, conversation: Conversation) -> None:
        """Completed = the thread's bot messages show exactly the model's answer, no indicator."""
        fake, bot_id = self.fake, self.fake.bot_user.id
        if conversation.thread_id is None and (thread := fake.thread_for_message(conversation.message_id)):
            conversation.thread_id = int(thread["id"])
        if conversation.thread_id is not None:
            stored = [m for m in fake.stored_messages_in(conversation.thread_id) if m.author_id == bot_id]
        else:  # no thread (creation failed): the bot replies to the mention in the channel
            stored = [
                m
                for m in fake.stored_messages_in(conversation.channel_id)
                if m.author_id == bot_id
                and (m.payload.get("message_reference") or {}).get("message_id") == str(conversation.message_id)
            ]
        if not stored:
            return
        if conversation.first_visible_at is None:
            conversation.first_visible_at = stored[0].history[0][0]
        contents = [m.content for m in stored]
        if any(c.endswith(INDICATOR) for c in contents):
            return
        if self.options.think_tokens and stored[0].payload["attachments"]:  # the thought's line, its file attached
            contents[0] = THOUGHT_LINE.sub("", contents[0], count=1)
        if "".join(contents) == self.expected or " ".join(contents).split() == self.expected.split():
            conversation.done = True
            conversation.full_visible_at = stored[-1].history[-1][0]
        else:
            conversation.failure = failure_shown(contents[-1])


def _asked_twice(model_requests: Sequence[dict[str, Any]], markers: set[str]) -> int:
    """How many of a round's messages (by their markers) the model server was asked to answer more than once."""
    asked = Counter((r.get("last_user_message") or "").rsplit(" ", 1)[-1] for r in model_requests)
    return sum(1 for marker in markers if asked[marker] > 1)


THOUGHT_LINE = re.compile(r"^-# 💭 Thought for \d+ s · thinking\.md\n")


def _peak_global_per_s(requests: Sequence[Any]) -> int:
    """The most requests counting towards the global limit (all but interaction callbacks and
    webhooks, and those refused) that arrived within one second."""
    arrivals = sorted(
        r.time
        for r in requests
        if r.status != 429 and not r.route.split(" ", 1)[-1].startswith(("/interactions/", "/webhooks/"))
    )
    peak, start = 0, 0
    for end, at in enumerate(arrivals):
        while arrivals[start] <= at - 1.0:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


if __name__ == "__main__":
    sys.exit(main(Discord))
