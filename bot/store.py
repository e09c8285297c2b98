"""Per-thread conversation history: Redis for real deployments, memory for the console.

A turn costs two round trips whatever the thread's length: one script that appends the
person's message and reads the history back, and one that appends the reply. A crash
between the two leaves a trailing user message, which the prompt builder merges with the
next one, so a thread is always continuable.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeAlias

import structlog

from bot import redis_client
from bot.errors import FailureKind, ReplyFailure
from bot.locks import fence_key
from bot.redis_client import REDIS_ERRORS, RedisClient
from config.settings import MEMORY_STORE_URL, HistorySettings

log = structlog.get_logger(__name__)


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


def _safe_tag(thread: str) -> str:
    return thread.replace("{", "(").replace("}", ")")


# A sliding window in one round trip, on the server's clock (shared by every process).
_TAKE_SLOT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window_ms = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + window_ms - now_ms
end
redis.call('ZADD', KEYS[1], now_ms, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window_ms)
return 0
"""


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

    def __init__(self, client: RedisClient, settings: HistorySettings, on_error: Callable[[], object] | None = None,
                 control: RedisClient | None = None, records: RedisClient | None = None,
                 heartbeat: RedisClient | None = None) -> None:  # fmt: skip
        """Connections of their own, so that none queues behind a burst's turns or each other:
        `control` for the platforms' rate limits (bot.budget), `records` for the
        reply ledger's records and `heartbeat` for its heartbeat (bot.ledger), which late by
        seconds makes a live process look dead to the others."""
        self._on_error = on_error
        self.client = client  # also the conversation locks'
        self.control = control or client
        self.records = records or self.control
        self.heartbeat = heartbeat or self.control
        self._redis = client
        self._settings = settings
        self._take_slot = client.register_script(_TAKE_SLOT)
        self._append_script = client.register_script(_APPEND)

    @classmethod
    def from_url(cls, url: str, settings: HistorySettings, on_error: Callable[[], object] | None = None) -> RedisHistoryStore:
        def connect(connections: int | None = None) -> RedisClient:
            return redis_client.connect(url, cluster=settings.cluster, connections=connections)

        control = redis_client.connect_control(url, cluster=settings.cluster)
        records = connect(redis_client.RECORD_CONNECTIONS)
        return cls(connect(), settings, on_error, control, records, connect(redis_client.HEARTBEAT_CONNECTIONS))

    def history_key(self, thread: str) -> str:
        # The hash tag keeps every key of a thread in one Cluster slot.
        return f"{self._settings.key_prefix}chat:{{{_safe_tag(thread)}}}:history"

    def lock_key(self, thread: str) -> str:
        return f"{self._settings.key_prefix}chat:{{{_safe_tag(thread)}}}:lock"

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

    async def claim(self, key: str, ttl_seconds: int) -> bool:
        """True for the first caller only, across every process."""
        claimed = await self._run(
            self._redis.set(f"{self._settings.key_prefix}claim:{{{_safe_tag(key)}}}", "1", nx=True, ex=ttl_seconds)
        )
        return bool(claimed)  # SET NX answers None, not False, when the key exists

    async def take_slot(self, key: str, limit: int, window: float) -> float:
        """Count one use of `key` if fewer than `limit` happened in the last `window` seconds
        (0.0), else the seconds until one leaves the window (nothing counted)."""
        full_key = f"{self._settings.key_prefix}quota:{{{_safe_tag(key)}}}"
        wait_ms = await self._run(self._take_slot(keys=[full_key], args=[limit, int(window * 1000), uuid.uuid4().hex]))
        return max(0.0, float(wait_ms) / 1000)

    async def link(self, alias: str, thread: str) -> None:
        """Make `alias` (e.g. a bot message a person may reply to) lead to `thread`."""
        await self._run(self._redis.set(self._alias_key(alias), thread, ex=self._settings.ttl_seconds))

    async def resolve(self, alias: str) -> str | None:
        return await self._run(self._redis.get(self._alias_key(alias)))

    def _alias_key(self, alias: str) -> str:
        return f"{self._settings.key_prefix}alias:{{{_safe_tag(alias)}}}"

    async def ping(self) -> None:
        """Every client answers. A Cluster client learns the cluster's nodes here, before a burst
        of commands does it many times over at once (redis-py then loses connections under them)."""
        for client in self._clients():
            await self._run(redis_client.ping(client))

    async def aclose(self) -> None:
        for client in self._clients():
            await redis_client.close(client)

    def _clients(self) -> list[RedisClient]:
        return list({id(client): client for client in (self._redis, self.control, self.records, self.heartbeat)}.values())

    async def _append(self, thread: str, message: StoredMessage, fence: str, *, read_back: bool) -> Any:
        """One round trip: append, trim, refresh the expiry (and read the history back)."""
        settings = self._settings
        keys = [self.history_key(thread), fence_key(self.lock_key(thread))]  # one hash tag: one Cluster slot
        args = [message.to_json(), settings.max_messages, settings.ttl_seconds, fence, "1" if read_back else "0"]
        return await self._run(self._append_script(keys=keys, args=args))

    async def _run(self, awaitable):  # type: ignore[no-untyped-def]
        try:
            return await awaitable
        except REDIS_ERRORS as error:
            log.error("history_store_error", error=f"{type(error).__name__}: {error}")
            if self._on_error is not None:
                self._on_error()
            raise ReplyFailure(FailureKind.STORE_UNAVAILABLE, str(error)) from error


