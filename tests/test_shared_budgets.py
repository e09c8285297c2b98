"""A platform's rate limit is the whole bot's: processes writing at once together stay inside it,
share it fairly, and a dead process's share comes back to the others."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import redis

from bot import budget
from bot.budget import WriteBudget
from bot.leases import HUNG_SECONDS, LAPSE_SECONDS, RENEW_SECONDS, BudgetLeases, SharedBudgets
from bot.redis_client import close, connect
from config.settings import HistorySettings
from tests.conftest import REDIS_URL, ROOT, OwnRedis

LIMIT, WINDOW = 10, 1.0


@asynccontextmanager
async def process(settings: HistorySettings, name: str) -> AsyncIterator[SharedBudgets]:
    """What one bot process has: its own Redis client and its leases."""
    client = connect(settings.redis_url or REDIS_URL, cluster=settings.cluster)
    shared = SharedBudgets(BudgetLeases(client, settings.key_prefix, name))
    try:
        yield shared
    finally:
        await shared.aclose()
        await close(client)


async def write_until(bucket: WriteBudget, deadline: float, landed: list[float], writers: int = 4) -> None:
    """`writers` replies writing as fast as the budget lets them; each write takes ~5 ms."""

    async def writer() -> None:
        while time.monotonic() < deadline:
            with await budget.spend((bucket,)):
                await asyncio.sleep(0.005)
                landed.append(time.monotonic())

    await asyncio.gather(*(writer() for _ in range(writers)))


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        most = max(most, end - start + 1)
    return most


def count_between(times: list[float], start: float, end: float) -> int:
    return sum(1 for at in times if start <= at < end)


async def test_two_processes_writing_at_once_stay_inside_the_limit_together_and_share_it(
    history_settings: HistorySettings,
) -> None:
    async with process(history_settings, "first") as first, process(history_settings, "second") as second:
        buckets = [shared.budget("test:global", LIMIT, WINDOW) for shared in (first, second)]
        landed: list[list[float]] = [[], []]
        start = time.monotonic()
        deadline = start + 3.2
        await asyncio.gather(*(write_until(bucket, deadline, times) for bucket, times in zip(buckets, landed)))
    together = landed[0] + landed[1]
    assert most_in_any_window(together, WINDOW) <= LIMIT  # the platform never sees more
    assert len(together) >= 2 * LIMIT  # and the limit is used, not wasted: ~3 windows' worth
    assert min(len(landed[0]), len(landed[1])) >= len(together) // 4, [len(times) for times in landed]


async def test_a_process_that_starts_writing_later_gets_its_fair_part_within_a_few_windows(
    history_settings: HistorySettings,
) -> None:
    async with process(history_settings, "first") as first, process(history_settings, "second") as second:
        early, late = (shared.budget("test:global", LIMIT, WINDOW) for shared in (first, second))
        landed: list[list[float]] = [[], []]
        deadline = time.monotonic() + 4.5

        async def start_late() -> None:
            await asyncio.sleep(0.3)  # by now the first process has the whole limit in flight
            await write_until(late, deadline, landed[1])

        await asyncio.gather(write_until(early, deadline, landed[0]), start_late())
    assert most_in_any_window(landed[0] + landed[1], WINDOW) <= LIMIT
    # The first process's writes fill the windows before it learns of the second; then they share.
    last = [count_between(times, deadline - 1.5, deadline) for times in landed]
    assert last[1] >= sum(last) // 4, last


# A process of the bot that writes as fast as the shared budget lets it, until it is killed.
GREEDY_PROCESS = """
import asyncio, sys, time
import redis.asyncio as aioredis
from bot import budget
from bot.leases import BudgetLeases, SharedBudgets

