"""Images attached to a question: what the vision model is sent, and what a person is told when
their file can't be used. Every image is made with Pillow here."""

from __future__ import annotations

import base64
import io
import random
import struct
import time
import zlib
from collections.abc import Iterator

import pytest
from PIL import Image, ImageFile

from adapters.shared.files.images import (
    MAX_BYTES,
    MAX_DOWNLOAD_BYTES,
    ImageReader,
    ImageRefused,
    PreparedImage,
    is_image,
    prepare_image,
)
from adapters.shared.files.isolation import IsolatedWorkers
from config.settings import ImageSettings

RED = (220, 30, 30)
GREEN = (30, 200, 30)
BLUE = (30, 30, 220)


def encoded(image: Image.Image, format_name: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format_name, **options)
    return buffer.getvalue()


def opened(prepared: PreparedImage) -> Image.Image:
    """The image as the model would decode it; fails the test if it is not what it claims to be."""
    image = Image.open(io.BytesIO(prepared.data))
    assert Image.MIME[image.format or ""] == prepared.mime
    assert image.size == (prepared.width, prepared.height)
    image.load()
    return image


def photo(width: int, height: int) -> Image.Image:
    """A smooth picture, as a camera's would be: a gradient across, another down."""
    across = Image.linear_gradient("L").rotate(90).resize((width, height))
    down = Image.linear_gradient("L").resize((width, height))
    return Image.merge("RGB", (across, down, Image.new("L", (width, height), 128)))


