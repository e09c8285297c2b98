"""Text files are read by their encoding (issue 61): a file attached to a question in UTF-16 (as Windows tools write
it, with or without a byte order mark), UTF-32 or UTF-8 with a mark reaches the model as its text; a file that is
none of them gets a notice, and the question is still asked."""

from __future__ import annotations

import codecs

import pytest

from adapters.shared.files.attachments import Attachment, read_attachments

NOTE = "Réunion à 14 h: the café on floor 2 serves crêpes."


async def returning(data: bytes) -> bytes:
    return data


@pytest.mark.parametrize(
    "data",
    [
        NOTE.encode("utf-8"),
        codecs.BOM_UTF8 + NOTE.encode("utf-8"),
        NOTE.encode("utf-16"),  # with its byte order mark
        NOTE.encode("utf-16-le"),
        NOTE.encode("utf-16-be"),
        NOTE.encode("utf-32"),
    ],
    ids=["utf-8", "utf-8 with BOM", "utf-16 with BOM", "utf-16-le", "utf-16-be", "utf-32"],
)
async def test_an_attached_text_file_is_read_in_its_encoding(data: bytes) -> None:
    read = await read_attachments([Attachment("notes.txt", "text/plain", len(data), lambda: returning(data))])

    [document] = read.documents
    assert document.parts == (NOTE,)


async def test_a_text_file_in_no_encoding_is_skipped_with_a_notice() -> None:
    data = b"\xff\x00\x81\xfe" * 10 + b"\x80"
    read = await read_attachments([Attachment("notes.txt", "text/plain", len(data), lambda: returning(data))])

    assert read.documents == ()
    assert read.notices == ("I couldn't read notes.txt as text.",)
