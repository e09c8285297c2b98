"""Write budgets: the rules that keep replies inside a platform's rate limits."""

from __future__ import annotations

import bisect
import heapq
import itertools
import random

import pytest
from bot import budget
from bot.budget import WriteBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_no_more_than_the_limit_in_any_window() -> None:
    clock = Clock()
    channel = WriteBudget(5, 5.0, clock=clock)
    spent = [budget.try_spend_spare((channel,)) for _ in range(7)]
    assert [charge is not None for charge in spent] == [True] * 5 + [False] * 2
    for charge in spent[:5]:
        charge.complete()  # the requests completed
    clock.now += 4.9
    assert budget.try_spend_spare((channel,)) is None
    clock.now += 0.2
    assert budget.try_spend_spare((channel,)) is not None


def test_a_write_still_in_flight_keeps_its_slot() -> None:
    clock = Clock()
    channel = WriteBudget(1, 1.0, clock=clock)
    charge = budget.try_spend_spare((channel,))
    clock.now += 5.0  # long past the window, but the request has not reached the platform yet
    assert budget.try_spend_spare((channel,)) is None
    charge.complete()
    clock.now += 1.1
    assert budget.try_spend_spare((channel,)) is not None


def test_a_reserved_final_write_is_kept_from_interim_edits() -> None:
    clock = Clock()
    edits = WriteBudget(2, 5.0, clock=clock)
    assert budget.try_reserve((edits,)) and budget.try_reserve((edits,))
    assert not budget.try_reserve((edits,))  # a third reply would have to hold its text
    assert budget.try_spend_spare((edits,)) is None  # no interim edit may take a final's slot
    assert edits.seconds_until_free() == 0.0  # but the finals can go at once


def test_a_budget_that_never_refuses_a_reply_gives_interim_edits_only_what_finals_leave() -> None:
    clock = Clock()
    status = WriteBudget(10, 1.0, admission=False, clock=clock)
    for _ in range(6):
        assert budget.try_reserve((status,))
    spare = 0
    while charge := budget.try_spend_spare((status,)):
        charge.complete()
        spare += 1
    assert spare == 4  # 6 of 10 stay free for the six finals
    for _ in range(24):
        assert budget.try_reserve((status,))  # never refused, even past the limit
    clock.now += 1.1
    assert budget.try_spend_spare((status,)) is None


async def test_replies_that_all_end_together_land_their_finals_at_once() -> None:
    # Forty replies streaming against a global 50/s: interim edits use what is left, and
    # however they fell, the forty finals at the end find forty free slots.
    clock = Clock()
    global_ = WriteBudget(50, 1.0, max_streaming=50, clock=clock)
    for _ in range(40):
        assert budget.try_reserve((global_,))
    interim = 0
    for _ in range(60):  # six seconds of every reply trying an interim edit every 0.1 s
        for _ in range(40):
            if charge := budget.try_spend_spare((global_,)):
                charge.complete()
                interim += 1
        clock.now += 0.1
    assert interim == 60  # ten a second
    waits = []
    for _ in range(40):
        waits.append(global_.seconds_until_free())
        (await budget.spend((global_,), reserved=True)).complete()
    assert max(waits) == 0.0


def test_an_interim_edit_waits_exactly_until_the_finals_room_and_one_more_slot_is_free() -> None:
    clock = Clock()
    edits = WriteBudget(5, 5.0, clock=clock)
    assert budget.try_reserve((edits,)) and budget.try_reserve((edits,))
    for _ in range(3):  # the three interim edits the two finals leave, one a second
        charge = budget.try_spend_spare((edits,))
        assert charge is not None
        charge.complete()
        clock.now += 1.0
    assert budget.try_spend_spare((edits,)) is None
    # The first of them (at 100.0) leaves the window at 105.0; it is 103.0 now.
    assert budget.seconds_until_spare((edits,)) == 2.0
    clock.now += 2.0
    assert budget.try_spend_spare((edits,)) is not None


def test_when_every_slot_is_kept_for_finals_interim_edits_look_again_only_a_second_later() -> None:
    # Fifty replies streaming against a global 50/s: no interim edit is possible until one of
    # them is done, so their renderers are not woken fifty times a second to find that out.
    clock = Clock()
    global_ = WriteBudget(50, 1.0, max_streaming=50, clock=clock)
    for _ in range(50):
        assert budget.try_reserve((global_,))
    assert budget.seconds_until_spare((global_,)) == 1.0
    budget.release((global_,))
    assert budget.seconds_until_spare((global_,)) == 0.0


