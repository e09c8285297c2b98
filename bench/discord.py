"""Benchmark of the Discord adapter: the real bot process against the fake Discord.

    python -m bench.discord [--n 1,10,50,200] [--shared 5] [--json PATH]
    python -m bench.discord --workers 4 [--n 50,200,1000] [--delay-ms 50 --model-delay-ms 20]

Three processes: this one runs the loopback fake Discord (REST + gateway) enforcing
Discord's default limits (5 message creates and 5 edits per 5 s per channel, 5 thread
creates per 5 s per channel, 50 requests/s global); `python -m tests.fakes.model_server`
streams every answer (300 tokens at 50 tokens/s after 0.2 s by default); and the bot,
`python -m bot discord`, with its history in the real Redis under a key prefix of this
run's own (deleted at the end).

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
with one process running every shard (`--no-compare` skips it), for the CPU comparison.
`--delay-ms` and `--model-delay-ms` put the delay proxy (bench/delay_proxy.py) between the bot
processes and the fake Discord (REST and gateway) and the model server; the rounds then run
without the proxy, through it with no delay, and with the delay. What the delay adds is measured
against the proxy with no delay: relaying every byte through one more process on the same CPUs
costs tens of milliseconds in a burst, which a network does not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
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
    logged_problems,
    machine,
    number,
    phase_checks,
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
from tests.fakes.discord_server import FakeDiscord, FakeUser, Limits
from tests.fakes.model_server import Script

INDICATOR = " ▌"
WARNING = "⚠️"
MESSAGE_CREATE = "POST /channels/{channel_id}/messages"
MESSAGE_EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"
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

# Targets
SMALL_N = 10
SMALL_FIRST_P99_MS = 50.0
SMALL_FULL_P99_MS = 150.0
MEDIUM_N = 50
MEDIUM_P99_MS = 1000.0
LARGE_N = 200
LARGE_DONE_AFTER_MODEL_S = 10.0
CPU_PER_1K_TOKENS = 0.30  # at N = 50 (llmcord: 0.40 on the same set-up)
# SIGTERM → exit: the bot's own grace for replies still being written (20 s) and some more.
STOP_SECONDS = 30.0


# -- options -------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    ns: tuple[int, ...]
    shared: int
    tokens: int
    rate: float
    first_token_delay: float
    round_timeout: float
    json_path: Path | None
    bot_log_level: str
    bot_log_path: Path | None
    requests_path: Path | None
    pin: bool
    bot_root: Path
    workers: int = 1
    compare: bool = True
    delay_ms: float = 0.0
    model_delay_ms: float = 0.0
    redis_delay_ms: float = 0.0

    @property
    def phases(self) -> list[Phase]:
        return plan_phases(self.workers, max(self.delay_ms, self.model_delay_ms, self.redis_delay_ms) > 0, self.compare)


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.discord", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n",
        default=None,
        help="simultaneous mentions, one channel each (comma-separated; default 1,10,50,200, "
        "with --workers > 1 50,200,1000)",
    )
    parser.add_argument(
        "--shared",
        type=int,
        default=None,
        help="mentions at once in one channel (0: skip; default 5, with --workers > 1 0)",
    )
    add_scale_options(parser, "Discord (REST and gateway)")
    parser.add_argument("--tokens", type=int, default=300, help="tokens per answer")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s per answer")
    parser.add_argument("--first-token-delay", type=float, default=0.2, help="seconds before the first token")
    parser.add_argument(
        "--round-timeout",
        type=float,
        default=60.0,
        help="give up on a round after this many s (longer in proportion above 200 mentions)",
    )
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="write results to this file")
    parser.add_argument("--bot-log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--bot-log", dest="bot_log_path", type=Path, default=None, help="keep the bot's stderr here")
    parser.add_argument(
        "--requests",
        dest="requests_path",
        type=Path,
        default=None,
        help="write every request the fake received (time, route, path, status) here as JSON",
    )
    parser.add_argument(
        "--bot-root",
        type=Path,
        default=ROOT,
        help="run the bot from this checkout (to compare two versions with one harness)",
    )
    args = parser.parse_args(argv)
    several = args.workers > 1
    rounds = args.n or ("50,200,1000" if several else "1,10,50,200")
    ns = tuple(int(part) for part in rounds.split(",") if part.strip())
    shared = args.shared if args.shared is not None else (0 if several else 5)
    delays = (args.delay_ms, args.model_delay_ms, args.redis_delay_ms)
    if min(ns, default=1) < 1 or shared < 0 or args.workers < 1 or min(delays) < 0:
        parser.error("--n needs positive whole numbers, --shared and the delays ≥ 0, --workers ≥ 1")
    return Options(
        ns,
        shared,
        args.tokens,
        args.rate,
        args.first_token_delay,
        args.round_timeout,
        args.json_path,
        args.bot_log_level,
        args.bot_log_path,
        args.requests_path,
        args.pin,
        args.bot_root.resolve(),
        workers=args.workers,
        compare=args.compare,
        delay_ms=args.delay_ms,
        model_delay_ms=args.model_delay_ms,
        redis_delay_ms=args.redis_delay_ms,
    )


# -- processes -------------------------------------------------------------------------


def bot_env(
    fake: FakeDiscord, model_url: str, prefix: str, log_level: str, max_tokens: int, proxy: DelayProxy | None = None
) -> dict[str, str]:
    """The bot's settings; with `proxy`, every URL goes through it."""
    via = proxy.via if proxy is not None else str
    env = {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED_PREFIXES) and k not in STRIPPED}
    env.update(
        DISCORD_TOKEN=fake.token,
        DISCORD_API_BASE_URL=via(fake.api_base_url),
        DISCORD_GATEWAY_URL=via(fake.gateway_url),
        INFERENCE_BASE_URL=f"{via(model_url)}/v1",
        REDIS_URL=redis_url(proxy),
        REDIS_KEY_PREFIX=prefix,
        MODEL_TIMEOUT_SECONDS="60",
        MAX_NEW_TOKENS=str(max(500, max_tokens)),
        LOG_LEVEL=log_level,
    )
    return env


