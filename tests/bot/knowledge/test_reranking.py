"""Reranking as a person sees it: the passage a cross-encoder scores highest is the one the answer gets first, even
when fusion ranked it past the cut; a reranker that is down, slow or talking nonsense costs only its order (the
passages still come, in fusion's order, and the operator is warned once); small talk still gets no passage. The
real engine (embedded PostgreSQL), WordLlama's embeddings, the bot's reranking client against the loopback rerank
server in both its shapes (Text Embeddings Inference's, Cohere's and Jina's)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence

import pytest
from structlog.testing import capture_logs

from bot.core import Turn
from bot.knowledge.embedded import EmbeddedDatabase
from bot.knowledge.embeddings import LocalEmbedder
from bot.knowledge.passages import DEPLOYMENT_SCOPE, Access, Hit, Passage
from bot.knowledge.postgres import PostgresEngine
from bot.knowledge.rerank import RemoteReranker, Reranking, make_reranking
from bot.knowledge.service import Knowledge
from bot.reply.surface import SurfaceLimits
from bot.state.store import HistoryStore
from bot.turn.prompt import MistralTokenCounter
from config.env import Env
from config.settings import load_settings
from fakes.citing_model import NOT_COVERED, citing_responder, passages_in
from fakes.memory_surface import MemorySurface
from fakes.model_server import FakeModelServer
from fakes.rerank_server import FakeRerankServer, shared_words
from tests.conftest import make_core, remote_model_settings

QUESTION = "How do I reset my VPN password?"
# Fusion puts these first: they repeat the question's words. Each is about the VPN's password, none says how to reset
# it.
NEAR_MISSES = (
    "VPN password reset: the VPN password must be reset every 90 days, the VPN says so.",
    "Reset VPN password policy: a VPN password reset is logged; do not reset the VPN password twice a day.",
    "My VPN password reset did not work yesterday, is the VPN down? How do I know my VPN password is reset?",
    "Password rules for the VPN: twelve characters, and the VPN password cannot be reset to an old password.",
    "The VPN password reset audit is due in March: every VPN password reset of last year is reviewed.",
)
# What answers it, in fewer of its words: the one a cross-encoder puts first.
ANSWER = "Forgot it? Open id.example.com, choose Forgot password, and a reset link for the VPN reaches your phone."
OFF_TOPIC = (
    "The pizza order for Friday's lunch is two margheritas and a vegetarian one.",
    "Happy birthday Maria, the cake is in the fridge on the second floor!",
)
PASSAGES = [
    *(
        Passage(DEPLOYMENT_SCOPE, "dir:vpn.md", f"dir:vpn.md#{number}", text, "vpn.md")
        for number, text in enumerate((*NEAR_MISSES, ANSWER))
    ),
    *(
        Passage(DEPLOYMENT_SCOPE, "dir:office.md", f"dir:office.md#{number}", text, "office.md")
        for number, text in enumerate(OFF_TOPIC)
    ),
]
EVERYONE = Access((DEPLOYMENT_SCOPE,))
LIMIT = 3


def cross_encoder(query: str, text: str) -> float:
    """What a cross-encoder would say: the passage that answers the question far above the rest."""
    return 0.98 if "id.example.com" in text else 0.3 * shared_words(query, text)


@pytest.fixture
async def reranker() -> AsyncIterator[FakeRerankServer]:
    server = FakeRerankServer(scorer=cross_encoder, api_key="rk-test")
    await server.start()
    yield server
    await server.stop()


async def started(database: EmbeddedDatabase, reranking: Reranking | None = None) -> Knowledge:
    knowledge = Knowledge(PostgresEngine(database.url), LocalEmbedder(), reranking=reranking)
    await knowledge.start()
    await knowledge.add(PASSAGES)
    return knowledge


@pytest.fixture
async def fused(database: EmbeddedDatabase) -> list[Hit]:
    """The relevant passages in fusion's order, as many as the reranker is given."""
    knowledge = await started(database)
    try:
        return await knowledge.search(QUESTION, EVERYONE, 30)
    finally:
        await knowledge.aclose()


def reranking(server: FakeRerankServer, model: str | None = None, **overrides: str) -> Reranking:
    values = {"RERANK_BASE_URL": server.base_url, "RERANK_API_KEY": "rk-test", **overrides}
    if model is not None:
        values["RERANK_MODEL"] = model
    made = make_reranking(load_settings(Env(values)).knowledge.rerank)
    assert made is not None
    return made


