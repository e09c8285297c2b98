"""The embedded default needs nothing from the network: WordLlama's weights and tokenizer ship in its package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LOAD_AND_EMBED = """
import asyncio
from bot.knowledge.embeddings import LocalEmbedder

async def main():
    embedder = LocalEmbedder()
    await embedder.start()
    print(len((await embedder.embed(["hello"]))[0]))
    await embedder.aclose()

asyncio.run(main())
"""


def test_the_model_loads_from_the_package_with_no_network_and_no_cache(tmp_path: Path) -> None:
    dead_proxy = "http://127.0.0.1:9"  # any download (WordLlama's own with requests, or the Hub's) fails through it
    env = {**os.environ, "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "NO_PROXY": ""}
    env |= {"HTTP_PROXY": dead_proxy, "HTTPS_PROXY": dead_proxy}
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", LOAD_AND_EMBED],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "256"
    assert not list(tmp_path.rglob("*.json"))  # nothing fetched into ~/.cache/wordllama either
