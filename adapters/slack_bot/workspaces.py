"""Web API clients by workspace, for work no request brings a client for (finishing a reply a restart
interrupted). With one SLACK_BOT_TOKEN that is its client; with installs to many workspaces, one made
from the workspace's install, its token refreshed first when it is about to expire (as bolt does for
an event)."""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackTokenRotationError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_bot.installations import RedisInstallationStore
from adapters.slack_bot.oauth import ROTATION_MINUTES
from adapters.slack_bot.rotation import SharedTokenRotator


class BotClients:
    def __init__(
        self,
        base: AsyncWebClient,
        installations: RedisInstallationStore | None = None,
        rotator: SharedTokenRotator | None = None,
    ) -> None:
        self._base = base
        self._installations = installations
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
        if self._installations is None:
            return self._base
        enterprise, org_wide = where.get("enterprise") or None, bool(where.get("org_wide"))
        bot = await self._installations.async_find_bot(
            enterprise_id=enterprise, team_id=where.get("team") or None, is_enterprise_install=org_wide
        )
        if bot is None:
            return None
        if self._rotator is not None and bot.bot_refresh_token:
            try:
                refreshed = await self._rotator.perform_bot_token_rotation(
                    bot=bot, minutes_before_expiration=ROTATION_MINUTES
                )
            except SlackTokenRotationError:
                return None  # logged by the rotator
            bot = refreshed or bot
        return self.with_token(bot.bot_token)
