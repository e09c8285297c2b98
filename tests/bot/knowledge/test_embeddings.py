"""Embedders: WordLlama's shipped model finds meaning, and the remote embedders give the same vectors through the
fake servers, in order, or fail with a reason an operator understands."""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from bot.knowledge.embeddings import EmbeddingError, HubEmbedder, LocalEmbedder, OpenAIEmbedder, make_embedder
from bot.knowledge.minilm import MiniLMEmbedder
from bot.knowledge.passages import Embedder
from config.env import Env
from config.settings import load_settings
from fakes.model_server import FakeModelServer

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
    assert await local.embed([]) == []
    assert len(vectors) == len(texts) and local.dimensions == 256 and local.name == "wordllama-l2-supercat-256"
    assert all(len(vector) == 256 and math.isclose(cosine(vector, vector), 1.0, abs_tol=1e-5) for vector in vectors)
    one_by_one = [(await local.embed([text]))[0] for text in texts[:5]]
    assert all(cosine(a, b) > 0.9999 for a, b in zip(one_by_one, vectors[:5], strict=True))


async def test_a_burst_of_a_thousand_messages_never_holds_the_event_loop(local: LocalEmbedder) -> None:
    messages = [f"message {n}: did anyone see the deploy fail with a database timeout again?" for n in range(1000)]
    documents = [f"page {n}: " + VPN_PASSAGE * 12 for n in range(100)]  # ~300 words each: ~0.2 s of work in all
    lags: list[float] = []
    embedding = asyncio.create_task(local.embed(messages + documents))
    while not embedding.done():
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - started - 0.001)
    assert len(await embedding) == 1100
    assert len(lags) > 20  # the loop kept turning all along (the figures are bench.knowledge's)


async def test_a_thousand_calls_at_once_share_batches_and_each_gets_its_own_vector(local: LocalEmbedder) -> None:
    messages = [f"message {n}: the build on branch {n % 17} failed again" for n in range(1000)]
    calls = asyncio.gather(*(local.embed([message]) for message in messages))
    cancelled = asyncio.ensure_future(local.embed(["this caller gives up"]))
    cancelled.cancel()
    await asyncio.sleep(0)  # every call started (the callers' own work, not the embedder's)
    one_by_one = [vector for [vector] in await calls]
    together = await local.embed(messages)
    assert all(cosine(a, b) > 0.9999 for a, b in zip(one_by_one, together, strict=True))


async def test_a_question_waits_behind_one_batch_of_a_burst_at_most(local: LocalEmbedder) -> None:
    documents = [f"page {n}: " + VPN_PASSAGE * 15 for n in range(200)]  # ~0.3 s of work in all
    burst = asyncio.create_task(local.embed(documents))
    await asyncio.sleep(0.02)
    await local.embed([VPN_QUESTION])
    assert not burst.done()  # answered between the burst's batches, not after them
    await burst


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer() as fake:
        yield fake


@pytest.fixture(autouse=True)
def behaving(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "server" in request.fixturenames:
        fake: FakeModelServer = request.getfixturevalue("server")
        fake.embeddings.failure, fake.embeddings.delay_seconds, fake.embeddings.token_level = None, 0.0, False


def openai_embedder(server: FakeModelServer, timeout_seconds: float = 10.0) -> OpenAIEmbedder:
    return OpenAIEmbedder(f"{server.base_url}/v1", "fake-embedder", token="hf_x", timeout_seconds=timeout_seconds)


def hub_embedder(server: FakeModelServer, timeout_seconds: float = 10.0) -> HubEmbedder:
    endpoint = f"{server.base_url}/hf-inference/models/BAAI/bge-small-en-v1.5/pipeline/feature-extraction"
    return HubEmbedder(endpoint, token=None, provider=None, timeout_seconds=timeout_seconds)


REMOTES = {"openai": openai_embedder, "hub": hub_embedder}
TEXTS = [
    f"{n}: " + ("the release is on friday " if n % 2 else "where is the vpn guide? ") * (1 + n % 7) for n in range(70)
]


@pytest.mark.parametrize("kind", sorted(REMOTES))
async def test_a_remote_embedder_gives_the_local_vectors_in_order_over_batches(
    kind: str, server: FakeModelServer, local: LocalEmbedder
) -> None:
    remote: Embedder = REMOTES[kind](server)
    await remote.start()
    try:
        assert remote.dimensions == 256
        assert await remote.embed([]) == []
        vectors = await remote.embed(TEXTS)
    finally:
        await remote.aclose()
    expected = await local.embed(TEXTS)
    assert all(
        cosine(a, b) > 0.9999 and math.isclose(cosine(a, a), 1.0, abs_tol=1e-5)
        for a, b in zip(vectors, expected, strict=True)
    )
    assert len(vectors) == 70 and len(server.embeddings.requests) >= 4  # the probe, then 32 + 32 + 6


async def test_token_vectors_are_averaged_into_the_texts_vector(server: FakeModelServer, local: LocalEmbedder) -> None:
    server.embeddings.token_level = True
    remote = hub_embedder(server)
    await remote.start()
    try:
        vectors = await remote.embed(TEXTS[:9])
    finally:
        await remote.aclose()
    assert all(cosine(a, b) > 0.9999 for a, b in zip(vectors, await local.embed(TEXTS[:9]), strict=True))


@pytest.mark.parametrize("kind", sorted(REMOTES))
@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        ("http_503", "answered HTTP 503"),
        ("http_401", "answered HTTP 401"),
        ("html_200", "something other than JSON|text/html"),
        ("wrong_count", "for 2 texts"),
    ],
)
async def test_a_failing_server_is_one_error_saying_why(
    kind: str, failure: str, reason: str, server: FakeModelServer
) -> None:
    remote: Embedder = REMOTES[kind](server)
    await remote.start()
    server.embeddings.failure = failure
    try:
        with pytest.raises(EmbeddingError, match=reason) as raised:
            await remote.embed(["thanks!", "lol"])
    finally:
        await remote.aclose()
    assert str(raised.value).startswith("The embedding ") and str(raised.value).endswith(".")


@pytest.mark.parametrize("kind", sorted(REMOTES))
async def test_a_slow_server_is_given_up(kind: str, server: FakeModelServer) -> None:
    server.embeddings.delay_seconds = 2.0
    remote: Embedder = REMOTES[kind](server, timeout_seconds=0.3)
    try:
        with pytest.raises(EmbeddingError, match="did not answer in time"):
            await remote.start()
    finally:
        await remote.aclose()


@pytest.mark.parametrize("kind", sorted(REMOTES))
async def test_a_server_that_is_down_is_named(kind: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = FakeModelServer(port=port)  # never started: nothing listens there
    remote: Embedder = REMOTES[kind](down)
    try:
        with pytest.raises(EmbeddingError, match=f"127.0.0.1:{port}.* could not be reached"):
            await remote.start()
    finally:
        await remote.aclose()


async def test_the_settings_choose_the_embedder() -> None:
    def chosen(**values: str) -> Embedder:
        return make_embedder(load_settings(Env(values)))

    assert isinstance(chosen(), MiniLMEmbedder)
    assert isinstance(chosen(EMBEDDING_MODEL="wordllama"), LocalEmbedder)
    assert isinstance(chosen(EMBEDDING_MODEL="BAAI/bge-small-en-v1.5", HF_TOKEN="hf_x"), HubEmbedder)
    assert isinstance(
        chosen(EMBEDDING_MODEL="nomic-embed-text", EMBEDDING_BASE_URL="http://ollama:11434/v1"), OpenAIEmbedder
    )
