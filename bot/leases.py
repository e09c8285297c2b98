"""Rate budgets of the whole bot, shared by its processes through Redis.

A platform's limit (Discord's 50 requests per second per bot, a channel's 5 per 5 s, a Slack
workspace's tier) binds every process of the bot together. Each process leases a share of such
a limit from Redis and spends it locally, exactly as a lone process spends the whole limit (see
bot.budget): the leases of all processes never add up to more than the limit, so the processes
together never exceed it. A write costs no Redis round trip; a lease is asked for when a process
needs more than it holds, renewed now and then, and given back when idle or when another
process is waiting for it. A process that dies returns its lease when the lease expires.

In Redis each limit is one hash (one key, so it works on Redis Cluster): a field per process,
"<slots> <wanted> <expiry in ms>".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from bot.budget import WriteBudget
from bot.redis_client import REDIS_ERRORS

log = structlog.get_logger(__name__)

# Leases are looked at this often, and a process short of slots asks again this often: a
# write waits at most about this long for a slot another process gives back (a person would
# not notice 50 ms).
POLL_SECONDS = 0.05
# A lease in use is renewed this often. Its process starts writes on it until USABLE_SECONDS
# after the last renewal (one renewal may fail), and Redis keeps it for the limit's window plus
# LAPSE_SECONDS: a write started in time has a second to land and leave the window before
# another process can be granted its slot.
RENEW_SECONDS = 1.0
USABLE_SECONDS = 2.0
LAPSE_SECONDS = 3.0
# The longest a budget's first use waits for Redis to grant its lease; a healthy Redis answers
# in a millisecond, and past this the budget goes on without it (as with Redis down).
FIRST_LEASE_SECONDS = 1.0
# A lease not renewed within this is given up on for now: the process keeps to its last share
# (a Redis that hangs would otherwise stop every write of the bot after USABLE_SECONDS).
REFRESH_SECONDS = 1.0

_LEASE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local me, wanted, held = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local limit, ttl_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local others, sharing, waiting = 0, 1, 0
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local who = entries[i]
  local slots, want, expiry = string.match(entries[i + 1], '(%d+) (%d+) (%d+)')
  if tonumber(expiry) <= now_ms then
    redis.call('HDEL', KEYS[1], who)
  elseif who ~= me then
    others = others + tonumber(slots)
    if tonumber(want) > 0 then sharing = sharing + 1 end
    if tonumber(want) > tonumber(slots) then waiting = 1 end
  end
end
local grant = math.min(wanted, limit - others)
if waiting == 1 then
  grant = math.min(grant, math.max(1, math.floor(limit / sharing)))
end
grant = math.max(grant, held)
if grant == 0 and wanted == 0 then
  redis.call('HDEL', KEYS[1], me)
else
  redis.call('HSET', KEYS[1], me, grant .. ' ' .. wanted .. ' ' .. (now_ms + ttl_ms))
  redis.call('PEXPIRE', KEYS[1], ttl_ms)
end
return {grant, waiting, sharing}
"""

# (held, wanted): writes this process holds in the window now, and how many it would like.
Demand = Callable[[], tuple[int, int]]


