"""Benchmark: what hostile or heavy documents cost the bot, and the people beside them.

    python -m bench.document_bombs [--timeout 4]

Three scenes, each against a fresh bot process:
- Discord: one mention with ten 3 KB spreadsheets, each a row of 200 cells showing one shared string
  of 990,000 characters; the bot's resident memory before, at its peak (VmHWM) and 5 s after the
  answer, and its CPU for the message.
- Discord: one person's mention with ten PDFs that each take longer to read than
  DOCUMENT_TIMEOUT_SECONDS (`--timeout`), and another person's Word document 0.5 s later; when
  each is answered, from the first mention.
- The web chat: one question frame with thirty text files of 99,000 bytes; the bot's CPU for it,
  and whether the model answered it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import time

from bench.common import process_cpu_seconds
from fakes import documents
from fakes.harness.discord_world import DiscordWorld
from fakes.harness.process_resources import memory
from fakes.harness.web_world import WebBots, asked_over_the_socket
from fakes.model_server import FakeModelServer, Script

MB = 1024 * 1024
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


async def ten_sheets() -> None:
    sheet = documents.repeated_string_sheet()
    async with DiscordWorld.open() as world:
        channel, alice = world.add_channel("general"), world.add_user("alice")
        world.default_script = Script(text="Ten sheets.", rate=200)
        bot = await world.start_bot()
        await asyncio.sleep(1.0)  # the workers start beside the bot
        start, cpu = memory(bot.pid)["VmRSS"], process_cpu_seconds(bot.pid)
        sent = time.monotonic()
        message = await world.mention(
            channel, alice, "what is in these?", files=[(f"s{n}.xlsx", XLSX, sheet) for n in range(10)]
        )
        thread = await world.wait_thread(message, timeout=120)
        await world.wait_bot_text(thread["id"], lambda text: text.startswith("Ten sheets."), timeout=120)
        answered, used, peak = time.monotonic() - sent, process_cpu_seconds(bot.pid) - cpu, memory(bot.pid)["VmHWM"]
        await asyncio.sleep(5)
        later = memory(bot.pid)["VmRSS"]
        await world.stop_bot(check=True)
    print(f"ten sheets of {len(sheet):,} bytes in one mention, answered in {answered:.1f} s")
    print("| the bot before | its peak | 5 s after the answer | its CPU for the message |")
    print("|---|---|---|---|")
    print(f"| {start // MB} MB | {peak // MB} MB (+{(peak - start) // MB}) | {later // MB} MB | {used:.2f} s |")


async def slow_pdfs(timeout: float) -> None:
    slow, memo = documents.slow_pdf(), documents.word(["The board meets on Tuesday."])
    async with DiscordWorld.open() as world:
        channel, alice, bob = world.add_channel("general"), world.add_user("alice"), world.add_user("bob")
        world.default_script = Script(text="Read.", rate=200)
        await world.start_bot(DOCUMENT_TIMEOUT_SECONDS=f"{timeout:g}")
        await asyncio.sleep(1.0)
        sent = time.monotonic()
        pdfs = [(f"slow{n}.pdf", "application/pdf", slow) for n in range(10)]
        first = await world.mention(channel, alice, "sum these up", files=pdfs)
        await asyncio.sleep(0.5)
        second = await world.mention(channel, bob, "when?", files=[("memo.docx", DOCX, memo)])
        times = []
        for message in (second, first):
            thread = await world.wait_thread(message, timeout=120)
            await world.wait_bot_text(thread["id"], lambda text: text.startswith("Read."), timeout=300)
            times.append(time.monotonic() - sent)
        await world.stop_bot(check=True)
    print(f"ten PDFs of {len(slow):,} bytes, each slower than DOCUMENT_TIMEOUT_SECONDS={timeout:g}, then a memo")
    print(f"the memo answered {times[0]:.1f} s after the PDFs were sent, the PDFs {times[1]:.1f} s after")


async def thirty_text_files() -> None:
    async with FakeModelServer(Script(text="Read.", rate=400)) as model:
        bots = WebBots(model.base_url)
        try:
            bot = await bots.start()
            await asyncio.sleep(1.0)
            notes = [
                {
                    "name": f"notes{n:02}.txt",
                    "type": "text/plain",
                    "data": "data:text/plain;base64," + base64.b64encode(f"{n:02} ".encode() * 33_000).decode(),
                }
                for n in range(30)
            ]
            cpu = process_cpu_seconds(bot.pid)
            reply = await asked_over_the_socket(bots, "What do these say?", notes)
            used = process_cpu_seconds(bot.pid) - cpu
        finally:
            await bots.close()
    answered = "the model answered" if reply["text"].startswith("Read.") else "refused: " + reply["text"][-80:]
    print(f"thirty text files of 99,000 bytes in one web frame: the bot's CPU {used:.2f} s; {answered}")


async def run(timeout: float) -> None:
    await ten_sheets()
    await slow_pdfs(timeout)
    await thirty_text_files()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=4.0, help="DOCUMENT_TIMEOUT_SECONDS of the slow-PDF scene")
    asyncio.run(run(parser.parse_args().timeout))


if __name__ == "__main__":
    main()
