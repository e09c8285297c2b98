"""Which surface a Slack reply is written through: Slack's native stream where it may be used and its rate tier
allows, else a message that chat.update edits."""

from __future__ import annotations

import time

from adapters.shared.ratelimit import RateLimits, Write
from adapters.shared.reply_records import Recording
from adapters.slack_bot.reply.stream import StreamReply
from adapters.slack_bot.reply.surfaces import MessageReply, Place, WorkspaceBudgets

NO_STREAM_SECONDS = 600  # a channel where Slack wouldn't stream gets plain messages this long, then is tried again


class ReplyChoice:
    """Chooses each reply's surface, and remembers the channels where Slack wouldn't stream."""

    def __init__(self, limits: RateLimits, *, streaming: bool) -> None:
        """`streaming`: whether replies may stream at all (SLACK_STREAMING)."""
        self._limits = limits
        self._streaming = streaming
        self._no_streams: dict[tuple[str, str], float] = {}  # (team, channel) → until when

    async def surface(
        self,
        place: Place,
        budgets: WorkspaceBudgets,
        recording: Recording | None,
        votes: str | None = None,
        first_post: Write | None = None,
    ) -> MessageReply | StreamReply:
        """Slack's native stream where it may be used and its rate tier allows, else chat.update edits. A
        channel where Slack wouldn't stream answers with edits for a while: there the core writes tool calls
        as lines into the text, from the start of the reply."""
        where = (place.team, place.channel)
        can_stream = self._streaming and place.thread_ts is not None
        if self._no_streams.get(where, 0.0) > time.monotonic():
            can_stream = False
        if can_stream and (promise := await self._limits.promise((budgets.stream_starts, budgets.stream_stops))):

            def unavailable() -> None:
                self._no_streams[where] = time.monotonic() + NO_STREAM_SECONDS

            if first_post is not None:  # a stream starts with chat.startStream, on its own budget
                await first_post.release()
            return StreamReply(place, budgets, promise, recording, on_unavailable=unavailable, votes=votes)
        return MessageReply(place, budgets, recording, votes, first_post)
