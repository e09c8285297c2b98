"""The web chat's tools (see bot.tools): the frames that show an answer's tool calls as chips, its
sources as links and a tool's question before it runs (sent by adapters.web.reply.WebReply); the
calls of a stored answer, as the page shows them after a reload; the Tools menu's listing; and a
Run / Cancel click, answered through the core's ConfirmGate by whichever process takes it.

The frames (JSON over the websocket, besides those in adapters.web):

- server → page: `tool` {question, call, name, server, state: "running" | "done" | "failed",
  arguments, result?, seconds?, error?} as a call starts and ends (`call`: the chip's id within the
  answer; a call still running when the answer ends is sent "failed" with the error "stopped");
  `sources` {question, urls, cited?} once the answer is written (`cited`: the passages its [n] marks cite, as
  WebReply.quote adds them); `confirm` {question, key, tool, server,
  arguments, seconds} when a tool asks first; `confirmed` {question, key, approved, text} once the
  question is answered, declined, stopped or timed out; `tools` {connected, uses, summary, tools: [{name,
  server, description, asksFirst}], down: [{server, problem}]} for the Tools menu (`uses`: whether the
  conversation's model uses the tools; `summary` says so, and if not which models do). The tool frames of an
  answer being written go with it in `hello`'s `live` (`tools`: the latest frame of each chip,
  question and the sources, in order); a stored answer in `history` has `tools`: [{name, arguments,
  result, state}] and `sources`: urls (adapters.web.redraw).
- page → server: `confirm` {key: 16 hex digits, yes: true | false}; `tools`.

Whatever a tool returns is shown as text: the page never parses it as HTML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from adapters.shared.tool_words import DESCRIPTION_CHARS, NO_TOOLS, ToolUse, answers, click_reply, settled_text, why_not
from bot.errors import ReplyFailure
from bot.reply.render import failure_note
from bot.tools.consent import ConfirmRequest
from bot.tools.events import ToolEvent, ToolFinished, ToolStarted, safe_sources
from bot.tools.gate import Answer, ConfirmGate, Decision
from bot.tools.toolbox import DISPLAY_CHARS, ToolBox, shorten

log = structlog.get_logger(__name__)

CONFIRM_KEY = re.compile(r"[0-9a-f]{16}")  # ConfirmGate.new_key's
STOPPED = "stopped"  # a call still running when its answer ended
# A stored tool result saying the call failed or was not allowed (bot.tools.toolbox's texts).
_FAILED = ("Error:", "The person did not allow")


class ToolFrames:
    """One answer's tool events as frames, each with its place (`key`) among the answer's tool frames;
    a call's chip keeps one id (`call`) from its start to its end, even if the model reuses call ids."""

    def __init__(self, question: str) -> None:
        self._question = question
        self._chips = 0
        self._running: dict[str, list[str]] = {}  # the model's call id → the chips of its calls running

    def event(self, event: ToolEvent) -> tuple[str, dict[str, Any]]:
        if isinstance(event, ToolStarted):
            self._chips += 1
            chip = str(self._chips)
            self._running.setdefault(event.call_id, []).append(chip)
            return f"call:{chip}", self._call(chip, event.name, event.server, "running", event.arguments)
        if isinstance(event, ToolFinished):
            chips = self._running.get(event.call_id) or [str(self._chips + 1)]
            chip = chips.pop(0)
            self._chips = max(self._chips, int(chip))
            state = "done" if event.ok else "failed"
            frame = self._call(chip, event.name, event.server, state, event.arguments)
            frame.update(result=event.result, seconds=round(event.seconds, 1), error=event.error)
            return f"call:{chip}", frame
        return "sources", {"type": "sources", "question": self._question, "urls": list(safe_sources(list(event.urls)))}

    def asked(self, request: ConfirmRequest) -> tuple[str, dict[str, Any]]:
        frame = {"type": "confirm", "question": self._question, "key": request.key, "tool": request.tool}
        return f"ask:{request.key}", frame | {
            "server": request.server,
            "arguments": request.arguments,
            "seconds": request.timeout,
        }

    def settled(self, request: ConfirmRequest, decision: Decision) -> tuple[str, dict[str, Any]]:
        frame = {"type": "confirmed", "question": self._question, "key": request.key, "approved": decision.approved}
        return f"ask:{request.key}", frame | {"text": settled_text(request, decision)}

    def _call(self, chip: str, name: str, server: str, state: str, arguments: str) -> dict[str, Any]:
        frame = {"type": "tool", "question": self._question, "call": chip, "name": name, "server": server}
        return frame | {"state": state, "arguments": arguments}


