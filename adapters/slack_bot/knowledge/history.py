"""Slack's piece of reading a knowledge channel's history (adapters.shared.knowledge_sources.channel_history):
conversations.history a page at a time, newest first, each thread's replies with conversations.replies, up to
MAX_MESSAGES. Slack's limits are per workspace: a workspace's channels are one reading (one process at a time), at the
pace SLACK_HISTORY_TIER allows (1 request a minute of 15 messages for apps distributed outside the Marketplace), kept
across processes and restarts in Redis; a 429 waits its Retry-After. New messages don't wait for any of this: they
come from events (.feed)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.shared.knowledge_sources.channel_history import ChannelHistory, HistoryLimits, Page, Renew
from adapters.shared.knowledge_sources.channels import Backfill
from adapters.slack_bot.installs.workspaces import BotClients
from adapters.slack_bot.knowledge.messages import built_permalink, indexable, message_passage
from adapters.slack_bot.knowledge.state import SlackKnowledge
from adapters.slack_bot.settings import HistoryPace
from bot.knowledge.passages import Passage
from bot.state.redis_client import RedisClient

log = structlog.get_logger(__name__)

MAX_MESSAGES = 1_000  # a channel's most recent messages read when it becomes knowledge (thread replies count)
RESCAN_SECONDS = 10.0  # how soon a process takes over a reading another process left (or a new opt-in elsewhere)
LOCK_SPARE_SECONDS = 120.0  # a workspace's reading is taken over this long after its process stopped renewing it


class HistoryReader:
    """Slack's channels' histories, a workspace at a time: run by the app, woken by /knowledge channel on."""

    platform = "slack"
    stops: tuple[type[Exception], ...] = ()

    def __init__(
        self, knowledge: SlackKnowledge, clients: BotClients, redis: RedisClient, key_prefix: str, pace: HistoryPace
    ) -> None:
        self._clients = clients
        self._pacing = Pacing(redis, f"{key_prefix}knowledge:slack:history:", pace)
        self.limits = HistoryLimits(
            MAX_MESSAGES, RESCAN_SECONDS, pace.seconds_per_request + LOCK_SPARE_SECONDS, "slack_history"
        )
        self._identities: dict[str, tuple[str, str]] = {}  # team → (workspace URL, the bot's user id)
        self._history = ChannelHistory(self, knowledge.channels, knowledge.live, knowledge.opener, redis, key_prefix)

    def wake(self) -> None:
        """A channel became knowledge: start reading it now rather than at the next look."""
        self._history.wake()

    async def run(self) -> None:
        """Forever: each workspace with history to read is read by one task (and one process)."""
        await self._history.run()

    async def aclose(self) -> None:
        await self._history.aclose()

    def reading_of(self, backfill: Backfill) -> str:
        return backfill.scope.removeprefix("slack:")

    async def reader(self, reading: str, renew: Renew) -> WorkspacePages | None:
        client = await self._clients.of({"team": reading})
        if client is None:
            log.warning("slack_history_not_installed", team=reading)
            return None
        # 429s are handled here (waiting Retry-After, paced for every process), not retried by the client.
        client = AsyncWebClient(
            token=client.token,
            base_url=client.base_url,
            session=client.session,
            proxy=client.proxy,
            timeout=client.timeout,
            retry_handlers=[AsyncConnectionErrorRetryHandler(max_retry_count=2)],
        )
        if reading not in self._identities:
            identity = await client.auth_test()
            self._identities[reading] = (str(identity.get("url") or ""), str(identity.get("user_id") or ""))
        url, bot_user = self._identities[reading]
        return WorkspacePages(Reading(reading, url, bot_user, renew), client, self._pacing)


class Pacing:
    """A workspace's history requests at the pace SLACK_HISTORY_TIER allows, shared by every process (and kept over a
    restart) in Redis; after a 429, again once its Retry-After has passed."""

    def __init__(self, redis: RedisClient, prefix: str, pace: HistoryPace) -> None:
        self._redis = redis
        self._prefix = prefix
        self.pace = pace

    async def call(
        self, team: str, renew: Renew, method: Callable[..., Awaitable[AsyncSlackResponse]], **params: Any
    ) -> AsyncSlackResponse:
        """One request of `team`'s at its pace, again after a 429; `renew` keeps the workspace's reading ours."""
        while True:
            await self._paced(team)
            await renew()  # the workspace's reading is still this process's: renewed before each request
            try:
                return await method(**params)
            except SlackApiError as error:
                if error.response.status_code != 429:
                    raise
                wait = retry_after(error.response.headers) or self.pace.seconds_per_request
                log.warning("slack_history_rate_limited", team=team, retry_after=wait)
                await self._redis.set(self._gate(team), "1", px=max(1, int(wait * 1000)))

    async def _paced(self, team: str) -> None:
        """Wait for the workspace's next request slot."""
        spacing = max(1, int(self.pace.seconds_per_request * 1000))
        while not await self._redis.set(self._gate(team), "1", nx=True, px=spacing):  # noqa: ASYNC110 - in Redis
            await asyncio.sleep(max(await self._redis.pttl(self._gate(team)), 10) / 1000)

    def _gate(self, team: str) -> str:
        return f"{self._prefix}next:{team}"


