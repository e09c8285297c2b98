"""Knowledge indexed with another embedding model than the configured one, re-embedded in the background: in
batches, by one process at a time among all those sharing the database, resuming where it stopped after a restart;
the engine switches to the new vectors at once when every passage has one (bot.knowledge.postgres.transition).

Until then the meaning search answers from the old vectors, the question embedded with the old model when this
process can still run it (one of the in-process models: all-MiniLM-L6-v2 or WordLlama); otherwise (an old remote
model) from the new vectors made so far, the passages not re-embedded yet found by their words."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import structlog

from bot.knowledge.passages import Embedder, Hit, KnowledgeEngine, Passage

log = structlog.get_logger(__name__)

STOP_SECONDS = 1.0  # a stop asked again this often until the re-embed has stopped

Embed = Callable[[Sequence[Passage]], Awaitable[list[list[float]]]]


@dataclass(frozen=True)
class Pace:
    """How the re-embed goes: passages per batch, a pause after each, how often a process that isn't the one
    re-embedding looks whether it stopped (to take over) or finished, and how often progress is logged."""

    batch: int = 64
    pause_seconds: float = 0.0
    watch_seconds: float = 10.0
    progress_seconds: float = 30.0


def no_previous_embedder(name: str) -> Embedder | None:
    return None


def in_process_embedder(models_dir: Path) -> Callable[[str], Embedder | None]:
    """The previous model by its recorded name, if it is one this process can run (not started)."""

    def previous(name: str) -> Embedder | None:
        from bot.knowledge.embeddings import MINILM_PACKAGES, WORDLLAMA_NAME, LocalEmbedder

        if name == WORDLLAMA_NAME:
            return LocalEmbedder()
        from bot.knowledge.minilm import MINILM_NAME

        if name == MINILM_NAME and all(importlib.util.find_spec(package) for package in MINILM_PACKAGES):
            from bot.knowledge.minilm import MiniLMEmbedder

            return MiniLMEmbedder(models_dir)
        return None

    return previous


class Reembedder:
    """The re-embed of one process's knowledge: done here if this process gets the lock, else watched."""

    def __init__(self, engine: KnowledgeEngine, embed: Embed, previous: Embedder | None, pace: Pace) -> None:
        self._engine = engine
        self._embed = embed
        self._previous = previous
        self._previous_ready = False
        self._pace = pace
        self._task: asyncio.Task[None] | None = None
        self._finished = asyncio.Event()
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="knowledge-reembed")

    @property
    def done(self) -> bool:
        return self._engine.transition is None

    def question_embedder(self) -> Embedder | None:
        """The model to embed a question with while the old vectors are searched, if this process runs it."""
        transition = self._engine.transition
        if transition is None or not self._previous_ready or self._previous is None:
            return None
        return self._previous if self._previous.name == transition.previous else None

    async def wait(self) -> None:
        """Until the re-embed has finished (here or, as this process sees it, elsewhere)."""
        await self._finished.wait()

    async def aclose(self) -> None:
        self._stopping = True  # seen between batches, should a cancellation be swallowed (by a database driver's wait)
        if self._task is not None:
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=STOP_SECONDS)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                self._task.result()
        await self._close_previous()

    async def _run(self) -> None:
        await self._start_previous()
        while not self._stopping:
            try:
                if await self._engine.reembed_status() is None:
                    break
                if await self._engine.reembed_lock():
                    await self._reembed()
                else:
                    await asyncio.sleep(self._pace.watch_seconds)  # another process re-embeds; taken over if it stops
            except Exception:
                log.exception("knowledge_reembed_failed")  # the embedder or the database: tried again
                await asyncio.sleep(self._pace.watch_seconds)
        if self._stopping:
            return
        self._previous_ready = False
        self._finished.set()
        await asyncio.sleep(self._pace.watch_seconds)  # a question being embedded with it meanwhile finishes
        await self._close_previous()

    async def _start_previous(self) -> None:
        if self._previous is None:
            return
        try:
            await self._previous.start()
        except Exception as error:  # noqa: BLE001 - searched from the new vectors instead
            log.warning("knowledge_previous_model_unavailable", model=self._previous.name, error=str(error))
            return
        self._previous_ready = True

    async def _close_previous(self) -> None:
        if self._previous is not None:
            previous, self._previous = self._previous, None
            await previous.aclose()

    async def _reembed(self) -> None:
        transition = self._engine.transition
        if transition is None:
            return
        left = await self._engine.reembed_left()
        log.info("knowledge_reembedding", previous=transition.previous, model=transition.model, left=left)
        done, logged = 0, time.monotonic()
        while not self._stopping:
            after: tuple[str, str] | None = None  # a pass over every passage still without its new vector
            while not self._stopping and (batch := await self._engine.reembed_batch(after, self._pace.batch)):
                await self._engine.store_reembedded(batch, await self._embed(batch))
                done += len(batch)
                after = (batch[-1].scope, batch[-1].key)
                if time.monotonic() - logged >= self._pace.progress_seconds:
                    logged = time.monotonic()
                    log.info("knowledge_reembed_progress", model=transition.model, done=done, left=max(left - done, 0))
                await asyncio.sleep(self._pace.pause_seconds)
            if await self._engine.finish_reembed():
                log.info("knowledge_reembed_done", previous=transition.previous, model=transition.model, done=done)
                return
            # Passages skipped (a writer held them) or left behind (an earlier version's edit), or the table held by a
            # long transaction: another pass in a while.
            await asyncio.sleep(self._pace.watch_seconds)


def rescaled(hits: Sequence[Hit], previous: tuple[float, float], configured: tuple[float, float]) -> list[Hit]:
    """Hits found by the previous model's vectors, their relevance put on the configured model's scale, each
    model's thresholds (with words, alone: bot.knowledge.vectors.Relevance) mapped onto the other's, so that a hit is
    judged relevant as the previous model judged it."""
    points = ([-1.0, *previous, 1.0], [-1.0, *configured, 1.0])
    return [
        hit if math.isnan(hit.relevance) else replace(hit, relevance=float(np.interp(hit.relevance, *points)))
        for hit in hits
    ]
