"""/forget-me on Slack: whoever runs it has what the bot keeps about them in this workspace deleted
(adapters.jobs.forget_me; a user id may repeat in another workspace, whose data stays), and is told what went
through the command's own response_url (`respond`, bolt's per request, so each workspace's): only they see it."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from adapters.jobs.forget_me import forget_me
from bot.core import ChatCore
from bot.forget import scope_of

NAME = "slack"


class ForgetCommand:
    def __init__(self, core: ChatCore) -> None:
        self._core = core

    def register(self, app: AsyncApp) -> None:
        app.command("/forget-me")(self._on_forget)

    async def _on_forget(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        # Acknowledged at once (Slack waits 3 s at most): an answer being written in one of their conversations is
        # stored first, then deleted, which may take longer.
        await ack()
        said = await forget_me(self._core, scope_of(NAME, command.get("team_id", "")), command["user_id"])
        await respond(text=said, response_type="ephemeral", replace_original=False)
