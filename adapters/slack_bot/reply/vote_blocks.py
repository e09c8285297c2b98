"""The 👍 / 👎 buttons under an answer, as Block Kit; Still need help? where the answer is in a help channel with
helpers, and Solved in any help channel's thread (their clicks: adapters.slack_bot.buttons.votes and .solved)."""

from __future__ import annotations

from typing import Any

VOTE_UP, VOTE_DOWN, STILL_NEED_HELP, SOLVED = "vote_up", "vote_down", "still_need_help", "solved"
# What an answer's votes say besides its id (which holds no space): Still need help? and Solved under it too.
WITH_HELP, IN_HELP_CHANNEL = " +help", " +solved"


def with_help(votes: str) -> str:
    """The votes `votes`, with Still need help?."""
    return votes + WITH_HELP


def in_help_channel(votes: str) -> str:
    """The votes `votes`, with Solved."""
    return votes + IN_HELP_CHANNEL


def vote_actions(votes: str) -> dict[str, Any]:
    """The buttons under the answer whose votes are `votes` (its id, perhaps `with_help`, `in_help_channel`)."""
    answer, *marks = votes.split(" ")

    def button(action: str, emoji: str, label: str) -> dict[str, Any]:
        text = {"type": "plain_text", "text": emoji, "emoji": True}
        return {"type": "button", "action_id": action, "text": text, "value": answer, "accessibility_label": label}

    helps = [button(STILL_NEED_HELP, "Still need help?", "Ask a person")] if WITH_HELP.strip() in marks else []
    solves = [button(SOLVED, "✅ Solved", "This answer solved it")] if IN_HELP_CHANNEL.strip() in marks else []
    return {
        "type": "actions",
        "block_id": "votes",
        "elements": [button(VOTE_UP, "👍", "Good answer"), button(VOTE_DOWN, "👎", "Bad answer"), *helps, *solves],
    }
