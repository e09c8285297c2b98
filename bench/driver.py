"""The driver both benchmarks share: options, the set-ups a run compares and their rounds, the
results table, the target checks, the JSON. A platform (bench.discord, bench.slack) adds only
what differs: its fake, its bot processes, how a round of mentions goes and what it measures,
and its own targets.

A run starts the model server (bench.common.ModelServerProcess), then for each variant of the
platform (Slack: each SLACK_STREAMING mode) and each set-up (see bench.common.plan_phases) a
fake platform with its bot processes under a Redis key prefix of their own: they are started,
warmed up, sent the rounds one after the other (one row of the table each) and stopped with
SIGTERM, and their keys deleted. Then each row's problems, what the bot processes logged, and
the targets: each set-up's own, and across set-ups the CPU of several processes against one and
the lags with the delay against without it.
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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, cast

from bench.common import (
    REDIS_URL, CpuSplit, LagRun, ModelServerProcess, Phase, RedisUsage, TargetCheck, allow_open_files,
    cpu_ratio_check, delay_allowed_ms, delete_keys, describe_problems, lag_growth_check, logged_problems, machine,
    plan_phases, problem_event, process_cpu_seconds, redis_routes, redis_usage, split_cpus,
)
from bench.delay_proxy import DelayProxy, Route, optional_proxy

# A round of more mentions than this may take longer to finish, in proportion.
LARGE_N = 200


@dataclass(frozen=True, kw_only=True)
class Options:
    """What every benchmark takes; a platform's Options add its own."""

    ns: tuple[int, ...]
    tokens: int
    rate: float
    first_token_delay: float
    round_timeout: float
    json_path: Path | None
    bot_log_path: Path | None
    workers: int
    compare: bool
    delay_ms: float
    model_delay_ms: float
    redis_delay_ms: float
    pin: bool

    @property
    def delayed(self) -> bool:
        return max(self.delay_ms, self.model_delay_ms, self.redis_delay_ms) > 0

    @property
    def phases(self) -> list[Phase]:
        return plan_phases(self.workers, self.delayed, self.compare)


@dataclass(frozen=True)
class RoundSpec:
    """A round: `per_channel` mentions at once in each of `channels` channels."""

    name: str
    channels: int
    per_channel: int = 1

    @property
    def n(self) -> int:
        return self.channels * self.per_channel


@dataclass(kw_only=True)
class Round:
    """What every round measures; a platform's rounds add their own figures. `name` is the same
    round in every set-up; LAGS, the `<lag>_ms` spreads compared with the delay and without."""

    LAGS: ClassVar[tuple[str, ...]] = ("first", "full")

    name: str
    n: int
    completed: int
    first_ms: dict[str, float | None]  # the model's first token → the first text on the platform
    ratelimited: int  # 429s the fake served
    tokens: int
    cpu_seconds: float  # the bot processes', all their threads
    wall_seconds: float
    connections_opened: int  # to the fake platform's API, during the round (see connections_opened)
    redis: RedisUsage  # what the bot's Redis did during the round
    problems: list[str] = field(default_factory=list)
    phase: str = ""  # the set-up (processes, delay) when a run compares several
    cpu_per_1k_tokens: float | None = field(init=False)

    def __post_init__(self) -> None:
        self.cpu_per_1k_tokens = self.cpu_seconds / (self.tokens / 1000) if self.tokens else None

    def lags(self) -> dict[str, float | None]:
        return {f"{lag} {key}": getattr(self, f"{lag}_ms")[key] for lag in self.LAGS for key in ("p50", "p99")}


R = TypeVar("R", bound=Round)
O = TypeVar("O", bound=Options)

# A column of the results table: its title, its width, and the figure of a round.
Column = tuple[str, int, Callable[[R], str]]
RATELIMITED: Column[Round] = ("429s", 4, lambda row: str(row.ratelimited))
CONNECTIONS: Column[Round] = ("new conns", 9, lambda row: str(row.connections_opened))
REDIS: Column[Round] = ("Redis cmds, ms/reply", 20, lambda row: row.redis.per_reply(row.n))
WALL: Column[Round] = ("wall s", 6, lambda row: f"{row.wall_seconds:.2f}")


