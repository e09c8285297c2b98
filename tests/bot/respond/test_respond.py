"""The decision whether a message nobody addressed to the bot gets an answer (bot.respond.decision), against the
loopback model server for ROUTER_MODEL: chatter never reaches any model, the classifier's YES and NO are followed, a
failing or slow classifier means silence, and every decision is counted by platform, outcome and reason."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.knowledge.passages import Access
from bot.metrics import Metrics
from bot.model.backends import InferenceBackend
from bot.respond.decision import ROUTER_SECONDS, Responder, RespondMode, Unprompted
from config.models import ModelCatalog, ModelChoice
from config.respond import RespondSettings
from fakes.model_server import FakeModelServer, Script
from tests.conftest import remote_model_settings

ROUTER = "HuggingFaceTB/SmolLM2-360M-Instruct"


async def no_access() -> Access | None:
    return None


def message(text: str, **fields: Any) -> Unprompted:
    return Unprompted("discord", "c1", "m1", text, **fields)


@pytest.fixture
async def responder(model_server: FakeModelServer) -> AsyncIterator[tuple[Responder, Metrics]]:
    settings = remote_model_settings(model_server.base_url, timeout_seconds=10.0, loading_retries=0)
    catalog = ModelCatalog((ModelChoice(settings.model_id, settings.model_id, False, settings),))
    backend, metrics = InferenceBackend(), Metrics()
    yield Responder(backend, catalog, RespondSettings(router_model=ROUTER), metrics, lambda: None), metrics
    await backend.aclose()


def router_says(model_server: FakeModelServer, verdicts: dict[str, Script]) -> None:
    def respond(body: dict[str, Any]) -> Script | None:
        asked = str(body["messages"][-1]["content"])
        return next((script for marker, script in verdicts.items() if marker in asked), None)

    model_server.responder = respond


def counted(metrics: Metrics, outcome: str, reason: str) -> float:
    labels = {"platform": "discord", "outcome": outcome, "reason": reason}
    return metrics.registry.get_sample_value("bot_unprompted_messages_total", labels) or 0.0


async def test_chatter_never_reaches_a_model(
    responder: tuple[Responder, Metrics], model_server: FakeModelServer
) -> None:
    decide, metrics = responder
    for text, reason in [
        ("thanks!", "small_talk"),
        ("ok cool", "small_talk"),
        ("🎉🎉", "small_talk"),
        ("I'm heading out for lunch now", "not_a_question"),
        ("   ", "empty"),
    ]:
        decision = await decide.decide(message(text), RespondMode.QUESTIONS, no_access)
        assert (decision.answer, decision.reason) == (False, reason), text
    assert model_server.requests == []
    assert counted(metrics, "skipped", "small_talk") == 3
    skipped = await decide.decide(message("how do I deploy?", to_someone_else=True), RespondMode.QUESTIONS, no_access)
    assert (skipped.answer, skipped.reason) == (False, "to_someone_else")


async def test_the_router_model_decides_what_the_knowledge_cannot(
    responder: tuple[Responder, Metrics], model_server: FakeModelServer
) -> None:
    decide, metrics = responder
    router_says(model_server, {"deploy": Script(text="YES"), "favourite": Script(text="No.")})
    yes = await decide.decide(message("How do I deploy the app to staging?"), RespondMode.QUESTIONS, no_access)
    no = await decide.decide(message("What's everyone's favourite pizza?"), RespondMode.QUESTIONS, no_access)
    assert (yes.answer, yes.reason) == (True, "router_yes")
    assert (no.answer, no.reason, no.unanswerable) == (False, "router_no", True)
    [first, second] = model_server.requests
    assert first.model == ROUTER and first.body["max_tokens"] == 3
    assert "Reply with one word: YES or NO" in first.body["messages"][0]["content"]
    assert second.body["messages"][-1]["content"] == "What's everyone's favourite pizza?"
    assert counted(metrics, "answered", "router_yes") == 1 and counted(metrics, "skipped", "router_no") == 1


async def test_a_failing_or_slow_router_means_silence(
    responder: tuple[Responder, Metrics], model_server: FakeModelServer
) -> None:
    decide, _ = responder
    router_says(
        model_server,
        {"broken": Script(text="YES", failure="http_500"), "slow": Script(text="YES", first_token_delay=10)},
    )
    failed = await decide.decide(message("Why is the broken build red?"), RespondMode.QUESTIONS, no_access)
    started = time.monotonic()
    slow = await decide.decide(message("Why is the slow build red?"), RespondMode.QUESTIONS, no_access)
    assert (failed.answer, slow.answer) == (False, False)
    assert time.monotonic() - started < ROUTER_SECONDS + 1


async def test_all_answers_anything_with_words_in_it(
    responder: tuple[Responder, Metrics], model_server: FakeModelServer
) -> None:
    decide, _ = responder
    for text in ("thanks!", "lol", "I'm heading out for lunch now"):
        assert (await decide.decide(message(text), RespondMode.ALL, no_access)).answer
    assert not (await decide.decide(message(""), RespondMode.ALL, no_access)).answer
    assert model_server.requests == []