def test_a_slow_request_counts_from_when_it_finished() -> None:
    clock = Clock()
    channel = WriteBudget(1, 5.0, clock=clock)
    charge = budget.try_spend_spare((channel,))
    assert charge is not None
    clock.now += 3.0  # the request waited on a busy loop before it went out
    charge.complete()
    clock.now += 4.0  # 7 s after charging, 4 s after it reached the platform
    assert budget.try_spend_spare((channel,)) is None
    clock.now += 1.1
    assert budget.try_spend_spare((channel,)) is not None


def _burst_over_a_route(
    way_there: float, way_back: float, *, late_there: float = 0.04, late_back: float = 0.01, writes: int = 1000
) -> list[float]:
    """When each write of a burst against Discord's global 50/s reaches the platform, when every
    request spends up to `late_there` more on the way there (queued in a busy process or network)
    and up to `late_back` more on the way back."""
    rng, order, clock = random.Random(7), itertools.count(), Clock()
    global_ = WriteBudget(50, 1.0, clock=clock)
    arrivals: list[float] = []
    answers: list[tuple[float, int, budget.Charge]] = []
    while len(arrivals) < writes:
        while len(arrivals) < writes and (charge := budget.try_spend_spare((global_,))):
            arrivals.append(clock.now + way_there + rng.uniform(0, late_there))
            heapq.heappush(answers, (arrivals[-1] + way_back + rng.uniform(0, late_back), next(order), charge))
        looks_again = clock.now + max(global_.seconds_until_free(), 0.001)
        if answers and answers[0][0] <= looks_again:
            clock.now, _, charge = heapq.heappop(answers)
            charge.complete(answered=True)
        else:
            clock.now = looks_again
    return sorted(arrivals)


def _most_in_one_second(arrivals: list[float]) -> int:
    return max(bisect.bisect_left(arrivals, at + 1.0) - index for index, at in enumerate(arrivals))


def test_a_burst_over_a_slow_route_loses_little_to_the_delay_and_never_trips_the_limit() -> None:
    # 1,000 writes at 50 a second take 19 s from the first to the last. 50 ms each way: counted
    # from its answer, each write would leave its slot idle for the round trip (21.5 s in all),
    # and from its arrival for the next write's way there (20.6 s).
    arrivals = _burst_over_a_route(0.05, 0.05)
    assert _most_in_one_second(arrivals) <= 50
    assert arrivals[-1] - arrivals[0] < 20.0


@pytest.mark.parametrize(("way_there", "way_back"), [(0.08, 0.02), (0.1, 0.0), (0.0, 0.1)])
def test_a_burst_over_a_lopsided_route_never_trips_the_limit(way_there: float, way_back: float) -> None:
    assert _most_in_one_second(_burst_over_a_route(way_there, way_back)) <= 50


@pytest.mark.parametrize(("late_there", "late_back"), [(0.0, 0.05), (0.01, 0.1), (0.1, 0.1)])
def test_a_burst_over_a_route_with_erratic_answers_never_trips_the_limit(late_there: float, late_back: float) -> None:
    arrivals = _burst_over_a_route(0.05, 0.05, late_there=late_there, late_back=late_back)
    assert _most_in_one_second(arrivals) <= 50


async def test_an_urgent_write_waits_for_the_window_instead_of_failing() -> None:
    channel = WriteBudget(1, 0.2)
    (await budget.spend((channel,))).complete()
    waited = await _timed(budget.spend((channel,)))
    assert 0.15 < waited < 1.0


async def _timed(awaitable) -> float:  # type: ignore[no-untyped-def]
    import time

    started = time.monotonic()
    await awaitable
    return time.monotonic() - started


def test_a_global_budget_streams_up_to_its_rate_and_holds_the_rest() -> None:
    clock = Clock()
    global_ = WriteBudget(5, 1.0, max_streaming=5, clock=clock)
    for _ in range(5):  # a busy second
        charge = budget.try_spend_spare((global_,))
        assert charge is not None
        charge.complete()
    admitted = [budget.try_reserve((global_,)) for _ in range(7)]
    assert admitted == [True] * 5 + [False] * 2  # admitted though the window is full right now
    budget.release((global_,))
    assert budget.try_reserve((global_,))
