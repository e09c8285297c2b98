"""Embeddings from a server: a model through huggingface_hub's `feature_extraction` (`HubEmbedder`), or any
OpenAI-compatible `POST /v1/embeddings` (`OpenAIEmbedder`: TEI, vLLM, Ollama). Each finds the model's dimensions by
embedding a probe text at start, and every failure is an EmbeddingError saying what went wrong where."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import aiohttp
import httpx2
import numpy as np
from huggingface_hub import AsyncInferenceClient, InferenceClient, InferenceTimeoutError
from huggingface_hub.errors import HfHubHTTPError
from numpy.typing import NDArray

from bot.knowledge.vectors import EmbeddingError, unit_rows

T = TypeVar("T")

# TEI refuses more than 32 inputs per request by default (--max-client-batch-size).
BATCH_TEXTS = 32
PROBE_TEXT = "How do I connect to the office VPN?"
# A model serving token vectors gives each text its own length: numpy can't stack a batch of those, so such a model is
# asked one text per request, this many at once.
TOKEN_LEVEL_CONCURRENCY = 4
# Sent as the bearer key to an endpoint URL when HF_TOKEN is not set: else huggingface_hub would send a token saved by
# `hf auth login` to whatever server the URL names.
NO_KEY = "no-key"


class HubEmbedder:
    """EMBEDDING_MODEL through huggingface_hub's AsyncInferenceClient: a Hub model id (the provider INFERENCE_PROVIDER
    names, else the one the Hub picks) or an Inference Endpoint's URL."""

    def __init__(self, model: str, *, token: str | None, provider: str | None, timeout_seconds: float = 60.0) -> None:
        self.name = model
        self.dimensions = 0
        self._model = model
        self._token = token or (NO_KEY if _is_url(model) else None)
        self._provider = provider
        self._timeout = timeout_seconds
        self._client = AsyncInferenceClient(provider=provider, token=self._token, timeout=timeout_seconds)  # type: ignore[arg-type]  # a provider name
        self._token_level = False

    async def start(self) -> None:
        # The first request of a Hub model id looks up its provider with a blocking call, cached for the process: the
        # probe makes it on a thread with the synchronous client, so the event loop never waits on it.
        probe = await self._guard(asyncio.to_thread(self._probe))
        self._token_level = probe.ndim == 3 or (probe.ndim == 2 and probe.shape[0] > 1)
        self.dimensions = int(probe.shape[-1])

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if self._token_level:
            return await self._embed_one_by_one(texts)
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH_TEXTS):
            batch = list(texts[start : start + BATCH_TEXTS])
            array = await self._guard(self._client.feature_extraction(batch, model=self._model))
            vectors += self._checked(_pooled(array, len(batch), self._model)).tolist()
        return vectors

    async def aclose(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]  # huggingface_hub leaves it unannotated

    async def _embed_one_by_one(self, texts: Sequence[str]) -> list[list[float]]:
        gate = asyncio.Semaphore(TOKEN_LEVEL_CONCURRENCY)

        async def one(text: str) -> list[float]:
            async with gate:
                array = await self._guard(self._client.feature_extraction(text, model=self._model))
            return self._checked(_pooled(array, 1, self._model))[0].tolist()  # type: ignore[no-any-return]

        return list(await asyncio.gather(*(one(text) for text in texts)))

    def _probe(self) -> NDArray[np.float32]:
        client = InferenceClient(provider=self._provider, token=self._token, timeout=self._timeout)  # type: ignore[arg-type]
        return np.asarray(client.feature_extraction(PROBE_TEXT, model=self._model), dtype=np.float32)

    def _checked(self, rows: NDArray[np.float32]) -> NDArray[np.float32]:
        if self.dimensions and rows.shape[1] != self.dimensions:
            raise EmbeddingError(
                f"The embedding model {self._model} returned {rows.shape[1]} dimensions where it returned "
                f"{self.dimensions} at start."
            )
        return unit_rows(rows)

    async def _guard(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except EmbeddingError:
            raise
        except Exception as error:
            raise EmbeddingError(_hub_reason(self._model, error)) from error


def _hub_reason(model: str, error: Exception) -> str:
    where = f"The embedding model {model}"
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        return f"{where} answered HTTP {error.response.status_code}: {_short(error.response.text)}."
    if isinstance(error, (InferenceTimeoutError, httpx2.TimeoutException)):
        return f"{where} did not answer in time."
    if isinstance(error, json.JSONDecodeError):
        return f"{where} answered with something other than JSON."
    if isinstance(error, httpx2.TransportError):
        return f"{where} could not be reached: {_short(str(error)) or type(error).__name__}."
    return f"{where} could not be used: {_short(str(error)) or type(error).__name__}."


def _pooled(array: Any, count: int, model: str) -> NDArray[np.float32]:
    """(count, D) from what a feature-extraction server returns: (D,), (count, D), or token vectors (count, T, D)
    and, for one text, (T, D), averaged over the tokens."""
    rows = np.asarray(array, dtype=np.float32)
    if rows.ndim == 1 and count == 1:
        return rows[None, :]
    if rows.ndim == 2 and count == 1 and rows.shape[0] > 1:
        return rows.mean(axis=0, keepdims=True)  # type: ignore[no-any-return]
    if rows.ndim == 2 and rows.shape[0] == count:
        return rows
    if rows.ndim == 3 and rows.shape[0] == count:
        return rows.mean(axis=1)  # type: ignore[no-any-return]
    raise EmbeddingError(f"The embedding model {model} returned an array of shape {rows.shape} for {count} texts.")


class OpenAIEmbedder:
    """An OpenAI-compatible embeddings endpoint: `POST {base_url}/embeddings` with `{"model", "input": [...]}`."""

    def __init__(self, base_url: str, model: str | None, *, token: str | None, timeout_seconds: float = 60.0) -> None:
        base = base_url.rstrip("/")
        self._url = base if base.endswith("/embeddings") else f"{base}/embeddings"
        self._model = model
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None
        self.name = model or f"embeddings at {base}"  # what made the stored vectors: the model, where it has a name
        self.dimensions = 0

    async def start(self) -> None:
        [probe] = await self.embed([PROBE_TEXT])
        self.dimensions = len(probe)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH_TEXTS):
            vectors += await self._embed_batch(list(texts[start : start + BATCH_TEXTS]))
        return vectors

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        body: dict[str, Any] = {"input": texts}
        if self._model:
            body["model"] = self._model
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, trust_env=True)
        try:
            async with self._session.post(self._url, json=body, headers=self._headers) as response:
                text = await response.text()
                if response.status != 200:
                    raise EmbeddingError(
                        f"The embedding server {self._url} answered HTTP {response.status}: {_short(text)}."
                    )
                payload = json.loads(text)
        except EmbeddingError:
            raise
        except TimeoutError as error:
            raise EmbeddingError(f"The embedding server {self._url} did not answer in time.") from error
        except aiohttp.ClientError as error:
            raise EmbeddingError(
                f"The embedding server {self._url} could not be reached: {_short(str(error))}."
            ) from error
        except ValueError as error:
            raise EmbeddingError(
                f"The embedding server {self._url} answered with something other than JSON."
            ) from error
        return self._vectors(payload, len(texts))

    def _vectors(self, payload: Any, count: int) -> list[list[float]]:
        try:
            items = sorted(payload["data"], key=lambda item: int(item["index"]))
            rows = np.asarray([item["embedding"] for item in items], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as error:
            raise EmbeddingError(
                f"The embedding server {self._url} answered without a list of vectors ({error!r})."
            ) from error
        if rows.ndim != 2 or rows.shape[0] != count or (self.dimensions and rows.shape[1] != self.dimensions):
            raise EmbeddingError(
                f"The embedding server {self._url} returned vectors of shape {rows.shape} for {count} texts"
                + (f" of {self.dimensions} dimensions." if self.dimensions else ".")
            )
        return unit_rows(rows).tolist()  # type: ignore[no-any-return]


def _is_url(model: str) -> bool:
    return model.startswith(("http://", "https://"))


def _short(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
