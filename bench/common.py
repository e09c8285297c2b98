"""What the benchmarks measure with: the processes (the model server, CPU time and pinning), the
figures of a round, the set-ups a run compares, the target checks across them, Redis."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from fakes.delay_proxy import DelayProxy, Route

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_PORT = urlsplit(REDIS_URL).port or 6379  # where --redis-delay-ms routes the proxy

# -- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_rss_mb(pids: Sequence[int]) -> float | None:
    """The resident memory (VmRSS) of `pids` together, in MB; None once one has exited."""
    total = 0.0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024
    return total


def process_cpu_seconds(pid: int) -> float:
    """CPU time of every thread of `pid` so far, to the nanosecond where the kernel keeps
    schedstat (utime/stime count 10 ms ticks: ±0.03 s per 1,000 tokens for one 300-token reply)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        return sum(int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0]) for task in tasks) / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # loopback only
        return json.load(response)


class ModelServerProcess:
    """`python -m fakes.model_server` in a child process (its CPU is not the bot's), stopped on exit."""

    def __init__(self, *, tokens: int, rate: float, first_token_delay: float, think_tokens: int = 0) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable,
            "-m",
            "fakes.model_server",
            "--port",
            str(self.port),
            "--tokens",
            str(tokens),
            "--rate",
            f"{rate:g}",
            "--first-token-delay",
            f"{first_token_delay:g}",
            "--decode-steps",
            "--thought-tokens",
            str(think_tokens),
        ]
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ModelServerProcess:
        self._process = subprocess.Popen(self.command, cwd=ROOT, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"model server exited with {self._process.returncode}")
            with contextlib.suppress(OSError):
                http_get_json(f"{self.base_url}/health", timeout=1.0)
                return self
            time.sleep(0.05)
        raise RuntimeError("model server did not become healthy within 20 s")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def request_timings(self) -> list[dict[str, Any]]:
        """Per request: received_at, first_token_at, last_token_at, last_user_message (time.time())."""
        return list(http_get_json(f"{self.base_url}/debug/requests", timeout=30)["requests"])


@dataclass(frozen=True)
class CpuSplit:
    """The bot on a core of its own, the stand-ins for the platform and the model server on the rest.

    In production the platform and the model server run on other machines. Here they share a
    small box with the bot, and the scheduler would otherwise run them on the bot's core in the
    middle of a burst, which measures the stand-ins' CPU as the bot's delay.
    """

    bot: frozenset[int]
    rest: frozenset[int]

    def describe(self) -> str:
        def cpus(which: frozenset[int]) -> str:
            return ",".join(str(cpu) for cpu in sorted(which))

        return f"bot on CPU {cpus(self.bot)}, fakes and model server on CPU {cpus(self.rest)}"


def split_cpus(enabled: bool = True) -> CpuSplit | None:
    """Split this process's CPUs (None when disabled or there are fewer than two)."""
    cpus = sorted(os.sched_getaffinity(0)) if enabled and hasattr(os, "sched_getaffinity") else []
    return CpuSplit(frozenset(cpus[:1]), frozenset(cpus[1:])) if len(cpus) >= 2 else None


def pin_process(pid: int, cpus: frozenset[int]) -> None:
    """Keep every thread of a started process on `cpus` (threads it starts later inherit it)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task), cpus)


# What one process streams at once on a core of its own (the bot's MAX_CONCURRENT_REPLIES default).
REPLIES_PER_CORE = 200


def shared_core_env(workers: int, split: CpuSplit | None) -> dict[str, str]:
    """Settings for `workers` bot processes sharing the bot's cores (unpinned, all but one: the
    fakes and the model server need about one): each streams its part of what the cores can read
    at once, as an operator running several processes per core would set it."""
    cores = len(split.bot) if split else max(1, (os.cpu_count() or 2) - 1)
    return {} if workers <= cores else {"MAX_CONCURRENT_REPLIES": str(max(1, REPLIES_PER_CORE * cores // workers))}


def allow_open_files(needed: int) -> None:
    """Raise this process's open-file limit (inherited by the processes it starts) to `needed`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def machine() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), model)
    return {"nproc": os.cpu_count(), "cpu_model": model, "python": platform.python_version()}


