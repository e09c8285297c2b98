"""Embedders: WordLlama's shipped model finds meaning, and the remote embedders give the same vectors through the
fake servers, in order, or fail with a reason an operator understands."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bot.knowledge.embeddings import LocalEmbedder

VPN_QUESTION = "Where is the guide for connecting to the VPN?"
VPN_PASSAGE = (
    "How to set up remote access to the office network: install WireGuard, import the configuration file the IT "
    "desk sent you, and turn the tunnel on before opening the intranet."
)
UNRELATED = "The quarterly marketing budget was approved and the new logo ships with the spring campaign."
SMALL_TALK = ("thanks!", "lol")

pytestmark = pytest.mark.asyncio(loop_scope="module")


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local() -> AsyncIterator[LocalEmbedder]:
    embedder = LocalEmbedder()
    await embedder.start()
    yield embedder
    await embedder.aclose()


async def test_a_paraphrase_is_nearer_than_an_unrelated_text(local: LocalEmbedder) -> None:
    question, passage, unrelated = await local.embed([VPN_QUESTION, VPN_PASSAGE, UNRELATED])
    assert cosine(question, passage) > cosine(question, unrelated) + 0.1


async def test_small_talk_is_far_from_a_technical_passage(local: LocalEmbedder) -> None:
    passage, question, *small_talk = await local.embed([VPN_PASSAGE, VPN_QUESTION, *SMALL_TALK])
    for chat in small_talk:
        assert cosine(chat, passage) < cosine(question, passage) - 0.2


async def test_vectors_are_unit_length_and_keep_their_order(local: LocalEmbedder) -> None:
    texts = [f"message number {n} " + "word " * (n % 50) for n in range(300)] + ["", VPN_PASSAGE * 20]
    vectors = await local.embed(texts)
    assert len(vectors) == len(texts) and local.dimensions == 256 and local.name == "wordllama-l2-supercat-256"
    assert all(len(vector) == 256 and math.isclose(cosine(vector, vector), 1.0, abs_tol=1e-5) for vector in vectors)
    one_by_one = [(await local.embed([text]))[0] for text in texts[:5]]
    assert all(cosine(a, b) > 0.9999 for a, b in zip(one_by_one, vectors[:5], strict=True))


async def test_a_burst_of_a_thousand_messages_never_holds_the_event_loop(local: LocalEmbedder) -> None:
    messages = [f"message {n}: did anyone see the deploy fail with a database timeout again?" for n in range(1000)]
    lags: list[float] = []
    embedding = asyncio.create_task(local.embed(messages))
    while not embedding.done():
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - started - 0.001)
    assert len(await embedding) == 1000
    assert max(lags) < 0.05
