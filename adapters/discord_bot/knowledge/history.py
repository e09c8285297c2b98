"""A channel's recent history made knowledge when it is opted in: its last HISTORY_MESSAGES messages, newest first,
a page at a time through discord.py (which keeps Discord's rate limits and waits out a 429's retry_after), where it
stands saved after every page. Each channel is read by one process at a time, under a Redis lock renewed at every
page; every process looks for unfinished readings every RESCAN_SECONDS, so one left by a process that stopped or
died (a restart, a deploy) is taken over and resumed from its last saved page."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import discord
import structlog
from redis.exceptions import LockError, RedisError

from adapters.discord_bot.knowledge.access import PLATFORM, DiscordKnowledge, guild_of_scope
from adapters.discord_bot.knowledge.feed import is_said, message_passage
from adapters.shared.knowledge_sources.channels import Backfill
from bot.errors import ReplyFailure
from bot.knowledge.service import Knowledge
from bot.state.redis_client import RedisClient

log = structlog.get_logger(__name__)

HISTORY_MESSAGES = 1_000
PAGE = 100  # Discord's most per request
RESCAN_SECONDS = 30.0
LOCK_SECONDS = 60  # longer than a page takes, 429s waited out included; a dead reader's lock is free after it


class HistoryReader:
    def __init__(self, client: discord.Client, knowledge: DiscordKnowledge, redis: RedisClient, prefix: str) -> None:
        self._client = client
        self._knowledge = knowledge
        self._redis = redis
        self._locks = f"{prefix}knowledge:discord:history:lock:"
        self._wake = asyncio.Event()
        self._looking: asyncio.Task[None] | None = None
        self._reading: dict[str, asyncio.Task[None]] = {}  # channel id → its reading

    def start(self) -> None:
        """Read the unfinished histories now, and keep looking for others (a channel opted in, a restart)."""
        if self._looking is None or self._looking.done():
            self._looking = asyncio.create_task(self._look(), name="knowledge-history")
        self._wake.set()

    async def aclose(self) -> None:
        tasks = [task for task in (self._looking, *self._reading.values()) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _look(self) -> None:
        while True:
            self._wake.clear()
            try:
                unfinished = await self._knowledge.channels.backfills(PLATFORM)
            except ReplyFailure as failure:  # Redis out of reach: look again later
                log.warning("knowledge_history_unknown", detail=failure.detail)
                unfinished = []
            except Exception:
                log.exception("knowledge_history_look_failed")
                unfinished = []
            for backfill in unfinished:
                if backfill.channel not in self._reading:
                    self._begin(backfill)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RESCAN_SECONDS)

    def _begin(self, backfill: Backfill) -> None:
        channel = backfill.channel
        task = asyncio.create_task(self._read_locked(backfill), name=f"knowledge-history-{channel}")
        self._reading[channel] = task
        task.add_done_callback(lambda _: self._reading.pop(channel, None))

    async def _read_locked(self, backfill: Backfill) -> None:
        lock = self._redis.lock(f"{self._locks}{backfill.channel}", timeout=LOCK_SECONDS, thread_local=False)
        try:
            if not await lock.acquire(blocking=False):
                return  # another process reads it
        except RedisError as error:
            log.warning("knowledge_history_unknown", error=str(error))
            return
        try:
            await self._read(backfill.scope, backfill.channel, lock.reacquire)
        except discord.Forbidden:
            log.warning("knowledge_history_forbidden", channel=backfill.channel, need="Read Message History")
            await self._knowledge.channels.finish_backfill(backfill.scope, backfill.channel)
        except (discord.HTTPException, ReplyFailure, RedisError) as error:  # taken up again at the next look
            log.warning("knowledge_history_stopped", channel=backfill.channel, error=str(error))
        except Exception:  # a bug of ours: logged, the next look tries again
            log.exception("knowledge_history_failed", channel=backfill.channel)
        finally:
            with contextlib.suppress(LockError, RedisError):
                await asyncio.shield(lock.release())

    async def _read(self, scope: str, channel_id: str, renew: Callable[[], Awaitable[bool]]) -> None:
        knowledge = await self._knowledge.get()
        while knowledge is not None and (backfill := await self._where(scope, channel_id)) is not None:
            if backfill.read >= HISTORY_MESSAGES or not await self._read_page(knowledge, backfill):
                await self._knowledge.channels.finish_backfill(scope, channel_id)
                log.info("knowledge_history_read", channel=channel_id)
                return
            await renew()

    async def _where(self, scope: str, channel_id: str) -> Backfill | None:
        """Where the channel's reading stands now (another process may have moved it on); None once finished."""
        backfills = await self._knowledge.channels.backfills(PLATFORM)
        return next((b for b in backfills if b.scope == scope and b.channel == channel_id), None)

    async def _read_page(self, knowledge: Knowledge, backfill: Backfill) -> bool:
        """Add the next page and save where the reading stands; False when there is nothing more to read."""
        guild_id, channel_id = guild_of_scope(backfill.scope), int(backfill.channel)
        channel = self._client.get_partial_messageable(channel_id, guild_id=guild_id)
        before = discord.Object(int(backfill.cursor)) if backfill.cursor else None
        limit = min(PAGE, HISTORY_MESSAGES - backfill.read)
        page = [message async for message in channel.history(limit=limit, before=before)]
        if not page or not await self._add(knowledge, backfill, page):
            return False
        moved = Backfill(backfill.scope, backfill.channel, str(page[-1].id), backfill.read + len(page))
        await self._knowledge.channels.save_backfill(moved)
        log.info("knowledge_history_page", channel=moved.channel, read=moved.read, of=HISTORY_MESSAGES)
        return len(page) == limit

    async def _add(self, knowledge: Knowledge, backfill: Backfill, page: list[discord.Message]) -> bool:
        """Add a page's messages; False when the channel was opted out meanwhile (what was added goes again)."""
        title = await self._title(backfill)
        if title is None:
            return False
        guild_id, channel_id = guild_of_scope(backfill.scope), int(backfill.channel)
        passages = [message_passage(m, guild_id, channel_id, title) for m in page if is_said(m)]
        changed = await self._knowledge.live.marked(str(guild_id), [passage.key for passage in passages])
        await knowledge.add([passage for passage in passages if passage.key not in changed])
        if await self._title(backfill) is None:
            await knowledge.forget_source(backfill.scope, f"channel:{backfill.channel}")
            return False
        return True

    async def _title(self, backfill: Backfill) -> str | None:
        return (await self._knowledge.channels.channels(backfill.scope)).get(backfill.channel)
