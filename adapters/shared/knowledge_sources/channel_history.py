"""A channel's history read into knowledge when it becomes knowledge, one flow for every platform: newest first, a
page at a time, up to the platform's most messages, in the background. Where the reading stands is saved after each
page (channels.Backfill), so a restart resumes it from there. A reading (a channel, or all of a workspace's channels
where the platform's limits are per workspace) is done by one process at a time, under a Redis lock renewed at every
page; every process looks for unfinished readings every few seconds, so one left by a process that stopped is taken
over. A message changed live meanwhile (live.py) is not put back with its older text, and a channel switched off
while its page was read loses what that page added.

The platform gives a `HistorySource`: what one reading covers, and a `PageReader` that reads the next page of a
channel (its messages made passages, how many it read, and where the next page starts), at the platform's pace: most
simply channel_pages.MessagePages, which does the paging, the pace and the rate limits over the platform's calls."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog
from redis.exceptions import LockError, RedisError

from adapters.shared.knowledge_sources.channels import Backfill, KnowledgeChannels
from adapters.shared.knowledge_sources.live import LiveChanges
from bot.errors import ReplyFailure
from bot.knowledge.opener import KnowledgeOpener
from bot.knowledge.passages import Passage
from bot.knowledge.service import Knowledge
from bot.state.redis_client import RedisClient

log = structlog.get_logger(__name__)

Renew = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class Page:
    """A page of a channel's history, as the platform read it."""

    passages: list[Passage]  # its people's messages (and their threads' replies, where the platform reads them)
    read: int  # how many messages it read, every kind counted
    cursor: str  # where the next page starts; "": the history ends here


@dataclass(frozen=True)
class HistoryLimits:
    messages: int  # a channel's most recent messages read when it becomes knowledge
    rescan_seconds: float  # how soon a process takes over a reading another left (or finds a new opt-in elsewhere)
    lock_seconds: float  # longer than a page takes, waits included: a stopped reader's lock is free after it
    log_name: str  # what the log lines start with


class PageReader(Protocol):
    async def page(self, backfill: Backfill, title: str, room: int) -> Page | None:
        """The page after `backfill.cursor` of the channel titled `title`, at most `room` messages more; None: nothing
        more can be read (the bot may not read the channel, say), and its reading is finished."""


class HistorySource(Protocol):
    """What a platform gives for its channels' histories."""

    @property
    def platform(self) -> str: ...

    @property
    def limits(self) -> HistoryLimits: ...

    @property
    def stops(self) -> tuple[type[Exception], ...]:
        """The platform's errors that stop a reading until the next look (the platform out of reach, say)."""

    def reading_of(self, backfill: Backfill) -> str:
        """What one reading covers, under one lock: the channel, or its workspace."""

    async def reader(self, reading: str, renew: Renew) -> PageReader | None:
        """How the reading's pages are read (None: they can't be now); `renew` keeps its lock."""