def stopped(frame: Mapping[str, Any]) -> dict[str, Any] | None:
    """A call's frame, if it is still running: the same call, ended because its answer ended."""
    if frame.get("type") != "tool" or frame.get("state") != "running":
        return None
    return {**frame, "state": "failed", "error": STOPPED, "result": ""}


def stored_calls(messages: Sequence[object]) -> list[dict[str, Any]]:
    """A stored answer's tool calls (its assistant `tool_calls` and `role: tool` messages) as the
    page shows them: name, arguments, result (shortened) and whether it failed."""
    calls: list[dict[str, Any]] = []
    waiting: dict[str, dict[str, Any]] = {}  # this round's calls by id, until their results
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        if message.get("role") == "assistant":
            waiting = {}
            parts = message.get("tool_calls")
            for part in parts if isinstance(parts, list) else []:
                function = part.get("function") if isinstance(part, Mapping) else None
                if not isinstance(function, Mapping):
                    continue
                arguments = shorten(str(function.get("arguments") or "").strip() or "{}", DISPLAY_CHARS)
                call = {"name": str(function.get("name", "")), "arguments": arguments, "result": "", "state": "failed"}
                calls.append(call)
                waiting.setdefault(str(part.get("id", "")), call)
        elif message.get("role") == "tool":
            found = waiting.pop(str(message.get("tool_call_id", "")), None)
            if found is not None:
                content = str(message.get("content", ""))
                found.update(result=shorten(content, DISPLAY_CHARS), state=_state(content))
    return calls


def _state(result: str) -> str:
    return "failed" if result.startswith(_FAILED) else "done"


def listing(tools: ToolBox, use: ToolUse) -> dict[str, Any]:
    """The Tools menu: whether the conversation's model (`use`) uses the tools (if not, which models do), each tool,
    whether it asks first, and the servers that are down with why."""
    if not tools:
        return {"type": "tools", "connected": False, "uses": False, "summary": NO_TOOLS, "tools": [], "down": []}
    listed, down = tools.listing()
    summary = f"{answers(use)} and uses these tools." if use.uses else why_not(use, switch=_in_the_menu)
    return {
        "type": "tools",
        "connected": True,
        "uses": use.uses,
        "summary": summary,
        "tools": [
            {
                "name": tool.name,
                "server": tool.server,
                "description": shorten(" ".join(tool.description.split()), DESCRIPTION_CHARS),
                "asksFirst": tool.asks_first,
            }
            for tool in listed
        ],
        "down": [{"server": server, "problem": problem} for server, problem in down],
    }


def _in_the_menu(name: str) -> str:
    return "Pick one in the model menu."


async def click(gate: ConfirmGate | None, person: str, event: Mapping[str, Any]) -> str | None:
    """A Run / Cancel click (`confirm` {key, yes}) by `person` (the browser's id, the turn's author):
    what its page is told, if anything (the question itself is settled by the asking answer)."""
    key, yes = event.get("key"), event.get("yes")
    if not isinstance(key, str) or CONFIRM_KEY.fullmatch(key) is None or not isinstance(yes, bool):
        log.warning("web_unreadable_event", kind="confirm")
        return None
    if gate is None:
        return click_reply(Answer.GONE)
    try:
        answer = await gate.answer(key, person, yes=yes)
    except ReplyFailure as failure:
        return failure_note(failure)
    return click_reply(answer)
