"""A Markdown file in KNOWLEDGE_DIR, through `python -m bot` in the terminal: a passage deep in a long file is found
by the headings above it and cited by its title and heading path, not by the file's name."""

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
KITCHEN = "\n\n".join(f"Rule {n}: keep the kitchen tidy and the fridge clean." for n in range(80))
HANDBOOK = f"""# Office handbook

## Kitchen

{KITCHEN}

## Dogs at work

They are welcome on Fridays in the second-floor area, on a lead.
"""


@pytest.fixture
def folders() -> Iterator[tuple[Path, Path]]:
    root = Path(tempfile.mkdtemp(prefix="knowledge-console-headings-"))
    docs, data = root / "docs", root / "data"
    docs.mkdir()
    if os.geteuid() == 0:  # the embedded server runs as its folder's owner, never as root
        os.chown(root, NOBODY, NOBODY)
    (docs / "docs_policy.md").write_text(HANDBOOK, encoding="utf-8")
    yield docs, data
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def model_server() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer() as server:
        server.responder = citing_responder
        yield server


async def test_a_section_of_a_long_markdown_file_is_cited_by_its_heading_path(
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
        answer = await ask_until(console, "Can I bring my dog to work?", "Dogs at work")
    finally:
        code, stderr = await console.finish()
    assert "second-floor area" in answer
    assert "Office handbook \u203a Dogs at work" in answer.split("Sources:")[1]
    assert code == 0, stderr
