"""The usage ledger (bot.usage.ledger) against the real Redis and a Redis Cluster: tokens and cost add up per
day, person, scope and model and expire after the retention; a budget is never overspent by concurrent turns of two
processes, a settled turn frees what it didn't use, a dead process's hold lapses; /forget-me deletes a person's counts
and keeps their server's totals."""

from __future__ import annotations

import asyncio
import calendar
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from bot.state.redis_client import RedisClient, close, connect
from bot.usage.days import DAY_SECONDS, day_of, day_window, last_days, month_so_far, month_window
from bot.usage.ledger import UsageLedger
from bot.usage.totals import ModelUsage, Usage, UsageTotals, micro_dollars
from fakes.harness.processes import REDIS_URL
from tests.conftest import OwnRedis
from tests.system.cluster import OwnCluster

SERVER, OTHER_SERVER = "discord:1", "discord:2"
ALICE, BOB = "discord:42", "discord:43"
MISTRAL, LLAMA = "mistralai/Mistral-7B-Instruct-v0.3", "llama3:8b"  # an Ollama id has a colon
DAY1 = calendar.timegm((2025, 6, 1, 12, 0, 0))  # noon UTC
DAY2 = DAY1 + DAY_SECONDS


def usage(
    person: str = ALICE,
    *,
    scope: str = SERVER,
    model: str = MISTRAL,
    prompt: int = 100,
    completion: int = 50,
    cost: float | None = 0.001,
    at: float = DAY1,
) -> Usage:
    return Usage("discord", scope, person, model, prompt, completion, cost, at)


def indexing() -> Usage:
    """The server's knowledge indexed: the embedding model's input, no person's, no answer."""
    return replace(usage("", model="all-minilm-l6-v2", prompt=300, completion=0, cost=None), turns=0)


@pytest.fixture
async def client() -> AsyncIterator[RedisClient]:
    opened = connect(REDIS_URL, cluster=False)
    yield opened
    await close(opened)


@pytest.fixture
def ledger(client: RedisClient, key_prefix: str) -> UsageLedger:
    # Long enough that the fixed days above (2025) are still kept.
    return UsageLedger(client, key_prefix, retention_days=100_000)


async def record_some(ledger: UsageLedger) -> None:
    await asyncio.gather(
        ledger.record(usage()),
        ledger.record(usage(prompt=10, completion=5, cost=0.0001)),
        ledger.record(usage(model=LLAMA, prompt=1000, completion=500, cost=None)),  # no price: tokens only
        ledger.record(usage(BOB, prompt=7, completion=3)),
        ledger.record(usage(at=DAY2, prompt=1, completion=1, cost=0.5)),
        ledger.record(usage(scope=OTHER_SERVER, prompt=20, completion=20, cost=None)),
    )


async def test_counts_add_up_per_day_person_scope_and_model(ledger: UsageLedger) -> None:
    await record_some(ledger)
    day1, day2 = day_of(DAY1), day_of(DAY2)
    assert (day1, day2) == ("2025-06-01", "2025-06-02")

    alice_day1 = await ledger.totals(ALICE, [day1], kind="person")
    assert alice_day1 == UsageTotals(
        prompt_tokens=100 + 10 + 1000 + 20,
        completion_tokens=50 + 5 + 500 + 20,
        turns=4,
        cost_usd=0.0011,  # summed in micro-dollars: exact
        unpriced_turns=2,
        by_model={
            LLAMA: ModelUsage(1000, 500, 1, None),
            MISTRAL: ModelUsage(130, 75, 3, 0.0011),
        },
    )
    both_days = await ledger.totals(ALICE, [day1, day2], kind="person")
    assert (both_days.tokens, both_days.turns, both_days.cost_usd) == (1707, 5, 0.5011)
    assert both_days.by_model[MISTRAL].tokens == 205 + 2

    server = await ledger.totals(SERVER, [day1, day2], kind="scope")
    assert (server.prompt_tokens, server.completion_tokens, server.turns) == (1118, 559, 5)
    assert server.cost_usd == 0.5021
    assert server.by_model[MISTRAL].turns == 4
    other = await ledger.totals(OTHER_SERVER, [day1], kind="scope")
    assert (other.tokens, other.by_model[MISTRAL].cost_usd, other.unpriced_turns) == (40, None, 1)

    assert await ledger.totals(SERVER, [day1], kind="person") == UsageTotals()  # a scope is not a person
    assert await ledger.totals(ALICE, ["2025-05-31"], kind="person") == UsageTotals()
    assert await ledger.top_people(SERVER, [day1, day2]) == [(ALICE, 1667), (BOB, 10)]
    assert await ledger.top_people(SERVER, [day1, day2], n=1) == [(ALICE, 1667)]
    assert await ledger.top_people(OTHER_SERVER, [day2]) == []


