"""What a page's question carries besides its text: the files it sends as data URLs (images,
documents, text files), the limits the page is told, and the frame sizes that fit them. The files are
read as on every platform (adapters.shared.files.attachments: documents in the isolated workers); anything
else is named and skipped unread."""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from adapters.shared.files.attachments import MAX_ATTACHMENT_BYTES, TEXT_EXTENSIONS, Attachment
from adapters.shared.files.documents import DOCUMENT_EXTENSIONS
from adapters.shared.files.images import is_image
from adapters.shared.platform_jobs import PlatformJobs

MAX_MESSAGE_CHARS = 100_000
# A JSON frame may spend up to 6 bytes per character (\u escapes); larger frames are refused.
MAX_FRAME_BYTES = 6 * MAX_MESSAGE_CHARS + 4096
# The page refuses a larger image before sending it (the server too, should one arrive).
MAX_IMAGE_BYTES = 10_000_000
# Files besides images one question may carry (the page takes no more; more are named and skipped).
MAX_FILES = 10
# A page sends a document of this size at most, whatever MAX_DOCUMENT_BYTES allows: the frame stays sane.
MAX_WEB_DOCUMENT_BYTES = 50_000_000
MAX_FILE_NAME_CHARS = 120
# What one file adds to a frame besides its base64: the data URL's header, and its name and type
# (up to 6 bytes per character escaped).
FILE_FRAME_BYTES = 6 * MAX_FILE_NAME_CHARS + 1024
_DATA_URL = re.compile(r"data:([^,;]*)((?:;[^,;]*)*);base64,(.*)", re.DOTALL)
_DATA_URL_TYPE = re.compile(r"data:([^,;]{0,200})[,;]")


