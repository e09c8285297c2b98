"""A question asked while knowledge is still starting, right after a deploy or restart: it waits for knowledge
(within KNOWLEDGE_START_WAIT_SECONDS) and is answered from it, or, past that wait, says the answer didn't use it.

Two terminal bots share one embedded PostgreSQL (one KNOWLEDGE_DATA_DIR): the first indexes a handbook, the second
is asked about it the moment it starts. Its embeddings come from the fake model server, slowed so that knowledge
takes a while to start (the remote embedder embeds a probe first), as a loading model or a busy database would."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.knowledge.embeddings import WORDLLAMA_NAME
from fakes.citing_model import citing_responder
from fakes.harness.server_folders import remove, server_folder
from fakes.model_server import FakeModelServer
from tests.console.test_console import Console, clean_env
from tests.console.test_console_knowledge import ask, ask_until

PUPPIES = "Dogs are welcome in the office on Fridays, puppies included, as long as they stay on a leash."
QUESTION = "Can I take my puppy to work at the end of the week?"
NOT_USED = "I couldn't search the knowledge just now, so this answer doesn't use it."
EMBEDDING_DELAY = 1.5  # each embedding request: knowledge's start (a probe) and each question's search


@pytest.fixture
def folders() -> Iterator[tuple[Path, Path]]:
    docs, data = Path(tempfile.mkdtemp(prefix="knowledge-start-")), server_folder("knowledge-start-data-")
    (docs / "handbook.md").write_text(f"# Handbook\n\nThe kitchen closes at 6 pm.\n\n{PUPPIES}\n")
    yield docs, data
    shutil.rmtree(docs, ignore_errors=True)
    remove(data)


@pytest.fixture
async def model_server() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer() as server:
        server.responder = citing_responder
        yield server


def bot_env(model_server: FakeModelServer, data: Path, **extra: str) -> dict[str, str]:
    return clean_env(
        INFERENCE_BASE_URL=f"{model_server.base_url}/v1",
        HF_TOKEN="hf_test",
        EMBEDDING_BASE_URL=f"{model_server.base_url}/v1",
        EMBEDDING_MODEL=WORDLLAMA_NAME,  # what the fake computes: its relevance thresholds apply
        KNOWLEDGE_DATA_DIR=str(data),
        **extra,
    )


async def asked_at_start(env: dict[str, str]) -> str:
    """The first answer of a bot asked as soon as its prompt shows."""
    console = await Console.start("console", env=env)
    try:
        await console.read_until("you> ")
        return await ask(console, QUESTION)
    finally:
        code, stderr = await console.finish()
        assert code == 0, stderr


async def test_a_question_asked_while_knowledge_starts_waits_for_it_or_says_it_went_without(
    folders: tuple[Path, Path], model_server: FakeModelServer
) -> None:
    docs, data = folders
    indexer = await Console.start("console", env=bot_env(model_server, data, KNOWLEDGE_DIR=str(docs)))
    try:
        await indexer.read_until("you> ")
        indexed = await ask_until(indexer, QUESTION, "Sources:")
        assert "[1] Handbook" in indexed, indexed
    finally:
        code, stderr = await indexer.finish()
    assert code == 0, stderr

    model_server.embeddings.delay_seconds = EMBEDDING_DELAY
    answer = await asked_at_start(bot_env(model_server, data))
    assert "leash" in answer and answer.split("Sources:")[-1].strip() == "[1] Handbook", answer
    assert NOT_USED not in answer

    answer = await asked_at_start(bot_env(model_server, data, KNOWLEDGE_START_WAIT_SECONDS="0.2"))
    assert NOT_USED in answer, answer
    assert "Sources:" not in answer
