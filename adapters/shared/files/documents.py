"""Documents attached to a question (PDF, Word, PowerPoint, Excel, HTML): their text read in the
isolated workers (adapters.shared.files.document_worker, which only the workers import: the parsers never
load in the bot's process), then cut to the question's share of MAX_DOCUMENT_CHARS. A worker reads
no more than that share: what a document may cost is bounded where it is read, whatever it unpacks
to. A message's documents share DOCUMENT_TIMEOUT_SECONDS, and take the workers in turn with other
messages' files (adapters.shared.files.isolation). Anything that can't be read is refused with a sentence
naming the file."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass

import structlog

from adapters.shared.files.isolation import Failure, IsolatedWorkers, WorkFailed, call_in_worker
from config.settings import DocumentSettings

log = structlog.get_logger(__name__)

WORKER_MODULE = "adapters.shared.files.document_worker"
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
    or one part ("" unit) for a Word document, a web page or a text file."""

    name: str
    unit: str  # "page", "slide", "sheet" or ""
    parts: tuple[str, ...]  # the parts read, in order (an empty page is "")
    total: int  # the parts the document has; more than len(parts) when the worker stopped early
    complete: bool = True  # False: the worker stopped inside the last part, at the character limit
    # A spreadsheet's: for each sheet read, the row number of each of its lines after the sheet's title.
    rows: tuple[tuple[int, ...], ...] = ()

    @property
    def length(self) -> int:
        """The characters of its parts, joined as `cut_documents` shows them."""
        return max(0, sum(len(part) + 2 for part in self.parts if part) - 2)


class DocumentRefused(Exception):
    """A document that can't be read; str(error) is a short sentence for the person that names the
    file. `reason` is for the operator's log."""

    def __init__(self, sentence: str, reason: str = "unreadable") -> None:
        super().__init__(sentence, reason)
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])


def cut_documents(documents: Sequence[DocumentText], max_chars: int, *, why: str = "") -> tuple[str, tuple[str, ...]]:
    """The documents' text, named and fenced like a text file, `max_chars` characters of it in all, and a
    notice for each one not read to its end (`why` ends it). Each document gets an even share of what the
    shorter ones leave, so every document is read from its start."""
    blocks: list[str] = []
    notices: list[str] = []
    for document, share in zip(documents, _shares([d.length for d in documents], max_chars), strict=True):
        text, notice = _cut(document, share, why)
        if text:
            blocks.append(f"{document.name}:\n```\n{text}\n```")
        if notice:
            notices.append(notice)
    return "\n\n".join(blocks), tuple(notices)


