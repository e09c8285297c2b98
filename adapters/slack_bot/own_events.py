"""The app's own events, left out as Bolt leaves them out (its IgnoringSelfEvents middleware, which the app runs with
this one in its place), but for a deletion of one of its messages: a bot answer accepted as a help thread's solution
and deleted by an admin takes the thread out of the knowledge (adapters.slack_bot.messages.follow_answer). The
deletion's other followers find nothing of the bot's: its messages are never knowledge."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from slack_bolt.middleware.ignoring_self_events.async_ignoring_self_events import AsyncIgnoringSelfEvents
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse


class OwnEventsButDeletions(AsyncIgnoringSelfEvents):
    async def async_process(
        self, *, req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        event = req.body.get("event") or {}
        if event.get("type") == "message" and event.get("subtype") == "message_deleted":
            return await next()
        return await super().async_process(req=req, resp=resp, next=next)
