"""The Discord client: mentions open a thread (.reply.threads), DMs are one conversation (commands: .commands;
leaving a server: .leaving; replies a stopped process left: .reply.interrupted).

Conversation keys:
  discord:conv:<id>  a thread (a thread started from a message has that message's id, so
                     the key is known before the thread exists) or a reply chain's root
  discord:dm:<id>    a DM or group DM channel (people's too, reached through a user install)
  discord:ask:<id>   a /ask (or "Ask <bot>" where the bot is not) outside threads and DMs;
                     replies to its answer continue it where the bot is in the channel
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import discord
import structlog
from discord import app_commands

from adapters.discord_bot.commands import Commands
from adapters.discord_bot.files import attachment
from adapters.discord_bot.forget_command import ForgetCommand
from adapters.discord_bot.helpdesk.solved_marks import DiscordSolvedMarks
from adapters.discord_bot.knowledge.access import DiscordKnowledge, guild_scope
from adapters.discord_bot.knowledge.adding import AddedFollower
from adapters.discord_bot.knowledge.commands import KnowledgeCommands
from adapters.discord_bot.knowledge.feed import KnowledgeFeed
from adapters.discord_bot.knowledge.history import HistoryReader
from adapters.discord_bot.leaving import ServerLeaving
from adapters.discord_bot.places.forum_posts import forum_post, post_alias, with_title
from adapters.discord_bot.places.message_places import places_of
from adapters.discord_bot.reply.helper_calls import NO_HELPDESK, help_desk, stays_out_of
from adapters.discord_bot.reply.interrupted import InterruptedReplies
from adapters.discord_bot.reply.solved_button import SolvedButton
from adapters.discord_bot.reply.surfaces import REPLY_LIMITS, ChannelReply, Destination, DiscordRateLimits, OnPosted
from adapters.discord_bot.reply.threads import Threads
from adapters.discord_bot.reply.tool_buttons import ToolAnswerButton
from adapters.discord_bot.reply.vote_buttons import VoteButton, answer_id, person, take_reason
from adapters.discord_bot.settings import DiscordSettings
from adapters.discord_bot.turns import turn_about
from adapters.discord_bot.unasked import UnaskedAnswers
from adapters.shared.files.attachments import Attachment
from adapters.shared.platform_jobs import Kept, PlatformJobs
from adapters.shared.ratelimit import Write
from bot.app import Services
from bot.core import Turn
from bot.errors import ReplyFailure
from bot.loop import freeze_startup_heap
from bot.reply.render import failure_note
from config.settings import ImageSettings

NAME = "discord"
log = structlog.get_logger(__name__)


# -- the bot ---------------------------------------------------------------------------


class MistralDiscordBot(discord.AutoShardedClient):
    def __init__(self, services: Services, settings: DiscordSettings, images: ImageSettings) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.dm_messages = True
        intents.message_content = True
        intents.guild_reactions = True  # a ✅ marks a help thread solved
        super().__init__(
            intents=intents,
            http_trace=self._count_rate_limits(),
            allowed_mentions=discord.AllowedMentions.none(),  # nothing the model writes pings anyone
            chunk_guilds_at_startup=False,  # no member lists: memory stays flat on 100k-member servers
            member_cache_flags=discord.MemberCacheFlags.none(),
            max_messages=None,
            shard_count=settings.shard_count,
            shard_ids=settings.shard_ids,  # type: ignore[arg-type]  # discord.py's own default is None
        )
        self.jobs = PlatformJobs(services, NAME, images)
        self.settings = settings
        self.rate_limits = DiscordRateLimits(self.jobs.rate_limits)
        self._heap_frozen = False
        self.tree = ClaimingCommandTree(self)
        self._threads = Threads(self, self.rate_limits)
        self._commands = Commands(self)
        self._commands.register(self.tree)
        self.knowledge = DiscordKnowledge(services)
        self.history = HistoryReader(self, self.knowledge, services.redis.main, services.settings.history.key_prefix)
        self._feed = KnowledgeFeed(self, self.knowledge, self.jobs)
        self._added = AddedFollower(self.knowledge, self.jobs)
        self.solved = DiscordSolvedMarks(self)
        self.solved.register(self.tree)
        KnowledgeCommands(self).register(self.tree)
        ForgetCommand(self.jobs, self.knowledge, self.solved.solving).register(self.tree)
        self._unasked = UnaskedAnswers(self)
        self._leaving = ServerLeaving(self.jobs, self.knowledge, NAME)
        self.jobs.metrics.set_health(NAME, "connecting to the gateway")

    def _count_rate_limits(self) -> aiohttp.TraceConfig:
        async def on_end(_session: object, _context: object, params: aiohttp.TraceRequestEndParams) -> None:
            if params.response.status == 429:
                self.jobs.metrics.platform_rate_limited.labels(NAME).inc()
                log.warning(
                    "discord_rate_limited",
                    path=params.url.path,
                    scope=params.response.headers.get("X-RateLimit-Scope", "user"),
                )

        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(on_end)
        return trace

    # -- start-up --------------------------------------------------------------------

    async def setup_hook(self) -> None:
        assert self.user is not None  # logged in: the menu command is named after the bot
        await self.jobs.keep_replies(InterruptedReplies(self, self.jobs.metrics, NAME).finish)
        self.add_dynamic_items(ToolAnswerButton, VoteButton, SolvedButton)  # a click on any process's buttons
        self._commands.register_menu(self.tree, self.user.name)
        self.jobs.spawn(self._start_knowledge())
        try:
            if self.settings.command_guild_ids:  # test guilds: the commands there only, as the server's
                for guild_id in self.settings.command_guild_ids:
                    guild = discord.Object(id=int(guild_id))
                    self.tree.copy_global_to(guild=guild)
                    await self.tree.sync(guild=guild)
            else:
                self._commands.install_everywhere(self.tree, self.application)
                await self.tree.sync()
        except discord.HTTPException as error:
            log.error("slash_command_sync_failed", status=error.status, error=str(error))

    async def on_ready(self) -> None:
        assert self.user is not None
        log.info(
            "discord_ready",
            user=str(self.user),
            guilds=len(self.guilds),
            shards=sorted(self.shards),
            shard_count=self.shard_count,
        )
        self.jobs.metrics.set_health(NAME, None)
        if not self._heap_frozen:  # once: what discord.py built to connect stays, like the core's
            self._heap_frozen = True
            freeze_startup_heap()

    async def _start_knowledge(self) -> None:
        """Knowledge in use (a channel opted in, a history being read) is started now, and the readings resume."""
        if await self.knowledge.in_use() and await self.knowledge.get() is not None:
            self.history.start()

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        await self._leaving.forget(guild)

    async def on_resumed(self) -> None:
        self.jobs.metrics.set_health(NAME, None)

    async def on_disconnect(self) -> None:
        self.jobs.metrics.set_health(NAME, "gateway disconnected")

    async def close(self) -> None:
        await self.history.aclose()
        await self.jobs.close()
        await super().close()

    # -- messages --------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        arrived = time.monotonic()
        if self._feed.wants(message):
            self.jobs.spawn(self._feed.on_message(message))
        if message.author.bot or message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return  # other bots (never a loop between two), joins, pins…
        if await stays_out_of(self, message):
            return  # a thread handed to the helpers, or where one wrote: theirs unless the bot is mentioned
        try:
            conversation = await self._conversation_for(message)
        except ReplyFailure as failure:  # Redis is down: which conversation it continues is unknown
            await message.reply(failure_note(failure), mention_author=False)
            return
        if conversation is None:
            if self._unasked.may_answer(message):
                await self._unasked.consider(message, arrived)
            return
        if not await self.jobs.first_to_claim(f"discord:msg:{message.id}"):
            return
        if not self.allowed(message.author, message.guild, message.channel):
            scope = message.guild.id if message.guild else "dm"
            await self.jobs.refuse_once(
                f"discord:{message.author.id}:{scope}", functools.partial(self._refuse, message)
            )
            return
        key, destination, channel_id = conversation
        # A mention in a channel gets a thread from it, opened at once: in a burst of mentions the
        # thread creations then claim their share of the global limit before any reply's first
        # words do (those need their thread, and a creation pushed into the next second delays
        # its reply's words by a second more).
        where: Destination | Callable[[], Awaitable[Destination]]
        where = functools.partial(self.open_thread, message) if destination is None else destination
        place = {"channel_id": message.channel.id, "message_id": message.id, "thread_id": channel_id}
        recording = self.jobs.record(key, place, REPLY_LIMITS)
        helpdesk = NO_HELPDESK
        if message.guild is not None:  # in a help channel, or its thread: Solved, and Still need help?
            helpdesk = await help_desk(self.jobs, places_of(message.channel, message.guild))
        surface = ChannelReply(
            where, channel_id, self.rate_limits, self.linker(key), recording, votes=str(message.id), helpdesk=helpdesk
        )
        surface.open()
        await self.jobs.answer(await self.turn_for(key, message), surface, recording, self.kept(message))

    def kept(self, message: discord.Message) -> Kept:
        """Where the votes on the answer to `message` are kept."""
        scope = guild_scope(message.guild.id) if message.guild else "discord:dm"
        return Kept(answer_id(message.id), scope, message.jump_url, person(message.author), str(message.channel.id))

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        await take_reason(self, interaction)  # a 👎's form, in whichever process gets it

    async def on_raw_message_edit(self, event: discord.RawMessageUpdateEvent) -> None:
        await self._feed.on_edit(event)
        await self._added.on_edit(event)
        await self.solved.edited(event)

    async def on_raw_message_delete(self, event: discord.RawMessageDeleteEvent) -> None:
        await self._feed.on_delete(event.guild_id, event.channel_id, (event.message_id,))
        await self._added.on_delete(event.guild_id, (event.message_id,))
        await self.solved.deleted(event.guild_id, (event.message_id,))

    async def on_raw_bulk_message_delete(self, event: discord.RawBulkMessageDeleteEvent) -> None:
        await self._feed.on_delete(event.guild_id, event.channel_id, event.message_ids)
        await self._added.on_delete(event.guild_id, event.message_ids)
        await self.solved.deleted(event.guild_id, event.message_ids)

    async def on_raw_reaction_add(self, event: discord.RawReactionActionEvent) -> None:
        await self.solved.reacted(event)

    async def on_thread_update(self, before: discord.Thread, after: discord.Thread) -> None:
        await self.solved.tags_changed(before, after)

    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        await self._feed.on_channel_delete(channel)
        await self._added.on_place_delete(channel.guild.id, channel.id)

    async def on_raw_thread_delete(self, event: discord.RawThreadDeleteEvent) -> None:
        await self._feed.on_thread_delete(event.guild_id, event.parent_id, event.thread_id)
        await self._added.on_place_delete(event.guild_id, event.thread_id)

    async def turn_for(self, key: str, message: discord.Message) -> Turn:
        """The question: the message with its files, after the message it replies to, if that is
        someone else's (the person is pointing at it)."""
        pointed = message.reference.resolved if message.reference else None
        about = None
        if isinstance(pointed, discord.Message) and pointed.author.id != getattr(self.user, "id", None):
            about = (pointed.author.display_name, pointed.content, self.attachments_of(pointed))
        text = with_title(message, self._without_mention(message.content))
        question = await self.jobs.question(text, self.attachments_of(message), about, asker=str(message.author.id))
        return await turn_about(key, message.author, question, message, self.knowledge)

    def attachments_of(self, message: discord.Message) -> list[Attachment]:
        return [attachment(item) for item in message.attachments]

    async def _conversation_for(self, message: discord.Message) -> tuple[str, Destination | None, int] | None:
        """The conversation a message belongs to, or None when it isn't addressed to the bot.

        The destination is None for a mention in a channel: its thread is opened only once
        the author is known to be allowed.
        """
        assert self.user is not None
        channel = message.channel
        if isinstance(channel, discord.DMChannel):
            return f"discord:dm:{channel.id}", Destination(channel), channel.id
        if isinstance(channel, discord.Thread):
            # In the bot's own threads every message is a follow-up, unless people there talk to each other.
            ours = channel.owner_id == self.user.id and not self.to_someone_else(message)
            if ours or self._mentions_me(message) or self._replies_to_me(message):
                return f"discord:conv:{channel.id}", Destination(channel), channel.id
            if forum_post(channel) and not self.to_someone_else(message):  # a post it answered unasked goes on
                key = await self.jobs.resolve(post_alias(channel.id))
                return (key, Destination(channel), channel.id) if key else None
            return None
        if self._replies_to_me(message):
            replied = message.reference.message_id if message.reference else None
            key = await self.jobs.resolve(f"discord:msg:{replied}") or f"discord:conv:{replied}"
            return key, Destination(channel, reply_to=message), channel.id
        if self._mentions_me(message):
            # A thread started from a message shares that message's id.
            return f"discord:conv:{message.id}", None, message.id
        return None

    async def open_thread(self, message: discord.Message, slot: Write | None = None) -> Destination:
        return await self._threads.open(message, self._without_mention(message.content), slot)

    def linker(self, key: str) -> OnPosted:
        async def link(posted: discord.Message) -> None:
            # Replying to any of the bot's messages continues this conversation.
            if not isinstance(posted.channel, discord.Thread | discord.DMChannel):
                await self.jobs.link(f"discord:msg:{posted.id}", key)

        return link

    def _mentions_me(self, message: discord.Message) -> bool:
        assert self.user is not None
        return any(user.id == self.user.id for user in message.mentions)

    def _replies_to_me(self, message: discord.Message) -> bool:
        assert self.user is not None
        referenced = message.reference.resolved if message.reference else None
        return isinstance(referenced, discord.Message) and referenced.author.id == self.user.id

    def to_someone_else(self, message: discord.Message) -> bool:
        """A message for other people, not the bot: it answers someone else's message, or mentions others only."""
        assert self.user is not None
        if self._mentions_me(message) or self._replies_to_me(message):
            return False
        others = [user for user in message.mentions if user.id != self.user.id]
        return bool(message.reference or others or message.role_mentions)

    def _without_mention(self, content: str) -> str:
        assert self.user is not None
        return re.sub(rf"<@!?{self.user.id}>", "", content).strip()

    # -- access ----------------------------------------------------------------------

    def allowed(self, user: discord.abc.User, guild: discord.Guild | None, channel: Any) -> bool:
        settings = self.settings
        if str(user.id) in settings.blocked_user_ids:
            return False
        if guild is None:
            return settings.allow_dms
        if settings.allowed_guild_ids and str(guild.id) not in settings.allowed_guild_ids:
            return False
        if settings.allowed_channel_ids:
            parent = getattr(channel, "parent_id", None) if isinstance(channel, discord.Thread) else None
            if str(channel.id) not in settings.allowed_channel_ids and str(parent) not in settings.allowed_channel_ids:
                return False
        if settings.allowed_role_ids:
            roles = {str(role.id) for role in getattr(user, "roles", [])}
            if not roles & settings.allowed_role_ids:
                return False
        return True

    def refusal(self, guild: discord.Guild | None) -> str:
        if guild is None and not self.settings.allow_dms:
            return "I don't answer direct messages here. Mention me in a server channel instead."
        return "Sorry, I'm not available to you here (this server limits who can use me, or where)."

    async def _refuse(self, message: discord.Message) -> None:
        text = self.refusal(message.guild)
        try:
            await message.author.send(text)
        except discord.HTTPException:
            await message.reply(text, mention_author=False, delete_after=30)


class ClaimingCommandTree(app_commands.CommandTree["MistralDiscordBot"]):
    """Slash commands run in the one process that claims the interaction first."""

    async def interaction_check(self, interaction: discord.Interaction[MistralDiscordBot], /) -> bool:
        return await interaction.client.jobs.first_to_claim(f"discord:interaction:{interaction.id}")
