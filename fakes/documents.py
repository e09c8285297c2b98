"""Real documents made for the tests and the benchmark: PDFs (fpdf2; encrypted with pypdf), Word,
PowerPoint and Excel files (their own libraries), and the bad files people may send."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterable
from xml.sax.saxutils import escape

import docx
import openpyxl
import pptx
from fpdf import FPDF
from PIL import Image
from pypdf import PdfReader, PdfWriter


def pdf(pages: list[str]) -> bytes:
    """A PDF with a text layer, one page per string (long strings wrap)."""
    document = FPDF()
    document.set_font("helvetica", size=11)
    for text in pages:
        document.add_page()
        document.multi_cell(0, 5, text)
    return bytes(document.output())


def encrypted_pdf(text: str, password: str = "secret") -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf([text]))))
    writer.encrypt(password, algorithm="AES-256")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def scanned_pdf() -> bytes:
    """A PDF whose page is only a picture: no text layer."""
    document = FPDF()
    document.add_page()
    document.image(Image.new("RGB", (400, 300), (200, 200, 200)), x=10, y=10, w=150)
    return bytes(document.output())


def word(paragraphs: list[str], *, heading: str = "", table: list[list[str]] | None = None) -> bytes:
    document = docx.Document()
    if heading:
        document.add_heading(heading, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for row, values in zip(grid.rows, table, strict=True):
            for cell, value in zip(row.cells, values, strict=True):
                cell.text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def slides(texts: list[str]) -> bytes:
    presentation = pptx.Presentation()
    for text in texts:
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = text
    buffer = io.BytesIO()
    presentation.save(buffer)
    return buffer.getvalue()


def spreadsheet(sheets: dict[str, list[list[object]]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def zip_bomb_word(unpacked_bytes: int = 310_000_000) -> bytes:
    """A real Word document with one more member that unpacks to `unpacked_bytes` of zeros from a few
    hundred KB (more than any real document unpacks to)."""
    buffer = io.BytesIO(word(["An innocent paragraph."]))
    chunk = b"0" * 1_000_000
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("word/media/filler.xml", "w", force_zip64=True) as filler:
            for _ in range(unpacked_bytes // len(chunk)):
                filler.write(chunk)
    return buffer.getvalue()


_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_SPREADSHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml."
_PACKAGE = "http://schemas.openxmlformats.org/package/2006/"
_RELATION = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_SHEET_TYPES = (
    f'{_XML}<Types xmlns="{_PACKAGE}content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/xl/workbook.xml" ContentType="{_SPREADSHEET}sheet.main+xml"/>'
    f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_SPREADSHEET}worksheet+xml"/>'
    f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_SPREADSHEET}sharedStrings+xml"/>'
    "</Types>"
)
_PACKAGE_RELS = (
    f'{_XML}<Relationships xmlns="{_PACKAGE}relationships">'
    f'<Relationship Id="rId1" Type="{_RELATION}/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_WORKBOOK = (
    f'{_XML}<workbook xmlns="{_MAIN}" xmlns:r="{_RELATION}">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    f'{_XML}<Relationships xmlns="{_PACKAGE}relationships">'
    f'<Relationship Id="rId1" Type="{_RELATION}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_RELATION}/sharedStrings" Target="sharedStrings.xml"/>'
    "</Relationships>"
)


def one_sheet_workbook(rows: Iterable[str], shared_strings: Iterable[str] = ()) -> bytes:
    """An Excel file written as its XML, as Excel writes it: one sheet of `rows` (each a <row>
    element's XML, streamed, so a million cells cost no more than their bytes) and `shared_strings`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _SHEET_TYPES)
        archive.writestr("_rels/.rels", _PACKAGE_RELS)
        archive.writestr("xl/workbook.xml", _WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        with archive.open("xl/sharedStrings.xml", "w") as strings:
            strings.write(f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{_MAIN}">'.encode())
            for text in shared_strings:
                strings.write(f"<si><t>{escape(text)}</t></si>".encode())
            strings.write(b"</sst>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{_MAIN}"><sheetData>'.encode())
            for row in rows:
                sheet.write(row.encode())
            sheet.write(b"</sheetData></worksheet>")
    return buffer.getvalue()


def repeated_string_sheet(chars: int = 990_000, cells: int = 200) -> bytes:
    """About 3 KB: one shared string of `chars` characters, which the `cells` cells of one row show."""
    row = "".join(f'<c r="{_column_name(column)}1" t="s"><v>0</v></c>' for column in range(1, cells + 1))
    return one_sheet_workbook([f'<row r="1">{row}</row>'], ["x" * chars])


def number_grid(rows: int = 1000, columns: int = 1000) -> bytes:
    """An honest sheet of numbers, `rows` × `columns`, each row's cells holding its number, written as
    some tools write it (a cell's place by its order in its row): 1,000 × 1,000 is about 50 KB that
    unpacks to about 17 MB, over 300 times its size."""
    return one_sheet_workbook(
        f'<row r="{row}">' + f"<c><v>{row}</v></c>" * columns + "</row>" for row in range(1, rows + 1)
    )


def _column_name(number: int) -> str:
    name = ""
    while number:
        number, remainder = divmod(number - 1, 26)
        name = chr(ord("A") + remainder) + name
    return name


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


def flat_png(side: int) -> bytes:
    """About 150 KB of PNG that decode to side × side × 3 bytes (147 MB at 7,000)."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (40, 90, 160)).save(buffer, "PNG")
    return buffer.getvalue()


def slow_pdf(unpacked_bytes: int = 60_000_000) -> bytes:
    """A PDF of one page whose content stream unpacks to `unpacked_bytes`: one string drawn, which
    pypdf parses a byte at a time (a few hundred KB; reading its text takes far longer than any
    document should)."""
    content = b"BT /F1 9 Tf 20 700 Td (" + b"slow " * (unpacked_bytes // 5) + b") Tj ET\n"
    stream = zlib.compress(content, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    document = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(document))
        document += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(document)
    document += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    document += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    document += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(document)
