"""What one model stream sent so far, as the inference backend reads it: whether anything, its finish reason, its
tool calls, its usage, and whether its budget stopped it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.model.tool_calls import CallGatherer
from bot.usage.meter import OutputGuard, UsageMeter


class StreamRead:
    """What one stream sent so far: whether anything, its finish reason, its tool calls, its usage (the provider's,
    else what it wrote, for the tokenizer), and whether its budget stopped it."""

    def __init__(self, meter: UsageMeter | None) -> None:
        self.meter = meter
        self.sent_any = False
        self.finish_reason: str | None = None
        self.calls = CallGatherer()
        self.reported: tuple[int, int] | None = None
        self.stopped = False
        self._guard = OutputGuard(meter)
        self._written: list[str] = []
        self._counted = False

    def usage(self, usage: Any) -> None:
        if usage is not None and getattr(usage, "prompt_tokens", None) is not None:
            self.reported = (int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0))

    def wrote(self, text: str) -> None:
        self.sent_any = True
        if self.meter is not None:
            self._written.append(text)

    def wrote_calls(self, calls: Sequence[Any]) -> None:
        """Tool calls' pieces: their arguments are tokens the model wrote."""
        self.wrote("".join(str(call.function.arguments or "") for call in calls if getattr(call, "function", None)))

    def over_budget(self, piece: str) -> bool:
        self.stopped = self._guard.stops(piece)
        return self.stopped

    def count(self, model: str, messages: Sequence[dict[str, Any]]) -> None:
        """Add the call to the meter once: as reported, else as the tokenizer counts it (nothing if nothing was
        sent: the request failed before the model read it, or was refused)."""
        if self.meter is None or self._counted:
            return
        self._counted = True
        if self.reported is not None:
            prompt, completion = self.reported
            self.meter.add(model, prompt, completion if not self.stopped else max(completion, self._guard.pieces))
        elif self.sent_any:
            self.meter.estimate(model, messages, "".join(self._written))