_LOGGED_PROBLEM = re.compile(r"\[(?:warning|error|critical)\s*\]\s+(?P<event>\S+)")


def problem_event(line: str) -> str | None:
    """The event of a warning or error a bot logged on this line (key=value or JSON), if it is one."""
    if line.startswith("{"):
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if record.get("level") in ("warning", "error", "critical"):
                return str(record.get("event"))
        return None
    if match := _LOGGED_PROBLEM.search(line):
        return match["event"]
    return "Traceback" if line.startswith("Traceback") else None


def describe_problems(lines: Iterable[str]) -> str:
    """How often each warning or error event occurs in a bot's log."""
    counts = Counter(event for line in lines if (event := problem_event(line)) is not None)
    return ", ".join(f"{event} ×{count}" for event, count in counts.most_common()) or "none"


# -- a round's figures ---------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (p99 of fewer than 100 values is their maximum)."""
    return sorted(values)[max(0, math.ceil(fraction * len(values)) - 1)] if values else None


def spread(values: Sequence[float]) -> dict[str, float | None]:
    return {"p50": percentile(values, 0.50), "p99": percentile(values, 0.99), "max": max(values, default=None)}


def number(value: float | None, digits: int = 1, *, signed: bool = False) -> str:
    """A figure for a results table; "-" when there is none."""
    return "-" if value is None else f"{value:{'+' if signed else ''}.{digits}f}"


def figures(values: dict[str, float | None], digits: int = 1, keys: Sequence[str] = ("p50", "p99")) -> str:
    """Several figures of a `spread`, "p50/p99" by default."""
    return "/".join(number(values[key], digits) for key in keys)


INDICATOR = " ▌"  # a reply still being written ends with it
WARNING = "⚠️"  # a reply that ended without the model's text shows "⚠️ reason"


def failure_shown(text: str) -> str | None:
    """The reason a finished reply shows instead of the model's text, if it does."""
    return text[text.index(WARNING) :][:120] if WARNING in text and not text.endswith(INDICATOR) else None


def connections_opened(records: Sequence[Any], start: int) -> int:
    """How many of the requests `records[start:]` (a round's, each with the fake's client address
    as its `connection`) came over a connection of their own, opened for them."""
    seen, opened = {record.connection for record in records[:start]}, 0
    for record in records[start:]:
        if record.connection not in seen:
            seen.add(record.connection)
            opened += 1
    return opened


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
    rss_mb: float | None = None  # the bot processes' resident memory together when the round ended
    prompt_chars: float | None = None  # the mean length of the prompts the model got (knowledge makes them longer)
    cpu_per_1k_tokens: float | None = field(init=False)

    def __post_init__(self) -> None:
        self.cpu_per_1k_tokens = self.cpu_seconds / (self.tokens / 1000) if self.tokens else None

    def lags(self) -> dict[str, float | None]:
        return {f"{lag} {key}": getattr(self, f"{lag}_ms")[key] for lag in self.LAGS for key in ("p50", "p99")}


R = TypeVar("R", bound=Round)

# -- the set-ups a run compares --------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """One set-up the rounds run in: how many bot processes, with or without network delay."""

    workers: int
    delayed: bool = False
    proxied: bool = False  # through the delay proxy set to no delay: what relaying itself costs

    @property
    def label(self) -> str:
        processes = "1 process" if self.workers == 1 else f"{self.workers} processes"
        if self.delayed:
            return f"{processes} + delay"
        return f"{processes} + proxy, no delay" if self.proxied else processes

    @property
    def through_proxy(self) -> bool:
        return self.delayed or self.proxied

    def delay(self, ms: float) -> float:
        """Seconds each way on a route of `ms` delay, in this set-up."""
        return ms / 1000 if self.delayed else 0.0


