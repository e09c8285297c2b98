"""The fake rerank server answers as Text Embeddings Inference and as Cohere's and Jina's APIs do, refusals
included, so the bot's reranker is tested against what the real servers send."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from fakes.rerank_server import FakeRerankServer

DOCUMENTS = ["the office VPN needs WireGuard", "pizza on Friday", "reset the VPN password on id.example.com"]


@pytest.fixture
async def server() -> AsyncIterator[FakeRerankServer]:
    server = FakeRerankServer(api_key="k")
    await server.start()
    yield server
    await server.stop()


async def post(server: FakeRerankServer, path: str, body: Any, key: str = "k") -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.base_url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}) as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_tei_shape_scores_every_text_best_first(server: FakeRerankServer) -> None:
    status, ranks = await post(server, "/rerank", {"query": "reset VPN password", "texts": DOCUMENTS})
    assert status == 200
    assert [rank["index"] for rank in ranks] == [2, 0, 1]
    assert ranks[0]["score"] == 1.0 and ranks[-1]["score"] == 0.0


async def test_cohere_shape_gives_top_n_results_for_its_model(server: FakeRerankServer) -> None:
    documents: list[Any] = [DOCUMENTS[0], {"text": DOCUMENTS[1]}, DOCUMENTS[2]]
    body = {"model": "rerank-v3.5", "query": "reset VPN password", "documents": documents, "top_n": 2}
    status, reply = await post(server, "/v2/rerank", body)
    assert status == 200
    assert [result["index"] for result in reply["results"]] == [2, 0]
    assert {"index", "relevance_score"} == set(reply["results"][0])


@pytest.mark.parametrize(
    ("path", "body", "key", "expected"),
    [
        ("/rerank", {"query": "q"}, "k", 422),
        ("/rerank", {"query": "q", "texts": ["t"] * 33}, "k", 413),
        ("/v1/rerank", {"query": "q", "documents": ["t"]}, "k", 400),
        ("/rerank", {"query": "q", "texts": ["t"]}, "wrong", 401),
    ],
)
async def test_what_the_real_servers_refuse_is_refused(
    server: FakeRerankServer, path: str, body: Any, key: str, expected: int
) -> None:
    status, _ = await post(server, path, body, key)
    assert status == expected
