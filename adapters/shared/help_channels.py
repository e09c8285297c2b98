"""Messages nobody addressed to the bot, in a channel set to answer without a mention (`/respond questions|all`), one
flow for every platform: the core decides whether each gets an answer (bot.respond.decision); one that does is
answered as a mention is, if its answer can start within RESPOND_MAX_DELAY_SECONDS of the message; past the quota the
person is told once, privately; a question the bot could not answer is noted for `/knowledge gaps`, and one the
knowledge covers only weakly is handed to the channel's helpers where there are (adapters.shared.helpdesk), or answered
as before when there are none or they can't be called. The platform gives each message as an `UnaskedMessage`: who may
ask there, its claim, its words for the decision, the rate limits its answer's first write spends, how its answer
starts, and its thread as the helpers get it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Protocol

import structlog

from adapters.shared.helpdesk.calling import HelperCall, Outcome, call_helpers, helpers_of
from adapters.shared.place_settings import respond_mode
from adapters.shared.platform_jobs import Kept, PlatformJobs
from adapters.shared.ratelimit import Budgets, RateLimits, Write
from bot.core import Turn
from bot.errors import FailureKind, ReplyFailure
from bot.knowledge.passages import Access
from bot.reply.render import failure_note
from bot.respond.decision import ANSWER_KNOWN, SKIP_LATE, SKIP_QUOTA, SKIP_WEAK, Decision, RespondMode, Unprompted
from bot.state.personas import Place

log = structlog.get_logger(__name__)


class UnaskedMessage(Protocol):
    """One unaddressed message, as its platform gives it."""

    @property
    def places(self) -> Sequence[Place]:
        """Where its channel's settings come from (the channel, then the server or workspace)."""

    @property
    def text(self) -> str:
        """Its words as written, for `/knowledge gaps`."""

    @property
    def refusal_key(self) -> str:
        """Whose quota notice this is: the person is told once per key."""

    def allowed(self) -> bool:
        """Whether its author may ask the bot here (someone who asked nothing is never told they may not)."""

    async def first_delivery(self) -> bool:
        """Whether this process is the first to see the message (one answer, however many processes run)."""

    def unprompted(self) -> Unprompted:
        """The message as the decision reads it."""

    async def access(self) -> Access | None:
        """What its author may be answered from."""

    def asker(self) -> Turn:
        """Its author's turn, to take the quota before any answer."""

    async def kept(self) -> Kept:
        """Where a note about it is kept (scope, link, asker, channel)."""

    async def tell_privately(self, note: str) -> None:
        """Tell its author `note` where only they see it."""

    def first_write(self) -> tuple[RateLimits, Budgets]:
        """The rate-limit buckets its answer's first write spends (the thread it opens, or its first post)."""

    async def answer(self, decision: Decision, arrived: float, first: Write) -> None:
        """Start its answer, its first write taking the slot `first`."""

    def helper_call(self) -> HelperCall:
        """Its thread (opened on the first post if need be), to hand to the channel's helpers."""


class HelpChannels:
    def __init__(self, jobs: PlatformJobs, platform: str) -> None:
        self._jobs = jobs
        self._platform = platform
        self._responder = jobs.core.responder

    async def consider(self, message: UnaskedMessage, arrived: float) -> None:
        """Answer `message` if its channel answers without a mention and the core decides it should.

        Who may ask is checked before the message is claimed: the check is local and every process makes the same
        one, so a claim (a Redis write) is spent only on a message that could be answered."""
        try:
            mode = await respond_mode(self._jobs.core, message.places)
        except ReplyFailure:
            return  # Redis is out of reach: mentions are still answered (and told why they can't be)
        if mode is RespondMode.MENTIONS or not message.allowed():
            return
        unprompted = message.unprompted()
        if not await message.first_delivery():
            # Another process (or an earlier delivery) has it: said, so that the silence here is seen as a choice.
            log.debug(
                "respond_claimed_elsewhere",
                platform=unprompted.platform,
                channel=unprompted.channel,
                message=unprompted.message,
            )
            return
        decision = await self._responder.decide(unprompted, mode, message.access, partial(self._has_helpers, message))
        asked_at = time.time() - (time.monotonic() - arrived)
        if decision.unanswerable:
            await self._note_gap(message)
        if decision.reason == SKIP_WEAK:
            if await self._hand_off(message):
                await self._count(message, asked_at, "handed")
                return
            decision = replace(decision, answer=True, reason=ANSWER_KNOWN)  # nobody could be called: as before
        if not decision.answer:
            if decision.unanswerable:
                await self._count(message, asked_at, "unanswered")
            return
        try:
            await self._jobs.core.admit(message.asker())
        except ReplyFailure as failure:
            await self._over_quota(message, failure)
            return
        # Its answer starts if its first write gets a slot in time: a burst bigger than the channel's pace leaves its
        # last messages unanswered rather than answered late.
        limits, buckets = message.first_write()
        first = await limits.reserve(buckets, arrived + self._responder.max_delay_seconds - time.monotonic())
        if first is None:
            self._responder.dropped(self._platform, SKIP_LATE)
            log.info("unasked_message_too_late", channel=unprompted.channel, message=unprompted.message)
            return
        await message.answer(decision, arrived, first)
        await self._count(message, asked_at, "answered")

    async def _count(self, message: UnaskedMessage, asked_at: float, outcome: str) -> None:
        """The question in the help desk's figures: "answered", "handed" or "unanswered"."""
        unprompted, kept = message.unprompted(), await message.kept()
        try:
            await self._jobs.desk.asked(
                kept.scope, unprompted.channel, unprompted.message, asked_at, outcome, time.time()
            )
        except ReplyFailure:
            log.warning("help_desk_question_not_counted", channel=unprompted.channel)

    async def _note_gap(self, message: UnaskedMessage, *, handed_off: bool = False) -> None:
        """A question the bot stayed silent on, or handed to people, for `/knowledge gaps`."""
        kept = await message.kept()
        note = self._jobs.feedback.note_handed_off if handed_off else self._jobs.feedback.note_unanswered
        try:
            await note(kept.scope, message.text, kept.link, kept.asker, kept.channel, time.time())
        except ReplyFailure:
            log.warning("unanswered_question_not_noted", channel=kept.channel)

    async def _has_helpers(self, message: UnaskedMessage) -> bool:
        try:
            return bool(await helpers_of(self._jobs.core, message.places))
        except ReplyFailure:
            return False  # the question is answered as before

    async def _hand_off(self, message: UnaskedMessage) -> bool:
        """A question the knowledge covers only weakly: its helpers, where there are, instead of a guess. False when
        they couldn't be called (a deleted role, the hour's mentions spent, helpers just cleared, Redis out of reach):
        it is answered as before."""
        try:
            outcome = await call_helpers(self._jobs, message.helper_call())
        except ReplyFailure:
            outcome = None
        log.info("weak_question_handed_off", outcome=outcome.value if outcome else "store_unavailable")
        if outcome is Outcome.CALLED:
            await self._note_gap(message, handed_off=True)
        return outcome in (Outcome.CALLED, Outcome.BEFORE)

    async def _over_quota(self, message: UnaskedMessage, failure: ReplyFailure) -> None:
        self._responder.dropped(self._platform, SKIP_QUOTA if failure.kind is FailureKind.QUOTA else failure.kind.name)

        async def tell() -> None:
            await message.tell_privately(failure_note(failure))

        await self._jobs.refuse_once(message.refusal_key, tell)
