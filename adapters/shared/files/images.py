"""Images attached to a question, made ready for a vision model: checked to be a real PNG, JPEG,
WebP or GIF (by their bytes, whatever the name says), turned upright, downscaled and re-encoded
small enough to send. Anything unusable is refused with a sentence that names the file.

The decoding runs in the isolated workers (adapters.shared.files.isolation), never in the bot's process: a
small file can decode to hundreds of megabytes, or take seconds of CPU."""

from __future__ import annotations

import base64
import io
import math
import struct
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

import structlog
from PIL import GifImagePlugin, Image, ImageOps, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from adapters.shared.files.isolation import Failure, IsolatedWorkers, WorkFailed
from config.settings import ImageSettings

log = structlog.get_logger(__name__)

IMAGE_EXTENSIONS = frozenset(["png", "jpg", "jpeg", "jpe", "webp", "gif"])
IMAGE_CONTENT_TYPES = frozenset(["image/png", "image/jpeg", "image/jpg", "image/pjpeg", "image/webp", "image/gif"])
# Pillow's names of the formats accepted; a file is opened only as one of these. Their plugins are
# imported here, so that the workers' fork server has them and no worker imports any on its first file.
FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
_PLUGINS = (PngImagePlugin, JpegImagePlugin, WebPImagePlugin, GifImagePlugin)

# A larger file is refused by the size the platform declares, without downloading it.
MAX_DOWNLOAD_BYTES = 20_000_000
# Read from the header before anything is decoded: a small file can declare an enormous image.
MAX_PIXELS = 50_000_000
MAX_SIDE = 1568
MAX_BYTES = 1_500_000

JPEG_QUALITIES = (85, 75, 65, 50, 35)
WEBP_QUALITIES = (85, 70, 55, 40)
SHRINK_STEP = 0.75
SMALLEST_SIDE = 64

# What Pillow raises for a file that is not an image, or is corrupt or truncated.
_UNREADABLE: tuple[type[BaseException], ...] = (
    OSError,  # UnidentifiedImageError, truncated data, decoder errors
    ValueError,
    EOFError,
    SyntaxError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
)


@dataclass(frozen=True)
class PreparedImage:
    """What the vision model is sent in place of the person's file."""

    mime: str  # "image/jpeg", "image/png" or "image/webp"
    data: bytes  # the encoded, downscaled image
    width: int
    height: int

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


class ImageRefused(Exception):
    """An image that can't be used; str(error) is a short sentence for the person, e.g.
    "photo.png could not be read as an image." — always names the file. `reason` is for the
    operator's log."""

    def __init__(self, sentence: str, reason: str = "unreadable") -> None:
        super().__init__(sentence, reason)
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0])


def is_image(filename: str, content_type: str | None) -> bool:
    """Whether a file says it is an image the bot can look at (its bytes are checked later)."""
    if content_type and content_type.split(";", 1)[0].strip().lower() in IMAGE_CONTENT_TYPES:
        return True
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return extension in IMAGE_EXTENSIONS


def prepare_image(filename: str, data: bytes, *, max_side: int = MAX_SIDE, max_bytes: int = MAX_BYTES) -> PreparedImage:
    """The image ready to send: upright, its long side at most max_side pixels, encoded in at most
    max_bytes. Blocking (it decodes and encodes); raises ImageRefused for anything unusable."""
    if max_side < 1 or max_bytes < 1:
        raise ValueError(f"max_side and max_bytes must be positive, not {max_side} and {max_bytes}")
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise _refused(
            filename,
            "too_many_bytes",
            f"{filename} is too large to look at (over {MAX_DOWNLOAD_BYTES // 1_000_000} MB).",
        )
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as opened:
            width, height = opened.size
            if width * height > MAX_PIXELS:
                raise _too_many_pixels(filename, width, height)
            image = _decoded(opened, max_side)
        prepared = _encoded(image, max_bytes)
    except ImageRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _refused(filename, "bomb", f"{filename} is too large to look at (over {_megapixels()}).") from error
    except _UNREADABLE as error:
        reason = f"unreadable: {type(error).__name__}: {str(error)[:200]}"
        raise ImageRefused(f"{filename} could not be read as an image.", reason) from error
    if prepared is None:
        raise _refused(filename, "cannot_fit", f"{filename} could not be made small enough to send.")
    return prepared


