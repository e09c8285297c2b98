"""Web sources kept current however many processes run (adapters.shared.web_knowledge.syncing and registry), on the
real Redis, each "process" a WebSync of its own and each kind's reader a scripted one that records what it was asked:
a source is read by one process at a time, a sync stopped by a restart goes on with its round, one stopped early
by a rate limit is due again soon, a source removed while another process reads it is stopped and its passages
leave, and /knowledge sync in one process wakes them all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import cast

import pytest

from adapters.shared.web_knowledge.registry import WebSources
from adapters.shared.web_knowledge.sources import ReadMemory, SyncReport, WebSource
from adapters.shared.web_knowledge.syncing import RETRY_SECONDS, WebSync
from bot.knowledge.opener import KnowledgeOpener
from bot.knowledge.service import Knowledge
from bot.state.redis_client import RedisClient, RedisClients
from fakes.harness.processes import REDIS_URL

SCOPE = "discord:1"
SITE = WebSource(SCOPE, "https://docs.example.com/", "site", added_by="7")
SYNC_HOURS = 24.0


@dataclass
class Passages:
    """The knowledge's sources, as far as syncing sees them: listed, and forgotten one by one."""

    sources: set[str] = field(default_factory=set)
    forgotten: list[str] = field(default_factory=list)

    async def sources_of(self, scope: str) -> list[SimpleNamespace]:
        return [SimpleNamespace(source=source) for source in sorted(self.sources)]

    async def forget_source(self, scope: str, source: str) -> int:
        self.forgotten.append(source)
        self.sources.discard(source)
        return 1


@dataclass
class Reading:
    """A scripted reader: each sync adds a page and then waits on `gate` (set: it ends at once)."""

    passages: Passages
    rounds: list[float] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    report: Callable[[], SyncReport] = lambda: SyncReport(read=1)

    async def __call__(self, source: WebSource, memory: ReadMemory, knowledge: Knowledge, round_: float) -> SyncReport:
        self.rounds.append(round_)
        self.passages.sources.add(source.item_source("https://docs.example.com/a"))
        await memory.put("https://docs.example.com/a", {"checked": time.time()})
        await self.gate.wait()
        return self.report()


@dataclass
class World:
    redis: RedisClient
    key_prefix: str
    passages: Passages
    opener: KnowledgeOpener

    def process(self, reading: Reading) -> tuple[WebSync, WebSources]:
        sources = WebSources(self.redis, self.key_prefix)

        def memory(source: WebSource) -> ReadMemory:
            return ReadMemory(self.redis, self.key_prefix, source)

        sync = WebSync(sources, self.opener, {"site": reading}, memory, SYNC_HOURS, renew_seconds=0.1)
        return sync, sources


@pytest.fixture
async def world(key_prefix: str) -> AsyncIterator[World]:
    clients = RedisClients.connect(REDIS_URL, cluster=False)
    passages = Passages()
    embedder = SimpleNamespace(name="none")
    knowledge = SimpleNamespace(sources=passages.sources_of, forget_source=passages.forget_source, embedder=embedder)

    async def open_knowledge() -> Knowledge:
        return cast(Knowledge, knowledge)

    yield World(clients.main, key_prefix, passages, KnowledgeOpener(open_knowledge, lambda _: None))
    await clients.aclose()


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.02)


def running(sync: WebSync) -> asyncio.Task[None]:
    return asyncio.create_task(sync.run())