def surface() -> MemorySurface:
    return MemorySurface(SurfaceLimits(max_length=4000, min_edit_interval=0.05))


def texts(hits: Sequence[Hit]) -> list[str]:
    return [hit.passage.text for hit in hits]


def test_fusion_ranks_the_answer_past_the_cut(fused: list[Hit]) -> None:
    # The case the reranker is for: the answer is relevant (the threshold lets it through), but not in the first 3.
    assert ANSWER in texts(fused) and ANSWER not in texts(fused)[:LIMIT]
    assert not set(OFF_TOPIC) & set(texts(fused))


async def test_the_passage_the_reranker_scores_highest_comes_first_from_a_tei_server(
    database: EmbeddedDatabase, reranker: FakeRerankServer, fused: list[Hit]
) -> None:
    knowledge = await started(database, reranking(reranker))
    try:
        hits = await knowledge.search(QUESTION, EVERYONE, LIMIT)
    finally:
        await knowledge.aclose()
    assert texts(hits)[0] == ANSWER and len(hits) == LIMIT
    # Text Embeddings Inference's request: the relevant candidates, each with what it is about, and no model.
    [request] = reranker.requests
    assert request.path == "/rerank" and request.headers["Authorization"] == "Bearer rk-test"
    assert request.body["query"] == QUESTION and request.body["truncate"] is True and "model" not in request.body
    assert request.body["texts"] == [f"vpn.md\n{hit.passage.text}" for hit in fused]


async def test_a_cohere_or_jina_shaped_api_is_asked_for_its_model(
    database: EmbeddedDatabase, reranker: FakeRerankServer, fused: list[Hit]
) -> None:
    rerank = reranking(reranker, "rerank-v3.5", RERANK_BASE_URL=f"{reranker.base_url}/v2")
    knowledge = await started(database, rerank)
    try:
        hits = await knowledge.search(QUESTION, EVERYONE, LIMIT)
    finally:
        await knowledge.aclose()
    assert texts(hits)[0] == ANSWER
    [request] = reranker.requests
    assert request.path == "/v2/rerank"
    assert request.body["model"] == "rerank-v3.5" and request.body["top_n"] == len(fused)
    assert len(request.body["documents"]) == len(fused) and "texts" not in request.body


async def test_an_answer_cites_the_reranked_passage_first(
    database: EmbeddedDatabase,
    reranker: FakeRerankServer,
    model_server: FakeModelServer,
    redis_store: HistoryStore,
    token_counter: MistralTokenCounter,
) -> None:
    knowledge = await started(database, reranking(reranker))
    model_server.responder = citing_responder
    core = make_core(remote_model_settings(model_server.base_url), redis_store, token_counter, knowledge=knowledge)
    small_talk = surface()
    try:
        await core.answer(Turn("rerank:t1", "42", "Ada", QUESTION, knowledge=EVERYONE), surface())
        await core.answer(Turn("rerank:t2", "42", "Ada", "thanks, see you!", knowledge=EVERYONE), small_talk)
    finally:
        await core.aclose()
        await knowledge.aclose()
    first, small = (passages_in(request.body) for request in model_server.requests)
    assert first[1] == ANSWER  # the model reads it first, as [1]
    assert list(first.values()).count(ANSWER) == 1
    assert small == {} and len(reranker.requests) == 1  # small talk: no passage, the reranker not even asked
    assert NOT_COVERED in small_talk.messages[-1] and "Sources:" not in small_talk.messages[-1]


async def test_small_talk_gets_no_passage_and_the_reranker_is_not_asked(
    database: EmbeddedDatabase, reranker: FakeRerankServer
) -> None:
    knowledge = await started(database, reranking(reranker))
    try:
        for chat in ("good morning everyone", "how are you today?", "ok see you tomorrow"):
            assert await knowledge.search(chat, EVERYONE, LIMIT) == []
    finally:
        await knowledge.aclose()
    assert reranker.requests == []


