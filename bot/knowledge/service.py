"""The knowledge a bot process uses: passages embedded and stored in the engine, searched for a question within what
its asker may read, only the relevant kept, reordered by a reranker where one is set (bot.knowledge.rerank). Adding
is batched off the hot path (`add_soon`) so a burst of messages never holds up an answer."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from bot.knowledge.cleaning import clean_passage, clean_text
from bot.knowledge.passages import (
    Access,
    Embedder,
    Hit,
    KnowledgeEngine,
    Passage,
    Skipped,
    SourceInfo,
    StaleVectors,
    subject,
)
from bot.knowledge.reembedding import Pace, Reembedder, no_previous_embedder, rescaled
from bot.knowledge.vectors import MIN_WORDS_SHARE, relevance_for
from bot.knowledge.warm_up import warm_up

if TYPE_CHECKING:
    from bot.knowledge.rerank import Reranking

log = structlog.get_logger(__name__)

EMBED_BATCH = 64  # passages embedded and stored together
QUEUE_LIMIT = 20_000  # passages waiting to be added; past it the oldest waiting are dropped, and logged
RESTART_SECONDS = 1.0  # the adder, if it ever fails, starts again after this
# A live message is judged knowledge from its channel's opt-in as a process has it cached, up to this old
# (adapters.shared.knowledge_sources.channels.CACHE_SECONDS): its addition counts as decided then, so that an `off`
# another process ran meanwhile wins over it too.
DECIDED_EARLIER_SECONDS = 2.0


class Knowledge:
    def __init__(
        self,
        engine: KnowledgeEngine,
        embedder: Embedder,
        min_relevance: float | None = None,
        reranking: Reranking | None = None,
    ) -> None:
        self.engine = engine
        self.embedder = embedder
        self.reranking = reranking
        self._min_relevance = min_relevance
        self._relevance = relevance_for(embedder.name, min_relevance)
        self._waiting: asyncio.Queue[_Addition | _Forget] = asyncio.Queue()  # in the order they happened
        self._adder: asyncio.Task[None] | None = None
        self._warming: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()
        self._settled.set()
        # Told of each batch embedded to be stored: its passages' scope, the embedder and the texts (usage counting).
        self.count_indexed: Callable[[str, str, Sequence[str]], None] = lambda scope, model, texts: None
        # Knowledge indexed with another model is re-embedded (bot.knowledge.reembedding): the previous model by its
        # name, if this process can run it to search the old vectors meanwhile; and the re-embed's pace.
        self.previous_embedder: Callable[[str], Embedder | None] = no_previous_embedder
        self.reembed_pace = Pace()
        self.reembedder: Reembedder | None = None

    async def start(self) -> None:
        await self.embedder.start()  # a remote model's dimensions are known once it has embedded a probe
        self._relevance = relevance_for(self.embedder.name, self._min_relevance)
        await self.engine.start(self.embedder.dimensions, self.embedder.name)
        if (transition := self.engine.transition) is not None:
            back = transition.previous == self.embedder.name  # back to the recorded model: the same searches
            previous = None if back else self.previous_embedder(transition.previous)
            self.reembedder = Reembedder(self.engine, self._embed, previous, self.reembed_pace)
            self.reembedder.start()
        self._adder = asyncio.create_task(self._keep_adding(), name="knowledge-adder")
        self._warming = asyncio.create_task(warm_up(self.embedder), name="knowledge-warm-up")

    async def aclose(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._warming
        if self.reembedder is not None:
            await self.reembedder.aclose()
        if self._adder is not None:
            self._adder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._adder
        await self.embedder.aclose()
        if self.reranking is not None:
            await self.reranking.aclose()
        await self.engine.aclose()

    async def add(self, passages: Sequence[Passage], decided: Sequence[float] = ()) -> list[Skipped]:
        """Embed and store `passages` now, in batches (each replaces the passage of its scope and key); those the
        database refused are logged and returned, the others stored. A passage removed (its source, key, author or
        scope) after its addition was `decided` (unix seconds, each; default: now) is not stored."""
        cleaned = [clean_passage(passage) for passage in passages]
        when = list(decided) or [time.time()] * len(cleaned)
        skipped: list[Skipped] = []
        for start in range(0, len(cleaned), EMBED_BATCH):
            batch = cleaned[start : start + EMBED_BATCH]
            skipped += await self.engine.upsert(batch, await self._embed(batch), when[start : start + EMBED_BATCH])
        return _logged(skipped)

    async def replace_source(self, scope: str, source: str, passages: Sequence[Passage]) -> list[Skipped]:
        """The source's passages replaced by `passages` (a file added again), all at once: every one is embedded
        first, then the old ones are deleted and the new ones stored in one transaction, so a failure leaves the old
        ones in place. Those the database refused are logged, kept for /knowledge list, and returned."""
        decided = time.time()  # a removal of the source while it is embedded wins (a message deleted meanwhile)
        cleaned = [clean_passage(passage) for passage in passages]
        vectors: list[list[float]] = []
        for start in range(0, len(cleaned), EMBED_BATCH):
            vectors += await self._embed(cleaned[start : start + EMBED_BATCH])
        replaced = await self.engine.replace_source(clean_text(scope), clean_text(source), cleaned, vectors, decided)
        return _logged(replaced)

    async def _embed(self, batch: Sequence[Passage]) -> list[list[float]]:
        texts = [_embedded_text(passage) for passage in batch]
        vectors = await self.embedder.embed(texts)
        for scope in dict.fromkeys(passage.scope for passage in batch):
            of_scope = [text for passage, text in zip(batch, texts, strict=True) if passage.scope == scope]
            self.count_indexed(scope, self.embedder.name, of_scope)
        return vectors

    def add_soon(self, passages: Sequence[Passage]) -> None:
        """Queue `passages` (a live message, an edit) to be added with others within a moment."""
        for passage in passages:
            self._queue(_Addition(clean_passage(passage), time.time() - DECIDED_EARLIER_SECONDS))

    def forget_soon(self, scope: str, keys: Sequence[str]) -> None:
        """Queue the removal of `keys` (deleted messages) behind what was queued before: a message posted and
        deleted within a moment is not added back."""
        if keys:
            self._queue(_Forget(clean_text(scope), tuple(clean_text(key) for key in keys)))

    def _queue(self, change: _Addition | _Forget) -> None:
        if self._waiting.qsize() >= QUEUE_LIMIT:
            dropped = self._waiting.get_nowait()
            log.warning("knowledge_queue_full", dropped=dropped)
        self._waiting.put_nowait(change)
        self._settled.clear()

    async def settled(self) -> None:
        """Every queued passage has been added (or failed, and been logged)."""
        await self._settled.wait()

    async def search(self, question: str, access: Access, limit: int = 8) -> list[Hit]:
        """The passages that may answer `question`, best first, only those relevant enough and within `access`.
        With a reranker, fusion's best `reranking.candidates` that are relevant are put in its order (fusion's, if it
        fails), and the first `limit` returned: a passage fusion ranked past `limit` can come first."""
        if not access.scopes or not question.strip():
            return []
        question = clean_text(question)
        candidates = limit if self.reranking is None else max(limit, self.reranking.candidates)
        hits = await self._hits(question, access, candidates)
        # Whether a passage is relevant at all stays the embedder's to judge (the reranker's scores have a scale of
        # each model's own, and it may be down): small talk gets none, and the reranker isn't even asked.
        relevant = [hit for hit in hits if self._relevant(hit)]
        if self.reranking is not None:
            relevant = await self.reranking.ordered(question, relevant)
        return relevant[:limit]

    # The names of what is removed are cleaned as what was added was: the same key, source or author.
    async def forget_keys(self, scope: str, keys: Sequence[str]) -> int:
        return await self.engine.delete_keys(clean_text(scope), [clean_text(key) for key in keys]) if keys else 0

    async def forget_source(self, scope: str, source: str) -> int:
        return await self.engine.delete_source(clean_text(scope), clean_text(source))

    async def forget_linked(self, scope: str, url_prefix: str) -> int:
        return await self.engine.delete_linked(clean_text(scope), clean_text(url_prefix))

    async def forget_scope(self, scope: str) -> int:
        return await self.engine.delete_scope(clean_text(scope))

    async def forget_author(self, scope: str, author: str) -> int:
        return await self.engine.delete_author(clean_text(scope), clean_text(author))

    async def forget_author_everywhere(self, scope_prefix: str, author: str) -> int:
        """`author`'s passages in every scope starting with `scope_prefix` ("discord:"): /forget-me."""
        return await self.engine.delete_author_everywhere(clean_text(scope_prefix), clean_text(author))

    async def sources(self, scope: str) -> list[SourceInfo]:
        return await self.engine.sources(scope)

    async def _hits(self, question: str, access: Access, limit: int) -> list[Hit]:
        """The engine's hits; during a re-embed, found by the old vectors with the question in the old model where
        this process runs it, their relevance put on the configured model's scale."""
        embedder = (self.reembedder and self.reembedder.question_embedder()) or self.embedder
        [vector] = await embedder.embed([question])
        try:
            hits = await self.engine.search(question, vector, access, limit, embedder.name)
        except StaleVectors:  # the re-embed finished meanwhile
            embedder = self.embedder
            [vector] = await embedder.embed([question])
            hits = await self.engine.search(question, vector, access, limit, embedder.name)
        if embedder is self.embedder:
            return hits
        previous = relevance_for(embedder.name)
        configured = self._relevance
        return rescaled(hits, (previous.with_words, previous.meaning), (configured.with_words, configured.meaning))

    def _relevant(self, hit: Hit) -> bool:
        if math.isnan(hit.relevance):  # no vector of the searched model yet (a re-embed): judged by its words
            return hit.words >= MIN_WORDS_SHARE
        if hit.relevance >= self._relevance.meaning:
            return True
        return hit.words >= MIN_WORDS_SHARE and hit.relevance >= self._relevance.with_words

    async def _keep_adding(self) -> None:
        """Add what is queued, for ever: a failure of the adder itself is logged at once and it starts again."""
        while True:
            try:
                await self._add_waiting()
            except Exception:
                log.exception("knowledge_adder_failed")
                await asyncio.sleep(RESTART_SECONDS)

    async def _add_waiting(self) -> None:
        while True:
            changes = [await self._waiting.get()]
            while len(changes) < EMBED_BATCH and not self._waiting.empty():
                changes.append(self._waiting.get_nowait())
            for run in _runs(changes):
                try:
                    if isinstance(run, _Forget):
                        await self.forget_keys(run.scope, run.keys)
                    else:
                        newest = _newest_per_key(run)
                        await self.add([added.passage for added in newest], [added.decided for added in newest])
                except Exception as error:  # noqa: BLE001 - the engine or embedder failed: logged, the next goes on
                    log.error("knowledge_change_failed", change=type(run).__name__, error=str(error))
            if self._waiting.empty():
                self._settled.set()