async def test_a_turns_writes_ride_on_the_callers_pipeline(client: RedisClient, ledger: UsageLedger) -> None:
    async with client.pipeline(transaction=False) as pipe:
        pipe.ping()  # the caller's own commands
        ledger.add_to(pipe, usage(scope=""))  # a DM: no server
        await pipe.execute()
    totals = await ledger.totals(ALICE, [day_of(DAY1)], kind="person")
    assert (totals.tokens, totals.cost_usd) == (150, 0.001)


async def test_the_counts_expire_after_the_retention(client: RedisClient, key_prefix: str) -> None:
    ledger = UsageLedger(client, key_prefix, retention_days=3)
    now = time.time()
    await ledger.record(usage(at=now))
    await ledger.record(usage(at=now - 10 * DAY_SECONDS))  # beyond the retention already: not kept
    keys = [key async for key in client.scan_iter(match=f"{key_prefix}*")]
    assert (
        len(keys) == 6
    )  # today's: the person's and the scope's day, the top people; the person's two indexes, the scope's
    today_end = calendar.timegm(time.strptime(day_of(now), "%Y-%m-%d")) + DAY_SECONDS
    for key in keys:
        ttl = await client.ttl(key)
        assert today_end - now + 3 * DAY_SECONDS - 2 <= ttl <= today_end - now + 3 * DAY_SECONDS + 1, key
    old_day = day_of(now - 10 * DAY_SECONDS)
    assert await ledger.totals(ALICE, [old_day], kind="person") == UsageTotals()


async def test_fifty_turns_of_two_processes_at_once_get_exactly_the_ten_that_fit(
    client: RedisClient, key_prefix: str
) -> None:
    other = connect(REDIS_URL, cluster=False)  # a second process's connections
    try:
        processes = [UsageLedger(client, key_prefix), UsageLedger(other, key_prefix)]
        window = day_window()
        key = f"person:{ALICE}:{window.label}"
        outcomes = await asyncio.gather(
            *(processes[n % 2].holds.reserve(key, 10, 1, window.ends_in, f"turn-{n}", 30) for n in range(50))
        )
        assert sum(outcome.ok for outcome in outcomes) == 10
        refused = [outcome for outcome in outcomes if not outcome.ok]
        assert {(outcome.used, outcome.reserved, outcome.limit) for outcome in refused} == {(0.0, 10.0, 10.0)}
        assert all(0 < outcome.resets_in <= window.ends_in for outcome in outcomes)
        standing = await processes[1].holds.standing(key, 10)
        assert (standing.ok, standing.used, standing.reserved, standing.left) == (False, 0.0, 10.0, 0.0)
    finally:
        await close(other)


async def test_settling_for_less_than_was_held_frees_the_rest(ledger: UsageLedger) -> None:
    window = month_window()
    key = f"scope:{SERVER}:{window.label}"
    first = await ledger.holds.reserve(key, 10, 6, window.ends_in, "a", 30)
    assert (first.ok, first.used, first.reserved, first.left) == (True, 0.0, 6.0, 4.0)
    assert not (await ledger.holds.reserve(key, 10, 6, window.ends_in, "b", 30)).ok
    again = await ledger.holds.reserve(key, 10, 6, window.ends_in, "a", 30)  # a retry replaces its own hold
    assert (again.ok, again.reserved) == (True, 6.0)

    assert await ledger.holds.settle(key, "a", 2) == 2.0
    second = await ledger.holds.reserve(key, 10, 6, window.ends_in, "b", 30)
    assert (second.ok, second.used, second.reserved) == (True, 2.0, 6.0)
    third = await ledger.holds.reserve(key, 10, 3, window.ends_in, "c", 30)
    assert (third.ok, third.used, third.reserved, third.left) == (False, 2.0, 6.0, 2.0)
    assert await ledger.holds.settle(key, "b", 0) == 2.0  # a failed turn used nothing
    assert (await ledger.holds.reserve(key, 10, 3, window.ends_in, "c", 30)).ok


