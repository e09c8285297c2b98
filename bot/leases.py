"""Rate budgets of the whole bot, shared by its processes through Redis.

A platform's limit (Discord's 50 requests per second per bot, a channel's 5 per 5 s, a Slack
workspace's tier) binds every process of the bot together. Each process leases a share of such
a limit from Redis and spends it locally, exactly as a lone process spends the whole limit (see
bot.budget): the leases of all processes never add up to more than the limit, so the processes
together never exceed it. A write costs no Redis round trip; a lease is asked for when a process
needs more than it holds, renewed now and then, and given back when idle or when another
process is waiting for it. A process that dies returns its lease when the lease expires.

In Redis each limit is one hash (one key, so it works on Redis Cluster) with a field per process,
written by bot/lease.lua. A process learns of a smaller lease only when Redis's answer reaches
it, and until then it may still be writing on the larger one; so the other processes count the
larger of its last two leases until its next renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import structlog
from bot.budget import Demand, RoundTrips, WriteBudget
from bot.redis_client import REDIS_ERRORS

log = structlog.get_logger(__name__)

# Leases are looked at this often, and a process short of slots asks again this often: a
# write waits at most about this long for a slot another process gives back (a person would
# not notice 50 ms).
POLL_SECONDS = 0.05
# A process whose demand keeps growing (a burst arriving) asks again this soon after an answer:
# each ask is one Redis call, and each 50 ms saved is 50 ms sooner to someone's first words.
ASK_AGAIN_SECONDS = 0.01
# A process holding slots it does not need now (a spare for its next write, room for interim
# edits) offers them back this often while another process is short of slots, and always on a
# per-second limit (Discord's global one) that other processes write to: a thread creation
# waiting for them waits at most about this long instead of a whole window. Otherwise they go
# back at the next renewal: offers are a Redis call per limit each, so offering every Slack
# channel's spare 4 times a second cost four Slack workers a fifth more CPU per token at 200
# mentions at once, and a lone process offering its spare to nobody 20 times a second spent a
# third of its CPU on it while one reply streamed.
SPARE_SECONDS = 0.05
# A lease in use is renewed this often. Its process starts writes on it until USABLE_SECONDS
# after the last renewal (one renewal may fail), and Redis keeps it for the limit's window plus
# LAPSE_SECONDS: a write started in time has a second to land and leave the window before
# another process can be granted its slot.
RENEW_SECONDS = 1.0
USABLE_SECONDS = 2.0
LAPSE_SECONDS = 3.0
# A lease unused this long keeps only the slots of its writes still in the window, and is not
# renewed: its entry in Redis outlives them (the window and LAPSE_SECONDS after the last renewal).
# Its next write asks Redis first, a millisecond. Renewed each second instead for the minute a
# Slack post stays in its channel's window, the channels' leases of 1,000 mentions at once cost
# one worker 1,000 Redis calls a second.
QUIET_SECONDS = 1.0
# The longest a budget's first use waits for Redis to grant its lease; a healthy Redis answers
# in a millisecond, and past this the budget goes on without it (as with Redis down).
FIRST_LEASE_SECONDS = 1.0
# Redis is taken for unreachable when a lease's renewal fails, or is still unanswered after this
# long (a hung server): the process then keeps to its last share instead of stopping every
# write. A renewal that is merely slow (a process busy with a burst answers late) is waited
# for: falling back then would spend slots another process was granted, and earn 429s.
HUNG_SECONDS = 5.0

# The lease script (one atomic step in Redis) lives beside this module.
_LEASE = (Path(__file__).parent / "lease.lua").read_text()

DemandOf = Callable[[], Demand]


class Lease:
    """This process's share of one bot-wide limit."""

    def __init__(self, pool: BudgetLeases, name: str, limit: int, window: float, demand: DemandOf) -> None:
        self.name = name
        self.limit = limit
        self.window = window
        self.slots = 0
        self._pool = pool
        self._demand = demand
        self._ttl = window + LAPSE_SECONDS
        self._renewed_at = -float("inf")
        self._next_ask = 0.0
        self._sharing = 1
        self._others_short = False  # at the last renewal, another process needed more than it held
        self.others_needed = 0  # the other processes' held, reserved and waiting writes, at the last renewal
        self.renewing: asyncio.Task[None] | None = None
        self.renewed = asyncio.Event()  # set (and replaced) each time Redis answers a renewal
        self.answered = asyncio.Event()  # Redis has answered (or failed to) once

    def usable(self) -> int:
        """Slots this process may start writes on now."""
        if time.monotonic() > self._renewed_at + USABLE_SECONDS:
            return self._fallback() if self._pool.unreachable else 0
        return self.slots

    def need_more(self) -> None:
        """A write is waiting for a slot: ask Redis soon instead of at the next renewal."""
        self._pool.wake(self)

    def fair_share(self, *, round_up: bool) -> int:
        """This process's part of the limit when every process that writes wants more: all of
        it when it writes alone."""
        return -(-self.limit // self._sharing) if round_up else max(1, self.limit // self._sharing)

    def wanted(self, demand: Demand) -> int:
        """What is needed, and a slot to spare while in use: the next write needs no round trip."""
        return demand.held if self._quiet(demand) else min(self.limit, demand.needed + 1)

    def _quiet(self, demand: Demand) -> bool:
        """Unused for QUIET_SECONDS, and nothing reserved or waiting: it needs only its writes
        still in the window."""
        return demand.unused_for >= min(self.window, QUIET_SECONDS) and demand.needed == demand.held

    def due(self, now: float) -> bool:
        if self.renewing is not None:
            return False
        demand = self._demand()
        wanted = self.wanted(demand)
        if self.slots == demand.held and self._quiet(demand):
            return False  # Redis counts its writes until they leave the window; nothing more to ask
        if now >= self._renewed_at + RENEW_SECONDS:
            return True  # renew before it lapses (or give an idle lease back)
        if wanted > self.slots:
            return now >= self._next_ask
        if self.slots > max(demand.urgent, demand.kept) and (self._others_short or self._shared_per_second()):
            return now >= self._renewed_at + SPARE_SECONDS  # another process may need them now
        return False

    def _shared_per_second(self) -> bool:
        """A per-second limit (Discord's global one) that other processes wrote to at the last
        renewal: one of them may be short any moment, and a slot held spare then costs its write
        up to a second."""
        return self.window <= 1.0 and self._sharing > 1

    async def refresh(self, client: Any, script: Any, process: str) -> None:
        shrunk = await self._ask(client, script, process)
        if shrunk:
            # Tell Redis at once that this process now writes on the smaller lease: until then
            # the others count the larger one, and a write of theirs waiting for the slots this
            # process gave back would wait for its next renewal.
            await self._ask(client, script, process)

    async def _ask(self, client: Any, script: Any, process: str) -> bool:
        """One call of the lease script; True if it shrank this process's lease."""
        demand = self._demand()
        asked = time.monotonic()
        grant, sharing, others_short, others_needed = await script(keys=[self.name], client=client, args=[
            process, self.wanted(demand), demand.urgent, demand.held, demand.kept, self.limit,
            int(self._ttl * 1000), int(demand.waited * 1000), demand.needed,
        ])  # fmt: skip
        self.others_needed = int(others_needed)
        shrunk = int(grant) < self.slots
        self.slots, self._sharing, self._others_short = int(grant), int(sharing), bool(others_short)
        self._renewed_at = asked
        self._next_ask = asked + ASK_AGAIN_SECONDS
        self.answered.set()
        self.renewed.set()
        self.renewed = asyncio.Event()
        return shrunk

    async def give_back(self, client: Any, script: Any, process: str) -> None:
        """Keep only the slots of writes still in the window, until the lease lapses."""
        held = self._demand().held
        await script(keys=[self.name], client=client,
                     args=[process, 0, 0, held, held, self.limit, int(self._ttl * 1000), 0, held])  # fmt: skip

    def idle(self) -> bool:
        return self.slots == 0 and self.wanted(self._demand()) == 0

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

    def lease(self, name: str, limit: int, window: float, demand: DemandOf) -> Lease:
        lease = Lease(self, f"{self._prefix}{{{name}}}", limit, window, demand)
        self.wake(lease)
        return lease

    def wake(self, lease: Lease) -> None:
        self._leases.add(lease)
        self._woken.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._keep())

    async def aclose(self) -> None:
        """Give back every slot that no write of this process still occupies in its window (the
        platform counts those until they leave it), so the other processes get them at once."""
        tasks = [self._task, *(lease.renewing for lease in self._leases)]
        running = [task for task in tasks if task is not None]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        held = [lease for lease in self._leases if lease.slots]
        for lease in held:
            lease.slots = 0
        try:
            await asyncio.gather(*(lease.give_back(self._client, self._script, self._process) for lease in held))
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
                self._refresh(due)
            self._forget_idle()

    def _refresh(self, due: list[Lease]) -> None:
        """Renew the due leases in the background: a slow answer holds up no other lease."""
        loop = asyncio.get_running_loop()
        for lease in due:
            lease.renewing = loop.create_task(self._renew(lease))

    async def _renew(self, lease: Lease) -> None:
        """One renewal; one still unanswered after HUNG_SECONDS is waited for as Redis unreachable."""
        refresh = asyncio.ensure_future(lease.refresh(self._client, self._script, self._process))
        try:
            if not (await asyncio.wait([refresh], timeout=HUNG_SECONDS))[0]:
                self._reachable(False, f"no answer within {HUNG_SECONDS:g} s")
            await refresh
        except REDIS_ERRORS as error:
            self._reachable(False, f"{type(error).__name__}: {error}")
        except Exception:  # noqa: BLE001 - the keeper goes on; the operator sees why
            log.error("rate_budget_lease_failed", exc_info=True)
        else:
            self._reachable(True)
        finally:
            refresh.cancel()  # when this renewal itself is cancelled (the process stops)
            lease.renewing = None
            lease.answered.set()  # a write waiting for the first answer goes on without one

    def _reachable(self, reachable: bool, error: str = "") -> None:
        if reachable != self.unreachable:
            return
        self.unreachable = not reachable
        if reachable:
            log.info("rate_budgets_shared_again")
        else:
            log.warning("rate_budgets_unshared", error=error,
                        message="Redis is unreachable: each process keeps to its last share of every limit")  # fmt: skip

    def _forget_idle(self) -> None:
        for lease in [lease for lease in self._leases if lease.idle()]:
            self._leases.discard(lease)


class SharedBudgets:
    """Makes the write budgets of the adapters: shared by every process of the bot when there is
    Redis (`leases`), this process's alone otherwise (history in memory: one process)."""

    def __init__(self, leases: BudgetLeases | None = None) -> None:
        self._leases = leases
        self._routes: dict[str, RoundTrips] = {}

    def budget(self, name: str, limit: int, window: float, **options: Any) -> WriteBudget:
        """`name` identifies the platform's bucket across processes ("discord:global"); the
        budgets of one platform share what their writes measure of the way to it."""
        route = self._routes.setdefault(name.split(":", 1)[0], RoundTrips())
        budget = WriteBudget(limit, window, route=route, **options)
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
