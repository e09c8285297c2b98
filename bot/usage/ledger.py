"""Who used how much, kept in Redis: tokens and cost per day (UTC), per person, per scope (a server or workspace) and
per model, for `/usage` and the budgets; and the budgets' check-and-reserve, shared by every process.

Counting: each answered turn is one `Usage`. `add_to(pipe, usage)` queues its writes on a pipeline the caller sends
anyway (no round trip of its own); `record(usage)` sends them on a pipeline of its own. Pipelines must not be
transactional on a Redis Cluster (`transaction=False`): a turn's keys are in two slots, the person's and the scope's.
The day counters expire USAGE_RETENTION_DAYS after their day ends.

Budgets: `reserve` checks a budget and holds the turn's likely amount in one Lua script, so concurrent turns (in any
process) never overspend it together; `settle` then swaps the hold for what the turn really used. A hold not settled
(its process died) lapses after `hold_seconds`. A budget's counter (`used`) is not the day counters above: it lives
until its window (a day, a month) ends, and /forget-me leaves it (else forgetting would reset one's budget).

Keys (on a Cluster, keys read or written together share a hash tag):
  {prefix}usage:person:{<person>}:<YYYY-MM-DD>      hash: the person's counts that day (fields below)
  {prefix}usage:person:{<person>}:days              set: the person's day keys, for /forget-me
  {prefix}usage:person:{<person>}:tops              set: the scopes' top-people keys they are in, for /forget-me
  {prefix}usage:scope:{<scope>}:<YYYY-MM-DD>        hash: the scope's counts that day
  {prefix}usage:scope:{<scope>}:top:<YYYY-MM-DD>    sorted set: person → tokens they used there that day
  {prefix}usage:scope:{<scope>}:top:scratch         sorted set: top_people's scratch (deleted in the same script)
  {prefix}usage:scope:{<scope>}:days                set: the scope's day and top-people keys, for forget_scope
  {prefix}usage:budget:{<key>}                      hash: used, reserved, hold:<id> → each hold's amount
  {prefix}usage:budget:{<key>}:holds                sorted set: hold id → when it lapses (ms, Redis's clock)
A day hash's fields: prompt, completion (tokens), turns, cost_micro (millionths of a US dollar, priced turns only),
unpriced (turns of a model without a price); and per model m:<model>:prompt, m:<model>:completion, m:<model>:turns,
m:<model>:cost_micro.

Commands raise STORE_UNAVAILABLE (a ReplyFailure) when Redis can't serve them.
"""

from __future__ import annotations

import asyncio
import calendar
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, TypeAlias, TypeVar

from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster

from bot.redis_client import RedisClient, hash_tag, served

T = TypeVar("T")
UsagePipeline: TypeAlias = Pipeline | ClusterPipeline
Kind = Literal["person", "scope"]
DAY_SECONDS = 86_400
MICRO = 1_000_000  # micro-dollars in a US dollar
MODEL_FIELD = "m:"  # a day hash's per-model fields: m:<model>:<count>
COUNTS = ("prompt", "completion", "turns", "cost_micro", "unpriced")

# Check budgets and hold an amount of each, atomically: all of them or none. KEYS: each budget's hash and its holds.
# ARGV: per budget, limit, amount, seconds until the window ends, hold id, hold ms ("" and 0: only look) →
# {granted, then per budget: fits, used, reserved, seconds until it resets}. Lapsed holds are dropped first; the same
# id again replaces its hold (a retry, or a turn's hold grown for its next tool round).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function drop_lapsed(hash, holds)
  local lapsed = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
  for i = 1, #lapsed do
    local held = redis.call('HGET', hash, 'hold:' .. lapsed[i])
    if held then
      redis.call('HINCRBY', hash, 'reserved', -tonumber(held))
      redis.call('HDEL', hash, 'hold:' .. lapsed[i])
    end
  end
  if #lapsed > 0 then redis.call('ZREMRANGEBYSCORE', holds, '-inf', now) end
