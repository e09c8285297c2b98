"""Asking the person who asked the question before a tool that may change something runs: the surface
shows the question (buttons, y/N), any process takes the answer (see bot.tools.gate)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import structlog

from bot.errors import ReplyFailure
from bot.tools.gate import ConfirmGate, Decision
from bot.tools.toolbox import PreparedCall

log = structlog.get_logger(__name__)

SURFACE_SECONDS = 60.0  # for showing the question, and for settling it: a platform that doesn't answer by then won't
STORE_SECONDS = 30.0  # beyond the question's own timeout, for reading its answer (Redis answers sooner or fails)


@dataclass(frozen=True)
class ConfirmRequest:
    key: str  # what the answer names (a button's custom id carries it)
    tool: str
    server: str
    arguments: str  # shortened
    asker_id: str
    asker_name: str
    timeout: float


@runtime_checkable
class ToolConfirmer(Protocol):
    """A surface that can ask the asker before a tool runs."""

    async def ask_to_run(self, request: ConfirmRequest) -> Any:
        """Show the question; its answer reaches `ConfirmGate.answer` (from any process). Returns a handle."""

    async def settle(self, handle: Any, request: ConfirmRequest, decision: Decision) -> None:
        """The question is answered (or timed out): take its buttons away, say what happened."""


class Asker:
    """Asks one turn's asker on its surface."""

    def __init__(self, gate: ConfirmGate | None, surface: object, asker_id: str, asker_name: str, timeout: float):
        self._gate = gate
        self._surface = surface
        self._asker = (asker_id, asker_name)
        self._timeout = timeout

    async def __call__(self, prepared: PreparedCall) -> Decision:
        surface, gate = self._surface, self._gate
        if gate is None or not isinstance(surface, ToolConfirmer):
            return Decision(False, "I can't ask for a yes here")
        request = ConfirmRequest(
            gate.new_key(),
            prepared.tool.name,
            prepared.tool.server,
            prepared.shown_arguments,
            *self._asker,
            self._timeout,
        )
        try:
            async with asyncio.timeout(SURFACE_SECONDS):
                await gate.open(request.key, request.asker_id, request.timeout)
                handle = await surface.ask_to_run(request)
        except (ReplyFailure, TimeoutError) as failure:
            log.warning("tool_confirm_unavailable", tool=request.tool, detail=_detail(failure))
            return Decision(False, "I couldn't ask for a yes just now")
        decision = Decision(False, "stopped")
        try:
            async with asyncio.timeout(request.timeout + STORE_SECONDS):
                decision = await gate.wait(request.key, request.timeout)
                if decision.approved and not await gate.record_run(request.key):
                    decision = Decision(False, "it was already run")
        except (ReplyFailure, TimeoutError) as failure:
            log.warning("tool_confirm_unavailable", tool=request.tool, detail=_detail(failure))
            decision = Decision(False, "I couldn't read the answer just now")
        finally:
            await asyncio.shield(_settle(surface, handle, request, decision))
        return decision


async def _settle(surface: ToolConfirmer, handle: Any, request: ConfirmRequest, decision: Decision) -> None:
    try:
        async with asyncio.timeout(SURFACE_SECONDS):
            await surface.settle(handle, request, decision)
    except Exception:
        log.warning("tool_confirm_settle_failed", tool=request.tool, exc_info=True)


def _detail(failure: Exception) -> str:
    return failure.detail if isinstance(failure, ReplyFailure) else "timed out"
