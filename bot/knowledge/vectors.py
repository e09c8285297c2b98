"""What every embedder shares: the one error it raises, and vectors made unit-length."""

from __future__ import annotations

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