class ChannelHistory:
    def __init__(
        self,
        source: HistorySource,
        channels: KnowledgeChannels,
        live: LiveChanges,
        opener: KnowledgeOpener | None,
        redis: RedisClient,
        key_prefix: str,
    ) -> None:
        self._source, self._limits = source, source.limits
        self._channels, self._live, self._opener = channels, live, opener
        self._redis = redis
        self._locks = f"{key_prefix}knowledge:{source.platform}:history:lock:"
        self._wake = asyncio.Event()
        self._looking: asyncio.Task[None] | None = None
        self._reading: dict[str, asyncio.Task[None]] = {}  # what a reading covers → its task

    def start(self) -> None:
        """Read the unfinished histories now, and keep looking for others (a channel opted in, a restart)."""
        if self._looking is None or self._looking.done():
            self._looking = asyncio.create_task(self.run(), name=f"{self._source.platform}-knowledge-history")
        self.wake()

    def wake(self) -> None:
        """A channel became knowledge: start reading it now rather than at the next look."""
        self._wake.set()

    async def run(self) -> None:
        """Forever: each unfinished reading is read by one task (and one process)."""
        if self._opener is None:
            return
        while True:
            self._wake.clear()
            for backfill in await self._unfinished():
                reading = self._source.reading_of(backfill)
                if reading not in self._reading:
                    self._begin(reading)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._limits.rescan_seconds)

    async def aclose(self) -> None:
        tasks = [task for task in (self._looking, *self._reading.values()) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _unfinished(self) -> list[Backfill]:
        try:
            return await self._channels.backfills(self._source.platform)
        except (ReplyFailure, RedisError) as error:  # Redis out of reach: look again later
            log.warning(f"{self._limits.log_name}_unknown", error=str(error))
        except Exception:
            log.exception(f"{self._limits.log_name}_look_failed")
        return []

    def _begin(self, reading: str) -> None:
        task = asyncio.create_task(self._read_locked(reading), name=f"knowledge-history-{reading}")
        self._reading[reading] = task
        task.add_done_callback(lambda _: self._reading.pop(reading, None))

    async def _read_locked(self, reading: str) -> None:
        lock = self._redis.lock(f"{self._locks}{reading}", timeout=self._limits.lock_seconds, thread_local=False)
        try:
            if not await lock.acquire(blocking=False):
                return  # another process reads it
        except RedisError as error:
            log.warning(f"{self._limits.log_name}_unknown", error=str(error))
            return
        stops: tuple[type[Exception], ...] = (ReplyFailure, RedisError, *self._source.stops)
        try:
            await self._read(reading, lock.reacquire)
        except stops as error:  # taken up again at the next look
            log.warning(f"{self._limits.log_name}_stopped", reading=reading, error=f"{type(error).__name__}: {error}")
        except Exception:  # a bug of ours: logged, the next look tries again from the saved page
            log.exception(f"{self._limits.log_name}_failed", reading=reading)
        finally:
            with contextlib.suppress(LockError, RedisError):
                await asyncio.shield(lock.release())

    async def _read(self, reading: str, renew: Renew) -> None:
        """Each channel of the reading a page in turn (a long channel doesn't hold up the others), until all are read;
        where each stands is read again before every round, as another process may have moved it on."""
        knowledge = await self._knowledge()
        reader = await self._source.reader(reading, renew) if knowledge is not None else None
        if knowledge is None or reader is None:
            return
        while backfills := [b for b in await self._unfinished() if self._source.reading_of(b) == reading]:
            for backfill in backfills:
                await self._read_page(knowledge, reader, backfill)
                await renew()

    async def _knowledge(self) -> Knowledge | None:
        assert self._opener is not None
        return await self._opener.get_or_none()

    async def _read_page(self, knowledge: Knowledge, reader: PageReader, backfill: Backfill) -> None:
        """Add the channel's next page, and save where its reading stands (or finish it)."""
        scope, channel = backfill.scope, backfill.channel
        title = (await self._channels.channels(scope)).get(channel)
        if title is None:  # switched off since
            await self._channels.finish_backfill(scope, channel)
            return
        room = self._limits.messages - backfill.read
        page = await reader.page(backfill, title, room) if room > 0 else None
        if page is None:
            await self._finish(backfill, backfill.read)
            return
        space = scope.removeprefix(f"{self._source.platform}:")
        changed = await self._live.marked(space, [passage.key for passage in page.passages])
        await knowledge.add([passage for passage in page.passages if passage.key not in changed])
        if not await self._channels.is_knowledge(scope, channel):  # turned off while this page was read
            await knowledge.forget_source(scope, f"channel:{channel}")
            await self._channels.finish_backfill(scope, channel)
            return
        read = backfill.read + page.read
        if not page.cursor or read >= self._limits.messages:
            await self._finish(backfill, read)
            return
        await self._channels.save_backfill(Backfill(scope, channel, page.cursor, read))
        log.info(f"{self._limits.log_name}_page", team=space, channel=channel, messages=read, of=self._limits.messages)

    async def _finish(self, backfill: Backfill, read: int) -> None:
        await self._channels.finish_backfill(backfill.scope, backfill.channel)
        space = backfill.scope.removeprefix(f"{self._source.platform}:")
        log.info(f"{self._limits.log_name}_read", team=space, channel=backfill.channel, messages=read)
