"""The bot's logs while a model loads: llama-cpp-python silences llama.cpp by pointing the process's standard error at
/dev/null for the whole load, from the loading thread; the lines the bot logs meanwhile must still reach the
operator."""

from __future__ import annotations

import json
import subprocess
import sys

from config.settings import embedded_model_path
from fakes.harness.processes import ROOT

# A bot process's logging, a model loading three times in a thread (as the local model and the knowledge's embedder
# load), and the event loop's thread logging every millisecond meanwhile.
LOGGING_WHILE_LOADING = """
import sys, threading, time
import structlog
from llama_cpp import Llama
from adapters.launch import configure_logging

configure_logging("info", json_output=True)
log = structlog.get_logger("test")
loaded = threading.Event()

def load() -> None:
    for _ in range(3):
        Llama(model_path=sys.argv[1], n_ctx=256, verbose=False)
    loaded.set()

threading.Thread(target=load).start()
ticks = 0
while not loaded.is_set():
    log.info("tick", n=ticks)
    ticks += 1
    time.sleep(0.001)
log.info("ticks", count=ticks)
"""


def test_lines_logged_while_a_model_loads_reach_standard_error() -> None:
    ran = subprocess.run(
        [sys.executable, "-c", LOGGING_WHILE_LOADING, str(embedded_model_path())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    records = [json.loads(line) for line in ran.stderr.splitlines() if line.startswith("{")]
    [total] = [record["count"] for record in records if record["event"] == "ticks"]
    ticked = [record["n"] for record in records if record["event"] == "tick"]
    assert total > 50  # the loads took a while
    assert ticked == list(range(total))
