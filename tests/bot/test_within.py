"""`bot.loop.within`: a search given up on after its time doesn't hold the answer up, even when the work it cancels
is slow to end (a database query being cancelled), as asyncio.wait_for would."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.loop import within


async def slow_to_give_up(ended: asyncio.Event) -> str:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        await asyncio.sleep(0.5)  # a query being cancelled: the server takes its time to confirm
        ended.set()
        raise
    return "late"


async def test_work_slow_to_give_up_is_left_to_end_on_its_own() -> None:
    ended = asyncio.Event()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await within(slow_to_give_up(ended), 0.1)
    assert time.monotonic() - started < 0.3  # wait_for would have taken 0.6 s
    assert not ended.is_set()
    await asyncio.wait_for(ended.wait(), 2)  # it was cancelled all the same, and ended


async def test_work_done_in_time_gives_its_result_or_its_error() -> None:
    async def quick() -> int:
        return 42

    async def failing() -> int:
        raise ValueError("engine down")

    assert await within(quick(), 1) == 42
    with pytest.raises(ValueError, match="engine down"):
        await within(failing(), 1)


async def test_cancelling_the_caller_cancels_the_work() -> None:
    ended = asyncio.Event()
    caller = asyncio.ensure_future(within(slow_to_give_up(ended), 5))
    await asyncio.sleep(0.05)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.wait_for(ended.wait(), 2)
