"""The driver both benchmarks share: the options, the set-ups a run compares and their rounds,
the results table, the target checks, the JSON. A platform (bench.discord, bench.slack) adds
only what differs: its fake, its bot processes, a round and its own targets.

The bot processes run on one CPU, this process (the fake platform) and the model server on the
others, as if they were the remote services they stand in for (`--no-pin` lets them share every
CPU). With `--workers W` the rounds run with one process first (`--no-compare` skips it), then
with W, for the CPU comparison. `--delay-ms`, `--model-delay-ms` and `--redis-delay-ms` put the
delay proxy (fakes/delay_proxy.py) between the bot processes and the fake platform, the model
server and Redis; the rounds then run without the proxy, through it with no delay, and with the
delay. What the delay adds is measured against the proxy with no delay: relaying every byte
through one more process on the same CPUs costs tens of milliseconds in a burst, which a network
does not.

For each variant of the platform (Slack: each SLACK_STREAMING mode) and each set-up, a fake
platform and its bot processes, under a Redis key prefix of their own: started and warmed up,
sent the rounds one after the other (a row of the table each), stopped with SIGTERM, their keys
deleted. Then each round's problems, what the bot processes logged, and the targets: each
set-up's own, and across set-ups (bench.common.phase_checks).
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
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from bench.common import (
    REDIS_URL,
    ROOT,
    CpuSplit,
    ModelServerProcess,
    Phase,
    R,
    RedisUsage,
    Round,
    TargetCheck,
    allow_open_files,
    delay_allowed_ms,
    delete_keys,
    describe_problems,
    machine,
    phase_checks,
    plan_phases,
    problem_event,
    process_cpu_seconds,
    process_rss_mb,
    redis_routes,
    redis_usage,
    split_cpus,
)
from fakes.delay_proxy import DelayProxy, Route, optional_proxy

LARGE_N = 200  # a round of more mentions may take longer to finish, in proportion
STOP_SECONDS = 30.0  # SIGTERM → exit: the bot's own grace for replies still being written (20 s) and some more


@dataclass(frozen=True, kw_only=True)
class Options:
    """What every benchmark takes; a platform's Options add its own."""

    ns: tuple[int, ...]
    tokens: int
    rate: float
    first_token_delay: float
    think_tokens: int  # tokens of thought (delta.reasoning_content) before each answer
    round_timeout: float
    json_path: Path | None
    bot_log_path: Path | None
    workers: int
    compare: bool
    delay_ms: float
    model_delay_ms: float
    redis_delay_ms: float
    pin: bool
    bot_root: Path  # the checkout the bot runs from (another one, to compare two versions)

    @property
    def delayed(self) -> bool:
        return max(self.delay_ms, self.model_delay_ms, self.redis_delay_ms) > 0

    @property
    def phases(self) -> list[Phase]:
        return plan_phases(self.workers, self.delayed, self.compare)


OptionsT = TypeVar("OptionsT", bound=Options)


@dataclass(frozen=True)
class RoundSpec:
    """A round: `per_channel` mentions at once in each of `channels` channels."""

    name: str
    channels: int
    per_channel: int = 1

    @property
    def n(self) -> int:
        return self.channels * self.per_channel


# A column of the results table: its title, its width, and the figure of a round.
Column = tuple[str, int, Callable[[R], str]]
RATELIMITED: Column[Round] = ("429s", 4, lambda row: str(row.ratelimited))
CONNECTIONS: Column[Round] = ("new conns", 9, lambda row: str(row.connections_opened))
REDIS: Column[Round] = ("Redis cmds, ms/reply", 20, lambda row: row.redis.per_reply(row.n))
WALL: Column[Round] = ("wall s", 6, lambda row: f"{row.wall_seconds:.2f}")
RSS: Column[Round] = ("RSS MB", 6, lambda row: "-" if row.rss_mb is None else f"{row.rss_mb:.1f}")


@dataclass(frozen=True)
class Usage:
    """What a round cost: the bot processes' CPU, the time until every reply was over, what
    Redis did; and the model server's record of every request so far (see request_timings)."""

    cpu_seconds: float
    wall_seconds: float
    redis: RedisUsage
    model_requests: list[dict[str, Any]]
    rss_mb: float | None  # the bot processes' resident memory together, after the round


