"""Documents people attach are read in the isolated workers (adapters.shared.files.documents and
adapters.shared.files.document_worker): each format's text, and a sentence naming the file for each bad
one, while the next file is still read. Real files, real worker processes."""

from __future__ import annotations

import asyncio
import datetime
import re
import time
from collections.abc import AsyncIterator

import pytest

from adapters.shared.files.attachments import Attachment, ReadFiles, read_attachments, with_files
from adapters.shared.files.documents import DocumentReader, DocumentRefused, DocumentText, cut_documents
from adapters.shared.files.isolation import IsolatedWorkers
from config.settings import DocumentSettings
from fakes import documents as make


async def returning(data: bytes) -> bytes:
    return data


@pytest.fixture
async def workers() -> AsyncIterator[IsolatedWorkers]:
    pool = IsolatedWorkers(preload=["adapters.shared.files.document_worker"])
    yield pool
    await pool.aclose()


@pytest.fixture
def reader(workers: IsolatedWorkers) -> DocumentReader:
    return DocumentReader(DocumentSettings(), workers)


async def read(reader: DocumentReader, name: str, kind: str, data: bytes) -> DocumentText:
    return await reader.read(name, kind, len(data), lambda: returning(data))


async def test_a_pdf_is_read_page_by_page(reader: DocumentReader) -> None:
    document = await read(reader, "report.pdf", "pdf", make.pdf(["Revenue grew 12 percent.", "Costs fell."]))

    assert (document.unit, document.total) == ("page", 2)
    assert "[page 1]\nRevenue grew 12 percent." in document.parts[0]
    assert "Costs fell." in document.parts[1]


async def test_word_powerpoint_excel_and_html_are_read(reader: DocumentReader) -> None:
    word = make.word(["The plan is agreed."], heading="Plan", table=[["Owner", "Due"], ["Ana", "May"]])
    deck = make.slides(["Quarterly results", "Next steps"])
    book = make.spreadsheet({"Sales": [["Region", "Total"], ["North", 120]], "Notes": [["ok"]]})
    page = b"<!DOCTYPE html><html><head><style>p{}</style><script>x()</script></head>"
    page += b"<body><h1>Title</h1><p>Hello &amp; welcome</p></body></html>"

    read_word = await read(reader, "plan.docx", "docx", word)
    read_deck = await read(reader, "deck.pptx", "pptx", deck)
    read_book = await read(reader, "sales.xlsx", "xlsx", book)
    read_page = await read(reader, "page.html", "html", page)

    assert read_word.parts == ("# Plan\nThe plan is agreed.\nOwner | Due\nAna | May",)
    assert read_deck.parts == ("[slide 1]\nQuarterly results", "[slide 2]\nNext steps")
    assert read_book.parts == ("## Sales\nRegion | Total\nNorth | 120", "## Notes\nok")
    assert read_page.parts == ("Title\n\nHello & welcome",)


@pytest.mark.parametrize(
    ("name", "kind", "data", "sentence"),
    [
        (
            "secret.pdf",
            "pdf",
            make.encrypted_pdf("Top secret."),
            "{name} is password-protected, so I couldn't read it.",
        ),
        ("scan.pdf", "pdf", make.scanned_pdf(), "{name} has no text I can read (a scan?)."),
        ("cut.pdf", "pdf", make.pdf(["Some text here."])[:300], "I couldn't read {name}: it seems damaged."),
        ("cut.docx", "docx", make.word(["Some text."])[:2000], "I couldn't read {name}: it seems damaged."),
        ("bomb.docx", "docx", make.zip_bomb_word(), "{name} unpacks to far more than its size, so I didn't open it."),
        ("photo.pdf", "pdf", make.png(), "{name} isn't really a PDF, so I didn't read it."),
        ("deck.docx", "docx", make.slides(["A slide"]), "{name} isn't really a Word document, so I didn't read it."),
        ("page.html", "html", b"\x00\x01binary", "{name} isn't really a web page, so I didn't read it."),
    ],
)
async def test_a_bad_file_gets_a_sentence_naming_it_and_the_next_is_read(
    reader: DocumentReader, name: str, kind: str, data: bytes, sentence: str
) -> None:
    with pytest.raises(DocumentRefused) as refused:
        await read(reader, name, kind, data)

    assert str(refused.value) == sentence.format(name=name)
    assert "fine" in (await read(reader, "ok.pdf", "pdf", make.pdf(["fine"]))).parts[0]


async def test_a_pdf_with_only_an_owner_password_is_read(reader: DocumentReader) -> None:
    document = await read(reader, "locked.pdf", "pdf", make.encrypted_pdf("Readable anyway.", password=""))

    assert "Readable anyway." in document.parts[0]


