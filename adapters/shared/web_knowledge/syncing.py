"""Web sources kept current: every process looks for the sources due (added just now, asked for by /knowledge sync,
or KNOWLEDGE_SYNC_HOURS after their last sync), takes one's lease so that one process syncs it, and reads it with
its kind's reader. Each sync is a task of its own (a few at once), so a site that hangs stalls only itself. A sync
stopped by a restart, or early by a rate limit, goes on from where it was; a source removed while it is read is
stopped by the process reading it, and its passages leave."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from functools import partial

import structlog

from adapters.shared.web_knowledge.registry import SyncStatus, WebSources
from adapters.shared.web_knowledge.sources import ReadMemory, SyncReport, WebSource, forget_passages
from bot.errors import ReplyFailure
from bot.knowledge.opener import KnowledgeOpener, KnowledgeUnavailable
from bot.knowledge.service import Knowledge

log = structlog.get_logger(__name__)

# A kind's reader: one sync of `source`, remembering what it read in `memory`, in the round that started then.
Reader = Callable[[WebSource, ReadMemory, Knowledge, float], Awaitable[SyncReport]]
SCAN_SECONDS = 60.0  # how often the sources are looked over for one due
WAKES_SECONDS = 2.0  # how often an admin's add or sync in any process is looked for
AT_ONCE = 4  # syncs a process runs at once
RETRY_SECONDS = 15 * 60.0  # a sync stopped early (a rate limit) goes on this much later
STORE_RETRY_SECONDS = 5.0
# How often a running sync renews its lease and looks whether its source was removed (and then stops).
RENEW_SECONDS = 2.0


class WebSync:
    def __init__(
        self,
        sources: WebSources,
        opener: KnowledgeOpener,
        readers: Mapping[str, Reader],
        memory: Callable[[WebSource], ReadMemory],
        sync_hours: float,
        renew_seconds: float = RENEW_SECONDS,
    ) -> None:
        self._sources, self._opener, self._readers, self._memory = sources, opener, readers, memory
        self._sync_seconds, self._renew_seconds = sync_hours * 3600, renew_seconds
        self._owner = uuid.uuid4().hex
        self._running: dict[str, asyncio.Task[None]] = {}
        self._removed_elsewhere: set[str] = set()  # syncs stopped because another process removed their source
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due sources now (an admin added one or asked for a sync in this process)."""
        self._wake.set()

    async def run(self) -> None:
        """Sync what is due, as it becomes due, until cancelled (the running syncs with it)."""
        waking = asyncio.create_task(self._follow_wakes())
        try:
            while True:
                try:
                    await self._start_due()
                except ReplyFailure:  # Redis is out of reach: logged by the store; tried again shortly
                    await asyncio.sleep(STORE_RETRY_SECONDS)
                stop_if_cancelled()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SCAN_SECONDS):
                        await self._wake.wait()
                self._wake.clear()
        finally:
            waking.cancel()
            for task in self._running.values():
                task.cancel()
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _follow_wakes(self) -> None:
        seen = -1
        while True:
            with contextlib.suppress(ReplyFailure):
                wakes = await self._sources.wakes()
                if wakes != seen:
                    seen = wakes
                    self.wake()
            stop_if_cancelled()
            await asyncio.sleep(WAKES_SECONDS)

    async def syncing(self) -> None:
        """Until the syncs this process runs now have ended (tests and benchmarks)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def remove(self, source: WebSource, knowledge: Knowledge) -> int:
        """`source` and its passages gone; a sync of it in this process stops. How many passages left."""
        await self._sources.remove(source)
        if (task := self._running.get(source.id)) is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return await forget_passages(knowledge, source)

    async def _start_due(self) -> None:
        now = time.time()
        for source in await self._sources.everywhere():
            if source.id in self._running or len(self._running) >= AT_ONCE:
                continue
            status = await self._sources.status(source)
            if status.due > now or not await self._sources.take(source, self._owner):
                continue
            task = asyncio.create_task(self._sync(source, status), name=f"web-sync-{source.id}")
            self._running[source.id] = task
            task.add_done_callback(partial(self._ended_task, source.id))

    def _ended_task(self, source_id: str, _: asyncio.Task[None]) -> None:
        self._running.pop(source_id, None)

    async def _sync(self, source: WebSource, status: SyncStatus) -> None:
        round_started = status.round if status.unfinished else time.time()
        reading = asyncio.current_task()
        assert reading is not None
        keeper = asyncio.create_task(self._keep_lease(source, reading))
        try:
            await self._sources.started(source, round_started)
            knowledge = await self._opener.get()
            log.info("knowledge_web_sync_started", scope=source.scope, url=source.url, resumed=status.unfinished)
            report = await self._read(source, knowledge, round_started)
            await self._ended(source, knowledge, report)
        except (KnowledgeUnavailable, ReplyFailure) as error:
            log.error("knowledge_web_sync_failed", scope=source.scope, url=source.url, error=str(error))
        except asyncio.CancelledError:
            if source.id not in self._removed_elsewhere:
                raise
            self._removed_elsewhere.discard(source.id)
            reading.uncancel()
            await self._forget_removed(source)
        finally:
            keeper.cancel()
            with contextlib.suppress(ReplyFailure):
                await self._sources.release(source, self._owner)

    async def _read(self, source: WebSource, knowledge: Knowledge, round_started: float) -> SyncReport:
        try:
            return await self._readers[source.kind](source, self._memory(source), knowledge, round_started)
        except (KnowledgeUnavailable, ReplyFailure):
            raise
        except Exception as error:
            log.exception("knowledge_web_sync_error", scope=source.scope, url=source.url)
            report = SyncReport(complete=True)
            report.failure(source.url, f"{type(error).__name__}: {error}")
            return report

    async def _ended(self, source: WebSource, knowledge: Knowledge, report: SyncReport) -> None:
        if not await self._sources.exists(source):  # removed while it was read: what it added since goes too
            await forget_passages(knowledge, source)
            return
        if report.complete:
            await self._sources.finished(source, report, time.time() + self._sync_seconds)
        else:
            # Not a request before a rate limit's reset: asking on while limited is what gets an app banned.
            await self._sources.postponed(source, max(report.retry_at, time.time() + RETRY_SECONDS), report)
        log.info(
            "knowledge_web_synced",
            scope=source.scope,
            url=source.url,
            read=report.read,
            unchanged=report.unchanged,
            failed=report.failed,
            skipped=report.skipped,
            removed=report.removed,
            complete=report.complete,
        )

    async def _forget_removed(self, source: WebSource) -> None:
        try:
            await forget_passages(await self._opener.get(), source)
        except (KnowledgeUnavailable, ReplyFailure) as error:
            log.error("knowledge_web_removed_passages_left", scope=source.scope, url=source.url, error=str(error))

    async def _keep_lease(self, source: WebSource, reading: asyncio.Task[None]) -> None:
        """Renew the lease while `reading` runs; stop it if the source was removed or the lease lost."""
        while True:
            await asyncio.sleep(self._renew_seconds)
            try:
                removed = not await self._sources.exists(source)
                if removed or not await self._sources.renew(source, self._owner):
                    log.info("knowledge_web_sync_stopped", scope=source.scope, url=source.url, removed=removed)
                    if removed:
                        self._removed_elsewhere.add(source.id)
                    reading.cancel()
                    return
            except ReplyFailure:
                continue  # logged by the store: the lease may lapse, and another process go on with the round


def stop_if_cancelled() -> None:
    """Raise the cancellation a store's client swallowed: fakeredis (REDIS_URL=memory://) goes on with a task
    cancelled in the middle of a command, and the process then never exits."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
