"""Running work on the event loop: to its end, off it when large, cancelled for sure; GC that spares start-up's heap."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
# Above this many characters (~10 ms of tokenizing) work goes to a thread, not pausing every other reply's stream.
OFF_LOOP_CHARS = 20_000


def freeze_startup_heap() -> None:
    """Keep what start-up loaded (the tokenizer's tables, libraries) out of garbage collection: otherwise every full
    collection walks those millions of objects, and every reply streaming stops for 0.1–0.7 s."""
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


_ENDING: set[asyncio.Future[Any]] = set()  # work given up on by `within`, kept until it has ended


async def within(work: Awaitable[T], seconds: float) -> T:
    """`work`'s result, or TimeoutError after `seconds`, at once: unlike asyncio.wait_for, which waits for the work
    it cancels to end, a cancelled search whose database query is slow to give up doesn't hold the answer up (it ends
    on its own, its outcome dropped)."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task in done:
        return task.result()
    task.cancel()
    _ENDING.add(task)
    task.add_done_callback(_dropped)
    raise TimeoutError(f"no answer within {seconds:g} s")


def _dropped(task: asyncio.Future[Any]) -> None:
    _ENDING.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: never "exception was never retrieved"


def cancel_until_done(task: asyncio.Task[Any], every: float) -> None:
    """Cancel `task` now and again every `every` seconds until it has ended, without waiting for it. A cancellation can
    be lost inside a library call: redis-py sends each command through asyncio.wait_for, which on Python 3.11 returns
    the command's result instead of raising when the cancellation comes as the send completes. A task that loops until
    cancelled (a typing indicator) would then run as long as the process, with everything it holds."""
    if not task.done():
        task.cancel()
        asyncio.get_running_loop().call_later(every, cancel_until_done, task, every)


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
