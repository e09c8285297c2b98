"""What every platform says about tools: the /tools listing (and the App Home's), the question a tool
that may change something asks, and how it was settled."""

from __future__ import annotations

from collections.abc import Callable

from bot.tools.asking import ConfirmRequest
from bot.tools.gate import Answer, Decision, duration
from bot.tools.toolbox import ToolBox

Code = Callable[[str], str]
DESCRIPTION_CHARS = 150


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


def describe_tools(tools: ToolBox, code: Code = _code) -> str:
    """/tools: each tool with what it does and whether it asks first; servers that are down, and why."""
    if not tools:
        return "No tools are connected here: I answer from what I know."
    listed, down = tools.listing()
    lines = ["The tools I can use:" if listed else "No tools are available right now."]
    for tool in listed:
        description = " ".join(tool.description.split())
        if len(description) > DESCRIPTION_CHARS:
            description = description[: DESCRIPTION_CHARS - 1] + "…"
        asks = " (asks you first)" if tool.asks_first else ""
        lines.append(f"• {code(tool.name)}{asks}: {description or 'no description'}")
    for server, problem in down:
        lines.append(f"⚠️ {code(server)} is down: {problem}. I keep trying to reach it.")
    return "\n".join(lines)


def confirm_question(request: ConfirmRequest, code: Code = _code) -> str:
    return (
        f"{request.asker_name}, may I run {code(request.tool)} ({request.server}) with {code(request.arguments)}? "
        f"Only you can answer; no answer within {duration(request.timeout)} counts as no."
    )


def settled_text(request: ConfirmRequest, decision: Decision, code: Code = _code) -> str:
    if decision.approved:
        return f"✓ {code(request.tool)} ({request.server}) runs: approved."
    return f"✗ {code(request.tool)} ({request.server}) did not run: {decision.why}."


def click_reply(answer: Answer) -> str | None:
    """What a click that didn't settle the question is told (privately); None when it did."""
    return {
        Answer.OK: None,
        Answer.NOT_YOURS: "Only the person who asked the question can answer this.",
        Answer.SETTLED: "This was already answered.",
        Answer.GONE: "This question has expired.",
    }[answer]
