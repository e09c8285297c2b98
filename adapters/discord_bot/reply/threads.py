"""The thread a mention (or a message answered unasked) in a channel is answered in: started from the message (so it
shares its id), or, where the channel has no threads or the bot may not start one, a reply to the message instead."""

from __future__ import annotations

import asyncio

import discord
import structlog

from adapters.discord_bot.reply.surfaces import Destination, DiscordRateLimits
from adapters.shared.platform_jobs import retrieve_outcome
from adapters.shared.ratelimit import Write

log = structlog.get_logger(__name__)

THREAD_NAME_LENGTH = 90
THREAD_CHANNEL_TYPES = (discord.ChannelType.text, discord.ChannelType.news)


def thread_name(text: str) -> str:
    name = " ".join(text.split()) or "Conversation"
    return name if len(name) <= THREAD_NAME_LENGTH else name[: THREAD_NAME_LENGTH - 1].rstrip() + "…"


class _NoThreads(Exception):
    pass


class Threads:
    def __init__(self, client: discord.Client, rate_limits: DiscordRateLimits) -> None:
        self._client = client
        self._rate_limits = rate_limits
        self._background: set[asyncio.Task[discord.Thread]] = set()  # thread creations left to finish

    async def open(self, message: discord.Message, title: str, slot: Write | None = None) -> Destination:
        """Where the answer to `message` goes: a thread named after `title`, created in `slot` (one reserved already)
        or else in the channel's next one; else a reply to the message."""
        channel = message.channel
        try:
            if getattr(channel, "type", None) not in THREAD_CHANNEL_TYPES:
                raise _NoThreads("channel type has no threads")
            async with slot or self._rate_limits.limits.write(self._rate_limits.creates(channel.id)):
                return Destination(await self.create(message, title))
        except (discord.Forbidden, discord.HTTPException, _NoThreads) as error:
            log.info("thread_unavailable_replying_instead", channel=channel.id, reason=str(error)[:200])
            return Destination(channel, reply_to=message)

    async def create(self, message: discord.Message, title: str) -> discord.Thread:
        """A thread started from `message`, as soon as it exists.

        discord.py returns from the request that empties a rate-limit bucket only once the
        bucket resets (up to 5 s when several mentions arrive in one channel together), though
        the thread exists at once; Discord announces it on the gateway right away, so the
        first of the two is used and the request is left to finish on its own.
        """
        announced: asyncio.Future[discord.Thread] = asyncio.ensure_future(
            self._client.wait_for("thread_create", check=lambda thread: thread.id == message.id)
        )
        created = asyncio.ensure_future(message.create_thread(name=thread_name(title)))
        try:
            await asyncio.wait((announced, created), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            created.cancel()
            raise
        finally:
            announced.cancel()
        if created.done() or not announced.done() or announced.cancelled():
            return await created
        self._background.add(created)
        created.add_done_callback(self._background.discard)
        created.add_done_callback(retrieve_outcome)
        return announced.result()
