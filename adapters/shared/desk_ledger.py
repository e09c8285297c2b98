"""What a help desk deflected, per server or workspace: each help channel question's thread, with when it was asked,
answered by the bot, handed to people, marked solved (with the bot's answer or a person's) or left unanswered, kept
in Redis for every process and counted in Prometheus (`bot_helpdesk_threads_total{platform,outcome}`, each outcome
once per thread whichever process sees it; `bot_helpdesk_time_to_solved_seconds`). `/knowledge gaps` shows the last
7 and 30 days.

  {prefix}helpdesk:desk:{scope}   thread → {"channel", "asked", "answered", "handed", "unanswered", "solved", "by"}
                                  as JSON (unix seconds), the hash kept KEEP_DAYS after its last write; threads asked
                                  before that go when it is read

Raises STORE_UNAVAILABLE (a ReplyFailure) without Redis."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.metrics import Metrics
from bot.state.redis_client import RedisClient, served

T = TypeVar("T")
DAY_SECONDS = 86_400
KEEP_DAYS = 31
REPORT_DAYS = (7, 30)

# KEYS[1] the scope's hash; ARGV: the thread, what it gains if it hasn't it yet (JSON), what it becomes whatever it
# had (JSON; null removes), seconds to keep the hash → the names it gained now (for counting each outcome once).
_MERGE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local entry = raw and cjson.decode(raw) or {}
local gained = {}
for name, value in pairs(cjson.decode(ARGV[2])) do
  if entry[name] == nil then entry[name] = value; table.insert(gained, name) end
end
for name, value in pairs(cjson.decode(ARGV[3])) do
  if value == cjson.null then entry[name] = nil
  else
    if entry[name] == nil then table.insert(gained, name) end
    entry[name] = value
  end
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
redis.call('EXPIRE', KEYS[1], ARGV[4])
return gained
"""


@dataclass(frozen=True)
class DeskThread:
    thread: str
    channel: str
    asked: float
    answered: float = 0.0
    handed: float = 0.0
    unanswered: float = 0.0
    solved: float = 0.0
    by: str = ""  # "bot": solved with the bot's answer; "person": with a person's


@dataclass(frozen=True)
class DeskFigures:
    days: int
    asked: int
    answered: int
    solved_by_bot: int
    solved_by_person: int
    handed_off: int
    unanswered: int
    to_answer: float | None  # median seconds, question → the bot's answer
    to_solved: float | None  # median seconds, question → solved


class DeskLedger:
    def __init__(
        self, redis: RedisClient, key_prefix: str, platform: str, metrics: Metrics, on_error: Callable[[], object]
    ) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}helpdesk:desk:"
        self._platform = platform
        self._metrics = metrics
        self._on_error = on_error
        self._merge = redis.register_script(_MERGE)

    async def asked(self, scope: str, channel: str, thread: str, at: float, outcome: str, when: float) -> None:
        """A help channel's question, asked at `at`, and what became of it at `when`: "answered", "handed" or
        "unanswered"."""
        await self._note(scope, thread, {"channel": channel, "asked": at, outcome: when}, {})

    async def handed(self, scope: str, channel: str, thread: str, at: float) -> None:
        """A thread handed to people (after an answer: Still need help?, a 👎)."""
        await self._note(scope, thread, {"channel": channel, "asked": at, "handed": at}, {})

    async def solved(
        self, scope: str, channel: str, thread: str, asked: float, *, by_bot: bool, at: float | None = None
    ) -> None:
        """The thread marked solved (at `at`, now by default) with the bot's answer or a person's."""
        now, by = time.time() if at is None else at, "bot" if by_bot else "person"
        gained = await self._note(scope, thread, {"channel": channel, "asked": asked or now}, {"solved": now, "by": by})
        if "solved" in gained:
            self._metrics.helpdesk_threads.labels(self._platform, f"solved_by_{by}").inc()
            self._metrics.time_to_solved.labels(self._platform).observe(max(0.0, now - (asked or now)))

    async def unsolved(self, scope: str, thread: str) -> None:
        await self._note(scope, thread, {}, {"solved": None, "by": None})

    async def threads(self, scope: str, now: float | None = None) -> list[DeskThread]:
        """The scope's threads asked in the last KEEP_DAYS; older ones are deleted on the way."""
        cutoff = (time.time() if now is None else now) - KEEP_DAYS * DAY_SECONDS
        found = await self._run(self._redis.hgetall(self._key(scope)))
        threads: list[DeskThread] = []
        old: list[DeskThread] = []
        for field, raw in found.items():
            thread = _thread(_text(field), json.loads(_text(raw)))
            (threads if thread.asked >= cutoff else old).append(thread)
        if old:
            await self._run(self._redis.hdel(self._key(scope), *(one.thread for one in old)))
        return threads

    async def forget_scope(self, scope: str) -> None:
        await self._run(self._redis.delete(self._key(scope)))

    async def _note(self, scope: str, thread: str, first: dict[str, Any], latest: dict[str, Any]) -> list[str]:
        keep = KEEP_DAYS * DAY_SECONDS
        args: list[str | int] = [thread, json.dumps(first), json.dumps(latest), keep]
        said = await self._run(self._merge(keys=[self._key(scope)], args=args))
        gained = [_text(name) for name in said or ()]
        for name in gained:
            if (outcome := _OUTCOMES.get(name)) is not None:
                self._metrics.helpdesk_threads.labels(self._platform, outcome).inc()
        return gained

    def _key(self, scope: str) -> str:
        return f"{self._prefix}{scope}"

    async def _run(self, command: Awaitable[T]) -> T:
        return await served(command, "helpdesk_desk_store_error", self._on_error)


