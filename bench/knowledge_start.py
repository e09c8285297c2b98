"""Benchmark: what KNOWLEDGE_DIR costs a terminal session at start-up when its folder was indexed before and hasn't
changed: the CPU of a session that asks one question and exits, with the folder and without knowledge.

    python -m bench.knowledge_start [--files 200] [--runs 3]

The real bot process (`python -m bot console`) against the loopback fake model server, with the default embedder
(all-MiniLM-L6-v2 in-process) and the embedded PostgreSQL in a data folder of its own. The folder holds `--files`
files: Markdown and text, one in twenty a PDF and one in twenty a Word document. A first session indexes it (its
figures are shown too); then each measured session starts, asks one question at its prompt, waits for the folder's
start-up read to end (the `knowledge_folder_read` log line) and exits on the end of its input.

CPU is user + system of the whole process tree: the bot, the document workers' fork server and workers, and the
embedded PostgreSQL (which pg_ctl detaches from the bot): each session runs under a small wrapper made the child
subreaper (prctl PR_SET_CHILD_SUBREAPER), so every process of the session, orphaned or not, is reaped by it or by a
process it reaps, and counted in its RUSAGE_CHILDREN. Each process the wrapper reaps is also shown by name.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakes import documents
from fakes.harness.processes import ROOT
from fakes.harness.server_folders import remove, server_folder
from fakes.model_server import FakeModelServer, Script

# Run as `python -c WRAPPER OUT -- COMMAND...`: COMMAND with this process as the subreaper of its tree; writes to OUT
# the CPU seconds of every process reaped, by name, and of the tree in all.
WRAPPER = r"""
import ctypes, json, os, resource, subprocess, sys, time
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
out, command = sys.argv[1], sys.argv[3:]
started = time.monotonic()
subprocess.Popen(command)
by_name = {}
while True:
    try:
        found = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
    except ChildProcessError:
        break
    try:
        with open(f"/proc/{found.si_pid}/comm") as comm:
            name = comm.read().strip()
    except OSError:
        name = "?"
    _, _, usage = os.wait4(found.si_pid, 0)
    by_name[name] = by_name.get(name, 0.0) + usage.ru_utime + usage.ru_stime
tree = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, "w") as file:
    json.dump({"cpu": tree.ru_utime + tree.ru_stime, "wall": time.monotonic() - started, "by_name": by_name}, file)
"""

QUESTION = "Where do visitors park?"
FOLDER_READ = "knowledge_folder_read"
SESSION_SECONDS = 1800.0
LOG_FOLDER = os.environ.get("BENCH_LOG_FOLDER", "")  # each session's log kept there, when set
# The caller's settings left out: the terminal with its defaults (history in memory), this model server only.
OWN_VARIABLES = ("KNOWLEDGE_", "EMBEDDING_", "DISCORD_", "SLACK_", "HF_", "INFERENCE_", "LOCAL_MODEL", "REDIS_URL")
WORDS = ("policy", "office", "visitors", "badge", "meeting", "room", "kitchen", "parking", "desk", "printer", "network")


@dataclass(frozen=True)
class Session:
    cpu: float  # seconds, the whole tree
    wall: float
    by_name: dict[str, float]
    folder_read: str  # the knowledge_folder_read line ("" without knowledge)


def paragraph(number: int, length: int = 120) -> str:
    return " ".join(WORDS[(number * 7 + index * 3) % len(WORDS)] for index in range(length)) + "."


def make_folder(folder: Path, files: int) -> None:
    """`files` files: one in twenty a PDF, one in twenty a Word document, the rest Markdown and text by turns."""
    for number in range(files):
        paragraphs = [paragraph(number * 5 + part) for part in range(5)]
        if number % 20 == 7:
            (folder / f"report-{number:03}.pdf").write_bytes(documents.pdf(paragraphs[:3]))
        elif number % 20 == 13:
            (folder / f"memo-{number:03}.docx").write_bytes(documents.word(paragraphs[:3], heading=f"Memo {number}"))
        elif number % 2:
            (folder / f"note-{number:03}.txt").write_text("\n\n".join(paragraphs) + "\n")
        else:
            sections = "\n\n".join(f"## Part {part}\n\n{text}" for part, text in enumerate(paragraphs, 1))
            (folder / f"page-{number:03}.md").write_text(f"# Page {number}\n\n{sections}\n")
    (folder / "parking.md").write_text("# Parking\n\nVisitors park in the underground garage, level -2.\n")


async def session(env: dict[str, str], *, ask: bool, wait_for_folder: bool) -> Session:
    """One terminal session under the subreaper wrapper: its prompt, one question (if `ask`), the folder's start-up
    read (if `wait_for_folder`), then the end of its input."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        result = Path(out.name)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRAPPER,
        str(result),
        "--",
        sys.executable,
        "-m",
        "bot",
        "console",
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its group killed whole if it overruns
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    stdout, stderr = process.stdout, process.stderr
    output, log = bytearray(), bytearray()

    async def read_log() -> None:
        while chunk := await stderr.read(65536):
            log.extend(chunk)

    async def until(buffer: bytearray, needle: bytes, count: int, reader: asyncio.StreamReader | None) -> None:
        while buffer.count(needle) < count:
            if reader is None:
                await asyncio.sleep(0.05)
                continue
            chunk = await reader.read(4096)
            if not chunk:
                raise RuntimeError(f"the bot exited: {bytes(log[-3000:]).decode(errors='replace')}")
            buffer.extend(chunk)

    logging = asyncio.create_task(read_log())
    try:
        async with asyncio.timeout(SESSION_SECONDS):
            await until(output, b"you> ", 1, stdout)
            if ask:
                process.stdin.write(f"{QUESTION}\n".encode())
                await process.stdin.drain()
                await until(output, b"you> ", 2, stdout)
            if wait_for_folder:
                await until(log, FOLDER_READ.encode(), 1, None)
            process.stdin.close()
            await stdout.read()
            await process.wait()
            await logging
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        keep_log(bytes(log))
    if process.returncode:
        raise RuntimeError(f"the wrapper exited with {process.returncode}")
    figures = taken_figures(result)
    lines = bytes(log).decode(errors="replace").splitlines()
    read = next((line for line in lines if FOLDER_READ in line), "")
    return Session(figures["cpu"], figures["wall"], figures["by_name"], read)


