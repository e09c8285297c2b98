"""Documents attached to a question (PDF, Word, PowerPoint, Excel, HTML): their text read in the
isolated workers (adapters.jobs.document_worker, which only the workers import: the parsers never
load in the bot's process), then cut to the question's share of MAX_DOCUMENT_CHARS. Anything that
can't be read is refused with a sentence naming the file."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from adapters.jobs.isolation import Failure, IsolatedWorkers, WorkFailed, call_in_worker
from config.settings import DocumentSettings

log = structlog.get_logger(__name__)

WORKER_MODULE = "adapters.jobs.document_worker"
# What each kind is called in a notice ("x.pdf isn't really a PDF").
KIND_NAMES = {
    "pdf": "PDF",
    "docx": "Word document",
    "pptx": "PowerPoint file",
    "xlsx": "Excel file",
    "html": "web page",
}
_EXTENSIONS = {"pdf": "pdf", "docx": "docx", "pptx": "pptx", "xlsx": "xlsx", "html": "html", "htm": "html"}
DOCUMENT_EXTENSIONS = tuple(_EXTENSIONS)  # the names' endings that make a file a document
_OOXML = "application/vnd.openxmlformats-officedocument."
_CONTENT_TYPES = {
    "application/pdf": "pdf",
    _OOXML + "wordprocessingml.document": "docx",
    _OOXML + "presentationml.presentation": "pptx",
    _OOXML + "spreadsheetml.sheet": "xlsx",
    "text/html": "html",
}
# A cut is moved back to the last line or word break within this many characters.
_BREAK_WINDOW = 200


def document_kind(filename: str, content_type: str | None) -> str | None:
    """The kind of document a file says it is ("pdf", "docx", "pptx", "xlsx", "html"), or None; its
    bytes are checked in the worker."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension in _EXTENSIONS:
        return _EXTENSIONS[extension]
    return _CONTENT_TYPES.get((content_type or "").split(";", 1)[0].strip().lower())


@dataclass(frozen=True)
class DocumentText:
    """A document's text as the worker read it, in parts: one per page, slide or sheet (`unit`),
    or one part ("" unit) for a Word document or a web page."""

    name: str
    unit: str  # "page", "slide", "sheet" or ""
    parts: tuple[str, ...]  # the parts read, in order (an empty page is "")
    total: int  # the parts the document has; more than len(parts) when the worker stopped early
    complete: bool = True  # False: the worker stopped inside the last part, at the character limit


class DocumentRefused(Exception):
    """A document that can't be read; str(error) is a short sentence for the person that names the
    file. `reason` is for the operator's log."""

    def __init__(self, sentence: str, reason: str = "unreadable") -> None:
        super().__init__(sentence, reason)
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])


def cut_documents(documents: Sequence[DocumentText], max_chars: int, *, why: str = "") -> tuple[str, tuple[str, ...]]:
    """The documents' text, named and fenced like a text file, `max_chars` characters of it in all
    (the first documents first), and a notice for each one not read to its end (`why` ends it)."""
    blocks: list[str] = []
    notices: list[str] = []
    left = max_chars
    for document in documents:
        text, notice = _cut(document, left, why)
        left -= len(text)
        if text:
            blocks.append(f"{document.name}:\n```\n{text}\n```")
        if notice:
            notices.append(notice)
    return "\n\n".join(blocks), tuple(notices)


def _cut(document: DocumentText, left: int, why: str) -> tuple[str, str]:
    whole = "\n\n".join(part for part in document.parts if part)
    if len(whole) <= left and document.complete and len(document.parts) == document.total:
        return whole, ""
    if left <= 0:
        return "", f"{document.name} didn't fit in what I can read at once, so I left it out."
    text = _at_break(whole, left)
    if not document.unit:
        return text, f"{document.name}: read the first {len(text):,} characters; the rest was left out{why}."
    reached, shown = 0, 0
    for part in document.parts:
        if shown >= len(text):
            break
        reached += 1
        shown += len(part) + 2 if part else 0
    span = f"{document.unit} 1" if reached <= 1 else f"{document.unit}s 1–{reached}"
    return text, f"{document.name}: read {span} of {document.total}{why}."


def _at_break(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at a line or word break near the limit if there is one."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    for separator in ("\n", " "):
        found = cut.rfind(separator, limit - _BREAK_WINDOW)
        if found > 0:
            return cut[:found].rstrip()
    return cut


class DocumentReader:
    """Reads the documents people attach, within the bot's document settings, in the isolated
    workers: at most `held` files are held at once (downloaded, waiting or being read)."""

    def __init__(self, settings: DocumentSettings, workers: IsolatedWorkers, *, held: int) -> None:
        self.settings = settings
        self._workers = workers
        self._holding = asyncio.Semaphore(held)

    async def read(self, name: str, kind: str, size: int, download: Callable[[], Awaitable[bytes]]) -> DocumentText:
        """The document's text (up to MAX_DOCUMENT_CHARS); raises DocumentRefused (logged for the
        operator) for anything unreadable, including a file that ran its worker out of memory or time.
        A file the platform says is too large is refused without being downloaded."""
        if size > self.settings.max_bytes:
            raise self._too_large(name)
        async with self._holding:
            data = await download()
            if len(data) > self.settings.max_bytes:
                raise self._too_large(name)
            try:
                read = await self._workers.run_within(
                    self.settings.timeout_seconds,
                    call_in_worker,
                    WORKER_MODULE,
                    "read_document",
                    name,
                    kind,
                    data,
                    self.settings.max_chars,
                )
            except DocumentRefused as refused:
                log.info("document_refused", name=name, reason=refused.reason)
                raise
            except WorkFailed as failed:
                log.warning("document_worker_failed", name=name, failure=failed.failure.name, detail=str(failed))
                raise DocumentRefused(_WORKER_FAILED[failed.failure].format(name=name), failed.failure.name) from failed
        if not isinstance(read, DocumentText):
            raise TypeError(f"the document worker returned {type(read).__name__}")
        return read

    def _too_large(self, name: str) -> DocumentRefused:
        megabytes = self.settings.max_bytes / 1_000_000
        return DocumentRefused(f"{name} is too large to read (over {megabytes:g} MB).", "too_large")


_WORKER_FAILED = {
    Failure.TOO_BIG: "{name} needs more memory than I give one file, so I couldn't read it.",
    Failure.TOO_SLOW: "{name} took too long to read, so I skipped it.",
    Failure.CRASHED: "I couldn't read {name}: it seems damaged.",
}
