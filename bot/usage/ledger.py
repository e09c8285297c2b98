"""Who used how much, kept in Redis: tokens and cost per day (UTC), per person, per scope (a server or workspace) and
per model, for `/usage`; and, in `holds` (bot.usage.holds), the budgets' check-and-hold, shared by every process.

Counting: each model a turn used is one `Usage` (bot.usage.totals). `record_all(usages)` writes them: on one Redis in
one script call shared by the turns counting at that moment (bot.usage.batch); on a Cluster through `add_to(pipe,
usage)`, which queues the writes on a pipeline (not transactional: a turn's keys are in two slots, the person's and
the scope's). The day counters expire USAGE_RETENTION_DAYS after their day ends.

Keys (on a Cluster, keys read or written together share a hash tag):
  {prefix}usage:person:{<person>}:<YYYY-MM-DD>      hash: the person's counts that day (fields below)
  {prefix}usage:person:{<person>}:days              set: the person's day keys, for /forget-me
  {prefix}usage:person:{<person>}:tops              set: the scopes' top-people keys they are in, for /forget-me
  {prefix}usage:scope:{<scope>}:<YYYY-MM-DD>        hash: the scope's counts that day
  {prefix}usage:scope:{<scope>}:top:<YYYY-MM-DD>    sorted set: person → tokens they used there that day
  {prefix}usage:scope:{<scope>}:top:scratch         sorted set: top_people's scratch (deleted in the same script)
  {prefix}usage:scope:{<scope>}:days                set: the scope's day and top-people keys, for forget_scope
A day hash's fields: prompt, completion (tokens), turns, cost_micro (millionths of a US dollar, priced turns only),
unpriced (turns of a model without a price); and per model m:<model>:prompt, m:<model>:completion, m:<model>:turns,
m:<model>:cost_micro.

Commands raise STORE_UNAVAILABLE (a ReplyFailure) when Redis can't serve them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, TypeAlias, TypeVar

from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster

from bot.state.redis_client import RedisClient, hash_tag, served
from bot.usage.batch import ScriptBatch
from bot.usage.days import DAY_SECONDS, day_end, day_of
from bot.usage.holds import BudgetHolds
from bot.usage.totals import MICRO, MODEL_FIELD, Usage, UsageTotals, summed_days

T = TypeVar("T")
UsagePipeline: TypeAlias = Pipeline | ClusterPipeline
Kind = Literal["person", "scope"]

# Count usage records, as `add_to` does, in one call. KEYS: per record its person's day hash and day index, and with
# a scope its scope's day hash, top-people set, the person's tops index and the scope's index; a record of no person
# (a server's own) has its scope's day hash and index alone. ARGV: per record, one
# string of tab-separated fields: keys (2 or 6), prompt, completion, turns, cost in micro-dollars ("-": no price),
# the day's expiry, the indexes' expiry (unix time), model, person. Answers nothing.
_COUNT = """
local k = 0
for a = 1, #ARGV do
  local f = {}
  for part in string.gmatch(ARGV[a], '[^\t]+') do f[#f + 1] = part end
  local keys, prompt, completion, turns = tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
  local cost, expires, kept, model, person = f[5], tonumber(f[6]), tonumber(f[7]), 'm:' .. f[8] .. ':', f[9]
  local days = {KEYS[k + 1]}
  if keys == 6 then days[2] = KEYS[k + 3] end
  for _, day in ipairs(days) do
    redis.call('HINCRBY', day, 'prompt', prompt)
    redis.call('HINCRBY', day, 'completion', completion)
    redis.call('HINCRBY', day, 'turns', turns)
    redis.call('HINCRBY', day, model .. 'prompt', prompt)
    redis.call('HINCRBY', day, model .. 'completion', completion)
    redis.call('HINCRBY', day, model .. 'turns', turns)
    if cost == '-' then
      redis.call('HINCRBY', day, 'unpriced', turns)
    else
      redis.call('HINCRBY', day, 'cost_micro', tonumber(cost))
      redis.call('HINCRBY', day, model .. 'cost_micro', tonumber(cost))
    end
    redis.call('EXPIREAT', day, expires)
  end
  redis.call('SADD', KEYS[k + 2], KEYS[k + 1])
  redis.call('EXPIREAT', KEYS[k + 2], kept)
  if keys == 6 then
    redis.call('ZINCRBY', KEYS[k + 4], prompt + completion, person)
    redis.call('EXPIREAT', KEYS[k + 4], expires)
    redis.call('SADD', KEYS[k + 5], KEYS[k + 4])
    redis.call('EXPIREAT', KEYS[k + 5], kept)
    redis.call('SADD', KEYS[k + 6], KEYS[k + 3], KEYS[k + 4])
    redis.call('EXPIREAT', KEYS[k + 6], kept)
  end
  k = k + keys
end
return {}
"""

# The top `n` people over some days. KEYS: the scope's top sets of those days, then its scratch key. ARGV: n.
_TOP = """
local scratch = KEYS[#KEYS]
redis.call('ZUNIONSTORE', scratch, #KEYS - 1, unpack(KEYS, 1, #KEYS - 1))
local top = redis.call('ZREVRANGE', scratch, 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
redis.call('DEL', scratch)
return top
"""


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
        self.holds = BudgetHolds(redis, key_prefix, on_error)
        counting = redis.register_script(_COUNT)

        async def count(keys: list[str], args: list[str]) -> list[Any]:
            return list(await self._run(counting(keys=keys, args=args)))

        self._counting = ScriptBatch(count)
        self._top = redis.register_script(_TOP)

    # Counting.

    def add_to(self, pipe: UsagePipeline, usage: Usage, *, now: float | None = None) -> None:
        """Queue `usage`'s writes on `pipe` (not transactional on a Cluster); the caller executes it."""
        prompt, completion = max(0, int(usage.prompt_tokens)), max(0, int(usage.completion_tokens))
        cost = None if usage.cost_usd is None else max(0, round(usage.cost_usd * MICRO))
        day = day_of(usage.at)
        expires = day_end(day) + self._retention
        keys = [self._person_day(usage.person, day)] if usage.person else []
        if usage.scope:
            keys.append(self._scope_day(usage.scope, day))
        if not keys:
            return
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
        index_expires = max(expires, day_end(day_of(time.time() if now is None else now)) + self._retention)
        if not usage.person:  # a server's own (its knowledge indexed): no person's, in no top list
            pipe.sadd(self._scope_days(usage.scope), keys[0])
            pipe.expireat(self._scope_days(usage.scope), index_expires)
            return
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
        """Count `usages` (a turn's, one per model): on one Redis in the script call of the turns counting at this
        moment (bot.usage.batch); on a Cluster, whose keys live in several slots, in one pipeline."""
        usages = [usage for usage in usages if usage.person or usage.scope]
        if not usages:
            return
        if isinstance(self._redis, RedisCluster):
            async with self._redis.pipeline(transaction=False) as pipe:
                for usage in usages:
                    self.add_to(pipe, usage)
                await self._run(pipe.execute())
            return
        now = time.time()
        parts = [self._count_part(usage, now) for usage in usages]
        await self._counting.call([key for keys, _ in parts for key in keys], [arg for _, arg in parts], 0)

    def _count_part(self, usage: Usage, now: float) -> tuple[list[str], str]:
        """`usage` as a part of _COUNT's call: its keys and its argument."""
        day = day_of(usage.at)
        expires = day_end(day) + self._retention
        kept = max(expires, day_end(day_of(now)) + self._retention)
        if usage.person:
            keys = [self._person_day(usage.person, day), self._person_days(usage.person)]
        else:  # a server's own: its day and its index of days (_COUNT's two keys: a day hash and its index)
            keys = [self._scope_day(usage.scope, day), self._scope_days(usage.scope)]
        if usage.scope and usage.person:
            keys += [
                self._scope_day(usage.scope, day),
                self._scope_top(usage.scope, day),
                self._person_tops(usage.person),
                self._scope_days(usage.scope),
            ]
        cost = "-" if usage.cost_usd is None else str(max(0, round(usage.cost_usd * MICRO)))
        prompt, completion = max(0, int(usage.prompt_tokens)), max(0, int(usage.completion_tokens))
        fields = [len(keys), prompt, completion, usage.turns, cost, expires, kept, usage.model, usage.person]
        return keys, "\t".join(str(field) for field in fields)

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
        return summed_days(found)

    async def each_day(self, person_or_scope: str, days: Sequence[str], *, kind: Kind) -> list[UsageTotals]:
        """A person's or a scope's usage on each of `days`, in their order; one round trip."""
        key = self._scope_day if kind == "scope" else self._person_day
        async with self._redis.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hgetall(key(person_or_scope, day))
            found: list[Mapping[Any, Any]] = await self._run(pipe.execute()) if days else []
        return [summed_days([fields]) for fields in found]

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
        """The bot left the server or workspace: its day counters and top people go, and the people's lists of top
        lists forget them (their own counters stay)."""
        index = self._scope_days(scope)
        keys = sorted(_text(key) for key in await self._run(self._redis.smembers(index)))
        tops = [key for key in keys if key.startswith(self._scope_top(scope, ""))]
        people: list[list[Any]] = [await self._run(self._redis.zrange(top, 0, -1)) for top in tops]
        async with self._redis.pipeline(transaction=False) as pipe:  # each person's list in its own slot
            for top, members in zip(tops, people, strict=True):
                for person in members:
                    pipe.srem(self._person_tops(_text(person)), top)
            pipe.delete(*keys, index)  # one slot: the scope's
            await self._run(pipe.execute())

    # Budgets. Amounts are whole units of the caller's choice, the same for a key's every call: tokens, or
    # micro-dollars (config.usage.Budget.units); fractions are rounded.

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

    async def _run(self, command: Awaitable[T]) -> T:
        return await served(command, "usage_store_unavailable", self._on_error)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
