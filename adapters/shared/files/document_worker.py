"""Documents' text, read in the isolated workers only (adapters.shared.files.isolation): their fork server
imports this module, and with it the parsers (pypdf, python-docx, python-pptx, openpyxl); the bot's
process never does. `read_document` is what adapters.shared.files.documents calls here.

Before a parser sees a file, its bytes must be what its name claims (a PDF starts with %PDF-, a
Word, PowerPoint or Excel file is a zip whose [Content_Types].xml names that format's main part, a
web page has <html), and a zip must not be absurd (more members or unpacked bytes in all than any
real document has, by its declared sizes, which Python's zipfile holds every member to).

No more than `max_chars` characters are ever taken, cut inside a page, a paragraph, a row or a cell:
a small file whose few strings are repeated a million times returns `max_chars` characters like any
other. A spreadsheet is read as a stream (its shared strings each bounded as they are parsed, its
rows until the limit), so an honest sheet of a million cells is read up to the limit too."""

from __future__ import annotations

import datetime
import io
import itertools
import posixpath
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from html.parser import HTMLParser
from typing import IO, Any
from xml.parsers import expat

import docx
import pptx
import pypdf
from docx.table import Table
from docx.text.paragraph import Paragraph
from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format
from openpyxl.utils.datetime import MAC_EPOCH, WINDOWS_EPOCH, from_excel
from pptx.enum.shapes import MSO_SHAPE_TYPE

from adapters.shared.files.documents import KIND_NAMES, DocumentRefused, DocumentText

# A zip is refused beyond these, as no real document has them: more members, or more bytes unpacked
# in all. Below them, what is read is bounded by the character limit, not by what the file unpacks to.
MAX_MEMBERS = 10_000
MAX_UNPACKED_BYTES = 300_000_000
# A spreadsheet's workbook, relationships and styles parts, read whole, are refused past this.
_MAX_SMALL_PART_BYTES = 20_000_000
_CHUNK_BYTES = 65_536
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
    texts, cut = _until(max_chars, (page.extract_text().strip() for page in pages), header=len("[page 1]\n"))
    parts = tuple(f"[page {number}]\n{text}" if text else "" for number, text in enumerate(texts, 1))
    return DocumentText(name, "page", parts, len(pages), complete=not cut)


def _docx(name: str, data: bytes, max_chars: int) -> DocumentText:
    document = docx.Document(io.BytesIO(data))
    contents = document.iter_inner_content()
    blocks = (_table(block, max_chars) if isinstance(block, Table) else _paragraph(block) for block in contents)
    lines, cut = _until(max_chars, (line for line in blocks if line))
    text = "\n".join(lines)
    return DocumentText(name, "", (text,), 1, complete=not cut and len(text) < max_chars)


def _paragraph(paragraph: Paragraph) -> str:
    text = paragraph.text.strip()
    style = paragraph.style.name if paragraph.style is not None else ""
    level = re.fullmatch(r"Heading (\d)", style or "")
    return f"{'#' * int(level.group(1))} {text}" if level and text else text


def _table(table: Table, max_chars: int) -> str:
    rows = (_joined((cell.text.strip() for cell in row.cells), " | ", max_chars) for row in table.rows)
    return _joined(rows, "\n", max_chars)


def _pptx(name: str, data: bytes, max_chars: int) -> DocumentText:
    slides = pptx.Presentation(io.BytesIO(data)).slides
    texts, cut = _until(max_chars, (_slide(slide, max_chars) for slide in slides), header=len("[slide 1]\n"))
    parts = tuple(f"[slide {number}]\n{text}" if text else "" for number, text in enumerate(texts, 1))
    return DocumentText(name, "slide", parts, len(slides), complete=not cut)


def _slide(slide: Any, max_chars: int) -> str:
    lines = (text for shape in slide.shapes for text in _shape_texts(shape, max_chars))
    notes = slide.notes_slide.notes_text_frame if slide.has_notes_slide else None
    noted = [f"Notes: {notes.text.strip()}"] if notes is not None and notes.text.strip() else []
    return _joined(itertools.chain(lines, noted), "\n", max_chars)


