"""The 👍 / 👎 buttons under an answer, as Block Kit, and Still need help? where the answer is in a help channel with
helpers (their clicks: adapters.slack_bot.buttons.votes)."""

from __future__ import annotations

from typing import Any

VOTE_UP, VOTE_DOWN, STILL_NEED_HELP = "vote_up", "vote_down", "still_need_help"
# What an answer's votes say besides its id (which holds no space) when it carries Still need help? too.
WITH_HELP = " +help"


def with_help(answer: str) -> str:
    """The votes of the answer to `answer`, with Still need help?."""
    return answer + WITH_HELP


def vote_actions(votes: str) -> dict[str, Any]:
    """The buttons under the answer whose votes are `votes` (its id, perhaps `with_help`)."""
    answer = votes.removesuffix(WITH_HELP)

    def button(action: str, emoji: str, label: str) -> dict[str, Any]:
        text = {"type": "plain_text", "text": emoji, "emoji": True}
        return {"type": "button", "action_id": action, "text": text, "value": answer, "accessibility_label": label}

    return {
        "type": "actions",
        "block_id": "votes",
        "elements": [button(VOTE_UP, "👍", "Good answer"), button(VOTE_DOWN, "👎", "Bad answer")]
        + ([button(STILL_NEED_HELP, "Still need help?", "Ask a person")] if votes.endswith(WITH_HELP) else []),
    }
