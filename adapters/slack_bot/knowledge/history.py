"""Slack's piece of reading a knowledge channel's history (adapters.shared.knowledge_sources.channel_history and
.channel_pages): conversations.history a page at a time, each thread's replies with conversations.replies, up to
MAX_MESSAGES. Slack's limits are per workspace: a workspace's channels are one reading, at the pace
SLACK_HISTORY_TIER allows (1 request a minute of 15 messages for apps distributed outside the Marketplace); a 429 is
handed to the shared pacing as RateLimited, with its Retry-After. New messages come from events (.feed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.shared.knowledge_sources.channel_history import ChannelHistory, HistoryLimits, Renew
from adapters.shared.knowledge_sources.channel_pages import Batch, MessagePages, Pacing, RateLimited, Unreadable
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

Message = dict[str, Any]


class HistoryReader:
    """Slack's channels' histories, a workspace at a time: run by the app, woken by /knowledge channel on."""

    platform = "slack"
    stops: tuple[type[Exception], ...] = ()

    def __init__(
        self, knowledge: SlackKnowledge, clients: BotClients, redis: RedisClient, key_prefix: str, pace: HistoryPace
    ) -> None:
        self._clients, self._pace = clients, pace
        seconds = pace.seconds_per_request
        self.limits = HistoryLimits(MAX_MESSAGES, RESCAN_SECONDS, seconds + LOCK_SPARE_SECONDS, "slack_history")
        self._pacing = Pacing(redis, key_prefix, self.platform, seconds, self.limits.log_name)
        self._identities: dict[str, tuple[str, str]] = {}  # team → (workspace URL, the bot's user id)
        self._history = ChannelHistory(self, knowledge.channels, knowledge.live, knowledge.opener, redis, key_prefix)
        self.wake, self.run, self.aclose = self._history.wake, self._history.run, self._history.aclose

    def reading_of(self, backfill: Backfill) -> str:
        return backfill.scope.removeprefix("slack:")

    async def reader(self, reading: str, renew: Renew) -> MessagePages[Message] | None:
        client = await self._clients.of({"team": reading})
        if client is None:
            log.warning("slack_history_not_installed", team=reading)
            return None
        # 429s are handed to the shared pacing (Retry-After waited for every process), not retried by the client.
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
        pages = WorkspacePages(reading, url, bot_user, client, self._pace.messages_per_request)
        return MessagePages(pages, self.limits.log_name, self._pacing, reading, renew)


class WorkspacePages:
    """A workspace's channels' messages, as Slack's Web API gives them (shared.knowledge_sources.ChannelPages)."""

    def __init__(self, team: str, url: str, bot_user: str, client: AsyncWebClient, limit: int) -> None:
        self._team, self._url, self._bot_user, self._client, self._limit = team, url, bot_user, client, limit

    async def history(self, backfill: Backfill, room: int) -> Batch[Message]:
        return await self._batch(self._client.conversations_history, channel=backfill.channel, cursor=backfill.cursor)

    async def replies(self, backfill: Backfill, thread: str, cursor: str) -> Batch[Message]:
        batch = await self._batch(
            self._client.conversations_replies, channel=backfill.channel, ts=thread, cursor=cursor
        )
        return Batch([message for message in batch.messages if message.get("ts") != thread], batch.cursor)

    def thread(self, message: Message) -> str:
        return str(message["ts"]) if message.get("reply_count") else ""

    def passage(self, backfill: Backfill, title: str, message: Message) -> Passage | None:
        if not indexable(message, self._bot_user):
            return None
        channel = backfill.channel
        link = built_permalink(self._url, channel, str(message["ts"]), message.get("thread_ts")) if self._url else ""
        return message_passage(self._team, channel, title, message, link)

    async def _batch(
        self, method: Callable[..., Awaitable[AsyncSlackResponse]], cursor: str, **params: Any
    ) -> Batch[Message]:
        try:
            response = await method(limit=self._limit, cursor=cursor or None, **params)
        except SlackApiError as error:
            if error.response.status_code == 429:
                raise RateLimited.after(error.response.headers) from error
            raise Unreadable(str(error.response.get("error"))) from error  # not in the channel any more, say
        cursor = str((response.get("response_metadata") or {}).get("next_cursor") or "")
        return Batch(list(response.get("messages") or []), cursor)
