"""The knowledge tests' real things: one embedded PostgreSQL per module, and WordLlama, the embedded default's
embedding model (256 dimensions, its weights inside the package)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import wordllama
from wordllama import WordLlama

from bot.knowledge.embedded import EmbeddedDatabase, start_embedded, stop_embedded
from fakes.harness.server_folders import server_folder

DIMENSIONS = 256
MODEL = "wordllama-l2-supercat-256"  # what the bot calls it (bot.knowledge.embeddings.WORDLLAMA_NAME)


class Embedder:
    """WordLlama, loaded from the files inside the package: its loader looks for the tokenizer in a folder
    named `tokenizer`, the package ships it in `tokenizers`, which is the cache layout it reads too."""

    def __init__(self) -> None:
        self.model = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.model.embed(list(texts), norm=True), dtype=np.float32)

    def vector(self, text: str) -> np.ndarray:
        return self.vectors([text])[0]


@pytest.fixture(scope="module")
def database() -> Iterator[EmbeddedDatabase]:
    # Not under pytest's tmp_path: pytest keeps the last three runs' folders, and a run in another worktree
    # removes older ones, a running server's files included.
    folder = server_folder("knowledge-test-")  # nobody's, when root
    database = start_embedded(folder / "pg")
    yield database
    stop_embedded(folder / "pg")
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()