class WorkspacePages:
    """A workspace's channels' pages, as its history's reading reaches them."""

    def __init__(self, reading: Reading, client: AsyncWebClient, pacing: Pacing) -> None:
        self._reading, self._client, self._pacing = reading, client, pacing

    async def _call(self, method: Callable[..., Awaitable[AsyncSlackResponse]], **params: Any) -> AsyncSlackResponse:
        return await self._pacing.call(self._reading.team, self._reading.renew, method, **params)

    async def page(self, backfill: Backfill, title: str, room: int) -> Page | None:
        channel = backfill.channel
        try:
            response = await self._call(
                self._client.conversations_history,
                channel=channel,
                limit=self._pacing.pace.messages_per_request,
                cursor=backfill.cursor or None,
            )
        except SlackApiError as error:  # not in the channel any more, say: nothing more can be read
            log.warning("slack_history_stopped", channel=channel, error=error.response.get("error"))
            return None
        messages: list[dict[str, Any]] = response.get("messages") or []
        passages = [self._passage(channel, title, m) for m in messages if indexable(m, self._reading.bot_user)]
        read = len(messages)
        for parent in messages:
            if parent.get("reply_count") and read < room:
                replies = await self._thread(channel, title, str(parent["ts"]), room - read)
                passages += replies
                read += len(replies)
        return Page(passages, read, str((response.get("response_metadata") or {}).get("next_cursor") or ""))

    async def _thread(self, channel: str, title: str, parent: str, room: int) -> list[Passage]:
        """A thread's replies (its parent is on the history's page), at most `room`."""
        passages: list[Passage] = []
        cursor: str | None = None
        while len(passages) < room:
            try:
                response = await self._call(
                    self._client.conversations_replies,
                    channel=channel,
                    ts=parent,
                    limit=self._pacing.pace.messages_per_request,
                    cursor=cursor,
                )
            except SlackApiError as error:
                log.warning("slack_history_thread_skipped", channel=channel, error=error.response.get("error"))
                break
            replies = [m for m in response.get("messages") or [] if m.get("ts") != parent]
            passages += [self._passage(channel, title, m) for m in replies if indexable(m, self._reading.bot_user)]
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return passages[:room]

    def _passage(self, channel: str, title: str, message: dict[str, Any]) -> Passage:
        url = self._reading.url
        link = built_permalink(url, channel, str(message["ts"]), message.get("thread_ts")) if url else ""
        return message_passage(self._reading.team, channel, title, message, link)


@dataclass(frozen=True)
class Reading:
    """A workspace's reading: the workspace, its URL, the bot's user there, and how its lock is kept."""

    team: str
    url: str
    bot_user: str
    renew: Renew


def retry_after(headers: Any) -> float | None:
    """Slack's Retry-After in seconds, as slack_sdk hands a response's headers over (any case; each maybe a list)."""
    value = next((value for name, value in dict(headers or {}).items() if name.lower() == "retry-after"), None)
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
