"""Files people send are decoded in limited worker processes (adapters.shared.files.isolation): a file that
needs too much memory or time, or kills its worker, costs that worker only. Real processes."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
import time
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from adapters.shared.files.images import ImageReader, ImageRefused
from adapters.shared.files.isolation import Failure, FairTurns, IsolatedWorkers, WorkFailed
from config.settings import ImageSettings
from fakes.harness.processes import ROOT


def allocate(size: int) -> int:
    return len(bytearray(size))


def spin() -> None:
    while True:
        pass


def exit_at_once() -> None:
    os._exit(9)


def worker_pid() -> int:
    return os.getpid()


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, "PNG")
    return buffer.getvalue()


async def returning(data: bytes) -> bytes:
    return data


@pytest.fixture
async def workers() -> AsyncIterator[IsolatedWorkers]:
    pool = IsolatedWorkers(memory_bytes=300_000_000, seconds=2.0, preload=["adapters.shared.files.image_worker"])
    yield pool
    await pool.aclose()


@pytest.fixture
async def unhurried_workers() -> AsyncIterator[IsolatedWorkers]:
    """The memory limit only: time enough for any work, however busy the machine."""
    pool = IsolatedWorkers(memory_bytes=300_000_000, seconds=60.0, preload=["adapters.shared.files.image_worker"])
    yield pool
    await pool.aclose()


async def test_work_runs_in_another_process(workers: IsolatedWorkers) -> None:
    assert await workers.run(worker_pid) != os.getpid()
    assert await workers.run(allocate, 1000) == 1000


async def test_work_past_the_memory_limit_fails_and_the_next_runs(workers: IsolatedWorkers) -> None:
    with pytest.raises(WorkFailed) as failed:
        await workers.run(allocate, 1_000_000_000)

    assert failed.value.failure is Failure.TOO_BIG
    assert await workers.run(allocate, 10_000_000) == 10_000_000


async def test_work_past_the_time_limit_is_killed_and_the_next_runs(workers: IsolatedWorkers) -> None:
    started = time.monotonic()
    with pytest.raises(WorkFailed) as failed:
        await workers.run(spin)

    assert failed.value.failure is Failure.TOO_SLOW
    assert time.monotonic() - started < 4
    assert await workers.run(allocate, 10) == 10


async def test_a_worker_that_dies_fails_its_own_work_only(workers: IsolatedWorkers) -> None:
    results = await asyncio.gather(workers.run(exit_at_once), workers.run(allocate, 5), return_exceptions=True)

    assert isinstance(results[0], WorkFailed) and results[0].failure is Failure.CRASHED
    assert results[1] == 5


async def test_cancelled_work_frees_its_worker() -> None:
    patient = IsolatedWorkers(seconds=60.0, preload=["adapters.shared.files.image_worker"])
    try:
        spinning = [asyncio.ensure_future(patient.run(spin)) for _ in range(patient.size)]
        await asyncio.sleep(0.3)
        for task in spinning:
            task.cancel()

        assert await asyncio.wait_for(patient.run(allocate, 3), 10) == 3  # long before the 60 s limit
    finally:
        await patient.aclose()


async def test_an_image_too_large_for_a_worker_gets_a_notice_and_the_bot_stays_small(
    unhurried_workers: IsolatedWorkers,
) -> None:
    reader = ImageReader(ImageSettings(max_images=4, max_side=1568), unhurried_workers)
    huge = png(7000, 7000)  # 150 KB that decode to 147 MB, and several copies of it on the way
    before = rss_bytes()

    with pytest.raises(ImageRefused, match=r"^huge\.png is too large to look at\.$"):
        await reader.read("huge.png", lambda: returning(huge))
    fine = await reader.read("fine.png", lambda: returning(png(3000, 2000)))

    assert (fine.width, fine.height) == (1568, 1045)
    assert rss_bytes() - before < 30_000_000


async def test_an_image_that_takes_too_long_gets_a_notice() -> None:
    slow = IsolatedWorkers(seconds=0.05, preload=["adapters.shared.files.image_worker"])
    reader = ImageReader(ImageSettings(max_images=4, max_side=1568), slow)
    try:
        with pytest.raises(ImageRefused, match=r"^scan\.png took too long to read, so I couldn't look at it\.$"):
            await reader.read("scan.png", lambda: returning(png(7000, 7000)))
    finally:
        await slow.aclose()


async def test_turns_go_to_the_owner_holding_fewest_and_a_cancelled_wait_is_passed_over() -> None:
    turns = FairTurns(2)
    order: list[str] = []
    release = asyncio.Event()

    async def file(owner: str, name: str) -> None:
        async with turns.turn(owner):
            order.append(name)
            await release.wait()

    held = contextlib.AsyncExitStack()
    for _ in range(2):
        await held.enter_async_context(turns.turn("ann"))  # both workers on ann's first two files
    ann = [asyncio.create_task(file("ann", f"ann{n}")) for n in range(2, 5)]
    await asyncio.sleep(0)
    gone, ben = asyncio.create_task(file("cat", "cat0")), asyncio.create_task(file("ben", "ben0"))
    await asyncio.sleep(0)
    gone.cancel()  # still waiting when the turns come back, at once
    await held.aclose()
    release.set()
    await asyncio.gather(*ann, ben, gone, return_exceptions=True)

    assert order == ["ben0", "ann2", "ann3", "ann4"]


COLD_WORKERS = """
import asyncio, os, sys
from pathlib import Path
from adapters.shared.files.isolation import IsolatedWorkers

def children() -> set[int]:
    return {int(pid) for task in Path("/proc/self/task").iterdir() for pid in (task / "children").read_text().split()}

async def main() -> None:
    never = IsolatedWorkers(preload=["adapters.shared.files.image_worker"], warm=False)
    await asyncio.sleep(0.5)
    assert not children(), children()  # not even the fork server
    await never.aclose()
    cold = IsolatedWorkers(preload=["adapters.shared.files.image_worker"], warm=False)
    pids = await asyncio.gather(*(cold.run(os.getpid) for _ in range(3)))
    assert os.getpid() not in pids and children()
    await cold.aclose()
    print("ok")

asyncio.run(main())
"""


async def test_cold_workers_start_no_process_until_work_comes() -> None:
    """A pool that may never have work (a knowledge folder unchanged since it was read) starts nothing, the fork
    server included, until its first task; then works as any other."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", COLD_WORKERS, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0 and out.decode().strip() == "ok", err.decode()
