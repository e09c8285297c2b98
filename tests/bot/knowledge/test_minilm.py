"""MiniLMEmbedder: all-MiniLM-L6-v2 made into GGUF from the shipped weights gives sentence-transformers' own
similarities, finds a paraphrase that shares no word with the question, keeps its GGUF file across starts, and
makes it again when the file is damaged."""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.knowledge.embeddings import LocalEmbedder
from bot.knowledge.minilm import MiniLMEmbedder

VPN_QUESTION = "How can I reach the company network remotely?"
VPN_PASSAGE = (
    "To work from home, install WireGuard and import the office profile; then connect before opening the intranet."
)
UNRELATED = "The quarterly marketing budget was approved and the new logo ships with the spring campaign."
SMALL_TALK = ("thanks!", "lol", "good morning everyone")
# Cosine similarities that sentence-transformers' documentation prints for all-MiniLM-L6-v2.
PUBLISHED = (
    ("A man is eating food.", "A man is eating a piece of bread.", 0.7553),
    ("A man is riding a horse.", "A man is riding a white horse on an enclosed ground.", 0.7369),
    ("The cat sits outside", "The dog plays in the garden", 0.2838),
    ("A man is playing guitar", "A woman watches TV", -0.0327),
    ("The new movie is awesome", "The new movie is so great", 0.8939),
    ("The weather is lovely today.", "It's so sunny outside!", 0.6660),
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def files_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_file())


@pytest.fixture(scope="module")
def cache_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="minilm-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def minilm(cache_dir: Path) -> AsyncIterator[MiniLMEmbedder]:
    embedder = MiniLMEmbedder(cache_dir)
    await embedder.start()
    yield embedder
    await embedder.aclose()


async def test_similarities_are_the_published_ones(minilm: MiniLMEmbedder) -> None:
    for first, second, published in PUBLISHED:
        a, b = await minilm.embed([first, second])
        assert cosine(a, b) == pytest.approx(published, abs=0.002), (first, second)


async def test_a_paraphrase_sharing_no_word_is_found_where_wordllama_misses_it(minilm: MiniLMEmbedder) -> None:
    question, passage, unrelated = await minilm.embed([VPN_QUESTION, VPN_PASSAGE, UNRELATED])
    assert cosine(question, passage) > 0.45 and cosine(question, passage) > cosine(question, unrelated) + 0.3
    wordllama = LocalEmbedder()
    try:
        question, passage = await wordllama.embed([VPN_QUESTION, VPN_PASSAGE])
    finally:
        await wordllama.aclose()
    assert cosine(question, passage) < 0.3


async def test_small_talk_is_far_from_a_technical_passage(minilm: MiniLMEmbedder) -> None:
    passage, question, *small_talk = await minilm.embed([VPN_PASSAGE, VPN_QUESTION, *SMALL_TALK])
    for chat in small_talk:
        assert cosine(chat, passage) < cosine(question, passage) - 0.3


async def test_vectors_are_unit_length_and_keep_their_order(minilm: MiniLMEmbedder) -> None:
    texts = [f"message number {n} " + "word " * (n % 50) for n in range(60)] + ["", VPN_PASSAGE * 40]
    vectors = await minilm.embed(texts)
    assert len(vectors) == len(texts) and minilm.dimensions == 384 and minilm.name == "all-minilm-l6-v2"
    assert all(len(vector) == 384 and math.isclose(cosine(vector, vector), 1.0, abs_tol=1e-5) for vector in vectors)
    one_by_one = [(await minilm.embed([text]))[0] for text in [*texts[:3], texts[-1]]]
    assert all(cosine(a, b) > 0.9999 for a, b in zip(one_by_one, [*vectors[:3], vectors[-1]], strict=True))


async def test_a_burst_of_messages_never_holds_the_event_loop(minilm: MiniLMEmbedder) -> None:
    messages = [f"message {n}: did anyone see the deploy fail with a database timeout again?" for n in range(100)]
    lags: list[float] = []
    embedding = asyncio.create_task(minilm.embed(messages))
    while not embedding.done():
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - started - 0.001)
    assert len(await embedding) == 100
    assert len(lags) > 20  # the loop kept turning all along (the figures are bench.knowledge's)


async def test_a_question_is_not_held_behind_passages_being_added(minilm: MiniLMEmbedder) -> None:
    pages = [f"page {n}: " + "the VPN profile is imported into WireGuard before connecting. " * 30 for n in range(15)]
    adding = asyncio.create_task(minilm.embed(pages))  # ~0.1 s of a core each
    await asyncio.sleep(0.05)
    [question] = await minilm.embed(["How do I connect to the VPN from home?"])
    assert not adding.done()  # answered while the pages are still being embedded, not after them
    assert len(question) == 384 and len(await adding) == 15


async def test_a_second_start_reuses_the_file(minilm: MiniLMEmbedder, cache_dir: Path) -> None:
    made = minilm.model_path
    assert made is not None and made.parent == cache_dir and files_in(cache_dir) == [made]
    written = made.stat().st_mtime_ns
    again = MiniLMEmbedder(cache_dir)
    try:
        started = time.perf_counter()
        await again.start()
        assert time.perf_counter() - started < 5.0
        assert again.model_path == made and made.stat().st_mtime_ns == written
        assert await again.embed([VPN_QUESTION]) == await minilm.embed([VPN_QUESTION])
    finally:
        await again.aclose()


async def test_a_damaged_file_is_made_again(minilm: MiniLMEmbedder, cache_dir: Path) -> None:
    damaged_dir = cache_dir / "damaged"
    damaged_dir.mkdir()
    assert minilm.model_path is not None
    damaged = damaged_dir / minilm.model_path.name
    data = bytearray(minilm.model_path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the weights: llama.cpp alone would load it
    damaged.write_bytes(bytes(data))
    abandoned = damaged_dir / ".minilm-abandoned.part"  # a write that a crash interrupted, an hour ago
    abandoned.write_bytes(b"GGUF")
    os.utime(abandoned, (time.time() - 3600, time.time() - 3600))
    writing = damaged_dir / ".minilm-writing.part"  # another process's write, under way
    writing.write_bytes(b"GGUF")
    embedder = MiniLMEmbedder(damaged_dir)
    try:
        await embedder.start()
        assert embedder.model_path == damaged and damaged.read_bytes() == minilm.model_path.read_bytes()
        assert files_in(damaged_dir) == sorted([damaged, writing])
        assert await embedder.embed([VPN_QUESTION]) == await minilm.embed([VPN_QUESTION])
    finally:
        await embedder.aclose()
