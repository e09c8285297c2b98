"""The bot's connection to one MCP server (config.tools_file.ServerConfig): a program it starts (stdio) or a URL it
reaches (streamable HTTP), with the official SDK's ClientSession.

A background task of its own owns the connection: the SDK's anyio task groups live there, never in a caller's task.
It connects, lists the tools, re-lists them when the server says they changed, and when the connection fails or the
program exits it connects again after a pause that doubles each time (backoff). `call()` talks to the session from the
caller's task; the SDK sends the server `notifications/cancelled` when a call times out or its caller is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from mcp import ClientSession
from mcp.client import IncomingMessage
from mcp.shared.exceptions import MCPError
from mcp.types import (
    CONNECTION_CLOSED,
    REQUEST_TIMEOUT,
    CallToolResult,
    PaginatedRequestParams,
    Tool,
    ToolListChangedNotification,
)

from bot.tools.mcp_results import result_links, result_text
from bot.tools.mcp_transport import describe_failure, last_output, open_session, short
from bot.tools.server_output import Redactor, ServerOutput
from config.tools_file import ServerConfig

log = structlog.get_logger(__name__)

MAX_TOOL_PAGES = 100
CALL_GRACE_SECONDS = 10.0  # a call's end beyond its timeout, whatever the transport does
CLOSE_SECONDS = 15.0
OUTPUT_SECONDS = 1.0  # for a server's last words once it is gone (they come at once, unless a child of it lives on)

Event = Literal["ended", "tools_changed"]


@dataclass(frozen=True)
class ToolInfo:
    server: str  # the server's config name
    name: str
    description: str
    input_schema: dict[str, Any]  # JSON schema of the arguments
    read_only: bool  # annotations.readOnlyHint is True


@dataclass(frozen=True)
class ToolOutcome:
    ok: bool
    text: str  # the result as text for the model; for an error, the error message
    links: tuple[str, ...] = ()  # the http(s) URLs the result points to, in order, each once
    error: str = ""  # short human reason when not ok


class McpServer:
    def __init__(
        self,
        config: ServerConfig,
        *,
        on_tools_changed: Callable[[], None] = lambda: None,
        backoff: tuple[float, float] = (1.0, 60.0),
    ) -> None:
        """`on_tools_changed` is called after the tools were re-read because the server said they changed;
        a connection that fails is tried again after backoff[0] s, doubling up to backoff[1] s."""
        self.config = config
        self._on_tools_changed = on_tools_changed
        self._backoff = backoff
        self._session: ClientSession | None = None
        self._tools: tuple[ToolInfo, ...] = ()
        self._problem = "not started"
        self._ready = asyncio.Event()
        self._tried = asyncio.Event()  # its first connection came up or failed
        self._task: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[Event] | None = None  # the current connection's

    @property
    def up(self) -> bool:
        return self._session is not None

    @property
    def problem(self) -> str:
        """Why the server is down ("" when up)."""
        return "" if self.up else self._problem

    @property
    def tools(self) -> tuple[ToolInfo, ...]:
        """The tools it offers (those config.tools names, when set), as last listed."""
        return self._tools

    async def start(self) -> None:
        """Connect in the background (and stay connected); returns at once."""
        if self._task is None:
            self._problem = "connecting"
            self._task = asyncio.create_task(self._keep_connected(), name=f"mcp-server-{self.config.name}")

    async def wait_ready(self, timeout: float) -> bool:  # noqa: ASYNC109 - waits for our own task, not a request
        """Whether the server is up (connected, tools listed) within `timeout` s."""
        return await _set_within(self._ready, timeout)

    async def wait_first_try(self, timeout: float) -> bool:  # noqa: ASYNC109 - waits for our own task
        """Whether its first connection came up or failed within `timeout` s (a server that can't start fails at once:
        start-up needn't wait for it)."""
        return await _set_within(self._tried, timeout)

    async def call(self, name: str, arguments: dict[str, Any], timeout: float) -> ToolOutcome:  # noqa: ASYNC109
        """Run a tool. Never raises but CancelledError. `timeout` is the SDK's read timeout: a call that times out, like
        one whose caller is cancelled, is cancelled on the server too (notifications/cancelled). Whatever happens, the
        call ends within `timeout` + CALL_GRACE_SECONDS."""
        session = self._session
        if session is None:
            return _failed(f"the server is down ({self._problem})")
        try:
            async with asyncio.timeout(timeout + CALL_GRACE_SECONDS):
                return _outcome(await session.call_tool(name, arguments, read_timeout_seconds=timeout))
        except MCPError as error:
            reason = _call_error(error, timeout)
            if error.code == CONNECTION_CLOSED and session is self._session and self._events is not None:
                self._ended(self._events)  # over HTTP, a broken response stream: connect again to see
        except TimeoutError:  # the SDK's own timeout didn't end it (a request that couldn't even be sent)
            reason = f"timed out after {timeout:g} s"
        except (RuntimeError, ValueError) as error:  # the SDK's checks of the result (its schema, its kind)
            reason = short(str(error)) or type(error).__name__
        except Exception as error:  # noqa: BLE001 - a result we can't read fails its call, never the answer
            log.error("mcp_call_crashed", server=self.config.name, tool=name, error=type(error).__name__)
            reason = f"the call failed ({type(error).__name__})"
        reason = self._redact(reason)
        log.warning("mcp_call_failed", server=self.config.name, tool=name, reason=reason)
        return _failed(reason)

    async def aclose(self) -> None:
        """Stop the background task, and with it the connection (a stdio server's process ends)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # The SDK bounds its own shutdown (stdin closed, then terminate, then kill: a few seconds at most).
            await asyncio.wait([task], timeout=CLOSE_SECONDS)
        self._session = None
        self._ready.clear()
        self._problem = "closed"

    async def _keep_connected(self) -> None:
        delay = self._backoff[0]
        while True:
            reached = await self._connect_once()
            self._tried.set()
            if reached:
                delay = self._backoff[0]
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])

    async def _connect_once(self) -> bool:
        """One connection, from start to end; whether it came up."""
        reached, failure = False, None
        output = ServerOutput()
        try:
            async with self._open(output) as (session, events):
                await self._list_tools(session)
                self._session, reached = session, True
                self._ready.set()
                self._tried.set()
                log.info("mcp_server_up", server=self.config.name, tools=len(self._tools))
                while await events.get() == "tools_changed":
                    await self._list_tools(session)
                    log.info("mcp_tools_changed", server=self.config.name, tools=len(self._tools))
                    self._on_tools_changed()
        except Exception as error:  # noqa: BLE001 - any failure is the reason it is down, and a reason to retry
            failure = error
        except BaseException:
            output.close()
            raise
        try:
            said = await output.last_words(within=OUTPUT_SECONDS)
        finally:
            output.close()
        if failure is not None:
            self._went_down(describe_failure(self.config, failure, said, output.http_status))
        elif reached:  # the connection ended (the down was said at once, without the server's last words)
            self._went_down(self._ended_reason() + self._redact(last_output(said)))
        return reached

    @asynccontextmanager
    async def _open(self, output: ServerOutput) -> AsyncIterator[tuple[ClientSession, asyncio.Queue[Event]]]:
        """The session, initialized, and the queue that says when the connection ended or the tools changed."""
        events: asyncio.Queue[Event] = asyncio.Queue()
        self._events = events

        async def on_message(message: IncomingMessage) -> None:
            if isinstance(message, ToolListChangedNotification):
                events.put_nowait("tools_changed")

        async with AsyncExitStack() as stack:
            session = await open_session(self.config, stack, lambda: self._ended(events), on_message, output)
            await session.initialize()
            yield session, events

    def _ended(self, events: asyncio.Queue[Event]) -> None:
        """The server's side of this connection ended: down at once (calls fail fast), reconnected by the task."""
        events.put_nowait("ended")
        if events is self._events and self._session is not None:
            self._went_down(self._ended_reason())

    def _ended_reason(self) -> str:
        return "the server exited" if self.config.stdio else "the connection ended"

    def _redact(self, text: str) -> str:
        return Redactor(self.config)(text)

    def _went_down(self, reason: str) -> None:
        """Down for `reason`: logged when it was up or the reason is new, not at each try while it stays down."""
        news = self._session is not None or reason != self._problem
        self._session = None
        self._ready.clear()
        self._problem = reason
        (log.warning if news else log.debug)("mcp_server_down", server=self.config.name, reason=reason)

    async def _list_tools(self, session: ClientSession) -> None:
        capabilities = session.server_capabilities
        listed: list[Tool] = []
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES if capabilities is None or capabilities.tools is not None else 0):
            page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
            listed += page.tools
            cursor = page.next_cursor
            if not cursor:
                break
        wanted = self.config.tools
        self._tools = tuple(_info(self.config.name, tool) for tool in listed if wanted is None or tool.name in wanted)


def _info(server: str, tool: Tool) -> ToolInfo:
    read_only = tool.annotations is not None and tool.annotations.read_only_hint is True
    return ToolInfo(server, tool.name, tool.description or tool.title or "", dict(tool.input_schema), read_only)


def _outcome(result: CallToolResult) -> ToolOutcome:
    text, links = result_text(result), result_links(result)
    if result.is_error:
        return ToolOutcome(False, text or "the tool failed", links, short(text) or "the tool failed")
    return ToolOutcome(True, text, links)


def _failed(reason: str) -> ToolOutcome:
    return ToolOutcome(False, reason, error=reason)


def _call_error(error: MCPError, timeout: float) -> str:
    if error.code == REQUEST_TIMEOUT:
        return f"timed out after {timeout:g} s"
    if error.code == CONNECTION_CLOSED:
        return "the server stopped during the call"
    return short(error.message) or f"error {error.code}"


async def _set_within(event: asyncio.Event, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
