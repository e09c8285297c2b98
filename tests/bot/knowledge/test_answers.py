"""Answers from knowledge as a person sees them: the relevant passages reach the model numbered, the answer's marks
become links and its sources are listed; small talk gets none; what the asker can't read never reaches the prompt;
a model that gets tools can search again. The core with the real AsyncInferenceClient against the loopback model
server, real Redis, the real engine (embedded PostgreSQL) and the embedded default embedder (all-MiniLM-L6-v2)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.core import ChatCore, Turn
from bot.knowledge.embedded import EmbeddedDatabase
from bot.knowledge.minilm import MiniLMEmbedder
from bot.knowledge.passages import DEPLOYMENT_SCOPE, Access, Passage
from bot.knowledge.postgres import PostgresEngine
from bot.knowledge.service import Knowledge
from bot.reply.surface import SurfaceLimits
from bot.state.store import HistoryStore
from bot.tools.toolbox import ToolBox
from bot.turn.prompt import MistralTokenCounter
from bot.usage.days import day_of
from bot.usage.totals import ModelUsage
from config.respond import RespondSettings
from config.tools import ToolSettings
from fakes.citing_model import NOT_COVERED, citing_responder, passages_in
from fakes.memory_surface import MemorySurface
from fakes.model_server import FakeModelServer, Script, ToolCallScript
from tests.conftest import make_core, remote_model_settings

GUILD = "discord:9001"
RELEASE = Passage(
    GUILD, "channel:1", "m1", "Decision: the 2.0 release ships on Friday the 12th after the QA sign-off.", "#releases",
    url="https://discord.com/channels/9001/1/1001", channel="1", author="7", updated_at=1_764_000_000.0,
)  # fmt: skip
SECRET = Passage(
    GUILD, "channel:2", "m2", "The staff bonus budget for the release is 40,000 euros.", "#staff",
    url="https://discord.com/channels/9001/2/1002", channel="2", author="8",
)  # fmt: skip
VPN = Passage(
    DEPLOYMENT_SCOPE, "dir:vpn.md", "dir:vpn.md#1",
    "To work from home, install WireGuard and import the office profile; then connect before opening the intranet.",
    "vpn.md",
)  # fmt: skip


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture
async def knowledge(database: EmbeddedDatabase, models: Path) -> AsyncIterator[Knowledge]:
    knowledge = Knowledge(PostgresEngine(database.url), MiniLMEmbedder(models))
    await knowledge.start()
    await knowledge.add([RELEASE, SECRET, VPN])
    yield knowledge
    await knowledge.aclose()


@pytest.fixture
async def core(
    model_server: FakeModelServer,
    redis_store: HistoryStore,
    token_counter: MistralTokenCounter,
    knowledge: Knowledge,
) -> AsyncIterator[ChatCore]:
    model_server.responder = citing_responder
    settings = remote_model_settings(model_server.base_url)
    core = make_core(settings, redis_store, token_counter, knowledge=knowledge)
    yield core
    await core.aclose()


def surface() -> MemorySurface:
    return MemorySurface(SurfaceLimits(max_length=4000, min_edit_interval=0.05))


def text_of(shown: MemorySurface) -> str:
    return "\n".join(shown.messages)


def turn(text: str, thread: str = "knowledge:t1", readable: frozenset[str] = frozenset({"1", "2"})) -> Turn:
    access = Access((GUILD, DEPLOYMENT_SCOPE), readable)
    return Turn(thread=thread, author_id="42", author_name="Ada", text=text, knowledge=access)


async def test_an_answer_cites_the_channel_message_it_used_with_its_link(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    shown = surface()
    await core.answer(turn("When does the 2.0 release ship?"), shown)
    passages = passages_in(model_server.requests[-1].body)
    assert RELEASE.text in passages.values()
    assert "ships on Friday" in text_of(shown)
    assert "[[1]](<https://discord.com/channels/9001/1/1001>)" in text_of(shown)
    assert "Sources:\n" in text_of(shown) and "<https://discord.com/channels/9001/1/1001> #releases" in text_of(shown)


async def test_a_question_in_other_words_finds_the_document_by_meaning(
    core: ChatCore, model_server: FakeModelServer, token_counter: MistralTokenCounter
) -> None:
    shown = surface()
    question = "How can I reach the company network remotely?"
    await core.answer(turn(question), shown)
    assert VPN.text in passages_in(model_server.requests[-1].body).values()
    assert "vpn.md" in text_of(shown).split("Sources:")[-1]
    # Its search counts: the question as input tokens of the embedding model, beside the answer's model.
    today = await core.accounting.ledger.totals("knowledge:42", [day_of(time.time())], kind="person")
    embedding = today.by_model["all-minilm-l6-v2"]
    assert (embedding.prompt_tokens, embedding.completion_tokens, embedding.turns) == (
        token_counter.count(question),
        0,
        0,
    )
    assert today.turns == 1


async def test_indexing_a_servers_messages_counts_as_its_use_and_no_persons(
    core: ChatCore, knowledge: Knowledge, token_counter: MistralTokenCounter
) -> None:
    # The embedding model's input (the message with its channel's name), in the server's /usage: no answer, in no
    # one's counts or top list.
    freeze = Passage(
        GUILD, "channel:1", "m3", "Heads-up: the staging freeze starts on Thursday at noon.", "#releases",
        url="https://discord.com/channels/9001/1/1003", channel="1", author="7",
    )  # fmt: skip
    await knowledge.add([freeze, replace(VPN, key="dir:vpn.md#2")])  # the deployment's folder: no server's
    days = [day_of(time.time())]
    deadline = time.monotonic() + 5
    while not (server := await core.accounting.ledger.totals("discord:server:9001", days, kind="scope")).tokens:
        assert time.monotonic() < deadline, "the indexing was never counted"
        await asyncio.sleep(0.05)
    assert server.by_model == {
        "all-minilm-l6-v2": ModelUsage(token_counter.count(f"{freeze.title}\n{freeze.text}"), 0, 0, None)
    }
    assert await core.accounting.ledger.top_people("discord:server:9001", days) == []


async def test_small_talk_gets_no_passages_and_no_sources(core: ChatCore, model_server: FakeModelServer) -> None:
    shown = surface()
    await core.answer(turn("thanks!"), shown)
    assert passages_in(model_server.requests[-1].body) == {}
    assert NOT_COVERED in text_of(shown) and "Sources:" not in text_of(shown)


async def test_a_channel_the_asker_cannot_read_never_reaches_the_prompt(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    await core.answer(turn("What is the bonus budget for the release?", readable=frozenset({"1"})), surface())
    prompt = str(model_server.requests[-1].body["messages"])
    assert "40,000" not in prompt
    await core.answer(turn("What is the bonus budget for the release?", "knowledge:t2"), surface())
    assert "40,000" in str(model_server.requests[-1].body["messages"])


async def test_another_servers_knowledge_is_never_searched(core: ChatCore, model_server: FakeModelServer) -> None:
    other = Access(("discord:other", DEPLOYMENT_SCOPE), frozenset({"1", "2"}))
    question = Turn("knowledge:t3", "42", "Ada", "When does the 2.0 release ship?", knowledge=other)
    await core.answer(question, surface())
    assert RELEASE.text not in passages_in(model_server.requests[-1].body).values()


async def test_a_follow_up_searches_again_and_the_history_keeps_the_sources_shown(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    await core.answer(turn("When does the 2.0 release ship?", "knowledge:t4"), surface())
    await core.answer(turn("And how do I connect to the VPN from home?", "knowledge:t4"), surface())
    assert VPN.text in passages_in(model_server.requests[-1].body).values()
    history = await core.history("knowledge:t4")
    assert "#releases" in history[1].content and "vpn.md" in history[3].content


async def test_a_model_with_tools_searches_again_and_cites_what_it_found(
    model_server: FakeModelServer,
    redis_store: HistoryStore,
    token_counter: MistralTokenCounter,
    knowledge: Knowledge,
) -> None:
    rounds: list[int] = []

    def searching(body: dict[str, object]) -> Script:
        rounds.append(1)
        if len(rounds) == 1:
            return Script(tool_calls=(ToolCallScript("search_knowledge", '{"query": "WireGuard office profile"}'),))
        return Script(text="Install WireGuard first [1].")

    model_server.responder = searching  # type: ignore[assignment]
    settings = remote_model_settings(model_server.base_url)
    tools = ToolBox(replace(ToolSettings(), tool_models=frozenset({settings.model_id})))
    core = make_core(settings, redis_store, token_counter, knowledge=knowledge, tools=tools)
    shown = surface()
    try:
        await core.answer(turn("hello there", "knowledge:t5"), shown)
    finally:
        await core.aclose()
    offered = [tool["function"]["name"] for tool in model_server.requests[0].body.get("tools", [])]
    assert offered == ["search_knowledge"]
    assert "WireGuard" not in str(model_server.requests[0].body["messages"])  # small talk: no passages at first
    assert VPN.text in str(model_server.requests[1].body["messages"])  # the tool's result
    assert text_of(shown).split("Sources:")[-1].strip().endswith("[1] vpn.md")


async def test_a_follow_up_is_searched_with_the_question_before_it(
    core: ChatCore, knowledge: Knowledge, model_server: FakeModelServer
) -> None:
    office = "discord:9002"
    dogs = Passage(
        office, "dir:pets.md", "dir:pets.md#1", "Dogs may come to the office on Saturdays and Sundays.", "pets"
    )
    gym = Passage(office, "dir:gym.md", "dir:gym.md#1", "On weekends the gym opens from nine to five.", "gym")
    await knowledge.add([dogs, gym])
    access = Access((office,))

    def asked(text: str) -> Turn:
        return Turn(thread="knowledge:follow-up", author_id="42", author_name="Ada", text=text, knowledge=access)

    await core.answer(asked("Can I bring my dog to the office?"), surface())
    assert dogs.text in passages_in(model_server.requests[-1].body).values()

    await core.answer(asked("And at weekends?"), surface())

    follow_up = passages_in(model_server.requests[-1].body)
    assert next(iter(follow_up.values())) == dogs.text  # first, before the gym's weekends


PRINTER_RESET = "To reset the printer's password, hold its power button for ten seconds; the default is printme."
VPN_RESET = "To reset your VPN password, open the account portal and choose Forgot password for the VPN."
ROUTER = "HuggingFaceTB/SmolLM2-360M-Instruct"
VPN_QUESTION = "How do I reset my VPN password when the VPN client says my VPN account is locked?"


@pytest.fixture
async def routed(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter, knowledge: Knowledge
) -> AsyncIterator[tuple[ChatCore, Access]]:
    """A core with ROUTER_MODEL set, and an office whose two password passages differ in what they reset."""
    office = "discord:9003"
    await knowledge.add(
        [
            Passage(office, "dir:printer.md", "dir:printer.md#1", PRINTER_RESET, "printer"),
            Passage(office, "dir:vpn-reset.md", "dir:vpn-reset.md#1", VPN_RESET, "vpn"),
        ]
    )
    settings = remote_model_settings(model_server.base_url)
    core = make_core(
        settings, redis_store, token_counter, knowledge=knowledge, respond=RespondSettings(router_model=ROUTER)
    )
    yield core, Access((office,))
    await core.aclose()


def rewrites_with(router: Script) -> Callable[[dict[str, Any]], Script | None]:
    """The router model answers rewrites with `router`; the answering model cites what it is given."""

    def respond(body: dict[str, Any]) -> Script | None:
        if body["model"] == ROUTER:
            return router
        return citing_responder(body)

    return respond


async def test_the_router_model_makes_a_follow_up_whole_before_it_is_searched(
    routed: tuple[ChatCore, Access], model_server: FakeModelServer
) -> None:
    core, access = routed
    model_server.responder = rewrites_with(Script(text='Query: "How do I reset the printer password?"'))

    def asked(text: str) -> Turn:
        return Turn(thread="knowledge:rewritten", author_id="42", author_name="Ada", text=text, knowledge=access)

    await core.answer(asked(VPN_QUESTION), surface())
    assert next(iter(passages_in(model_server.requests[-1].body).values())) == VPN_RESET
    before = len(model_server.requests)

    shown = surface()
    await core.answer(asked("And the printer one?"), shown)

    [rewrite, answer] = model_server.requests[before:]
    assert rewrite.body["model"] == ROUTER
    assert f"Earlier question: {VPN_QUESTION}" in str(rewrite.body["messages"])
    assert next(iter(passages_in(answer.body).values())) == PRINTER_RESET  # joined, the VPN's reset came first
    assert "hold its power button" in text_of(shown)


async def test_a_failing_router_leaves_the_follow_up_joined_to_the_question_before(
    routed: tuple[ChatCore, Access], model_server: FakeModelServer
) -> None:
    core, access = routed
    model_server.responder = rewrites_with(Script(failure="http_500"))

    def asked(text: str) -> Turn:
        return Turn(thread="knowledge:unrouted", author_id="42", author_name="Ada", text=text, knowledge=access)

    await core.answer(asked("How do I reset my VPN password?"), surface())
    before = len(model_server.requests)
    shown = surface()
    await core.answer(asked("And what if it still fails?"), shown)

    asked_router = [r for r in model_server.requests[before:] if r.body["model"] == ROUTER]
    answers = [r for r in model_server.requests[before:] if r.body["model"] != ROUTER]
    assert asked_router and all(r.status == 500 for r in asked_router)
    assert next(iter(passages_in(answers[-1].body).values())) == VPN_RESET  # searched with the question before
    assert "Forgot password" in text_of(shown)
