"""Knowledge started when it is first needed: at start-up when it is configured or was used before, else at the
first /knowledge command, so a bot that never uses it never starts an engine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from bot.knowledge.service import Knowledge

log = structlog.get_logger(__name__)


class KnowledgeUnavailable(Exception):
    """str(error) is a sentence for the person and the operator."""


class KnowledgeOpener:
    def __init__(self, open_knowledge: Callable[[], Awaitable[Knowledge]], attach: Callable[[Knowledge], None]) -> None:
        """`open_knowledge`: starts the engine and embedder (raises KnowledgeUnavailable); `attach`: hands the started
        knowledge to the core, whose turns search it from then on."""
        self._open = open_knowledge
        self._attach = attach
        self._lock = asyncio.Lock()
        self.current: Knowledge | None = None

    async def get(self) -> Knowledge:
        """The knowledge, started now if it wasn't (raises KnowledgeUnavailable)."""
        if self.current is not None:
            return self.current
        async with self._lock:
            if self.current is None:
                knowledge = await self._open()
                self._attach(knowledge)
                self.current = knowledge
                log.info("knowledge_started", embedder=knowledge.embedder.name)
        return self.current

    async def get_or_none(self) -> Knowledge | None:
        """The knowledge, started now if it wasn't; None (logged for the operator) when it can't be."""
        try:
            return await self.get()
        except KnowledgeUnavailable as error:
            log.warning("knowledge_unavailable", reason=str(error))
            return None

    async def aclose(self) -> None:
        if self.current is not None:
            await self.current.aclose()
            self.current = None