async def stopped(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_source_added_is_read_once_however_many_processes_look(world: World) -> None:
    readings = [Reading(world.passages), Reading(world.passages)]
    processes = [world.process(reading) for reading in readings]
    tasks = [running(sync) for sync, _ in processes]
    try:
        assert await processes[0][1].add(SITE)
        assert not await processes[1][1].add(SITE), "the same address twice is one source"
        await until(lambda: asyncio.sleep(0, sum(len(r.rounds) for r in readings) == 1))
        await asyncio.sleep(0.3)  # both processes have looked again meanwhile (wakes)
        assert sum(len(reading.rounds) for reading in readings) == 1
        for reading in readings:
            reading.gate.set()
        await until(lambda: _finished(processes[0][1]))
        status = await processes[0][1].status(SITE)
        assert status.report is not None and status.report.read == 1 and not status.running
        assert status.due == pytest.approx(time.time() + SYNC_HOURS * 3600, abs=5)
    finally:
        await stopped(*tasks)


async def test_a_sync_stopped_by_a_restart_goes_on_with_its_round_in_the_next_process(world: World) -> None:
    first, second = Reading(world.passages), Reading(world.passages)
    sync, sources = world.process(first)
    task = running(sync)
    await sources.add(SITE)
    await until(lambda: asyncio.sleep(0, bool(first.rounds)))
    await stopped(task)  # the process stops mid-sync; its lease goes with it
    assert (await sources.status(SITE)).unfinished

    second.gate.set()
    again, _ = world.process(second)
    task = running(again)
    try:
        await until(lambda: asyncio.sleep(0, bool(second.rounds)))
        assert second.rounds == first.rounds, "the same round: pages read in it aren't read again"
        await until(lambda: _finished(sources))
    finally:
        await stopped(task)


async def _finished(sources: WebSources) -> bool:
    status = await sources.status(SITE)
    return status.finished > 0 and not status.unfinished and not status.running


async def _stopped_and_forgotten(sources: WebSources, passages: Passages) -> bool:
    """The sync let go of its lease, and what it had added left with the source."""
    return not (await sources.status(SITE)).running and not passages.sources


async def _released(sources: WebSources) -> bool:
    status = await sources.status(SITE)
    return status.round > 0 and not status.running


async def test_a_sync_stopped_early_by_a_rate_limit_is_due_again_soon_with_its_round(world: World) -> None:
    reading = Reading(world.passages, report=lambda: SyncReport(read=3, complete=False))
    reading.gate.set()
    sync, sources = world.process(reading)
    task = running(sync)
    try:
        await sources.add(SITE)
        await until(lambda: _released(sources))
        status = await sources.status(SITE)
        assert status.unfinished and status.report is not None and not status.report.complete
        assert status.due == pytest.approx(time.time() + RETRY_SECONDS, abs=5)
    finally:
        await stopped(task)


async def test_a_sync_stopped_by_a_rate_limit_asks_nothing_before_the_limit_resets(world: World) -> None:
    reset_at = time.time() + 3 * 3600
    reading = Reading(world.passages, report=lambda: SyncReport(read=3, complete=False, retry_at=reset_at))
    reading.gate.set()
    sync, sources = world.process(reading)
    task = running(sync)
    try:
        await sources.add(SITE)
        await until(lambda: _released(sources))
        assert (await sources.status(SITE)).due == pytest.approx(reset_at)
    finally:
        await stopped(task)


async def test_a_source_removed_by_another_process_stops_its_sync_and_leaves_no_passage(world: World) -> None:
    reading = Reading(world.passages)  # never ends by itself
    sync, sources = world.process(reading)
    task = running(sync)
    try:
        await sources.add(SITE)
        await until(lambda: asyncio.sleep(0, bool(world.passages.sources)))
        other = WebSources(world.redis, world.key_prefix)  # another process's /knowledge remove
        assert await other.remove(SITE)
        await until(lambda: _stopped_and_forgotten(other, world.passages))
        assert await other.of_scope(SCOPE) == []
    finally:
        await stopped(task)


async def test_knowledge_sync_in_one_process_wakes_the_others(world: World) -> None:
    reading = Reading(world.passages)
    reading.gate.set()
    sync, sources = world.process(reading)
    await sources.add(SITE)
    task = running(sync)
    try:
        await until(lambda: asyncio.sleep(0, len(reading.rounds) == 1))
        await until(lambda: _finished(sources))
        assert (await sources.status(SITE)).due > time.time() + 3600
        await WebSources(world.redis, world.key_prefix).sync_now(SCOPE)  # another process's /knowledge sync
        await until(lambda: asyncio.sleep(0, len(reading.rounds) == 2), 5)
    finally:
        await stopped(task)
