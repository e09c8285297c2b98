"""Work on files people send (decoding their images, later reading their documents) in worker
processes of its own, never in the bot's: a small file that decodes to gigabytes, or that makes a
decoder spin, costs a worker, which is limited and replaced, while the bot goes on answering.

The workers are pebble's process pool: each worker is held to WORKER_MEMORY_BYTES of address
space beyond what it holds when it starts (`resource.RLIMIT_AS`, so an allocation past it fails
with MemoryError; what it starts with depends on the decoders the fork server imported, so a file
gets the same room whichever pool started the fork server first), each task to a
wall-clock limit after which its worker is killed, and a worker that dies takes only its own task
with it. The workers are handed out in turn across the people (or messages) whose files wait for
them (`IsolatedWorkers.turn`): one person's ten slow files delay another person's file by one
file's work at most, not by ten. They are forked from a small server process
(multiprocessing's "forkserver") that has imported the decoders once, so a new worker starts in
milliseconds and shares nothing of the bot's memory."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import os
import resource
from collections import Counter
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from concurrent.futures import CancelledError as FutureCancelled
from concurrent.futures import TimeoutError as FutureTimeout
from enum import Enum
from typing import ParamSpec, TypeVar

import structlog
from pebble import ProcessExpired, ProcessPool

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# Two decodes at once use both cores of a small machine and leave the event loop its own.
WORKERS = 2
# What one worker may map: a 50-megapixel image with transparency (the largest the bot decodes)
# needs about 600 MB on its way to 1,568 pixels; Python and Pillow themselves about 60 MB.
WORKER_MEMORY_BYTES = 1024 * 1024 * 1024
# A 50-megapixel PNG decodes in about 5 s on a slow core; nothing people send needs more than twice that.
TASK_SECONDS = 15.0
_OUT_OF_MEMORY = 75  # a worker's exit code when it ran out of memory
# A worker is replaced after this many files, so that memory a large file left behind is given back.
TASKS_PER_WORKER = 20


class Failure(Enum):
    """Why a worker gave no result, as the person's notice needs it."""

    TOO_BIG = "too big"  # the work needed more memory than a worker has
    TOO_SLOW = "too slow"  # past its time limit: the worker was killed
    CRASHED = "crashed"  # the worker died (a decoder's bug, or killed from outside)


class WorkFailed(Exception):
    def __init__(self, failure: Failure, detail: str) -> None:
        super().__init__(f"{failure.value}: {detail}")
        self.failure = failure