async def test_a_reranker_that_is_down_costs_only_its_order_and_is_warned_of_once(
    database: EmbeddedDatabase, reranker: FakeRerankServer, fused: list[Hit]
) -> None:
    rerank = reranking(reranker)
    rerank.retry_seconds = 0.0  # asked again at once, not after RETRY_SECONDS
    failures: list[str] = []
    rerank.count_failure = failures.append
    knowledge = await started(database, rerank)
    try:
        await reranker.stop()
        with capture_logs() as logs:
            during = [await knowledge.search(QUESTION, EVERYONE, LIMIT) for _ in range(3)]
            await reranker.start()  # the same port
            after = await knowledge.search(QUESTION, EVERYONE, LIMIT)
    finally:
        await knowledge.aclose()
    assert all(texts(hits) == texts(fused)[:LIMIT] for hits in during)  # the answer still gets its passages
    assert failures == ["unreachable"] * 3
    warned = [log for log in logs if log["event"] == "rerank_failed"]
    assert len(warned) == 1 and warned[0]["log_level"] == "warning"
    assert reranker.base_url in warned[0]["error"] and "could not be reached" in warned[0]["error"]
    assert texts(after)[0] == ANSWER
    assert [log["event"] for log in logs if log["event"].startswith("rerank_")] == ["rerank_failed", "rerank_recovered"]


async def test_a_slow_reranker_is_not_waited_for_past_its_time(
    database: EmbeddedDatabase, reranker: FakeRerankServer, fused: list[Hit]
) -> None:
    rerank = reranking(reranker, RERANK_TIMEOUT_SECONDS="0.2")
    failures: list[str] = []
    rerank.count_failure = failures.append
    knowledge = await started(database, rerank)
    reranker.delay_seconds = 5.0
    try:
        with capture_logs() as logs:
            began = time.monotonic()
            slow = await knowledge.search(QUESTION, EVERYONE, LIMIT)
            first = time.monotonic() - began
            began = time.monotonic()
            resting = await knowledge.search(QUESTION, EVERYONE, LIMIT)  # within RETRY_SECONDS: not asked at all
            second = time.monotonic() - began
    finally:
        await knowledge.aclose()
    assert texts(slow) == texts(resting) == texts(fused)[:LIMIT]
    assert first < 1.0 and second < 0.15
    assert failures == ["timeout"] and len(reranker.requests) == 1
    [warned] = [log for log in logs if log["event"] == "rerank_failed"]
    assert "0.2 s" in warned["error"]


@pytest.mark.parametrize(
    ("failure", "kind", "said"),
    [
        ("http_500", "http", "answered HTTP 500"),
        ("http_503", "http", "answered HTTP 503"),
        ("html_200", "reply", "something other than JSON"),
        ("missing", "reply", "texts"),
        ("bad_index", "reply", "without a score per text"),
    ],
)
async def test_a_reply_that_is_no_scores_leaves_fusions_order(
    database: EmbeddedDatabase, reranker: FakeRerankServer, fused: list[Hit], failure: str, kind: str, said: str
) -> None:
    rerank = reranking(reranker)
    failures: list[str] = []
    rerank.count_failure = failures.append
    knowledge = await started(database, rerank)
    reranker.failure = failure
    try:
        with capture_logs() as logs:
            hits = await knowledge.search(QUESTION, EVERYONE, LIMIT)
    finally:
        await knowledge.aclose()
    assert texts(hits) == texts(fused)[:LIMIT]
    assert failures == [kind]
    [warned] = [log for log in logs if log["event"] == "rerank_failed"]
    assert said in warned["error"]


async def test_a_wrong_key_is_an_http_failure(database: EmbeddedDatabase, reranker: FakeRerankServer) -> None:
    rerank = reranking(reranker, RERANK_API_KEY="rk-wrong")
    failures: list[str] = []
    rerank.count_failure = failures.append
    knowledge = await started(database, rerank)
    try:
        hits = await knowledge.search(QUESTION, EVERYONE, LIMIT)
    finally:
        await knowledge.aclose()
    assert len(hits) == LIMIT and failures == ["http"]


async def test_more_texts_than_a_tei_request_holds_are_sent_in_several(reranker: FakeRerankServer) -> None:
    client = RemoteReranker(reranker.base_url, None, api_key="rk-test")
    passages = [f"passage {number} about {'vpn ' * (number % 3)}" for number in range(70)]
    try:
        scores = await client.scores("vpn", passages)
    finally:
        await client.aclose()
    assert scores == [cross_encoder("vpn", text) for text in passages]
    assert sorted(len(request.body["texts"]) for request in reranker.requests) == [6, 32, 32]