def _shape_texts(shape: Any, max_chars: int) -> Iterator[str]:
    if getattr(shape, "shape_type", None) == MSO_SHAPE_TYPE.GROUP:
        for inner in shape.shapes:
            yield from _shape_texts(inner, max_chars)
    elif getattr(shape, "has_table", False):
        rows = (_joined((cell.text.strip() for cell in row.cells), " | ", max_chars) for row in shape.table.rows)
        yield _joined(rows, "\n", max_chars)
    elif getattr(shape, "has_text_frame", False) and shape.text_frame.text.strip():
        yield shape.text_frame.text.strip()


def _xlsx(name: str, data: bytes, max_chars: int) -> DocumentText:
    archive = zipfile.ZipFile(io.BytesIO(data))
    workbook = _part_path(archive, "_rels/.rels", "", "/officeDocument") or "xl/workbook.xml"
    book = _Workbook(archive, workbook, max_chars)
    parts: list[str] = []
    rows: list[tuple[int, ...]] = []
    left, complete = max_chars, True
    for title, path in book.sheets:
        if left <= 0:
            break  # the sheets left unread are told by their count
        header = f"## {title}"
        sheet = _SheetReader(book, left - len(header) - 1)
        sheet.read(archive, path)
        parts.append("\n".join([header, *sheet.lines]) if sheet.lines else "")
        rows.append(tuple(sheet.numbers))
        left -= len(parts[-1]) + 2
        if not sheet.complete:
            complete = False
            break
    return DocumentText(name, "sheet", tuple(parts), len(book.sheets), complete=complete, rows=tuple(rows))


class _Workbook:
    """What a spreadsheet's sheets need from its workbook: the sheets' titles and parts, the shared
    strings (each cut to `max_chars` as it is parsed), and which cell styles show dates."""

    def __init__(self, archive: zipfile.ZipFile, path: str, max_chars: int) -> None:
        folder = posixpath.dirname(path)
        relations = _relations(archive, posixpath.join(folder, "_rels", posixpath.basename(path) + ".rels"), folder)
        self.sheets: list[tuple[str, str]] = []
        self.epoch = WINDOWS_EPOCH
        for tag, attributes in _elements(_small_part(archive, path)):
            if tag == "sheet":
                target = relations.get(_attribute(attributes, "id"), ("", ""))
                if target[1].endswith("/worksheet"):
                    self.sheets.append((" ".join(attributes.get("name", "").split()), target[0]))
            elif tag == "workbookPr" and attributes.get("date1904", "").lower() in ("1", "true"):
                self.epoch = MAC_EPOCH
        strings_path = next((path for path, kind in relations.values() if kind.endswith("/sharedStrings")), "")
        self.strings = _shared_strings(archive, strings_path, max_chars) if strings_path in archive.namelist() else []
        styles_path = next((path for path, kind in relations.values() if kind.endswith("/styles")), "")
        self.date_styles = _date_styles(archive, styles_path) if styles_path in archive.namelist() else frozenset()

    def value(self, kind: str, text: str, style: int) -> str:
        """A cell's text as shown: `kind` is its t attribute, `text` its value (or inline string)."""
        if kind == "s":
            index = int(text) if text.strip().isdigit() else -1
            return self.strings[index] if 0 <= index < len(self.strings) else ""
        if kind == "b":
            return "TRUE" if text.strip() == "1" else "FALSE"
        if kind in ("inlineStr", "str", "e", "d") or not text:
            return text
        try:
            number = float(text)
        except ValueError:
            return text
        if style in self.date_styles and 0 <= number < 2_958_466:  # Excel's dates end with the year 9999
            return _date(from_excel(number, epoch=self.epoch))
        return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


def _date(value: datetime.datetime | datetime.time) -> str:
    if isinstance(value, datetime.datetime) and value.time() == datetime.time():
        return value.date().isoformat()
    return value.isoformat(sep=" ") if isinstance(value, datetime.datetime) else value.isoformat()


