"""Small pure helpers of the fake Slack: ts and cursors, text of blocks, ids, image sizes, stream
chunks, and request signatures."""

from __future__ import annotations

import base64
import contextlib
import gc
import hashlib
import hmac
import io
import itertools
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fakes.slack.protocol import MARKDOWN_TEXT_MAX, TASK_STATUSES, ApiError, JsonDict


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


# A thread parent's summary fields: in conversations.history, not in the event of a new message.
_THREAD_SUMMARY = frozenset({"reply_count", "reply_users", "reply_users_count", "latest_reply"})


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _encode_cursor(kind: str, value: str) -> str:
    return base64.b64encode(f"{kind}:{value}".encode()).decode()


def _decode_cursor(cursor: str, kind: str) -> str:
    try:
        found, _, value = base64.b64decode(cursor, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise ApiError("invalid_cursor") from None
    if found != kind or not value:
        raise ApiError("invalid_cursor")
    return value


def _cursor_key(cursor: str) -> tuple[int, int]:
    value = _decode_cursor(cursor, "next_ts")
    if not value.isdigit():
        raise ApiError("invalid_cursor")
    return divmod(int(value), 1_000_000)


def _format_ts(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _blocks_text(blocks: list[JsonDict]) -> str:
    parts: list[str] = []
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(str(text.get("text", "")))
        elif isinstance(text, str):
            parts.append(text)
        parts.extend(_rich_text(block.get("elements") or []))
    return "\n".join(p for p in parts if p)


def _rich_text(elements: list[Any]) -> list[str]:
    out: list[str] = []
    for element in elements:
        if not isinstance(element, dict):
            continue
        if isinstance(element.get("text"), str):
            out.append(element["text"])
        out.extend(_rich_text(element.get("elements") or []))
    return out


_block_ids = itertools.count(1)


def _rich_text_blocks(text: str) -> list[JsonDict]:
    section = {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
    return [{"type": "rich_text", "block_id": f"{next(_block_ids):05x}"[-5:], "elements": [section]}]


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _file_id() -> str:
    return f"F{uuid.uuid4().hex[:10].upper()}"


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def _required(params: JsonDict, key: str) -> str:
    value = params.get(key)
    if value is None or value == "":
        raise ApiError("invalid_arguments", response_metadata={"messages": [f"[ERROR] missing required field: {key}"]})
    return str(value)


def _as_blocks(value: Any) -> list[JsonDict] | None:
    value = _maybe_json(value)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(b, dict) and "type" in b for b in value):
        raise ApiError("invalid_blocks_format")
    return value


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG, GIF or WebP image Pillow reads the header of, else None."""
    try:
        from PIL import Image
    except ImportError:  # Pillow comes with requirements-local.txt; without it, no image sizes
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            known = image.format in ("PNG", "JPEG", "GIF", "WEBP")
            width, height = image.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return (width, height) if known else None


def _stream_text(params: JsonDict) -> tuple[str, list[JsonDict]]:
    """Markdown text and other chunks of one stream call (``markdown_text`` and/or ``chunks``)."""
    text = str(params.get("markdown_text") or "")
    others: list[JsonDict] = []
    chunks = _maybe_json(params.get("chunks")) or []
    if not isinstance(chunks, list):
        raise ApiError("invalid_chunks")
    problems = [problem for i, chunk in enumerate(chunks) for problem in chunk_errors(chunk, f"/chunks/{i}")]
    if problems:
        raise ApiError("invalid_chunks", response_metadata={"messages": [f"[ERROR] {p}" for p in problems]})
    for chunk in chunks:
        if chunk["type"] == "markdown_text":
            text += str(chunk.get("text") or "")
        else:
            others.append(chunk)
    if len(text) > MARKDOWN_TEXT_MAX:
        raise ApiError("msg_too_long")
    return text, others


def chunk_errors(chunk: Any, pointer: str) -> list[str]:
    """What Slack finds wrong with one stream chunk (markdown_text, task_update, plan_update)."""
    if not isinstance(chunk, dict) or chunk.get("type") not in ("markdown_text", "task_update", "plan_update"):
        return [f"must be a markdown_text, task_update or plan_update chunk [json-pointer:{pointer}]"]

    def text_field(key: str, *, required: bool) -> list[str]:
        value = chunk.get(key)
        if value is None and not required:
            return []
        if not isinstance(value, str) or (required and not value):
            return [f"must provide a non-empty string [json-pointer:{pointer}/{key}]"]
        return []

    if chunk["type"] == "markdown_text":
        return text_field("text", required=True)
    if chunk["type"] == "plan_update":
        return text_field("title", required=True)
    errors = text_field("id", required=True) + text_field("title", required=True)
    if chunk.get("status") not in TASK_STATUSES:
        errors.append(f"must be one of {', '.join(TASK_STATUSES)} [json-pointer:{pointer}/status]")
    errors += text_field("details", required=False) + text_field("output", required=False)
    sources = chunk.get("sources")
    if sources is not None and not isinstance(sources, list):
        errors.append(f"must provide an array [json-pointer:{pointer}/sources]")
    for i, source in enumerate(sources or []):
        here = f"{pointer}/sources/{i}"
        if not isinstance(source, dict) or source.get("type") != "url":
            errors.append(f"must be a url source [json-pointer:{here}/type]")
            continue
        for key in ("url", "text"):
            if not isinstance(source.get(key), str) or not source[key]:
                errors.append(f"must provide a non-empty string [json-pointer:{here}/{key}]")
    return errors


def _trigger_id() -> str:
    return f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"


def signature_headers(body: str, signing_secret: str, timestamp: int | str | None = None) -> dict[str, str]:
    """``X-Slack-Request-Timestamp`` / ``X-Slack-Signature`` exactly as Slack computes them."""
    ts = str(int(time.time())) if timestamp is None else str(timestamp)
    base = f"v0:{ts}:{body}".encode()
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}
