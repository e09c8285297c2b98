"""Documents' text, read in the isolated workers only (adapters.shared.files.isolation): their fork server
imports this module, and with it the parsers (pypdf, python-docx, python-pptx, openpyxl); the bot's
process never does. `read_document` is what adapters.shared.files.documents calls here.

Before a parser sees a file, its bytes must be what its name claims (a PDF starts with %PDF-, a
Word, PowerPoint or Excel file is a zip whose [Content_Types].xml names that format's main part, a
web page has <html), and a zip must not be absurd (more members or unpacked bytes in all than any
real document has, by its declared sizes, which Python's zipfile holds every member to).

No more than `max_chars` characters are ever taken, cut inside a page, a paragraph, a row or a cell:
a small file whose few strings are repeated a million times returns `max_chars` characters like any
other. Spreadsheets are read by adapters.shared.files.spreadsheet, as a stream."""

from __future__ import annotations

import io
import itertools
import re
import zipfile
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any

import docx
import pptx
import pypdf
from docx.table import Table
from docx.text.paragraph import Paragraph
from pptx.enum.shapes import MSO_SHAPE_TYPE

from adapters.shared.files.bounded_text import joined, taken_until
from adapters.shared.files.documents import KIND_NAMES, DocumentRefused, DocumentText
from adapters.shared.files.spreadsheet import read_spreadsheet

# A zip is refused beyond these, as no real document has them: more members, or more bytes unpacked
# in all. Below them, what is read is bounded by the character limit, not by what the file unpacks to.
MAX_MEMBERS = 10_000
MAX_UNPACKED_BYTES = 300_000_000
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
    if len(members) > MAX_MEMBERS or unpacked > MAX_UNPACKED_BYTES:
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
    texts, cut = taken_until(max_chars, (page.extract_text().strip() for page in pages), header=len("[page 1]\n"))
    parts = tuple(f"[page {number}]\n{text}" if text else "" for number, text in enumerate(texts, 1))
    return DocumentText(name, "page", parts, len(pages), complete=not cut)


def _docx(name: str, data: bytes, max_chars: int) -> DocumentText:
    document = docx.Document(io.BytesIO(data))
    contents = document.iter_inner_content()
    blocks = (_table(block, max_chars) if isinstance(block, Table) else _paragraph(block) for block in contents)
    lines, cut = taken_until(max_chars, (line for line in blocks if line))
    text = "\n".join(lines)
    return DocumentText(name, "", (text,), 1, complete=not cut and len(text) < max_chars)


def _paragraph(paragraph: Paragraph) -> str:
    text = paragraph.text.strip()
    style = paragraph.style.name if paragraph.style is not None else ""
    level = re.fullmatch(r"Heading (\d)", style or "")
    return f"{'#' * int(level.group(1))} {text}" if level and text else text


def _table(table: Table, max_chars: int) -> str:
    rows = (joined((cell.text.strip() for cell in row.cells), " | ", max_chars) for row in table.rows)
    return joined(rows, "\n", max_chars)


def _pptx(name: str, data: bytes, max_chars: int) -> DocumentText:
    slides = pptx.Presentation(io.BytesIO(data)).slides
    texts, cut = taken_until(max_chars, (_slide(slide, max_chars) for slide in slides), header=len("[slide 1]\n"))
    parts = tuple(f"[slide {number}]\n{text}" if text else "" for number, text in enumerate(texts, 1))
    return DocumentText(name, "slide", parts, len(slides), complete=not cut)


def _slide(slide: Any, max_chars: int) -> str:
    lines = (text for shape in slide.shapes for text in _shape_texts(shape, max_chars))
    notes = slide.notes_slide.notes_text_frame if slide.has_notes_slide else None
    noted = [f"Notes: {notes.text.strip()}"] if notes is not None and notes.text.strip() else []
    return joined(itertools.chain(lines, noted), "\n", max_chars)


def _shape_texts(shape: Any, max_chars: int) -> Iterator[str]:
    if getattr(shape, "shape_type", None) == MSO_SHAPE_TYPE.GROUP:
        for inner in shape.shapes:
            yield from _shape_texts(inner, max_chars)
    elif getattr(shape, "has_table", False):
        rows = (joined((cell.text.strip() for cell in row.cells), " | ", max_chars) for row in shape.table.rows)
        yield joined(rows, "\n", max_chars)
    elif getattr(shape, "has_text_frame", False) and shape.text_frame.text.strip():
        yield shape.text_frame.text.strip()


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


_READERS: dict[str, Callable[[str, bytes, int], DocumentText]] = {
    "pdf": _pdf,
    "docx": _docx,
    "pptx": _pptx,
    "xlsx": read_spreadsheet,
    "html": _html,
}
