"""Web API clients by workspace, for work no request brings a client for (finishing a reply a restart
interrupted). With one SLACK_BOT_TOKEN that is its client; with installs to many workspaces, one made
from the workspace's install, its token refreshed first when it is about to expire (as bolt does for
an event). Every client is made from the base client: the one connection pool, slack_sdk's retries, each 429
counted."""

from __future__ import annotations

from typing import Any

import aiohttp
import structlog
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_bot.installs.oauth import ROTATION_MINUTES
from adapters.slack_bot.installs.rotation import SharedTokenRotator
from bot.metrics import Metrics

log = structlog.get_logger(__name__)

PLATFORM = "slack"  # its label in the metrics (the package's NAME, which this module can't import: it loads bot.py)


def base_client(token: str | None, api_url: str, session: aiohttp.ClientSession, metrics: Metrics) -> AsyncWebClient:
    """The Web API client the app's calls go through, and every workspace's client is made from: `session`'s
    connections, a connection error tried twice more and a 429 five times, after Slack's Retry-After."""
    return AsyncWebClient(
        token=token,
        base_url=api_url,
        session=session,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            CountedRateLimitRetryHandler(metrics, max_retry_count=5),
        ],
    )


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


class CountedRateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's own 429 handling (wait Retry-After, try again), with each 429 counted."""

    def __init__(self, metrics: Metrics, *, max_retry_count: int) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._metrics = metrics

    async def can_retry_async(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        if response is not None and response.status_code == 429:
            self._metrics.platform_rate_limited.labels(PLATFORM).inc()
            log.warning("slack_rate_limited", retry_after=_retry_after(response.headers))
        return await super().can_retry_async(state=state, request=request, response=response, error=error)


def _retry_after(headers: dict[str, Any]) -> str | None:
    """Slack's Retry-After, as slack_sdk hands a response's headers over (any case; each a list of values)."""
    value = next((value for name, value in headers.items() if name.lower() == "retry-after"), None)
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else str(value)
