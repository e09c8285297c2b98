"""Documents can't take the bot down or hold others up: a small spreadsheet that repeats one huge
string costs the bot what any document costs (its text is bounded where it is read, in the workers),
and one message of slow files delays another person's document by one file's reading at most. The
real bot process against the loopback fake Discord."""

from __future__ import annotations

import asyncio
import time

from fakes import documents
from fakes.harness.discord_world import DiscordWorld, log_shown
from fakes.harness.process_resources import cpu_seconds, memory
from fakes.model_server import Script

MB = 1024 * 1024
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


async def test_ten_small_sheets_repeating_one_huge_string_leave_the_bots_memory_as_it_was() -> None:
    sheet = documents.repeated_string_sheet()  # 200 cells showing one string of 990,000 characters
    assert len(sheet) < 4000
    async with DiscordWorld.open() as world:
        with log_shown(world):
            channel = world.add_channel("general")
            alice = world.add_user("alice")
            world.answer("sheets", Script(text="Ten sheets of x.", rate=50))
            bot = await world.start_bot()
            await asyncio.sleep(1.0)  # the document workers start beside the bot
            start, cpu_before = memory(bot.pid)["VmRSS"], cpu_seconds(bot.pid)

            message = await world.mention(
                channel,
                alice,
                "sheets: what is in these?",
                files=[(f"sheet{n}.xlsx", XLSX, sheet) for n in range(10)],
            )
            thread = await world.wait_thread(message, timeout=60)
            [final] = await world.wait_bot_text(
                thread["id"], lambda text: text.startswith("Ten sheets of x."), timeout=60
            )
            after_answer = memory(bot.pid)
            await asyncio.sleep(5)
            five_seconds_later = memory(bot.pid)["VmRSS"]

            print(
                f"RSS {start // MB} MB, peak {after_answer['VmHWM'] // MB} MB, 5 s after {five_seconds_later // MB} MB"
            )
            print(f"the bot's CPU for the message: {cpu_seconds(bot.pid) - cpu_before:.2f} s")
            assert after_answer["VmHWM"] - start < 250 * MB, (start // MB, after_answer["VmHWM"] // MB)
            assert five_seconds_later - start < 60 * MB, (start // MB, five_seconds_later // MB)
            [request] = world.model_requests("sheets")
            asked = request.last_user_content() or ""
            assert all(f"sheet{n}.xlsx:\n```\n## Sheet1\nxxxx" in asked for n in range(10)), asked[:300]
            assert "ℹ️ sheet0.xlsx: read row 1 of sheet Sheet1 (all that fits in one message)." in final["content"]
            await world.stop_bot(check=True)


async def test_one_persons_slow_pdfs_delay_anothers_document_by_one_file_at_most() -> None:
    """Ten PDFs that each take longer to read than a message may: the first two (one per worker) use
    the message's time, the rest are skipped; another person's Word document, sent just after, is
    read as soon as a worker is free, and its answer doesn't wait for the ten."""
    slow = documents.slow_pdf()
    memo = documents.word(["The board meets on Tuesday."])
    async with DiscordWorld.open() as world:
        with log_shown(world):
            channel = world.add_channel("general")
            alice, bob = world.add_user("alice"), world.add_user("bob")
            world.answer("slow-pdfs", Script(text="Nothing I could read.", rate=50))
            world.answer("board-memo", Script(text="On Tuesday.", rate=50))
            await world.start_bot(DOCUMENT_TIMEOUT_SECONDS="4")
            await asyncio.sleep(1.0)

            sent = time.monotonic()
            slow_message = await world.mention(
                channel,
                alice,
                "slow-pdfs: sum these up",
                files=[(f"slow{n}.pdf", "application/pdf", slow) for n in range(10)],
            )
            await asyncio.sleep(0.5)
            memo_message = await world.mention(channel, bob, "board-memo: when?", files=[("memo.docx", DOCX, memo)])
            memo_thread = await world.wait_thread(memo_message, timeout=30)
            await world.wait_bot_text(memo_thread["id"], "On Tuesday.", timeout=30)
            memo_answered = time.monotonic() - sent
            print(f"the memo answered {memo_answered:.1f} s after the slow PDFs were sent")
            slow_thread = await world.wait_thread(slow_message, timeout=30)
            [slow_final] = await world.wait_bot_text(
                slow_thread["id"], lambda text: text.startswith("Nothing I could read."), timeout=30
            )
            slow_answered = time.monotonic() - sent
            print(f"the slow PDFs answered after {slow_answered:.1f} s")

            [memo_request] = world.model_requests("board-memo")
            assert "The board meets on Tuesday." in (memo_request.last_user_content() or "")
            # One slow file's 4 s (the workers were both reading Alice's), not five rounds of two of them.
            assert memo_answered < 8.0, memo_answered
            assert slow_answered < 9.0, slow_answered  # the message's 4 s, once for all ten
            assert "ℹ️ slow0.pdf took too long to read, so I skipped it." in slow_final["content"]
            assert "ℹ️ I skipped slow9.pdf: the files before it took all the time" in slow_final["content"]
            await world.stop_bot(check=True)
