"""The 👍 / 👎 buttons under an answer, as Block Kit (their clicks: adapters.slack_bot.buttons.votes)."""

from __future__ import annotations

from typing import Any

VOTE_UP, VOTE_DOWN = "vote_up", "vote_down"


def vote_actions(answer: str) -> dict[str, Any]:
    """The buttons under the answer to `answer`."""

    def button(action: str, emoji: str, label: str) -> dict[str, Any]:
        text = {"type": "plain_text", "text": emoji, "emoji": True}
        return {"type": "button", "action_id": action, "text": text, "value": answer, "accessibility_label": label}

    return {
        "type": "actions",
        "block_id": "votes",
        "elements": [button(VOTE_UP, "👍", "Good answer"), button(VOTE_DOWN, "👎", "Bad answer")],
    }
