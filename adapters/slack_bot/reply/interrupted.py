"""Replies a stopped process left unfinished (found in the reply ledger when the bot starts): each ends with a
note saying it was interrupted, through the client of the workspace it is in."""

from __future__ import annotations

from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.shared.reply_records import ReplyRecord, interrupted_ending, interrupted_note
from adapters.slack_bot.installs.workspaces import BotClients
from adapters.slack_bot.reply.text import REPLY_LIMITS, to_mrkdwn
from bot.metrics import Metrics

log = structlog.get_logger(__name__)


class InterruptedReplies:
    def __init__(self, clients: BotClients, metrics: Metrics, platform: str) -> None:
        self._clients = clients
        self._metrics = metrics
        self._platform = platform

    async def finish(self, record: ReplyRecord) -> None:
        """End the reply with a note saying it was interrupted (its stream stopped, its status cleared); post the
        note if nothing was shown."""
        place, note = record.place, interrupted_note(record.tools)  # naming the tools it ran, if any
        try:
            client = await self._clients.of(place)
            if client is None:
                log.info("interrupted_reply_left", thread=record.thread, reason="the app is no longer installed there")
                return
            if record.messages:
                last = record.messages[-1]
                await _end_message(client, last, interrupted_ending(last["text"], REPLY_LIMITS, record.tools), note)
            elif place.get("placeholder_ts"):
                await client.chat_update(channel=place["channel"], ts=place["placeholder_ts"], text=note)
            else:
                await client.chat_postMessage(channel=place["channel"], thread_ts=place["thread_ts"], text=note)
            if place.get("status"):
                await client.assistant_threads_setStatus(
                    channel_id=place["channel"], thread_ts=place["thread_ts"], status=""
                )
        except SlackApiError as error:
            log.warning("interrupted_reply_not_finished", thread=record.thread, error=error.response.get("error"))
            return
        self._metrics.recovered.labels(self._platform).inc()
        log.info("interrupted_reply_finished", thread=record.thread, messages=len(record.messages))


async def _end_message(client: AsyncWebClient, message: dict[str, Any], text: str, note: str) -> None:
    handle = message["handle"]
    if handle["stream"]:
        try:
            await client.chat_stopStream(channel=handle["channel"], ts=handle["ts"], markdown_text=f"\n\n{note}")
            return
        except SlackApiError as error:  # the stream expired meanwhile: an ordinary edit then
            log.info("slack_stream_not_stopped", error=error.response.get("error"))
    await client.chat_update(channel=handle["channel"], ts=handle["ts"], text=to_mrkdwn(text))
