"""Benchmark: the cost of marking a help thread solved, from the click to the thread searchable as knowledge.

    python -m bench.solved [--messages 10000] [--marks 50] [--embedder minilm|wordllama]

The bot's own flow (adapters.shared.helpdesk.solving over the real Redis and the knowledge on the embedded
PostgreSQL, `--messages` of a made-up server's chat already indexed): each mark keeps the solution in Redis, embeds
the question with its accepted answer and stores the passage; when it returns, a search in other words finds it.
Reported: the mark's time (p50, p99) and how many of the marked threads the next question in other words found
first.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import time
import uuid

from adapters.shared.helpdesk.solving import Marked, Solving
from adapters.shared.knowledge_sources.channels import KnowledgeChannels
from adapters.shared.solved_threads import Answer, HelpThread, Solutions
from bench.knowledge import SCOPE, chat_passages, make_embedder, percentile
from bench.knowledge_corpus import Community
from bot.knowledge.embedded import start_embedded_async, stop_embedded
from bot.knowledge.opener import KnowledgeOpener
from bot.knowledge.passages import DEPLOYMENT_SCOPE, Access
from bot.knowledge.postgres import PostgresEngine
from bot.knowledge.service import Knowledge
from bot.knowledge.setup import DATABASE_FOLDER
from bot.state.redis_client import close, connect
from fakes.harness.processes import REDIS_URL
from fakes.harness.server_folders import server_folder

# Questions with their accepted answers, and the next person's question in other words.
THREADS = (
    ("How do I reset the badge reader on floor 2?", "Hold its red button for ten seconds.", "badge reader frozen"),
    (
        "The VPN drops every night at 2am",
        "The nightly key rotation: update the client to 4.2.",
        "vpn disconnects at night",
    ),
    ("Where do visitors park?", "Garage under building B, level -2.", "parking for guests"),
    ("Printer on floor 3 prints blank pages", "Replace the toner cartridge, the drum is fine.", "printer empty pages"),
    ("How do I get a second monitor?", "Ask IT with the hardware form on the intranet.", "extra screen request"),
)


async def run(messages: int, marks: int, embedder_name: str) -> None:
    folder = server_folder("solved-bench-")
    database = await start_embedded_async(folder / DATABASE_FOLDER)
    redis = connect(REDIS_URL, cluster=False)
    prefix = f"bench-solved-{uuid.uuid4().hex[:8]}:"
    knowledge = Knowledge(PostgresEngine(database.url), make_embedder(embedder_name, folder / "models"))
    try:
        await knowledge.start()
        for first in range(0, messages, 1_000):
            await knowledge.add(chat_passages(Community(), min(1_000, messages - first), first))

        async def opened() -> Knowledge:
            return knowledge

        solving = Solving(
            Solutions(redis, prefix, "bench"),
            KnowledgeOpener(opened, lambda _: None),
            "bench",
            KnowledgeChannels(redis, prefix),
        )
        times, found = [], 0
        for number in range(marks):
            question, answer_text, other_words = THREADS[number % len(THREADS)]
            thread = HelpThread(
                SCOPE, "help", f"t{number}", "asker", f"{question} ({number})", "#help", f"u{number}", ""
            )
            answer = Answer(f"m{number}", "", "the bot", answer_text, by_helper=True)
            started = time.perf_counter()
            marked, lost = await solving.mark(thread, answer, "asker")
            times.append((time.perf_counter() - started) * 1_000)
            assert marked is Marked.MARKED and not lost, (marked, lost)
            hits = await knowledge.search(other_words, Access((SCOPE, DEPLOYMENT_SCOPE)))
            found += bool(hits) and hits[0].passage.url == f"u{number}"
            await solving.unmark(SCOPE, f"t{number}")  # the next mark of the same words competes with none
        print(f"bench.solved: {marks} marks, {messages:,} messages indexed, embedder {knowledge.embedder.name}")
        print(f"mark → searchable: p50 {statistics.median(times):.1f} ms, p99 {percentile(times, 0.99):.1f} ms")
        print(f"the next question in other words found the solved thread first: {found}/{marks}")
    finally:
        await knowledge.aclose()
        await close(redis)
        stop_embedded(folder / DATABASE_FOLDER)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--marks", type=int, default=50)
    parser.add_argument("--embedder", choices=("minilm", "wordllama"), default="minilm")
    options = parser.parse_args()
    asyncio.run(run(options.messages, options.marks, options.embedder))


if __name__ == "__main__":
    main()
