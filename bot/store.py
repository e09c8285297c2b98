"""Per-thread conversation history: Redis for real deployments, memory for the console.

A turn costs two round trips whatever the thread's length: one script that appends the
person's message and reads the history back, and one that appends the reply. A crash
between the two leaves a trailing user message, which the prompt builder merges with the
next one, so a thread is always continuable.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeAlias, TypeVar

import structlog

from bot.errors import FailureKind, ReplyFailure
from bot.locks import fence_key
from bot.redis_client import REDIS_ERRORS, RedisClient, hash_tag
from config.settings import HistorySettings

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class StoredMessage:
    role: str  # "user" or "assistant"
    content: str
    author_id: str = ""
    author_name: str = ""
    at: float = 0.0
    tokens: int = 0  # the content's token count, kept so prompts needn't re-tokenize history

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> StoredMessage:
        data = json.loads(raw)
        return cls(
            role=data["role"],
            content=data["content"],
            author_id=data.get("author_id", ""),
            author_name=data.get("author_name", ""),
            at=data.get("at", 0.0),
            tokens=data.get("tokens", 0),
        )


# Append to a history, unless a newer turn has taken the conversation: its fence (KEYS[2]) no
# longer holds this turn's token.
_APPEND = """
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[4] then
  return redis.error_reply('FENCED a newer turn has taken this conversation')
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
if ARGV[5] == '1' then
  return redis.call('LRANGE', KEYS[1], 0, -1)
end
return 0
"""


class RedisHistoryStore:
    durable = True

    def __init__(
        self, client: RedisClient, settings: HistorySettings, on_error: Callable[[], object] = lambda: None
    ) -> None:
        """`on_error` is called for every Redis command that fails (the operator's error count)."""
        self.client = client  # the conversation locks' too: their fence is checked by history writes
        self._redis = client
        self._on_error = on_error
        self._settings = settings
        self._append_script = client.register_script(_APPEND)

    def history_key(self, thread: str) -> str:
        # The hash tag keeps every key of a thread in one Cluster slot.
        return f"{self._settings.key_prefix}chat:{hash_tag(thread)}:history"

    def lock_key(self, thread: str) -> str:
        return f"{self._settings.key_prefix}chat:{hash_tag(thread)}:lock"

    async def begin_turn(self, thread: str, message: StoredMessage, fence: str = "") -> list[StoredMessage]:
        """Append the person's message and return the thread's history including it. `fence`: the
        conversation's fence (see bot.locks); the write is refused (STORE_UNAVAILABLE) once a
        newer turn has taken the conversation."""
        history = await self._append(thread, message, fence, read_back=True)
        return [StoredMessage.from_json(raw) for raw in history]

    async def add_reply(self, thread: str, message: StoredMessage, fence: str = "") -> None:
        await self._append(thread, message, fence, read_back=False)

    async def read(self, thread: str) -> list[StoredMessage]:
        """The thread's history, oldest first (empty when it has none)."""
        raw = await self._run(self._redis.lrange(self.history_key(thread), 0, -1))
        return [StoredMessage.from_json(item) for item in raw]

    async def clear(self, thread: str) -> None:
        await self._run(self._redis.delete(self.history_key(thread)))

    async def _append(self, thread: str, message: StoredMessage, fence: str, *, read_back: bool) -> Any:
        """One round trip: append, trim, refresh the expiry (and read the history back)."""
        settings = self._settings
        keys = [self.history_key(thread), fence_key(self.lock_key(thread))]  # one hash tag: one Cluster slot
        read = "1" if read_back else "0"
        args: list[int | str] = [message.to_json(), settings.max_messages, settings.ttl_seconds, fence, read]
        return await self._run(self._append_script(keys=keys, args=args))

    async def _run(self, command: Awaitable[T]) -> T:
        try:
            return await command
        except REDIS_ERRORS as error:
            log.error("history_store_error", error=f"{type(error).__name__}: {error}")
            self._on_error()
            raise ReplyFailure(FailureKind.STORE_UNAVAILABLE, str(error)) from error


class MemoryHistoryStore:
    """In-process history: for trying the bot out; lost when the process stops."""

    durable = False

    def __init__(self, settings: HistorySettings) -> None:
        self._settings = settings
        self._threads: dict[str, tuple[float, deque[StoredMessage]]] = {}

    async def begin_turn(self, thread: str, message: StoredMessage, fence: str = "") -> list[StoredMessage]:
        return list(self._append(thread, message))

    async def add_reply(self, thread: str, message: StoredMessage, fence: str = "") -> None:
        self._append(thread, message)

    async def read(self, thread: str) -> list[StoredMessage]:
        kept = self._threads.get(thread)
        return list(kept[1]) if kept is not None and kept[0] >= time.monotonic() else []

    async def clear(self, thread: str) -> None:
        self._threads.pop(thread, None)

    def _append(self, thread: str, message: StoredMessage) -> deque[StoredMessage]:
        now = time.monotonic()
        kept = self._threads.get(thread)
        messages = kept[1] if kept is not None and kept[0] >= now else deque(maxlen=self._settings.max_messages)
        messages.append(message)
        self._threads[thread] = (now + self._settings.ttl_seconds, messages)
        return messages


HistoryStore: TypeAlias = RedisHistoryStore | MemoryHistoryStore
