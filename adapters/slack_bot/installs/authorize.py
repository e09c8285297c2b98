"""Each event's workspace, from its stored install: its bot token (refreshed first when it is about to expire,
see .rotation) and the bot's own ids, as bolt's listeners read them from the context.

Bolt's own AsyncInstallationStoreAuthorize calls auth.test for each token before it has cached one, so
after an install or a restart a burst of events in a workspace sends a burst of auth.test calls (over
that method's limit of 20) before any is acknowledged: 429s, acknowledgements past Slack's 3 s, and the
events sent again. The install already holds what auth.test would say (kept when the install was made),
so nothing is asked of Slack here. The app asks for no user scopes: there is no user token to find.
"""

from __future__ import annotations

from typing import Any

import structlog
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.context.async_context import AsyncBoltContext

from adapters.slack_bot.installs.rotation import SharedTokenRotator

log = structlog.get_logger(__name__)


class InstalledBotAuthorize(AsyncAuthorize):
    def __init__(self, rotator: SharedTokenRotator, rotation_minutes: int):
        super().__init__()  # type: ignore[no-untyped-call]  # slack_bolt leaves it unannotated
        self._rotator = rotator
        self._rotation_minutes = rotation_minutes

    async def __call__(
        self,
        *,
        context: AsyncBoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        **actor: Any,
    ) -> AuthorizeResult | None:
        bot = await self._rotator.current_bot(
            enterprise_id=enterprise_id,
            team_id=team_id,
            org_wide=bool(context.is_enterprise_install),
            minutes_before_expiration=self._rotation_minutes,
        )
        if bot is None:  # bolt then tells the person the install is no longer available
            log.warning("slack_event_not_authorized", enterprise=enterprise_id, team=team_id)
            return None
        return AuthorizeResult(
            enterprise_id=bot.enterprise_id,
            team_id=bot.team_id,
            bot_user_id=bot.bot_user_id,
            bot_id=bot.bot_id,
            bot_token=bot.bot_token,
            bot_scopes=bot.bot_scopes,
            user_id=user_id,
        )
