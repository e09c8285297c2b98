"""Documents' text, read in the isolated workers only (adapters.jobs.isolation): their fork server
imports this module, and with it the parsers (pypdf, python-docx, python-pptx, openpyxl); the bot's
process never does. `read_document` is what adapters.jobs.documents calls here.

Before a parser sees a file, its bytes must be what its name claims (a PDF starts with %PDF-, a
Word, PowerPoint or Excel file is a zip whose [Content_Types].xml names that format's main part, a
web page has <html), and a zip must not unpack to much more than it is (its declared sizes, which
Python's zipfile holds every member to, are checked first)."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from html.parser import HTMLParser
from typing import Any

import docx
import openpyxl
import pptx
import pypdf
from docx.table import Table
from docx.text.paragraph import Paragraph
from pptx.enum.shapes import MSO_SHAPE_TYPE

from adapters.jobs.documents import KIND_NAMES, DocumentRefused, DocumentText

# A zip is refused beyond these: more members, more bytes unpacked in all, or a member over
# _RATIO_FLOOR that unpacks to more than _MAX_RATIO times its packed size (Office XML packs about
# 5–20 times; a zip bomb thousands of times).
MAX_MEMBERS = 10_000
MAX_UNPACKED_BYTES = 300_000_000
MAX_RATIO = 100
_RATIO_FLOOR = 1_000_000
_MAIN_PARTS = {
    "docx": b"wordprocessingml.document.main+xml",
    "pptx": b"presentationml.presentation.main+xml",
    "xlsx": b"spreadsheetml.sheet.main+xml",
}
_SNIFF_BYTES = 2048


def read_document(name: str, kind: str, data: bytes, max_chars: int) -> DocumentText:
    """The text of `data`, a document of `kind` named `name`, read until `max_chars` characters;
    raises DocumentRefused with the person's sentence for anything unreadable."""
    _check_claim(name, kind, data)
    try:
        document = _READERS[kind](name, data, max_chars)
    except (DocumentRefused, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - a damaged file makes a parser raise almost anything
        reason = f"unreadable: {type(error).__name__}: {str(error)[:200]}"
        raise DocumentRefused(f"I couldn't read {name}: it seems damaged.", reason) from None
    if not any(part.strip() for part in document.parts):
        scan = " (a scan?)" if kind == "pdf" else ""
        raise DocumentRefused(f"{name} has no text I can read{scan}.", "no_text")
    return document


def _check_claim(name: str, kind: str, data: bytes) -> None:
    head = data[:_SNIFF_BYTES]
    if kind == "pdf":
        genuine = b"%PDF-" in head[:1024]
    elif kind == "html":
        lowered = head.lower()
        genuine = any(tag in lowered for tag in (b"<html", b"<!doctype html", b"<head", b"<body"))
    else:
        genuine = data.startswith(b"PK\x03\x04") and _check_zip(name, kind, data)
    if not genuine:
        raise DocumentRefused(f"{name} isn't really a {KIND_NAMES[kind]}, so I didn't read it.", f"not_{kind}")


def _check_zip(name: str, kind: str, data: bytes) -> bool:
    """Whether the zip holds the claimed format's main part; refuses a zip bomb by its declared sizes."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise DocumentRefused(f"I couldn't read {name}: it seems damaged.", "bad_zip") from None
    unpacked = sum(member.file_size for member in members)
    swollen = any(
        member.file_size > _RATIO_FLOOR and member.file_size > MAX_RATIO * max(member.compress_size, 1)
        for member in members
    )
    if len(members) > MAX_MEMBERS or unpacked > MAX_UNPACKED_BYTES or swollen:
        detail = f"{len(members)} members, {unpacked} bytes unpacked"
        raise DocumentRefused(f"{name} unpacks to far more than its size, so I didn't open it.", f"zip_bomb: {detail}")
    try:
        types = archive.read("[Content_Types].xml")
    except (KeyError, zipfile.BadZipFile, OSError):
        return False
    return _MAIN_PARTS[kind] in types


def _pdf(name: str, data: bytes, max_chars: int) -> DocumentText:
    reader = pypdf.PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):  # an owner password alone still opens
        raise DocumentRefused(f"{name} is password-protected, so I couldn't read it.", "encrypted")
    pages = reader.pages
    texts = _until(max_chars, (page.extract_text().strip() for page in pages))
    parts = tuple(f"[page {number}]\n{text}" if text else "" for number, text in enumerate(texts, 1))
    return DocumentText(name, "page", parts, len(pages))


def _docx(name: str, data: bytes, max_chars: int) -> DocumentText:
    document = docx.Document(io.BytesIO(data))
    contents = document.iter_inner_content()
    blocks = (_table(block) if isinstance(block, Table) else _paragraph(block) for block in contents)
    lines = _until(max_chars, (line for line in blocks if line))
    text = "\n".join(lines)
    return DocumentText(name, "", (text,), 1, complete=len(text) < max_chars)


def _paragraph(paragraph: Paragraph) -> str:
    text = paragraph.text.strip()
    style = paragraph.style.name if paragraph.style is not None else ""
    level = re.fullmatch(r"Heading (\d)", style or "")
    return f"{'#' * int(level.group(1))} {text}" if level and text else text


def _table(table: Table) -> str:
    return "\n".join(" | ".join(cell.text.strip() for cell in row.cells) for row in table.rows)


def _pptx(name: str, data: bytes, max_chars: int) -> DocumentText:
    slides = pptx.Presentation(io.BytesIO(data)).slides
    texts = _until(max_chars, (_slide(slide) for slide in slides))
    parts = tuple(f"[slide {number}]\n{text}" if text else "" for number, text in enumerate(texts, 1))
    return DocumentText(name, "slide", parts, len(slides))


def _slide(slide: Any) -> str:
    lines = [text for shape in slide.shapes for text in _shape_texts(shape)]
    if slide.has_notes_slide and (notes := slide.notes_slide.notes_text_frame):
        lines += [f"Notes: {notes.text.strip()}"] if notes.text.strip() else []
    return "\n".join(lines)


def _shape_texts(shape: Any) -> Iterator[str]:
    if getattr(shape, "shape_type", None) == MSO_SHAPE_TYPE.GROUP:
        for inner in shape.shapes:
            yield from _shape_texts(inner)
    elif getattr(shape, "has_table", False):
        yield "\n".join(" | ".join(cell.text.strip() for cell in row.cells) for row in shape.table.rows)
    elif getattr(shape, "has_text_frame", False) and shape.text_frame.text.strip():
        yield shape.text_frame.text.strip()


def _xlsx(name: str, data: bytes, max_chars: int) -> DocumentText:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        sheets = book.worksheets
        parts: list[str] = []
        read = 0
        for sheet in sheets:
            if read >= max_chars:
                break
            sheet.reset_dimensions()  # a file's own dimensions may claim a million empty columns
            rows = _until(max_chars - read, _rows(sheet.iter_rows(values_only=True)))
            parts.append("\n".join([f"## {sheet.title}", *rows]) if rows else "")
            read += sum(len(row) + 1 for row in rows)
    finally:
        book.close()
    return DocumentText(name, "sheet", tuple(parts), len(sheets), complete=read < max_chars)


def _rows(rows: Iterable[tuple[object, ...]]) -> Iterator[str]:
    for row in rows:
        cells = ["" if value is None else str(value) for value in row]
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            yield " | ".join(cells)


def _html(name: str, data: bytes, max_chars: int) -> DocumentText:
    try:
        markup = data.decode("utf-8")
    except UnicodeDecodeError:
        markup = data.decode("cp1252", errors="replace")
    parser = _HtmlText()
    fed = 0
    while fed < len(markup) and parser.length <= max_chars:
        parser.feed(markup[fed : fed + 65_536])
        fed += 65_536
    parser.close()
    text = parser.text()
    return DocumentText(name, "", (text[: max_chars + 1],), 1, complete=fed >= len(markup) and len(text) <= max_chars)


class _HtmlText(HTMLParser):
    """A web page's visible text, a line per block."""

    SKIPPED = frozenset(["script", "style", "noscript", "template", "svg", "head"])
    BLOCKS = frozenset(["p", "div", "br", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "section"])
    BLOCKS |= frozenset(["article", "header", "footer", "table", "ul", "ol", "pre", "blockquote", "hr", "title"])

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._pieces: list[str] = []
        self._skipping = 0
        self.length = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self._skipping += 1
        elif tag in self.BLOCKS:
            self._add("\n- " if tag == "li" else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self.BLOCKS:
            self._add("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._add(data)

    def _add(self, piece: str) -> None:
        self._pieces.append(piece)
        self.length += len(piece)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self._pieces).splitlines())
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _until(max_chars: int, texts: Iterable[str]) -> list[str]:
    """`texts` taken until they add up to `max_chars` characters (the last one may pass it)."""
    taken: list[str] = []
    read = 0
    for text in texts:
        if read >= max_chars:
            break
        taken.append(text)
        read += len(text) + 1
    return taken


_READERS: dict[str, Callable[[str, bytes, int], DocumentText]] = {
    "pdf": _pdf,
    "docx": _docx,
    "pptx": _pptx,
    "xlsx": _xlsx,
    "html": _html,
}
