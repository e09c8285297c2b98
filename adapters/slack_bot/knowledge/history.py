"""A channel's history read into knowledge when it becomes knowledge: conversations.history a page at a time, newest
first, each thread's replies with conversations.replies, up to MAX_MESSAGES, in the background. Where the reading
stands is saved after each page (adapters.shared.knowledge_sources.channels), so a restart resumes it from there.

Slack's limits are per workspace: one process reads a workspace's channels at a time (a Redis lock), at the pace
SLACK_HISTORY_TIER allows (1 request a minute of 15 messages for apps distributed outside the Marketplace), kept
across processes and restarts in Redis; a 429 waits its Retry-After. New messages don't wait for any of this:
they come from events (.feed)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from redis.exceptions import LockError, RedisError
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.shared.knowledge_sources.channels import Backfill
from adapters.slack_bot.installs.workspaces import BotClients
from adapters.slack_bot.knowledge.messages import built_permalink, channel_source, indexable, message_passage
from adapters.slack_bot.knowledge.state import SlackKnowledge
from adapters.slack_bot.settings import HistoryPace
from bot.errors import ReplyFailure
from bot.knowledge.passages import Passage
from bot.knowledge.service import Knowledge
from bot.state.redis_client import RedisClient

log = structlog.get_logger(__name__)

MAX_MESSAGES = 1_000  # a channel's most recent messages read when it becomes knowledge (thread replies count)
RESCAN_SECONDS = 10.0  # how soon a process takes over a reading another process left (or a new opt-in elsewhere)
LOCK_SPARE_SECONDS = 120.0  # a workspace's reading is taken over this long after its process stopped renewing it


class HistoryReader:
    def __init__(
        self, knowledge: SlackKnowledge, clients: BotClients, redis: RedisClient, key_prefix: str, pace: HistoryPace
    ) -> None:
        self._knowledge = knowledge
        self._clients = clients
        self._redis = redis
        self._prefix = f"{key_prefix}knowledge:slack:history:"
        self._pace = pace
        self._wake = asyncio.Event()
        self._teams: dict[str, asyncio.Task[None]] = {}
        self._identities: dict[str, tuple[str, str]] = {}  # team → (workspace URL, the bot's user id)

    def wake(self) -> None:
        """A channel became knowledge: start reading it now rather than at the next look."""
        self._wake.set()

    async def run(self) -> None:
        """Forever: each workspace with history to read is read by one task (and one process)."""
        if self._knowledge.opener is None:
            return
        while True:
            try:
                pending = await self._knowledge.channels.backfills("slack")
            except (ReplyFailure, RedisError) as error:  # Redis is down: look again later
                log.warning("slack_history_unknown", error=str(error))
                pending = []
            except Exception:
                log.exception("slack_history_look_failed")
                pending = []
            self._teams = {team: task for team, task in self._teams.items() if not task.done()}
            for team in {backfill.scope.removeprefix("slack:") for backfill in pending}:
                if team not in self._teams:
                    self._teams[team] = asyncio.create_task(self._read_team(team), name=f"slack-history-{team}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RESCAN_SECONDS)
            self._wake.clear()

    async def aclose(self) -> None:
        for task in self._teams.values():
            task.cancel()
        await asyncio.gather(*self._teams.values(), return_exceptions=True)

    async def _read_team(self, team: str) -> None:
        lock = self._redis.lock(
            f"{self._prefix}lock:{team}",
            timeout=self._pace.seconds_per_request + LOCK_SPARE_SECONDS,
            thread_local=False,
        )
        if not await lock.acquire(blocking=False):
            return  # another process reads this workspace
        try:
            await self._read_channels(team, lock.reacquire)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - logged; the next look resumes from the saved page
            log.error("slack_history_failed", team=team, error=f"{type(error).__name__}: {error}")
        finally:
            with contextlib.suppress(LockError, Exception):
                await asyncio.shield(lock.release())

    async def _read_channels(self, team: str, renew: Callable[[], Awaitable[bool]]) -> None:
        assert self._knowledge.opener is not None
        knowledge = await self._knowledge.opener.get()
        reach = await self._reach(team, renew)
        if reach is None:
            return
        while backfills := [b for b in await self._knowledge.channels.backfills("slack") if b.scope == f"slack:{team}"]:
            for backfill in backfills:  # a page of each in turn: a long channel doesn't hold up the others
                await self._read_page(knowledge, reach, backfill)

    async def _reach(self, team: str, renew: Callable[[], Awaitable[bool]]) -> _Reach | None:
        client = await self._clients.of({"team": team})
        if client is None:
            log.warning("slack_history_not_installed", team=team)
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
        if team not in self._identities:
            identity = await client.auth_test()
            self._identities[team] = (str(identity.get("url") or ""), str(identity.get("user_id") or ""))
        url, bot_user = self._identities[team]
        return _Reach(team, client, url, bot_user, renew)

    async def _read_page(self, knowledge: Knowledge, reach: _Reach, backfill: Backfill) -> None:
        channels, scope, channel = self._knowledge.channels, backfill.scope, backfill.channel
        title = (await channels.channels(scope)).get(channel)
        if title is None:
            await channels.finish_backfill(scope, channel)
            return
        try:
            response = await self._call(
                reach,
                reach.client.conversations_history,
                channel=channel,
                limit=self._pace.messages_per_request,
                cursor=backfill.cursor or None,
            )
        except SlackApiError as error:  # not in the channel any more, say: nothing more can be read
            log.warning("slack_history_stopped", channel=channel, error=error.response.get("error"))
            await channels.finish_backfill(scope, channel)
            return
        messages: list[dict[str, Any]] = response.get("messages") or []
        passages = [reach.passage(channel, title, m) for m in messages if indexable(m, reach.bot_user)]
        read = backfill.read + len(messages)
        for parent in messages:
            if parent.get("reply_count") and read < MAX_MESSAGES:
                replies = await self._thread(reach, channel, title, str(parent["ts"]), MAX_MESSAGES - read)
                passages += replies
                read += len(replies)
        changed = await self._knowledge.live.marked(reach.team, [passage.key for passage in passages])
        await knowledge.add([passage for passage in passages if passage.key not in changed])
        if not await channels.is_knowledge(scope, channel):  # turned off while this page was read
            await knowledge.forget_source(scope, channel_source(channel))
            return
        cursor = str((response.get("response_metadata") or {}).get("next_cursor") or "")
        if not cursor or read >= MAX_MESSAGES:
            await channels.finish_backfill(scope, channel)
            log.info("slack_history_read", team=reach.team, channel=channel, messages=read)
        else:
            await channels.save_backfill(Backfill(scope, channel, cursor, read))
            log.info("slack_history_page", team=reach.team, channel=channel, messages=read)

    async def _thread(self, reach: _Reach, channel: str, title: str, parent: str, room: int) -> list[Passage]:
        """A thread's replies (its parent is on the history's page), at most `room`."""
        passages: list[Passage] = []
        cursor: str | None = None
        while len(passages) < room:
            try:
                response = await self._call(
                    reach,
                    reach.client.conversations_replies,
                    channel=channel,
                    ts=parent,
                    limit=self._pace.messages_per_request,
                    cursor=cursor,
                )
            except SlackApiError as error:
                log.warning("slack_history_thread_skipped", channel=channel, error=error.response.get("error"))
                break
            replies = [m for m in response.get("messages") or [] if m.get("ts") != parent]
            passages += [reach.passage(channel, title, m) for m in replies if indexable(m, reach.bot_user)]
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return passages[:room]

    async def _call(
        self, reach: _Reach, method: Callable[..., Awaitable[AsyncSlackResponse]], **params: Any
    ) -> AsyncSlackResponse:
        """One request at the workspace's pace; after a 429, again once its Retry-After has passed."""
        while True:
            await self._paced(reach.team)
            await reach.renew()
            try:
                return await method(**params)
            except SlackApiError as error:
                if error.response.status_code != 429:
                    raise
                wait = retry_after(error.response.headers) or self._pace.seconds_per_request
                log.warning("slack_history_rate_limited", team=reach.team, retry_after=wait)
                await self._redis.set(self._gate(reach.team), "1", px=max(1, int(wait * 1000)))

    async def _paced(self, team: str) -> None:
        """Wait for the workspace's next request slot, shared by every process (and kept over a restart)."""
        spacing = max(1, int(self._pace.seconds_per_request * 1000))
        while not await self._redis.set(self._gate(team), "1", nx=True, px=spacing):  # noqa: ASYNC110 - in Redis
            await asyncio.sleep(max(await self._redis.pttl(self._gate(team)), 10) / 1000)

    def _gate(self, team: str) -> str:
        return f"{self._prefix}next:{team}"


class _Reach:
    """A workspace as its history's reading reaches it."""

    def __init__(
        self, team: str, client: AsyncWebClient, url: str, bot_user: str, renew: Callable[[], Awaitable[bool]]
    ) -> None:
        self.team, self.client, self.url, self.bot_user = team, client, url, bot_user
        self.renew = renew  # the workspace's reading is still this process's: renewed after each request

    def passage(self, channel: str, title: str, message: dict[str, Any]) -> Passage:
        link = built_permalink(self.url, channel, str(message["ts"]), message.get("thread_ts")) if self.url else ""
        return message_passage(self.team, channel, title, message, link)


def retry_after(headers: Any) -> float | None:
    """Slack's Retry-After in seconds, as slack_sdk hands a response's headers over (any case; each maybe a list)."""
    value = next((value for name, value in dict(headers or {}).items() if name.lower() == "retry-after"), None)
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
