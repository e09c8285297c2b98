"""Messages nobody addressed to the bot, in a channel set to answer without a mention (`/respond questions|all`): the
core decides whether each gets an answer (bot.respond.decision); one that does gets a thread, as a mention does, if
that thread can be opened within RESPOND_MAX_DELAY_SECONDS of the message; past the quota the person is told once,
privately."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import Protocol

import discord
import structlog

from adapters.discord_bot.knowledge.access import DiscordKnowledge
from adapters.discord_bot.places.message_places import places_of, quota_channel
from adapters.discord_bot.reply.surfaces import REPLY_LIMITS, ChannelReply, Destination, DiscordRateLimits, OnPosted
from adapters.shared.place_settings import respond_mode
from adapters.shared.platform_jobs import Kept, PlatformJobs
from bot.core import Turn
from bot.errors import FailureKind, ReplyFailure
from bot.reply.render import failure_note
from bot.respond.decision import SKIP_LATE, SKIP_QUOTA, Decision, RespondMode, Unprompted
from bot.state.forget import scope_of
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

    async def create_thread(self, message: discord.Message) -> discord.Thread: ...

    def linker(self, key: str) -> OnPosted: ...

    def kept(self, message: discord.Message) -> Kept: ...


class UnaskedAnswers:
    def __init__(self, host: UnaskedHost) -> None:
        self._host = host
        self._responder = host.jobs.core.responder

    @staticmethod
    def may_answer(message: discord.Message) -> bool:
        """A person's top-level message in a server's text channel (threads the bot isn't in stay theirs)."""
        return isinstance(message.channel, discord.TextChannel) and message.guild is not None

    async def consider(self, message: discord.Message, arrived: float) -> None:
        """Answer `message` if its channel answers without a mention and the core decides it should."""
        jobs = self._host.jobs
        try:
            mode = await respond_mode(jobs.core, places_of(message.channel, message.guild))
        except ReplyFailure:
            return  # Redis is out of reach: mentions are still answered (and told why they can't be)
        if mode is RespondMode.MENTIONS or not await jobs.first_to_claim(f"discord:msg:{message.id}"):
            return
        if not self._host.allowed(message.author, message.guild, message.channel):
            return  # someone who asked nothing is not told they may not ask
        decision = await self._decide(message, mode)
        if decision.answer:
            await self._answer(message, decision, arrived)
        elif decision.unanswerable:
            await self._note_gap(message)

    async def _decide(self, message: discord.Message, mode: RespondMode) -> Decision:
        places = places_of(message.channel, message.guild)
        unprompted = Unprompted(
            "discord",
            str(message.channel.id),
            str(message.id),
            _ANY_MENTION.sub("", message.content).strip(),
            to_someone_else=self._host.to_someone_else(message),
            files=len(message.attachments),
            payer=payer_of("discord", scope_of("discord"), str(message.author.id), places),
        )
        return await self._responder.decide(
            unprompted, mode, lambda: self._host.knowledge.access(message.guild, message.author, message.channel)
        )

    async def _answer(self, message: discord.Message, decision: Decision, arrived: float) -> None:
        host, jobs = self._host, self._host.jobs
        key = f"discord:conv:{message.id}"  # a thread started from a message shares its id
        asker = Turn(
            key, str(message.author.id), message.author.display_name, "", channel=quota_channel(message.channel)
        )
        try:
            await jobs.core.admit(asker)
        except ReplyFailure as failure:
            await self._over_quota(message, failure)
            return
        destination = await self._open_in_time(message, arrived + self._responder.max_delay_seconds)
        if destination is None:
            self._responder.dropped("discord", SKIP_LATE)
            log.info("unasked_message_too_late", channel=message.channel.id, message=message.id)
            return
        turn = replace(await host.turn_for(key, message), admitted=True, found=decision.found, received_at=arrived)
        place = {"channel_id": message.channel.id, "message_id": message.id, "thread_id": message.id}
        recording = jobs.record(key, place, REPLY_LIMITS)
        surface = ChannelReply(
            destination, destination.channel.id, host.rate_limits, host.linker(key), recording, votes=str(message.id)
        )
        await jobs.answer(turn, surface, recording, host.kept(message))

    async def _note_gap(self, message: discord.Message) -> None:
        """A question the bot stayed silent on, for `/knowledge gaps`."""
        kept = self._host.kept(message)
        try:
            await self._host.jobs.feedback.note_unanswered(
                kept.scope, message.content, kept.link, kept.asker, kept.channel, time.time()
            )
        except ReplyFailure:
            log.warning("unanswered_question_not_noted", channel=message.channel.id)

    async def _over_quota(self, message: discord.Message, failure: ReplyFailure) -> None:
        self._responder.dropped("discord", SKIP_QUOTA if failure.kind is FailureKind.QUOTA else failure.kind.name)

        async def tell() -> None:
            try:
                await message.author.send(failure_note(failure))
            except discord.HTTPException:
                log.info("quota_notice_not_sent", user=message.author.id)

        server = message.guild.id if message.guild else "dm"
        await self._host.jobs.refuse_once(f"discord:unasked:{message.author.id}:{server}", tell)

    async def _open_in_time(self, message: discord.Message, deadline: float) -> Destination | None:
        """The message's thread, if a slot of the channel's thread creations comes before `deadline` (else None: a
        burst bigger than the channel's limit leaves its last messages unanswered rather than answered late)."""
        limits = self._host.rate_limits
        slot = await limits.limits.reserve(limits.creates(message.channel.id), deadline - time.monotonic())
        if slot is None:
            return None
        try:
            async with slot:
                return Destination(await self._host.create_thread(message))
        except discord.HTTPException as error:
            log.info("thread_unavailable_replying_instead", channel=message.channel.id, reason=str(error)[:200])
            return Destination(message.channel, reply_to=message)
