"""What a burst of turns holds back until its model requests are out, and for how long at most."""

from __future__ import annotations

import asyncio
import time

from bot.burst import ModelCallsFirst


async def test_what_waits_for_a_burst_goes_once_every_turn_has_asked_the_model() -> None:
    calls = ModelCallsFirst()
    first, second = calls.arrived(), calls.arrived()
    assert calls.in_burst
    waiting = asyncio.ensure_future(calls.settled())
    first()
    await asyncio.sleep(ModelCallsFirst.QUIET_SECONDS * 2)
    assert not waiting.done()  # the second turn has not sent its request yet
    started = time.monotonic()
    second()
    await asyncio.wait_for(waiting, 1.0)
    # A late mention of the burst may still come: the hold lasts a quiet moment more.
    assert time.monotonic() - started >= ModelCallsFirst.QUIET_SECONDS * 0.9
    assert not calls.in_burst


async def test_a_turn_that_never_gets_to_its_request_holds_the_others_back_only_briefly() -> None:
    calls = ModelCallsFirst()
    calls.arrived()  # e.g. stuck waiting for something else: never calls back
    started = time.monotonic()
    await asyncio.wait_for(calls.settled(), 1.0)
    assert ModelCallsFirst.HOLD_LIMIT_SECONDS * 0.9 <= time.monotonic() - started < 0.6


async def test_a_turn_on_its_own_is_no_burst_and_nothing_waits_when_no_turn_is_on_its_way() -> None:
    calls = ModelCallsFirst()
    await asyncio.wait_for(calls.settled(), 0.01)
    called = calls.arrived()
    assert not calls.in_burst
    released: list[float] = []
    calls.after_burst(lambda: released.append(time.monotonic()), then=0.0)
    called()
    await asyncio.sleep(ModelCallsFirst.QUIET_SECONDS * 3)
    assert released  # after the quiet moment that ends the hold
    await asyncio.wait_for(calls.settled(), 0.01)