def noise(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Film grain at its worst: every pixel random, what compresses least."""
    return Image.frombytes(mode, (width, height), random.Random(width * height).randbytes(width * height * len(mode)))


def near(pixel: object, colour: tuple[int, ...], tolerance: int = 40) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, colour, strict=False))


def png_declaring(width: int, height: int) -> bytes:
    """A real, valid 1-bit PNG of width×height black pixels: a few hundred KB on disk, but a byte a
    pixel once Pillow decodes it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    compressor = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)
    rows_per_block = max(1, 4_000_000 // len(row))
    parts = [
        compressor.compress(row * min(rows_per_block, height - start)) for start in range(0, height, rows_per_block)
    ]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return png_declaring(30_000, 30_000)


@pytest.fixture
def decodes() -> Iterator[list[str]]:
    """The images Pillow was asked to decode during the test."""
    calls: list[str] = []
    real_load = ImageFile.ImageFile.load

    def load(self: ImageFile.ImageFile) -> object:
        if self.tile:  # still to decode
            calls.append(f"{self.format} {self.size}")
        return real_load(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ImageFile.ImageFile, "load", load)
        yield calls


def test_a_large_photo_is_sent_downscaled_as_a_jpeg_of_the_same_shape(decodes: list[str]) -> None:
    prepared = prepare_image("holiday.jpg", encoded(photo(4000, 3000), "JPEG", quality=95))

    assert decodes == ["JPEG (2000, 1500)"]  # decoded at half size: a quarter of the memory

    image = opened(prepared)
    assert prepared.mime == "image/jpeg"
    assert image.format == "JPEG"
    assert (prepared.width, prepared.height) == (1568, 1176)
    assert near(image.getpixel((prepared.width - 5, 5)), (255, 0, 128), 12)  # the gradient's corner
    assert prepared.data_url() == "data:image/jpeg;base64," + base64.b64encode(prepared.data).decode()


def test_a_small_image_keeps_its_size() -> None:
    prepared = prepare_image("icon.png", encoded(photo(300, 200), "PNG"))

    assert (prepared.width, prepared.height) == (300, 200)
    assert prepared.mime == "image/jpeg"  # no transparency: the smaller encoding


def test_a_png_with_transparency_stays_transparent() -> None:
    logo = Image.new("RGBA", (2000, 1000), (0, 0, 0, 0))
    logo.paste(Image.new("RGBA", (1000, 1000), (*BLUE, 255)), (1000, 0))

    prepared = prepare_image("logo.png", encoded(logo, "PNG"))

    image = opened(prepared)
    assert prepared.mime in ("image/png", "image/webp")
    assert (prepared.width, prepared.height) == (1568, 784)
    assert image.mode == "RGBA"
    assert image.getpixel((100, 400))[3] == 0  # type: ignore[index]
    assert near(image.getpixel((1400, 400)), (*BLUE, 255), 8)


def test_a_palette_png_with_a_transparent_colour_stays_transparent() -> None:
    sticker = Image.new("P", (200, 200), 0)
    sticker.putpalette([*RED, *GREEN])
    sticker.paste(1, (100, 0, 200, 200))

    prepared = prepare_image("sticker.png", encoded(sticker, "PNG", transparency=0))

    image = opened(prepared)
    assert image.mode == "RGBA"
    assert image.getpixel((50, 100))[3] == 0  # type: ignore[index]
    assert near(image.getpixel((150, 100)), (*GREEN, 255), 8)


def test_a_webp_is_accepted() -> None:
    picture = Image.new("RGB", (2400, 1200), GREEN)

    prepared = prepare_image("screenshot.webp", encoded(picture, "WEBP", quality=90))

    image = opened(prepared)
    assert (prepared.width, prepared.height) == (1568, 784)
    assert near(image.getpixel((784, 392)), GREEN)


def test_an_animated_gif_is_seen_as_its_first_frame() -> None:
    frames = [Image.new("RGB", (300, 200), colour) for colour in (RED, GREEN, BLUE)]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3  # type: ignore[attr-defined]

    prepared = prepare_image("dance.gif", data)

    image = opened(prepared)
    assert prepared.mime == "image/jpeg"
    assert image.mode == "RGB"
    assert near(image.getpixel((150, 100)), RED)


def test_a_photo_taken_sideways_comes_out_upright() -> None:
    """The camera stored it on its side (red at the top, blue at the bottom) and wrote in the
    EXIF that it must be turned a quarter clockwise: upright, it is wide, blue left and red right."""
    stored = Image.new("RGB", (1000, 3000), BLUE)
    stored.paste(Image.new("RGB", (1000, 1500), RED), (0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6

    prepared = prepare_image("IMG_0001.jpg", encoded(stored, "JPEG", exif=exif))

    image = opened(prepared)
    assert (prepared.width, prepared.height) == (1568, 523)
    assert near(image.getpixel((100, 260)), BLUE)
    assert near(image.getpixel((1468, 260)), RED)
    assert image.getexif().get(0x0112) in (None, 1)  # no viewer turns it a second time


def test_a_cmyk_jpeg_is_sent_as_rgb() -> None:
    printed = Image.new("CMYK", (400, 300), (0, 255, 255, 0))  # full magenta and yellow: red

    prepared = prepare_image("print.jpg", encoded(printed, "JPEG"))

    image = opened(prepared)
    assert image.mode == "RGB"
    assert near(image.getpixel((200, 150)), (255, 0, 0))


def test_a_16_bit_grey_png_keeps_its_greys() -> None:
    scan = Image.new("I;16", (300, 300), 32768)

    prepared = prepare_image("scan.png", encoded(scan, "PNG"))

    assert near(opened(prepared).getpixel((150, 150)), (128, 128, 128), 3)  # mid grey, not white


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("photo.png", random.Random(0).randbytes(5000)),
        ("photo.png", b""),
        ("photo.jpg", encoded(photo(800, 600), "JPEG")[:3000]),  # cut off while downloading
        ("photo.png", encoded(noise(400, 300), "PNG")[:-20_000]),
        ("photo.gif", encoded(noise(200, 100), "GIF")[:14_000]),
    ],
    ids=["random bytes", "empty", "truncated jpeg", "truncated png", "truncated gif"],
)
def test_a_corrupt_file_is_refused_by_name(name: str, data: bytes) -> None:
    with pytest.raises(ImageRefused) as refused:
        prepare_image(name, data)

    assert str(refused.value) == f"{name} could not be read as an image."


def test_a_text_file_named_png_is_refused() -> None:
    notes = b"Shopping list:\n- milk\n- eggs\n" * 50
    assert is_image("notes.png", "image/png")  # what it claims to be...

    with pytest.raises(ImageRefused, match=r"^notes\.png could not be read as an image\.$"):
        prepare_image("notes.png", notes)  # ...is not what it is


@pytest.mark.parametrize(
    "format_name", ["BMP", "TIFF", "ICO"], ids=["bmp named jpg", "tiff named jpg", "icon named jpg"]
)
def test_a_real_image_in_another_format_is_refused(format_name: str) -> None:
    with pytest.raises(ImageRefused, match=r"^picture\.jpg could not be read as an image\.$"):
        prepare_image("picture.jpg", encoded(photo(64, 64), format_name))


def test_a_file_over_the_download_limit_is_refused_without_decoding(
    decodes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_open(*args: object, **kwargs: object) -> Image.Image:
        raise AssertionError("a file over the limit was opened")

    monkeypatch.setattr(Image, "open", must_not_open)
    blob = b"\xff\xd8\xff" + bytes(50_000_000)
    assert len(blob) > MAX_DOWNLOAD_BYTES

    with pytest.raises(ImageRefused) as refused:
        prepare_image("huge.jpg", blob)

    assert str(refused.value) == "huge.jpg is too large to look at (over 20 MB)."
    assert decodes == []


def test_a_decompression_bomb_is_refused_at_once_without_being_decoded(bomb: bytes, decodes: list[str]) -> None:
    assert len(bomb) < 200_000  # 900 megapixels, a byte each once decoded

    started = time.perf_counter()
    with pytest.raises(ImageRefused) as refused:
        prepare_image("bomb.png", bomb)

    assert time.perf_counter() - started < 1
    assert str(refused.value).startswith("bomb.png is too large to look at")
    assert decodes == []


def test_the_pixel_limit_holds_whatever_pillow_is_set_to(bomb: bytes, decodes: list[str]) -> None:
    """Another part of the process may have switched off Pillow's own check: the header is still
    read before anything is decoded."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Image, "MAX_IMAGE_PIXELS", None)

        started = time.perf_counter()
        with pytest.raises(ImageRefused) as refused:
            prepare_image("bomb.png", bomb)

    assert time.perf_counter() - started < 1
    assert str(refused.value) == "bomb.png is too large to look at (30000×30000 pixels; the limit is 50 megapixels)."
    assert decodes == []


def test_an_image_under_pillows_limit_but_over_the_bots_is_refused(decodes: list[str]) -> None:
    limit_before = Image.MAX_IMAGE_PIXELS

    with pytest.raises(ImageRefused) as refused:
        prepare_image("poster.png", png_declaring(8000, 8000))

    assert str(refused.value) == "poster.png is too large to look at (8000×8000 pixels; the limit is 50 megapixels)."
    assert decodes == []
    limit_after = Image.MAX_IMAGE_PIXELS
    assert limit_after == limit_before  # the process-wide setting is left alone


def test_a_noisy_photo_is_made_to_fit_the_byte_limit() -> None:
    data = encoded(noise(3000, 2000), "JPEG", quality=95)

    prepared = prepare_image("grain.jpg", data)

    assert len(prepared.data) <= 1_500_000
    assert max(prepared.width, prepared.height) <= 1568
    assert opened(prepared).format == "JPEG"


def test_a_tighter_byte_limit_shrinks_the_image_until_it_fits() -> None:
    prepared = prepare_image("grain.jpg", encoded(noise(3000, 2000), "JPEG", quality=95), max_bytes=100_000)

    assert len(prepared.data) <= 100_000
    assert prepared.width < 1568
    assert prepared.width / prepared.height == pytest.approx(1.5, abs=0.01)
    assert opened(prepared).format == "JPEG"


def test_a_noisy_transparent_image_fits_the_byte_limit_and_stays_transparent() -> None:
    layer = noise(1600, 1600, "RGBA")
    layer.putalpha(Image.new("L", layer.size, 0))
    layer.paste(noise(800, 1600), (800, 0))

    prepared = prepare_image("layer.png", encoded(layer, "PNG"), max_bytes=400_000)

    image = opened(prepared)
    assert len(prepared.data) <= 400_000
    assert prepared.mime == "image/webp"
    assert image.mode == "RGBA"
    assert image.getpixel((10, 10))[3] == 0  # type: ignore[index]


def test_a_smaller_max_side_is_respected() -> None:
    prepared = prepare_image("holiday.jpg", encoded(photo(4000, 3000), "JPEG"), max_side=768)

    assert (prepared.width, prepared.height) == (768, 576)


async def test_an_image_is_prepared_in_a_worker_process() -> None:
    workers = IsolatedWorkers(preload=["adapters.shared.files.image_worker"])
    reader = ImageReader(ImageSettings(max_images=4, max_side=1000), workers)
    photo_bytes = encoded(photo(4000, 3000), "JPEG")

    async def download(data: bytes) -> bytes:
        return data

    try:
        prepared = await reader.read("holiday.jpg", lambda: download(photo_bytes))
        assert (prepared.width, prepared.height) == (1000, 750)
        assert len(prepared.data) <= MAX_BYTES
        with pytest.raises(ImageRefused, match=r"^notes\.png could not be read as an image\.$"):
            await reader.read("notes.png", lambda: download(b"just text"))
    finally:
        await workers.aclose()


@pytest.mark.parametrize(
    ("name", "content_type", "expected"),
    [
        ("photo.PNG", None, True),
        ("photo.jpeg", "", True),
        ("photo.jpg", "application/octet-stream", True),
        ("photo.webp", None, True),
        ("party.gif", None, True),
        ("clipboard", "image/png", True),
        ("upload", "image/jpeg; charset=binary", True),
        ("notes.txt", "text/plain", False),
        ("drawing.svg", "image/svg+xml", False),
        ("scan.tiff", "image/tiff", False),
        ("png", None, False),
    ],
)
def test_which_files_are_taken_for_images(name: str, content_type: str | None, expected: bool) -> None:
    assert is_image(name, content_type) is expected