class BotProcess:
    """`python -m bot discord`, stderr to a temporary file, stopped with SIGTERM (killed after STOP_SECONDS)."""

    def __init__(self, env: dict[str, str], cpus: frozenset[int] | None = None, root: Path = ROOT) -> None:
        self._env = env
        self._root = root
        self._cpus = cpus
        self._stderr = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept open for the child process
            prefix="bench-discord-bot-", suffix=".log", delete=False
        )
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "discord",
            cwd=self._root,
            env=self._env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=self._stderr,
        )
        if self._cpus is not None:
            os.sched_setaffinity(self.process.pid, self._cpus)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log(self) -> str:
        return Path(self._stderr.name).read_text(errors="replace")

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_SECONDS)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
                return -9
        return self.process.returncode or 0

    def cleanup(self) -> None:
        self._stderr.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._stderr.name)


# -- one round ---------------------------------------------------------------------------


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
    writes: int = 0
    failure: str | None = None  # the reply ended with a "⚠️ reason" instead of the model's text


@dataclass
class RoundResult:
    name: str
    n: int
    channels: int
    completed: int
    first_ms: dict[str, float | None]
    full_ms: dict[str, float | None]
    mention_to_model_ms: dict[str, float | None]
    writes_per_reply: dict[str, float | None]
    other_writes: dict[str, int]  # thread creates, typing
    ratelimited: int
    ratelimited_routes: dict[str, int]
    tokens: int
    cpu_seconds: float
    cpu_per_1k_tokens: float | None
    done_after_model_s: float | None  # the slowest reply: fully visible − its model's last token
    model_late_ms: dict[str, float | None]  # how far the model server fell behind its --rate
    peak_global_per_s: int  # most requests counting towards the global limit that arrived within 1 s
    wall_seconds: float
    connections_opened: int  # to the fake Discord's REST API, during the round (see connections_opened)
    redis: RedisUsage  # what the bot's Redis did during the round
    problems: list[str] = field(default_factory=list)
    phase: str = ""  # the set-up (processes, delay) when a run compares several


