"""Handing a help channel's thread to its helpers, one flow for every platform: after a 👎 on an answer, on "Still need
help?" under it, or for a question the knowledge covers only weakly. The helpers are mentioned once per thread, at most
HELPERS_PINGS_PER_HOUR times an hour per channel (adapters.shared.handoffs), in one line saying a person will
look; from then on, and once a helper has written in the thread, the bot stays out of it unless it is mentioned. The
platform gives the thread as a `HelperCall`: its places, how it mentions the helpers and how it posts there."""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from typing import Protocol

import structlog

from adapters.shared.handoffs import Handed
from adapters.shared.place_settings import respond_mode
from adapters.shared.platform_jobs import PlatformJobs
from bot.core import ChatCore
from bot.errors import ReplyFailure
from bot.respond.decision import RespondMode
from bot.state.personas import Place

log = structlog.get_logger(__name__)

NOBODY = "none"
HANDED_LINE = "{mention} this thread needs a person: someone from the team will look at it."
NO_HELPERS = (
    "Nobody is set to help in this channel, so no person was called. Try asking again in other words, or ask an "
    "admin to name helpers with /respond helpers."
)
CALLED = "Done: the channel's helpers were called, and a person will look at this thread."
CALLED_BEFORE = "The helpers were already called for this thread: a person will look at it."
LIMITED = (
    "The helpers were called {count} times this hour already, so they weren't called again: they will see this thread "
    "when they next look at the channel."
)
UNREACHABLE = (
    "This channel's helpers can't be mentioned (their role or group is gone, or isn't people's), so no person was "
    "called: an admin needs to name them again with /respond helpers."
)


class Outcome(enum.Enum):
    CALLED = "called"
    BEFORE = "before"
    LIMITED = "limited"
    NO_HELPERS = "no_helpers"
    UNREACHABLE = "unreachable"


class HelperCall(Protocol):
    """A help channel's thread to hand to its helpers, as its platform gives it."""

    @property
    def places(self) -> Sequence[Place]:
        """Where the helpers are set (the channel, then the server or workspace)."""

    @property
    def channel(self) -> str:
        """The help channel, whose helpers' mentions are counted."""

    @property
    def thread(self) -> str:
        """The thread handed off (a Discord thread's id, a Slack thread's ts)."""

    async def mention(self, helpers: tuple[str, ...]) -> str:
        """How the helpers are mentioned there; raises `Unreachable` (saying why) when they can't be."""

    async def post(self, text: str, helpers: tuple[str, ...]) -> None:
        """Post `text` in the thread, mentioning the helpers and nobody else."""

    async def tell_admins(self, note: str) -> None:
        """Tell someone who can fix the helpers what is missing (privately, or in the log)."""


class Unreachable(Exception):
    """The helpers can't be mentioned: a deleted role, a user group the app can't mention…"""


async def helpers_of(core: ChatCore, places: Sequence[Place]) -> tuple[str, ...]:
    """The helpers' ids set for `places` (none without Redis settings); raises STORE_UNAVAILABLE."""
    if core.personas is None or not places:
        return ()
    ids, _ = await core.personas.helpers(places)
    return () if ids.strip() in ("", NOBODY) else tuple(ids.split())


async def offers_help(core: ChatCore, places: Sequence[Place]) -> bool:
    """Whether answers there carry Still need help?: a help channel (`/respond questions|all`) with helpers. Without
    Redis, no."""
    try:
        return await respond_mode(core, places) is not RespondMode.MENTIONS and bool(await helpers_of(core, places))
    except ReplyFailure:
        return False


async def call_helpers(jobs: PlatformJobs, call: HelperCall, answer: str | None = None) -> Outcome:
    """Hand the thread to its helpers if it wasn't before and the hour's mentions allow; what happened. `answer`: the
    answer under which a person was asked for, whose question `/knowledge gaps` then lists as handed to people.
    Raises STORE_UNAVAILABLE (a ReplyFailure) without Redis."""
    helpers = await helpers_of(jobs.core, call.places)
    if not helpers:
        return Outcome.NO_HELPERS
    try:
        mention = await call.mention(helpers)
    except Unreachable as why:
        await _say_once(jobs, call, str(why))
        return Outcome.UNREACHABLE
    handed = await jobs.handoffs.hand_off(call.channel, call.thread)
    if handed is Handed.LIMITED:
        log.info("helpers_call_limited", channel=call.channel, thread=call.thread)
        return Outcome.LIMITED
    if handed is Handed.BEFORE:
        return Outcome.BEFORE
    await call.post(HANDED_LINE.format(mention=mention), helpers)
    log.info("helpers_called", channel=call.channel, thread=call.thread)
    await _count_hand_off(jobs, call, answer)
    return Outcome.CALLED


def scope_of_places(places: Sequence[Place]) -> str:
    """The knowledge and feedback scope of the server or workspace among `places` ("discord:<guild>",
    "slack:<team>"), "" in a DM."""
    server = next((place for place in places if place.kind == "server"), None)
    return f"{server.platform}:{server.id}" if server is not None else ""


async def _count_hand_off(jobs: PlatformJobs, call: HelperCall, answer: str | None) -> None:
    """The hand-off in the help desk's figures and, for an answer's Still need help?, in the gaps list."""
    now = time.time()
    try:
        if scope := scope_of_places(call.places):
            await jobs.desk.handed(scope, call.channel, call.thread, now)
        info = await jobs.feedback.answer(answer) if answer else None
        if info is not None:
            await jobs.feedback.note_handed_off(info.scope, info.question, info.link, info.asker, info.channel, now)
    except ReplyFailure:
        log.warning("hand_off_not_counted", channel=call.channel, thread=call.thread)


def told(outcome: Outcome, jobs: PlatformJobs) -> str:
    """What the person who asked for a person is told, privately."""
    return {
        Outcome.CALLED: CALLED,
        Outcome.BEFORE: CALLED_BEFORE,
        Outcome.LIMITED: LIMITED.format(count=jobs.handoffs.per_hour),
        Outcome.NO_HELPERS: NO_HELPERS,
        Outcome.UNREACHABLE: UNREACHABLE,
    }[outcome]


async def _say_once(jobs: PlatformJobs, call: HelperCall, why: str) -> None:
    log.warning("helpers_unreachable", channel=call.channel, why=why)

    async def tell() -> None:
        await call.tell_admins(
            f"The bot couldn't call this channel's helpers ({why}): set them again with /respond helpers."
        )

    await jobs.refuse_once(f"helpdesk:unreachable:{call.channel}", tell)


async def stays_out(
    jobs: PlatformJobs, where: tuple[str, str, str], message: str, *, helper: bool, mentioned: bool = False
) -> bool:
    """Whether the bot stays out of a message in its thread: the thread was handed to the helpers, or a helper wrote
    there (`helper`: this message's author is one). `where`: the platform, the help channel and the thread. A
    mention brings it back. Logged as a decision, so that the silence is seen as one; without Redis the bot answers
    as before."""
    platform, channel, thread = where
    if mentioned:
        return False
    try:
        if helper:
            await jobs.handoffs.helper_wrote(channel, thread)
        reason = "helper_answering" if helper else await jobs.handoffs.theirs(channel, thread)
    except ReplyFailure:
        return False
    if reason is None:
        return False
    log.debug(
        "respond_decision", platform=platform, channel=channel, message=message, mode="thread", answer=False,
        reason=reason,
    )  # fmt: skip
    return True