def plan_phases(workers: int, delayed: bool, compare: bool) -> list[Phase]:
    """What a run measures: one process first when several are compared with it, then the
    processes without delay, then through the proxy with no delay and with the delay (what the
    delay adds, apart from what relaying every byte through one more process costs)."""
    phases = [Phase(1)] if workers > 1 and compare else []
    phases.append(Phase(workers))
    return phases + ([Phase(workers, proxied=True), Phase(workers, delayed=True)] if delayed else [])


def redis_routes(phase: Phase, redis_delay_ms: float) -> list[Route]:
    """Redis through the delay proxy, only in runs that delay it: relaying each of its commands
    through one more process would add to the other runs' figures what they don't measure."""
    return [Route(REDIS_PORT, phase.delay(redis_delay_ms))] if redis_delay_ms > 0 else []


def redis_url(proxy: DelayProxy | None) -> str:
    """Where the bot processes reach Redis: through the proxy when it has a route there."""
    return proxy.via(REDIS_URL) if proxy is not None and REDIS_PORT in proxy.ports else REDIS_URL


# -- targets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetCheck:
    name: str
    passed: bool
    detail: str


# Several processes may spend at most this much more CPU per token than one doing the same work.
CPU_RATIO_LIMIT = 1.3
# Redis steps between a token and its text on the platform: the reply's first text waits for
# the promise of its final (whether it may stream live), then for its slot.
REDIS_STEPS_PER_TEXT = 2


def delay_allowed_ms(delay_ms: float, model_delay_ms: float, redis_delay_ms: float) -> float:
    """How much later a text may reach the platform over the delays: the model's token comes
    `model_delay_ms` later, its write waits for its Redis steps before it goes, and arrives
    `delay_ms` after it was sent."""
    return delay_ms + model_delay_ms + REDIS_STEPS_PER_TEXT * 2 * redis_delay_ms


def cpu_ratio_check(name: str, runs: Sequence[tuple[Round, Round]], workers: int) -> TargetCheck:
    """CPU per 1,000 tokens of `workers` processes together against one process's in the same
    round (`runs`: each run of it, in both); a round run several times (--n 50,50,50) is judged
    by the median of its ratios."""
    pairs = [(many.cpu_per_1k_tokens, one.cpu_per_1k_tokens) for many, one in runs]
    ratios = [many / one if many is not None and one else None for many, one in pairs]
    ratio = _median(ratios)
    each = "; ".join(
        f"{number(many, 3)} s against {number(one, 3)} s ({number(r, 2)}×)"
        for (many, one), r in zip(pairs, ratios, strict=False)
    )
    detail = f"{each}; median {number(ratio, 2)}×" if len(pairs) > 1 else each
    return TargetCheck(
        f"{name}: CPU per 1,000 tokens of {workers} processes ≤ {CPU_RATIO_LIMIT:g}× one process's",
        ratio is not None and ratio <= CPU_RATIO_LIMIT,
        detail,
    )


def lag_growth_check(
    name: str, runs: Sequence[tuple[Round, Round]], delay_ms: float, handshake_ms: float
) -> TargetCheck:
    """No lag may grow by more than the delay the network puts on the way from the model server
    to the platform: `delay_ms` over a kept-open connection. A write over a connection opened for
    it arrives a handshake later (`handshake_ms`, the round trip of TCP's; TLS adds another), and
    one such write among a burst's is that burst's p99: a p99 may grow by the handshake too in a
    run that opened connections. `runs`: each run of the round with the delay, and the same run
    without. A round run several times is judged by the median of each lag's growth beyond what
    its runs allow, since from one run to the next the same lag varies by more than the delay (a
    burst's timing)."""

    def growth(lag: str, delayed: Round, base: Round) -> float | None:
        after, before = delayed.lags()[lag], base.lags()[lag]
        return None if before is None or after is None else after - before

    def allowed(lag: str, delayed: Round) -> float:
        return delay_ms + (handshake_ms if lag.endswith("p99") and delayed.connections_opened else 0.0)

    growths = {lag: [growth(lag, *run) for run in runs] for lag in runs[0][0].lags()}
    beyond = {
        lag: _median(
            [
                None if value is None else value - allowed(lag, delayed)
                for value, (delayed, _) in zip(values, runs, strict=False)
            ]
        )
        for lag, values in growths.items()
    }
    each = ", ".join(
        f"{lag} {'/'.join(number(g, 0, signed=True) for g in values)} ms" for lag, values in growths.items()
    )
    opened = "/".join(str(delayed.connections_opened) for delayed, _ in runs)
    worst = max((excess for excess in beyond.values() if excess is not None), default=None)
    margin = None if worst is None else -worst
    return TargetCheck(
        f"{name}: lags grow by ≤ {delay_ms:g} ms with the delay (a p99 by ≤ "
        f"{delay_ms + handshake_ms:g} ms where connections were opened)",
        all(excess is not None and excess <= 0 for excess in beyond.values()),
        f"{each}; connections opened {opened}; smallest margin {number(margin, 0, signed=True)} ms",
    )