class Bot(Protocol):
    @property
    def pid(self) -> int: ...

    async def stop(self, timeout: float) -> int:
        """SIGTERM, and the exit status (-9: killed after `timeout` s)."""
        ...


class SetUp(ABC, Generic[R]):
    """A fake platform and the bot processes of one set-up against it (`bots`, once started):
    made by Platform.set_up; the driver starts them, runs each round and stops them."""

    def __init__(self, platform: Platform[Any, R]) -> None:
        self.options = platform.options
        self.model = platform.model
        self.split = platform.split
        self.bots: Sequence[Bot] = []

    @abstractmethod
    async def start(self) -> None:
        """Start the bot processes (on the bot's CPUs) and warm them up with untimed replies."""

    @abstractmethod
    async def run_round(self, spec: RoundSpec) -> R: ...

    @abstractmethod
    def log(self) -> str:
        """What the bot processes wrote to stderr (after `stop`)."""

    async def stop(self) -> int:
        """SIGTERM every process; the first non-zero exit status, else 0."""
        codes = await asyncio.gather(*(bot.stop(STOP_SECONDS) for bot in self.bots))
        return next((code for code in codes if code), 0)

    async def measure(
        self,
        n: int,
        send: Callable[[], Awaitable[object]],
        over: Callable[[], bool],
        settle: Callable[[], Awaitable[object]],
    ) -> Usage:
        """`send` a round of `n` mentions, wait until every reply is `over` (--round-timeout at
        most, longer in proportion above LARGE_N mentions), then `settle` before reading the CPU."""
        pids = [bot.pid for bot in self.bots]
        # The fake keeps every message of every round: a full collection of that heap stalls it
        # for tens of milliseconds, which would land in the middle of a round's mentions.
        gc.collect()
        gc.freeze()
        cpu_before, redis_before = sum(map(process_cpu_seconds, pids)), await redis_usage()
        started = time.monotonic()
        await send()
        deadline = time.monotonic() + self.options.round_timeout * max(1.0, n / LARGE_N)
        while not over() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        wall = time.monotonic() - started
        await settle()
        cpu = sum(map(process_cpu_seconds, pids)) - cpu_before
        redis = await redis_usage() - redis_before
        return Usage(cpu, wall, redis, await asyncio.to_thread(self.model.request_timings), process_rss_mb(pids))


class Platform(ABC, Generic[OptionsT, R]):
    """What a benchmark adds to the driver: `python -m bench.<name>`, its module's docstring the
    first line of --help."""

    name: ClassVar[str]
    reaches: ClassVar[str]  # what of the fake the bot reaches, for --delay-ms's help
    options_type: ClassVar[type[Options]]
    default_ns: ClassVar[str]  # --n with one process
    ns_help: ClassVar[str]
    round_timeout: ClassVar[float]
    columns: ClassVar[Sequence[Column[Any]]]

    def __init__(self, options: OptionsT, model: ModelServerProcess, split: CpuSplit | None) -> None:
        self.options = options
        self.model = model
        self.split = split

    @classmethod
    def add_options(cls, parser: argparse.ArgumentParser) -> None:
        """The platform's own options."""

    @classmethod
    def read_options(cls, args: argparse.Namespace) -> str | None:
        """Complete `args` with the platform's own options; what is wrong with them, if anything."""
        return None

    @abstractmethod
    def intro(self) -> str:
        """What the run is, before the table."""

    def variants(self) -> Sequence[str]:
        """What every set-up runs once for (Slack: each SLACK_STREAMING mode)."""
        return ("",)

    def label(self, variant: str, phase: Phase) -> str:
        return phase.label

    def note(self, phase: Phase) -> str:
        """More about a set-up, for its heading."""
        return ""

    def rounds(self) -> list[RoundSpec]:
        return [RoundSpec(f"N={n}", n) for n in self.options.ns]

    @abstractmethod
    def set_up(self, variant: str, phase: Phase, key_prefix: str) -> AbstractAsyncContextManager[SetUp[R]]:
        """The fake platform and the bot processes of a set-up, not started yet (see proxy)."""

    @abstractmethod
    def evaluate(self, rows: Sequence[R]) -> list[TargetCheck]:
        """The targets of one set-up's rounds."""

    def more_checks(self, rows: Sequence[R]) -> list[TargetCheck]:
        """Targets across set-ups besides phase_checks'."""
        return []

    def details(self, row: R) -> list[str]:
        """What to say about a round below the table."""
        where = f"{row.phase}, " if row.phase else ""
        more = [f"  … and {len(row.problems) - 5} more"] if len(row.problems) > 5 else []
        chars = row.prompt_chars
        size = [f"  {where}{row.name}: prompts {chars:,.0f} characters on average"] if chars else []
        return size + [f"  {where}{row.name}: {problem}" for problem in row.problems[:5]] + more

    def proxy(self, phase: Phase, ports: Sequence[int]) -> AbstractAsyncContextManager[DelayProxy | None]:
        """The delay proxy of a set-up through it (else None): to the fake platform's `ports`, the
        model server, and Redis where it is delayed."""
        options = self.options
        routes = [
            *(Route(port, phase.delay(options.delay_ms)) for port in ports),
            Route(self.model.port, phase.delay(options.model_delay_ms)),
            *redis_routes(phase, options.redis_delay_ms),
        ]
        return optional_proxy(routes if phase.through_proxy else [])


