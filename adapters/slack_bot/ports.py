"""What the app's parts (the commands, the assistant panel, the Home tab, the channel reader) use
of the app that builds them (bot.py). They are given it as these protocols and never import the
app, so imports run one way: from bot.py to its parts."""

from __future__ import annotations

from typing import Any, Protocol

from slack_sdk.web.async_client import AsyncWebClient

from adapters.jobs.attachments import Attachment
from adapters.jobs.platform_jobs import PlatformJobs, Pointed
from adapters.slack_bot.settings import SlackSettings
from adapters.slack_bot.surfaces import Place, WorkspaceBudgets


class Workspace(Protocol):
    """Slack as the parts reach it: the Web API client, the bot's own user, the workspace's rate
    limits and people's names."""

    @property
    def client(self) -> AsyncWebClient: ...

    @property
    def bot_user_id(self) -> str:
        """Known once the app has started (after the parts are built): read when an event comes."""
        ...

    def budgets(self, team: str) -> WorkspaceBudgets: ...

    async def display_name_of(self, team: str, user: str) -> str: ...


class Answerer(Workspace, Protocol):
    """Who may ask, and a question answered in a place, as the app does for a mention."""

    @property
    def jobs(self) -> PlatformJobs: ...

    @property
    def settings(self) -> SlackSettings: ...

    def allowed(self, user: str, channel: str) -> bool: ...

    def refusal(self) -> str: ...

    async def refuse(self, place: Place) -> None: ...

    async def tell_privately(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> None: ...

    def attachment(self, file: dict[str, Any]) -> Attachment: ...

    async def answer(
        self, place: Place, text: str, attachments: list[Attachment], *, about: Pointed | None = None
    ) -> None: ...
