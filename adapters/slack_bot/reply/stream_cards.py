"""A native stream's task cards on their way to Slack (for .stream.StreamReply): a card's update goes on a spare
chat.appendStream to the message being streamed; one that can't go now waits, coalesced with that card's later updates
(.tool_cards.Cards), for the stream's next write (text, or the stop: they take what waits) or a retry a second later."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog
from slack_sdk.errors import SlackApiError

from adapters.slack_bot.reply.surfaces import Place, WorkspaceBudgets
from adapters.slack_bot.reply.tool_cards import Cards

log = structlog.get_logger(__name__)

CARD_RETRY_SECONDS = 1.0  # how soon cards held back by the rate limits are tried again while no text comes


class StreamCards(Cards):
    """The cards waiting, and their sending between the stream's own writes."""

    def __init__(
        self,
        place: Place,
        budgets: WorkspaceBudgets,
        writing: asyncio.Lock,
        *,
        current: Callable[[], str | None],
        streaming: Callable[[str], bool],
        expired: Callable[[str], None],
    ) -> None:
        """`writing`: the stream's lock on its calls, in order; `current`: the latest message, if any; `streaming`:
        whether a message is still a stream; `expired`: told of a message whose stream expired."""
        super().__init__()
        self._place = place
        self._budgets = budgets
        self._limits = budgets.limits
        self._writing = writing
        self._current = current
        self._streaming = streaming
        self._expired = expired
        self._retry: asyncio.Task[None] | None = None

    async def send(self) -> None:
        """Send the cards waiting now, on a spare append; if they must wait, try again a second later."""
        if not await self._send():
            self._retry_later()

    async def close(self) -> None:
        """No more retries (the reply is over)."""
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry

    async def _send(self) -> bool:
        """Send the cards waiting on a spare append; False if they must wait (no append to spare, or it failed)."""
        handle = self._current()
        if not self.pending or handle is None or not self._streaming(handle):
            return True  # sent, or (between messages) for the next message's start
        charge = await self._limits.spare((self._budgets.appends,))
        if charge is None:
            return False
        async with self._writing, charge:
            cards = self.take() if self._streaming(handle) else []
            if not cards:
                return True
            try:
                await self._place.client.chat_appendStream(channel=self._place.channel, ts=handle, chunks=cards)
            except SlackApiError as error:
                reason = error.response.get("error")
                log.warning("slack_task_update_failed", channel=self._place.channel, error=reason)
                if reason == "message_not_in_streaming_state":  # expired: its text is finished with chat.update
                    self._expired(handle)
                    return True
                self.put_back(cards)
                return False
        return True

    def _retry_later(self) -> None:
        if self._retry is None or self._retry.done():
            self._retry = asyncio.create_task(self._retry_until_sent())

    async def _retry_until_sent(self) -> None:
        try:
            while True:
                await asyncio.sleep(CARD_RETRY_SECONDS)
                if await self._send():
                    return
        except Exception:
            log.warning("slack_task_update_failed", exc_info=True)
