"""Chat-completion SSE bodies with the text deltas of one read merged into one event.

A model server sends one `data:` event per token, and huggingface_hub turns every event into
typed objects (90 µs each on the benchmark machine, the larger part of a streamed reply's
CPU). When several events arrive in one socket read (reads are batched, and a busy
process reads late anyway), parsing them one by one gains nothing: `DeltaMerger` rewrites
each run of plain text deltas within one read into a single event carrying their text.
huggingface_hub still parses every event the client sees; the text is the same, only its
pieces are larger, and the busier the process, the larger they get.

Only events that are nothing but text are merged: one choice at index 0 whose delta has
`content` (and maybe `role`), no finish reason, log-probabilities, usage or error. Any other
line (a finish or usage chunk, an error, `[DONE]`, a comment) passes through unchanged and in
order. A line split across reads is looked at once its end has come (nobody could parse
half a line anyway).

Text can also wait here across reads (`TextDemand`): the renderer says when it will next
show new text (its next edit, or only the end when it posts the reply whole), and until the
read before then, text accumulates unparsed. The edit shows the same text it would have;
only the parsing in between is saved. Anything else that arrives (the finish, an error, the
end of the body) releases the text first, so nothing waits for longer than the reader needs,
and nothing is lost.

A stream's text events differ only in their text, so after the first one (checked with
`json.loads`) an event is recognised by its bytes: everything around its text is identical
to the first's (`_Shape`). Their JSON-escaped texts are joined as they are (escapes are self-contained),
so merging decodes and encodes nothing.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

_DATA = b"data:"
_CONTENT_KEY = b'"content"'
_CONTENT_VALUE = re.compile(rb'"content"\s*:\s*"((?:[^"\\]|\\.)*)"')
_TEXT_DELTA_KEYS = frozenset({"content", "role"})
# An HTTP chunk's size line, except the 0 that ends the body.
_CHUNK_SIZE = re.compile(rb"0*[1-9a-fA-F][0-9a-fA-F]{0,7}")


@dataclass(frozen=True)
class _Shape:
    """What a stream's text-delta `data:` lines have around their JSON-escaped text."""

    before: bytes
    after: bytes

    def text_of(self, body: bytes) -> bytes | None:
        """The text of a line of this shape, unless it holds a quote: then it might be more than
        one field (`a","tool":"x`), and `_CONTENT_VALUE` decides. (Escapes are self-contained; a
        lone trailing backslash would escape the closing quote.)"""
        if len(body) < len(self.before) + len(self.after):
            return None
        if body.startswith(self.before) and body.endswith(self.after):
            text = body[len(self.before) : len(body) - len(self.after)]
            if b'"' not in text and not text.endswith(b"\\"):
                return text
        return None


class TextDemand:
    """When a reply's reader will next show new text (`time.monotonic()`).

    One watcher (the model stream reading for this reply) is told whenever that changes.
    """

    def __init__(self, on_asked: Callable[[], None] | None = None, *, shown_after_burst: bool = False) -> None:
        """`on_asked`: told once, when the model request has gone out (or never will).
        `shown_after_burst`: no text is shown before the turns that came in with this one have
        asked the model (see `bot.burst`)."""
        self.next_use_at = 0.0  # in the past: now
        self.shown_after_burst = shown_after_burst
        self._watcher: Callable[[], None] | None = None
        self._on_asked = on_asked

    def asked(self) -> None:
        if self._on_asked is not None:
            self._on_asked, on_asked = None, self._on_asked
            on_asked()

    def watch(self, watcher: Callable[[], None]) -> None:
        self._watcher = watcher

    def unwatch(self, watcher: Callable[[], None]) -> None:
        if self._watcher == watcher:
            self._watcher = None

    def use_now(self) -> None:
        self._set(0.0)

    def use_in(self, seconds: float) -> None:
        self._set(time.monotonic() + seconds)

    def use_at_end(self) -> None:
        """Only the whole text will be shown."""
        self._set(math.inf)

    def _set(self, at: float) -> None:
        self.next_use_at = at
        if self._watcher is not None:
            self._watcher()


