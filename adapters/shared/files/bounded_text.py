"""Texts taken only up to a number of characters: what every document reader uses to stop at its limit."""

from __future__ import annotations

from collections.abc import Iterable


def taken_until(max_chars: int, texts: Iterable[str], *, header: int = 0) -> tuple[list[str], bool]:
    """`texts` taken until they add up to `max_chars` characters, the last one cut to the limit (each
    counted with `header` characters more, as it will be shown); and whether one was cut."""
    taken: list[str] = []
    left = max_chars
    for text in texts:
        if left <= 0:
            return taken, False
        taken.append(text[: max(0, left - header)])
        left -= len(text) + header + 1
        if len(taken[-1]) < len(text):
            return taken, True
    return taken, False


def joined(texts: Iterable[str], separator: str, max_chars: int) -> str:
    """`texts` joined by `separator`, taken only until `max_chars` characters."""
    pieces: list[str] = []
    size = 0
    for text in texts:
        if pieces:
            size += len(separator)
        if size >= max_chars:
            break
        pieces.append(text[: max_chars - size])
        size += len(pieces[-1])
    return separator.join(pieces)
