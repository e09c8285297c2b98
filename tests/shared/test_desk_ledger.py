"""The help desk's figures (adapters.shared.desk_ledger) for a scripted week and month, against the real Redis: what
`/knowledge gaps` says of each period, each outcome counted once in Prometheus however many processes note it, an
unmarked thread no longer solved, threads older than the month left out and deleted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from adapters.shared.desk_ledger import DAY_SECONDS, DeskLedger, describe_desk, figures
from bot.metrics import Metrics
from bot.state.redis_client import RedisClient, close, connect
from fakes.harness.processes import REDIS_URL

NOW = 1_800_000_000.0
HOUR = 3_600.0
SCOPE = "discord:1"


@pytest.fixture
async def redis() -> AsyncIterator[RedisClient]:
    client = connect(REDIS_URL, cluster=False)
    yield client
    await close(client)


def counted(metrics: Metrics, outcome: str) -> float:
    return (
        metrics.registry.get_sample_value("bot_helpdesk_threads_total", {"platform": "discord", "outcome": outcome})
        or 0
    )


async def scripted(ledger: DeskLedger) -> None:
    """A week: three questions answered (one solved with the bot's answer after 30 min, one by a person after 3 h,
    one handed to people after the answer), one handed off unanswered, one not answered; and one question 20 days
    ago, solved with the bot's answer after 1 h; and one 40 days ago."""
    day = NOW - 2 * DAY_SECONDS
    await ledger.asked(SCOPE, "help", "t1", day, "answered", day + 4)
    await ledger.solved(SCOPE, "help", "t1", day, by_bot=True, at=day + 0.5 * HOUR)
    await ledger.asked(SCOPE, "help", "t2", day + HOUR, "answered", day + HOUR + 6)
    await ledger.solved(SCOPE, "help", "t2", day + HOUR, by_bot=False, at=day + 4 * HOUR)
    await ledger.asked(SCOPE, "help", "t3", day + 2 * HOUR, "answered", day + 2 * HOUR + 8)
    await ledger.handed(SCOPE, "help", "t3", day + 3 * HOUR)
    await ledger.asked(SCOPE, "forum", "t4", day + 5 * HOUR, "handed", day + 5 * HOUR)
    await ledger.asked(SCOPE, "help", "t5", day + 6 * HOUR, "unanswered", day + 6 * HOUR)
    month = NOW - 20 * DAY_SECONDS
    await ledger.asked(SCOPE, "help", "t6", month, "answered", month + 2)
    await ledger.solved(SCOPE, "help", "t6", month, by_bot=True, at=month + HOUR)
    old = NOW - 40 * DAY_SECONDS
    await ledger.asked(SCOPE, "help", "t7", old, "answered", old + 2)


async def test_a_scripted_week_and_month_give_the_reports_figures(redis: RedisClient, key_prefix: str) -> None:
    metrics = Metrics()
    ledger = DeskLedger(redis, key_prefix, "discord", metrics, lambda: None)
    await scripted(ledger)
    threads = await ledger.threads(SCOPE, NOW)
    week, month = figures(threads, 7, NOW), figures(threads, 30, NOW)
    assert (week.asked, week.answered, week.solved_by_bot, week.solved_by_person) == (5, 3, 1, 1)
    assert (week.handed_off, week.unanswered) == (2, 1)
    assert week.to_answer == 6.0 and week.to_solved == pytest.approx(1.75 * HOUR)  # medians of (4, 6, 8), (0.5, 3 h)
    assert (month.asked, month.answered, month.solved_by_bot, month.to_solved) == (6, 4, 2, HOUR)
    said = describe_desk([week, month], lambda text: f"**{text}**")
    assert said.splitlines() == [
        "**Help desk**",
        "Last 7 days: 5 questions; the bot answered 3, 1 solved with its answer, 1 solved by a person, 2 handed to "
        "people, 1 not answered. Median time to the bot's answer 6 s and to solved 1.8 h.",
        "Last 30 days: 6 questions; the bot answered 4, 2 solved with its answer, 1 solved by a person, 2 handed to "
        "people, 1 not answered. Median time to the bot's answer 5 s and to solved 60 min.",
    ]
    assert "t7" not in {thread.thread for thread in threads}  # over the month: left out, and deleted
    assert "t7" not in {thread.thread for thread in await ledger.threads(SCOPE, NOW - 40 * DAY_SECONDS)}


async def test_each_outcome_is_counted_once_however_many_processes_note_it(redis: RedisClient, key_prefix: str) -> None:
    other = connect(REDIS_URL, cluster=False)
    mine_metrics, their_metrics = Metrics(), Metrics()
    try:
        mine = DeskLedger(redis, key_prefix, "discord", mine_metrics, lambda: None)
        theirs = DeskLedger(other, key_prefix, "discord", their_metrics, lambda: None)
        await asyncio.gather(*(one.asked(SCOPE, "help", "t1", NOW, "answered", NOW + 3) for one in (mine, theirs) * 5))
        await asyncio.gather(*(one.handed(SCOPE, "help", "t1", NOW + 60) for one in (mine, theirs) * 5))
    finally:
        await close(other)
    for outcome in ("asked", "answered", "handed_off"):
        assert counted(mine_metrics, outcome) + counted(their_metrics, outcome) == 1, outcome


async def test_an_unmarked_thread_is_no_longer_solved(redis: RedisClient, key_prefix: str) -> None:
    metrics = Metrics()
    ledger = DeskLedger(redis, key_prefix, "discord", metrics, lambda: None)
    await ledger.asked(SCOPE, "help", "t1", NOW - HOUR, "answered", NOW - HOUR + 5)
    await ledger.solved(SCOPE, "help", "t1", NOW - HOUR, by_bot=True, at=NOW)
    await ledger.unsolved(SCOPE, "t1")
    [thread] = await ledger.threads(SCOPE, NOW)
    assert (thread.solved, thread.by, thread.answered) == (0.0, "", NOW - HOUR + 5)
    assert figures([thread], 7, NOW).solved_by_bot == 0
    assert counted(metrics, "solved_by_bot") == 1  # a counter counts marks: it doesn't go back
    assert metrics.registry.get_sample_value("bot_helpdesk_time_to_solved_seconds_count", {"platform": "discord"}) == 1