async def test_a_budget_lives_until_its_window_ends(client: RedisClient, ledger: UsageLedger, key_prefix: str) -> None:
    assert (await ledger.holds.reserve("k", 10, 1, 120, "a", 30)).resets_in == 120
    budget_ttl = [await client.ttl(key) async for key in client.scan_iter(match=f"{key_prefix}usage:budget:*")]
    assert budget_ttl == [120]  # the counter, with its holds in it (each lapsing in 30 s)
    # A window already over (its counter gone) takes nothing more, unless the settling turn says when it ends.
    assert await ledger.holds.settle("over", "x", 5) == 0.0
    assert (await ledger.holds.standing("over", 10)).used == 0.0
    assert await ledger.holds.settle("unreserved", "y", 5, window_seconds=60) == 5.0
    assert (await ledger.holds.standing("unreserved", 10)).resets_in == 60


async def test_a_hold_never_settled_lapses(ledger: UsageLedger) -> None:
    held = await ledger.holds.reserve("k", 10, 10, 3600, "crashed", 1)  # its process died before settling
    assert held.ok
    assert not (await ledger.holds.reserve("k", 10, 1, 3600, "next", 1)).ok
    await asyncio.sleep(1.05)
    later = await ledger.holds.reserve("k", 10, 1, 3600, "next", 30)
    assert (later.ok, later.used, later.reserved) == (True, 0.0, 1.0)
    assert await ledger.holds.settle("k", "crashed", 4) == 4.0  # it did answer after all: what it used counts


async def test_forget_person_deletes_their_counts_and_keeps_the_servers_totals(
    client: RedisClient, ledger: UsageLedger, key_prefix: str
) -> None:
    await record_some(ledger)
    days = [day_of(DAY1), day_of(DAY2)]
    before = await ledger.totals(SERVER, days, kind="scope")

    assert await ledger.forget_person(ALICE) == 2
    assert await ledger.totals(ALICE, days, kind="person") == UsageTotals()
    assert [key async for key in client.scan_iter(match=f"{key_prefix}usage:person:{{{ALICE}}}*")] == []
    assert await ledger.totals(SERVER, days, kind="scope") == before
    assert await ledger.top_people(SERVER, days) == [(BOB, 10)]
    assert await ledger.top_people(OTHER_SERVER, days) == []
    assert (await ledger.totals(BOB, days, kind="person")).tokens == 10
    assert await ledger.forget_person(ALICE) == 0

    await ledger.forget_scope(SERVER)
    assert await ledger.totals(SERVER, days, kind="scope") == UsageTotals()
    assert (await ledger.totals(BOB, days, kind="person")).tokens == 10  # a person's own counts stay


async def test_a_servers_own_use_counts_in_its_totals_and_in_no_persons(
    client: RedisClient, ledger: UsageLedger, key_prefix: str
) -> None:
    await record_some(ledger)
    days = [day_of(DAY1), day_of(DAY2)]
    before = await ledger.totals(SERVER, days, kind="scope")
    await ledger.record(indexing())
    after = await ledger.totals(SERVER, days, kind="scope")
    assert after.by_model["all-minilm-l6-v2"] == ModelUsage(300, 0, 0, None)
    assert (after.tokens, after.turns) == (before.tokens + 300, before.turns)
    assert await ledger.top_people(SERVER, days) == [(ALICE, 1667), (BOB, 10)]
    assert [key async for key in client.scan_iter(match=f"{key_prefix}usage:person:{{}}*")] == []
    await ledger.record(usage("", scope="", prompt=5))  # the deployment's own (its folder): the counters alone
    assert [key async for key in client.scan_iter(match=f"{key_prefix}usage:scope:{{}}*")] == []
    await ledger.forget_scope(SERVER)
    assert await ledger.totals(SERVER, days, kind="scope") == UsageTotals()


