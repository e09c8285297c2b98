"""What the app's parts (the commands, the assistant panel, the Home tab, the channel reader) use
of the app that builds them (bot.py). They are given it as these protocols and never import the
app, so imports run one way: from bot.py to its parts."""

from __future__ import annotations

from typing import Any, Protocol

from slack_sdk.web.async_client import AsyncWebClient

from adapters.shared.files.attachments import Attachment
from adapters.shared.platform_jobs import PlatformJobs, Pointed
from adapters.slack_bot.reply.surfaces import Place, Reach, WorkspaceBudgets
from adapters.slack_bot.settings import SlackSettings


class Workspace(Protocol):
    """Slack as the parts reach it: the workspace's rate limits and people's names. Each request brings
    its own Web API client (Reach, Place): with installs to many workspaces, each has its own token."""

    def budgets(self, team: str) -> WorkspaceBudgets: ...

    async def display_name_of(self, client: AsyncWebClient, team: str, user: str) -> str: ...


class Answerer(Workspace, Protocol):
    """Who may ask, and a question answered in a place, as the app does for a mention."""

    @property
    def jobs(self) -> PlatformJobs: ...

    @property
    def settings(self) -> SlackSettings: ...

    def allowed(self, user: str, channel: str) -> bool: ...

    def refusal(self) -> str: ...

    async def refuse(self, place: Place) -> None: ...

    async def tell_privately(
        self, client: AsyncWebClient, channel: str, user: str, text: str, thread_ts: str | None = None
    ) -> None: ...

    def attachment(self, reach: Reach, file: dict[str, Any]) -> Attachment: ...

    async def answer(
        self,
        place: Place,
        text: str,
        attachments: list[Attachment],
        *,
        about: Pointed | None = None,
        asked: str | None = None,
    ) -> None: ...
