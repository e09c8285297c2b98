"""Files attached to a message: text files and documents' text become part of the person's question
(cut together to MAX_DOCUMENT_CHARS and to what fits the model's context; documents are read in the
isolated workers, see adapters.shared.files.documents), images go with it (checked and scaled down, see
adapters.shared.files.images); other files are skipped with a short notice. A message's documents and images
take the workers in turn with other messages' files."""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass

import structlog

from adapters.shared.files.documents import DocumentReader, DocumentRefused, DocumentText, MessageShare, document_kind
from adapters.shared.files.images import MAX_DOWNLOAD_BYTES, ImageReader, ImageRefused, is_image

log = structlog.get_logger(__name__)

TEXT_EXTENSIONS = frozenset(
    [
        "txt",
        "md",
        "markdown",
        "rst",
        "py",
        "pyi",
        "json",
        "jsonl",
        "csv",
        "tsv",
        "yaml",
        "yml",
        "toml",
        "ini",
        "cfg",
        "conf",
        "log",
        "xml",
        "html",
        "htm",
        "css",
        "js",
        "mjs",
        "ts",
        "jsx",
        "tsx",
        "java",
        "kt",
        "c",
        "h",
        "cc",
        "cpp",
        "hpp",
        "cs",
        "go",
        "rs",
        "rb",
        "php",
        "sh",
        "bash",
        "zsh",
        "sql",
        "swift",
        "r",
        "lua",
        "pl",
        "tex",
        "diff",
        "patch",
    ]
)
TEXT_CONTENT_TYPES = ("application/json", "application/xml", "application/x-yaml", "application/javascript")
# Bigger than any context the bot is configured with (~25,000 tokens), so a larger file could
# never be answered anyway; it is skipped without being downloaded.
MAX_ATTACHMENT_BYTES = 100_000
# What the bot reads, as a skipped file's notice says it: by (documents read, images read).
_READABLE = {
    (False, False): "text files",
    (False, True): "text files and images",
    (True, False): "text files and documents",
    (True, True): "text files, documents and images",
}


class DownloadFailed(Exception):
    """The platform would not hand the file over."""


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    size: int
    download: Callable[[], Awaitable[bytes]]  # raises DownloadFailed

    def is_text(self) -> bool:
        extension = self.name.rsplit(".", 1)[-1].lower() if "." in self.name else ""
        content_type = self.content_type.split(";", 1)[0].strip().lower()
        return content_type.startswith("text/") or content_type in TEXT_CONTENT_TYPES or extension in TEXT_EXTENSIONS


@dataclass(frozen=True)
class ReadFiles:
    notices: tuple[str, ...] = ()  # what the reply should say about files it could not use
    images: tuple[str, ...] = ()  # data URLs of the images, scaled down
    # The text files' and documents' text, in the order attached, cut to its share when the question is made.
    documents: tuple[DocumentText, ...] = ()


async def read_attachments(
    attachments: Sequence[Attachment],
    images: ImageReader | None = None,
    documents: DocumentReader | None = None,
    *,
    asker: Hashable | None = None,
) -> ReadFiles:
    """The files' text, images (read by `images`, within its limits; none without), documents (read by
    `documents`; none without) and what couldn't be used. `asker`: the person whose files take the
    workers in turn with other people's (without one, this message's)."""
    skipped: list[str] = []
    notices: list[str] = []
    share = documents.share(asker) if documents else MessageShare(0.0, asker)  # the turns, the documents' time
    pictures = [item for item in attachments if images and is_image(item.name, item.content_type)]
    papers = [item for item in attachments if documents and item not in pictures and _kind(item)]
    texts = [item for item in attachments if item not in pictures and item not in papers and item.is_text()]
    urls, image_notices = await _read_images(pictures, images, share) if images else ((), [])
    read, document_notices = await _read_documents(papers, documents, share) if documents else ({}, [])
    for attachment in attachments:
        if attachment in pictures or attachment in papers:
            continue
        if attachment not in texts:
            skipped.append(attachment.name)
        elif attachment.size > MAX_ATTACHMENT_BYTES:
            notices.append(f"{attachment.name} is too large to read (over {MAX_ATTACHMENT_BYTES // 1000} KB).")
        elif (text := await _read_text(attachment)) is None:
            notices.append(f"I couldn't read {attachment.name} as text.")
        else:
            read[id(attachment)] = DocumentText(attachment.name, "", (text.rstrip(),), 1)
    if skipped:
        kinds = _READABLE[bool(documents), bool(images)]
        notices.append(f"I can only read {kinds}, so I skipped {', '.join(skipped)}.")
    ordered = tuple(read[id(item)] for item in attachments if id(item) in read)
    return ReadFiles((*notices, *document_notices, *image_notices), urls, ordered)


