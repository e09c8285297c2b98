"""/forget-me on every platform (Discord's and Slack's command, the web page's Forget me button): what the bot keeps
about the person asking is deleted (bot.state.forget), and they alone are told what went, in the same words
everywhere."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.shared.feedback.records import Feedback
from bot.core import ChatCore
from bot.errors import ReplyFailure
from bot.state.forget import ForgetReport

NOTHING = "There was nothing of yours to delete: I keep no conversations or question counters of yours."
UNREACHABLE = (
    "I can't reach my memory right now, so I couldn't delete everything. Nothing is left half-deleted: "
    "try again in a moment to finish."
)


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def forgotten(report: ForgetReport) -> str:
    """What was deleted, as the person is told: "Deleted: 3 conversations of yours (2 DMs), your messages in 1
    shared thread, your question counters, and your usage records." (Where they asked keeps its totals, without
    them.)"""
    if report.nothing:
        return NOTHING
    parts = []
    if report.conversations:
        dms = f" ({_count(report.dms, 'DM', 'DMs')})" if report.dms else ""
        parts.append(f"{_count(report.conversations, 'conversation', 'conversations')} of yours{dms}")
    if report.shared:
        parts.append(f"your messages in {_count(report.shared, 'shared thread', 'shared threads')}")
    if report.counters:
        parts.append("your question counters")
    if report.usage_days:
        parts.append("your usage records")
    listed = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])}{',' if len(parts) > 2 else ''} and {parts[-1]}"
    return f"Deleted: {listed}."


async def forget_me(core: ChatCore, scope: str, user: str, threads: Sequence[str] = ()) -> str:
    """Delete what is kept about `user` of `scope` (a turn's quota_scope; see bot.state.forget.scope_of) and `threads`
    known to be theirs; the sentence they are shown, a failure's too."""
    try:
        return forgotten(await core.forget_person(scope, user, threads))
    except ReplyFailure:
        return UNREACHABLE


FEEDBACK = "your votes on answers, and your questions kept for the admins' list of what the bot couldn't answer"


async def with_feedback(said: str, feedback: Feedback, person: str) -> str:
    """/forget-me's sentence once `person`'s votes and gap entries (adapters.shared.feedback.records) are deleted
    too."""
    try:
        removed = await feedback.forget_person(person)
    except ReplyFailure:
        return UNREACHABLE if said == NOTHING else f"{said} {UNREACHABLE}"
    if not removed:
        return said
    return f"Deleted: {FEEDBACK}." if said == NOTHING else f"{said} Also deleted: {FEEDBACK}."
