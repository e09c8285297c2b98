"""Top-level channel messages nobody addressed to the bot, in a channel set to answer without a mention (`/respond
questions|all`): the core decides whether each gets an answer (bot.respond.decision); one that does is answered in its
thread, as a mention is, if its first message can be posted within RESPOND_MAX_DELAY_SECONDS of the message; past the
quota the person is told once, privately."""

from __future__ import annotations

import re
import time
from typing import Any, Protocol

import structlog

from adapters.shared.place_settings import respond_mode
from adapters.shared.platform_jobs import Kept
from adapters.shared.ratelimit import Write
from adapters.slack_bot.knowledge.state import SlackKnowledge
from adapters.slack_bot.places.message_places import slack_places
from adapters.slack_bot.ports import Answerer
from adapters.slack_bot.reply.surfaces import Place, Reach
from bot.core import Turn
from bot.errors import FailureKind, ReplyFailure
from bot.knowledge.passages import Access
from bot.reply.render import failure_note
from bot.respond.decision import SKIP_LATE, SKIP_QUOTA, Decision, RespondMode, Unprompted
from bot.state.forget import scope_of
from bot.usage.accounting import payer_of

log = structlog.get_logger(__name__)

# Mentions of people, user groups and the whole channel: none of them is something to answer.
_ANY_MENTION = re.compile(r"<[@!][^>]*>")
_PERSON = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")


class UnaskedHost(Answerer, Protocol):
    @property
    def knowledge(self) -> SlackKnowledge: ...

    async def first_delivery(self, body: dict[str, Any]) -> bool: ...

    async def access_of(self, reach: Reach, user: str, place: str) -> Access | None: ...

    async def answer_unasked(
        self, reach: Reach, event: dict[str, Any], decision: Decision, arrived: float, first_post: Write
    ) -> None: ...

    async def kept(self, place: Place, asked: str) -> Kept: ...


def to_someone_else(event: dict[str, Any], bot_user_id: str) -> bool:
    """A message that mentions other people and not the bot (Slack has no replies to one message in a thread)."""
    mentioned = set(_PERSON.findall(str(event.get("text", ""))))
    return bool(mentioned) and bot_user_id not in mentioned


class UnaskedAnswers:
    def __init__(self, host: UnaskedHost) -> None:
        self._host = host
        self._responder = host.jobs.core.responder

    async def consider(self, reach: Reach, body: dict[str, Any], event: dict[str, Any], arrived: float) -> None:
        """Answer the message if its channel answers without a mention and the core decides it should."""
        host, channel, user = self._host, str(event["channel"]), str(event["user"])
        try:
            mode = await respond_mode(host.jobs.core, slack_places(reach.team, channel))
        except ReplyFailure:
            return  # Redis is out of reach: mentions are still answered (and told why they can't be)
        if mode is RespondMode.MENTIONS or not host.allowed(user, channel) or not await host.first_delivery(body):
            return
        unprompted = Unprompted(
            "slack",
            f"{reach.team}:{channel}",
            str(event.get("ts", "")),
            _ANY_MENTION.sub("", str(event.get("text", ""))).strip(),
            to_someone_else=to_someone_else(event, reach.bot_user_id),
            files=len(event.get("files", [])),
            payer=payer_of("slack", scope_of("slack", reach.team), user, slack_places(reach.team, channel)),
        )
        decision = await self._responder.decide(unprompted, mode, lambda: host.access_of(reach, user, channel))
        if decision.unanswerable:
            await self._note_gap(reach, event)
        if not decision.answer:
            return
        asker = Turn("", user, "", "", channel=f"{reach.team}:{channel}", workspace=reach.team)
        try:
            await host.jobs.core.admit(asker)
        except ReplyFailure as failure:
            await self._over_quota(reach, channel, user, failure)
            return
        # The answer's first message takes its place in the channel's posts now, or never: a burst bigger than the
        # channel's pace leaves its last messages unanswered rather than answered late.
        budgets = host.budgets(reach.team)
        within = arrived + self._responder.max_delay_seconds - time.monotonic()
        first_post = await budgets.limits.reserve((budgets.posts(channel),), within)
        if first_post is None:
            self._responder.dropped("slack", SKIP_LATE)
            log.info("unasked_message_too_late", channel=channel, ts=event.get("ts"))
            return
        await host.answer_unasked(reach, event, decision, arrived, first_post)

    async def _note_gap(self, reach: Reach, event: dict[str, Any]) -> None:
        """A question the bot stayed silent on, for `/knowledge gaps`."""
        place = reach.place(str(event["channel"]), str(event["ts"]), str(event["user"]))
        kept = await self._host.kept(place, str(event["ts"]))
        try:
            await self._host.jobs.feedback.note_unanswered(
                kept.scope, str(event.get("text", "")), kept.link, kept.asker, kept.channel, time.time()
            )
        except ReplyFailure:
            log.warning("unanswered_question_not_noted", channel=place.channel)

    async def _over_quota(self, reach: Reach, channel: str, user: str, failure: ReplyFailure) -> None:
        self._responder.dropped("slack", SKIP_QUOTA if failure.kind is FailureKind.QUOTA else failure.kind.name)

        async def tell() -> None:
            await self._host.tell_privately(reach.client, channel, user, failure_note(failure))

        await self._host.jobs.refuse_once(f"slack:unasked:{reach.team}:{user}", tell)