_OUTCOMES = {"asked": "asked", "answered": "answered", "handed": "handed_off", "unanswered": "unanswered"}


def figures(threads: Sequence[DeskThread], days: int, now: float | None = None) -> DeskFigures:
    """The figures of the threads asked in the last `days`."""
    since = (time.time() if now is None else now) - days * DAY_SECONDS
    chosen = [thread for thread in threads if thread.asked >= since]
    to_answer = [thread.answered - thread.asked for thread in chosen if thread.answered]
    to_solved = [thread.solved - thread.asked for thread in chosen if thread.solved]
    return DeskFigures(
        days=days,
        asked=len(chosen),
        answered=sum(1 for thread in chosen if thread.answered),
        solved_by_bot=sum(1 for thread in chosen if thread.solved and thread.by == "bot"),
        solved_by_person=sum(1 for thread in chosen if thread.solved and thread.by == "person"),
        handed_off=sum(1 for thread in chosen if thread.handed),
        unanswered=sum(1 for thread in chosen if thread.unanswered and not thread.answered),
        to_answer=statistics.median(to_answer) if to_answer else None,
        to_solved=statistics.median(to_solved) if to_solved else None,
    )


def describe_desk(report: Sequence[DeskFigures], bold: Callable[[str], str]) -> str:
    """The help desk's lines of `/knowledge gaps`: one per period, "" when no help channel had a question."""
    lines = [_period(one) for one in report if one.asked]
    return f"{bold('Help desk')}\n" + "\n".join(lines) if lines else ""


def _period(one: DeskFigures) -> str:
    parts = [
        f"the bot answered {one.answered}",
        f"{one.solved_by_bot} solved with its answer",
        f"{one.solved_by_person} solved by a person",
        f"{one.handed_off} handed to people",
        f"{one.unanswered} not answered",
    ]
    times = []
    if one.to_answer is not None:
        times.append(f"the bot's answer {_duration(one.to_answer)}")
    if one.to_solved is not None:
        times.append(f"solved {_duration(one.to_solved)}")
    said = f"Last {one.days} days: {one.asked} question{'s' if one.asked != 1 else ''}; {', '.join(parts)}."
    return f"{said} Median time to {' and to '.join(times)}." if times else said


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3_600:
        return f"{seconds / 3_600:.1f} h"
    return f"{seconds / DAY_SECONDS:.1f} days"


def _thread(thread: str, data: dict[str, Any]) -> DeskThread:
    def at(name: str) -> float:
        return float(data.get(name) or 0.0)

    return DeskThread(
        thread=thread,
        channel=str(data.get("channel", "")),
        asked=at("asked"),
        answered=at("answered"),
        handed=at("handed"),
        unanswered=at("unanswered"),
        solved=at("solved"),
        by=str(data.get("by") or ""),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
