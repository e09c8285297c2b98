"""Reranking: the passages fusion found best scored again against the question by a cross-encoder on a `/rerank`
server, and put in that order. A reranker that fails (down, slow, a reply that isn't scores) never costs an answer:
the passages keep fusion's order, the operator is warned once per outage, and it is asked again a little later.

Two request shapes, both `POST {RERANK_BASE_URL}/rerank`:

* Text Embeddings Inference (no RERANK_MODEL: the server has one): ``{"query", "texts": [...], "truncate": true}``
  → ``[{"index", "score"}, ...]``.
* Cohere's and Jina's (RERANK_MODEL names the model; vLLM, Infinity and llama.cpp's server speak it too):
  ``{"model", "query", "documents": [...], "top_n"}`` → ``{"results": [{"index", "relevance_score"}, ...]}``.

Either reply is read whatever was asked. Which passages are relevant at all is not the reranker's to say: its scores
live on each model's own scale (a probability, a logit), and the relevance threshold must hold the same when it is
down, so the embedder's threshold decides (bot.knowledge.service) and the reranker only orders what passed it."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import aiohttp
import structlog

from bot.knowledge.passages import Hit, Passage, subject
from config.knowledge import RerankSettings

log = structlog.get_logger(__name__)

# Text Embeddings Inference refuses more than 32 texts a request by default (--max-client-batch-size): more are sent
# as several requests at once.
BATCH_TEXTS = 32
# A passage as the reranker reads it: what it is about, then its text, cut here (cross-encoders read 512 tokens).
MAX_TEXT_CHARS = 2_000
# After a failure the reranker is left alone this long (the passages in fusion's order, at once), then asked again.
RETRY_SECONDS = 30.0


class RerankError(Exception):
    """The reranker could not be used; `kind` says how, for the metric: unreachable, timeout, http or reply."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class Reranker(Protocol):
    name: str

    async def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        """One score per text, higher meaning more relevant to `query`; raises RerankError."""

    async def aclose(self) -> None: ...


class Reranking:
    """Hits reordered by `reranker`, within `timeout_seconds`; on any failure, as they came. `candidates`: how many of
    fusion's best the search hands it."""

    def __init__(
        self,
        reranker: Reranker,
        candidates: int,
        timeout_seconds: float,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self.reranker = reranker
        self.candidates = candidates
        self._timeout = timeout_seconds
        self.retry_seconds = retry_seconds
        self._failed_at: float | None = None  # the last failure of the outage going on, None: none going on
        # Told of each failure's kind (a Prometheus counter: bot_rerank_failures_total).
        self.count_failure: Callable[[str], None] = lambda kind: None

    async def ordered(self, question: str, hits: Sequence[Hit]) -> list[Hit]:
        """`hits` best first by the reranker's scores (ties keep their order), or as they came if it failed."""
        if len(hits) < 2 or self._resting():
            return list(hits)
        try:
            async with asyncio.timeout(self._timeout):
                scores = await self.reranker.scores(question, [rerank_text(hit.passage) for hit in hits])
        except TimeoutError:
            late = f"The reranker {self.reranker.name} did not answer within {self._timeout:g} s"
            self._failed(RerankError(late, "timeout"))
            return list(hits)
        except RerankError as error:
            self._failed(error)
            return list(hits)
        if self._failed_at is not None:
            log.info("rerank_recovered", reranker=self.reranker.name)
            self._failed_at = None
        order = sorted(range(len(hits)), key=lambda index: -scores[index])
        return [hits[index] for index in order]

    async def aclose(self) -> None:
        await self.reranker.aclose()

    def _resting(self) -> bool:
        return self._failed_at is not None and time.monotonic() - self._failed_at < self.retry_seconds

    def _failed(self, error: RerankError) -> None:
        self.count_failure(error.kind)
        if self._failed_at is None:  # once per outage: a failure while it lasts says nothing new
            log.warning(
                "rerank_failed",
                reranker=self.reranker.name,
                error=str(error),
                using="fusion's order",
                retry_seconds=self.retry_seconds,
            )
        self._failed_at = time.monotonic()


def rerank_text(passage: Passage) -> str:
    """What a passage is about, then its text: what it is embedded as (bot.knowledge.service), cut."""
    about = subject(passage)
    text = f"{about}\n{passage.text}" if about else passage.text
    return text[:MAX_TEXT_CHARS]


class RemoteReranker:
    """A `/rerank` server: Text Embeddings Inference's shape, or (with a `model`) Cohere's and Jina's."""

    def __init__(
        self, base_url: str, model: str | None, *, api_key: str | None = None, timeout_seconds: float = 10.0
    ) -> None:
        base = base_url.rstrip("/")
        self.url = base if base.endswith("/rerank") else f"{base}/rerank"
        self.model = model
        self.name = model or f"reranker at {base}"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        batches = [list(texts[start : start + BATCH_TEXTS]) for start in range(0, len(texts), BATCH_TEXTS)]
        scored = await asyncio.gather(*(self._batch(query, batch) for batch in batches))
        return [score for batch in scored for score in batch]

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _batch(self, query: str, texts: list[str]) -> list[float]:
        body: dict[str, Any]
        if self.model:
            body = {"model": self.model, "query": query, "documents": texts, "top_n": len(texts)}
        else:
            body = {"query": query, "texts": texts, "truncate": True}
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, trust_env=True)
        where = f"The reranker {self.url}"
        try:
            async with self._session.post(self.url, json=body, headers=self._headers) as response:
                text = await response.text()
                if response.status != 200:
                    raise RerankError(f"{where} answered HTTP {response.status}: {_short(text)}", "http")
                payload = json.loads(text)
        except RerankError:
            raise
        except TimeoutError as error:
            seconds = self._timeout.total
            raise RerankError(f"{where} did not answer within {seconds:g} s", "timeout") from error
        except aiohttp.ClientError as error:
            raise RerankError(f"{where} could not be reached: {_short(str(error))}", "unreachable") from error
        except ValueError as error:
            raise RerankError(f"{where} answered with something other than JSON", "reply") from error
        return scores_of(payload, len(texts), where)


def scores_of(payload: Any, count: int, where: str) -> list[float]:
    """The `count` texts' scores from either reply shape, in the texts' order; every text must have one."""
    items: Any = payload.get("results") if isinstance(payload, dict) else payload
    scores: list[float | None] = [None] * count
    try:
        for item in items:
            index = int(item["index"])
            score = float(item["relevance_score"] if "relevance_score" in item else item["score"])
            if not 0 <= index < count or not math.isfinite(score):
                raise ValueError(f"index {index}, score {score}")
            scores[index] = score
    except (KeyError, TypeError, ValueError) as error:
        raise RerankError(f"{where} answered without a score per text ({error!r})", "reply") from error
    if any(score is None for score in scores):
        missing = sum(score is None for score in scores)
        raise RerankError(f"{where} scored {count - missing} of {count} texts", "reply")
    return [score for score in scores if score is not None]


def make_reranking(settings: RerankSettings | None) -> Reranking | None:
    """RERANK_BASE_URL's server, or None when reranking is off."""
    if settings is None:
        return None
    reranker = RemoteReranker(
        settings.base_url, settings.model, api_key=settings.api_key, timeout_seconds=settings.timeout_seconds
    )
    log.info("rerank_on", reranker=reranker.name, url=reranker.url, candidates=settings.candidates)
    return Reranking(reranker, settings.candidates, settings.timeout_seconds)


def _short(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
