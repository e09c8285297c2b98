"""Tools the bot offers itself beside the MCP servers' (the knowledge search): read-only, run in this process,
never asked about, offered and shown like any other."""

from __future__ import annotations

import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from bot.model.backends import ToolSpec
from bot.model.tool_calls import ToolCall, parse_arguments
from bot.tools.toolbox import ToolResult

BUILTIN_SERVER = "bot"  # the server name a built-in call is shown with
LOG_FRAMES = 8


@dataclass(frozen=True)
class BuiltinTool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of its arguments
    run: Callable[[dict[str, Any]], Awaitable[ToolResult]]  # never raises for bad arguments: says why instead

    @property
    def spec(self) -> ToolSpec:
        function = {"name": self.name, "description": self.description, "parameters": self.parameters}
        return {"type": "function", "function": function}


async def run_builtin(tool: BuiltinTool, call: ToolCall) -> ToolResult:
    sent_at, started = time.time(), time.monotonic()
    try:
        arguments = parse_arguments(call.arguments)
    except ValueError as error:
        return ToolResult(False, f"Error: {error}. Call {call.name} again with valid arguments.", error=str(error))
    result = await tool.run(arguments)
    return replace(result, seconds=time.monotonic() - started, sent_at=sent_at)


def last_frames(error: BaseException) -> str:
    """Where `error` was raised: the last LOG_FRAMES frames of its traceback (a RecursionError has a thousand, which a
    log renderer may take many seconds to draw, on the event loop)."""
    return "".join(traceback.format_exception(error, limit=-LOG_FRAMES))


def crashed() -> ToolResult:
    """What a call that failed inside the bot gives (a bug of ours, a built-in tool's or a server's): the model and the
    person are told it failed."""
    return ToolResult(False, "Error: the call failed inside the bot.", error="failed inside the bot")
