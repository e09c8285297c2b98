"""Messages an admin made knowledge with "Add to knowledge" (Discord's message menu, Slack's shortcut), kept in Redis
for every process: a message's deletion or edit then reaches its passages wherever the message was, in a channel that
is knowledge or not. One hash per server or workspace:

  {prefix}knowledge:{platform}:added:{scope}    message id → {"sources": the knowledge sources it became (its text,
                                                 its files), "title", "url", "readers"} as JSON

The entry goes with the message's deletion and with the server (bot.keeping.kinds). Raises STORE_UNAVAILABLE
(a ReplyFailure) without Redis. `AddedFollower` follows such a message wherever it is, one flow for every platform."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import structlog

from bot.knowledge.opener import KnowledgeOpener
from bot.knowledge.passages import Passage
from bot.knowledge.service import Knowledge
from bot.state.redis_client import RedisClient, served

log = structlog.get_logger(__name__)

T = TypeVar("T")
Claim = Callable[[str], Awaitable[bool]]
NewText = Callable[["Added"], list[Passage]]  # what an edited message became → its text's passages; none: no text

# Take a message's entry (KEYS[1] the scope's hash, ARGV[1] the message) → the entry, or false.
_TAKE = """
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if entry then redis.call('HDEL', KEYS[1], ARGV[1]) end
return entry
"""


@dataclass(frozen=True)
class Added:
    """What a message became: its knowledge sources, and how its text's passage is titled, linked and read."""

    sources: tuple[str, ...]
    title: str = ""
    url: str = ""
    readers: str = ""  # the passage's channel: who may read it ("" everyone)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Added:
        data: dict[str, Any] = json.loads(raw)
        sources = tuple(str(source) for source in data.get("sources") or ())
        return cls(sources, str(data.get("title", "")), str(data.get("url", "")), str(data.get("readers", "")))


class AddedMessages:
    def __init__(
        self, redis: RedisClient, key_prefix: str, platform: str, on_error: Callable[[], object] = lambda: None
    ) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}knowledge:{platform}:added:"
        self._on_error = on_error
        self._take = redis.register_script(_TAKE)

    async def note(self, scope: str, message: str, added: Added) -> None:
        """`message` of `scope` was made knowledge as `added` (noted before its passages are stored: a deletion
        arriving meanwhile finds it)."""
        await self._run(self._redis.hset(self._key(scope), message, added.to_json()))

    async def of(self, scope: str, message: str) -> Added | None:
        """What `message` became, None if it wasn't added."""
        raw = await self._run(self._redis.hget(self._key(scope), message))
        return None if raw is None else Added.from_json(raw)

    async def take(self, scope: str, messages: Sequence[str]) -> list[Added]:
        """The entries of those of `messages` that were added, forgotten here (a deletion's; one process gets each)."""
        taken = [await self._run(self._take(keys=[self._key(scope)], args=[message])) for message in messages]
        return [Added.from_json(raw) for raw in taken if raw]

    async def take_linked(self, scope: str, url_prefix: str) -> list[Added]:
        """The entries of the messages whose link starts with `url_prefix` (a deleted channel's or thread's),
        forgotten here."""
        found = await self._run(self._redis.hgetall(self._key(scope)))
        linked = [_text(message) for message, raw in found.items() if Added.from_json(raw).url.startswith(url_prefix)]
        return await self.take(scope, linked)

    async def still_known(self, knowledge: Knowledge, scope: str, message: str, source: str) -> Added | None:
        """The entry of `message`, if its `source` is still knowledge; else that source leaves the entry (removed
        by an admin, or by its author's /forget-me: an edit must not bring it back). None if it wasn't added."""
        added = await self.of(scope, message)
        if added is None or source not in added.sources:
            return None
        if any(info.source == source for info in await knowledge.sources(scope)):
            return added
        rest = tuple(kept for kept in added.sources if kept != source)
        await self.note(scope, message, dataclasses.replace(added, sources=rest))
        return None

    async def forget_scope(self, scope: str) -> None:
        await self._run(self._redis.delete(self._key(scope)))

    def _key(self, scope: str) -> str:
        return f"{self._prefix}{scope}"

    async def _run(self, command: Awaitable[T]) -> T:
        return await served(command, "knowledge_added_store_error", self._on_error)


class AddedFollower:
    """Messages added with "Add to knowledge", followed wherever they are (in a channel that is knowledge or not):
    deleted, a message leaves the knowledge with its files; edited, its text is read again by the process that claims
    the edit (edited to nothing, its text leaves and its files stay). A text removed from the knowledge since (by an
    admin, or its author's /forget-me) isn't brought back by an edit. What goes wrong is logged for the operator."""

    def __init__(self, added: AddedMessages, opener: KnowledgeOpener, claim: Claim, log_name: str) -> None:
        self._added, self._opener, self._claim, self._log_name = added, opener, claim, log_name

    async def deleted(self, scope: str, messages: Sequence[str]) -> None:
        """`messages` of `scope` deleted: those that were added leave the knowledge, with their files."""
        try:
            await self._forget(scope, await self._added.take(scope, messages))
        except Exception as error:  # noqa: BLE001 - Redis or the engine: the operator is told
            log.error(f"{self._log_name}_added_deletion_lost", scope=scope, messages=len(messages), error=str(error))

    async def place_deleted(self, scope: str, links: str) -> None:
        """A channel or thread of `scope` deleted, where the platform names none of its messages: those added from it
        (their links start with `links`) leave the knowledge, with their files."""
        try:
            await self._forget(scope, await self._added.take_linked(scope, links))
        except Exception as error:  # noqa: BLE001 - Redis or the engine: the operator is told
            log.error(f"{self._log_name}_added_deletion_lost", scope=scope, links=links, error=str(error))

    async def edited(self, scope: str, message: str, source: str, claim: str, text: NewText) -> None:
        """`message` of `scope` edited, its text the knowledge source `source`, the edit claimed as `claim`."""
        try:
            if await self._edited(scope, message, source, claim, text):
                log.info(f"{self._log_name}_added_message_edited", scope=scope, message=message)
        except Exception as error:  # noqa: BLE001 - Redis or the engine: the operator is told
            log.error(f"{self._log_name}_added_edit_lost", scope=scope, message=message, error=str(error))

    async def _forget(self, scope: str, taken: Sequence[Added]) -> None:
        sources = [source for added in taken for source in added.sources]
        if not sources:
            return
        knowledge = await self._opener.get()
        removed = 0
        for source in sources:
            try:
                removed += await knowledge.forget_source(scope, source)
            except Exception as error:  # noqa: BLE001 - the engine failed: the operator is told what is left
                log.error(f"{self._log_name}_added_message_not_removed", scope=scope, source=source, error=str(error))
        log.info(f"{self._log_name}_added_message_deleted", scope=scope, messages=len(taken), removed=removed)

    async def _edited(self, scope: str, message: str, source: str, claim: str, text: NewText) -> bool:
        if await self._added.of(scope, message) is None:  # most edits: one look in Redis
            return False
        if not await self._claim(claim):
            return False
        knowledge = await self._opener.get()
        noted = await self._added.still_known(knowledge, scope, message, source)
        if noted is None:
            return False  # its text was removed from knowledge since: an edit doesn't bring it back
        if passages := text(noted):
            await knowledge.replace_source(scope, source, passages)
        else:  # edited to nothing: its text leaves, its files stay
            await knowledge.forget_source(scope, source)
        return True


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
