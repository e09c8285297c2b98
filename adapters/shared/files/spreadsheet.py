"""Spreadsheets' text (.xlsx), read in the isolated workers only, for adapters.shared.files.document_worker.

A spreadsheet is read as a stream (its shared strings each bounded as they are parsed, its rows until the
limit), so an honest sheet of a million cells is read up to the limit too; its workbook, relationships and
styles parts, read whole, are refused past _MAX_SMALL_PART_BYTES."""

from __future__ import annotations

import datetime
import io
import posixpath
import zipfile
from collections.abc import Callable
from typing import IO
from xml.parsers import expat

from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format
from openpyxl.utils.datetime import MAC_EPOCH, WINDOWS_EPOCH, from_excel

from adapters.shared.files.bounded_text import joined
from adapters.shared.files.documents import DocumentText

# A spreadsheet's workbook, relationships and styles parts, read whole, are refused past this.
_MAX_SMALL_PART_BYTES = 20_000_000
_CHUNK_BYTES = 65_536


def read_spreadsheet(name: str, data: bytes, max_chars: int) -> DocumentText:
    """A workbook's text: a part per sheet ("## title", then a line per row), until `max_chars` characters."""
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
        line = joined(cells, " | ", self._left)
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
