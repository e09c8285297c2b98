"""Benchmark: what a document attached to a question costs: the bot's added time before the model
is asked, and the bot's and the document workers' peak memory.

    python -m bench.documents [--n 10] [--pages 100] [--context 8192]

The real bot process (`python -m bot discord`) against the loopback fake Discord and model
server. Each round mentions the bot once with a `--pages`-page PDF (made with fpdf2: about 1,500
characters of text a page, downloaded from the fake's CDN, read in the isolated workers, cut to
MAX_DOCUMENT_CHARS and then to what fits in `--context` tokens) and once without; "before the
model is asked" is the mention sent → the model server receiving the request. Then the bot
process's peak resident memory (VmHWM) and the largest of its document workers'.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from fakes import documents
from fakes.harness.discord_world import DiscordWorld
from fakes.harness.process_resources import children, memory
from fakes.model_server import Script


def report_pdf(pages: int) -> bytes:
    words = ["revenue", "costs", "margin", "forecast", "region", "quarter", "growth", "plan", "budget", "staff"]
    return documents.pdf(
        [
            f"Page {page}. " + " ".join(words[(page * n) % len(words)] for n in range(220))
            for page in range(1, pages + 1)
        ]
    )


async def run(rounds: int, pages: int, context: int) -> None:
    data = report_pdf(pages)
    async with DiscordWorld.open() as world:
        channel = world.add_channel("general")
        alice = world.add_user("alice")
        world.default_script = Script(text="A report.", rate=200)
        await world.start_bot(CONTEXT_TOKENS=str(context))
        assert world.bot is not None
        await asyncio.sleep(1.0)  # the workers start beside the bot
        before = memory(world.bot.pid)["VmRSS"]
        with_pdf: list[float] = []
        without: list[float] = []
        asked_chars = 0
        notice = ""
        try:
            for number in range(rounds):
                for marker, files in (
                    (f"pdf{number}", [("report.pdf", "application/pdf", data)]),
                    (f"txt{number}", []),
                ):
                    sent = time.time()
                    message = await world.fake.send_user_message(
                        channel["id"], alice, f"{marker} Sum this up.", mentions_bot=True, files=files
                    )
                    [request] = await world.wait_model_request(marker, timeout=60)
                    (with_pdf if files else without).append(request.received_at - sent)
                    asked_chars = max(asked_chars, len(request.last_user_content() or ""))
                    thread = await world.wait_thread(message)
                    [final] = await world.wait_bot_text(
                        thread["id"], lambda text: text.startswith("A report."), timeout=60
                    )
                    notice = final["content"].split("\n\n", 1)[-1] if files else notice
            pid = world.bot.pid
            peak = memory(pid)["VmHWM"]
            workers = {worker for helper in children(pid) for worker in children(helper)}  # under the fork server
            worker_peak = max((memory(worker)["VmHWM"] for worker in workers), default=0)
        finally:
            await world.stop_bot(check=True)
    print(f"the reply's notice: {notice}")
    report(rounds, pages, len(data), context, asked_chars, with_pdf, without, (before, peak, worker_peak))


def report(
    rounds: int,
    pages: int,
    size: int,
    context: int,
    asked_chars: int,
    with_pdf: list[float],
    without: list[float],
    memories: tuple[int, int, int],
) -> None:
    def ms(values: list[float], q: float) -> str:
        ordered = sorted(values)
        return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.0f} ms"

    before, peak, worker_peak = memories
    added = statistics.median(with_pdf) - statistics.median(without)
    print(
        f"{rounds} questions with a {pages}-page PDF of {size / 1e6:.2f} MB, {rounds} without; CONTEXT_TOKENS={context}"
    )
    print(f"the question the model got: {asked_chars:,} characters")
    print("| question | mention → model asked, p50 | p90 |")
    print("|---|---|---|")
    print(f"| with the PDF | {ms(with_pdf, 0.5)} | {ms(with_pdf, 0.9)} |")
    print(f"| without | {ms(without, 0.5)} | {ms(without, 0.9)} |")
    print(f"added by the document (p50): {added * 1000:.0f} ms")
    print("| the bot's RSS before | the bot's peak (VmHWM) | a worker's peak (VmHWM) |")
    print("|---|---|---|")
    print(f"| {mb(before)} | {mb(peak)} (+{mb(peak - before)}) | {mb(worker_peak)} |")


def mb(size: int) -> str:
    return f"{size / 1024 / 1024:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10, help="questions with the PDF (and as many without)")
    parser.add_argument("--pages", type=int, default=100, help="the PDF's pages")
    parser.add_argument("--context", type=int, default=8192, help="CONTEXT_TOKENS of the bot")
    options = parser.parse_args()
    asyncio.run(run(options.n, options.pages, options.context))


if __name__ == "__main__":
    main()
