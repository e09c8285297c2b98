"""A person's yes before a tool runs, kept in Redis so that any process may take the click, and a
confirmed call runs at most once: the first valid answer settles the question, and the process that
runs the call records it before it starts, so no click, retry or other process can run it again."""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from bot.state.redis_client import RedisClient, served

T = TypeVar("T")

POLL_SECONDS = 0.5  # how soon a click taken by another process is seen

# KEYS[1]: the question. ARGV: who answers, the answer ("yes"/"no"/"expired"). Only the asker settles a pending
# question ("expired" is the asking process's own timeout: anyone).
_DECIDE = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'gone' end
if ARGV[2] ~= 'expired' and redis.call('HGET', KEYS[1], 'asker') ~= ARGV[1] then return 'not_yours' end
if status ~= 'pending' then return 'settled:' .. status end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'by', ARGV[1])
return 'ok'
"""


class Answer(enum.Enum):
    OK = "ok"  # this answer settled the question
    NOT_YOURS = "not_yours"  # someone other than the asker clicked
    SETTLED = "settled"  # answered already (a doubled click, or too late)
    GONE = "gone"  # no such question (expired long ago, or never asked)


@dataclass(frozen=True)
class Decision:
    approved: bool
    why: str  # "approved", "declined", "no answer in 5 min", …


class ConfirmGate:
    def __init__(self, client: RedisClient, key_prefix: str, on_error: Callable[[], object] = lambda: None) -> None:
        self._redis = client
        self._prefix = key_prefix
        self._on_error = on_error
        self._decide = client.register_script(_DECIDE)
        self._waiting: dict[str, asyncio.Event] = {}  # questions this process waits on

    def new_key(self) -> str:
        return uuid.uuid4().hex[:16]

    async def open(self, key: str, asker: str, ttl_seconds: float) -> None:
        name = self._key(key)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(name, mapping={"status": "pending", "asker": asker})
            pipe.expire(name, int(ttl_seconds) + 3600)
            await self._run(pipe.execute())

    async def answer(self, key: str, person: str, *, yes: bool) -> Answer:
        """A click: settles the question if `person` asked it and it is still open."""
        result = str(await self._run(self._decide(keys=[self._key(key)], args=[person, "yes" if yes else "no"])))
        if (event := self._waiting.get(key)) is not None:
            event.set()
        return Answer(result.split(":", 1)[0])

    async def wait(self, key: str, timeout: float) -> Decision:  # noqa: ASYNC109  # the timeout is the answer "no"
        """The question's answer, or "no answer" once `timeout` passed (a later click is then told it is too late)."""
        event = self._waiting[key] = asyncio.Event()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                status = await self._status(key)
                if status in ("yes", "no"):
                    return Decision(status == "yes", "approved" if status == "yes" else "declined")
                if status is None or loop.time() >= deadline:
                    break
                event.clear()
                try:
                    await asyncio.wait_for(event.wait(), min(POLL_SECONDS, max(0.0, deadline - loop.time())))
                except TimeoutError:
                    pass
            await self._run(self._decide(keys=[self._key(key)], args=["", "expired"]))
            status = await self._status(key)
            if status == "yes":  # a click that landed just before the timeout
                return Decision(True, "approved")
            return Decision(False, f"no answer within {duration(timeout)}")
        finally:
            del self._waiting[key]

    async def record_run(self, key: str) -> bool:
        """True once per question: the approved call may run now (recorded before it runs)."""
        return bool(await self._run(self._redis.hsetnx(self._key(key), "ran", "1")))

    async def _status(self, key: str) -> str | None:
        status = await self._run(self._redis.hget(self._key(key), "status"))
        return None if status is None else str(status)

    def _key(self, key: str) -> str:
        return f"{self._prefix}toolask:{key}"

    async def _run(self, command: Awaitable[T]) -> T:
        return await served(command, "tool_gate_store_error", self._on_error)


def duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} min"
    return f"{seconds:g} s"
