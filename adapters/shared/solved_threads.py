"""Help threads marked solved, kept in Redis for every process: which message answered each, so that the answer's edit
or deletion, a 👎 on it or an unmarking reaches the knowledge it became wherever it happens. One hash per server or
workspace:

  {prefix}knowledge:{platform}:solved:{scope}   "thread:<id>" → the solution as JSON (the question, the accepted
                                                 answer, who marked it and when, the knowledge source it became);
                                                 "answer:<message id>" → the thread it answers

The hash goes with the server (bot.keeping.kinds) and a person's entries with their /forget-me. Raises
STORE_UNAVAILABLE (a ReplyFailure) without Redis."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

from bot.state.redis_client import RedisClient, served

T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    """The message that solved a thread."""

    message: str  # its id (a Slack message's ts)
    author: str  # who wrote it ("" the bot)
    author_name: str  # as a citation names them: "Ana", "the bot"
    text: str
    by_helper: bool  # a helper's, or the bot's: ranked above the same words from others


@dataclass(frozen=True)
class HelpThread:
    """A help channel's thread as knowledge sees it."""

    scope: str  # the server's or workspace's knowledge scope
    channel: str  # the help channel
    thread: str  # the thread's id (a Discord thread, a Slack thread's ts)
    asker: str  # who asked (the thread's first message's author)
    question: str  # the first message, with the asker's follow-ups that sharpened it
    title: str  # as a citation names it: "#help > VPN drops at night"
    url: str  # the thread's link
    readers: str  # the channel whose readers alone may read it
    asked_at: float = 0.0


@dataclass(frozen=True)
class Solution:
    thread: HelpThread
    answer: Answer
    marked_by: str
    marked_at: float

    @property
    def source(self) -> str:
        """Its knowledge source: a helper's answer's name says so, for the search to rank it higher."""
        return f"solved:{'helper:' if self.answer.by_helper else ''}{self.thread.thread}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Solution:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            HelpThread(**data["thread"]), Answer(**data["answer"]), str(data["marked_by"]), float(data["marked_at"])
        )

    def with_answer_text(self, text: str) -> Solution:
        return replace(self, answer=replace(self.answer, text=text))


class Solutions:
    def __init__(
        self, redis: RedisClient, key_prefix: str, platform: str, on_error: Callable[[], object] = lambda: None
    ) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}knowledge:{platform}:solved:"
        self._on_error = on_error

    async def keep(self, solution: Solution) -> Solution | None:
        """`solution` kept for its thread; the one it replaces, if any (its answer no longer leads to the thread)."""
        key, thread = self._key(solution.thread.scope), solution.thread.thread
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(key, f"thread:{thread}")
            pipe.hset(
                key, mapping={f"thread:{thread}": solution.to_json(), f"answer:{solution.answer.message}": thread}
            )
            old, _ = await self._run(pipe.execute())
        replaced = None if old is None else Solution.from_json(old)
        if replaced is not None and replaced.answer.message != solution.answer.message:
            await self._run(self._redis.hdel(key, f"answer:{replaced.answer.message}"))
        return replaced

    async def of_thread(self, scope: str, thread: str) -> Solution | None:
        raw = await self._run(self._redis.hget(self._key(scope), f"thread:{thread}"))
        return None if raw is None else Solution.from_json(raw)

    async def of_answer(self, scope: str, message: str) -> Solution | None:
        """The solution whose accepted answer is `message`, None if it is none's (most messages: one look)."""
        thread = await self._run(self._redis.hget(self._key(scope), f"answer:{message}"))
        if thread is None:
            return None
        solution = await self.of_thread(scope, _text(thread))
        return solution if solution is not None and solution.answer.message == message else None

    async def drop(self, scope: str, thread: str) -> Solution | None:
        """The thread's solution forgotten; what it was, None if it had none (another process took it)."""
        key = self._key(scope)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(key, f"thread:{thread}")
            pipe.hdel(key, f"thread:{thread}")
            raw, _ = await self._run(pipe.execute())
        if raw is None:
            return None
        solution = Solution.from_json(raw)
        await self._run(self._redis.hdel(key, f"answer:{solution.answer.message}"))
        return solution

    async def of_person(self, scope: str, person: str) -> list[Solution]:
        """The solutions `person` asked or answered (their /forget-me)."""
        found = await self._run(self._redis.hgetall(self._key(scope)))
        solutions = [Solution.from_json(raw) for field, raw in found.items() if _text(field).startswith("thread:")]
        return [one for one in solutions if person in (one.thread.asker, one.answer.author)]

    async def scopes(self) -> list[str]:
        """Every scope with a solved thread (Discord's /forget-me reaches all servers)."""
        keys = [_text(key) async for key in self._redis.scan_iter(match=f"{self._prefix}*", count=500)]
        return [key.removeprefix(self._prefix) for key in keys]

    async def forget_scope(self, scope: str) -> None:
        await self._run(self._redis.delete(self._key(scope)))

    def _key(self, scope: str) -> str:
        return f"{self._prefix}{scope}"

    async def _run(self, command: Awaitable[T]) -> T:
        return await served(command, "helpdesk_solved_store_error", self._on_error)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
