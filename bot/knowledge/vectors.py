"""What every embedder shares: the one error it raises, vectors made unit-length, and the cosine a passage needs to be
relevant on each model's scale."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


class EmbeddingError(RuntimeError):
    """Texts could not be embedded; the message says why in one sentence an operator can act on."""


def unit_rows(matrix: NDArray[np.floating]) -> NDArray[np.float32]:
    """Each row scaled to length 1. A row of zeros (a text with no tokens) becomes the first axis, so that every
    vector stays valid for cosine distance; it is near nothing else."""
    rows: NDArray[np.float32] = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    empty = ~np.isfinite(norms[:, 0]) | (norms[:, 0] == 0.0)
    result = np.zeros_like(rows)
    np.divide(rows, norms, out=result, where=~empty[:, None])
    result[empty, 0] = 1.0
    return result


@dataclass(frozen=True)
class Relevance:
    """When a hit is worth the prompt: close enough in meaning, or holding at least half of the question's words
    (by their weight) and not far from it in meaning. Below both, small talk gets no passages at all."""

    meaning: float
    with_words: float


# Each embedding model's cosines live on a scale of their own: measured on paraphrases, unrelated pairs and small
# talk (docs/BENCHMARKS.md, "Knowledge").
RELEVANCE = {"wordllama-l2-supercat-256": Relevance(0.15, 0.08), "all-minilm-l6-v2": Relevance(0.35, 0.2)}
OTHER_MODELS = Relevance(0.5, 0.3)  # sentence-transformers' scale (MiniLM: unrelated pairs up to 0.31)
MIN_WORDS_SHARE = 0.5

# How much a passage's cosine weighs in the search's fused score, the words list's measure the rest
# (bot.knowledge.postgres.search): tuned per model on SciFact's training split (docs/BENCHMARKS.md, "Retrieval").
# WordLlama's static vectors know less of what a text means, so its words weigh more.
MEANING_WEIGHT = {"wordllama-l2-supercat-256": 0.5, "all-minilm-l6-v2": 0.8}
OTHER_MODELS_MEANING_WEIGHT = 0.8


def meaning_weight_for(embedder: str) -> float:
    return MEANING_WEIGHT.get(embedder, OTHER_MODELS_MEANING_WEIGHT)


def relevance_for(embedder: str, minimum: float | None = None) -> Relevance:
    """The embedder's thresholds; `minimum` (KNOWLEDGE_MIN_RELEVANCE) sets the meaning's, the words' in proportion."""
    known = RELEVANCE.get(embedder, OTHER_MODELS)
    if minimum is None:
        return known
    return Relevance(minimum, minimum * known.with_words / known.meaning)
