"""An in-memory reply surface that behaves like a chat platform's message list.

It enforces the maximum length (a platform would answer 400) and records every write
with its time, so tests and benchmarks can see what a person would have seen and when.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from adapters.shared.ratelimit import Budgets, RateLimits, ReplyBudget
from bot.reply.surface import SurfaceLimits


class MessageTooLong(Exception):
    pass


@dataclass
class Write:
    at: float
    kind: str  # "post" or "edit"
    message: int
    text: str
    final: bool


@dataclass
class MemorySurface:
    limits: SurfaceLimits
    rate_limits: RateLimits | None = None  # with it, writes keep within these buckets
    post_budgets: Budgets = ()
    edit_budgets: Budgets = ()
    write_delay: float = 0.0  # simulated request latency
    messages: list[str] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    waiting_shown_at: float | None = None

    def __post_init__(self) -> None:
        self._budget = ReplyBudget(self.rate_limits) if self.rate_limits is not None else None

    async def show_waiting(self) -> None:
        self.waiting_shown_at = time.time()

    async def begin(self) -> bool:
        return await self._budget.begin(self.edit_budgets) if self._budget is not None else True

    async def end(self) -> None:
        if self._budget is not None:
            await self._budget.end()

    def model_line(self, model: str, *, first_reply: bool) -> str:
        return ""

    async def post(self, text: str, *, final: bool) -> int:
        self._check(text)
        if self._budget is not None:
            async with self._budget.post(self.post_budgets):
                return await self._post(text, final)
        return await self._post(text, final)

    async def edit(self, handle: int, text: str, *, final: bool) -> None:
        self._check(text)
        if self._budget is not None:
            async with await self._budget.edit(self.edit_budgets, final=final):
                await self._edit(handle, text, final)
        else:
            await self._edit(handle, text, final)

    async def _post(self, text: str, final: bool) -> int:
        if self.write_delay:
            await asyncio.sleep(self.write_delay)
        self.messages.append(text)
        index = len(self.messages) - 1
        self.writes.append(Write(time.time(), "post", index, text, final))
        return index

    async def _edit(self, handle: int, text: str, final: bool) -> None:
        if self.write_delay:
            await asyncio.sleep(self.write_delay)
        self.messages[handle] = text
        self.writes.append(Write(time.time(), "edit", handle, text, final))

    def _check(self, text: str) -> None:
        if self.limits.measure(text) > self.limits.max_length:
            raise MessageTooLong(f"{self.limits.measure(text)} > {self.limits.max_length}")
        if not text.strip():
            raise ValueError("empty message")

    @property
    def first_visible_at(self) -> float | None:
        return self.writes[0].at if self.writes else None

    @property
    def final_visible_at(self) -> float | None:
        finals = [w.at for w in self.writes if w.final]
        return max(finals) if finals else None

    @property
    def edits(self) -> int:
        return sum(1 for w in self.writes if w.kind == "edit")