@dataclass(frozen=True)
class _Addition:
    passage: Passage
    decided: float  # when it was queued (unix seconds): a removal after this wins over it


@dataclass(frozen=True)
class _Forget:
    scope: str
    keys: tuple[str, ...]


def _runs(changes: list[_Addition | _Forget]) -> list[list[_Addition] | _Forget]:
    """The changes in order, consecutive additions together."""
    runs: list[list[_Addition] | _Forget] = []
    for change in changes:
        if isinstance(change, _Forget):
            runs.append(change)
        elif runs and isinstance(runs[-1], list):
            runs[-1].append(change)
        else:
            runs.append([change])
    return runs


def _logged(skipped: list[Skipped]) -> list[Skipped]:
    for refused in skipped:
        passage = refused.passage
        log.warning(
            "knowledge_passage_skipped",
            scope=passage.scope,
            source=passage.source,
            key=passage.key,
            title=passage.title,
            locator=passage.locator,
            reason=refused.reason,
        )
    return skipped


def _embedded_text(passage: Passage) -> str:
    """Its meaning with what it is about: a document's title and headings, a message's channel or thread."""
    about = subject(passage)
    return f"{about}\n{passage.text}" if about else passage.text


def _newest_per_key(batch: list[_Addition]) -> list[_Addition]:
    """A message posted then edited within one batch is stored once, as edited."""
    newest: dict[tuple[str, str], _Addition] = {}
    for added in batch:
        newest[added.passage.scope, added.passage.key] = added
    return list(newest.values())
