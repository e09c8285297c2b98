"""Budgets' check-and-hold, shared by every process: `reserve_all` checks a turn's budgets and holds its likely amount
of each in one Lua script, all or none, so concurrent turns (in any process) never overspend a budget together;
`settle_all` then swaps the holds for what the turn really used. A hold not settled (its process died) lapses after
its time. A budget's counter lives until its window (a day, a month) ends; /forget-me leaves it (else forgetting
would reset one's budget).

The holds (and settles) of the turns that ask at the same moment go to Redis together, in one script call
(bot.usage.batch; on a Cluster, whose budgets live in different slots, each budget is one call).

Key: {prefix}usage:budget:{<key>}   hash: used, reserved, h:<hold id> → "<amount> <lapses at, ms of Redis's clock>"
Amounts are whole units of the caller's choice, the same for a key's every call: tokens, or micro-dollars.
Commands raise STORE_UNAVAILABLE (a ReplyFailure) when Redis can't serve them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio.cluster import RedisCluster

from bot.state.redis_client import RedisClient, hash_tag, served
from bot.usage.batch import Run, ScriptBatch

T = TypeVar("T")
LOOK = "-"  # the hold id of a look that holds nothing

# Check and hold, turn after turn. KEYS: every turn's budgets' hashes, in order. ARGV: per turn, one string
# "<hold id> <hold ms> <budgets> <limit> <amount> <window s> …" → per turn: granted, then per budget: fits, used,
# reserved, seconds until it resets. A turn is held in all its budgets or none; lapsed holds are looked for only when
# a budget seems to have no room; the same id again replaces its hold (a retry, a tool round's growth). Everything is
# passed in a few strings: redis-py packs each argument, and that is most of a call's cost to the bot.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function held(value)
  if not value then return 0 end
  return tonumber(string.match(value, '^(%S+)'))
end
local function drop_lapsed(hash)
  local fields = redis.call('HGETALL', hash)
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 2) == 'h:' then
      local amount, lapses = string.match(fields[i + 1], '^(%S+) (%S+)$')
      if tonumber(lapses) <= now then
        redis.call('HINCRBY', hash, 'reserved', -tonumber(amount))
        redis.call('HDEL', hash, fields[i])
      end
    end
  end
end
local out, k = {}, 0
for a = 1, #ARGV do
  local spec = {}
  for word in string.gmatch(ARGV[a], '%S+') do spec[#spec + 1] = word end
  local id, hold, budgets = spec[1], tonumber(spec[2]), tonumber(spec[3])
  local all, results, ttls = 1, {}, {}
  for b = 1, budgets do
    local hash = KEYS[k + b]
    local limit, amount, window = tonumber(spec[1 + 3 * b]), tonumber(spec[2 + 3 * b]), tonumber(spec[3 + 3 * b])
    local got = redis.call('HMGET', hash, 'used', 'reserved', 'h:' .. id)
    local used, reserved, before = tonumber(got[1] or '0'), tonumber(got[2] or '0'), held(got[3])
    if id == '-' or used + reserved - before + amount > limit then
      drop_lapsed(hash)
      got = redis.call('HMGET', hash, 'used', 'reserved', 'h:' .. id)
      used, reserved, before = tonumber(got[1] or '0'), tonumber(got[2] or '0'), held(got[3])
    end
    local ttl = redis.call('TTL', hash)
    ttls[b] = ttl
    local resets = window
    if ttl > 0 then resets = ttl end
    local fits = 1
    if id ~= '-' and used + reserved - before + amount > limit then fits, all = 0, 0 end
    results[b] = {fits, used, reserved, resets, before}
  end
  if all == 1 and id ~= '-' then
    for b = 1, budgets do
      local hash, amount, window = KEYS[k + b], tonumber(spec[2 + 3 * b]), tonumber(spec[3 + 3 * b])
      redis.call('HSET', hash, 'h:' .. id, amount .. ' ' .. (now + hold))
      results[b][3] = redis.call('HINCRBY', hash, 'reserved', amount - results[b][5])
      if ttls[b] < 0 then redis.call('EXPIRE', hash, window) end
    end
  end
  out[#out + 1] = all
  for b = 1, budgets do
    for i = 1, 4 do out[#out + 1] = results[b][i] end
  end
  k = k + budgets
end
return out
"""

# Swap holds for what was used. KEYS: every turn's budgets' hashes, in order. ARGV: per turn, one string
# "<hold id> <budgets> <actual> <window s> …" (window 0: unknown) → what each budget has used now. A budget whose
# window is over (its hash gone) is left alone, unless its window is given: then it starts again with what was used.
_SETTLE = """
local out, k = {}, 0
for a = 1, #ARGV do
  local spec = {}
  for word in string.gmatch(ARGV[a], '%S+') do spec[#spec + 1] = word end
  local id, budgets = spec[1], tonumber(spec[2])
  for b = 1, budgets do
    local hash, actual, window = KEYS[k + b], tonumber(spec[1 + 2 * b]), tonumber(spec[2 + 2 * b])
    local used = 0
    if redis.call('EXISTS', hash) == 1 or window > 0 then
      if redis.call('EXISTS', hash) == 0 then
        redis.call('HSET', hash, 'used', 0)
        redis.call('EXPIRE', hash, window)
      end
      local value = redis.call('HGET', hash, 'h:' .. id)
      if value then
        redis.call('HINCRBY', hash, 'reserved', -tonumber(string.match(value, '^(%S+)')))
        redis.call('HDEL', hash, 'h:' .. id)
      end
      used = redis.call('HINCRBY', hash, 'used', actual)
    end
    out[#out + 1] = used
  end
  k = k + budgets
end
return out
"""


