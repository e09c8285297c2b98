"""A reply whose model is offered tools: its tool loop (bot.tools.agent) asking this turn's asker on this surface,
and what the loop does shown the surface's way: natively (Slack's task cards, the web chat's chips), else as lines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import structlog

from bot.model.backends import ChatMessage
from bot.model.thinking import Thought
from bot.reply.render import LiveRenderer
from bot.reply.surface import ReplySurface
from bot.tools.agent import AskModel, Counter, ToolTurn
from bot.tools.builtin import BuiltinTool
from bot.tools.consent import Asker
from bot.tools.events import Tail, ToolEvent, ToolLines, ToolRecorder, ToolView
from bot.tools.gate import ConfirmGate
from bot.tools.toolbox import ToolBox

log = structlog.get_logger(__name__)

SHOW_SECONDS = 30.0  # for a surface to show a call's event (a platform that can't by then won't)


def tool_turn_for(
    ask_model: AskModel,
    tools: ToolBox,
    gate: ConfirmGate | None,
    asker: tuple[str, str],
    surface: ReplySurface,
    *,
    room_tokens: int,
    count: Counter,
    builtins: Sequence[BuiltinTool] = (),
) -> ToolTurn:
    """`asker`: the id and name of the person whose yes a tool that changes something needs."""
    ask = Asker(gate, surface, *asker, tools.settings.confirm_seconds)
    running = surface.tools_running if isinstance(surface, ToolRecorder) else None
    return ToolTurn(ask_model, tools, ask, room_tokens=room_tokens, count=count, running=running, builtins=builtins)


def shown_tool_turn(
    tool_turn: ToolTurn, messages: list[ChatMessage], surface: ReplySurface, renderer: LiveRenderer
) -> AsyncIterator[str | Tail | Thought]:
    events = _with_notices(tool_turn, renderer, messages)
    if isinstance(surface, ToolView):
        return _shown_on(surface, events)
    return ToolLines(surface.limits.line_prefix).present(events)


async def _with_notices(
    tool_turn: ToolTurn, renderer: LiveRenderer, messages: list[ChatMessage]
) -> AsyncIterator[str | Thought | ToolEvent]:
    """The tool loop's pieces; what it has to say at the end (a limit reached) joins the reply's notices."""
    async for piece in tool_turn.pieces(messages):
        yield piece
    for notice in tool_turn.exchange.notices:
        renderer.add_notice(notice)


async def _shown_on(
    surface: ToolView, pieces: AsyncIterator[str | Thought | ToolEvent]
) -> AsyncIterator[str | Tail | Thought]:
    """Text (and thoughts) for the renderer; tool events to a surface that shows them itself."""
    async for piece in pieces:
        if isinstance(piece, (str, Thought)):
            yield piece
            continue
        try:
            async with asyncio.timeout(SHOW_SECONDS):
                await surface.show_tool(piece)
        except Exception:  # the call's card or chip is missed, not the answer
            log.warning("tool_event_not_shown", exc_info=True)