def _kind(attachment: Attachment) -> str | None:
    return document_kind(attachment.name, attachment.content_type)


async def _read_documents(
    papers: Sequence[Attachment], reader: DocumentReader, share: MessageShare
) -> tuple[dict[int, DocumentText], list[str]]:
    """The documents' text, by their attachment's id, and a notice for each one left out."""
    read = await asyncio.gather(*(_read_document(paper, reader, share) for paper in papers))
    texts = {id(paper): text for paper, (text, _) in zip(papers, read, strict=True) if text}
    return texts, [notice for _, notice in read if notice]


async def _read_document(
    paper: Attachment, reader: DocumentReader, share: MessageShare
) -> tuple[DocumentText | None, str]:
    kind = _kind(paper)
    assert kind is not None
    try:
        return await reader.read(paper.name, kind, paper.size, paper.download, share), ""
    except DocumentRefused as refused:
        return None, str(refused)
    except DownloadFailed as error:
        log.warning("attachment_download_failed", name=paper.name, error=str(error)[:200])
        return None, f"I couldn't download {paper.name}."


async def _read_images(
    pictures: Sequence[Attachment], reader: ImageReader, share: MessageShare
) -> tuple[tuple[str, ...], list[str]]:
    """The images' data URLs, in the order they were attached, and a notice for each one left out."""
    read = await asyncio.gather(*(_read_image(picture, reader, share) for picture in pictures[: reader.max_images]))
    urls = tuple(url for url, _ in read if url)
    notices = [notice for _, notice in read if notice]
    if extra := [picture.name for picture in pictures[reader.max_images :]]:
        notices.append(f"I look at {reader.max_images} images per message at most, so I skipped {', '.join(extra)}.")
    return urls, notices


async def _read_image(picture: Attachment, reader: ImageReader, share: MessageShare) -> tuple[str, str]:
    """The image's data URL, or the notice saying why it can't be used."""
    try:
        if picture.size > MAX_DOWNLOAD_BYTES:
            raise ImageRefused(
                f"{picture.name} is too large (over {MAX_DOWNLOAD_BYTES // 1_000_000} MB).", "declared_size"
            )
        return (await reader.read(picture.name, picture.download, owner=share.owner)).data_url(), ""
    except ImageRefused as refused:
        return "", str(refused)
    except DownloadFailed as error:
        log.warning("attachment_download_failed", name=picture.name, error=str(error)[:200])
        return "", f"I couldn't download {picture.name}."


def with_files(question: str, documents: str = "") -> str:
    """The question followed by `documents`: its text files' and documents' text, cut to its share."""
    return f"{question}\n\n{documents}" if documents else question


# A byte order mark names its encoding (UTF-32's before UTF-16's: they begin alike).
_MARKED = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SAMPLE_BYTES = 4_096
_MOSTLY = 0.4  # of a sample's byte pairs holding a zero on one side and none on the other: UTF-16 without a mark


def decode_text(data: bytes) -> str:
    """A text file's text: by its byte order mark (UTF-8, UTF-16, UTF-32), else UTF-16 without one when a zero byte
    sits on the same side of most byte pairs (Latin text written by Windows tools), else UTF-8. Raises
    UnicodeDecodeError for anything else."""
    for mark, encoding in _MARKED:
        if data.startswith(mark):
            return data.decode(encoding)
    sample = data[: _SAMPLE_BYTES - _SAMPLE_BYTES % 2] if len(data) % 2 == 0 else b""
    pairs = len(sample) // 2
    if pairs:
        even, odd = sample[0::2].count(0), sample[1::2].count(0)
        if odd >= _MOSTLY * pairs and even == 0:
            return data.decode("utf-16-le")
        if even >= _MOSTLY * pairs and odd == 0:
            return data.decode("utf-16-be")
    return data.decode("utf-8")


async def _read_text(attachment: Attachment) -> str | None:
    try:
        return decode_text(await attachment.download())
    except DownloadFailed as error:
        log.warning("attachment_download_failed", name=attachment.name, error=str(error)[:200])
    except UnicodeDecodeError:
        log.info("attachment_not_text", name=attachment.name)
    return None