async def main(url, prefix, limit, window):
    shared = SharedBudgets(BudgetLeases(aioredis.from_url(url), prefix, "doomed"))
    bucket = shared.budget("test:global", limit, window)
    while True:
        with await budget.spend((bucket,)):
            await asyncio.sleep(0.005)
        print("wrote", flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
"""


async def test_a_process_killed_while_writing_gives_its_share_back_when_its_lease_lapses(
    history_settings: HistorySettings,
) -> None:
    key_prefix = history_settings.key_prefix
    doomed = await asyncio.create_subprocess_exec(
        sys.executable, "-c", GREEDY_PROCESS, REDIS_URL, key_prefix, str(LIMIT), str(WINDOW),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert doomed.stdout is not None
        for _ in range(LIMIT):  # it holds the whole limit…
            assert await asyncio.wait_for(doomed.stdout.readline(), 10) == b"wrote\n"
    finally:
        doomed.kill()  # …and dies without giving anything back
        await doomed.wait()
    died = time.monotonic()
    async with process(history_settings, "survivor") as survivor:
        bucket = survivor.budget("test:global", LIMIT, WINDOW)
        landed: list[float] = []
        await write_until(bucket, died + LAPSE_SECONDS + WINDOW + 2.5, landed)
    lapsed = died + LAPSE_SECONDS + WINDOW
    assert count_between(landed, died, died + LAPSE_SECONDS - 1.0) == 0  # its slots still count…
    assert count_between(landed, lapsed + 0.5, lapsed + 2.5) >= LIMIT  # …then they are the survivor's


async def test_a_lone_process_gets_the_whole_limit_at_once(history_settings: HistorySettings) -> None:
    async with process(history_settings, "alone") as alone:
        bucket = alone.budget("test:channel", 5, 5.0)
        landed: list[float] = []
        started = time.monotonic()
        await write_until(bucket, started + 0.5, landed, writers=5)
    assert count_between(landed, started, started + 1.0) == 5  # five in a 5 s window, at once


# A process of the bot whose event loop is busy most of the time (a burst of mentions to parse):
# it hears Redis's answers late. It writes as fast as its share lets it, prints when each write
# landed (time.time(), comparable across processes), and stops (its last writes still count).
LAGGING_PROCESS = """
import asyncio, sys, time
from bot import budget
from bot.leases import BudgetLeases, SharedBudgets
from bot.redis_client import connect

async def lag():
    while True:
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # the loop is busy elsewhere

async def writer(bucket, deadline):
    while time.monotonic() < deadline:
        with await budget.spend((bucket,)):
            await asyncio.sleep(0.005)
            print(time.time(), flush=True)

async def main(url, prefix, limit, window, seconds):
    shared = SharedBudgets(BudgetLeases(connect(url, cluster=False), prefix, "lagging"))
    bucket = shared.budget("test:global", limit, window)
    asyncio.get_running_loop().create_task(lag())
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(writer(bucket, deadline) for _ in range(4)))
    await shared.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])))
