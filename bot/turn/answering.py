"""What a turn's answer is written from: the model's stream alone, or, when its model is offered tools here and some
are connected, the tool loop (bot.tools.agent) around it, shown the surface's way (bot.turn.tool_replies)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from bot.knowledge.citing import with_citations
from bot.model.backends import ChatMessage, ModelBackend, ModelPiece
from bot.model.thinking import Thought
from bot.reply.render import LiveRenderer
from bot.reply.surface import ReplySurface
from bot.tools.agent import ToolTurn
from bot.tools.events import Tail
from bot.tools.gate import ConfirmGate
from bot.tools.toolbox import ToolBox
from bot.turn.message import Turn
from bot.turn.model_slots import ModelSlots
from bot.turn.preparation import Prepared
from bot.turn.prompt import PromptBuilder
from bot.turn.searching import TurnKnowledge
from bot.turn.tool_replies import shown_tool_turn, tool_turn_for
from bot.usage.accounting import Spend
from bot.usage.meter import UsageMeter
from config.models import ModelCatalog
from config.tools import offers_tools


class Answering:
    def __init__(
        self,
        backend: ModelBackend,
        slots: ModelSlots,
        prompts: PromptBuilder,
        models: ModelCatalog,
        tools: ToolBox,
        gate: ConfirmGate | None,
        knowledge: TurnKnowledge,
    ) -> None:
        self._backend = backend
        self._slots = slots
        self._prompts = prompts
        self._models = models
        self.tools = tools
        self.gate = gate
        self._knowledge = knowledge

    def tool_turn(
        self, turn: Turn, surface: ReplySurface, prepared: Prepared, spend: Spend | None = None
    ) -> ToolTurn | None:
        """The answer's tool loop, when its model is offered tools and some are connected (or knowledge is there).
        Its rounds count on `spend`'s meter; each round after the first first holds more of the turn's budgets."""
        search = self._knowledge.tool(turn, prepared.citable)
        if prepared.tools_here is False or not (self.tools.specs() or search):
            return None
        if not offers_tools(prepared.model, self._models, self.tools.settings, builtin=search is not None):
            return None
        settings = prepared.model.settings

        rounds = 0

        async def ask_model(messages: list[ChatMessage], offered: list[dict[str, Any]]) -> AsyncIterator[ModelPiece]:
            nonlocal rounds
            rounds += 1
            meter = spend.meter if spend is not None else None
            if spend is not None and rounds > 1:
                await spend.more(settings.model_id, messages)
            async for piece in self._slots.pieces(self._backend.stream(messages, settings, offered, meter)):
                yield piece

        room = self._prompts.budget.prompt_tokens - prepared.prompt.tokens
        asker = (turn.author_id, turn.author_name)
        builtins = (search,) if search else ()
        count = self._prompts.count
        return tool_turn_for(
            ask_model, self.tools, self.gate, asker, surface, room_tokens=room, count=count, builtins=builtins
        )

    def pieces(
        self,
        prepared: Prepared,
        surface: ReplySurface,
        renderer: LiveRenderer,
        tool_turn: ToolTurn | None,
        meter: UsageMeter | None = None,
    ) -> AsyncIterator[str | Tail | Thought]:
        """The answer's text, thoughts and tool lines, as the renderer shows them; the knowledge it cites under it.
        Its model call counts on `meter` (a tool loop's on its own)."""
        shown: AsyncIterator[str | Tail | Thought]
        if tool_turn is None:  # no tools offered: the model's stream is text (and thoughts) only
            pieces = self._backend.stream(prepared.messages, prepared.model.settings, meter=meter)
            shown = cast(AsyncIterator[str | Thought], self._slots.pieces(pieces))
        else:
            shown = shown_tool_turn(tool_turn, prepared.messages, surface, renderer)
        if not prepared.citable and tool_turn is None:
            return shown
        return with_citations(shown, prepared.citable, surface, surface.limits.line_prefix, prepared.cited)