def base64_chars(size: int) -> int:
    """The characters `size` bytes take in base64 (4 for every 3 bytes, padded)."""
    return 4 * -(-size // 3)


# What one image adds to a frame at most.
IMAGE_FRAME_BYTES = base64_chars(MAX_IMAGE_BYTES) + FILE_FRAME_BYTES


@dataclass(frozen=True)
class UploadLimits:
    """What one question may carry: `images` images (none when 0) and, besides them, MAX_FILES files
    of `files_bytes` in all: each document up to `document_bytes` (none are read when 0), each text
    file up to MAX_ATTACHMENT_BYTES."""

    images: int
    document_bytes: int

    @classmethod
    def of(cls, jobs: PlatformJobs) -> UploadLimits:
        """A chat's limits: images only with a model that sees them, documents only when read."""
        images = jobs.images.max_images if jobs.images is not None else 0
        documents = jobs.documents.settings.max_bytes if jobs.documents is not None else 0
        return cls(images, min(documents, MAX_WEB_DOCUMENT_BYTES))

    @property
    def files_bytes(self) -> int:
        """The bytes of the files besides images one question may carry, in all."""
        return max(self.document_bytes, MAX_FILES * MAX_ATTACHMENT_BYTES)

    @property
    def largest_frame(self) -> int:
        return self.frame_bytes(self.images, files=True)

    def frame_bytes(self, images: int, *, files: bool) -> int:
        """The largest frame a page may send: a question of MAX_MESSAGE_CHARS with `images` images
        (up to the limit) and, with `files`, other files."""
        room = MAX_FRAME_BYTES + min(images, self.images) * IMAGE_FRAME_BYTES
        return room + (base64_chars(self.files_bytes) + MAX_FILES * FILE_FRAME_BYTES if files else 0)

    def may_fit(self, size: int, raw: str) -> bool:
        """Before parsing it: whether a frame may be as large as `size` for the files its JSON
        holds (each as "data:…, an image's as "data:image/…)."""
        if size <= MAX_FRAME_BYTES:
            return True
        urls, images = raw.count('"data:'), raw.count('"data:image/')
        return size <= self.frame_bytes(images, files=urls > images)

    def fits(self, size: int, uploads: list[object]) -> bool:
        """Whether a frame of `size` is no larger than the files it carries may need."""
        images = sum(map(is_image_upload, uploads))
        return size <= self.frame_bytes(images, files=len(uploads) > images)

    def hello_fields(self) -> dict[str, Any]:
        """What the page is told, to refuse what won't be read before sending it."""
        return {
            "maxImages": self.images,
            "maxImageBytes": MAX_IMAGE_BYTES,
            "maxFiles": MAX_FILES,
            "maxFilesBytes": self.files_bytes,
            "maxDocumentBytes": self.document_bytes,
            "maxTextBytes": MAX_ATTACHMENT_BYTES,
            "documentTypes": list(DOCUMENT_EXTENSIONS) if self.document_bytes else [],
            "textTypes": sorted(TEXT_EXTENSIONS),
        }


def frame_bytes(raw: str) -> int:
    return len(raw) if raw.isascii() else len(raw.encode())


def uploads_of(event: dict[str, Any]) -> list[object]:
    """The files a question frame carries: under "files" (and "images", as pages sent them first)."""
    if event.get("type") != "ask":
        return []
    return [*_listed(event.get("images")), *_listed(event.get("files"))]


def attachments_from(uploads: list[object], limits: UploadLimits) -> tuple[list[Attachment], list[str]]:
    """The files a page sent, decoded, to be read as on every platform (images only when this chat
    takes them; MAX_FILES others at most), and a notice naming each file left out here."""
    attachments: list[Attachment] = []
    notices: list[str] = []
    unseen: list[str] = []
    extra: list[str] = []
    others = 0
    for number, upload in enumerate(uploads, start=1):
        image = is_image_upload(upload)
        name = file_name(upload, number, "image" if image else "file")
        others += not image
        if image and not limits.images:
            unseen.append(name)
        elif not image and others > MAX_FILES:
            extra.append(name)
        elif isinstance(read := _attachment(name, upload, image=image), Attachment):
            attachments.append(read)
        else:
            notices.append(read)
    if unseen:
        notices.insert(0, f"This chat doesn't take images, so I skipped {', '.join(unseen)}.")
    if extra:
        notices.append(f"I read {MAX_FILES} files besides images per message at most, so I skipped {', '.join(extra)}.")
    return attachments, notices


def file_names(uploads: list[object]) -> list[str]:
    """The names of the files besides images, as the question shows them."""
    named = [file_name(upload, number, "file") for number, upload in enumerate(uploads, start=1)]
    return [name for name, upload in zip(named, uploads, strict=True) if not is_image_upload(upload)]


def question_about(uploads: list[object]) -> str:
    """What a question of files alone asks the model."""
    if all(map(is_image_upload, uploads)):
        return "What's in this image?" if len(uploads) == 1 else "What's in these images?"
    return "What is in this file?" if len(uploads) == 1 else "What is in these files?"


def title_about(uploads: list[object]) -> str:
    """A conversation's title from a question of files alone: its first file's name, or "Image(s)"."""
    if names := file_names(uploads):
        return names[0]
    return "Images" if len(uploads) > 1 else "Image"


def file_name(upload: object, number: int, kind: str = "image") -> str:
    """The name a page gave a file, as it can be shown in a sentence (else "image 2", "file 3")."""
    given = upload.get("name") if isinstance(upload, dict) else None
    text = given if isinstance(given, str) else ""
    name = " ".join("".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf")).split())
    if len(name) > MAX_FILE_NAME_CHARS:
        name = name[: MAX_FILE_NAME_CHARS - 1] + "…"
    return name or f"{kind} {number}"


def is_image_upload(upload: object) -> bool:
    """Whether a file from the page says it is an image: its declared type and its data URL's
    (each where given, and at least one) are image types."""
    if not isinstance(upload, dict):
        return False
    declared, data = upload.get("type"), upload.get("data")
    header = _DATA_URL_TYPE.match(data) if isinstance(data, str) else None
    types = [kind for kind in (declared if isinstance(declared, str) else "", header[1] if header else "") if kind]
    return bool(types) and all(is_image("", kind) for kind in types)


def _listed(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _attachment(name: str, upload: object, *, image: bool) -> Attachment | str:
    """The file as an attachment, or the notice saying why it can't be used."""
    try:
        content_type, data = _decoded(upload)
    except ValueError:
        return f"{name} arrived damaged, so I couldn't {'look at' if image else 'read'} it."
    if image and len(data) > MAX_IMAGE_BYTES:
        return f"{name} is too large (over {MAX_IMAGE_BYTES // 1_000_000} MB)."
    return Attachment(name, content_type, len(data), _returning(data))


def _decoded(upload: object) -> tuple[str, bytes]:
    """The file's declared type (else its data URL's) and bytes; ValueError if they are not
    a base64 data URL."""
    if not isinstance(upload, dict) or not isinstance(upload.get("data"), str):
        raise ValueError("no data URL")
    match = _DATA_URL.fullmatch(upload["data"])
    if match is None:
        raise ValueError("not a base64 data URL")
    data = base64.b64decode(match[3], validate=True)  # binascii.Error is a ValueError
    declared = upload.get("type")
    return (declared if isinstance(declared, str) and declared else match[1])[:100], data


def _returning(data: bytes) -> Callable[[], Awaitable[bytes]]:
    async def download() -> bytes:
        return data

    return download