def parse_options(platform: type[Platform[OptionsT, R]], argv: Sequence[str] | None) -> OptionsT:
    title = platform.name.capitalize()
    doc = sys.modules[platform.__module__].__doc__ or ""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{platform.name}", description=doc.splitlines()[0])
    parser.add_argument(
        "--n",
        default=None,
        help=f"{platform.ns_help} (comma-separated; default {platform.default_ns}, with --workers > 1 50,200,1000)",
    )
    parser.add_argument("--workers", type=int, default=1, help="bot processes acting as one bot")
    parser.add_argument(
        "--no-compare",
        dest="compare",
        action="store_false",
        help="with --workers > 1: skip the same rounds with one process",
    )
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=0.0,
        help=f"delay each way between the bot processes and the fake {title} ({platform.reaches})",
    )
    parser.add_argument(
        "--model-delay-ms",
        type=float,
        default=0.0,
        help="delay each way between the bot processes and the model server",
    )
    parser.add_argument(
        "--redis-delay-ms",
        type=float,
        default=0.0,
        help="delay each way between the bot processes and Redis (the platform's limits, "
        "conversation locks, histories)",
    )
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help=f"let the bot processes share their CPU with the fake {title} and the model server",
    )
    parser.add_argument("--tokens", type=int, default=300, help="tokens per reply")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s per reply")
    parser.add_argument("--first-token-delay", type=float, default=0.2, help="seconds before the first token")
    parser.add_argument(
        "--think-tokens", type=int, default=0, help="a thinking model: tokens of thought before each answer"
    )
    parser.add_argument(
        "--round-timeout",
        type=float,
        default=platform.round_timeout,
        help=f"give up on a round after this many s (longer in proportion above {LARGE_N} mentions)",
    )
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="write results to this file")
    parser.add_argument(
        "--bot-log", dest="bot_log_path", type=Path, default=None, help="keep the bot processes' stderr here"
    )
    parser.add_argument(
        "--bot-root",
        type=Path,
        default=ROOT,
        help="run the bot from this checkout (to compare two versions with one harness)",
    )
    platform.add_options(parser)
    args = parser.parse_args(argv)
    args.bot_root = args.bot_root.resolve()
    rounds = args.n or ("50,200,1000" if args.workers > 1 else platform.default_ns)
    args.ns = tuple(int(part) for part in rounds.split(",") if part.strip())
    if (
        min(args.ns, default=1) < 1
        or args.workers < 1
        or min(args.delay_ms, args.model_delay_ms, args.redis_delay_ms) < 0
    ):
        parser.error("--n needs positive whole numbers, --workers ≥ 1, the delays ≥ 0")
    if error := platform.read_options(args):
        parser.error(error)
    return cast(
        OptionsT, platform.options_type(**{f.name: getattr(args, f.name) for f in fields(platform.options_type)})
    )


@dataclass
class Outcome(Generic[R]):
    """One set-up's rounds, what its bot processes logged, their exit status after SIGTERM."""

    label: str
    rows: list[R]
    log: str
    exit_status: int


def header(columns: Sequence[Column[Any]]) -> str:
    return " | ".join(f"{title:>{width}}" for title, width, _ in columns)


def format_row(columns: Sequence[Column[R]], row: R) -> str:
    return " | ".join(f"{figure(row):>{width}}" for _, width, figure in columns)


