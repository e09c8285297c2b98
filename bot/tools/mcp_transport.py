"""Reaching an MCP server with the official SDK's transports (stdio, streamable HTTP), noticing when its side ends,
and saying in a few words why it could not be reached."""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Protocol, Self

import anyio
import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.session import MessageHandlerFnT
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT

from bot.tools.server_output import Redactor, ServerOutput, http_error, plain, shown_url
from config.tools_file import ServerConfig

CONNECT_SECONDS = 30.0  # for the handshake and each tools/list
HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)  # the SDK's own defaults: a response stream may stay open long
ERROR_CHARS = 300


async def open_session(
    config: ServerConfig,
    stack: AsyncExitStack,
    on_end: Callable[[], None],
    on_message: MessageHandlerFnT,
    output: ServerOutput,
) -> ClientSession:
    """A session with the server's program (stdio, started now) or its URL (streamable HTTP), not yet initialized;
    `on_end` is called when the server's side ends; what the server says besides goes to `output`; all of it closed
    with `stack`."""
    if config.command is not None:
        # The SDK gives the program a minimal environment (PATH, HOME, ...) with config.env over it; on close it
        # closes the program's stdin, then terminates and kills its process group if it is still running.
        parameters = StdioServerParameters(
            command=config.command, args=list(config.args), env=dict(config.env), cwd=config.cwd
        )
        errlog = await output.open()
        try:
            read, write = await stack.enter_async_context(stdio_client(parameters, errlog=errlog))
        finally:
            output.spawned()
    else:
        assert config.url is not None
        headers, url = dict(config.headers), config.url
        hooks = {"response": [output.answered]}
        client = httpx2.AsyncClient(headers=headers, timeout=HTTP_TIMEOUT, event_hooks=hooks)
        client = await stack.enter_async_context(client)
        read, write = await stack.enter_async_context(streamable_http_client(url, http_client=client))
    watched = WatchedStream(read, on_end)
    session = ClientSession(watched, write, read_timeout_seconds=CONNECT_SECONDS, message_handler=on_message)
    return await stack.enter_async_context(session)


class ServerReads(Protocol):
    """What a watched stream uses of the transport's read side."""

    async def receive(self) -> SessionMessage | Exception: ...

    async def aclose(self) -> None: ...


class WatchedStream:
    """A session's read stream, calling `on_end` when the server's side ends (a stdio server that exited): the SDK's
    session says nothing then, it only fails the calls waiting."""

    def __init__(self, stream: ServerReads, on_end: Callable[[], None]) -> None:
        self._stream = stream
        self._on_end = on_end

    @property
    def last_context(self) -> contextvars.Context | None:  # the SDK reads it from the transports that have it
        context: contextvars.Context | None = getattr(self._stream, "last_context", None)
        return context

    async def receive(self) -> SessionMessage | Exception:
        try:
            return await self._stream.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end()
            raise

    async def aclose(self) -> None:
        await self._stream.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()


def describe_failure(
    config: ServerConfig, error: BaseException, output: str = "", http_status: int | None = None
) -> str:
    """Why connecting failed, in a few words, without what may be secret: "can't start 'foo': No such file or
    directory", "'python' exited before it was ready; its last output: “No module named foo”",
    "http://127.0.0.1:9: connection refused". `output`: the server's last words (see ServerOutput)."""
    found = list(_causes(error))
    mcp_error = next((item for item in found if isinstance(item, MCPError)), None)
    redact = Redactor(config)
    if config.command is not None:
        program = repr(config.command)
        if mcp_error is None:
            reason = f"can't start {program}: {_os_reason(found) or short(str(error)) or type(error).__name__}"
        elif mcp_error.code == CONNECTION_CLOSED:
            reason = f"{program} exited before it was ready"
        elif mcp_error.code == REQUEST_TIMEOUT:
            reason = f"{program} didn't answer within {CONNECT_SECONDS:g} s"
        else:
            reason = f"{program}: {short(mcp_error.message)}"
        return redact(plain(reason) + last_output(output))
    where = shown_url(config.url or "")
    if mcp_error is not None and mcp_error.code == REQUEST_TIMEOUT:
        return f"{where}: no answer within {CONNECT_SECONDS:g} s"
    if http_status is not None:
        return f"{where}: the server answered {http_error(http_status)}"
    reason = _os_reason(found) or (mcp_error and mcp_error.message) or short(str(found[-1]))
    return f"{where}: {redact(plain(reason or type(found[-1]).__name__))}"


def last_output(output: str) -> str:
    """What a reason adds of a server's last words (already `plain`)."""
    return f"; its last output: “{output}”" if output else ""


def short(text: str) -> str:
    """`text` on one line, at most ERROR_CHARS characters."""
    text = " ".join(text.split())
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def _causes(error: BaseException) -> Iterator[BaseException]:
    """`error`, what it wraps (groups, causes, contexts), depth first, each once."""
    seen: set[int] = set()
    stack = [error]
    while stack and len(seen) < 50:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        inner = list(item.exceptions) if isinstance(item, BaseExceptionGroup) else []
        stack += [link for link in (item.__context__, item.__cause__) if link is not None] + inner[::-1]


def _os_reason(found: list[BaseException]) -> str:
    if any(isinstance(item, ConnectionRefusedError) for item in found):
        return "connection refused"
    failure = next((item for item in found if isinstance(item, OSError) and (item.strerror or item.errno)), None)
    if failure is None:
        return ""
    return failure.strerror or os.strerror(failure.errno or 0)