class Bench:
    def __init__(
        self, fake: FakeDiscord, user: FakeUser, model: ModelServerProcess, bot_pids: Sequence[int], options: Options
    ) -> None:
        self.fake = fake
        self.user = user
        self.model = model
        self.bot_pids = list(bot_pids)
        self.options = options
        self.expected = Script(tokens=options.tokens).answer
        self.bot_id = fake.bot_user.id

    async def run_round(self, name: str, channel_ids: Sequence[int], per_channel: int) -> RoundResult:
        fake = self.fake
        slug = "".join(ch if ch.isalnum() else "-" for ch in name)
        conversations = [
            Conversation(f"bm-{slug}-{i}-{uuid.uuid4().hex[:8]}", channel_id)
            for i, channel_id in enumerate(c for c in channel_ids for _ in range(per_channel))
        ]
        requests_before = len(fake.requests)
        limited_before = len(fake.ratelimited)
        dispatched_before = len(fake.gateway.dispatched)
        # The fake keeps every message of every round: a full collection of that heap stalls it
        # for tens of milliseconds, which would land in the middle of a round's mentions.
        gc.collect()
        gc.freeze()
        cpu_before = self._bot_cpu()
        redis_before = await redis_usage()
        started = time.time()
        sent = await asyncio.gather(
            *(
                fake.send_user_message(c.channel_id, self.user, f"Please answer {c.marker}", mentions_bot=True)
                for c in conversations
            )
        )
        for conversation, payload in zip(conversations, sent, strict=True):
            conversation.message_id = int(payload["id"])
        dispatched = {
            data.get("id"): at
            for at, event, data in fake.gateway.dispatched[dispatched_before:]
            if event == "MESSAGE_CREATE"
        }
        for conversation in conversations:
            conversation.dispatched_at = dispatched.get(str(conversation.message_id))

        deadline = time.monotonic() + self.options.round_timeout * max(1.0, len(conversations) / LARGE_N)
        while not all(c.done or c.failure for c in conversations) and time.monotonic() < deadline:
            for conversation in conversations:
                if not (conversation.done or conversation.failure):
                    self._check(conversation)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # let the bot finish its bookkeeping (history write) before reading CPU
        cpu = self._bot_cpu() - cpu_before
        wall = time.time() - started
        redis = await redis_usage() - redis_before
        timings = await asyncio.to_thread(self.model.request_timings)
        return self._measure(
            name, conversations, len(set(channel_ids)), timings, requests_before, limited_before, cpu, wall, redis
        )

    def _bot_cpu(self) -> float:
        return sum(process_cpu_seconds(pid) for pid in self.bot_pids)

    def _check(self, conversation: Conversation) -> None:
        """Completed = the thread's bot messages show exactly the model's answer, no indicator."""
        fake = self.fake
        if conversation.thread_id is None:
            thread = fake.thread_for_message(conversation.message_id)
            if thread is not None:
                conversation.thread_id = int(thread["id"])
        if conversation.thread_id is not None:
            stored = [m for m in fake.stored_messages_in(conversation.thread_id) if m.author_id == self.bot_id]
        else:  # no thread (creation failed): the bot replies to the mention in the channel
            stored = [
                m
                for m in fake.stored_messages_in(conversation.channel_id)
                if m.author_id == self.bot_id
                and (m.payload.get("message_reference") or {}).get("message_id") == str(conversation.message_id)
            ]
        if not stored:
            return
        if conversation.first_visible_at is None:
            conversation.first_visible_at = stored[0].history[0][0]
        contents = [m.content for m in stored]
        if any(c.endswith(INDICATOR) for c in contents):
            return
        if "".join(contents) == self.expected or " ".join(contents).split() == self.expected.split():
            conversation.done = True
            conversation.full_visible_at = stored[-1].history[-1][0]
        elif WARNING in contents[-1]:
            conversation.failure = contents[-1][contents[-1].index(WARNING) :][:120]

    def _measure(
        self,
        name: str,
        conversations: list[Conversation],
        channels: int,
        timings: list[dict[str, Any]],
        requests_before: int,
        limited_before: int,
        cpu: float,
        wall: float,
        redis: RedisUsage,
    ) -> RoundResult:
        fake = self.fake
        records = {}
        for record in timings:
            content = record.get("last_user_message") or ""
            marker = content.rsplit(" ", 1)[-1]
            records[marker] = record
        requests = fake.requests[requests_before:]
        writes_by_channel: dict[str, int] = {}
        other = {"thread creates": 0, "typing": 0}
        for request in requests:
            if request.route in (MESSAGE_CREATE, MESSAGE_EDIT):
                channel = request.path.split("/")[2]
                writes_by_channel[channel] = writes_by_channel.get(channel, 0) + 1
            elif request.route == THREAD_CREATE:
                other["thread creates"] += 1
            elif request.route == TYPING:
                other["typing"] += 1
        first, full, to_model, writes, late = [], [], [], [], []
        completed = 0
        problems = []
        for conversation in conversations:
            record = records.get(conversation.marker)
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
                completed += 1
            elif conversation.failure is None:
                problems.append(f"{conversation.marker}: not completed (thread {conversation.thread_id})")
            if record.get("first_token_at") and record.get("last_token_at") and self.options.rate > 0:
                ideal = (record["tokens_sent"] - 1) / self.options.rate
                late.append((record["last_token_at"] - record["first_token_at"] - ideal) * 1000)
            if conversation.thread_id is not None:
                conversation.writes = writes_by_channel.get(str(conversation.thread_id), 0)
                writes.append(float(conversation.writes))
        arrivals = sorted(r.time for r in requests if not _exempt_from_global(r.route) and r.status != 429)
        peak, start = 0, 0
        for end, at in enumerate(arrivals):
            while arrivals[start] <= at - 1.0:
                start += 1
            peak = max(peak, end - start + 1)
        limited = fake.ratelimited[limited_before:]
        routes: dict[str, int] = {}
        for hit in limited:
            key = f"{hit.route}{' (global)' if hit.is_global else ''}"
            routes[key] = routes.get(key, 0) + 1
        done_after = max(full) / 1000 if full and completed == len(conversations) else None
        tokens = completed * self.options.tokens
        return RoundResult(
            name=name,
            n=len(conversations),
            channels=channels,
            completed=completed,
            first_ms=spread(first),
            full_ms=spread(full),
            mention_to_model_ms=spread(to_model),
            writes_per_reply=spread(writes),
            other_writes=other,
            ratelimited=len(limited),
            ratelimited_routes=routes,
            tokens=tokens,
            cpu_seconds=cpu,
            cpu_per_1k_tokens=cpu / (tokens / 1000) if tokens else None,
            done_after_model_s=done_after,
            model_late_ms=spread(late),
            peak_global_per_s=peak,
            wall_seconds=wall,
            connections_opened=connections_opened(
                (r.connection for r in fake.requests[:requests_before]), (r.connection for r in requests)
            ),
            redis=redis,
            problems=problems,
        )


