"""Where to cut a long reply into messages, keeping Markdown code fences intact."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

Measure = Callable[[str], int]  # a message's length as its platform counts it, against the platform's limit

_FENCE_LINE = re.compile(r"^[ \t]*(`{3,}|~{3,})([^\n]*)$", re.MULTILINE)  # messages close the code blocks they open
# Preferred cut points, best first; one is only taken in the later part of the window, so messages don't come out tiny.
_BOUNDARIES = ("\n\n", "\n", " ")
_MIN_FILL = 0.5


def char_length(text: str) -> int:
    return len(text)


def open_fence(text: str) -> str | None:
    """The opening line of a code fence still open at the end of `text`, if any."""
    opened: str | None = None
    for match in _FENCE_LINE.finditer(text):
        marker, info = match.group(1), match.group(2)
        if opened is None:
            opened = marker + info.strip()
        elif marker.startswith(opened[0] * 3) and not info.strip():
            opened = None
    return opened


def closing_for(fence: str) -> str:
    marker = re.match(r"`{3,}|~{3,}", fence)
    return marker.group(0) if marker else "```"


def with_note(text: str, note: str, *, fence_in: str | None = None) -> str:
    """`text`, then `note` after a blank line (`note` alone when there is no text); a code block still open in
    `fence_in` (`text` itself by default) is closed first."""
    fence = open_fence(text if fence_in is None else fence_in)
    closed = f"{text}\n{closing_for(fence)}" if fence else text
    return f"{closed}\n\n{note}" if closed.strip() else note


def longest_fitting(text: str, limit: int, measure: Measure) -> int:
    """Length of the longest prefix of `text` whose measure is at most `limit`."""
    if measure(text) <= limit:
        return len(text)
    if measure is char_length:
        return max(0, limit)
    low, high = 0, min(len(text), limit)
    while low < high:
        middle = (low + high + 1) // 2
        if measure(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


def cut_index(text: str, limit: int, measure: Measure = char_length) -> int:
    """Where to end a message that must hold at most `limit` of `text`: at a paragraph break, else a line break, else
    a space; mid-word only when the window has none of them."""
    window = longest_fitting(text, limit, measure)
    if window >= len(text):
        return len(text)
    floor = int(window * _MIN_FILL)
    for boundary in _BOUNDARIES:
        found = text.rfind(boundary, floor, window)
        if found > 0:
            return found + 1 if boundary == " " else found  # after a space, before a line break
    return max(window, 1)


def _before_fence_opener(text: str, cut: int, floor: int) -> int:
    """Don't end a message on a fence's opening line (an empty code block); cut before it."""
    line_start = text.rfind("\n", 0, cut) + 1
    line = text[line_start:].partition("\n")[0]
    if line_start > floor and _FENCE_LINE.fullmatch(line) and open_fence(text[:cut]) is not None:
        return line_start
    return cut


@dataclass(frozen=True)
class Piece:
    """One message's worth of a longer reply."""

    shown: str  # what the message displays (with fences closed/reopened)
    consumed: int  # how many characters of the source text it covers


def split_head(text: str, reopen: str, limit: int, measure: Measure = char_length) -> tuple[Piece, str]:
    """Cut the first message off `text` (source characters, shown after `reopen`); returns it and the fence prefix the
    next message must start with."""
    shown_source = reopen + text
    # Leave room to close a fence we may be cutting through.
    cut = cut_index(shown_source, limit - 8, measure)
    cut = max(_before_fence_opener(shown_source, cut, len(reopen)), len(reopen) + 1)
    head = shown_source[:cut]
    fence = open_fence(head)
    shown = f"{head.rstrip()}\n{closing_for(fence)}" if fence else head.rstrip()
    rest = cut
    while rest < len(shown_source) and shown_source[rest] == "\n":  # the next message starts on text
        rest += 1
    return Piece(shown, consumed=rest - len(reopen)), f"{fence}\n" if fence else ""