@dataclass(frozen=True)
class Usage:
    """What a round cost: the bot processes' CPU, the time until every reply was over, what
    Redis did; and the model server's record of every request so far (see request_timings)."""

    cpu_seconds: float
    wall_seconds: float
    redis: RedisUsage
    model_requests: list[dict[str, Any]]


class SetUp(ABC, Generic[R]):
    """A fake platform and the bot processes of one set-up against it: made by Platform.set_up;
    the driver starts them, warms them up, runs each round and stops them."""

    def __init__(self, options: Options, model: ModelServerProcess) -> None:
        self.options = options
        self.model = model

    @abstractmethod
    async def start(self) -> None:
        """Start the bot processes (on the bot's CPUs); return once they take events."""

    @abstractmethod
    async def warm_up(self) -> None:
        """Untimed replies first: connections, pools and imports set up."""

    @abstractmethod
    async def run_round(self, spec: RoundSpec) -> R: ...

    @abstractmethod
    async def stop(self) -> int:
        """SIGTERM every process; the first non-zero exit status (-9: killed), else 0."""

    @abstractmethod
    def log(self) -> str:
        """What the bot processes wrote to stderr (read after `stop`)."""

    @abstractmethod
    def pids(self) -> list[int]: ...

    async def measure(self, n: int, send: Callable[[], Awaitable[object]], over: Callable[[], bool],
                      settle: Callable[[], Awaitable[object]]) -> Usage:
        """`send` a round of `n` mentions, wait until every reply is `over` (--round-timeout at
        most, longer in proportion above LARGE_N mentions), then `settle` before reading the CPU."""
        pids = self.pids()
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
        return Usage(cpu, wall, redis, await asyncio.to_thread(self.model.request_timings))


class Platform(ABC, Generic[O, R]):
    """What a benchmark adds to the driver (`python -m bench.<name>`, its module's docstring
    the first line of --help)."""

    name: ClassVar[str]
    title: ClassVar[str]  # the platform's name in the options' help and the set-ups' headings
    reaches: ClassVar[str]  # what of the fake the bot reaches, for --delay-ms's help
    options_type: ClassVar[type[Options]]
    default_ns: ClassVar[str]  # --n with one process
    ns_help: ClassVar[str]
    round_timeout: ClassVar[float]
    columns: ClassVar[Sequence[Column[Any]]]

    def __init__(self, options: O, model: ModelServerProcess, split: CpuSplit | None) -> None:
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
    def intro(self) -> list[str]:
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
        """Targets across set-ups besides the driver's (phase_checks)."""
        return []

    def details(self, row: R) -> list[str]:
        """What to say about a round below the table."""
        where = f"{row.phase}, " if row.phase else ""
        more = [f"  … and {len(row.problems) - 5} more"] if len(row.problems) > 5 else []
        return [f"  {where}{row.name}: {problem}" for problem in row.problems[:5]] + more

    def proxy(self, phase: Phase, ports: Sequence[int]) -> AbstractAsyncContextManager[DelayProxy | None]:
        """The delay proxy of a set-up through it (else None): to the fake platform's `ports`, the
        model server, and Redis where it is delayed."""
        if not phase.through_proxy:
            return optional_proxy([])
        platform, options = phase.delay(self.options.delay_ms), self.options
        return optional_proxy([*(Route(port, platform) for port in ports),
                               Route(self.model.port, phase.delay(options.model_delay_ms)),
                               *redis_routes(phase, options.redis_delay_ms)])


