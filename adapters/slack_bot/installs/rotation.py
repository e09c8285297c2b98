"""Refreshing a workspace's rotating token, one process at a time.

Slack takes each refresh token once: when two processes of the bot refresh the same workspace's token at
the same moment, one gets `invalid_refresh_token`, bolt finds no token for its event, and that person's
question is dropped. So the refresh (bolt's own, through slack_sdk's AsyncTokenRotator) runs under a lock in
Redis per workspace: the first process refreshes and stores the new token before letting go; the others,
having waited, find it stored and use it.
"""

from __future__ import annotations

import time

import structlog
from redis.exceptions import LockError
from slack_sdk.errors import SlackTokenRotationError
from slack_sdk.oauth.installation_store.models import Bot
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_bot.installs.installations import NONE, RedisInstallationStore
from bot.state.redis_client import REDIS_ERRORS, RedisClient, hash_tag

log = structlog.get_logger(__name__)

LOCK_SECONDS = 30.0  # a refresh is one oauth.v2.access call (slack_sdk gives up after 30 s)
WAIT_SECONDS = 35.0  # how long a process waits for another's refresh before trying its own


class SharedTokenRotator(AsyncTokenRotator):
    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        client: AsyncWebClient,
        installations: RedisInstallationStore,
        redis: RedisClient,
        key_prefix: str,
    ) -> None:
        super().__init__(client_id=client_id, client_secret=client_secret, client=client)
        self._installations = installations
        self._redis = redis
        self._prefix = key_prefix

    async def current_bot(
        self, *, enterprise_id: str | None, team_id: str | None, org_wide: bool, minutes_before_expiration: int
    ) -> Bot | None:
        """The workspace's installed bot, its token refreshed first when it expires within
        `minutes_before_expiration`; None when the app is not installed there, or its token can't be refreshed."""
        bot = await self._installations.async_find_bot(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=org_wide
        )
        if bot is None:
            return None
        try:
            return (
                await self.perform_bot_token_rotation(bot=bot, minutes_before_expiration=minutes_before_expiration)
                or bot
            )
        except SlackTokenRotationError:
            return None  # logged below

    async def perform_bot_token_rotation(self, *, bot: Bot, minutes_before_expiration: int = 120) -> Bot | None:
        """The refreshed bot (stored already) when `bot`'s token expires within `minutes_before_expiration`,
        refreshed here or by another process meanwhile; None when it needn't be."""
        if not _expiring(bot, minutes_before_expiration):
            return None
        team = NONE if bot.is_enterprise_install else (bot.team_id or NONE)
        key = f"{self._prefix}slack:token-refresh:{hash_tag(f'{bot.enterprise_id or NONE}:{team}')}"
        lock = self._redis.lock(key, timeout=LOCK_SECONDS, blocking_timeout=WAIT_SECONDS, thread_local=False)
        try:
            held = await lock.acquire()
        except REDIS_ERRORS as error:  # Redis out of reach: refresh alone (the install can't be read anyway)
            log.warning("slack_token_refresh_unlocked", error=type(error).__name__)
            held = False
        try:
            stored = await self._installations.async_find_bot(
                enterprise_id=bot.enterprise_id, team_id=bot.team_id, is_enterprise_install=bot.is_enterprise_install
            )
            if stored is not None and stored.bot_token != bot.bot_token and not _expiring(stored, 0):
                return stored  # refreshed by another process while this one waited
            refreshed = await super().perform_bot_token_rotation(
                bot=stored or bot, minutes_before_expiration=minutes_before_expiration
            )
            if refreshed is not None:
                await self._installations.async_save_bot(refreshed)  # before the others may look
                log.info("slack_token_refreshed", team=bot.team_id, enterprise=bot.enterprise_id)
            return refreshed
        except SlackTokenRotationError as error:
            log.error("slack_token_not_refreshed", team=bot.team_id, error=str(error.api_error.response.get("error")))
            raise
        finally:
            if held:
                try:
                    await lock.release()
                except LockError:
                    pass  # its lease lapsed: another process may be refreshing already, harmlessly
                except REDIS_ERRORS:
                    pass  # it lapses by itself


def _expiring(bot: Bot, minutes: int) -> bool:
    return bot.bot_token_expires_at is not None and bot.bot_token_expires_at <= time.time() + minutes * 60
