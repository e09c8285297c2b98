"""Replies a stopped process left unfinished (found in the reply ledger when the bot starts): each ends with a
note saying it was interrupted, or gets the note posted where it would have been if nothing was shown."""

from __future__ import annotations

from typing import Any

import discord
import structlog

from adapters.discord_bot.reply.surfaces import REPLY_LIMITS
from adapters.shared.reply_records import ReplyRecord, interrupted_ending, interrupted_note
from bot.metrics import Metrics

log = structlog.get_logger(__name__)


class InterruptedReplies:
    def __init__(self, client: discord.Client, metrics: Metrics, platform: str) -> None:
        self._client = client
        self._metrics = metrics
        self._platform = platform

    async def finish(self, record: ReplyRecord) -> None:
        """End the reply with a note saying it was interrupted; post the note if nothing was shown."""
        try:
            if record.messages:
                last = record.messages[-1]
                channel = self._client.get_partial_messageable(int(last["handle"]["channel_id"]))
                # What the message shows now: the record has it only as of the last heartbeat.
                message = await channel.fetch_message(int(last["handle"]["message_id"]))
                shown = message.content.removesuffix(REPLY_LIMITS.indicator) or last["text"]
                await message.edit(content=interrupted_ending(shown, REPLY_LIMITS, record.tools))
            else:
                await self._post_note(record.place, interrupted_note(record.tools))
        except discord.HTTPException as error:
            log.warning("interrupted_reply_not_finished", thread=record.thread, status=error.status)
            return
        self._metrics.recovered.labels(self._platform).inc()
        log.info("interrupted_reply_finished", thread=record.thread, messages=len(record.messages))

    async def _post_note(self, place: dict[str, Any], note: str) -> None:
        try:  # in the reply's thread (or DM), if it was opened
            await self._client.get_partial_messageable(int(place["thread_id"])).send(note)
        except (discord.NotFound, discord.Forbidden):
            channel = self._client.get_partial_messageable(int(place["channel_id"]))
            await channel.get_partial_message(int(place["message_id"])).reply(note, mention_author=False)
