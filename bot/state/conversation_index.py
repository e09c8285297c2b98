"""Which conversations happened in a server (a Discord guild, a Slack workspace), so that when the bot leaves it
their histories can go too; and which conversations each person asked something in, so that /forget-me finds
them. One Redis set per server and one hash per person (conversation → "dm" or ""), each kept as long as its
newest conversation, both written beside the turn's history read, in one round trip."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import structlog

from bot.errors import ReplyFailure
from bot.state.personas import Place
from bot.state.redis_client import RedisClient, hash_tag, served

log = structlog.get_logger(__name__)
T = TypeVar("T")


class ConversationIndex:
    def __init__(
        self, client: RedisClient, key_prefix: str, ttl_seconds: int, on_error: Callable[[], object] = lambda: None
    ) -> None:
        self._redis = client
        self._prefix = key_prefix
        self._ttl = ttl_seconds
        self._on_error = on_error

    async def note(self, thread: str, places: Sequence[Place], *, scope: str = "", person: str = "") -> None:
        """`thread` is a conversation of its places' server, and one `person` of `scope` (a turn's quota_scope)
        asked something in; never raises (a conversation not noted is only left for its expiry to delete). A DM:
        a conversation whose places are at most a server (no channel, no conversation of its own)."""
        servers = [place for place in places if place.kind == "server"]
        if not servers and not person:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for server in servers:
                    pipe.sadd(self._key(server), thread)
                    pipe.expire(self._key(server), self._ttl)
                if person:
                    pipe.hset(self._person_key(scope, person), thread, "dm" if len(servers) == len(places) else "")
                    pipe.expire(self._person_key(scope, person), self._ttl)
                await self._run(pipe.execute())
        except ReplyFailure as failure:
            log.warning("conversation_not_indexed", thread=thread, detail=failure.detail)

    async def person_conversations(self, scope: str, person: str) -> dict[str, str]:
        """The conversations `person` asked something in: {thread: "dm" or ""} (raises STORE_UNAVAILABLE)."""
        found = await self._run(self._redis.hgetall(self._person_key(scope, person)))
        return {str(thread): str(kind) for thread, kind in found.items()}

    async def unnote_person(self, scope: str, person: str, threads: Sequence[str]) -> None:
        """`threads` are no longer `person`'s (their index goes once it lists none)."""
        if threads:
            await self._run(self._redis.hdel(self._person_key(scope, person), *threads))

    async def take(self, server: Place) -> list[str]:
        """The server's conversations, forgotten by the index (raises STORE_UNAVAILABLE)."""
        key = self._key(server)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.smembers(key)
            pipe.delete(key)
            members, _ = await self._run(pipe.execute())
        return sorted(str(member) for member in members)

    def _key(self, server: Place) -> str:
        return f"{self._prefix}server-conversations:{hash_tag(server.key)}"

    def _person_key(self, scope: str, person: str) -> str:
        return f"{self._prefix}person-conversations:{hash_tag(f'{scope}:{person}')}"

    async def _run(self, command: Awaitable[T]) -> T:
        return await served(command, "conversation_index_error", self._on_error)
