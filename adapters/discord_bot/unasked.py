"""Discord's piece of the help channels (adapters.shared.help_channels): a person's top-level message in a server's
text channel, or a new post in a forum channel (its title and first message), nobody addressed, given as an
`UnaskedMessage`; one answered gets a thread, as a mention does, if that thread can be opened within
RESPOND_MAX_DELAY_SECONDS of the message (a post is answered inside the post, its follow-ups then a conversation
there); a quota notice goes by direct message."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Protocol

import discord
import structlog

from adapters.discord_bot.knowledge.access import DiscordKnowledge
from adapters.discord_bot.places.forum_posts import post_alias, starts_post, with_title
from adapters.discord_bot.places.message_places import places_of, quota_channel
from adapters.discord_bot.reply.helper_calls import DiscordHelperCall, help_desk, message_call
from adapters.discord_bot.reply.surfaces import REPLY_LIMITS, ChannelReply, Destination, DiscordRateLimits, OnPosted
from adapters.shared.help_channels import HelpChannels
from adapters.shared.platform_jobs import Kept, PlatformJobs
from adapters.shared.ratelimit import Budgets, RateLimits, Write
from bot.core import Turn
from bot.knowledge.passages import Access
from bot.respond.decision import Decision, Unprompted
from bot.state.forget import scope_of
from bot.state.personas import Place
from bot.usage.accounting import payer_of

log = structlog.get_logger(__name__)

_ANY_MENTION = re.compile(r"<@[!&]?\d+>|@everyone|@here")


class UnaskedHost(Protocol):
    """What this uses of the client (client.py), which it never imports."""

    @property
    def jobs(self) -> PlatformJobs: ...

    @property
    def rate_limits(self) -> DiscordRateLimits: ...

    @property
    def knowledge(self) -> DiscordKnowledge: ...

    @property
    def user(self) -> discord.ClientUser | None: ...

    def allowed(self, user: discord.abc.User, guild: discord.Guild | None, channel: object) -> bool: ...

    def to_someone_else(self, message: discord.Message) -> bool: ...

    async def turn_for(self, key: str, message: discord.Message) -> Turn: ...

    async def open_thread(self, message: discord.Message, slot: Write | None = None) -> Destination: ...

    def linker(self, key: str) -> OnPosted: ...

    def kept(self, message: discord.Message) -> Kept: ...


class UnaskedAnswers:
    def __init__(self, host: UnaskedHost) -> None:
        self._host = host
        self._help_channels = HelpChannels(host.jobs, "discord")

    @staticmethod
    def may_answer(message: discord.Message) -> bool:
        """A person's top-level message in a server's text channel, or a forum post's first message (other threads
        the bot isn't in stay theirs)."""
        return (isinstance(message.channel, discord.TextChannel) and message.guild is not None) or starts_post(message)

    async def consider(self, message: discord.Message, arrived: float) -> None:
        """Answer `message` if its channel answers without a mention and the core decides it should."""
        await self._help_channels.consider(UnaskedDiscordMessage(self._host, message), arrived)


class UnaskedDiscordMessage:
    """A Discord message as the help channels' flow takes it."""

    def __init__(self, host: UnaskedHost, message: discord.Message) -> None:
        self._host = host
        self._message = message
        self._key = f"discord:conv:{message.id}"  # a thread started from a message shares its id
        self.places: tuple[Place, ...] = places_of(message.channel, message.guild)
        self.text = with_title(message, message.content)
        server = message.guild.id if message.guild else "dm"
        self.refusal_key = f"discord:unasked:{message.author.id}:{server}"

    def allowed(self) -> bool:
        return self._host.allowed(self._message.author, self._message.guild, self._message.channel)

    async def first_delivery(self) -> bool:
        return await self._host.jobs.first_to_claim(f"discord:msg:{self._message.id}")

    def unprompted(self) -> Unprompted:
        message = self._message
        return Unprompted(
            "discord",
            str(message.channel.id),
            str(message.id),
            with_title(message, _ANY_MENTION.sub("", message.content).strip()),
            to_someone_else=self._host.to_someone_else(message),
            files=len(message.attachments),
            payer=payer_of("discord", scope_of("discord"), str(message.author.id), self.places),
        )

    async def access(self) -> Access | None:
        return await self._host.knowledge.access(self._message.guild, self._message.author, self._message.channel)

    def asker(self) -> Turn:
        author = self._message.author
        return Turn(self._key, str(author.id), author.display_name, "", channel=quota_channel(self._message.channel))

    async def kept(self) -> Kept:
        return self._host.kept(self._message)

    async def tell_privately(self, note: str) -> None:
        try:
            await self._message.author.send(note)
        except discord.HTTPException:
            log.info("quota_notice_not_sent", user=self._message.author.id)

    def first_write(self) -> tuple[RateLimits, Budgets]:
        """Its thread's opening, as a mention's; in a forum post, the answer's first message there."""
        limits = self._host.rate_limits
        return limits.limits, limits.creates(self._message.channel.id)

    async def answer(self, decision: Decision, arrived: float, first: Write) -> None:
        host, message, key = self._host, self._message, self._key
        if starts_post(message):  # answered inside the post, whose follow-ups then continue the conversation
            await first.release()  # it was in time: the reply's first message takes its own slot in the post
            destination = Destination(message.channel)
            await host.jobs.link(post_alias(message.channel.id), key)
        else:
            destination = await host.open_thread(message, first)
        turn = replace(await host.turn_for(key, message), admitted=True, found=decision.found, received_at=arrived)
        place = {"channel_id": message.channel.id, "message_id": message.id, "thread_id": message.id}
        recording = host.jobs.record(key, place, REPLY_LIMITS)
        surface = ChannelReply(
            destination,
            destination.channel.id,
            host.rate_limits,
            host.linker(key),
            recording,
            votes=str(message.id),
            helpdesk=await help_desk(host.jobs, self.places),  # Solved; Still need help? where there are helpers
        )
        await host.jobs.answer(turn, surface, recording, host.kept(message))

    def helper_call(self) -> DiscordHelperCall:
        return message_call(self._host, self._message)
