"""What a person is told, privately, when they vote on an answer: the same on every platform."""

from __future__ import annotations

from adapters.shared.feedback.records import VoteOutcome

GONE = "This answer can't take votes any more: it was deleted, or it is older than the bot keeps answers."
REASON_TITLE = "What was wrong with this answer?"
REASON_LABEL = "What was missing or wrong (optional)"
REASON_PLACEHOLDER = "Say what you expected, or what it got wrong: the team reads these to improve its answers."
REASON_THANKS = "Thanks: the team will see why."
REASON_MAX_CHARS = 1_000


def vote_reply(outcome: VoteOutcome, *, up: bool) -> str:
    if outcome.missing:
        return GONE
    mark = "👍" if up else "👎"
    if outcome.status == "unchanged":
        return f"You already voted {mark} on this answer."
    if outcome.status == "changed":
        return f"Changed your vote to {mark}."
    return f"Thanks for the {mark}."
