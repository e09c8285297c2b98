"""The platforms' rate limits are the whole bot's. Processes writing at once together
stay inside it, finals go before interim edits, and a dead process's slots come back."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from adapters.shared.ratelimit import Bucket, RateLimits, Write
from bot.state.redis_client import CONTROL_ANSWER_SECONDS, close, connect, ping
from config.settings import HistorySettings
from fakes.delay_proxy import DelayProxy, Route
from fakes.harness.processes import REDIS_URL, ROOT
from tests.conftest import OwnRedis

LIMIT, WINDOW = 10, 1.0
REDIS_PORT = urlsplit(REDIS_URL).port or 6379


def connect_control(url: str, *, cluster: bool) -> Any:
    """The rate limits' client, as bot.state.redis_client.RedisClients builds it."""
    return connect(url, cluster=cluster, answer_seconds=CONTROL_ANSWER_SECONDS, retries=0)


_OWNER: dict[int, RateLimits] = {}


class OwnedLimits(RateLimits):
    """A process's rate limits whose buckets remember the process, so that the tests below can
    write on a bucket as a surface does through its process's limits."""

    def bucket(self, scope: str, name: str, limit: int, window: float) -> Bucket:
        made = super().bucket(scope, name, limit, window)
        _OWNER[id(made)] = self
        return made


class budget:
    """Each call goes to the limits of the process whose bucket it names."""

    @staticmethod
    def spend(buckets: tuple[Bucket, ...]) -> Write:
        return _OWNER[id(buckets[0])].write(buckets)

    @staticmethod
    async def try_spare(buckets: tuple[Bucket, ...], promise: str = "") -> Write | None:
        return await _OWNER[id(buckets[0])].spare(buckets, promise)

    @staticmethod
    async def promise(buckets: tuple[Bucket, ...]) -> str | None:
        return await _OWNER[id(buckets[0])].promise(buckets)

    @staticmethod
    async def release(buckets: tuple[Bucket, ...], key: str | None) -> None:
        await _OWNER[id(buckets[0])].release(buckets, key)


def writes_key(bucket: Bucket) -> str:
    return _OWNER[id(bucket)].keys(bucket)[0]


@asynccontextmanager
async def process(settings: HistorySettings) -> AsyncIterator[RateLimits]:
    """What one bot process has: its own Redis client (a single server, or the cluster's)."""
    client = connect_control(settings.redis_url or REDIS_URL, cluster=settings.cluster)
    try:
        await ping(client)  # as the bot does at start: a Cluster client learns the nodes first
        yield OwnedLimits(client, settings.key_prefix)
    finally:
        await close(client)


async def write_until(bucket: Bucket, deadline: float, landed: list[float], writers: int = 4) -> None:
    """`writers` replies writing as fast as the budget lets them; each write takes ~5 ms."""

    async def writer() -> None:
        while time.monotonic() < deadline:
            async with budget.spend((bucket,)):
                await asyncio.sleep(0.005)
                landed.append(time.monotonic())

    await asyncio.gather(*(writer() for _ in range(writers)))


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, at + window) - index for index, at in enumerate(times)), default=0)


def count_between(times: list[float], start: float, end: float) -> int:
    return sum(1 for at in times if start <= at < end)


async def test_two_processes_writing_at_once_stay_inside_the_limit_together_and_share_it(
    history_settings: HistorySettings,
) -> None:
    async with process(history_settings) as first, process(history_settings) as second:
        buckets = [limits.bucket("test", "global", LIMIT, WINDOW) for limits in (first, second)]
        landed: list[list[float]] = [[], []]
        deadline = time.monotonic() + 3.2
        await asyncio.gather(
            *(write_until(bucket, deadline, times) for bucket, times in zip(buckets, landed, strict=False))
        )
    together = landed[0] + landed[1]
    assert most_in_any_window(together, WINDOW) <= LIMIT  # the platform never sees more
    assert len(together) >= 2 * LIMIT  # and the limit is used, not wasted: ~3 windows' worth
    assert min(len(landed[0]), len(landed[1])) >= len(together) // 4, [len(times) for times in landed]


