"""A page of a channel's history, read the same way on every platform (channel_history.py asks for the pages): a batch
of the channel's messages, newest first, then the replies of each thread on it while there is room, every request at
the platform's pace. The pace is kept for every process (and over a restart) in Redis, per reading; a request the
platform refused for its rate (`RateLimited`) is asked again once its Retry-After has passed. A channel that can't be
read (`Unreadable`: the bot not in it any more, say) ends its reading; a thread that can't be is left out.

The platform gives `ChannelPages`: how to read a batch of a channel's messages and of a thread's replies (raising
`RateLimited` or `Unreadable`), which message heads a thread, and the passage a message becomes."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import structlog

from adapters.shared.knowledge_sources.channel_history import Page, Renew
from adapters.shared.knowledge_sources.channels import Backfill
from bot.knowledge.passages import Passage
from bot.state.redis_client import RedisClient

log = structlog.get_logger(__name__)

M = TypeVar("M")
T = TypeVar("T")


class RateLimited(Exception):
    """A request the platform refused for its rate: asked again after `retry_after` seconds (None: after the pace's
    spacing)."""

    def __init__(self, retry_after: float | None) -> None:
        super().__init__(f"rate limited (Retry-After: {retry_after})")
        self.retry_after = retry_after

    @classmethod
    def after(cls, headers: Mapping[str, Any] | None) -> RateLimited:
        """A refusal whose response had `headers`: its Retry-After in seconds, the header named in any case (its value
        maybe a list, as some clients give headers)."""
        value = next((value for name, value in dict(headers or {}).items() if name.lower() == "retry-after"), None)
        if isinstance(value, list):
            value = value[0] if value else None
        try:
            return cls(float(value) if value is not None else None)
        except ValueError:
            return cls(None)


class Unreadable(Exception):
    """A channel or thread the bot can't read (its reason in the message): nothing more is read of it."""


@dataclass(frozen=True)
class Batch(Generic[M]):
    """Messages as the platform gave them for one request."""

    messages: list[M]
    cursor: str  # where the next batch starts; "": this one is the last


class ChannelPages(Protocol[M]):
    """What a platform gives to read its channels' history, `M` being its messages."""

    async def history(self, backfill: Backfill, room: int) -> Batch[M]:
        """The channel's messages after `backfill.cursor`, newest first (`room`: how many more may be read)."""

    async def replies(self, backfill: Backfill, thread: str, cursor: str) -> Batch[M]:
        """The replies of `thread` after `cursor` ("": its first), its head left out."""

    def thread(self, message: M) -> str:
        """The thread whose replies follow `message` on the page ("": none)."""

    def passage(self, backfill: Backfill, title: str, message: M) -> Passage | None:
        """The passage `message` becomes; None: it is never knowledge (a bot's, an empty one)."""


class Pacing:
    """A reading's requests at the platform's pace (`seconds` between two), shared by every process in Redis, and after
    a `RateLimited`, again once its Retry-After has passed."""

    def __init__(self, redis: RedisClient, key_prefix: str, platform: str, seconds: float, log_name: str) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}knowledge:{platform}:history:next:"
        self._seconds, self._log_name = seconds, log_name

    async def call(self, reading: str, renew: Renew, request: Callable[[], Awaitable[T]]) -> T:
        """`request` at `reading`'s pace, again while it is rate limited; `renew` keeps the reading ours meanwhile."""
        while True:
            await self._paced(reading)
            await renew()  # the reading is still this process's: renewed before each request
            try:
                return await request()
            except RateLimited as limited:
                wait = limited.retry_after or self._seconds
                log.warning(f"{self._log_name}_rate_limited", team=reading, retry_after=wait)
                await self._redis.set(self._prefix + reading, "1", px=max(1, int(wait * 1000)))

    async def _paced(self, reading: str) -> None:
        """Wait for the reading's next request slot."""
        gate, spacing = self._prefix + reading, max(1, int(self._seconds * 1000))
        while not await self._redis.set(gate, "1", nx=True, px=spacing):  # noqa: ASYNC110 - the wait is in Redis
            await asyncio.sleep(max(await self._redis.pttl(gate), 10) / 1000)


class MessagePages(Generic[M]):
    """A reading's pages (channel_history.PageReader) from the platform's `ChannelPages`; `pacing` None: the platform's
    client keeps its pace and waits out its rate limits itself."""

    def __init__(
        self,
        pages: ChannelPages[M],
        log_name: str,
        pacing: Pacing | None = None,
        reading: str = "",
        renew: Renew | None = None,
    ) -> None:
        self._pages, self._log_name = pages, log_name
        self._pacing, self._reading, self._renew = pacing, reading, renew

    async def page(self, backfill: Backfill, title: str, room: int) -> Page | None:
        try:
            batch = await self._request(functools.partial(self._pages.history, backfill, room))
        except Unreadable as error:
            log.warning(f"{self._log_name}_stopped", channel=backfill.channel, error=str(error))
            return None
        passages = self._passages(backfill, title, batch.messages)
        read = len(batch.messages)
        for head in batch.messages:
            if (thread := self._pages.thread(head)) and read < room:
                replies = await self._thread(backfill, title, thread, room - read)
                passages += replies
                read += len(replies)  # a thread's replies count as what they became
        return Page(passages, read, batch.cursor)

    async def _thread(self, backfill: Backfill, title: str, thread: str, room: int) -> list[Passage]:
        """A thread's replies (its head is on the page), at most `room`."""
        passages: list[Passage] = []
        cursor = ""
        while len(passages) < room:
            try:
                batch = await self._request(functools.partial(self._pages.replies, backfill, thread, cursor))
            except Unreadable as error:
                log.warning(f"{self._log_name}_thread_skipped", channel=backfill.channel, error=str(error))
                break
            passages += self._passages(backfill, title, batch.messages)
            cursor = batch.cursor
            if not cursor:
                break
        return passages[:room]

    def _passages(self, backfill: Backfill, title: str, messages: list[M]) -> list[Passage]:
        said = (self._pages.passage(backfill, title, message) for message in messages)
        return [passage for passage in said if passage is not None]

    async def _request(self, request: Callable[[], Awaitable[Batch[M]]]) -> Batch[M]:
        if self._pacing is None or self._renew is None:
            return await request()
        return await self._pacing.call(self._reading, self._renew, request)