end
local out, all, previous = {}, 1, {}
for b = 1, #KEYS / 2 do
  local hash, holds, a = KEYS[2 * b - 1], KEYS[2 * b], 5 * (b - 1)
  local limit, amount, id = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 4]
  local got = redis.call('HMGET', hash, 'used', 'reserved', 'hold:' .. id)
  local used, reserved, before = tonumber(got[1] or '0'), tonumber(got[2] or '0'), tonumber(got[3] or '0')
  -- Lapsed holds are looked for only when they could matter: when the budget seems to have no room left.
  if id == '' or used + reserved - before + amount > limit then
    drop_lapsed(hash, holds)
    got = redis.call('HMGET', hash, 'used', 'reserved', 'hold:' .. id)
    used, reserved, before = tonumber(got[1] or '0'), tonumber(got[2] or '0'), tonumber(got[3] or '0')
  end
  local ttl = redis.call('TTL', hash)
  local resets = tonumber(ARGV[a + 3])
  if ttl > 0 then resets = ttl end
  local fits = 1
  if id ~= '' and used + reserved - before + amount > limit then fits, all = 0, 0 end
  previous[b] = {before, ttl}
  out[#out + 1], out[#out + 2], out[#out + 3], out[#out + 4] = fits, used, reserved, resets
end
if all == 1 then
  for b = 1, #KEYS / 2 do
    local hash, holds, a = KEYS[2 * b - 1], KEYS[2 * b], 5 * (b - 1)
    local amount, window, id, hold = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), ARGV[a + 4], tonumber(ARGV[a + 5])
    if id ~= '' then
      redis.call('HSET', hash, 'hold:' .. id, amount)
      out[4 * b - 1] = redis.call('HINCRBY', hash, 'reserved', amount - previous[b][1])
      local ttl = previous[b][2]
      if ttl < 0 then
        redis.call('EXPIRE', hash, window)
        ttl = window
      end
      redis.call('ZADD', holds, now + hold, id)
      -- the holds are kept as long as the counts they are in
      redis.call('PEXPIRE', holds, math.max(ttl * 1000, hold))
    end
  end
end
table.insert(out, 1, all)
return out
"""

# Swap a hold for what was used. KEYS: the budget's hash, its holds. ARGV: hold id, actual, seconds until the window
# ends (0: unknown) → {used, reserved}. With the window over (the hash gone) and no window given, nothing is added.
_SETTLE = """
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  if tonumber(ARGV[3]) <= 0 then return {0, 0} end
  redis.call('HSET', KEYS[1], 'used', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
local held = redis.call('HGET', KEYS[1], 'hold:' .. ARGV[1])
if held then
  redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(held))
  redis.call('HDEL', KEYS[1], 'hold:' .. ARGV[1])
