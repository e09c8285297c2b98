"""A channel's recent history made knowledge when it is opted in: its last HISTORY_MESSAGES messages, newest first,
a page at a time through discord.py (which keeps Discord's rate limits and waits out a 429's retry_after), where it
stands saved after every page so that a restart resumes it."""

from __future__ import annotations

import asyncio

import discord
import structlog

from adapters.discord_bot.knowledge_access import PLATFORM, DiscordKnowledge, guild_of_scope
from adapters.discord_bot.knowledge_feed import is_said, message_passage
from adapters.jobs.knowledge_channels import Backfill
from bot.coordination import Coordination
from bot.errors import ReplyFailure
from bot.knowledge.service import Knowledge

log = structlog.get_logger(__name__)

HISTORY_MESSAGES = 1_000
PAGE = 100  # Discord's most per request
# One process resumes a reading after a restart; another may take it over when this has passed without it finishing.
RESUME_CLAIM_SECONDS = 600


class HistoryReader:
    def __init__(self, client: discord.Client, knowledge: DiscordKnowledge, coordination: Coordination) -> None:
        self._client = client
        self._knowledge = knowledge
        self._coordination = coordination
        self._reading: dict[tuple[str, str], asyncio.Task[None]] = {}

    def start(self, backfill: Backfill) -> None:
        """Read the channel's history in the background (from where `backfill` stands)."""
        where = (backfill.scope, backfill.channel)
        if where in self._reading:
            return
        task = asyncio.create_task(self._read_logged(backfill), name=f"knowledge-history-{backfill.channel}")
        self._reading[where] = task
        task.add_done_callback(lambda _: self._reading.pop(where, None))

    async def resume(self) -> int:
        """Resume the readings of Discord channels left unfinished (by this process or another); how many."""
        try:
            unfinished = await self._knowledge.channels.backfills(PLATFORM)
            resumed = 0
            for backfill in unfinished:
                claim = f"discord:knowledge:resume:{backfill.channel}:{backfill.read}"
                if await self._coordination.claim(claim, RESUME_CLAIM_SECONDS):
                    self.start(backfill)
                    resumed += 1
        except ReplyFailure as failure:
            log.warning("knowledge_history_not_resumed", detail=failure.detail)
            return 0
        if resumed:
            log.info("knowledge_history_resumed", channels=resumed)
        return resumed

    async def aclose(self) -> None:
        for task in list(self._reading.values()):
            task.cancel()
        await asyncio.gather(*self._reading.values(), return_exceptions=True)

    async def _read_logged(self, backfill: Backfill) -> None:
        try:
            await self._read(backfill)
        except discord.Forbidden:
            log.warning("knowledge_history_forbidden", channel=backfill.channel, need="Read Message History")
            await self._finish(backfill)
        except (discord.HTTPException, ReplyFailure) as error:  # resumed at the next start
            log.warning("knowledge_history_stopped", channel=backfill.channel, error=str(error))
        except Exception:
            log.exception("knowledge_history_failed", channel=backfill.channel)

    async def _read(self, backfill: Backfill) -> None:
        knowledge = await self._knowledge.get()
        if knowledge is None:
            return
        guild_id, channel_id = guild_of_scope(backfill.scope), int(backfill.channel)
        channel = self._client.get_partial_messageable(channel_id, guild_id=guild_id)
        while backfill.read < HISTORY_MESSAGES:
            before = discord.Object(int(backfill.cursor)) if backfill.cursor else None
            page = [m async for m in channel.history(limit=min(PAGE, HISTORY_MESSAGES - backfill.read), before=before)]
            if not page or not await self._add(knowledge, backfill, page):
                break
            backfill = Backfill(backfill.scope, backfill.channel, str(page[-1].id), backfill.read + len(page))
            await self._knowledge.channels.save_backfill(backfill)
            log.info("knowledge_history_page", channel=backfill.channel, read=backfill.read, of=HISTORY_MESSAGES)
        await self._finish(backfill)

    async def _add(self, knowledge: Knowledge, backfill: Backfill, page: list[discord.Message]) -> bool:
        """Add a page's messages; False when the channel was opted out meanwhile (what was added goes again)."""
        title = await self._title(backfill)
        if title is None:
            return False
        guild_id, channel_id = guild_of_scope(backfill.scope), int(backfill.channel)
        await knowledge.add([message_passage(m, guild_id, channel_id, title) for m in page if is_said(m)])
        if await self._title(backfill) is None:
            await knowledge.forget_source(backfill.scope, f"channel:{backfill.channel}")
            return False
        return True

    async def _title(self, backfill: Backfill) -> str | None:
        return (await self._knowledge.channels.channels(backfill.scope)).get(backfill.channel)

    async def _finish(self, backfill: Backfill) -> None:
        await self._knowledge.channels.finish_backfill(backfill.scope, backfill.channel)
        log.info("knowledge_history_read", channel=backfill.channel, read=backfill.read)