async def test_a_process_that_starts_writing_later_gets_its_part_at_once(history_settings: HistorySettings) -> None:
    async with process(history_settings) as first, process(history_settings) as second:
        early, late = (limits.bucket("test", "global", LIMIT, WINDOW) for limits in (first, second))
        landed: list[list[float]] = [[], []]
        deadline = time.monotonic() + 3.5

        async def start_late() -> None:
            await asyncio.sleep(0.3)  # by now the first process has the whole limit in use
            await write_until(late, deadline, landed[1])

        await asyncio.gather(write_until(early, deadline, landed[0]), start_late())
    assert most_in_any_window(landed[0] + landed[1], WINDOW) <= LIMIT
    last = [count_between(times, deadline - 1.5, deadline) for times in landed]
    assert last[1] >= sum(last) // 4, last


async def test_a_lone_process_gets_the_whole_limit_at_once(history_settings: HistorySettings) -> None:
    async with process(history_settings) as alone:
        channel = alone.bucket("test", "channel", 5, 5.0)
        landed: list[float] = []
        started = time.monotonic()
        await write_until(channel, started + 0.5, landed, writers=5)
    assert count_between(landed, started, started + 1.0) == 5  # five in a 5 s window, at once


async def test_a_full_channel_holds_up_its_own_writes_only(history_settings: HistorySettings) -> None:
    async with process(history_settings) as limits:
        global_ = limits.bucket("test", "global", LIMIT, WINDOW)
        busy, quiet = (limits.bucket("test", f"channel:{name}", 1, 5.0) for name in ("busy", "quiet"))
        async with budget.spend((busy, global_)):
            pass
        waiting = asyncio.create_task(budget.spend((busy, global_)).__aenter__())
        started = time.monotonic()
        async with budget.spend((quiet, global_)):
            assert time.monotonic() - started < WINDOW / 4
        assert not waiting.done()  # the busy channel's next write waits for its window
        waiting.cancel()


async def test_a_write_that_must_happen_waits_for_the_window_instead_of_failing(
    history_settings: HistorySettings,
) -> None:
    async with process(history_settings) as limits:
        channel = limits.bucket("test", "channel", 1, 0.3)
        async with budget.spend((channel,)):
            pass
        started = time.monotonic()
        async with budget.spend((channel,)):
            waited = time.monotonic() - started
    assert 0.25 < waited < 1.0


async def test_a_write_cancelled_while_it_waits_gives_its_slot_back(history_settings: HistorySettings) -> None:
    async with process(history_settings) as limits:
        channel = limits.bucket("test", "channel", 1, 0.5)
        async with budget.spend((channel,)):
            pass
        cancelled = asyncio.create_task(budget.spend((channel,)).__aenter__())
        await asyncio.sleep(0.1)  # it has been given the slot that frees 0.5 s after the first write
        cancelled.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cancelled
        started = time.monotonic()
        async with budget.spend((channel,)):
            waited = time.monotonic() - started
    assert waited < 2.0  # that slot, not one freeing a window after the cancelled write would have lapsed


async def test_an_interim_edit_cancelled_while_redis_answers_gives_the_slot_back(
    history_settings: HistorySettings, raw_redis: aioredis.Redis
) -> None:
    # Redis 0.2 s away: the edit's step reaches it and takes the slot, and the edit is cancelled
    # (its reply was finished) while the answer is on its way back.
    async with DelayProxy([Route(REDIS_PORT, 0.2)]) as proxy:
        async with process(replace(history_settings, redis_url=proxy.via(REDIS_URL))) as limits:
            channel = limits.bucket("test", "channel", 1, 0.5)
            writes = writes_key(channel)
            asking = asyncio.create_task(budget.try_spare((channel,)))
            await asyncio.sleep(0.3)
            asking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asking
            assert asking.cancelled()
            assert await eventually(lambda: raw_redis.zcard(writes), 1, within=2.0)  # Redis took the slot
            # Given back, not held as in flight until it lapses (10 s) and then a window more.
            assert await eventually(lambda: raw_redis.zcard(writes), 0, within=8.0)