end
local used = redis.call('HINCRBY', KEYS[1], 'used', ARGV[2])
return {used, tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')}
"""

# The top `n` people over some days. KEYS: the scope's top sets of those days, then its scratch key. ARGV: n.
_TOP = """
local scratch = KEYS[#KEYS]
redis.call('ZUNIONSTORE', scratch, #KEYS - 1, unpack(KEYS, 1, #KEYS - 1))
local top = redis.call('ZREVRANGE', scratch, 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
redis.call('DEL', scratch)
return top
"""


@dataclass(frozen=True)
class Usage:
    """One answered turn: where (platform; scope: the server or workspace, e.g. "discord:123", "" for none such as a
    DM), who (person, e.g. "discord:42"), which model (its id), the tokens it read and wrote, what it cost in USD
    (None: the model has no price) and when (unix time)."""

    platform: str
    scope: str
    person: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    at: float
    turns: int = 1  # answers it counts as (0: a call that answered nothing, e.g. the help channels' router)


@dataclass(frozen=True)
class ModelUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    turns: int = 0
    cost_usd: float | None = None  # None: none of its turns had a price

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class UsageTotals:
    """A person's or a scope's usage over some days. `cost_usd` sums the priced turns only; `unpriced_turns` says how
    many turns it leaves out (their models have no price)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    turns: int = 0
    cost_usd: float = 0.0
    unpriced_turns: int = 0
    by_model: Mapping[str, ModelUsage] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ReserveOutcome:
    """A budget check: `ok` if the amount is held; `used` (settled) and `reserved` (held, this hold included when
    granted) in the budget's units; `limit` as asked; `resets_in` seconds until its window ends."""

    ok: bool
    used: float
    reserved: float
    limit: float
    resets_in: int

    @property
    def left(self) -> float:
        return max(0.0, self.limit - self.used - self.reserved)


@dataclass(frozen=True)
class Hold:
    """One budget to hold some of: its key, its limit, the amount, seconds until its window ends (as `reserve`)."""

    key: str
    limit: float
    amount: float
    window_seconds: int


@dataclass(frozen=True)
class Window:
    """A budget's window: `label` to put in its key ("2025-06-01", "2025-06"), `ends_in` seconds."""

    label: str
    ends_in: int


class UsageLedger:
    def __init__(
        self,
        redis: RedisClient,
        key_prefix: str,
        *,
        retention_days: int = 90,
        on_error: Callable[[], object] = lambda: None,
    ) -> None:
        """`retention_days`: USAGE_RETENTION_DAYS. `on_error` is called (to count it) whenever Redis can't serve a
        command."""
        self._redis = redis
        self._prefix = f"{key_prefix}usage:"
        self._retention = max(1, int(retention_days)) * DAY_SECONDS
        self._on_error = on_error
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)
        self._top = redis.register_script(_TOP)

    # Counting.

    def add_to(self, pipe: UsagePipeline, usage: Usage, *, now: float | None = None) -> None:
        """Queue `usage`'s writes on `pipe` (not transactional on a Cluster); the caller executes it."""
        prompt, completion = max(0, int(usage.prompt_tokens)), max(0, int(usage.completion_tokens))
        cost = None if usage.cost_usd is None else max(0, round(usage.cost_usd * MICRO))
        day = day_of(usage.at)
        expires = _day_end(day) + self._retention
        keys = [self._person_day(usage.person, day)]
        if usage.scope:
            keys.append(self._scope_day(usage.scope, day))
        model = f"{MODEL_FIELD}{usage.model}:"
        for key in keys:
            pipe.hincrby(key, "prompt", prompt)
            pipe.hincrby(key, "completion", completion)
            pipe.hincrby(key, "turns", usage.turns)
            pipe.hincrby(key, f"{model}prompt", prompt)
            pipe.hincrby(key, f"{model}completion", completion)
            pipe.hincrby(key, f"{model}turns", usage.turns)
            if cost is None:
                pipe.hincrby(key, "unpriced", usage.turns)
            else:
                pipe.hincrby(key, "cost_micro", cost)
                pipe.hincrby(key, f"{model}cost_micro", cost)
            pipe.expireat(key, expires)
        # The indexes outlive every key they name (a late record of an older day included).
        index_expires = max(expires, _day_end(day_of(time.time() if now is None else now)) + self._retention)
        pipe.sadd(self._person_days(usage.person), keys[0])
        pipe.expireat(self._person_days(usage.person), index_expires)
        if usage.scope:
            top = self._scope_top(usage.scope, day)
            pipe.zincrby(top, prompt + completion, usage.person)
            pipe.expireat(top, expires)
            pipe.sadd(self._person_tops(usage.person), top)
            pipe.expireat(self._person_tops(usage.person), index_expires)
            pipe.sadd(self._scope_days(usage.scope), keys[1], top)
            pipe.expireat(self._scope_days(usage.scope), index_expires)

    async def record(self, usage: Usage) -> None:
        """Count `usage` with a round trip of its own."""
        await self.record_all([usage])

    async def record_all(self, usages: Sequence[Usage]) -> None:
        """Count `usages` (a turn's, one per model) in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for usage in usages:
                self.add_to(pipe, usage)
            await self._run(pipe.execute())

    async def totals(self, person_or_scope: str, days: Sequence[str], *, kind: Kind) -> UsageTotals:
        """A person's or a scope's usage (`kind` says which: their ids may look alike) summed over `days`
        ("YYYY-MM-DD", see last_days, month_so_far), by model; one round trip."""
        if not days:
            return UsageTotals()
        key = self._scope_day if kind == "scope" else self._person_day
        async with self._redis.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hgetall(key(person_or_scope, day))
            found: list[Mapping[Any, Any]] = await self._run(pipe.execute())
        return _summed(found)

    async def each_day(self, person_or_scope: str, days: Sequence[str], *, kind: Kind) -> list[UsageTotals]:
        """A person's or a scope's usage on each of `days`, in their order; one round trip."""
        key = self._scope_day if kind == "scope" else self._person_day
        async with self._redis.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hgetall(key(person_or_scope, day))
            found: list[Mapping[Any, Any]] = await self._run(pipe.execute()) if days else []
        return [_summed([fields]) for fields in found]

    async def top_people(self, scope: str, days: Sequence[str], n: int = 10) -> list[tuple[str, int]]:
        """The `n` people of `scope` who used the most tokens over `days`, most first: (person, tokens)."""
        if not days or n < 1:
            return []
        keys = [*(self._scope_top(scope, day) for day in days), self._scope_top(scope, "scratch")]
        flat: list[Any] = await self._run(self._top(keys=keys, args=[n]))
        return [(_text(flat[i]), round(float(flat[i + 1]))) for i in range(0, len(flat), 2)]

    async def forget_person(self, person: str) -> int:
        """/forget-me: delete the person's day counters and take them out of every scope's top people (the scopes'
        totals keep what they used). How many of their days went. Budgets' counters stay until their window ends."""
        days_key, tops_key = self._person_days(person), self._person_tops(person)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.smembers(days_key)
            pipe.smembers(tops_key)
            days, tops = await self._run(pipe.execute())
        day_keys = sorted(_text(key) for key in days)
        async with self._redis.pipeline(transaction=False) as pipe:
            for top in sorted(_text(key) for key in tops):  # each in its scope's slot
                pipe.zrem(top, person)
            if day_keys:
                pipe.exists(*day_keys)
            pipe.delete(*day_keys, days_key, tops_key)  # one slot: the person's
            answers = await self._run(pipe.execute())
        return int(answers[-2]) if day_keys else 0

    async def forget_scope(self, scope: str) -> None:
        """The bot left the server or workspace: its day counters and top people go (the people's own stay)."""
        index = self._scope_days(scope)
        keys = sorted(_text(key) for key in await self._run(self._redis.smembers(index)))
        await self._run(self._redis.delete(*keys, index))  # one slot: the scope's

    # Budgets. Amounts are whole units of the caller's choice, the same for a key's every call: tokens, or
    # micro-dollars (config.usage.Budget.units); fractions are rounded.

    async def reserve(
        self, key: str, limit: float, amount: float, window_seconds: int, reservation_id: str, hold_seconds: int
    ) -> ReserveOutcome:
        """Hold `amount` of budget `key` if what was used, what is held and `amount` stay within `limit`, atomically
        across processes. `key` names the budget and its window (e.g. f"person:{person}:{day_window(now).label}");
        `window_seconds` is how long until that window ends (Window.ends_in): the budget's counter then expires. The
        hold lapses after `hold_seconds` unless settled first; reserving the same id again replaces its hold."""
        [outcome] = await self.reserve_all([Hold(key, limit, amount, window_seconds)], reservation_id, hold_seconds)
        return outcome

    async def reserve_all(self, holds: Sequence[Hold], reservation_id: str, hold_seconds: int) -> list[ReserveOutcome]:
        """`reserve` for several budgets at once, all or none (each outcome's `ok` then says whether it had room):
        one script on one Redis; on a Cluster, whose budgets live in different slots, one each, sent at once (each
        exact, but one that had room keeps its hold when another hadn't: the caller settles it)."""
        if not reservation_id:
            raise ValueError("a reservation needs an id (to settle it by)")
        hold = _hold_ms(hold_seconds)
        if not isinstance(self._redis, RedisCluster):
            found = await self._reserve_group(holds, reservation_id, hold)
        else:
            answers = await asyncio.gather(*(self._reserve_group([one], reservation_id, hold) for one in holds))
            found = [one for answer in answers for one in answer]  # in the order of `holds`
        granted = all(fits for fits, _ in found)
        return [
            ReserveOutcome(granted and fits, used, reserved, float(one.limit), resets)
            for (fits, (used, reserved, resets)), one in zip(found, holds, strict=True)
        ]

    async def _reserve_group(
        self, holds: Sequence[Hold], reservation_id: str, hold_ms: int
    ) -> list[tuple[bool, tuple[float, float, int]]]:
        keys: list[str] = []
        args: list[str | int] = []
        for one in holds:
            keys += self._budget_keys(one.key)
            args += [_whole(one.limit), _whole(one.amount), max(1, int(one.window_seconds)), reservation_id, hold_ms]
        flat = await self._run(self._reserve(keys=keys, args=args))
        return [
            (bool(flat[i]), (float(flat[i + 1]), float(flat[i + 2]), int(flat[i + 3]))) for i in range(1, len(flat), 4)
        ]

    async def settle(self, key: str, reservation_id: str, actual: float, *, window_seconds: int = 0) -> float:
        """Drop the hold and add `actual` (0: the turn used nothing, e.g. it failed) to what budget `key` used; what
        it has used now. A window already over is left alone, unless `window_seconds` (the window's end, for a turn
        that was never reserved) starts it."""
        args: list[str | int] = [reservation_id, _whole(actual), max(0, int(window_seconds))]
        used, _ = await self._run(self._settle(keys=self._budget_keys(key), args=args))
        return float(used)

    async def standing(self, key: str, limit: float) -> ReserveOutcome:
        """Budget `key` as it stands (lapsed holds dropped), holding nothing: `ok` if anything is left; `resets_in`
        0 if the window has no counter yet."""
        args: list[str | int] = [_whole(limit), 0, 0, "", 0]
        _, _, used, reserved, resets = await self._run(self._reserve(keys=self._budget_keys(key), args=args))
        ok = float(used) + float(reserved) < _whole(limit)
        return ReserveOutcome(ok, float(used), float(reserved), float(limit), int(resets))

    # Keys.

    def _person_day(self, person: str, day: str) -> str:
        return f"{self._prefix}person:{hash_tag(person)}:{day}"

    def _person_days(self, person: str) -> str:
        return f"{self._prefix}person:{hash_tag(person)}:days"

    def _person_tops(self, person: str) -> str:
        return f"{self._prefix}person:{hash_tag(person)}:tops"

    def _scope_day(self, scope: str, day: str) -> str:
        return f"{self._prefix}scope:{hash_tag(scope)}:{day}"

    def _scope_top(self, scope: str, day: str) -> str:
        return f"{self._prefix}scope:{hash_tag(scope)}:top:{day}"

    def _scope_days(self, scope: str) -> str:
        return f"{self._prefix}scope:{hash_tag(scope)}:days"

    def _budget_keys(self, key: str) -> list[str]:
        base = f"{self._prefix}budget:{hash_tag(key)}"
        return [base, f"{base}:holds"]

    async def _run(self, command: Awaitable[T]) -> T:
        return await served(command, "usage_store_unavailable", self._on_error)


# Days and windows, in UTC.


def day_of(at: float) -> str:
    """The UTC day of unix time `at`: "YYYY-MM-DD"."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def last_days(count: int, now: float | None = None) -> list[str]:
    """The last `count` days, today (UTC) included, oldest first."""
    today = datetime.fromtimestamp(time.time() if now is None else now, UTC).date()
    return [(today - timedelta(days=back)).isoformat() for back in range(max(0, count) - 1, -1, -1)]


def week_so_far(now: float | None = None) -> list[str]:
    """The days of this week (UTC, from Monday) up to today, oldest first."""
    today = datetime.fromtimestamp(time.time() if now is None else now, UTC).date()
    return [(today - timedelta(days=back)).isoformat() for back in range(today.weekday(), -1, -1)]


def month_so_far(now: float | None = None) -> list[str]:
    """The days of this month (UTC) up to today, oldest first."""
    today = datetime.fromtimestamp(time.time() if now is None else now, UTC).date()
    return [today.replace(day=day).isoformat() for day in range(1, today.day + 1)]


def day_window(now: float | None = None) -> Window:
    """Today's window (UTC), for a daily budget."""
    at = time.time() if now is None else now
    day = day_of(at)
    return Window(day, max(1, math.ceil(_day_end(day) - at)))


def month_window(now: float | None = None) -> Window:
    """This month's window (UTC), for a monthly budget."""
    at = time.time() if now is None else now
    today = datetime.fromtimestamp(at, UTC).date()
    last = calendar.monthrange(today.year, today.month)[1]
    end = _day_end(today.replace(day=last).isoformat())
    return Window(today.strftime("%Y-%m"), max(1, math.ceil(end - at)))


def micro_dollars(usd: float) -> int:
    """US dollars in the budgets' money unit."""
    return round(usd * MICRO)


def _day_end(day: str) -> int:
    """Unix time of the end of `day` (the next day's UTC midnight)."""
    start = date.fromisoformat(day)
    return calendar.timegm(start.timetuple()) + DAY_SECONDS


def _summed(days: Sequence[Mapping[Any, Any]]) -> UsageTotals:
    totals: dict[str, int] = dict.fromkeys(COUNTS, 0)
    models: dict[str, dict[str, int]] = {}
    for fields in days:
        for raw_name, raw_value in fields.items():
            name, value = _text(raw_name), int(_text(raw_value))
            if name.startswith(MODEL_FIELD):
                model, _, count = name[len(MODEL_FIELD) :].rpartition(":")
                counts = models.setdefault(model, {})
                counts[count] = counts.get(count, 0) + value
            elif name in totals:
                totals[name] += value
    by_model = {
        model: ModelUsage(
            prompt_tokens=counts.get("prompt", 0),
            completion_tokens=counts.get("completion", 0),
            turns=counts.get("turns", 0),
            cost_usd=counts["cost_micro"] / MICRO if "cost_micro" in counts else None,
        )
        for model, counts in sorted(models.items())
    }
    return UsageTotals(
        prompt_tokens=totals["prompt"],
        completion_tokens=totals["completion"],
        turns=totals["turns"],
        cost_usd=totals["cost_micro"] / MICRO,
        unpriced_turns=totals["unpriced"],
        by_model=by_model,
    )


def _whole(amount: float) -> int:
    return round(amount)


def _hold_ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