def parse_options(platform: type[Platform[O, R]], argv: Sequence[str] | None) -> O:
    doc = sys.modules[platform.__module__].__doc__ or ""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{platform.name}", description=doc.splitlines()[0])
    parser.add_argument("--n", default=None, help=f"{platform.ns_help} (comma-separated; default "
                                                  f"{platform.default_ns}, with --workers > 1 50,200,1000)")
    parser.add_argument("--workers", type=int, default=1, help="bot processes acting as one bot")
    parser.add_argument("--no-compare", dest="compare", action="store_false",
                        help="with --workers > 1: skip the same rounds with one process")
    parser.add_argument("--delay-ms", type=float, default=0.0,
                        help=f"delay each way between the bot processes and the fake {platform.title} "
                             f"({platform.reaches})")
    parser.add_argument("--model-delay-ms", type=float, default=0.0,
                        help="delay each way between the bot processes and the model server")
    parser.add_argument("--redis-delay-ms", type=float, default=0.0,
                        help="delay each way between the bot processes and Redis (the platform's limits, "
                             "conversation locks, histories)")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help=f"let the bot processes share their CPU with the fake {platform.title} and the "
                             "model server")
    parser.add_argument("--tokens", type=int, default=300, help="tokens per reply")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s per reply")
    parser.add_argument("--first-token-delay", type=float, default=0.2, help="seconds before the first token")
    parser.add_argument("--round-timeout", type=float, default=platform.round_timeout,
                        help=f"give up on a round after this many s (longer in proportion above {LARGE_N} mentions)")
    parser.add_argument("--json", dest="json_path", type=Path, default=None, help="write results to this file")
    parser.add_argument("--bot-log", dest="bot_log_path", type=Path, default=None,
                        help="keep the bot processes' stderr here")
    platform.add_options(parser)
    args = parser.parse_args(argv)
    rounds = args.n or ("50,200,1000" if args.workers > 1 else platform.default_ns)
    args.ns = tuple(int(part) for part in rounds.split(",") if part.strip())
    if min(args.ns, default=1) < 1 or args.workers < 1 or min(args.delay_ms, args.model_delay_ms,
                                                               args.redis_delay_ms) < 0:
        parser.error("--n needs positive whole numbers, --workers ≥ 1, the delays ≥ 0")
    if error := platform.read_options(args):
        parser.error(error)
    return cast(O, platform.options_type(**{f.name: getattr(args, f.name) for f in fields(platform.options_type)}))


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


async def run_set_up(platform: Platform[O, R], variant: str, phase: Phase) -> Outcome[R]:
    prefix = f"bench:{platform.name}:{uuid.uuid4().hex[:12]}:"
    several = len(platform.options.phases) > 1
    rows: list[R] = []
    async with platform.set_up(variant, phase, prefix) as set_up:
        try:
            await set_up.start()
            await set_up.warm_up()
            for spec in platform.rounds():
                row = await set_up.run_round(spec)
                row.phase = phase.label if several else ""
                print(format_row(platform.columns, row), flush=True)
                rows.append(row)
        finally:
            code = await set_up.stop()
            await delete_keys(prefix)
    return Outcome(platform.label(variant, phase), rows, set_up.log(), code)


async def run_set_ups(platform: Platform[O, R]) -> list[Outcome[R]]:
    options, outcomes = platform.options, []
    for variant in platform.variants():
        for phase in options.phases:
            if len(options.phases) > 1:
                note = platform.note(phase)
                if phase.delayed:
                    note += (f"; {options.delay_ms:g} ms each way to the fake {platform.title}, "
                             f"{options.model_delay_ms:g} ms each way to the model server, "
                             f"{options.redis_delay_ms:g} ms each way to Redis")
                elif phase.proxied:
                    note += "; through the delay proxy with no delay"
                print(f"-- {platform.label(variant, phase)}{note}", flush=True)
            outcomes.append(await run_set_up(platform, variant, phase))
    return outcomes