def _exempt_from_global(route: str) -> bool:
    """Interaction callbacks and webhooks don't count towards the global limit."""
    return route.split(" ", 1)[-1].startswith(("/interactions/", "/webhooks/"))


# -- reporting ---------------------------------------------------------------------------


HEADER = (
    f"{'round':>10} | {'done':>9} | {'429s':>4} | {'first p50/p99 ms':>17} | {'full p50/p99 ms':>17} | "
    f"{'mention→model ms':>17} | {'writes p50/p99':>14} | {'thr/typ':>7} | {'CPU s/1k tok':>12} | "
    f"{'done after model s':>18} | {'peak req/s':>10} | {'new conns':>9} | {'model late p99 ms':>17} | "
    f"{'Redis cmds, ms/reply':>20} | {'wall s':>6}"
)


def format_row(row: RoundResult) -> str:
    done = f"{row.completed}/{row.n}"
    other = f"{row.other_writes['thread creates']}/{row.other_writes['typing']}"
    return (
        f"{row.name:>10} | {done:>9} | {row.ratelimited:>4} | {figures(row.first_ms):>17} | "
        f"{figures(row.full_ms):>17} | "
        f"{figures(row.mention_to_model_ms):>17} | {figures(row.writes_per_reply, 0):>14} | {other:>7} | "
        f"{number(row.cpu_per_1k_tokens, 4):>12} | {number(row.done_after_model_s, 2):>18} | "
        f"{row.peak_global_per_s:>10} | {row.connections_opened:>9} | {number(row.model_late_ms['p99']):>17} | "
        f"{row.redis.per_reply(row.n):>20} | {row.wall_seconds:>6.2f}"
    )