async def eventually(read: Callable[[], Awaitable[int]], expected: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while await read() != expected:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# A process of the bot that writes as fast as the shared budget lets it and prints when each
# write landed (time.time(), comparable across processes), until it is killed.
GREEDY_PROCESS = """
import asyncio, sys, time
from adapters.shared.ratelimit import RateLimits
from bot.state.redis_client import connect

async def main(url, prefix, limit, window):
    limits = RateLimits(connect(url, cluster=False, retries=0), prefix)
    bucket = limits.bucket("test", "global", limit, window)
    while True:
        async with limits.write((bucket,)):
            await asyncio.sleep(0.005)
            print(time.time(), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
"""


async def test_a_process_killed_while_writing_leaves_its_writes_counted_then_its_slots_to_the_others(
    history_settings: HistorySettings,
) -> None:
    doomed = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        GREEDY_PROCESS,
        REDIS_URL,
        history_settings.key_prefix,
        str(LIMIT),
        str(WINDOW),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    theirs: list[float] = []
    try:
        assert doomed.stdout is not None
        while len(theirs) < LIMIT + 3:  # it has used the whole limit, and goes on…
            theirs.append(float(await asyncio.wait_for(doomed.stdout.readline(), 10)))
    finally:
        doomed.kill()  # …and dies mid-write, never saying when its last write landed
        await doomed.wait()
    died, died_at = time.monotonic(), time.time()
    mine: list[float] = []
    async with process(history_settings) as survivor:
        await write_until(survivor.bucket("test", "global", LIMIT, WINDOW), died + WINDOW + 2.0, mine)
    offset = died_at - died
    assert most_in_any_window(theirs + [at + offset for at in mine], WINDOW) <= LIMIT
    # Its writes in flight (its last, and at most one whose landing it had not yet told Redis)
    # keep a slot each for IN_FLIGHT_SECONDS; the rest are the survivor's.
    assert count_between(mine, died + WINDOW + 0.5, died + WINDOW + 1.5) >= LIMIT - 2


# A process of the bot whose event loop is busy most of the time (a burst of mentions to parse):
# it hears Redis's answers late. It writes as fast as the budget lets it, prints when each write
# landed, and stops.
LAGGING_PROCESS = """
import asyncio, sys, time
from adapters.shared.ratelimit import RateLimits
from bot.state.redis_client import connect

async def lag():
    while True:
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # the loop is busy elsewhere

async def writer(limits, bucket, deadline):
    while time.monotonic() < deadline:
        async with limits.write((bucket,)):
            await asyncio.sleep(0.005)
            print(time.time(), flush=True)

async def main(url, prefix, limit, window, seconds):
    limits = RateLimits(connect(url, cluster=False, retries=0), prefix)
    bucket = limits.bucket("test", "global", limit, window)
    asyncio.get_running_loop().create_task(lag())
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(writer(limits, bucket, deadline) for _ in range(4)))

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])))
"""


async def test_a_process_that_hears_redis_late_never_takes_the_processes_over_the_limit(
    history_settings: HistorySettings,
) -> None:
    seconds = 5.0
    lagging = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LAGGING_PROCESS,
        REDIS_URL,
        history_settings.key_prefix,
        str(LIMIT),
        str(WINDOW),
        str(seconds),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    async with process(history_settings) as prompt:
        bucket = prompt.bucket("test", "global", LIMIT, WINDOW)
        mine: list[float] = []

        async def writer() -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                for _ in range(LIMIT):
                    async with budget.spend((bucket,)):
                        await asyncio.sleep(0.005)
                        mine.append(time.time())
                await asyncio.sleep(1.5 * WINDOW)

        output, _ = await asyncio.gather(lagging.communicate(), writer())
    theirs = [float(line) for line in output[0].decode().split()]
    assert theirs and mine, (len(theirs), len(mine))
    assert most_in_any_window(theirs + mine, WINDOW) <= LIMIT


async def test_with_redis_hung_finals_still_land_and_interim_edits_and_new_streams_wait(
    own_redis: OwnRedis, history_settings: HistorySettings
) -> None:
    async with process(replace(history_settings, redis_url=own_redis.url)) as limits:
        edits = limits.bucket("test", "edits", LIMIT, WINDOW)
        assert await budget.promise((edits,)) is not None
        own_redis.freeze()  # no answer, connections left open: a hung server
        try:
            started = time.monotonic()
            async with budget.spend((edits,)):
                landed = time.monotonic() - started
            assert landed < 3 * CONTROL_ANSWER_SECONDS  # the final goes, unbudgeted
            assert await budget.try_spare((edits,)) is None  # interim edits wait
            assert await budget.promise((edits,)) is None  # new replies are posted whole
        finally:
            own_redis.thaw()
        assert await budget.try_spare((edits,)) is not None  # shared again


async def test_replies_started_by_four_workers_at_once_stream_no_more_than_a_slow_window_has_finals_for(
    history_settings: HistorySettings,
) -> None:
    """Four Slack workers start replies at once on a 10-per-12 s tier: together they stream no
    more replies than the window has finals for; the rest are posted whole."""
    async with contextlib.AsyncExitStack() as stack:
        workers = [await stack.enter_async_context(process(history_settings)) for _ in range(4)]
        buckets = [worker.bucket("test", "chat.update", LIMIT, 12.0) for worker in workers]
        promises = await asyncio.gather(*(budget.promise((bucket,)) for bucket in buckets for _ in range(5)))
    assert sum(promise is not None for promise in promises) == LIMIT


async def test_finals_promised_on_a_slow_tier_stay_promised_until_written(history_settings: HistorySettings) -> None:
    async with process(history_settings) as first, process(history_settings) as later:
        tier = first.bucket("test", "chat.update", 2, 12.0)
        promises = [await budget.promise((tier,)) for _ in range(2)]
        assert None not in promises
        other = later.bucket("test", "chat.update", 2, 12.0)
        assert await budget.promise((other,)) is None  # a third reply would wait 12 s for its final
        assert await budget.try_spare((other,)) is None  # and no interim edit takes a final's slot
        started = time.monotonic()
        for promise in promises:  # the two finals go at once
            async with budget.spend((tier,)):
                pass
            await budget.release((tier,), promise)
        assert time.monotonic() - started < WINDOW / 2
        assert await budget.promise((other,)) is None  # the window is full of them now


async def test_on_a_limit_of_a_second_replies_stream_up_to_the_limit_even_in_a_busy_second(
    history_settings: HistorySettings,
) -> None:
    async with process(history_settings) as limits:
        global_ = limits.bucket("test", "global", 5, WINDOW)
        for _ in range(5):  # a busy second: thread creations
            async with budget.spend((global_,)):
                pass
        promises = [await budget.promise((global_,)) for _ in range(7)]
        assert [promise is not None for promise in promises] == [True] * 5 + [False] * 2
        await budget.release((global_,), promises[0])
        assert await budget.promise((global_,)) is not None


async def test_an_interim_edit_in_one_process_never_pushes_another_process_final_a_window_later(
    history_settings: HistorySettings,
) -> None:
    """One process streams eight replies, another two: their ten finals fill the limit between
    them, so neither makes an interim edit, and every final lands at once."""
    async with process(history_settings) as first, process(history_settings) as second:
        theirs, mine = (limits.bucket("test", "finals", LIMIT, WINDOW) for limits in (first, second))
        promises = [await budget.promise((theirs,)) for _ in range(LIMIT - 2)]
        promises += [await budget.promise((mine,)) for _ in range(2)]
        assert None not in promises
        started = time.monotonic()
        interim = await budget.try_spare((mine,), promises[-1])

        async def final(bucket: Bucket) -> None:
            async with budget.spend((bucket,)):
                pass

        await asyncio.gather(*(final(bucket) for bucket in [theirs] * (LIMIT - 2) + [mine] * 2))
        took = time.monotonic() - started
    assert interim is None
    assert took < WINDOW / 3, f"the finals took {took:.2f} s"


async def test_a_write_waiting_for_a_slot_gets_it_before_any_interim_edit(history_settings: HistorySettings) -> None:
    async with process(history_settings) as first, process(history_settings) as second:
        window = 0.5
        mine, theirs = (limits.bucket("test", "busy", 1, window) for limits in (first, second))
        async with budget.spend((mine,)):
            pass

        async def must() -> None:
            async with budget.spend((mine,)):
                pass

        final = asyncio.create_task(must())
        interim = []
        while not final.done():
            interim.append(await budget.try_spare((theirs,)))
            await asyncio.sleep(0.02)
        await final
    assert len(interim) > 10 and all(charge is None for charge in interim)


async def test_a_write_still_in_flight_keeps_its_slot_and_counts_from_when_it_was_answered(
    history_settings: HistorySettings,
) -> None:
    async with process(history_settings) as first, process(history_settings) as second:
        window = 0.3
        mine, theirs = (limits.bucket("test", "slow", 1, window) for limits in (first, second))
        async with budget.spend((mine,)):
            await asyncio.sleep(3 * window)  # a slow request: long past the window, not answered yet
            assert await budget.try_spare((theirs,)) is None
        await asyncio.sleep(window / 2)
        assert await budget.try_spare((theirs,)) is None  # it counts from its answer
        await asyncio.sleep(window)
        assert await budget.try_spare((theirs,)) is not None


async def burst_over_a_route(
    bucket: Bucket, writes: int, way_there: float, way_back: float, late_there: float, late_back: float
) -> list[float]:
    """When each write of a burst reaches the platform, over a route `way_there` and `way_back`
    long, each trip up to `late_there` and `late_back` longer (a busy process or network)."""
    rng = random.Random(7)
    arrivals: list[float] = []

    async def write() -> None:
        async with budget.spend((bucket,)):
            await asyncio.sleep(way_there + rng.uniform(0, late_there))
            arrivals.append(time.monotonic())
            await asyncio.sleep(way_back + rng.uniform(0, late_back))

    await asyncio.gather(*(write() for _ in range(writes)))
    return sorted(arrivals)


async def test_a_burst_over_a_slow_route_loses_little_to_the_delay_and_never_trips_the_limit(
    history_settings: HistorySettings,
) -> None:
    # Over a route 50 ms each way, a slot of a 50-per-second limit is taken again about 1.1 s
    # after its last write arrived: writes count from their answers, a round trip idle per window.
    async with process(history_settings) as limits:
        await burst_over_a_route(limits.bucket("test", "warm-up", 50, 1.0), 25, 0.05, 0.05, 0.0, 0.0)
        arrivals = await burst_over_a_route(limits.bucket("test", "route", 50, 1.0), 150, 0.05, 0.05, 0.0, 0.0)
    assert most_in_any_window(arrivals, 1.0) <= 50
    reuse = statistics.median(arrivals[index] - arrivals[index - 50] for index in range(50, 150))
    assert reuse < 1.16


@pytest.mark.parametrize(("late_there", "late_back"), [(0.04, 0.01), (0.0, 0.1), (0.1, 0.1)])
async def test_a_burst_over_a_route_with_erratic_trips_never_trips_the_limit(
    history_settings: HistorySettings, late_there: float, late_back: float
) -> None:
    async with process(history_settings) as limits:
        bucket = limits.bucket("test", "erratic", 20, 0.5)
        arrivals = await burst_over_a_route(bucket, 80, 0.05, 0.05, late_there, late_back)
    assert most_in_any_window(arrivals, 0.5) <= 20


@pytest.mark.parametrize("limit", [1000, 10])
async def test_a_write_costs_one_redis_round_trip_even_when_it_waits_for_a_slot(
    history_settings: HistorySettings, own_redis: OwnRedis, limit: int
) -> None:
    # A write asks for its slot once (one that waits is given the slot that frees next, and does
    # not ask again) and tells Redis when it landed once.
    async with process(replace(history_settings, redis_url=own_redis.url)) as limits:
        landed: list[float] = []
        await write_until(limits.bucket("test", "trips", limit, 0.5), time.monotonic() + 1.6, landed)
        await limits.aclose()
    observer = connect_control(own_redis.url, cluster=False)
    try:
        stats = await observer.info("commandstats")
    finally:
        await close(observer)
    steps = sum(stats.get(f"cmdstat_{command}", {}).get("calls", 0) for command in ("evalsha", "eval"))
    assert most_in_any_window(landed, 0.5) <= limit
    assert len(landed) >= min(limit * 3, 100)
    assert steps <= 2 * len(landed) + 2, f"{steps} Redis steps for {len(landed)} writes"


@pytest.mark.parametrize("trip", [0.0, 0.01])
async def test_writes_reserved_for_a_cut_off_give_up_at_it_and_their_slots_stay_free(
    history_settings: HistorySettings, raw_redis: aioredis.Redis, trip: float
) -> None:
    # A burst of answers to messages nobody addressed: each takes a post only if one comes before its cut-off. Every
    # one past it gives up then (not when its wait for Redis ends: answered late, or never), and a slot taken anyway
    # is given back.
    async with DelayProxy([Route(REDIS_PORT, trip)]) as proxy:
        async with process(replace(history_settings, redis_url=proxy.via(REDIS_URL))) as limits:
            posts = limits.bucket("test", "posts", 3, 1.0)
            cut_off = 0.4

            async def reserve() -> tuple[Write | None, float]:
                started = time.monotonic()
                write = await limits.reserve((posts,), cut_off)
                return write, time.monotonic() - started

            for _ in range(5):
                await raw_redis.delete(*limits.keys(posts))
                outcomes = await asyncio.gather(*(reserve() for _ in range(40)))
                granted = [write for write, _ in outcomes if write is not None]
                assert len(granted) == 3  # the window's three slots; the next frees a second later, past the cut-off
                assert max(waited for _, waited in outcomes) < cut_off + 0.25
                for write in granted:
                    await write.release()
                # No slot held by a write that gave up: it would count as in flight for 10 s, then a window more.
                assert await eventually(lambda: raw_redis.zcard(writes_key(posts)), 0, within=1.0)
