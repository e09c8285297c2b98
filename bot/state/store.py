"""Per-thread conversations in Redis: their history, their images and the model chosen for them.

A turn costs two round trips whatever the thread's length: a script that appends the person's
message (and images) and reads the history and chosen model back, and one that appends the reply.
A crash between them leaves a trailing question, answered with the next one (see bot.turn.prompt).
Images are kept beside the history, the newest within HISTORY_IMAGE_BYTES per conversation.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from bot.errors import FailureKind, ReplyFailure
from bot.state.locks import fence_key
from bot.state.redis_client import RedisClient, hash_tag, served
from config.settings import HistorySettings

T = TypeVar("T")


@dataclass(frozen=True)
class StoredMessage:
    role: str  # "user" or "assistant"
    content: str
    author_id: str = ""
    author_name: str = ""
    at: float = 0.0
    tokens: int = 0  # the content's token count, kept so prompts needn't re-tokenize history
    images: tuple[str, ...] = ()  # ids of the images sent with it (see `images`)
    failed: str = ""  # an answer that failed: the reason shown after its text
    # An answer's tool calls and their results (OpenAI-style assistant and tool messages), before its last text.
    tools: tuple[dict[str, Any], ...] = ()
    # How the person's platform showed it, kept to draw it again as it was (the web page after a reload: a
    # question's files, an answer's sources and thought); opaque here, and never part of a prompt.
    view: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = {key: value for key, value in asdict(self).items() if value or key in ("role", "content")}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> StoredMessage:
        data = {key: value for key, value in json.loads(raw).items() if key in _FIELDS}
        return cls(**{**data, "images": tuple(data.get("images", ())), "tools": tuple(data.get("tools", ()))})


_FIELDS = frozenset(each.name for each in fields(StoredMessage))


@dataclass(frozen=True)
class Conversation:
    messages: list[StoredMessage]  # oldest first, the person's new message last
    model: str = ""  # the model chosen for it ("" = the default)


def new_image_ids(images: Sequence[str]) -> dict[str, str]:
    """Ids for images about to be stored with a message: {id: data URL}."""
    return {uuid.uuid4().hex[:12]: url for url in images}


# Append to a history, unless a newer turn has taken the conversation: its fence (KEYS[2]) no
# longer holds this turn's token. Images (id, data URL pairs from ARGV[7]) go to KEYS[3], their
# order to KEYS[4], the oldest dropped past ARGV[6] bytes. Reads back the chosen model (KEYS[5])
# and the history.
_APPEND = """
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[4] then
  return redis.error_reply('FENCED a newer turn has taken this conversation')
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
if #ARGV > 6 then
  local total = redis.call('HINCRBY', KEYS[3], '#bytes', 0)
  for i = 7, #ARGV, 2 do
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
    redis.call('RPUSH', KEYS[4], ARGV[i])
    total = total + #ARGV[i + 1]
  end
  while total > tonumber(ARGV[6]) do
    local oldest = redis.call('LPOP', KEYS[4])
    if not oldest then break end
    total = total - redis.call('HSTRLEN', KEYS[3], oldest)
    redis.call('HDEL', KEYS[3], oldest)
  end
  redis.call('HSET', KEYS[3], '#bytes', total)
  redis.call('EXPIRE', KEYS[3], ARGV[3])
  redis.call('EXPIRE', KEYS[4], ARGV[3])
end
if ARGV[5] == '1' then
  return {redis.call('GET', KEYS[5]) or '', redis.call('LRANGE', KEYS[1], 0, -1)}
end
return 0
"""
# Take the last answer off a history (unless a newer turn holds the conversation) to answer its
# question again; reads back the chosen model (KEYS[3]) and the history.
_RETRY = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return redis.error_reply('FENCED a newer turn has taken this conversation')
end
local last = redis.call('LINDEX', KEYS[1], -1)
if last and string.sub(last, 1, 19) == '{"role":"assistant"' then redis.call('RPOP', KEYS[1]) end
return {redis.call('GET', KEYS[3]) or '', redis.call('LRANGE', KEYS[1], 0, -1)}
"""


