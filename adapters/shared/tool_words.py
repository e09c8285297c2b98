"""What every platform says about tools: the /tools listing (and the App Home's), whether a conversation's model
uses them (and which models do), the question a tool that may change something asks, and how it was settled."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.core import ChatCore
from bot.state.personas import Place
from bot.tools.consent import ConfirmRequest
from bot.tools.gate import Answer, Decision, duration
from bot.tools.toolbox import ToolBox
from config.models import ModelChoice
from config.tools import offers_tools

Code = Callable[[str], str]
DESCRIPTION_CHARS = 150
NO_TOOLS = "No tools are connected here: I answer from what I know."
NO_TAKERS = "None of the models here uses them."


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


@dataclass(frozen=True)
class ToolUse:
    """Whether the model of a conversation (or of new conversations in a place) is offered the tools."""

    model: ModelChoice
    new: bool  # the model of new conversations here, not of one conversation
    turned_off: bool  # the place turned tools off
    takers: tuple[ModelChoice, ...]  # the models that are offered them (where tools are on)

    @property
    def uses(self) -> bool:
        return not self.turned_off and any(choice.id == self.model.id for choice in self.takers)


async def tool_use(core: ChatCore, thread: str | None, places: Sequence[Place] = ()) -> ToolUse:
    """Whether tools are offered to `thread`'s model (None: to new conversations' in `places`), as a turn there would
    be (see ChatCore._tool_turn); raises STORE_UNAVAILABLE without Redis."""
    here = await core.personas.settings(places) if core.personas is not None and places else None
    own = await core.own_model(thread) if thread is not None else None
    model = own or core.models.find(here.model if here is not None else "") or core.models.default
    return model_use(core, model, new=thread is None, turned_off=here is not None and here.tools is False)


def model_use(core: ChatCore, model: ModelChoice, *, new: bool = False, turned_off: bool = False) -> ToolUse:
    """Whether tools are offered to `model` where they are not `turned_off`."""
    takers = tuple(choice for choice in core.models.choices if offers_tools(choice, core.models, core.tools.settings))
    return ToolUse(model, new, turned_off, takers)


def answers(use: ToolUse, bold: Code = str) -> str:
    """Which model answers where: "Mistral answers this conversation"."""
    return f"{bold(use.model.display_name)} answers {'new conversations here' if use.new else 'this conversation'}"


def _slash_model(name: str) -> str:
    return f"Switch with /model {name}."


def why_not(use: ToolUse, bold: Code = str, switch: Code = _slash_model) -> str:
    """Why the model doesn't use the tools, and (if it is the model) which models do and how to pick one (`switch`
    says how, given the first one's name)."""
    if use.turned_off:
        return f"{answers(use, bold)} without tools: they are turned off here."
    others = [choice.display_name for choice in use.takers]
    pick = f"The models here that do: {', '.join(bold(name) for name in others)}. {switch(others[0])}" if others else ""
    return f"{answers(use, bold)} and doesn't use tools: it answers from what it knows. {pick or NO_TAKERS}"


def describe_tools(tools: ToolBox, code: Code = _code, use: ToolUse | None = None, bold: Code = str) -> str:
    """/tools: whether this conversation's model uses tools (`use`; None: not about one conversation), each tool with
    what it does and whether it asks first; servers that are down, and why."""
    if not tools:
        return NO_TOOLS
    listed, down = tools.listing()
    lines = [why_not(use, bold)] if use is not None and not use.uses else []
    if not listed:
        lines.append("No tools are available right now.")
    elif use is None:
        lines.append("The tools connected, for the models that use them:")
    else:
        lines.append(f"{answers(use, bold)} and uses these tools:" if use.uses else "The tools connected:")
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
