"""The bot's process runtime: its event loop, and a garbage collector that leaves the start-up
heap alone."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
# A task still running this long after it was cancelled lost the cancellation (redis-py can drop
# one that arrives while a command waits) and is cancelled again: longer than the 10 s a reply's
# final write may take once cancelled (bot.render), so no final text is cut short by it.
RECANCEL_SECONDS = 12.0
# Tokenizing more than this many characters (~10 ms) on the event loop would pause every other
# reply's stream for that long; above it the work goes to a thread.
OFF_LOOP_CHARS = 20_000


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop when installed (about half asyncio's CPU per socket event)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def freeze_startup_heap() -> None:
    """Keep what start-up loaded (the tokenizer's tables, libraries) out of garbage collection:
    otherwise every full collection walks those millions of objects, and every reply streaming
    stops for 0.1–0.7 s."""
    gc.collect()
    gc.freeze()


async def finish_even_if_cancelled(work: Awaitable[T]) -> T:
    """Run `work` to the end; a cancellation (a shutdown) is raised only once it is done."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait until every one has ended, cancelling again any that goes on."""
    pending, wait = set(tasks), RECANCEL_SECONDS
    while pending:
        for task in pending:
            task.cancel()
            task.add_done_callback(retrieve_outcome)
        _, pending = await asyncio.wait(pending, timeout=wait)
        wait = 1.0


def cancel_until_done(task: asyncio.Task[Any], every: float) -> None:
    """Cancel `task` now, and again every `every` seconds until it has ended, without waiting
    for it. A cancellation can be lost inside a library call: redis-py sends each command
    through asyncio.wait_for, which on Python 3.11 returns the command's result instead of
    raising when the cancellation comes as the send completes. A task that loops until it is
    cancelled (a typing indicator) would then run for as long as the process, with everything
    it holds."""
    if not task.done():
        task.cancel()
        asyncio.get_running_loop().call_later(every, cancel_until_done, task, every)


def retrieve_outcome(future: asyncio.Future[Any]) -> None:
    """A done-callback for a background task whose failure is reported elsewhere (or not at
    all): retrieving its outcome keeps asyncio from logging "exception was never retrieved"."""
    if not future.cancelled():
        future.exception()


async def off_loop_if_large(size: int, function: Callable[..., T], *args: object) -> T:
    """`function(*args)`, in a thread when `size` (characters to tokenize) would hold up the loop."""
    if size > OFF_LOOP_CHARS:
        return await asyncio.to_thread(function, *args)
    return function(*args)


async def aclose_if_any(iterator: object) -> None:
    """Close an async iterator that can be closed (a generator: its `finally` frees what it holds)."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()