async def test_on_a_redis_cluster_counting_budgets_and_forgetting_work(
    redis_cluster: OwnCluster, key_prefix: str
) -> None:
    clients = [connect(redis_cluster.url, cluster=True), connect(redis_cluster.url, cluster=True)]
    try:
        ledger, other = (UsageLedger(client, key_prefix, retention_days=100_000) for client in clients)
        async with clients[0].pipeline(transaction=False) as pipe:  # a turn's writes with the caller's own
            pipe.set(f"{key_prefix}elsewhere", "1")
            ledger.add_to(pipe, usage())
            await pipe.execute()
        await record_some(ledger)
        days = [day_of(DAY1), day_of(DAY2)]
        assert (await other.totals(ALICE, days, kind="person")).tokens == 1707 + 150
        assert (await other.totals(SERVER, days, kind="scope")).tokens == 1677 + 150
        assert await other.top_people(SERVER, days) == [(ALICE, 1817), (BOB, 10)]
        await ledger.record(indexing())  # its own use
        assert (await other.totals(SERVER, days, kind="scope")).tokens == 1677 + 150 + 300
        assert await other.top_people(SERVER, days) == [(ALICE, 1817), (BOB, 10)]
        assert len({port for port, keys in redis_cluster.keys_by_node(f"{key_prefix}*").items() if keys}) > 1

        outcomes = await asyncio.gather(
            *((ledger, other)[n % 2].holds.reserve(f"person:{BOB}", 10, 1, 3600, f"t{n}", 30) for n in range(50))
        )
        assert sum(outcome.ok for outcome in outcomes) == 10
        granted = next(n for n, outcome in enumerate(outcomes) if outcome.ok)
        assert await ledger.holds.settle(f"person:{BOB}", f"t{granted}", 0) == 0.0
        assert (await other.holds.reserve(f"person:{BOB}", 10, 1, 3600, "t50", 30)).ok

        assert await other.forget_person(ALICE) == 2
        assert await ledger.totals(ALICE, days, kind="person") == UsageTotals()
        assert (await ledger.totals(SERVER, days, kind="scope")).tokens == 1677 + 150 + 300
        assert await ledger.top_people(SERVER, days) == [(BOB, 10)]
        await ledger.forget_scope(SERVER)
        assert await ledger.totals(SERVER, days, kind="scope") == UsageTotals()
    finally:
        for client in clients:
            await close(client)  # the cluster, keys and all, is removed at the end of the run


def test_days_and_windows_are_utc() -> None:
    late = calendar.timegm((2024, 2, 29, 23, 59, 30))  # a leap day, 30 s before midnight
    assert day_of(late) == "2024-02-29"
    assert day_window(late).label == "2024-02-29" and day_window(late).ends_in == 30
    assert month_window(late).label == "2024-02" and month_window(late).ends_in == 30
    assert month_window(late - DAY_SECONDS).ends_in == DAY_SECONDS + 30
    assert last_days(3, late) == ["2024-02-27", "2024-02-28", "2024-02-29"]
    assert month_so_far(calendar.timegm((2024, 3, 3, 0, 0, 0))) == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert micro_dollars(0.5) == 500_000


async def test_a_day_hash_has_the_documented_fields(client: RedisClient, ledger: UsageLedger, key_prefix: str) -> None:
    """What the module's docstring says, as an operator reads it with redis-cli."""
    await ledger.record(usage(cost=0.25))
    fields = await client.hgetall(f"{key_prefix}usage:person:{{{ALICE}}}:2025-06-01")
    assert fields == {
        "prompt": "100",
        "completion": "50",
        "turns": "1",
        "cost_micro": "250000",
        f"m:{MISTRAL}:prompt": "100",
        f"m:{MISTRAL}:completion": "50",
        f"m:{MISTRAL}:turns": "1",
        f"m:{MISTRAL}:cost_micro": "250000",
    }


async def test_counts_and_budgets_survive_a_redis_restart_with_their_expiry(own_redis: OwnRedis) -> None:
    opened = connect(own_redis.url, cluster=False)
    ledger = UsageLedger(opened, "restart:", retention_days=90)
    now = time.time()
    await ledger.record(usage(at=now))
    window = day_window(now)
    granted = await ledger.holds.reserve(f"person:{ALICE}:{window.label}", 1_000, 400, window.ends_in, "turn-1", 900)
    assert granted.ok
    await ledger.holds.settle(f"person:{ALICE}:{window.label}", "turn-1", 150)
    await close(opened)

    own_redis.stop()
    own_redis.start()  # the append-only file brings everything back
    opened = connect(own_redis.url, cluster=False)
    try:
        ledger = UsageLedger(opened, "restart:", retention_days=90)
        today = await ledger.totals(ALICE, [day_of(now)], kind="person")
        assert (today.prompt_tokens, today.completion_tokens, today.turns) == (100, 50, 1)
        standing = await ledger.holds.standing(f"person:{ALICE}:{window.label}", 1_000)
        assert (standing.used, standing.reserved) == (150, 0)
        kept = await opened.ttl(f"restart:usage:person:{{{ALICE}}}:{day_of(now)}")
        assert 90 * DAY_SECONDS < kept <= 91 * DAY_SECONDS  # retention: 90 days after the day ends
    finally:
        await close(opened)
