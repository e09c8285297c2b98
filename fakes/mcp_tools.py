"""An MCP server for the tool tests, written with the official SDK (mcp.server.mcpserver.MCPServer):

    python -m fakes.mcp_tools stdio
    python -m fakes.mcp_tools http --port N     # streamable HTTP at http://127.0.0.1:N/mcp

MCP_NOTES_FILE gets a line per add_note call; MCP_EVENTS_FILE gets "cancelled" when a hang call is cancelled;
MCP_TIMING_FILE a JSON line per tagged slow call (when it started and ended). MCP_STDERR_BANNER, when set, is
written to stderr as the server starts (as many servers greet whoever runs them)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ResourceLink, TextContent, ToolAnnotations
from pydantic import WithJsonSchema

READ_ONLY = ToolAnnotations(read_only_hint=True)
server: MCPServer = MCPServer("fake-tools", log_level="WARNING")


def append_line(variable: str, line: str) -> int:
    """Append `line` to the file the environment variable names; how many lines it has now (0: not set)."""
    path = os.environ.get(variable)
    if not path:
        return 0
    with open(path, "a", encoding="utf-8") as file:
        file.write(line + "\n")
    return len(Path(path).read_text(encoding="utf-8").splitlines())


@server.tool(annotations=READ_ONLY)
async def lookup(query: str, ms: int = 0) -> CallToolResult:
    """Look something up."""
    await asyncio.sleep(ms / 1000)  # how long the lookup takes: 0 unless a test needs it to be seen running
    text = TextContent(text=f"Result for {query}: see https://example.org/{query}")
    link = ResourceLink(name=query, uri=f"https://docs.example.org/{query}")
    return CallToolResult(content=[text, link])


@server.tool(annotations=ToolAnnotations(destructive_hint=False))
def add_note(text: str) -> str:
    """Write a note down."""
    return f"noted #{append_line('MCP_NOTES_FILE', text)}"


@server.tool(annotations=ToolAnnotations(destructive_hint=True))
def delete_note() -> str:
    """Delete every note."""
    path = os.environ.get("MCP_NOTES_FILE")
    if path:
        Path(path).write_text("", encoding="utf-8")
    return "deleted"


@server.tool(annotations=ToolAnnotations(destructive_hint=False))
async def add_note_slowly(text: str, ms: int) -> str:
    """Write a note down after `ms` milliseconds ("started" goes to MCP_EVENTS_FILE at once)."""
    append_line("MCP_EVENTS_FILE", "started")
    await asyncio.sleep(ms / 1000)
    return f"noted #{append_line('MCP_NOTES_FILE', text)}"


@server.tool(annotations=READ_ONLY)
async def hang() -> str:
    """Never answer."""
    try:
        await asyncio.sleep(86_400)
    except asyncio.CancelledError:
        append_line("MCP_EVENTS_FILE", "cancelled")
        raise
    return "woke up"


@server.tool(annotations=READ_ONLY)
def fail() -> str:
    """Always fail."""
    raise ToolError("the lookup service is down")


@server.tool(annotations=READ_ONLY, structured_output=False)
def huge() -> str:
    """100,000 characters."""
    return "0123456789" * 10_000


@server.tool(annotations=READ_ONLY)
def exit_now() -> str:
    """The server process exits mid-call."""
    os._exit(3)


@server.tool(annotations=READ_ONLY)
async def slow(ms: int, tag: str = "") -> str:
    """Sleep `ms` milliseconds."""
    started = time.time()
    await asyncio.sleep(ms / 1000)
    if tag:  # when it ran, for the benchmark (bench/tools.py)
        append_line("MCP_TIMING_FILE", json.dumps({"tag": tag, "start": started, "end": time.time()}))
    return f"slept {ms} ms"


@server.tool(annotations=READ_ONLY)
def strict(text: Annotated[str, WithJsonSchema({"type": "string", "pattern": "(unclosed"})]) -> str:
    """A tool whose schema no validator can apply (its pattern is not a regular expression)."""
    return f"strict {text}"


@server.tool(annotations=READ_ONLY)
def endless(text: Annotated[str, WithJsonSchema({"allOf": [{"$dynamicRef": "#/properties/text"}]})]) -> str:
    """A tool whose valid schema refers to itself: checking arguments against it never ends (RecursionError)."""
    return f"endless {text}"


DEEP_LEVELS = 220  # more than the SDK's client reads in a message (200), less than its server writes (255)


@server.tool(annotations=READ_ONLY)
def deep_result() -> CallToolResult:
    """A result nested deeper than a client can read."""
    value: dict[str, Any] = {"end": True}
    for _ in range(DEEP_LEVELS):
        value = {"inner": value}
    return CallToolResult(content=[], structured_content=value)


def extra() -> str:
    """A tool added at runtime."""
    return "extra"


@server.tool(annotations=READ_ONLY)
async def add_tool(ctx: Context) -> str:
    """Add the tool `extra`, and tell the client the tools changed."""
    server.add_tool(extra, annotations=READ_ONLY)
    await ctx.session.send_tool_list_changed()
    return "added extra"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    if banner := os.environ.get("MCP_STDERR_BANNER"):
        print(banner, file=sys.stderr, flush=True)
    if args.transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