def evaluate(rows: Sequence[RoundResult]) -> list[TargetCheck]:
    def one_per_channel(n: int) -> RoundResult | None:
        return next((r for r in rows if r.n == n and r.channels == n), None)

    def at_most(value: float | None, limit: float) -> bool:
        return value is not None and value <= limit

    checks = []
    for row in rows:
        detail = f"{row.completed}/{row.n} completed, {row.ratelimited} 429s {row.ratelimited_routes or ''}"
        passed = row.completed == row.n and row.ratelimited == 0
        checks.append(TargetCheck(f"{row.name}: every reply completed, zero 429s", passed, detail.rstrip()))
    small = one_per_channel(SMALL_N)
    if small is not None:
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
    shared = [r for r in rows if r.channels == 1 and r.n > 1]
    for row in [r for r in [one_per_channel(MEDIUM_N)] if r is not None] + shared:
        first, full = row.first_ms["p99"], row.full_ms["p99"]
        checks.append(
            TargetCheck(
                f"{row.name}: first and full p99 ≤ {MEDIUM_P99_MS:.0f} ms",
                at_most(first, MEDIUM_P99_MS) and at_most(full, MEDIUM_P99_MS),
                f"first {number(first)} ms, full {number(full)} ms",
            )
        )
    large = one_per_channel(LARGE_N)
    if large is not None:
        name = f"N={LARGE_N}: all complete within {LARGE_DONE_AFTER_MODEL_S:.0f} s of the model finishing"
        checks.append(
            TargetCheck(
                name,
                at_most(large.done_after_model_s, LARGE_DONE_AFTER_MODEL_S),
                f"{number(large.done_after_model_s, 2)} s",
            )
        )
    medium = one_per_channel(MEDIUM_N)
    if medium is not None:
        detail = f"{number(medium.cpu_per_1k_tokens, 4)} s ({medium.cpu_seconds:.2f} s for {medium.tokens} tokens)"
        checks.append(
            TargetCheck(
                f"{medium.name}: bot CPU ≤ {CPU_PER_1K_TOKENS:.2f} s per 1,000 tokens",
                at_most(medium.cpu_per_1k_tokens, CPU_PER_1K_TOKENS),
                detail,
            )
        )
    return checks


def evaluate_run(options: Options, rows: Sequence[RoundResult]) -> list[TargetCheck]:
    def lags(row: RoundResult) -> dict[str, float | None]:
        return {f"{lag} {key}": getattr(row, f"{lag}_ms")[key] for lag in ("first", "full") for key in ("p50", "p99")}

    return phase_checks(
        rows,
        lambda row: row.phase,
        lambda row: row.name,
        evaluate,
        options.phases,
        lambda row: row.cpu_per_1k_tokens,
        lags,
        lambda row: row.connections_opened,
        delay_allowed_ms(options.delay_ms, options.model_delay_ms, options.redis_delay_ms),
        2 * options.delay_ms,
    )