def phase_checks(platform: Platform[O, R], rows: Sequence[R]) -> list[TargetCheck]:
    """The targets of each set-up (named after it); then each round of several processes against
    the same round of one (CPU per 1,000 tokens), and with the delay against without it (see
    lag_growth_check: a write over a new connection arrives a TCP handshake, a round trip, later)."""
    options, phases = platform.options, platform.options.phases
    if len(phases) == 1:
        return platform.evaluate(rows)
    by_phase = {phase.label: [row for row in rows if row.phase == phase.label] for phase in phases}
    checks = [TargetCheck(f"{label}, {check.name}", check.passed, check.detail)
              for label, phase_rows in by_phase.items() for check in platform.evaluate(phase_rows)]
    workers = phases[-1].workers
    set_ups = (Phase(1), Phase(workers), Phase(workers, proxied=True), Phase(workers, delayed=True))
    one, many, proxied, delayed = (by_phase.get(phase.label, []) for phase in set_ups)

    def runs(these: Sequence[R], those: Sequence[R]) -> dict[str, list[tuple[R, R]]]:
        """Each round's runs in both set-ups, by round: every set-up runs the same rounds in the
        same order, and a round may run several times (--n 200,200,200)."""
        paired: dict[str, list[tuple[R, R]]] = {}
        for row, other in zip(these, those):
            if other.name == row.name:
                paired.setdefault(row.name, []).append((row, other))
        return paired

    for name, pairs in runs(many, one).items() if workers > 1 else ():
        checks.append(cpu_ratio_check(name, [(row.cpu_per_1k_tokens, single.cpu_per_1k_tokens)
                                             for row, single in pairs], workers))
    allowed = delay_allowed_ms(options.delay_ms, options.model_delay_ms, options.redis_delay_ms)
    for name, pairs in runs(delayed, proxied or many).items():
        lag_runs = [LagRun({lag: (base.lags()[lag], after) for lag, after in row.lags().items()},
                           row.connections_opened) for row, base in pairs]
        checks.append(lag_growth_check(name, lag_runs, allowed, 2 * options.delay_ms))
    return checks


def report(platform: Platform[O, R], outcomes: Sequence[Outcome[R]], info: dict[str, Any]) -> int:
    """Below the table: each round's problems, the bot processes' logs, the targets; the JSON."""
    options = platform.options
    rows = [row for outcome in outcomes for row in outcome.rows]
    print()
    for line in (line for row in rows for line in platform.details(row)):
        print(line)
    for outcome in outcomes:
        logged = describe_problems(logged_problems(outcome.log.splitlines()))
        print(f"bot log, {outcome.label}: {logged}; exit status after SIGTERM {outcome.exit_status}")
    problems = [line for outcome in outcomes for line in outcome.log.splitlines() if problem_event(line)]
    if problems:
        print(f"bot log: {len(problems)} warning/error lines, e.g.:")
        print("\n".join(f"  {line[:200]}" for line in problems[:8]))
    if options.bot_log_path is not None:
        options.bot_log_path.write_text("".join(f"===== {outcome.label} =====\n{outcome.log}" for outcome in outcomes))
    checks = phase_checks(platform, rows) + platform.more_checks(rows)
    print()
    for check in checks:
        print(f"{'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}")
    code = next((outcome.exit_status for outcome in outcomes if outcome.exit_status), 0)
    if options.json_path is not None:
        data = {"options": asdict(options), "machine": info, "redis": REDIS_URL, "rounds": [asdict(r) for r in rows],
                "targets": [asdict(c) for c in checks], "bot_exit_status": code}
        options.json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    return 0 if all(check.passed for check in checks) and code == 0 else 1


def main(platform_type: type[Platform[O, R]], argv: Sequence[str] | None = None) -> int:
    options = parse_options(platform_type, argv)
    allow_open_files(8 * max(options.ns, default=1) + 512)
    info = machine()
    split = split_cpus(options.pin)
    if split is not None:
        os.sched_setaffinity(0, split.rest)  # the fake platform here, the model server as it starts
    with ModelServerProcess(tokens=options.tokens, rate=options.rate,
                            first_token_delay=options.first_token_delay) as model:
        platform = platform_type(options, model, split)
        print("\n".join(platform.intro()))
        print(f"machine: {info['nproc']} CPUs, {info['cpu_model']}, Python {info['python']}; "
              f"{split.describe() if split else 'all processes share every CPU'}")
        print()
        print(header(platform.columns))
        print("-" * len(header(platform.columns)))
        outcomes = asyncio.run(run_set_ups(platform))
    return report(platform, outcomes, info)
