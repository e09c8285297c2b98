"""Whether a turn is taken at all, before anything is stored: not while the bot shuts down, nor past the person's or
the channel's questions per minute; and how a turn that isn't is answered."""

from __future__ import annotations

from dataclasses import replace

import structlog

from bot.errors import FailureKind, ReplyFailure, failing
from bot.reply.render import LiveRenderer, RenderResult
from bot.reply.surface import ReplySurface
from bot.state.coordination import TurnQuota
from bot.turn.message import Turn
from bot.turn.text import clean_question

log = structlog.get_logger(__name__)


class Admission:
    def __init__(self, quota: TurnQuota) -> None:
        self.quota = quota
        self._draining = False

    def stop_taking_turns(self) -> None:
        """From now on a turn gets a short "restarting" note instead of an answer."""
        self._draining = True

    async def admit(self, turn: Turn) -> Turn:
        """The turn with its text cleaned, or why it is refused (raises ReplyFailure)."""
        if self._draining:
            raise ReplyFailure(FailureKind.RESTARTING, "shutting down")
        cleaned = turn if turn.again else replace(turn, text=clean_question(turn.text))
        if not turn.admitted:
            await self.quota.check(turn.quota_scope, turn.author_id, turn.channel)
        return cleaned


async def refuse(turn: Turn, surface: ReplySurface, failure: ReplyFailure) -> RenderResult:
    """The turn answered with why it is not answered (with its own notices)."""
    log.warning("turn_refused", thread=turn.thread, kind=failure.kind.name, detail=failure.detail)
    return await LiveRenderer(surface, notices=turn.notices).render(failing(failure))
