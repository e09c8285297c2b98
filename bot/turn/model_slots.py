"""How many answers one process reads from the model at once, and what it counts of each."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TypeVar

import structlog

from bot.errors import ReplyFailure
from bot.loop import aclose_if_any
from bot.metrics import Metrics

log = structlog.get_logger(__name__)

# A stream whose pieces piled up while the process was busy is read this many at a time, taking
# turns with the other tasks: read in one go, a pass over the streams took seconds on a slow core,
# and every Redis answer (write slots, the heartbeat) waited that long.
PIECES_PER_TURN = 16

P = TypeVar("P")


class ModelSlots:
    def __init__(self, metrics: Metrics, max_streams: int) -> None:
        """`max_streams`: answers streamed from the model at once; more wait their turn."""
        self._metrics = metrics
        self._streams = asyncio.Semaphore(max_streams)
        self._max_streams = max_streams

    async def pieces(self, pieces: AsyncIterator[P]) -> AsyncIterator[P]:
        """The model's pieces, counted and timed; asked for once fewer than `max_streams` stream in this process.
        Past that, a process falls behind every stream and its Redis answers (its heartbeat lapses, its live replies
        look dead to the others), so answers wait in arrival order, the person seeing the waiting indicator."""
        count = 0
        try:
            if self._streams.locked():
                log.info("reply_waits_for_room", streaming=self._max_streams)
            async with self._streams:
                asked = time.monotonic()
                async for piece in pieces:
                    if count == 0:
                        self._metrics.model_first_token.observe(time.monotonic() - asked)
                    count += 1
                    yield piece
                    if count % PIECES_PER_TURN == 0:
                        await asyncio.sleep(0)  # see PIECES_PER_TURN
        except ReplyFailure as failure:
            self._metrics.model_errors.labels(failure.kind.name).inc()
            raise
        finally:
            self._metrics.tokens.inc(count)  # once per answer: a lock taken per token costs CPU
            await aclose_if_any(pieces)
