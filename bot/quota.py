"""Turns per minute for each person and each channel, shared by every bot process."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bot.errors import FailureKind, ReplyFailure
from bot.store import HistoryStore

WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class TurnQuota:
    """`per_user` and `per_channel` turns in any minute (0: no limit). A turn over either limit is
    refused before the model is asked or anything is stored."""

    store: HistoryStore
    per_user: int = 0
    per_channel: int = 0

    async def check(self, platform: str, user: str, channel: str) -> None:
        if self.per_user:
            await self._take(f"user:{platform}:{user}", self.per_user, "You're")
        if self.per_channel and channel:
            await self._take(f"channel:{platform}:{channel}", self.per_channel, "This channel is")

    async def _take(self, key: str, limit: int, who: str) -> None:
        wait = await self.store.take_slot(key, limit, WINDOW_SECONDS)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ReplyFailure(
                FailureKind.QUOTA,
                f"{key} over {limit} turns per minute",
                reason=f"{who} sending messages faster than I can answer ({limit} a minute). "
                f"Please wait {seconds} s and ask again.",
            )