class _SheetReader:
    """A worksheet's rows, streamed: a line per row that has a value ("a | b | c", empty cells kept
    between values), each cell's line breaks made spaces, until `max_chars` characters."""

    def __init__(self, book: _Workbook, max_chars: int) -> None:
        self._book = book
        self._left = max_chars
        self.lines: list[str] = []
        self.numbers: list[int] = []  # each line's row number
        self.complete = True
        self._row_number = 0
        self._cells: dict[int, str] = {}
        self._next_column = 1  # a cell's column when it doesn't say
        self._cell: tuple[int, str, int] = (0, "", 0)  # column, t attribute, style
        self._text: list[str] = []
        self._taking = False  # inside a value, or an inline string's text
        self._taken = 0

    def read(self, archive: zipfile.ZipFile, path: str) -> None:
        if path not in archive.namelist():
            return
        with archive.open(path) as stream:
            _parse(stream, self._start, self._end, self._characters, lambda: self._left <= 0)

    def _start(self, tag: str, attributes: dict[str, str]) -> None:
        local = _local(tag)
        if local == "row":
            number = attributes.get("r", "")
            self._row_number = int(number) if number.isdigit() else self._row_number + 1
            self._cells, self._next_column = {}, 1
        elif local == "c":
            column = _column(attributes.get("r", "")) or self._next_column
            self._next_column = column + 1
            style = attributes.get("s", "")
            self._cell = (column, attributes.get("t", "n"), int(style) if style.isdigit() else 0)
            self._text, self._taken = [], 0
        elif local in ("v", "t"):
            self._taking = True

    def _end(self, tag: str) -> None:
        local = _local(tag)
        if local in ("v", "t"):
            self._taking = False
        elif local == "c":
            column, kind, style = self._cell
            if column <= 16_384:  # Excel's last column, XFD
                self._cells[column] = self._book.value(kind, "".join(self._text), style)
        elif local == "row" and self._left > 0:
            self._add_row()

    def _characters(self, text: str) -> None:
        if self._taking and self._taken < self._left:
            piece = text[: self._left - self._taken]
            self._text.append(piece)
            self._taken += len(piece)

    def _add_row(self) -> None:
        last = max((column for column, value in self._cells.items() if value), default=0)
        if not last:
            return
        cells = (_one_line(self._cells.get(column, "")) for column in range(1, last + 1))
        line = _joined(cells, " | ", self._left)
        self.lines.append(line)
        self.numbers.append(self._row_number)
        self._left -= len(line) + 1
        if self._left <= 0:
            self.complete = False


def _one_line(text: str) -> str:
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ") if "\n" in text or "\r" in text else text


def _shared_strings(archive: zipfile.ZipFile, path: str, max_chars: int) -> list[str]:
    """The shared strings, each cut to `max_chars` as it is parsed (phonetic runs left out)."""
    strings = _SharedStrings(max_chars)
    with archive.open(path) as stream:
        _parse(stream, strings.start, strings.end, strings.characters, lambda: False)
    return strings.strings


class _SharedStrings:
    def __init__(self, max_chars: int) -> None:
        self.strings: list[str] = []
        self._max_chars = max_chars
        self._pieces: list[str] = []
        self._taken = 0
        self._in_text = False
        self._phonetic = False

    def start(self, tag: str, attributes: dict[str, str]) -> None:
        local = _local(tag)
        if local == "si":
            self._pieces, self._taken = [], 0
        elif local == "rPh":
            self._phonetic = True
        elif local == "t" and not self._phonetic:
            self._in_text = True

    def end(self, tag: str) -> None:
        local = _local(tag)
        if local == "si":
            self.strings.append("".join(self._pieces))
        elif local == "rPh":
            self._phonetic = False
        elif local == "t":
            self._in_text = False

    def characters(self, text: str) -> None:
        if self._in_text and self._taken < self._max_chars:
            self._pieces.append(text[: self._max_chars - self._taken])
            self._taken += len(self._pieces[-1])


def _date_styles(archive: zipfile.ZipFile, path: str) -> frozenset[int]:
    """The cell styles (their index in cellXfs) whose number format shows a date or a time."""
    formats: dict[int, str] = {}
    styles: list[int] = []
    in_cell_styles = False
    for tag, attributes in _elements(_small_part(archive, path), ends=True):
        if tag == "numFmt" and attributes.get("numFmtId", "").isdigit():
            formats[int(attributes["numFmtId"])] = attributes.get("formatCode", "")
        elif tag == "cellXfs":
            in_cell_styles = not in_cell_styles  # its start, then its end
        elif tag == "xf" and in_cell_styles and attributes:
            number = attributes.get("numFmtId", "0")
            styles.append(int(number) if number.isdigit() else 0)
    return frozenset(
        index for index, number in enumerate(styles) if is_date_format(formats.get(number, BUILTIN_FORMATS.get(number)))
    )