async def run_set_up(platform: Platform[OptionsT, R], variant: str, phase: Phase) -> Outcome[R]:
    prefix = f"bench:{platform.name}:{uuid.uuid4().hex[:12]}:"
    rows: list[R] = []
    async with platform.set_up(variant, phase, prefix) as set_up:
        try:
            await set_up.start()
            for spec in platform.rounds():
                row = await set_up.run_round(spec)
                row.phase = phase.label if len(platform.options.phases) > 1 else ""
                print(format_row(platform.columns, row), flush=True)
                rows.append(row)
        finally:
            code = await set_up.stop()
            await delete_keys(prefix)
    return Outcome(platform.label(variant, phase), rows, set_up.log(), code)


async def run_set_ups(platform: Platform[OptionsT, R]) -> list[Outcome[R]]:
    options, outcomes = platform.options, []
    for variant in platform.variants():
        for phase in options.phases:
            if len(options.phases) > 1:
                note = platform.note(phase)
                if phase.delayed:
                    note += (
                        f"; {options.delay_ms:g} ms each way to the fake {platform.name.capitalize()}, "
                        f"{options.model_delay_ms:g} ms each way to the model server, "
                        f"{options.redis_delay_ms:g} ms each way to Redis"
                    )
                elif phase.proxied:
                    note += "; through the delay proxy with no delay"
                print(f"-- {platform.label(variant, phase)}{note}", flush=True)
            outcomes.append(await run_set_up(platform, variant, phase))
    return outcomes


def report(platform: Platform[OptionsT, R], outcomes: Sequence[Outcome[R]], info: dict[str, Any]) -> int:
    """Below the table: each round's problems, the bot processes' logs, the targets; the JSON."""
    options = platform.options
    rows = [row for outcome in outcomes for row in outcome.rows]
    print()
    for line in (line for row in rows for line in platform.details(row)):
        print(line)
    for outcome in outcomes:
        logged = describe_problems(outcome.log.splitlines())
        print(f"bot log, {outcome.label}: {logged}; exit status after SIGTERM {outcome.exit_status}")
    problems = [line for outcome in outcomes for line in outcome.log.splitlines() if problem_event(line)]
    if problems:
        print(f"bot log: {len(problems)} warning/error lines, e.g.:")
        print("\n".join(f"  {line[:200]}" for line in problems[:8]))
    if options.bot_log_path is not None:
        options.bot_log_path.write_text("".join(f"===== {outcome.label} =====\n{outcome.log}" for outcome in outcomes))
    delay = delay_allowed_ms(options.delay_ms, options.model_delay_ms, options.redis_delay_ms)
    checks = phase_checks(rows, platform.evaluate, options.phases, delay, 2 * options.delay_ms)
    checks += platform.more_checks(rows)
    print()
    for check in checks:
        print(f"{'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}")
    code = next((outcome.exit_status for outcome in outcomes if outcome.exit_status), 0)
    if options.json_path is not None:
        data = {
            "options": asdict(options),
            "machine": info,
            "redis": REDIS_URL,
            "rounds": [asdict(r) for r in rows],
            "targets": [asdict(c) for c in checks],
            "bot_exit_status": code,
        }
        options.json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    return 0 if all(check.passed for check in checks) and code == 0 else 1


def main(platform_type: type[Platform[OptionsT, R]], argv: Sequence[str] | None = None) -> int:
    options = parse_options(platform_type, argv)
    allow_open_files(8 * max(options.ns, default=1) + 512)
    info = machine()
    split = split_cpus(options.pin)
    if split is not None:
        os.sched_setaffinity(0, split.rest)  # the fake platform here, the model server as it starts
    with ModelServerProcess(
        tokens=options.tokens,
        rate=options.rate,
        first_token_delay=options.first_token_delay,
        think_tokens=options.think_tokens,
    ) as model:
        platform = platform_type(options, model, split)
        print(platform.intro())
        print(
            f"machine: {info['nproc']} CPUs, {info['cpu_model']}, Python {info['python']}; "
            f"{split.describe() if split else 'all processes share every CPU'}\n"
        )
        print(header(platform.columns))
        print("-" * len(header(platform.columns)))
        outcomes = asyncio.run(run_set_ups(platform))
    return report(platform, outcomes, info)