@dataclass(frozen=True)
class Hold:
    """One budget to hold some of: its key (naming the budget and its window, e.g. "person:discord:42:2025-06-01"),
    its limit, the amount, and seconds until its window ends (its counter then expires)."""

    key: str
    limit: float
    amount: float
    window_seconds: int


@dataclass(frozen=True)
class Settled:
    """What one budget's hold is swapped for: the amount used, and seconds until its window ends (0: unknown)."""

    key: str
    actual: float
    window_seconds: int = 0


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


class BudgetHolds:
    def __init__(self, redis: RedisClient, key_prefix: str, on_error: Callable[[], object] = lambda: None) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}usage:budget:"
        self._on_error = on_error
        together = not isinstance(redis, RedisCluster)  # one call may hold budgets of any slot
        self._reserve = ScriptBatch(self._script(_RESERVE), together=together)
        self._settle = ScriptBatch(self._script(_SETTLE), together=together)
        self._cluster = not together

    async def reserve(
        self, key: str, limit: float, amount: float, window_seconds: int, reservation_id: str, hold_seconds: float
    ) -> ReserveOutcome:
        """Hold `amount` of budget `key` if what was used, what is held and `amount` stay within `limit`."""
        [outcome] = await self.reserve_all([Hold(key, limit, amount, window_seconds)], reservation_id, hold_seconds)
        return outcome

    async def reserve_all(
        self, holds: Sequence[Hold], reservation_id: str, hold_seconds: float
    ) -> list[ReserveOutcome]:
        """Hold some of each budget, all or none (each outcome's `ok` then says whether it had room), atomically
        across processes; the hold lapses after `hold_seconds` unless settled first. On a Cluster each budget is
        held on its own (a budget that had room keeps its hold when another hadn't: the caller settles it)."""
        if not reservation_id or " " in reservation_id or reservation_id == LOOK:
            raise ValueError("a reservation needs an id (to settle it by), without spaces")
        hold_ms = max(1, round(hold_seconds * 1000))
        if self._cluster:
            answers = await asyncio.gather(*(self._ask([one], reservation_id, hold_ms) for one in holds))
            found = [one for answer in answers for one in answer]
        else:
            found = await self._ask(holds, reservation_id, hold_ms)
        granted = all(fits for fits, *_ in found)
        return [
            ReserveOutcome(granted and fits, used, reserved, float(one.limit), resets)
            for (fits, used, reserved, resets), one in zip(found, holds, strict=True)
        ]

    async def standing(self, key: str, limit: float) -> ReserveOutcome:
        """Budget `key` as it stands (lapsed holds dropped), holding nothing: `ok` if anything is left; `resets_in`
        0 if the window has no counter yet."""
        [(_, used, reserved, resets)] = await self._ask([Hold(key, limit, 0, 0)], LOOK, 0)
        return ReserveOutcome(used + reserved < round(limit), used, reserved, float(limit), resets)

    async def settle(self, key: str, reservation_id: str, actual: float, *, window_seconds: int = 0) -> float:
        """Drop the hold and add `actual` (0: the turn used nothing) to what budget `key` used; what it has used now.
        A window already over is left alone, unless `window_seconds` (the window's end) starts it again."""
        [used] = await self.settle_all([Settled(key, actual, window_seconds)], reservation_id)
        return used

    async def settle_all(self, settled: Sequence[Settled], reservation_id: str) -> list[float]:
        """`settle` for several budgets at once (on a Cluster, one call each)."""
        if not settled:
            return []
        if not self._cluster:
            return await self._settle_group(settled, reservation_id)
        answers = await asyncio.gather(*(self._settle_group([one], reservation_id) for one in settled))
        return [used for answer in answers for used in answer]

    async def _ask(self, holds: Sequence[Hold], hold_id: str, hold_ms: int) -> list[tuple[bool, float, float, int]]:
        numbers = " ".join(f"{round(one.limit)} {round(one.amount)} {max(1, int(one.window_seconds))}" for one in holds)
        keys = [self._key(one.key) for one in holds]
        flat = await self._reserve.call(keys, [f"{hold_id} {hold_ms} {len(holds)} {numbers}"], 1 + 4 * len(holds))
        return [_budget_answer(flat, 1 + 4 * b) for b in range(len(holds))]

    async def _settle_group(self, settled: Sequence[Settled], reservation_id: str) -> list[float]:
        numbers = " ".join(f"{round(one.actual)} {max(0, int(one.window_seconds))}" for one in settled)
        keys = [self._key(one.key) for one in settled]
        return [
            float(used)
            for used in await self._settle.call(keys, [f"{reservation_id} {len(settled)} {numbers}"], len(settled))
        ]

    def _script(self, source: str) -> Run:
        script = self._redis.register_script(source)

        async def run(keys: list[str], args: list[str]) -> list[Any]:
            return list(await self._run(script(keys=keys, args=args)))

        return run

    def _key(self, key: str) -> str:
        return f"{self._prefix}{hash_tag(key)}"

    async def _run(self, command: Awaitable[T]) -> T:
        return await served(command, "usage_store_unavailable", self._on_error)


def _budget_answer(flat: Sequence[Any], at: int) -> tuple[bool, float, float, int]:
    """One budget's fits, used, reserved and seconds until it resets, from the script's answer at `at`."""
    return bool(flat[at]), float(flat[at + 1]), float(flat[at + 2]), int(flat[at + 3])
