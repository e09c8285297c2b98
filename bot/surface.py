"""What an adapter gives the core to show one reply on: the platform's limits, posting and
editing a message, and the write budgets those spend (see bot.budget)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bot.budget import Budgets
from bot.split import Measure, char_length


@dataclass(frozen=True)
class SurfaceLimits:
    max_length: int
    measure: Measure = char_length
    indicator: str = " ▌"  # shown after the text while the model is still writing
    min_edit_interval: float = 1.0  # per reply, on top of the shared write budgets


class ReplySurface(Protocol):
    """Where one reply is shown. Handles are whatever the platform needs to edit a message."""

    limits: SurfaceLimits
    post_budgets: Budgets
    edit_budgets: Budgets

    async def show_waiting(self) -> None:
        """Show that an answer is coming (typing indicator, status); may run until cancelled.

        Called as soon as the model has been asked, and cancelled when the first text is
        posted: a surface that shows nothing for quick answers waits inside this call.
        """
        ...

    async def post(self, text: str, *, final: bool) -> Any: ...

    async def edit(self, handle: Any, text: str, *, final: bool) -> None:
        """Raises EditSkipped for an interim edit it found no write of its own budgets for."""
        ...


class EditSkipped(Exception):
    """Raised by a surface that spends a budget of its own when an interim edit found none to
    spare: the text is not shown yet, and the renderer tries again shortly."""