def _shares(lengths: Sequence[int], total: int) -> list[int]:
    """Characters for each of `lengths` within `total`: the shortest in full while they fit, the
    others an even share of what is left."""
    shares = [0] * len(lengths)
    left = max(total, 0)
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    for rank, index in enumerate(order):
        shares[index] = min(lengths[index], left // (len(order) - rank))
        left -= shares[index]
    return shares


def _cut(document: DocumentText, left: int, why: str) -> tuple[str, str]:
    whole = _joined(document.parts, left + 1)
    if len(whole) <= left and document.complete and len(document.parts) == document.total:
        return whole, ""
    if left <= 0:
        return "", f"{document.name} didn't fit in what I can read at once, so I left it out."
    text = _at_break(whole, left)
    if not document.unit:
        return text, f"{document.name}: read the first {len(text):,} characters; the rest was left out{why}."
    reached, shown, start = 0, 0, 0  # the parts the text reaches, and where the last one starts in it
    for part in document.parts:
        if shown >= len(text):
            break
        reached += 1
        start = shown
        shown += len(part) + 2 if part else 0
    last_cut = reached and len(text) - start < len(document.parts[reached - 1])
    last_unfinished = reached == len(document.parts) and not document.complete
    if document.rows and reached and (last_cut or last_unfinished):
        return text, _rows_notice(document, reached, text[start:], why)
    span = f"{document.unit} 1" if reached <= 1 else f"{document.unit}s 1–{reached}"
    return text, f"{document.name}: read {span} of {document.total}{why}."


def _rows_notice(document: DocumentText, sheet: int, shown: str, why: str) -> str:
    """The notice of a spreadsheet cut inside its `sheet`th sheet, of which `shown` was read."""
    title, _, lines = shown.partition("\n")
    numbers = document.rows[sheet - 1][: lines.count("\n") + 1 if lines else 0]
    if not numbers:
        span = f"sheet 1 of {document.total}" if sheet <= 2 else f"sheets 1–{sheet - 1} of {document.total}"
        return f"{document.name}: read {span}{why}."
    rows = f"row {numbers[0]:,}" if len(numbers) == 1 else f"rows {numbers[0]:,}–{numbers[-1]:,}"
    named = f"{rows} of sheet {title.removeprefix('## ')}"
    if sheet == 1:
        return f"{document.name}: read {named}{f' (sheet 1 of {document.total})' if document.total > 1 else ''}{why}."
    before = "sheet 1" if sheet == 2 else f"sheets 1–{sheet - 1}"
    return f"{document.name}: read {before} of {document.total} and {named}{why}."


def _joined(parts: Sequence[str], limit: int) -> str:
    """The non-empty `parts` joined by blank lines, no more than `limit` characters of it."""
    pieces: list[str] = []
    size = 0
    for part in parts:
        if not part:
            continue
        if pieces:
            pieces.append("\n\n")
            size += 2
        if size >= limit:
            break
        pieces.append(part[: limit - size])
        size += len(pieces[-1])
    return "".join(pieces)[:limit]


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


class MessageShare:
    """One message's share of the document workers: `seconds` of reading in all, counted from when its
    first file gets a worker; and its files take the workers in turn with other people's (`owner`, the
    person asking, is their owner in `IsolatedWorkers.turn`: by default the message alone)."""

    def __init__(self, seconds: float, owner: Hashable | None = None) -> None:
        self.seconds = seconds
        self.owner: Hashable = owner if owner is not None else self
        self._started: float | None = None

    def seconds_left(self) -> float:
        now = time.monotonic()
        if self._started is None:
            self._started = now
        return self.seconds - (now - self._started)


class DocumentReader:
    """Reads the documents people attach, within the bot's document settings, in the isolated
    workers: a file is downloaded only in its worker's turn, so at most one file per worker is held."""

    def __init__(self, settings: DocumentSettings, workers: IsolatedWorkers) -> None:
        self.settings = settings
        self._workers = workers

    def share(self, asker: Hashable | None = None) -> MessageShare:
        """A new message's share of the workers' time; `asker`: the person whose files take their turns together."""
        return MessageShare(self.settings.timeout_seconds, asker)

    async def read(
        self,
        name: str,
        kind: str,
        size: int,
        download: Callable[[], Awaitable[bytes]],
        share: MessageShare | None = None,
    ) -> DocumentText:
        """The document's text (up to MAX_DOCUMENT_CHARS); raises DocumentRefused (logged for the
        operator) for anything unreadable, including a file that ran its worker out of memory or time.
        A file the platform says is too large is refused without being downloaded. `share`: the
        message's, which the file's time comes out of (without one, the file has a share of its own)."""
        if size > self.settings.max_bytes:
            raise self._too_large(name)
        share = share or self.share()
        async with self._workers.turn(share.owner):
            if (seconds := share.seconds_left()) <= 0:
                log.info("document_refused", name=name, reason="out_of_time")
                raise DocumentRefused(_OUT_OF_TIME.format(name=name), "out_of_time")
            data = await download()
            if len(data) > self.settings.max_bytes:
                raise self._too_large(name)
            try:
                read = await self._workers.run_within(
                    seconds,
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
_OUT_OF_TIME = "I skipped {name}: the files before it took all the time I give one message's documents."