def _decoded(opened: Image.Image, max_side: int) -> Image.Image:
    """The first frame, decoded at no more than about twice the size it is going to be, downscaled,
    upright and in RGB (RGBA when some of it is see-through)."""
    if opened.format in ("JPEG", "MPO"):
        # libjpeg decodes at 1/2, 1/4 or 1/8 scale directly, never holding the full-size photo.
        target = _fitted(opened.size, max_side)
        opened.draft("RGB", target)
    image = _rgb(opened)
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return _upright(image)


def _fitted(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _rgb(image: Image.Image) -> Image.Image:
    if image.mode.startswith("I"):
        # 16-bit greys: scaled to 8 bits rather than clipped to white.
        return image.convert("I").point(lambda value: value * (1 / 257)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        lowest_alpha, _ = rgba.getchannel("A").getextrema()
        see_through = isinstance(lowest_alpha, int | float) and lowest_alpha < 255
        return rgba if see_through else rgba.convert("RGB")
    return image.convert("RGB")


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as the camera's EXIF orientation says; as it is when that tag is unreadable."""
    try:
        return ImageOps.exif_transpose(image)
    except _UNREADABLE:
        return image


def _encoded(image: Image.Image, max_bytes: int) -> PreparedImage | None:
    """The largest, best-looking encoding within max_bytes: quality lowered first, then size."""
    base = image
    while True:
        last_size = 0
        for mime, format_name, options in _encodings(transparent=image.mode == "RGBA"):
            encoded = _save(image, format_name, **options)
            if len(encoded) <= max_bytes:
                return PreparedImage(mime, encoded, image.width, image.height)
            last_size = len(encoded)
        if max(image.size) <= SMALLEST_SIDE:
            return None
        # The bytes grow about as the pixel count: the next size aims just under the limit.
        scale = min(SHRINK_STEP, 0.95 * math.sqrt(max_bytes / last_size))
        side = max(SMALLEST_SIDE, int(max(image.size) * scale))
        image = base.resize(_fitted(base.size, side), Image.Resampling.LANCZOS)


def _encodings(*, transparent: bool) -> list[tuple[str, str, dict[str, int]]]:
    """What to try, best first: lossless PNG then WebP keep transparency; JPEG for the rest."""
    if transparent:
        return [("image/png", "PNG", {}), *(("image/webp", "WEBP", {"quality": q}) for q in WEBP_QUALITIES)]
    return [("image/jpeg", "JPEG", {"quality": q}) for q in JPEG_QUALITIES]


def _save(image: Image.Image, format_name: str, **options: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format_name, **options)
    return buffer.getvalue()


def _too_many_pixels(filename: str, width: int, height: int) -> ImageRefused:
    return _refused(
        filename,
        "too_many_pixels",
        f"{filename} is too large to look at ({width}×{height} pixels; the limit is {_megapixels()}).",
    )


def _refused(filename: str, reason: str, sentence: str) -> ImageRefused:
    return ImageRefused(sentence, reason)


def _megapixels() -> str:
    return f"{MAX_PIXELS // 1_000_000} megapixels"


class ImageReader:
    """Reads the images people attach, within the bot's image settings, in the isolated workers:
    a file is downloaded only in its worker's turn (`IsolatedWorkers.turn`), so a burst of large
    files waits its turn rather than filling the bot's memory, and one message's files take the
    workers in turn with other messages'."""

    def __init__(self, settings: ImageSettings, workers: IsolatedWorkers) -> None:
        self.settings = settings
        self._workers = workers

    @property
    def max_images(self) -> int:
        return self.settings.max_images

    async def aclose(self) -> None:
        await self._workers.aclose()

    async def read(
        self, filename: str, download: Callable[[], Awaitable[bytes]], *, owner: Hashable | None = None
    ) -> PreparedImage:
        """The image, downloaded and prepared; raises ImageRefused (logged for the operator) for
        anything unusable, including a file that ran its worker out of memory or time. `owner`: the
        message whose files take their turns together (without one, the file alone)."""
        async with self._workers.turn(owner if owner is not None else object()):
            data = await download()
            try:
                return await self._workers.run(prepare_image, filename, data, max_side=self.settings.max_side)
            except ImageRefused as refused:
                log.info("image_refused", name=filename, reason=refused.reason)
                raise
            except WorkFailed as failed:
                log.warning("image_worker_failed", name=filename, failure=failed.failure.name, detail=str(failed))
                raise ImageRefused(
                    _WORKER_FAILED[failed.failure].format(name=filename), failed.failure.name
                ) from failed


_WORKER_FAILED = {
    Failure.TOO_BIG: "{name} is too large to look at.",
    Failure.TOO_SLOW: "{name} took too long to read, so I couldn't look at it.",
    Failure.CRASHED: "{name} could not be read as an image.",
}
