"""Tool calls as a model streams them (OpenAI-style `delta.tool_calls`): the id and name first, the
arguments in pieces keyed by the call's index, several calls in one message."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 64  # levels of lists and objects in a call's arguments: far more than any tool's schema asks for
TOO_DEEP = f"the arguments are nested too deeply (more than {MAX_DEPTH} levels)"


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it (it may not be valid)

    def message_part(self) -> dict[str, Any]:
        """The call as an assistant message's `tool_calls` entry."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class ToolCalls:
    """The end of a model's message that asks for tools instead of (or after) text."""

    calls: tuple[ToolCall, ...]
    received_at: float = field(default_factory=time.time)  # when the model's stream ended with them


class CallGatherer:
    """Joins streamed tool-call deltas into whole calls."""

    def __init__(self) -> None:
        self._calls: dict[int, list[str]] = {}  # index → [id, name, arguments so far]

    def add(self, deltas: Iterable[Any]) -> None:
        """`deltas`: one chunk's `delta.tool_calls` (objects or dicts with index, id, function)."""
        for delta in deltas:
            index = int(_field(delta, "index") or 0)
            call = self._calls.setdefault(index, ["", "", ""])
            function = _field(delta, "function")
            call[0] = call[0] or str(_field(delta, "id") or "")
            if function is not None:
                call[1] = call[1] or str(_field(function, "name") or "")
                call[2] += str(_field(function, "arguments") or "")

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(id=call_id or f"call{index:05d}", name=name, arguments=arguments)
            for index, (call_id, name, arguments) in sorted(self._calls.items())
        )

    def __bool__(self) -> bool:
        return bool(self._calls)


def parse_arguments(raw: str) -> dict[str, Any]:
    """A call's arguments as an object; raises ValueError with a short reason."""
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as error:
        raise ValueError(f"the arguments are not valid JSON ({error.msg} at character {error.pos})") from None
    except RecursionError:  # json.loads recurses once per level: "[[[[…" deep enough overflows the stack
        raise ValueError(TOO_DEEP) from None
    if not isinstance(value, dict):
        raise ValueError("the arguments are not a JSON object")
    if _deeper_than(value, MAX_DEPTH):  # the schema check and the SDK recurse too
        raise ValueError(TOO_DEEP)
    return value


def _deeper_than(value: object, limit: int) -> bool:
    """Whether lists and objects nest more than `limit` levels in `value`, an object (walked without recursion)."""
    level: list[object] = [value]  # the lists and objects one level down
    for _ in range(limit):
        level = [item for node in level for item in _items(node) if isinstance(item, dict | list)]
        if not level:
            return False
    return True


def _items(node: object) -> list[object]:
    return list(node.values()) if isinstance(node, dict) else list(node) if isinstance(node, list) else []


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)