class IsolatedWorkers:
    """A pool of limited worker processes; `run` awaits one function call in one of them."""

    def __init__(
        self,
        *,
        workers: int = WORKERS,
        memory_bytes: int = WORKER_MEMORY_BYTES,
        seconds: float = TASK_SECONDS,
        preload: Sequence[str] = (),
        warm: bool = True,
    ) -> None:
        """`preload`: modules the workers' functions live in, imported once by the fork server. `warm`: the
        workers start now, with the bot, rather than in the first person's wait for an answer; else at the first
        `run` (no process at all, not even the fork server, for work that may never come: a knowledge folder
        whose files are unchanged since they were read)."""
        self._workers = workers
        self._memory_bytes = memory_bytes
        self._preload = list(preload)
        self._pool: ProcessPool | None = None  # its workers started
        self._made: ProcessPool | None = None  # made, its workers maybe still starting
        self._starting = asyncio.Lock()
        self._seconds = seconds
        self.size = workers
        self._turns = FairTurns(workers)
        if warm:
            self._pool = self._made = self._new_pool()
            self._pool.schedule(_ready)

    def _new_pool(self) -> ProcessPool:
        """The pool; its processes start at its first task, which waits for them (and for the fork server's
        imports, the first time)."""
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(self._preload)
        return ProcessPool(
            max_workers=self._workers,
            max_tasks=TASKS_PER_WORKER,
            initializer=_limit_memory,
            initargs=(self._memory_bytes,),
            context=context,
        )

    async def _started(self) -> ProcessPool:
        """The pool, its workers started now (off the event loop) if they weren't."""
        if self._pool is not None:
            return self._pool
        async with self._starting:
            if self._pool is None:
                self._made = pool = self._made or self._new_pool()  # a start cancelled before: the same pool
                await asyncio.to_thread(pool.schedule, _ready)
                self._pool = pool
        return self._pool

    @contextlib.asynccontextmanager
    async def turn(self, owner: Hashable) -> AsyncIterator[None]:
        """A worker's turn for one of `owner`'s files (its download and its work), handed out fairly:
        the owner using the fewest workers goes first. Within it, `run` starts at once."""
        async with self._turns.turn(owner):
            yield

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`function(*args, **kwargs)` in a worker (it and its arguments must pickle); raises
        WorkFailed when the worker runs out of memory or time or dies, and what the function
        raises otherwise. Cancelling the caller kills a worker still running the call."""
        return await self.run_within(self._seconds, function, *args, **kwargs)

    async def run_within(self, seconds: float, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`run`, with a time limit of its own for this call."""
        future = (await self._started()).schedule(_call, args=(function, args, kwargs), timeout=seconds)
        try:
            return await asyncio.wrap_future(future)
        except FutureTimeout as error:
            raise WorkFailed(Failure.TOO_SLOW, f"over {seconds:g} s") from error
        except ProcessExpired as error:
            if error.exitcode == _OUT_OF_MEMORY:
                raise WorkFailed(Failure.TOO_BIG, "out of memory") from error
            raise WorkFailed(Failure.CRASHED, f"exit code {error.exitcode}") from error
        except FutureCancelled as error:  # the pool was stopped under it
            raise WorkFailed(Failure.CRASHED, "workers stopped") from error

    async def aclose(self) -> None:
        """Stop the workers, whatever they are doing."""
        pool = self._made
        if pool is None:
            return  # never started
        pool.stop()  # type: ignore[no-untyped-call]  # pebble leaves it unannotated
        await asyncio.to_thread(pool.join)


class FairTurns:
    """`size` turns, handed out in turn across owners: when one is given back, the waiting owner
    holding the fewest goes next (the earliest to wait among equals), each owner's in its order."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._holding: Counter[Hashable] = Counter()
        self._waiting: dict[Hashable, list[asyncio.Future[None]]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, owner: Hashable) -> AsyncIterator[None]:
        await self._acquire(owner)
        try:
            yield
        finally:
            self._release(owner)

    async def _acquire(self, owner: Hashable) -> None:
        if self._holding.total() < self._size and not self._waiting:
            self._holding[owner] += 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(owner, []).append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release(owner)  # given just as it was cancelled: handed on
            else:
                self._forget(owner, granted)
            raise

    def _release(self, owner: Hashable) -> None:
        self._holding[owner] -= 1
        if self._holding[owner] <= 0:
            del self._holding[owner]
        while self._waiting:
            next_owner = min(self._waiting, key=lambda waiting: self._holding[waiting])  # dicts keep arrival order
            granted = self._waiting[next_owner].pop(0)
            if not self._waiting[next_owner]:
                del self._waiting[next_owner]
            if not granted.cancelled():  # its waiter was cancelled, and hasn't yet taken itself out
                self._holding[next_owner] += 1
                granted.set_result(None)
                return

    def _forget(self, owner: Hashable, granted: asyncio.Future[None]) -> None:
        waiting = self._waiting.get(owner, [])
        if granted in waiting:
            waiting.remove(granted)
        if not waiting:
            self._waiting.pop(owner, None)


def _call(function: Callable[..., T], args: tuple[object, ...], kwargs: dict[str, object]) -> T:
    """In the worker: a worker that ran out of memory is not trusted with another file (its heap
    may be left in pieces), so it exits, with a code that says why."""
    try:
        return function(*args, **kwargs)
    except MemoryError:
        os._exit(_OUT_OF_MEMORY)


def call_in_worker(module: str, name: str, *args: object) -> object:
    """`module.name(*args)`: what `run` calls for a function whose module only the workers import
    (a parser's heavy libraries stay out of the bot's process)."""
    function = getattr(importlib.import_module(module), name)
    return function(*args)


def _ready() -> None:
    return None


def _limit_memory(memory_bytes: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = _address_space() + memory_bytes
    limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _address_space() -> int:
    """The bytes of address space this process holds now (0 where /proc can't say)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0
