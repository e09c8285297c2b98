"""Files made knowledge, the same way on every platform: read in the isolated workers like any attached document
(text files decoded here, by their encoding), then cut into passages of a page, slide or sheet each, no longer than
PASSAGE_CHARS."""

from __future__ import annotations

import hashlib
import re

from adapters.shared.files.attachments import Attachment, DownloadFailed, decode_text
from adapters.shared.files.documents import DocumentReader, DocumentRefused, DocumentText, document_kind
from adapters.shared.knowledge_sources.headings import is_markdown, markdown_sections
from bot.knowledge.passages import Passage

PASSAGE_CHARS = 1_500
_UNIT_HEADER = re.compile(r"\A\[(page|slide) (\d+)\]\n")
_SHEET_HEADER = re.compile(r"\A## (.+)\n")
_BREAKS = ("\n\n", "\n", ". ", " ")


async def read_for_knowledge(file: Attachment, reader: DocumentReader | None) -> DocumentText:
    """The file's text; raises DocumentRefused with a sentence for the person when it can't be read."""
    kind = document_kind(file.name, file.content_type)
    if kind is not None:
        if reader is None:
            raise DocumentRefused(f"I don't read documents here, so {file.name} was not added.", "documents_off")
        return await reader.read(file.name, kind, file.size, file.download)
    if not file.is_text():
        raise DocumentRefused(f"I can't read {file.name}: it is neither a document nor text.", "not_a_document")
    try:
        data = await file.download()
        return DocumentText(file.name, "", (decode_text(data),), 1)
    except DownloadFailed as error:
        raise DocumentRefused(f"I couldn't download {file.name}.", f"download_failed: {error}") from None
    except UnicodeDecodeError:
        raise DocumentRefused(f"I can't read {file.name}: it isn't UTF-8 or UTF-16 text.", "not_text") from None


def file_source(scope: str, name: str, data_id: str) -> str:
    """A file's source id: the same file added twice replaces itself."""
    digest = hashlib.sha256(f"{scope}\0{name}\0{data_id}".encode()).hexdigest()[:16]
    return f"file:{digest}"


def document_passages(document: DocumentText, scope: str, source: str, updated_at: float) -> list[Passage]:
    """The document's passages: each part (page, slide, sheet) cut at paragraph, line, sentence or word breaks; a
    Markdown file's cut at its headings first, each passage located by its heading path."""
    if is_markdown(document.name) and not document.unit:
        return _markdown_passages(document, scope, source, updated_at)
    passages: list[Passage] = []
    for number, part in enumerate(document.parts, 1):
        text, locator = _located(part, document.unit, number)
        for piece in passage_texts(text):
            key = f"{source}#{len(passages) + 1}"
            passages.append(Passage(scope, source, key, piece, document.name, locator, updated_at=updated_at))
    return passages


def _markdown_passages(document: DocumentText, scope: str, source: str, updated_at: float) -> list[Passage]:
    passages: list[Passage] = []
    for section in markdown_sections("\n\n".join(document.parts)):
        locator = section.title(document.name) if section.headings else ""
        for piece in passage_texts(section.text):
            key = f"{source}#{len(passages) + 1}"
            passages.append(Passage(scope, source, key, piece, document.name, locator, updated_at=updated_at))
    return passages


def _located(part: str, unit: str, number: int) -> tuple[str, str]:
    if match := _UNIT_HEADER.match(part):
        return part[match.end() :], f"{match.group(1)} {match.group(2)}"
    if unit == "sheet" and (match := _SHEET_HEADER.match(part)):
        return part[match.end() :], f"sheet {match.group(1).strip()}"
    return part, f"{unit} {number}" if unit else ""


def passage_texts(text: str, limit: int = PASSAGE_CHARS) -> list[str]:
    """`text` in pieces of at most `limit` characters, each cut at the latest break that keeps it at least half full."""
    pieces: list[str] = []
    text = text.strip()
    while len(text) > limit:
        cut = _cut_at(text, limit)
        pieces.append(text[:cut].strip())
        text = text[cut:].strip()
    if text:
        pieces.append(text)
    return [piece for piece in pieces if piece]


def _cut_at(text: str, limit: int) -> int:
    for separator in _BREAKS:
        found = text.rfind(separator, limit // 2, limit)
        if found != -1:
            return found + len(separator)
    return limit