# -- main ----------------------------------------------------------------------------------


async def wait_ready(fake: FakeDiscord, bots: Sequence[BotProcess], timeout: float = 60.0) -> None:
    """Every process has synced its commands and has a live gateway session."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for bot in bots:
            assert bot.process is not None
            if bot.process.returncode is not None:
                raise RuntimeError(f"the bot exited with {bot.process.returncode}:\n{bot.log[-4000:]}")
        synced = sum(1 for r in fake.requests if r.route in COMMAND_SYNC and r.status == 200)
        sessions = sum(1 for session in fake.gateway.sessions.values() if session.connected)
        if synced >= len(bots) and sessions >= len(bots):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the bot did not connect within {timeout:.0f} s:\n{bots[0].log[-4000:]}")


def shard_env(shard: int, count: int) -> dict[str, str]:
    """Process `shard` of `count` (one process: every shard, as many as Discord recommends)."""
    return {} if count == 1 else {"DISCORD_SHARD_COUNT": str(count), "DISCORD_SHARD_IDS": str(shard)}


@dataclass
class PhaseOutcome:
    rows: list[RoundResult]
    log: str  # every process's stderr, one after the other
    exit_status: int  # the first non-zero exit status after SIGTERM, else 0
    requests: list[dict[str, Any]]


async def run_phase(options: Options, phase: Phase, model: ModelServerProcess, split: CpuSplit | None) -> PhaseOutcome:
    prefix = f"bench:discord:{uuid.uuid4().hex[:12]}:"
    rounds: list[tuple[str, int, int]] = [(f"N={n}", n, 1) for n in options.ns]
    if options.shared:
        rounds.append((f"{options.shared} in 1 ch", 1, options.shared))
    async with FakeDiscord(limits=Limits()) as fake:
        # One guild per shard of the run's process count, whatever this set-up runs them in.
        guilds = (
            [fake.add_guild("Bench Guild")]
            if options.workers == 1
            else [fake.add_guild(f"Bench shard {i}", shard=(i, options.workers)) for i in range(options.workers)]
        )
        user = fake.add_user("bencher")
        warm = [
            int(fake.add_text_channel(guild, f"warm-up-{i}")["id"])
            for guild in guilds
            for i in range(WARM_UP_PER_GUILD)
        ]
        channels = {
            name: [int(fake.add_text_channel(guilds[i % len(guilds)], f"{name}-{i}")["id"]) for i in range(count)]
            for name, count, _ in rounds
        }
        routes = [
            Route(fake.port, phase.delay(options.delay_ms)),
            Route(model.port, phase.delay(options.model_delay_ms)),
            *redis_routes(phase, options.redis_delay_ms),
        ]
        async with optional_proxy(routes if phase.through_proxy else []) as proxy:
            env = bot_env(fake, model.base_url, prefix, options.bot_log_level, options.tokens, proxy)
            env.update(shared_core_env(phase.workers, len(split.bot) if split else os.cpu_count() or 1))
            bots = [
                BotProcess({**env, **shard_env(shard, phase.workers)}, split.bot if split else None, options.bot_root)
                for shard in range(phase.workers)
            ]
            rows: list[RoundResult] = []
            try:
                for bot in bots:
                    await bot.start()
                await wait_ready(fake, bots)
                bench = Bench(fake, user, model, [bot.pid for bot in bots], options)
                await bench.run_round("warm-up", warm, 1)
                await asyncio.sleep(1.0)
                for name, _, per_channel in rounds:
                    row = await bench.run_round(name, channels[name], per_channel)
                    row.phase = phase.label if len(options.phases) > 1 else ""
                    print(format_row(row), flush=True)
                    rows.append(row)
                    await asyncio.sleep(1.0)
            finally:
                codes = await asyncio.gather(*(bot.stop() for bot in bots if bot.process is not None))
                several = len(options.phases) > 1 or len(bots) > 1
                log = "".join(
                    f"===== {phase.label}, process {i} =====\n{bot.log}" if several else bot.log
                    for i, bot in enumerate(bots)
                )
                for bot in bots:
                    bot.cleanup()
                await delete_keys(prefix)
    requests = [
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
    return PhaseOutcome(rows, log, next((code for code in codes if code), 0), requests)


async def run(options: Options, model: ModelServerProcess, split: CpuSplit | None) -> list[PhaseOutcome]:
    outcomes = []
    for phase in options.phases:
        if len(options.phases) > 1:
            print(f"-- {phase.label}{shards_note(phase, options)}", flush=True)
        outcomes.append(await run_phase(options, phase, model, split))
    return outcomes


def shards_note(phase: Phase, options: Options) -> str:
    if phase.workers > 1:
        note = f": process i runs shard i of {phase.workers}"
    else:
        note = f": one process runs the {options.workers} guilds" if options.workers > 1 else ""
    if phase.delayed:
        note += (
            f"; {options.delay_ms:g} ms each way to the fake Discord, {options.model_delay_ms:g} ms each way "
            f"to the model server, {options.redis_delay_ms:g} ms each way to Redis"
        )
    elif phase.proxied:
        note += "; through the delay proxy with no delay"
    return note


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    allow_open_files(8 * max(options.ns, default=1) + 512)
    info = machine()
    print(
        f"bench.discord: bot process `python -m bot discord` vs fake Discord (default limits); model "
        f"{options.tokens} tokens at {options.rate:g}/s after {options.first_token_delay:g} s"
    )
    split = split_cpus(options.pin)
    if split is not None:
        os.sched_setaffinity(0, split.rest)  # the fake Discord here, the model server as it starts
    print(
        f"machine: {info['nproc']} CPUs, {info['cpu_model']}, Python {info['python']}; "
        f"{split.describe() if split else 'all processes share every CPU'}"
    )
    print(HEADER)
    print("-" * len(HEADER))
    with ModelServerProcess(
        tokens=options.tokens, rate=options.rate, first_token_delay=options.first_token_delay
    ) as model:
        outcomes = asyncio.run(run(options, model, split))
    rows = [row for outcome in outcomes for row in outcome.rows]
    log = "".join(outcome.log for outcome in outcomes)
    code = next((outcome.exit_status for outcome in outcomes if outcome.exit_status), 0)
    if options.bot_log_path is not None:
        options.bot_log_path.write_text(log)
    if options.requests_path is not None:
        options.requests_path.write_text(json.dumps([r for outcome in outcomes for r in outcome.requests]))
    for row in rows:
        for problem in row.problems[:5]:
            print(f"  {row.phase + ', ' if row.phase else ''}{row.name}: {problem}")
    print(f"\nbot exit status after SIGTERM: {code}")
    if len(outcomes) > 1:
        for phase, outcome in zip(options.phases, outcomes, strict=True):
            print(f"bot log, {phase.label}: {describe_problems(logged_problems(outcome.log.splitlines()))}")
    errors = [line for line in log.splitlines() if "[error" in line or "Traceback" in line or "[warning" in line]
    if errors:
        print(f"bot log: {len(errors)} warning/error lines, e.g.:")
        for line in errors[:8]:
            print(f"  {line[:200]}")
    checks = evaluate_run(options, rows)
    print()
    for check in checks:
        print(f"{'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}")
    if options.json_path is not None:
        data = {
            "options": asdict(options),
            "machine": info,
            "rounds": [asdict(r) for r in rows],
            "targets": [asdict(c) for c in checks],
            "bot_exit_status": code,
        }
        options.json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    return 0 if all(c.passed for c in checks) and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