def taken_figures(path: Path) -> dict[str, Any]:
    figures: dict[str, Any] = json.loads(path.read_text())
    path.unlink()
    return figures


def keep_log(log: bytes) -> None:
    if LOG_FOLDER:
        (Path(LOG_FOLDER) / f"session-{time.time_ns()}.log").write_bytes(log)


def describe(name: str, session: Session) -> str:
    parts = ", ".join(f"{key} {value:.2f}" for key, value in sorted(session.by_name.items(), key=lambda kv: -kv[1]))
    return f"{name}: CPU {session.cpu:.2f} s, wall {session.wall:.2f} s ({parts})"


async def run(docs: Path, data: Path, empty: Path, files: int, runs: int) -> None:
    """The indexing session, then `runs` sessions without knowledge and `runs` with the folder unchanged."""
    async with FakeModelServer(Script(text="Visitors park on level -2.", rate=1000)) as server:
        base = {k: v for k, v in os.environ.items() if not k.startswith(OWN_VARIABLES)}
        base.update(INFERENCE_BASE_URL=f"{server.base_url}/v1", HF_TOKEN="hf_test", LOG_LEVEL="info")
        with_folder = {**base, "KNOWLEDGE_DIR": str(docs), "KNOWLEDGE_DATA_DIR": str(data)}
        without = {**base, "KNOWLEDGE_DATA_DIR": str(empty)}
        first = await session(with_folder, ask=False, wait_for_folder=True)
        print(describe("indexing session", first), flush=True)
        print(f"  {first.folder_read.strip()}", flush=True)
        measured: dict[str, list[Session]] = {"without knowledge": [], "unchanged folder": []}
        for _ in range(runs):
            measured["without knowledge"].append(await session(without, ask=True, wait_for_folder=False))
            measured["unchanged folder"].append(await session(with_folder, ask=True, wait_for_folder=True))
        for name, sessions in measured.items():
            for one in sessions:
                print(describe(name, one), flush=True)
        medians = {name: statistics.median(one.cpu for one in sessions) for name, sessions in measured.items()}
        walls = {name: statistics.median(one.wall for one in sessions) for name, sessions in measured.items()}
        print(f"\nmedian of {runs}: one question, {files} files unchanged")
        for name in measured:
            print(f"  {name:18} CPU {medians[name]:5.2f} s   wall {walls[name]:5.2f} s")
        extra = medians["unchanged folder"] - medians["without knowledge"]
        print(f"  knowledge adds     CPU {extra:5.2f} s")
        print(f"  {measured['unchanged folder'][-1].folder_read.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200, help="files in KNOWLEDGE_DIR")
    parser.add_argument("--runs", type=int, default=3, help="measured sessions of each kind (median shown)")
    options = parser.parse_args(argv)
    docs = Path(tempfile.mkdtemp(prefix="knowledge-start-docs-"))
    data, empty = server_folder("knowledge-start-data-"), server_folder("knowledge-start-none-")
    try:
        make_folder(docs, options.files)
        print(f"folder: {len(list(docs.iterdir()))} files", flush=True)
        asyncio.run(run(docs, data, empty, options.files, options.runs))
    finally:
        shutil.rmtree(docs, ignore_errors=True)
        remove(data)
        remove(empty)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