async def test_a_file_over_the_size_limit_is_refused_without_downloading_it(workers: IsolatedWorkers) -> None:
    small = DocumentReader(DocumentSettings(max_bytes=1000), workers)

    async def download() -> bytes:
        raise AssertionError("downloaded")

    with pytest.raises(DocumentRefused, match=r"^big\.pdf is too large to read \(over 0\.001 MB\)\.$"):
        await small.read("big.pdf", "pdf", 5000, download)


async def test_a_document_past_its_time_limit_gets_a_notice_and_the_next_is_read(workers: IsolatedWorkers) -> None:
    # Reading all of it takes about 0.25 s, far past the limit whatever the worker pool's own timing (a read cut at
    # the default 100,000 characters took 20 ms, close enough to 10 ms to finish before the limit was noticed).
    hasty = DocumentReader(DocumentSettings(timeout_seconds=0.01, max_chars=10_000_000), workers)
    long_pdf = make.pdf([f"Page {number} " + "words " * 300 for number in range(200)])

    with pytest.raises(DocumentRefused, match=r"^long\.pdf took too long to read, so I skipped it\.$"):
        await read(hasty, "long.pdf", "pdf", long_pdf)
    after = await read(DocumentReader(DocumentSettings(), workers), "a.pdf", "pdf", make.pdf(["Read after it."]))
    assert after.parts == ("[page 1]\nRead after it.",) and after.complete


async def test_a_long_pdf_is_cut_with_the_pages_read_said(workers: IsolatedWorkers) -> None:
    few = DocumentReader(DocumentSettings(max_chars=5000), workers)
    document = await read(few, "report.pdf", "pdf", make.pdf([f"Page {n} " + "text " * 200 for n in range(1, 121)]))

    text, notices = cut_documents([document], 5000)

    assert len(document.parts) < 10 and document.total == 120
    assert text.startswith("report.pdf:\n```\n[page 1]\nPage 1 text") and len(text) < 5100
    assert notices == ("report.pdf: read pages 1–5 of 120.",)


async def test_attachments_read_documents_and_text_together(reader: DocumentReader) -> None:
    files = [
        Attachment("notes.txt", "text/plain", 5, lambda: returning(b"hello")),
        Attachment("report.pdf", "application/pdf", 0, lambda: returning(make.pdf(["Quarterly revenue"]))),
        Attachment("photo.pdf", "application/pdf", 0, lambda: returning(make.png())),
        Attachment("clip.mp4", "video/mp4", 10, lambda: returning(b"")),
    ]

    read_files = await read_attachments(files, documents=reader)
    documents, _ = cut_documents(read_files.documents, 100_000)

    assert with_files("What is in these?", documents) == (
        "What is in these?\n\nnotes.txt:\n```\nhello\n```\n\nreport.pdf:\n```\n[page 1]\nQuarterly revenue\n```"
    )
    assert read_files.notices == (
        "I can only read text files and documents, so I skipped clip.mp4.",
        "photo.pdf isn't really a PDF, so I didn't read it.",
    )


async def test_a_long_web_page_is_cut_with_the_characters_read_said(workers: IsolatedWorkers) -> None:
    few = DocumentReader(DocumentSettings(max_chars=1000), workers)
    body = "".join(f"<p>Paragraph {n} of a long page.</p>" for n in range(10_000))
    document = await read(few, "page.html", "html", f"<html><body>{body}</body></html>".encode())

    text, notices = cut_documents([document], 1000)

    assert not document.complete and text.startswith("page.html:\n```\nParagraph 0 of a long page.\n")
    [notice] = notices
    assert notice.startswith("page.html: read the first ") and notice.endswith(" characters; the rest was left out.")


async def test_a_small_sheet_repeating_one_huge_string_is_read_only_to_the_limit(reader: DocumentReader) -> None:
    bomb = make.repeated_string_sheet()  # 200 cells showing one string of 990,000 characters
    assert len(bomb) < 4000

    document = await read(reader, "bomb.xlsx", "xlsx", bomb)
    text, notices = cut_documents([document], 100_000)

    assert sum(len(part) for part in document.parts) <= 100_000 and not document.complete
    assert text.startswith("bomb.xlsx:\n```\n## Sheet1\nxxxxxxxx") and len(text) < 100_100
    assert notices == ("bomb.xlsx: read row 1 of sheet Sheet1.",)


