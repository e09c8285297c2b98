"""The bot's process runtime: its event loop (uvloop when installed: it halves per-wake-up CPU,
else asyncio) and a garbage collector that leaves the start-up heap alone."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


# Allocations between two young-generation collections (CPython's default: 700).
YOUNG_COLLECTION_THRESHOLD = 20_000


def freeze_startup_heap() -> None:
    """Keep what start-up loaded (the tokenizer's tables, libraries) out of garbage collection.

    Otherwise every full collection walks those millions of objects: 0.1–0.7 s during which
    no reply moves. Objects made while answering are collected as usual, but less often: a
    burst of hundreds of turns allocates fast enough to run a young collection every few
    hundred microseconds, each several milliseconds on a cold cache, and together they held
    the first words of a 500-turn burst back by ~100 ms. The garbage this leaves a little
    longer is a few megabytes at most.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)


async def finish_even_if_cancelled(work: Awaitable[T]) -> T:
    """Run `work` to the end; a cancellation (a shutdown) is raised only once it is done."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


def retrieve_outcome(future: asyncio.Future[Any]) -> None:
    """A done-callback for a background task whose failure is reported elsewhere (or not at
    all): retrieving its outcome keeps asyncio from logging "exception was never retrieved"."""
    if not future.cancelled():
        future.exception()