class HistoryStore:
    def __init__(
        self, client: RedisClient, settings: HistorySettings, on_error: Callable[[], object] = lambda: None
    ) -> None:
        """`on_error` is called for every Redis command that fails (the operator's error count)."""
        self.client = client  # the conversation locks' too: their fence is checked by history writes
        self.settings = settings
        self._on_error = on_error
        self._append_script = client.register_script(_APPEND)
        self._retry_script = client.register_script(_RETRY)

    def key(self, thread: str, kind: str = "history") -> str:
        """The thread's keys ("history", "lock", "images", …) share a hash tag: one Cluster slot."""
        return f"{self.settings.key_prefix}chat:{hash_tag(thread)}:{kind}"

    def lock_key(self, thread: str) -> str:
        return self.key(thread, "lock")

    async def begin_turn(
        self, thread: str, message: StoredMessage, fence: str = "", images: Mapping[str, str] | None = None
    ) -> Conversation:
        """Append the person's message (with `images`, {id: data URL}, the ids in the message)
        and return the conversation including it. `fence`: the conversation's fence (see
        bot.state.locks); the write is refused (STORE_UNAVAILABLE) once a newer turn has taken it."""
        model, history = await self._append(thread, message, fence, read_back=True, images=images or {})
        return Conversation([StoredMessage.from_json(raw) for raw in history], str(model))

    async def add_reply(self, thread: str, message: StoredMessage, fence: str = "") -> None:
        await self._append(thread, message, fence, read_back=False, images={})

    async def retry_turn(self, thread: str, fence: str = "") -> Conversation:
        """The conversation without its last answer, to answer its last question again (refused
        with NOTHING_TO_REDO when it doesn't end with a question)."""
        keys = [self.key(thread), fence_key(self.lock_key(thread)), self.key(thread, "model")]
        model, history = await self._run(self._retry_script(keys=keys, args=[fence]))
        conversation = Conversation([StoredMessage.from_json(raw) for raw in history], str(model))
        if not conversation.messages or conversation.messages[-1].role != "user":
            raise ReplyFailure(FailureKind.NOTHING_TO_REDO, "no question to answer again")
        return conversation

    async def images(self, thread: str, ids: Sequence[str]) -> dict[str, str]:
        """The conversation's images still kept, of `ids`: {id: data URL}."""
        if not ids:
            return {}
        urls = await self._run(self.client.hmget(self.key(thread, "images"), list(ids)))
        return {image: str(url) for image, url in zip(ids, urls, strict=True) if url}

    async def choose_model(self, thread: str, model: str) -> None:
        """The model that answers `thread` from now on (kept as long as its history)."""
        await self._run(self.client.set(self.key(thread, "model"), model, ex=self.settings.ttl_seconds))

    async def chosen_model(self, thread: str) -> str:
        return str(await self._run(self.client.get(self.key(thread, "model"))) or "")

    async def read(self, thread: str) -> list[StoredMessage]:
        """The thread's history, oldest first (empty when it has none)."""
        return [StoredMessage.from_json(raw) for raw in await self._run(self.client.lrange(self.key(thread), 0, -1))]

    async def clear(self, thread: str, *, with_model: bool = False) -> None:
        """Forget `thread`'s messages and images (`with_model`: its model choice too)."""
        kinds = ("history", "images", "image-order", *(("model",) if with_model else ()))
        await self._run(self.client.delete(*(self.key(thread, kind) for kind in kinds)))

    async def _append(
        self, thread: str, message: StoredMessage, fence: str, *, read_back: bool, images: Mapping[str, str]
    ) -> Any:
        """One round trip: append, trim, refresh the expiry (and read the history back)."""
        keys = [self.key(thread), fence_key(self.lock_key(thread))]
        keys += [self.key(thread, kind) for kind in ("images", "image-order", "model")]
        settings, read = self.settings, "1" if read_back else "0"
        args: list[int | str] = [message.to_json(), settings.max_messages, settings.ttl_seconds, fence, read]
        args += [settings.image_bytes, *(part for pair in images.items() for part in pair)]
        return await self._run(self._append_script(keys=keys, args=args))

    async def _run(self, command: Awaitable[T]) -> T:
        return await served(command, "history_store_error", self._on_error)