class DeltaMerger:
    """Rewrites one response body, read by read.

    With a `demand`, text is kept across reads while the next one (`lead` seconds away at
    most) still comes before the reader needs it.
    """

    def __init__(self, demand: TextDemand | None = None, lead: float = 0.0) -> None:
        self._demand = demand
        self._lead = lead
        self._tail = b""  # the start of a line the last read cut off
        self._shape: _Shape | None = None  # of the last text event checked with json.loads
        self._run_shape: _Shape | None = None  # text not yet passed on: its shape and pieces
        self._run: list[bytes] = []

    def flush(self) -> bytes:
        """What is kept so far (at the end of the body, or before an error is raised)."""
        out: list[bytes] = []
        self._write_run(out)
        out.append(self._tail)
        self._tail = b""
        return b"".join(out)

    def feed(self, data: bytes) -> bytes:
        keep = self.may_keep()
        if not self._run and not self._tail and not keep and data.count(_DATA) < 2 and data.endswith(b"\n"):
            return data  # nothing to merge or keep
        if self._tail:
            data = self._tail + data
        end = data.rfind(b"\n") + 1
        self._tail = data[end:]  # a line is only looked at once it is whole
        out: list[bytes] = []
        run = self._run
        for line in data[:end].splitlines(keepends=True):
            body = line.rstrip(b"\r\n")
            if not body:
                if not run:
                    out.append(line)  # between merged events the separator is written with them
                continue
            event = self._text_event(body)
            if event is None:
                self._write_run(out)
                out.append(line)
                continue
            shape, text = event
            if run and shape is not self._run_shape:
                self._write_run(out)
            self._run_shape = shape
            run.append(text)
        if not keep:
            self._write_run(out)
        return b"".join(out)

    def may_keep(self) -> bool:
        """Text may wait: the reader shows none before the next read (`lead` from now)."""
        return self._demand is not None and time.monotonic() + self._lead < self._demand.next_use_at

    def only_text(self, raw: bytes) -> bool:
        """Whether these whole lines of a raw HTTP body (chunk sizes included) are nothing but
        more text of this stream's shape, which may wait unread while `may_keep()`."""
        shape = self._shape
        if shape is None or self._tail:
            return False
        for line in raw.split(b"\n"):
            body = line.rstrip(b"\r")
            if body and shape.text_of(body) is None and not _CHUNK_SIZE.fullmatch(body):
                return False
        return True

    def _text_event(self, body: bytes) -> tuple[_Shape, bytes] | None:
        """The shape and JSON-escaped text of a line that is nothing but a piece of text."""
        shape = self._shape
        if shape is not None and (text := shape.text_of(body)) is not None:
            return shape, text
        if not body.startswith(_DATA) or body.count(_CONTENT_KEY) != 1:
            return None
        match = _CONTENT_VALUE.search(body)
        if match is None:
            return None
        text = match.group(1)
        if shape is not None and body[: match.start(1)] == shape.before and body[match.end(1) :] == shape.after:
            return shape, text
        content = _text_delta_content(body[len(_DATA) :])
        if content is None or content != _json_string(text):  # the one "content" is the delta's
            return None
        self._shape = _Shape(body[: match.start(1)], body[match.end(1) :])
        return self._shape, text

    def _write_run(self, out: list[bytes]) -> None:
        run, shape = self._run, self._run_shape
        if run and shape is not None:
            out.append(shape.before + b"".join(run) + shape.after + b"\n\n")
            run.clear()


def _json_string(escaped: bytes) -> str | None:
    try:
        text = json.loads(b'"' + escaped + b'"')
    except ValueError:
        return None
    return text if isinstance(text, str) else None


def _text_delta_content(payload: bytes) -> str | None:
    """The text of a chunk that is nothing but a piece of text, else None."""
    try:
        chunk = json.loads(payload)
    except ValueError:  # [DONE], or something huggingface_hub will report itself
        return None
    if not isinstance(chunk, dict) or chunk.get("error") is not None or chunk.get("usage") is not None:
        return None
    choices = chunk.get("choices")
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    if choice.get("index", 0) != 0 or choice.get("finish_reason") is not None or choice.get("logprobs") is not None:
        return None
    delta = choice.get("delta")
    if not isinstance(delta, dict) or not delta.keys() <= _TEXT_DELTA_KEYS:
        return None
    content = delta.get("content")
    return content if isinstance(content, str) else None