class MemoryHistoryStore:
    """In-process history: for trying the bot out; lost when the process stops."""

    durable = False

    def __init__(self, settings: HistorySettings) -> None:
        self._settings = settings
        self._threads: dict[str, tuple[float, deque[StoredMessage]]] = {}
        self._claims: dict[str, float] = {}
        self._aliases: dict[str, str] = {}
        self._uses: dict[str, deque[float]] = {}

    async def begin_turn(self, thread: str, message: StoredMessage, fence: str = "") -> list[StoredMessage]:
        return list(self._append(thread, message))

    async def add_reply(self, thread: str, message: StoredMessage, fence: str = "") -> None:
        self._append(thread, message)

    async def read(self, thread: str) -> list[StoredMessage]:
        expires, messages = self._threads.get(thread, (0.0, None))  # type: ignore[arg-type]
        return list(messages) if messages is not None and expires >= time.monotonic() else []

    async def clear(self, thread: str) -> None:
        self._threads.pop(thread, None)

    async def claim(self, key: str, ttl_seconds: int) -> bool:
        now = time.monotonic()
        if self._claims.get(key, 0.0) > now:
            return False
        self._claims[key] = now + ttl_seconds
        return True

    async def take_slot(self, key: str, limit: int, window: float) -> float:
        now = time.monotonic()
        uses = self._uses.setdefault(key, deque())
        while uses and uses[0] <= now - window:
            uses.popleft()
        if len(uses) >= limit:
            return uses[0] + window - now
        uses.append(now)
        return 0.0

    async def link(self, alias: str, thread: str) -> None:
        self._aliases[alias] = thread

    async def resolve(self, alias: str) -> str | None:
        return self._aliases.get(alias)

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        self._threads.clear()

    def _append(self, thread: str, message: StoredMessage) -> deque[StoredMessage]:
        now = time.monotonic()
        expires, messages = self._threads.get(thread, (0.0, None))  # type: ignore[arg-type]
        if messages is None or expires < now:
            messages = deque(maxlen=self._settings.max_messages)
        messages.append(message)
        self._threads[thread] = (now + self._settings.ttl_seconds, messages)
        return messages


HistoryStore: TypeAlias = RedisHistoryStore | MemoryHistoryStore


def open_store(url: str, settings: HistorySettings, on_error: Callable[[], object] | None = None) -> HistoryStore:
    """`on_error` is called for every Redis command that fails (the operator's error count)."""
    if url == MEMORY_STORE_URL or url.startswith(MEMORY_STORE_URL):
        return MemoryHistoryStore(settings)
    return RedisHistoryStore.from_url(url, settings, on_error)
