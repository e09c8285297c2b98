"""What a page's question carries besides its text: the images it sends as data URLs, and the
frame sizes that fit them. Only images are taken: anything else is named and skipped unread."""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Awaitable, Callable

from adapters.jobs.attachments import Attachment
from adapters.jobs.images import is_image
from adapters.jobs.platform_jobs import PlatformJobs

MAX_MESSAGE_CHARS = 100_000
# A JSON frame may spend up to 6 bytes per character (\u escapes); larger frames are refused.
MAX_FRAME_BYTES = 6 * MAX_MESSAGE_CHARS + 4096
# The page refuses a larger image before sending it (the server too, should one arrive).
MAX_IMAGE_BYTES = 10_000_000
MAX_FILE_NAME_CHARS = 120
# What one image adds to a frame at most: its base64 (4 characters per 3 bytes), the data URL's
# header, and its name and type (up to 6 bytes per character escaped).
IMAGE_FRAME_BYTES = 4 * -(-MAX_IMAGE_BYTES // 3) + 6 * MAX_FILE_NAME_CHARS + 1024
_DATA_URL = re.compile(r"data:([^,;]*)((?:;[^,;]*)*);base64,(.*)", re.DOTALL)
_DATA_URL_TYPE = re.compile(r"data:([^,;]{0,200})[,;]")


def images_taken(jobs: PlatformJobs) -> int:
    """Images a question may carry: none without a model that sees them."""
    return jobs.images.max_images if jobs.images is not None else 0


def max_frame_bytes(images: int) -> int:
    """The largest frame a page may send: a question of MAX_MESSAGE_CHARS with `images` images."""
    return MAX_FRAME_BYTES + images * IMAGE_FRAME_BYTES


def frame_bytes(raw: str) -> int:
    return len(raw) if raw.isascii() else len(raw.encode())


def attachments_from(uploads: list[object], max_images: int) -> tuple[list[Attachment], list[str]]:
    """The images a page sent (`max_images` at most taken; none when 0), decoded; a notice naming
    each file that can't be used. Files that are not images are skipped unread (the page sends none)."""
    names = [file_name(upload, number) for number, upload in enumerate(uploads, start=1)]
    if uploads and not max_images:
        return [], [f"This chat doesn't take images, so I skipped {', '.join(names)}."]
    attachments: list[Attachment] = []
    notices: list[str] = []
    if others := [name for name, upload in zip(names, uploads, strict=True) if not is_image_upload(upload)]:
        notices.append(f"I can only look at images here, so I skipped {', '.join(others)}.")
    for name, upload in zip(names, uploads, strict=True):
        if not is_image_upload(upload):
            continue
        try:
            content_type, data = _decoded(upload)
        except ValueError:
            notices.append(f"{name} arrived damaged, so I couldn't look at it.")
            continue
        if len(data) > MAX_IMAGE_BYTES:
            notices.append(f"{name} is too large (over {MAX_IMAGE_BYTES // 1_000_000} MB).")
            continue
        attachments.append(Attachment(name, content_type, len(data), _returning(data)))
    return attachments, notices


def file_name(upload: object, number: int) -> str:
    """The name a page gave a file, as it can be shown in a sentence."""
    given = upload.get("name") if isinstance(upload, dict) else None
    text = given if isinstance(given, str) else ""
    name = " ".join("".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf")).split())
    if len(name) > MAX_FILE_NAME_CHARS:
        name = name[: MAX_FILE_NAME_CHARS - 1] + "…"
    return name or f"image {number}"


def is_image_upload(upload: object) -> bool:
    """Whether a file from the page says it is an image: its declared type and its data URL's
    (each where given, and at least one) are image types. Nothing else is read."""
    if not isinstance(upload, dict):
        return False
    declared, data = upload.get("type"), upload.get("data")
    header = _DATA_URL_TYPE.match(data) if isinstance(data, str) else None
    types = [kind for kind in (declared if isinstance(declared, str) else "", header[1] if header else "") if kind]
    return bool(types) and all(is_image("", kind) for kind in types)


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
