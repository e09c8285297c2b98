"""What an MCP server says about itself besides the protocol, kept to tell why it is down: a stdio server's stderr
(read from a pipe, so that it never lands in the bot's own terminal: `python -m bot console` would show a server's
banner between the answers), and an HTTP server's last error status. All of it is untrusted text: shown only as
`plain` makes it, and without what may be secret in the server's config (`Redactor`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import TextIO
from urllib.parse import urlsplit

import httpx2

from config.tools_file import ServerConfig

KEEP_BYTES = 16_384  # of a server's stderr, the last ones (it may write for as long as it runs)
TAIL_LINES = 3
TAIL_CHARS = 300
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")  # terminal colours and the like
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|AUTH|CREDENTIAL", re.IGNORECASE)
MIN_SECRET_CHARS = 6
MIN_PART_CHARS = 12


class ServerOutput(asyncio.Protocol):
    """A stdio server's stderr, read as it comes through a pipe, its last KEEP_BYTES kept; an HTTP server's last
    error status."""

    def __init__(self) -> None:
        self.http_status: int | None = None
        self._kept = bytearray()
        self._ended = asyncio.Event()
        self._transport: asyncio.BaseTransport | None = None
        self._writer: TextIO | None = None

    async def open(self) -> TextIO:
        """The pipe's end the server writes to (the SDK's stdio_client takes it as `errlog`)."""
        read_end, write_end = os.pipe()
        reader = os.fdopen(read_end, "rb", buffering=0)
        try:
            self._transport, _ = await asyncio.get_running_loop().connect_read_pipe(lambda: self, reader)
        except BaseException:
            reader.close()
            os.close(write_end)
            raise
        self._writer = os.fdopen(write_end, "w", encoding="utf-8")
        return self._writer

    def spawned(self) -> None:
        """The server holds its own end of the pipe now: ours goes, so that the pipe ends when the server does."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    async def answered(self, response: httpx2.Response) -> None:
        """An HTTP response's hook: the status of the last message sent (a POST), if it is an error (a GET that opens
        the server's own stream may be refused with no harm)."""
        if response.request.method == "POST":
            self.http_status = response.status_code if response.status_code >= 400 else None

    def data_received(self, data: bytes) -> None:
        self._kept += data
        if len(self._kept) > KEEP_BYTES:
            del self._kept[:-KEEP_BYTES]

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended.set()

    async def last_words(self, within: float) -> str:
        """Its last lines, once the server's end of the pipe closed (at most `within` s from now), `plain`."""
        self.spawned()
        if self._transport is None:
            return ""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._ended.wait()
        return tail(self._kept.decode("utf-8", errors="replace"))

    def close(self) -> None:
        self.spawned()
        if self._transport is not None:
            self._transport.close()


def tail(text: str) -> str:
    """The last TAIL_LINES lines of `text` that say something, on one line, `plain`, at most TAIL_CHARS characters
    (the end kept: that is where a program says why it stopped)."""
    lines = [" ".join(line.split()) for line in _ESCAPES.sub("", text).splitlines()]
    said = " | ".join([line for line in lines if line][-TAIL_LINES:])
    said = plain(said)
    return said if len(said) <= TAIL_CHARS else "…" + said[-(TAIL_CHARS - 1) :]


def plain(text: str) -> str:
    """Untrusted text made inert wherever it is shown: no control characters, nothing that reads as markup (HTML,
    Slack's <…> links and mentions, Discord's <@…>), no @mention."""
    text = _CONTROLS.sub(" ", _ESCAPES.sub("", text))
    text = text.replace("<", "\u2039").replace(">", "\u203a")  # angle quotes
    return re.sub(r"@(?=\w)", "@\u200b", text)  # a zero-width space: @everyone no longer reads as a mention


def http_error(status: int) -> str:
    """ "401 Unauthorized"."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


class Redactor:
    """Takes out of a text what may be secret in a server's config: a URL's path, query and user (some servers put
    their key in the path: /api/mcp/s/<key>/mcp), header values, and environment values whose names say they are
    keys, tokens or passwords. Any URL in the text is shortened to its scheme and host."""

    def __init__(self, config: ServerConfig) -> None:
        found: set[str] = set()
        if config.url:
            parts = urlsplit(config.url)
            found |= {parts.path if parts.path not in ("", "/") else "", parts.query, parts.username or ""}
            found |= {parts.password or "", parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""}
            found |= {segment for segment in parts.path.split("/") if len(segment) >= MIN_SECRET_CHARS}
        for value in config.headers.values():
            found |= {value, *(part for part in value.split() if len(part) >= MIN_PART_CHARS)}  # not "Bearer"
        found |= {value for name, value in config.env.items() if _SECRET_NAME.search(name)}
        self._secrets = sorted((item for item in found if len(item) >= MIN_SECRET_CHARS), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = _URL.sub(lambda match: shown_url(match.group(0)), text)
        for secret in self._secrets:
            text = text.replace(secret, "…")
        return text


# The SDK's modules that log what may name a server's URL (a redirect's location, an HTTP error in a traceback).
SDK_LOGGERS = (
    "mcp.client.client",
    "mcp.client.session",
    "mcp.client.sse",
    "mcp.client.stdio",
    "mcp.client.streamable_http",
    "mcp.shared.jsonrpc_dispatcher",
)


class _RedactedLogs(logging.Filter):
    """The SDK's log records, their message and traceback as text without what may be secret."""

    def __init__(self) -> None:
        super().__init__()
        self.redactors: list[Redactor] = []

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        for redact in self.redactors or [Redactor(ServerConfig(name=""))]:
            text = redact(text)
        record.msg, record.args, record.exc_text = text, None, None
        return True


_SDK_FILTER = _RedactedLogs()


def redact_sdk_logs(configs: Iterable[ServerConfig]) -> None:
    """From now on the SDK's logs leave out what may be secret in these servers' configs (and any URL's path)."""
    _SDK_FILTER.redactors += [Redactor(config) for config in configs]
    for name in SDK_LOGGERS:
        sdk_logger = logging.getLogger(name)
        if _SDK_FILTER not in sdk_logger.filters:
            sdk_logger.addFilter(_SDK_FILTER)


def shown_url(url: str) -> str:
    """Where a URL points, without anything that may be secret: its scheme and host (and port), no user or password,
    no path, no query."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"
