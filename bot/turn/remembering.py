"""An answer stored once it is written (or stopped): its text without the thought's line, its tool calls and their
results (a knowledge search's as a note only: the next asker in the thread may not read what it found), its token
count as later prompts send it, and why it failed if it did."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace

import structlog

from bot.errors import ReplyFailure
from bot.knowledge.citing import Citation, citation_lines, without_passages
from bot.loop import off_loop_if_large
from bot.reply.render import RenderResult
from bot.reply.surface import ReplySurface, kept_view
from bot.state.store import HistoryStore, StoredMessage
from bot.tools.agent import ToolExchange, ToolTurn
from bot.turn.message import Turn
from bot.turn.prompt import PromptBuilder, earlier_tool_messages

log = structlog.get_logger(__name__)


class Remembering:
    def __init__(self, store: HistoryStore, prompts: PromptBuilder) -> None:
        self._store = store
        self._prompts = prompts

    async def remember(
        self,
        turn: Turn,
        surface: ReplySurface,
        result: RenderResult,
        fence: str,
        tool_turn: ToolTurn | None = None,
        before: str = "",
        cited: Sequence[Citation] = (),
    ) -> RenderResult:
        """Store the answer (without `before` it, the thought's line; with what its surface keeps to draw it again);
        one that failed is stored with its reason (shown again on a reload, and the model told it went unanswered:
        see bot.turn.prompt)."""
        failed = "" if result.complete or result.failure is None else result.failure.reason
        exchange = tool_turn.exchange if tool_turn is not None else ToolExchange(result.text.removeprefix(before))
        text, tools = exchange.text, without_passages(exchange.messages)
        if tool_turn is not None and cited:  # the sources shown, kept for follow-ups as a text answer keeps them
            text = f"{text}\n\n{citation_lines(cited)}"
        # Counted as later prompts send it: the calls, their results shortened, and the text.
        counted = json.dumps(earlier_tool_messages(tools, text), ensure_ascii=False) if tools else text
        tokens = 0 if failed else await off_loop_if_large(len(counted), self._prompts.count, counted)
        try:
            view = kept_view(surface, before)
            reply = StoredMessage(
                "assistant", text, at=time.time(), tokens=tokens, failed=failed, tools=tools, view=view
            )
            await self._store.add_reply(turn.thread, reply, fence)
        except ReplyFailure as failure:
            log.error("reply_not_saved", thread=turn.thread, detail=failure.detail)
            return replace(result, saved=False)
        return result
