"""Embedders: text into unit-length vectors. `LocalEmbedder` runs WordLlama's 256-dimension model, shipped inside the
`wordllama` package (16 MB of NumPy weights, nothing downloaded), on a thread of its own; the remote ones
(bot.knowledge.remote_embeddings) ask a server. `make_embedder` picks one from the settings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from bot.knowledge.vectors import EmbeddingError, unit_rows

if TYPE_CHECKING:
    from wordllama import WordLlamaInference

R = TypeVar("R")

__all__ = ["EmbeddingError", "LocalEmbedder"]

WORDLLAMA_NAME = "wordllama-l2-supercat-256"
WORDLLAMA_DIMENSIONS = 256
# A text's meaning is the mean of its tokens' vectors: past a few pages more text changes it little, and the batch
# (padded to its longest text) would grow without bound.
MAX_TEXT_CHARS = 8_000
# Characters (about 4 per token) of one batch, padding included: about 16 MB of float32 token vectors. Each batch is
# one job on the embedder's thread, so a question's embedding waits behind at most one batch of a burst.
BATCH_CHARS = 64_000
BATCH_TEXTS = 128


class LocalEmbedder:
    """WordLlama (l2_supercat, 256 dimensions) in-process on CPU: token vectors averaged, then normalised.

    Loading (~0.2 s) and embedding run on one dedicated thread, never on the event loop nor in the default executor
    that a burst of messages would otherwise fill."""

    name = WORDLLAMA_NAME
    dimensions = WORDLLAMA_DIMENSIONS

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
        self._model: WordLlamaInference | None = None

    async def start(self) -> None:
        """Load the model now rather than on the first text."""
        await self._run(self._loaded)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        truncated = [text[:MAX_TEXT_CHARS] for text in texts]
        vectors: list[list[float]] = [[] for _ in texts]
        for batch in _batches(truncated):
            embedded = await self._run(partial(self._embed_batch, [truncated[index] for index in batch]))
            for index, vector in zip(batch, embedded, strict=True):
                vectors[index] = vector
        return vectors

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, job: Callable[[], R]) -> R:
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        matrix = self._loaded().embed(texts, norm=False, batch_size=len(texts))
        return unit_rows(matrix).tolist()  # type: ignore[no-any-return]  # numpy's tolist is untyped

    def _loaded(self) -> WordLlamaInference:
        if self._model is None:
            self._model = _load_wordllama()
        return self._model


def _load_wordllama() -> WordLlamaInference:
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
