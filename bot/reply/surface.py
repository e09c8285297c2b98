"""What an adapter gives the core to show one reply on: the platform's limits, and posting and editing a message there.
A surface keeps within its platform's rate limits itself: an interim edit it can't show now raises `EditSkipped`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from bot.reply.split import Measure, char_length


@dataclass(frozen=True)
class SurfaceLimits:
    max_length: int
    measure: Measure = char_length
    indicator: str = " ▌"  # shown after the text while the model is still writing
    min_edit_interval: float = 1.0  # per reply, on top of the platform's rate limits
    line_prefix: str = ""  # before each line about a tool call (Discord's "-# " shows it small)
    # "Thinking… N s" after the text while a model thinks; False where the waiting indicator says it (a Slack
    # stream, whose text can only grow)
    thinking_status: bool = True


class ReplySurface(Protocol):
    """Where one reply is shown. Handles are whatever the platform needs to edit a message."""

    limits: SurfaceLimits

    async def show_waiting(self) -> None:
        """Show that an answer is coming (typing indicator, status); may run until cancelled. Called as soon as the
        model has been asked, and cancelled when the first text is posted: a surface that shows nothing for quick
        answers waits inside this call."""

    async def begin(self) -> bool:
        """Called when the first text arrives: True to stream the reply live, False to post it whole at the end (the
        platform can't promise its final edit a slot now)."""

    async def post(self, text: str, *, final: bool) -> Any: ...

    async def edit(self, handle: Any, text: str, *, final: bool) -> None:
        """Raises EditSkipped for an interim edit that can't be shown now."""

    async def end(self) -> None:
        """The reply is done (its final text landed, or it failed)."""

    def model_line(self, model: str, *, first_reply: bool) -> str:
        """A line for the end of the final text naming the model that answers, or "" where the platform shows it
        another way (or has no room for it)."""


@runtime_checkable
class RedrawnSurface(Protocol):
    """A surface whose platform draws the conversation again from its history (the web page after a reload)."""

    def kept_view(self, before: str) -> dict[str, Any]:
        """What to keep with the stored answer to draw it again as it was shown (see StoredMessage.view); `before`:
        what the reply showed before the answer, no part of it (a thought quoted in full)."""


def kept_view(surface: ReplySurface, before: str) -> dict[str, Any]:
    return surface.kept_view(before) if isinstance(surface, RedrawnSurface) else {}


class EditSkipped(Exception):
    """An interim edit found no write to spare: the text is not shown yet, and the renderer tries again shortly."""
