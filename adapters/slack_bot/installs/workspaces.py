"""Web API clients by workspace, for work no request brings a client for (finishing a reply a restart
interrupted). With one SLACK_BOT_TOKEN that is its client; with installs to many workspaces, one made
from the workspace's install, its token refreshed first when it is about to expire (as bolt does for
an event)."""

from __future__ import annotations

from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_bot.installs.oauth import ROTATION_MINUTES
from adapters.slack_bot.installs.rotation import SharedTokenRotator


class BotClients:
    def __init__(self, base: AsyncWebClient, rotator: SharedTokenRotator | None = None) -> None:
        """`rotator`: the installs' (installs to many workspaces), None with one SLACK_BOT_TOKEN."""
        self._base = base
        self._rotator = rotator

    def with_token(self, token: str) -> AsyncWebClient:
        """A client for `token` sharing the base client's connections, retries and Slack URL."""
        base = self._base
        return AsyncWebClient(
            token=token,
            base_url=base.base_url,
            session=base.session,
            retry_handlers=list(base.retry_handlers),
            proxy=base.proxy,
            timeout=base.timeout,
        )

    async def of(self, where: dict[str, Any]) -> AsyncWebClient | None:
        """The client for the workspace a reply's `where` names (team, enterprise, org_wide); None when the
        app is no longer installed there."""
        if self._rotator is None:
            return self._base
        bot = await self._rotator.current_bot(
            enterprise_id=where.get("enterprise") or None,
            team_id=where.get("team") or None,
            org_wide=bool(where.get("org_wide")),
            minutes_before_expiration=ROTATION_MINUTES,
        )
        return None if bot is None else self.with_token(bot.bot_token)