def _median(values: Sequence[float | None]) -> float | None:
    """None if any is missing: a run that lacks a figure fails the check."""
    present = [value for value in values if value is not None]
    return statistics.median(present) if present and len(present) == len(values) else None


def phase_checks(
    rows: Sequence[R],
    evaluate: Callable[[Sequence[R]], list[TargetCheck]],
    phases: Sequence[Phase],
    delay_ms: float,
    handshake_ms: float,
) -> list[TargetCheck]:
    """The targets of each set-up (`evaluate`, named after it); then each round of several
    processes against the same round of one (CPU per 1,000 tokens), and with the delay against
    without it (see lag_growth_check)."""
    if len(phases) == 1:
        return evaluate(rows)
    by_phase = {phase.label: [row for row in rows if row.phase == phase.label] for phase in phases}
    checks = [
        TargetCheck(f"{label}, {check.name}", check.passed, check.detail)
        for label, phase_rows in by_phase.items()
        for check in evaluate(phase_rows)
    ]
    workers = phases[-1].workers
    set_ups = (Phase(1), Phase(workers), Phase(workers, proxied=True), Phase(workers, delayed=True))
    one, many, proxied, delayed = (by_phase.get(phase.label, []) for phase in set_ups)

    def runs(these: Sequence[R], those: Sequence[R]) -> dict[str, list[tuple[R, R]]]:
        """Each round's runs in both set-ups, by round: every set-up runs the same rounds in the
        same order, and a round may run several times (--n 200,200,200)."""
        paired: dict[str, list[tuple[R, R]]] = {}
        for row, other in zip(these, those, strict=False):
            if other.name == row.name:
                paired.setdefault(row.name, []).append((row, other))
        return paired

    checks += [cpu_ratio_check(name, pairs, workers) for name, pairs in runs(many, one).items()] if workers > 1 else []
    return checks + [
        lag_growth_check(name, pairs, delay_ms, handshake_ms) for name, pairs in runs(delayed, proxied or many).items()
    ]


# -- Redis -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisUsage:
    """What the bot's Redis has done so far: commands served (a script's own commands count one
    each, as they cost Redis) and its CPU. A round's difference is what its replies cost Redis."""

    commands: int = 0
    cpu_seconds: float = 0.0

    def __sub__(self, before: RedisUsage) -> RedisUsage:
        return RedisUsage(self.commands - before.commands, self.cpu_seconds - before.cpu_seconds)

    def per_reply(self, replies: int) -> str:
        """Commands and CPU ms per reply."""
        replies = max(replies, 1)
        return f"{self.commands / replies:.0f}, {self.cpu_seconds * 1000 / replies:.2f}"


async def redis_usage() -> RedisUsage:
    client = aioredis.from_url(REDIS_URL)
    try:
        info = await client.info()
        return RedisUsage(int(info["total_commands_processed"]), info["used_cpu_user"] + info["used_cpu_sys"])
    finally:
        await client.aclose()


async def delete_keys(prefix: str) -> int:
    """Delete the benchmark's own Redis keys (and only those)."""
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
        return len(keys)
    finally:
        await client.aclose()