async def test_an_honest_sheet_of_a_million_numbers_is_read_up_to_the_limit_with_the_rows_said(
    reader: DocumentReader,
) -> None:
    grid = make.number_grid(1000, 1000)  # unpacks to over 300 times its size

    document = await read(reader, "grid.xlsx", "xlsx", grid)
    text, notices = cut_documents([document], 100_000)

    assert text.startswith("grid.xlsx:\n```\n## Sheet1\n1 | 1 | 1 |") and len(text) < 100_100
    [notice] = notices
    assert re.fullmatch(r"grid\.xlsx: read rows 1–(\d+) of sheet Sheet1\.", notice), notice
    last = int(notice.split("–")[1].split(" ")[0])
    assert 20 <= last < 1000 and f"\n{last} | {last} | " in text and f"\n{last + 1} | " not in text


async def test_a_sheets_dates_booleans_and_inline_text_read_as_shown(reader: DocumentReader) -> None:
    book = make.spreadsheet({"Log": [["When", "Done", "Amount"], [datetime.date(2026, 5, 1), True, 1.5]]})

    document = await read(reader, "log.xlsx", "xlsx", book)

    assert document.parts == ("## Log\nWhen | Done | Amount\n2026-05-01 | TRUE | 1.5",)


async def test_text_files_and_documents_share_the_limit_each_read_from_its_start(reader: DocumentReader) -> None:
    notes = [Attachment(f"notes{n}.txt", "text/plain", 99_000, lambda: returning(b"word " * 19_800)) for n in range(10)]
    report = Attachment("report.pdf", "application/pdf", 0, lambda: returning(make.pdf(["Quarterly revenue"])))

    read_files = await read_attachments([report, *notes], documents=reader)
    text, notices = cut_documents(read_files.documents, 100_000)

    assert [document.name for document in read_files.documents] == ["report.pdf", *(f"notes{n}.txt" for n in range(10))]
    assert "Quarterly revenue" in text and all(f"notes{n}.txt:\n```\nword word" in text for n in range(10))
    assert len(text) < 101_000 and len(notices) == 10
    assert notices[0].startswith("notes0.txt: read the first 9,99") and notices[0].endswith(" the rest was left out.")


async def test_one_message_of_slow_pdfs_delays_another_messages_document_by_one_file_at_most(
    workers: IsolatedWorkers,
) -> None:
    """Ten PDFs that each take longer than the message's time: the message gets its time once for all
    of them, and another message's document, sent after, is read in the next free worker."""
    reader = DocumentReader(DocumentSettings(timeout_seconds=3.0), workers)
    slow = make.slow_pdf()
    slow_files = [Attachment(f"slow{n}.pdf", "application/pdf", 0, lambda: returning(slow)) for n in range(10)]
    memo = Attachment("memo.docx", "", 0, lambda: returning(make.word(["The board meets on Tuesday."])))

    async def timed(files: list[Attachment]) -> tuple[float, ReadFiles]:
        started = time.monotonic()
        read_files = await read_attachments(files, documents=reader)
        return time.monotonic() - started, read_files

    slow_message = asyncio.create_task(timed(slow_files))
    await asyncio.sleep(0.5)
    (memo_seconds, memo_read), (slow_seconds, slow_read) = await asyncio.gather(timed([memo]), slow_message)

    assert "The board meets on Tuesday." in memo_read.documents[0].parts[0]
    assert memo_seconds < 5.0, memo_seconds  # one slow file's 3 s at most, not five rounds of them
    assert slow_seconds < 6.0, slow_seconds  # the message's 3 s, once
    assert slow_read.documents == ()
    assert sorted(slow_read.notices)[-2:] == [
        "slow0.pdf took too long to read, so I skipped it.",
        "slow1.pdf took too long to read, so I skipped it.",
    ]
    assert slow_read.notices[2:] == tuple(
        f"I skipped slow{n}.pdf: the files before it took all the time I give one message's documents."
        for n in range(2, 10)
    )


@pytest.mark.parametrize(
    ("name", "kind", "data"),
    [
        ("long.docx", "docx", make.word(["word " * 100_000], table=[["cell " * 50_000] * 3])),
        ("long.pptx", "pptx", make.slides(["slide " * 50_000, "next " * 50_000])),
        ("long.pdf", "pdf", make.pdf(["page " * 30_000])),
    ],
)
async def test_a_worker_returns_no_more_than_the_limit_cutting_inside_a_paragraph_slide_or_page(
    workers: IsolatedWorkers, name: str, kind: str, data: bytes
) -> None:
    few = DocumentReader(DocumentSettings(max_chars=20_000), workers)

    document = await read(few, name, kind, data)

    assert 19_000 < sum(len(part) for part in document.parts) <= 20_000 and not document.complete
