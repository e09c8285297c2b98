"""Every tool the operator connected (MCP_SERVERS_FILE), offered to the model as one list, and each call
checked before it runs: a tool that exists, arguments that match its schema, a person's yes where needed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from bot.model.backends import ToolSpec
from bot.model.tool_calls import ToolCall, parse_arguments
from bot.tools.server_output import redact_sdk_logs
from config.tools import ToolSettings
from config.tools_file import ServerConfig

if TYPE_CHECKING:
    from bot.tools.servers import McpServer, ToolInfo

log = structlog.get_logger(__name__)

DISPLAY_CHARS = 300  # arguments and results as people see them


@dataclass(frozen=True)
class PreparedCall:
    """A call found and checked, ready to ask about or run."""

    call: ToolCall
    server: McpServer
    tool: ToolInfo
    arguments: dict[str, Any]
    asks_first: bool

    @property
    def shown_arguments(self) -> str:
        return shorten(self.call.arguments.strip() or "{}", DISPLAY_CHARS)


@dataclass(frozen=True)
class ToolResult:
    ok: bool
    content: str  # what the model is told
    seconds: float = 0.0
    error: str = ""  # what the person is told, when not ok
    links: tuple[str, ...] = ()
    sent_at: float = 0.0  # time.time() when the request went to the server (0: it never did)


@dataclass(frozen=True)
class ListedTool:
    server: str
    name: str
    description: str
    asks_first: bool


class ToolBox:
    def __init__(self, settings: ToolSettings) -> None:
        self.settings = settings
        self._servers = _servers(settings.servers, on_tools_changed=self._forget_specs)
        self._specs: list[ToolSpec] | None = None

    @property
    def servers(self) -> tuple[McpServer, ...]:
        return tuple(self._servers)

    def __bool__(self) -> bool:
        return bool(self._servers)

    async def start(self, ready_within: float = 5.0) -> None:
        """Connect every server: start-up waits up to `ready_within` s for each to connect or fail its first try; one
        that isn't up by then keeps trying in the background."""
        redact_sdk_logs(server.config for server in self._servers)
        for server in self._servers:
            await server.start()
        await asyncio.gather(*(server.wait_first_try(ready_within) for server in self._servers))
        for server in self._servers:
            if not server.up:
                log.warning("mcp_server_not_ready", server=server.config.name, problem=server.problem)

    async def aclose(self) -> None:
        await asyncio.gather(*(server.aclose() for server in self._servers))

    def specs(self) -> list[ToolSpec]:
        """The tools as the model is offered them (read when a server connects or says its tools changed)."""
        if self._specs is None:
            self._specs = [_spec(tool) for _, tool in self._tools()]
        return self._specs

    def listing(self) -> tuple[list[ListedTool], list[tuple[str, str]]]:
        """What /tools shows: every tool, and the servers that are down with why."""
        tools = [
            ListedTool(tool.server, tool.name, tool.description, self._asks_first(server, tool))
            for server, tool in self._tools()
        ]
        down = [(server.config.name, server.problem or "connecting") for server in self._servers if not server.up]
        return tools, down

    def prepare(self, call: ToolCall) -> PreparedCall | ToolResult:
        """The call checked, or the error result the model gets instead."""
        found = next(((server, tool) for server, tool in self._tools() if tool.name == call.name), None)
        if found is None:
            names = ", ".join(tool.name for _, tool in self._tools()) or "none"
            return _refused(f"there is no tool named {call.name!r} (tools: {names})", "no such tool")
        server, tool = found
        try:
            arguments = parse_arguments(call.arguments)
            _validate(arguments, tool.input_schema)
        except BrokenSchema as error:
            return _refused(f"{call.name} can't be called: {error}. Use another tool.", str(error))
        except ValueError as error:
            return _refused(f"{error}. Call {call.name} again with arguments that match its schema.", str(error))
        return PreparedCall(call, server, tool, arguments, self._asks_first(server, tool))

    async def run(self, prepared: PreparedCall) -> ToolResult:
        sent_at, started = time.time(), time.monotonic()
        timeout = prepared.server.config.timeout_seconds
        outcome = await prepared.server.call(prepared.call.name, prepared.arguments, timeout)
        seconds = time.monotonic() - started
        if not outcome.ok:
            error = outcome.error or "failed"
            return ToolResult(False, f"Error: {outcome.error or outcome.text}", seconds, error, sent_at=sent_at)
        return ToolResult(True, self._cut(outcome.text), seconds, links=outcome.links, sent_at=sent_at)

    def _cut(self, text: str) -> str:
        limit = self.settings.result_max_chars
        if len(text) <= limit:
            return text
        return (
            f"{text[:limit]}\n\n[The result was cut: it had {len(text):,} characters; these are the first {limit:,}.]"
        )

    def _tools(self) -> list[tuple[McpServer, ToolInfo]]:
        """Each tool once: a name two servers offer is the first server's."""
        seen: dict[str, tuple[McpServer, ToolInfo]] = {}
        for server in self._servers:
            for tool in server.tools if server.up else ():
                if tool.name in seen:
                    log.warning("mcp_tool_name_taken", tool=tool.name, server=server.config.name)
                    continue
                seen[tool.name] = (server, tool)
        return list(seen.values())

    @staticmethod
    def _asks_first(server: McpServer, tool: ToolInfo) -> bool:
        confirm = server.config.confirm
        if isinstance(confirm, bool):
            return confirm
        if confirm is not None and tool.name in confirm:
            return bool(confirm[tool.name])
        return not tool.read_only

    def _forget_specs(self) -> None:
        self._specs = None


def _servers(configs: Sequence[ServerConfig], *, on_tools_changed: Callable[[], None]) -> list[McpServer]:
    if not configs:
        return []
    # The MCP SDK takes about a second of CPU to import: only a bot with tool servers configured pays it.
    from bot.tools.servers import McpServer

    return [McpServer(config, on_tools_changed=on_tools_changed) for config in configs]


def declined(prepared: PreparedCall, why: str) -> ToolResult:
    return ToolResult(
        False, f"The person did not allow this call ({why}). Don't call it again for this question.", error=why
    )


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _refused(for_model: str, for_person: str) -> ToolResult:
    return ToolResult(False, f"Error: {for_model}", error=for_person)


def _spec(tool: ToolInfo) -> ToolSpec:
    parameters = tool.input_schema or {"type": "object", "properties": {}}
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": parameters},
    }


class BrokenSchema(Exception):
    """A tool's schema no validator can apply (a server's mistake, not the model's)."""


def _validate(arguments: dict[str, Any], schema: dict[str, Any]) -> None:
    if not schema:
        return
    import jsonschema  # type: ignore[import-untyped, unused-ignore]  # only tool calls need it; stubs are optional

    kind = jsonschema.validators.validator_for(schema)
    try:
        kind.check_schema(schema)
    except jsonschema.exceptions.SchemaError as invalid:
        raise BrokenSchema(f"its schema is invalid ({shorten(invalid.message, 100)})") from None
    error = jsonschema.exceptions.best_match(kind(schema).iter_errors(arguments))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path)
        raise ValueError(f"the arguments don't match the tool's schema: {where + ': ' if where else ''}{error.message}")