def _relations(archive: zipfile.ZipFile, path: str, folder: str) -> dict[str, tuple[str, str]]:
    """A part's relationships: by id, the target's path in the zip and the relationship's type."""
    if path not in archive.namelist():
        return {}
    found: dict[str, tuple[str, str]] = {}
    for tag, attributes in _elements(_small_part(archive, path)):
        if tag == "Relationship" and attributes.get("TargetMode") != "External":
            target = attributes.get("Target", "")
            resolved = target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
            found[attributes.get("Id", "")] = (posixpath.normpath(resolved), attributes.get("Type", ""))
    return found


def _part_path(archive: zipfile.ZipFile, relations: str, folder: str, kind: str) -> str:
    return next((path for path, type_ in _relations(archive, relations, folder).values() if type_.endswith(kind)), "")


def _small_part(archive: zipfile.ZipFile, path: str) -> bytes:
    """A part read whole (a workbook, its relationships, its styles), refused past _MAX_SMALL_PART_BYTES."""
    with archive.open(path) as stream:
        data = stream.read(_MAX_SMALL_PART_BYTES + 1)
    if len(data) > _MAX_SMALL_PART_BYTES:
        raise ValueError(f"{path} is over {_MAX_SMALL_PART_BYTES} bytes")
    return data


def _elements(data: bytes, *, ends: bool = False) -> list[tuple[str, dict[str, str]]]:
    """The elements of a small XML part, by local name, with their attributes (by local name too);
    with `ends`, each element's end as well, with no attributes."""
    found: list[tuple[str, dict[str, str]]] = []

    def start(tag: str, attributes: dict[str, str]) -> None:
        found.append((_local(tag), {_local(key): value for key, value in attributes.items()}))

    def end(tag: str) -> None:
        if ends:
            found.append((_local(tag), {}))

    _parse(io.BytesIO(data), start, end, lambda text: None, lambda: False)
    return found


def _parse(
    stream: IO[bytes],
    start: Callable[[str, dict[str, str]], None],
    end: Callable[[str], None],
    characters: Callable[[str], None],
    enough: Callable[[], bool],
) -> None:
    """Stream the XML of `stream` through expat (no DTD's entities are expanded beyond expat's
    amplification limits; none are fetched), in chunks, until `enough()`."""
    parser = expat.ParserCreate(namespace_separator="}")
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    parser.buffer_text = True
    while chunk := stream.read(_CHUNK_BYTES):
        parser.Parse(chunk, False)
        if enough():
            return
    parser.Parse(b"", True)


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def _attribute(attributes: dict[str, str], local: str) -> str:
    return next((value for key, value in attributes.items() if _local(key) == local), "")


def _column(reference: str) -> int:
    """The column of a cell reference ("C5" → 3), or 0."""
    column = 0
    for character in reference:
        if not "A" <= character <= "Z":
            break
        column = column * 26 + ord(character) - ord("A") + 1
    return column


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


def _until(max_chars: int, texts: Iterable[str], *, header: int = 0) -> tuple[list[str], bool]:
    """`texts` taken until they add up to `max_chars` characters, the last one cut to the limit (each
    counted with `header` characters more, as it will be shown); and whether one was cut."""
    taken: list[str] = []
    left = max_chars
    for text in texts:
        if left <= 0:
            return taken, False
        taken.append(text[: max(0, left - header)])
        left -= len(text) + header + 1
        if len(taken[-1]) < len(text):
            return taken, True
    return taken, False


def _joined(texts: Iterable[str], separator: str, max_chars: int) -> str:
    """`texts` joined by `separator`, taken only until `max_chars` characters."""
    pieces: list[str] = []
    size = 0
    for text in texts:
        if pieces:
            size += len(separator)
        if size >= max_chars:
            break
        pieces.append(text[: max_chars - size])
        size += len(pieces[-1])
    return separator.join(pieces)


_READERS: dict[str, Callable[[str, bytes, int], DocumentText]] = {
    "pdf": _pdf,
    "docx": _docx,
    "pptx": _pptx,
    "xlsx": _xlsx,
    "html": _html,
}
