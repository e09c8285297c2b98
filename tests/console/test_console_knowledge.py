"""KNOWLEDGE_DIR in the terminal: `python -m bot` with a folder of documents answers from them on the embedded engine
(nothing else started), cites each by name and page, and follows the folder as files come and go."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fakes.citing_model import citing_responder
from fakes.documents import pdf
from fakes.harness.server_folders import server_folder
from fakes.model_server import FakeModelServer
from tests.console.test_console import Console, answers, clean_env

GUEST_WIFI = "The guest Wi-Fi network is called Lobby and its password is printed on the card at reception."


@pytest.fixture
def folders() -> Iterator[tuple[Path, Path]]:
    root = server_folder("knowledge-console-")  # nobody's, when root: the bot runs the database as its owner
    docs, data = root / "docs", root / "data"
    docs.mkdir()
    (docs / "guide.pdf").write_bytes(pdf(["Welcome to the office. Coffee is on the second floor.", GUEST_WIFI]))
    (docs / ".notes.md").write_text("The guest Wi-Fi password is hunter2.")  # hidden: never knowledge
    yield docs, data
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def model_server() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer() as server:
        server.responder = citing_responder
        yield server


async def ask(console: Console, question: str) -> str:
    before = console.output.count("you> ")
    await console.say(question)
    await console.read_until("you> ", occurrences=before + 1, timeout=30)
    return answers(console.output)[-1]


async def ask_until(console: Console, question: str, expected: str, seconds: float = 90.0) -> str:
    """Ask until the answer holds `expected`: the folder is read in the background after start-up."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        answer = await ask(console, question)
        if expected in answer or asyncio.get_running_loop().time() > deadline:
            return answer
        await asyncio.sleep(0.5)


async def test_the_terminal_answers_from_the_folder_and_follows_its_changes(
    folders: tuple[Path, Path], model_server: FakeModelServer
) -> None:
    docs, data = folders
    env = clean_env(
        INFERENCE_BASE_URL=f"{model_server.base_url}/v1",
        HF_TOKEN="hf_test",
        KNOWLEDGE_DIR=str(docs),
        KNOWLEDGE_DATA_DIR=str(data),
    )
    console = await Console.start("console", env=env)
    try:
        await console.read_until("you> ")
        answer = await ask_until(console, "What is the guest Wi-Fi password?", "Sources:")
        assert "Lobby" in answer and "[1]" in answer
        assert answer.split("Sources:")[-1].strip() == "[1] guide.pdf, page 2"
        assert "hunter2" not in str([request.body for request in model_server.requests])

        (docs / "parking.md").write_text("Visitors park in the underground garage, level -2, spots 40 to 60.")
        answer = await ask_until(console, "Where do visitors park?", "parking.md")
        assert "level -2" in answer and answer.split("Sources:")[-1].strip() == "[1] parking.md"

        (docs / "parking.md").unlink()
        answer = await ask_until(console, "Where do visitors park?", "doesn't cover it")
        assert "Sources:" not in answer
    finally:
        code, stderr = await console.finish()
    assert code == 0, stderr
