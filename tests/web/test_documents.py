"""Documents and text files in the web chat: the real `python -m bot web` process in a real headless Chromium.
The page attaches them by name, refuses what won't be read before sending it, and the server reads them as
Discord and Slack do (adapters.shared.files.attachments, documents in the isolated workers): their text joins the
question and stays in the history, and each file that can't be read is named in the reply."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, expect

from fakes import documents
from fakes.harness.process_resources import cpu_seconds, memory
from fakes.harness.web_world import WebBots, asked_over_the_socket, hello_of
from fakes.model_server import FakeModelServer, Script
from tests.web.test_web import ChatPage, conversation, file, text_of

# Chromium is the module's (tests/web/conftest.py): its tests run in the module's event loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")

PDF, DOCX = "application/pdf", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MB = 1024 * 1024
ANSWER = "Revenue grew."
READABLE = "send documents (PDF, Word, PowerPoint, Excel, HTML) or text files"


@pytest_asyncio.fixture(loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text=ANSWER, rate=400)) as server:
        yield server


async def test_a_pdf_and_a_word_document_reach_the_model_and_a_follow_up_can_refer_to_them(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    await bots.start()  # a model that sees no images: documents and text files are taken all the same
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await expect(chat.page.locator("#attach")).to_be_visible()
    report = documents.pdf(["Quarterly revenue grew 12 percent.", "Costs fell by 3 percent."])
    memo = documents.word(["The board meets on Tuesday."], heading="Memo")
    hostile = '<img src=x onerror="window.pwned=1">.txt'  # a name is only ever text
    await chat.attach(
        file("report.pdf", report, PDF), file("memo.docx", memo, DOCX), file(hostile, b"hi", "text/plain")
    )
    tray = chat.page.locator("#tray .file-name")
    assert await tray.all_inner_texts() == ["report.pdf", "memo.docx", hostile]
    await expect(chat.notice).to_have_text("")

    await chat.ask("Sum these up.")
    assert await chat.answer() == ANSWER
    await expect(chat.page.locator("#tray .file-chip")).to_have_count(0)
    question = chat.messages.first
    assert await question.locator(".file-name").all_inner_texts() == ["report.pdf", "memo.docx", hostile]
    await expect(chat.page.locator("#messages img")).to_have_count(0)
    assert await chat.page.evaluate("window.pwned") is None
    asked = text_of(model.requests[-1].body["messages"][-1])
    assert asked.startswith("Sum these up.\n\n")
    for text in ("Quarterly revenue grew 12 percent.", "Costs fell by 3 percent.", "The board meets on Tuesday."):
        assert text in asked, asked
    assert f"{hostile}:\n```\nhi\n```" in asked

    # The documents' text is kept with the question: the next question can refer to it.
    await chat.ask("What did the memo say about the board?")
    assert await chat.answer() == ANSWER
    earlier = conversation(model.requests[-1].body)
    assert "The board meets on Tuesday." in earlier[0] and earlier[1:] == [
        ANSWER,
        "What did the memo say about the board?",
    ]


async def test_a_document_that_cant_be_read_is_named_in_the_reply_and_the_question_still_answered(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    await bots.start()
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await chat.attach(
        file("secret.pdf", documents.encrypted_pdf("Top secret."), PDF),
        file("cut.docx", documents.word(["Some text."])[:2000], DOCX),
        file("photo.pdf", documents.png(), PDF),
    )
    await chat.ask("What do they say?")
    assert await chat.answer() == (
        f"{ANSWER}\n\n"
        "ℹ️ secret.pdf is password-protected, so I couldn't read it.\n"
        "ℹ️ I couldn't read cut.docx: it seems damaged.\n"
        "ℹ️ photo.pdf isn't really a PDF, so I didn't read it."
    )
    assert model.requests[-1].body["messages"][-1] == {"role": "user", "content": "What do they say?"}

    # A scan alone, with no text: nothing to answer; the page gives it back, saying why.
    await chat.attach(file("scan.pdf", documents.scanned_pdf(), PDF))
    await chat.page.press("#input", "Enter")
    await expect(chat.notice).to_have_text("scan.pdf has no text I can read (a scan?).")
    await expect(chat.page.locator("#tray .file-name")).to_have_text(["scan.pdf"])
    await expect(chat.messages).to_have_count(2)
    assert len(model.requests) == 1


async def test_a_document_read_in_part_says_which_pages(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    await bots.start(MAX_DOCUMENT_CHARS="3000")
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    pages = [f"Page {number}: " + "words of the report " * 40 for number in range(1, 31)]
    await chat.attach(file("long.pdf", documents.pdf(pages), PDF))
    await chat.page.press("#input", "Enter")  # the document alone
    answer = await chat.answer()
    assert re.fullmatch(rf"{ANSWER}\n\nℹ️ long\.pdf: read pages 1–\d of 30\.", answer), answer
    asked = text_of(model.requests[-1].body["messages"][-1])
    assert asked.startswith("What is in this file?\n\nlong.pdf:\n```\n[page 1]\nPage 1:") and "Page 20:" not in asked
    await expect(chat.page.locator(".message.user .file-name")).to_have_text(["long.pdf"])


async def test_the_page_refuses_a_document_too_large_and_files_it_cannot_read_before_sending_them(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    await bots.start(MAX_DOCUMENT_BYTES="50000")
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    tray = chat.page.locator("#tray .thumb")
    big = documents.pdf(["Filler " * 200] * 3) + bytes(50_001)
    await chat.attach(file("big.pdf", big, PDF))
    await expect(chat.notice).to_have_text("big.pdf is larger than 50 KB, the most one document may be.")
    await chat.attach(file("notes.txt", b"x" * 100_001, "text/plain"))
    await expect(chat.notice).to_have_text("notes.txt is larger than 100 KB, the most one text file may be.")
    await chat.attach(file("archive.zip", b"PK\x03\x04", "application/zip"))
    await expect(chat.notice).to_have_text(f"archive.zip isn't a file I can read: {READABLE}.")
    await expect(tray).to_have_count(0)
    await chat.attach(*(file(f"part{n}.md", b"# part", "text/markdown") for n in range(1, 12)))
    await expect(chat.notice).to_have_text("You can send up to 10 files besides images with one message.")
    await expect(tray).to_have_count(10)
    await expect(chat.messages).to_have_count(0)
    assert model.requests == []


async def test_a_file_the_bot_doesnt_read_sent_anyway_is_named_and_skipped_and_the_question_answered(
    model: FakeModelServer, bots: WebBots
) -> None:
    """A client that sends what the page would refuse (the protocol itself)."""
    await bots.start()
    zipped = {"name": "archive.zip", "type": "application/zip", "data": "data:application/zip;base64,UEsDBA=="}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        hello = await hello_of(session, bots.url)
        assert (hello["maxDocumentBytes"], hello["maxFiles"], hello["maxImages"]) == (20_000_000, 10, 0)
        async with session.ws_connect(f"{bots.url}ws", max_msg_size=0) as ws:
            await ws.receive_json(timeout=5)
            await ws.send_json({"type": "ask", "id": "q1", "text": "What is this?", "files": [zipped]})
            while (reply := await ws.receive_json(timeout=15))["type"] != "reply" or reply["streaming"]:
                pass
    assert reply["text"] == f"{ANSWER}\n\nℹ️ I can only read text files and documents, so I skipped archive.zip."
    assert conversation(model.requests[-1].body) == ["What is this?"]


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


async def test_ten_small_sheets_repeating_one_huge_string_leave_the_bots_memory_as_it_was(
    model: FakeModelServer, bots: WebBots
) -> None:
    sheet = data_url(documents.repeated_string_sheet(), XLSX)  # 200 cells showing one string of 990,000 characters
    bot = await bots.start()
    await asyncio.sleep(1.0)  # the document workers start beside the bot
    start = memory(bot.pid)["VmRSS"]

    reply = await asked_over_the_socket(
        bots, "What is in these?", [{"name": f"sheet{n}.xlsx", "type": XLSX, "data": sheet} for n in range(10)]
    )
    after_answer = memory(bot.pid)
    await asyncio.sleep(5)
    five_seconds_later = memory(bot.pid)["VmRSS"]

    print(f"RSS {start // MB} MB, peak {after_answer['VmHWM'] // MB} MB, 5 s after {five_seconds_later // MB} MB")
    assert after_answer["VmHWM"] - start < 250 * MB, (start // MB, after_answer["VmHWM"] // MB)
    assert five_seconds_later - start < 60 * MB, (start // MB, five_seconds_later // MB)
    assert reply["text"].startswith(f"{ANSWER}\n\nℹ️ sheet0.xlsx: read row 1 of sheet Sheet1")
    asked = text_of(model.requests[-1].body["messages"][-1])
    assert all(f"sheet{n}.xlsx:\n```\n## Sheet1\nxxxx" in asked for n in range(10)), asked[:300]


async def test_thirty_text_files_in_one_frame_ten_are_read_cut_to_the_limit_and_the_model_answers(
    model: FakeModelServer, bots: WebBots
) -> None:
    """A client sending more files than the page takes: the first ten are read, cut to
    MAX_DOCUMENT_CHARS and to what fits the model's context before anything counts their tokens,
    and the model answers with them; the others are named."""
    bot = await bots.start()
    notes = [
        {"name": f"notes{n:02}.txt", "type": "text/plain", "data": data_url(f"{n:02} ".encode() * 33_000, "text/plain")}
        for n in range(30)
    ]
    assert all(len(base64.b64decode(note["data"].split(",")[1])) == 99_000 for note in notes)
    await asyncio.sleep(1.0)
    cpu_before = cpu_seconds(bot.pid)

    reply = await asked_over_the_socket(bots, "What do these say?", notes)

    cpu = cpu_seconds(bot.pid) - cpu_before
    print(f"the bot's CPU for the frame: {cpu:.2f} s")
    answer = reply["text"].split("\n\nℹ️ ", 1)[0]
    assert answer == ANSWER, reply["text"][:2000]
    asked = text_of(model.requests[-1].body["messages"][-1])
    assert asked.startswith("What do these say?\n\nnotes00.txt:\n```\n00 00 00")
    assert all(f"notes{n:02}.txt:\n```\n{n:02} {n:02} " in asked for n in range(10)), asked[:300]
    assert "notes10.txt" not in asked and len(asked) < 40_000
    assert cpu < 0.4, cpu  # its CPU time, not its wall time: a busy machine doesn't change it much
    assert reply["text"].startswith(
        f"{ANSWER}\n\nℹ️ I read 10 files besides images per message at most, so I skipped "
        + ", ".join(f"notes{n}.txt" for n in range(10, 30))
        + ".\n"
    )
    for n in range(10):
        assert re.search(
            rf"\nℹ️ notes{n:02}\.txt: read the first \d+ characters; the rest was left out \(all that fits",
            reply["text"],
        )