class Lease:
    """This process's share of one bot-wide limit."""

    def __init__(self, pool: BudgetLeases, name: str, limit: int, window: float, demand: Demand) -> None:
        self.name = name
        self.limit = limit
        self.window = window
        self.slots = 0
        self._pool = pool
        self._demand = demand
        self._ttl = window + LAPSE_SECONDS
        self._renewed_at = -float("inf")
        self._next_ask = 0.0
        self._others_waiting = False
        self._sharing = 1
        self.answered = asyncio.Event()  # Redis has answered (or failed to) once

    def usable(self) -> int:
        """Slots this process may start writes on now."""
        if time.monotonic() > self._renewed_at + USABLE_SECONDS:
            return self._fallback() if self._pool.unreachable else 0
        return self.slots

    def need_more(self) -> None:
        """A write is waiting for a slot: ask Redis soon instead of at the next renewal."""
        self._pool.wake(self)

    def due(self, now: float) -> bool:
        held, wanted = self._demand()
        if wanted == 0 and self.slots == 0:
            return False
        if now >= self._renewed_at + RENEW_SECONDS:
            return True  # renew before it lapses (or give an idle lease back)
        if wanted > self.slots:
            return now >= self._next_ask
        return self._others_waiting and self.slots > max(held, wanted)

    async def refresh(self, client: Any, script: Any, process: str) -> None:
        held, wanted = self._demand()
        asked = time.monotonic()
        grant, waiting, sharing = await script(
            keys=[self.name], args=[process, wanted, held, self.limit, int(self._ttl * 1000)], client=client
        )
        self.slots, self._others_waiting, self._sharing = int(grant), bool(waiting), int(sharing)
        self._renewed_at = asked
        self._next_ask = asked + POLL_SECONDS
        self.answered.set()

    def idle(self) -> bool:
        return self.slots == 0 and self._demand()[1] == 0

    def _fallback(self) -> int:
        """Without Redis: this process's last share of the limit (at least one write)."""
        return max(1, self.slots, self.limit // self._sharing)


class BudgetLeases:
    """The leases of one process, kept by one background task."""

    def __init__(self, client: Any, key_prefix: str, process: str) -> None:
        self._client = client
        self._script = client.register_script(_LEASE)
        self._prefix = f"{key_prefix}budget:"
        self._process = process
        self._leases: set[Lease] = set()
        self._woken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.unreachable = False

    def lease(self, name: str, limit: int, window: float, demand: Demand) -> Lease:
        lease = Lease(self, f"{self._prefix}{{{name}}}", limit, window, demand)
        self.wake(lease)
        return lease

    def wake(self, lease: Lease) -> None:
        self._leases.add(lease)
        self._woken.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._keep())

    async def aclose(self) -> None:
        """Give every lease back, so the other processes get the slots at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        held = [lease for lease in self._leases if lease.slots]
        for lease in held:
            lease.slots = 0
        try:
            await asyncio.gather(*(self._client.hdel(lease.name, self._process) for lease in held))
        except REDIS_ERRORS:
            pass  # they lapse by themselves

    async def _keep(self) -> None:
        while self._leases:
            try:
                await asyncio.wait_for(self._woken.wait(), POLL_SECONDS)
            except asyncio.TimeoutError:
                pass
            self._woken.clear()
            now = time.monotonic()
            due = [lease for lease in self._leases if lease.due(now)]
            if due:
                await self._refresh(due)
            self._forget_idle()

    async def _refresh(self, due: list[Lease]) -> None:
        results = await asyncio.gather(
            *(asyncio.wait_for(lease.refresh(self._client, self._script, self._process), REFRESH_SECONDS)
              for lease in due),
            return_exceptions=True,
        )  # fmt: skip
        failures = [result for result in results if isinstance(result, Exception)]
        for failure in failures:
            if not isinstance(failure, (*REDIS_ERRORS, asyncio.TimeoutError)):
                log.error("rate_budget_lease_failed", exc_info=failure)
        for lease in due:
            lease.answered.set()  # a write waiting for the first answer goes on without one
        if bool(failures) != self.unreachable:
            self.unreachable = bool(failures)
            if failures:
                log.warning("rate_budgets_unshared", error=f"{type(failures[0]).__name__}: {failures[0]}",
                            message="Redis is unreachable: each process keeps to its last share of every limit")  # fmt: skip
            else:
                log.info("rate_budgets_shared_again")

    def _forget_idle(self) -> None:
        for lease in [lease for lease in self._leases if lease.idle()]:
            self._leases.discard(lease)


class SharedBudgets:
    """Makes the write budgets of the adapters: shared by every process of the bot when there is
    Redis (`leases`), this process's alone otherwise (history in memory: one process)."""

    def __init__(self, leases: BudgetLeases | None = None) -> None:
        self._leases = leases

    def budget(self, name: str, limit: int, window: float, **options: Any) -> WriteBudget:
        """`name` identifies the platform's bucket across processes ("discord:global")."""
        budget = WriteBudget(limit, window, **options)
        if self._leases is not None:
            budget.lease = self._leases.lease(name, limit, window, budget.demand)
            budget.free()  # in use from now: its lease is asked for at once
        return budget

    async def ready(self, budgets: Iterable[WriteBudget], timeout: float = FIRST_LEASE_SECONDS) -> None:
        """Wait until the first lease of each budget is known: a budget tried once, without
        waiting (say, for a "thinking…" status), would otherwise find no room at first."""
        leases = [budget.lease for budget in budgets if budget.lease is not None]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(lease.answered.wait() for lease in leases)), timeout)

    async def aclose(self) -> None:
        if self._leases is not None:
            await self._leases.aclose()