"""


async def test_a_process_that_hears_redis_late_then_stops_never_takes_the_processes_over_the_limit(
    history_settings: HistorySettings,
) -> None:
    seconds = 6.0
    lagging = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LAGGING_PROCESS, REDIS_URL, history_settings.key_prefix, str(LIMIT), str(WINDOW),
        str(seconds), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with process(history_settings, "prompt") as prompt:
        bucket = prompt.budget("test:global", LIMIT, WINDOW)
        mine: list[float] = []

        async def writer() -> None:
            """Bursts of writes with pauses: each time, the lagging process must give slots back."""
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                for _ in range(LIMIT):
                    with await budget.spend((bucket,)):
                        await asyncio.sleep(0.005)
                        mine.append(time.time())
                await asyncio.sleep(1.5 * WINDOW)

        output, _ = await asyncio.gather(lagging.communicate(), writer())
    theirs = [float(line) for line in output[0].decode().split()]
    assert theirs and mine, (len(theirs), len(mine))
    assert most_in_any_window(theirs + mine, WINDOW) <= LIMIT


async def test_a_process_keeps_writing_on_its_share_while_redis_hangs(
    own_redis: OwnRedis, history_settings: HistorySettings
) -> None:
    settings = replace(history_settings, redis_url=own_redis.url)
    async with process(settings, "alone") as alone:
        bucket = alone.budget("test:global", LIMIT, WINDOW)
        landed: list[float] = []
        started = time.monotonic()
        await write_until(bucket, started + 1.5, landed)
        own_redis.freeze()  # no answer, connections left open: a hung server
        try:
            await write_until(bucket, started + HUNG_SECONDS + 5.0, landed)
        finally:
            own_redis.thaw()
    # Writes pause while the renewal is unanswered, then go on at the process's last share.
    resumed = started + 1.5 + HUNG_SECONDS
    assert count_between(landed, resumed + 1.0, resumed + 3.0) >= LIMIT
    assert most_in_any_window(landed, WINDOW) <= LIMIT


async def test_processes_starting_replies_at_once_promise_no_more_finals_than_a_slow_window_holds(
    history_settings: HistorySettings,
) -> None:
    """Four Slack workers each get replies to start at once on a 10-per-12 s tier: together they
    stream no more replies than the window has finals for (the rest are posted whole), and a lone
    worker still streams as many as the window holds."""
    async with contextlib.AsyncExitStack() as stack:
        workers = [await stack.enter_async_context(process(history_settings, f"worker{i}")) for i in range(4)]
        buckets = [worker.budget("test:chat.update", LIMIT, 12.0) for worker in workers]
        await asyncio.sleep(0.2)  # each worker has heard of its lease once
        starts = [budget.reserve((bucket,)) for bucket in buckets for _ in range(5)]
        streaming = sum(await asyncio.gather(*starts))
    assert 0 < streaming <= LIMIT

    async with process(history_settings, "alone") as alone:
        bucket = alone.budget("test:chat.update:alone", LIMIT, 12.0)
        await asyncio.sleep(0.2)
        assert sum([await budget.reserve((bucket,)) for _ in range(LIMIT + 2)]) == LIMIT


async def test_replies_starting_a_moment_apart_on_a_slow_tier_all_stream(history_settings: HistorySettings) -> None:
    """Ten mentions at once in a Slack workspace reach the renderer a moment apart:
    a reservation made while the renewal asked for an earlier one is on its way still streams,
    instead of being posted whole 6 s later."""
    async with process(history_settings, "alone") as alone:
        bucket = alone.budget("test:chat.update:together", LIMIT, 12.0)
        await asyncio.sleep(0.2)
        starts = []
        for _ in range(LIMIT):
            starts.append(asyncio.create_task(budget.reserve((bucket,))))
            for _ in range(3):  # a few turns of the event loop apart
                await asyncio.sleep(0)
        streaming = await asyncio.gather(*starts)
    assert all(streaming), f"{sum(streaming)} of {LIMIT} replies stream"


async def test_finals_promised_on_a_slow_tier_stay_promised_when_more_workers_start_replies(
    history_settings: HistorySettings,
) -> None:
    """A Slack worker streams as many replies as a 10-per-12 s tier has finals for; workers that
    start replies a moment later, while those stream, post theirs whole instead of streaming
    past the window (a final over it would wait 12 s)."""
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(process(history_settings, "first"))
        bucket = first.budget("test:chat.update:promised", LIMIT, 12.0)
        await asyncio.sleep(0.2)
        assert sum([await budget.reserve((bucket,)) for _ in range(LIMIT)]) == LIMIT
        later = [await stack.enter_async_context(process(history_settings, f"later{i}")) for i in range(3)]
        buckets = [worker.budget("test:chat.update:promised", LIMIT, 12.0) for worker in later]
        streaming = 0
        for _ in range(3):  # over several renewals of every lease
            await asyncio.sleep(0.7)
            streaming += sum(await asyncio.gather(*(budget.reserve((other,)) for other in buckets)))
    assert streaming == 0


async def test_a_slot_one_process_keeps_spare_goes_to_another_process_write_that_waits(
    history_settings: HistorySettings,
) -> None:
    """A burst of mentions spread over two processes: the second process's thread creations
    take the slot the first keeps spare for its next write, instead of waiting for the window
    (on Discord, a creation pushed into the next second delays its reply's first words a second)."""
    async with process(history_settings, "first") as first, process(history_settings, "second") as second:
        mine = first.budget("test:spare", LIMIT, WINDOW)
        theirs = second.budget("test:spare", LIMIT, WINDOW)
        await asyncio.sleep(0.2)
        for _ in range(LIMIT // 2):
            with await budget.spend((mine,)):
                pass
        await asyncio.sleep(0.2)  # the first process's lease now holds a slot to spare
        started = time.monotonic()
        for _ in range(LIMIT // 2):
            with await budget.spend((theirs,)):
                pass
        took = time.monotonic() - started
    assert took < WINDOW / 4, f"the second process's writes took {took:.2f} s"


async def test_an_interim_edit_in_one_process_never_pushes_another_process_final_a_window_later(
    history_settings: HistorySettings,
) -> None:
    """One process streams eight replies, another two: their ten finals fill Discord's global
    limit between them. The second process has a slot of its lease to spare, but an interim edit
    on it would make eleven writes in the window and push one of the first process's finals a
    second later; so it makes none, and every final lands at once."""
    async with process(history_settings, "first") as first, process(history_settings, "second") as second:
        theirs = first.budget("test:finals", LIMIT, WINDOW, max_streaming=LIMIT)
        await asyncio.sleep(0.2)
        assert all(budget.try_reserve((theirs,)) for _ in range(LIMIT - 2))
        mine = second.budget("test:finals", LIMIT, WINDOW, max_streaming=LIMIT)
        await asyncio.sleep(0.2)
        assert all(budget.try_reserve((mine,)) for _ in range(2))
        await asyncio.sleep(RENEW_SECONDS + 0.2)  # renewed since: each process knows what the other needs
        started = time.monotonic()
        interim = budget.try_spend_spare((mine,))
        if interim is not None:
            interim.complete(answered=True)
        finals = [budget.spend((bucket,), reserved=True) for bucket in [theirs] * (LIMIT - 2) + [mine] * 2]
        for charge in await asyncio.gather(*finals):
            charge.complete(answered=True)
        took = time.monotonic() - started
    assert interim is None
    assert took < WINDOW / 3, f"the finals took {took:.2f} s"


def lease_calls(server: OwnRedis) -> int:
    """How many times any process has run the lease script on `server`."""
    stats = redis.Redis(port=server.port).info("commandstats")
    return sum(int(stats.get(f"cmdstat_{command}", {}).get("calls", 0)) for command in ("evalsha", "eval"))


async def test_a_channel_written_to_once_costs_redis_nothing_while_its_post_stays_in_the_window(
    own_redis: OwnRedis, history_settings: HistorySettings
) -> None:
    """A hundred Slack channels each get one post (1 a second, 60 s window): once they fall
    quiet their leases are no longer renewed, yet the posts keep their slots from another worker."""
    settings = replace(history_settings, redis_url=own_redis.url)
    async with process(settings, "first") as first, process(settings, "second") as second:
        channels = [first.budget(f"test:channel:{index}", 1, 60.0) for index in range(100)]
        await first.ready(channels)
        for channel in channels:
            with await budget.spend((channel,)):
                pass
        await asyncio.sleep(2 * RENEW_SECONDS + 0.5)  # gone quiet, their spare slots given back
        before = lease_calls(own_redis)
        await asyncio.sleep(3.0)
        renewals = lease_calls(own_redis) - before
        other = second.budget("test:channel:0", 1, 60.0)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(budget.spend((other,)), timeout=2.0)
            raise AssertionError("another worker posted in a channel whose post is still in the window")
    assert renewals < 10, f"{renewals} lease calls in 3 s for channels nobody wrote to"


async def test_processes_that_wrote_past_the_limit_while_redis_was_out_of_reach_write_again_after_the_window(
    history_settings: HistorySettings,
) -> None:
    """Out of reach of Redis, each process writes on its last share, and shares learnt at
    different moments can add up to more than the limit. Once Redis answers again, the other
    processes wait for those writes to leave the window, then write: none stalls for good."""
    async with contextlib.AsyncExitStack() as stack:
        over = await stack.enter_async_context(process(history_settings, "over"))
        spent = over.budget("test:global", LIMIT, WINDOW)
        for _ in range(LIMIT + 5):  # written on a fallback share, answered just now
            budget.Charge((spent,)).complete(answered=True)
        written_at = time.monotonic()
        await over.ready([spent])
        others = [await stack.enter_async_context(process(history_settings, f"waiting-{i}")) for i in range(3)]

        async def write(shared: SharedBudgets) -> float:
            with await budget.spend((shared.budget("test:global", LIMIT, WINDOW),)):
                return time.monotonic()

        landed = await asyncio.wait_for(asyncio.gather(*(write(shared) for shared in others)), timeout=5 * WINDOW)
    assert min(landed) - written_at >= WINDOW  # the platform counts the first writes until then
