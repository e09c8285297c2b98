"""/forget-me on Slack: whoever runs it has what the bot keeps about them in this workspace deleted
(adapters.shared.forget_me; a user id may repeat in another workspace, whose data stays), their messages in the
workspace's knowledge too (and the help threads they asked or answered are no longer solved), and is told what went
through the command's own response_url (`respond`, bolt's per request, so each workspace's): only they see it."""

from __future__ import annotations

from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp

from adapters.shared.feedback.records import Feedback
from adapters.shared.forget_me import NOTHING, UNREACHABLE, forget_me, with_feedback
from adapters.shared.helpdesk.solving import Solving
from adapters.slack_bot.knowledge.messages import scope_of as knowledge_scope
from adapters.slack_bot.knowledge.state import SlackKnowledge
from bot.core import ChatCore
from bot.state.forget import scope_of

NAME = "slack"
log = structlog.get_logger(__name__)


class ForgetCommand:
    def __init__(
        self,
        core: ChatCore,
        knowledge: SlackKnowledge | None = None,
        feedback: Feedback | None = None,
        solving: Solving | None = None,
    ) -> None:
        self._core = core
        self._knowledge = knowledge
        self._feedback = feedback
        self._solving = solving

    def register(self, app: AsyncApp) -> None:
        app.command("/forget-me")(self._on_forget)

    async def _on_forget(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        # Acknowledged at once (Slack waits 3 s at most): an answer being written in one of their conversations is
        # stored first, then deleted, which may take longer.
        await ack()
        team, user = command.get("team_id", ""), command["user_id"]
        said = await forget_me(self._core, scope_of(NAME, team), user)
        said = with_knowledge(said, await self._forget_knowledge(team, user))
        if self._feedback is not None:
            said = await with_feedback(said, self._feedback, f"slack:{team}:{user}")
        await respond(text=said, response_type="ephemeral", replace_original=False)

    async def _forget_knowledge(self, team: str, user: str) -> int | None:
        """How many of their indexed messages and solved help threads were removed; None when the knowledge
        couldn't be reached."""
        if self._knowledge is None:
            return 0
        try:
            solved = 0 if self._solving is None else await self._solving.forget_person([knowledge_scope(team)], user)
            return solved + await self._knowledge.forget_author(team, user)
        except Exception as error:  # noqa: BLE001 - the engine is down: they are told to try again
            log.error("slack_forget_knowledge_failed", team=team, error=f"{type(error).__name__}: {error}")
            return None


def with_knowledge(said: str, removed: int | None) -> str:
    """The sentence of /forget-me with what left the knowledge."""
    if removed is None:
        return UNREACHABLE if said == NOTHING else f"{said} {UNREACHABLE}"
    if not removed:
        return said
    messages = f"{removed} of your messages" if removed != 1 else "1 of your messages"
    if said == NOTHING:
        return f"Deleted: {messages} from this workspace's knowledge."
    return f"{said} Also removed: {messages} from this workspace's knowledge."
