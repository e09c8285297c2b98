"""KNOWLEDGE_DIR with text files in UTF-16 (issue 61), through `python -m bot` in the terminal: they are read as text
(with or without a byte order mark), the files after them are read too, a file added later is still followed, and
the bot exits 0 on SIGTERM."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fakes.citing_model import citing_responder
from fakes.model_server import FakeModelServer
from tests.console.test_console import Console, clean_env
from tests.console.test_console_knowledge import ask_until

NOBODY = 65534
SAUNA = "The sauna on the roof is open from six to nine, and the café beside it sells tea."
MENU = "On Fridays the canteen serves crêpes with apple compote."
BIKES = "Bicycles are parked in the courtyard behind the blue gate."
LATER = "The photocopier on floor three needs the code 8086."


@pytest.fixture
def folders() -> Iterator[tuple[Path, Path]]:
    root = Path(tempfile.mkdtemp(prefix="knowledge-console-text-"))
    docs, data = root / "docs", root / "data"
    docs.mkdir()
    if os.geteuid() == 0:  # the embedded server runs as its folder's owner, never as root
        os.chown(root, NOBODY, NOBODY)
    (docs / "a-sauna.txt").write_bytes(SAUNA.encode("utf-16-le"))  # no byte order mark, as some Windows tools write
    (docs / "b-menu.txt").write_bytes(MENU.encode("utf-16"))  # with its mark
    (docs / "c-bikes.md").write_text(BIKES, encoding="utf-8")
    yield docs, data
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def model_server() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer() as server:
        server.responder = citing_responder
        yield server


async def test_utf16_files_are_read_the_files_after_them_too_and_the_folder_stays_followed(
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
        assert "sells tea" in await ask_until(console, "When is the sauna on the roof open?", "a-sauna.txt")
        assert "crêpes" in await ask_until(console, "What does the canteen serve on Fridays?", "b-menu.txt")
        assert "courtyard" in await ask_until(console, "Where are bicycles parked?", "c-bikes.md")

        (docs / "d-copier.txt").write_bytes(LATER.encode("utf-16"))
        assert "8086" in await ask_until(console, "What code does the photocopier need?", "d-copier.txt", 30)
    finally:
        code, stderr = await console.finish()
    assert code == 0, stderr
    assert "knowledge_file_skipped" not in stderr and "Traceback" not in stderr
