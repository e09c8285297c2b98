"""Discord: mentions open a thread, DMs are one conversation, /ask /reset /model.

Conversation keys:
  discord:conv:<id>  a thread (a thread started from a message has that message's id, so
                     the key is known before the thread exists) or a reply chain's root
  discord:dm:<id>    a DM channel
  discord:ask:<id>   a /ask outside threads and DMs; replies to its answer continue it
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
import structlog
import yarl
from discord import app_commands

from bot import budget
from bot.attachments import Attachment, DownloadFailed, read_attachments, with_files
from bot.budget import Bucket, RateLimits
from bot.core import ChatCore, Turn
from bot.errors import ReplyFailure
from bot.ledger import INTERRUPTED_NOTE, ReplyRecord, interrupted_ending
from bot.loop import cancel_and_wait, freeze_startup_heap, retrieve_outcome
from bot.render import failure_note
from bot.surface import SurfaceLimits
from config.env import ConfigError, Env
from config.settings import Settings

NAME = "discord"
TOKEN_VARIABLES = ("DISCORD_TOKEN",)

log = structlog.get_logger(__name__)

MAX_CONTENT = 2000
THREAD_NAME_LENGTH = 90
DENIAL_NOTICE_TTL = 24 * 3600
EVENT_CLAIM_SECONDS = 3600  # longer than any redelivery of one event
REPLY_LIMITS = SurfaceLimits(max_length=MAX_CONTENT, indicator=" ▌", min_edit_interval=1.0)
TYPING_DELAY = 0.4  # seconds without text before "typing…" shows (quick answers skip it)
THREAD_CHANNEL_TYPES = (discord.ChannelType.text, discord.ChannelType.news)
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    read_message_history=True,
)


@dataclass(frozen=True)
class DiscordSettings:
    token: str
    api_base_url: str
    gateway_url: str | None
    command_guild_ids: frozenset[str]
    allowed_guild_ids: frozenset[str]
    allowed_channel_ids: frozenset[str]
    allowed_role_ids: frozenset[str]
    blocked_user_ids: frozenset[str]
    allow_dms: bool
    shard_count: int | None  # None: as many as Discord recommends (GET /gateway/bot)
    shard_ids: list[int] | None  # None: every shard, in this process

    @classmethod
    def from_env(cls, env: Env) -> DiscordSettings:
        token = env.optional_str("DISCORD_TOKEN")
        if token is None:
            raise ConfigError("DISCORD_TOKEN is not set: create a bot in the Discord developer portal")
        return cls(
            token=token,
            api_base_url=(env.url("DISCORD_API_BASE_URL", "https://discord.com/api/v10", ("http", "https")) or "")
            .rstrip("/"),
            gateway_url=env.url("DISCORD_GATEWAY_URL", None, ("ws", "wss")),
            command_guild_ids=env.id_set("DISCORD_GUILD_IDS"),
            allowed_guild_ids=env.id_set("DISCORD_ALLOWED_GUILD_IDS"),
            allowed_channel_ids=env.id_set("DISCORD_ALLOWED_CHANNEL_IDS"),
            allowed_role_ids=env.id_set("DISCORD_ALLOWED_ROLE_IDS"),
            blocked_user_ids=env.id_set("DISCORD_BLOCKED_USER_IDS"),
            allow_dms=env.bool("ALLOW_DMS", True),
            **_shards(env),
        )


def _shards(env: Env) -> dict[str, Any]:
    count_text = env.str("DISCORD_SHARD_COUNT", "auto").lower()
    count = None if count_text == "auto" else env.int("DISCORD_SHARD_COUNT", 1, minimum=1)
    ids_text = env.optional_str("DISCORD_SHARD_IDS")
    if ids_text is None:
        return {"shard_count": count, "shard_ids": None}
    if count is None:
        raise ConfigError("DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT (the total across every process)")
    try:
        ids = sorted({int(part) for part in ids_text.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(f"DISCORD_SHARD_IDS={ids_text!r} is invalid: expected comma-separated numbers") from None
    if not ids or ids[0] < 0 or ids[-1] >= count:
        raise ConfigError(f"DISCORD_SHARD_IDS={ids_text!r} is invalid: expected numbers from 0 to {count - 1}")
    return {"shard_count": count, "shard_ids": ids}


# -- rate limits ---------------------------------------------------------------------


class DiscordRateLimits:
    """Budgets mirroring Discord's buckets (the bot's global 50 requests per second, a channel's
    5 messages and 5 edits per 5 s), shared by every process of the bot. The global limit
    streams up to a second's worth of replies live at once; more are posted whole at the end,
    one write instead of two."""

    def __init__(self, limits: RateLimits, *, global_per_second: int = 50, per_channel: int = 5) -> None:
        self._limits = limits
        self._per_channel = per_channel
        self.global_ = limits.bucket("discord", "global", global_per_second, 1.0)

    def creates(self, channel_id: int) -> Bucket:
        return self._limits.bucket("discord", f"posts:{channel_id}", self._per_channel, 5.0)

    def edits(self, channel_id: int) -> Bucket:
        return self._limits.bucket("discord", f"edits:{channel_id}", self._per_channel, 5.0)

    def webhook(self, interaction_id: int) -> Bucket:
        """An interaction's webhook: its own bucket, exempt from the global limit."""
        return self._limits.bucket("discord", f"webhook:{interaction_id}", 5, 5.0)


# -- reply surfaces --------------------------------------------------------------------


@dataclass
class Destination:
    channel: discord.abc.Messageable
    reply_to: discord.Message | None = None  # set when the conversation is a reply chain


class ChannelReply:
    """A reply made of channel messages, edited in place as the model writes."""

    limits = REPLY_LIMITS

    def __init__(
        self,
        destination: Destination | Callable[[], Awaitable[Destination]],
        channel_id: int,
        rate_limits: DiscordRateLimits,
        on_posted: Any = None,
        place: dict[str, Any] | None = None,
    ) -> None:
        """`destination` is where the reply goes, or how to open it (a thread from a mention);
        `place` says where, for finishing the reply after a crash (see bot.ledger)."""
        self._place = place or {}
        self._open = destination if callable(destination) else None
        self._destination: asyncio.Future[Destination] | None = None if callable(destination) else _ready(destination)
        self._rate_limits = rate_limits
        self._on_posted = on_posted
        # Posts spend their budgets in post(), once the destination exists: spent earlier, while
        # a thread is still being opened, they would hold global capacity for requests that
        # cannot be sent yet (delaying the thread creations they wait for) and then go out in
        # a burst the budget no longer accounts for.
        self.post_budgets: tuple[Bucket, ...] = ()
        self._predicted_channel = channel_id

    @property
    def edit_budgets(self) -> tuple[Bucket, ...]:
        """The buckets of the channel the reply is in: known once the thread opened (or the
        reply fell back to the channel); until then, the thread's id, which is the mention's."""
        channel_id = self._predicted_channel
        if self._destination is not None and self._destination.done() and not self._destination.cancelled():
            channel_id = self._destination.result().channel.id
        return (self._rate_limits.edits(channel_id), self._rate_limits.global_)

    def open(self) -> None:
        """Start opening the destination (a thread) now, not when the reply first needs it."""
        if self._destination is None:
            assert self._open is not None
            self._destination = asyncio.ensure_future(self._open())

    async def _where(self) -> Destination:
        self.open()
        assert self._destination is not None
        # Shielded: the waiting indicator is cancelled when text arrives, and cancelling a
        # task cancels the future it awaits, which would lose the thread for the reply itself.
        return await asyncio.shield(self._destination)

    async def show_waiting(self) -> None:
        destination = await self._where()
        await asyncio.sleep(TYPING_DELAY)
        global_ = (self._rate_limits.global_,)
        while True:
            # Typing is cosmetic: it takes only a spare write, looking again 2 s later (in a
            # burst that fills the global limit, it shows when the burst is over).
            if charge := await budget.try_spare(global_):
                async with charge:
                    await destination.channel.typing()
            await asyncio.sleep(8 if charge else 2)  # Discord shows "typing…" for 10 s per request

    async def post(self, text: str, *, final: bool) -> discord.Message:
        destination = await self._where()
        async with budget.spend((self._rate_limits.creates(destination.channel.id), self._rate_limits.global_)):
            if destination.reply_to is not None:
                message = await destination.reply_to.reply(text, mention_author=False)
            else:
                message = await destination.channel.send(text)
        if self._on_posted is not None:
            await self._on_posted(message)
        return message

    async def edit(self, handle: discord.Message, text: str, *, final: bool) -> None:
        await handle.edit(content=text)

    def recovery_place(self) -> dict[str, Any]:
        return self._place

    @staticmethod
    def recovery_handle(message: discord.Message) -> dict[str, Any]:
        return {"channel_id": message.channel.id, "message_id": message.id}


class InteractionReply:
    """The answer to a deferred slash command: the original response, then follow-ups."""

    limits = REPLY_LIMITS

    def __init__(self, interaction: discord.Interaction, rate_limits: DiscordRateLimits, on_posted: Any = None) -> None:
        self._interaction = interaction
        self._on_posted = on_posted
        self._used_original = False
        self.post_budgets = self.edit_budgets = (rate_limits.webhook(interaction.id),)

    async def show_waiting(self) -> None:
        return None  # the deferred response already shows "… is thinking"

    async def post(self, text: str, *, final: bool) -> discord.Message | str:
        if not self._used_original:
            self._used_original = True
            message = await self._interaction.edit_original_response(content=text)
            if self._on_posted is not None:
                await self._on_posted(message)
            return "original"
        return await self._interaction.followup.send(text, wait=True)

    async def edit(self, handle: discord.Message | str, text: str, *, final: bool) -> None:
        if handle == "original":
            await self._interaction.edit_original_response(content=text)
        else:
            await handle.edit(content=text)  # type: ignore[union-attr]


# -- the bot ---------------------------------------------------------------------------


def thread_name(text: str) -> str:
    name = " ".join(text.split()) or "Conversation"
    return name if len(name) <= THREAD_NAME_LENGTH else name[: THREAD_NAME_LENGTH - 1].rstrip() + "…"


class MistralDiscordBot(discord.AutoShardedClient):
    def __init__(self, core: ChatCore, settings: DiscordSettings) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.dm_messages = True
        intents.message_content = True
        super().__init__(
            intents=intents,
            http_trace=self._count_rate_limits(),
            allowed_mentions=discord.AllowedMentions.none(),  # nothing the model writes pings anyone
            chunk_guilds_at_startup=False,  # no member lists: memory stays flat on 100k-member servers
            member_cache_flags=discord.MemberCacheFlags.none(),
            max_messages=None,
            shard_count=settings.shard_count,
            shard_ids=settings.shard_ids,
        )
        self.core = core
        self.settings = settings
        self.rate_limits = DiscordRateLimits(core.budgets)
        self._heap_frozen = False
        self.tree = ClaimingCommandTree(self)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._register_commands()
        core.metrics.set_health(NAME, "connecting to the gateway")

    def _count_rate_limits(self) -> aiohttp.TraceConfig:
        async def on_end(_session: object, _context: object, params: aiohttp.TraceRequestEndParams) -> None:
            if params.response.status == 429:
                self.core.metrics.platform_rate_limited.labels(NAME).inc()
                log.warning("discord_rate_limited", path=params.url.path,
                            scope=params.response.headers.get("X-RateLimit-Scope", "user"))  # fmt: skip

        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(on_end)
        return trace

    # -- start-up --------------------------------------------------------------------

    async def setup_hook(self) -> None:
        try:
            if self.settings.command_guild_ids:
                for guild_id in self.settings.command_guild_ids:
                    guild = discord.Object(id=int(guild_id))
                    self.tree.copy_global_to(guild=guild)
                    await self.tree.sync(guild=guild)
            else:
                await self.tree.sync()
        except discord.HTTPException as error:
            log.error("slash_command_sync_failed", status=error.status, error=str(error))

    async def on_ready(self) -> None:
        assert self.user is not None
        log.info("discord_ready", user=str(self.user), guilds=len(self.guilds),
                 shards=sorted(self.shards), shard_count=self.shard_count)  # fmt: skip
        self.core.metrics.set_health(NAME, None)
        if not self._heap_frozen:  # once: what discord.py built to connect stays, like the core's
            self._heap_frozen = True
            freeze_startup_heap()
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._finish_interrupted_replies())

    async def on_resumed(self) -> None:
        self.core.metrics.set_health(NAME, None)

    async def on_disconnect(self) -> None:
        self.core.metrics.set_health(NAME, "gateway disconnected")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await cancel_and_wait(self._tasks)
        await super().close()

    # -- replies a dead process left half-written ---------------------------------------

    async def _finish_interrupted_replies(self) -> None:
        while True:
            await self.core.ledger.finish_orphans(NAME, self._finish_interrupted)
            await asyncio.sleep(self.core.ledger.sweep_seconds)

    async def _finish_interrupted(self, record: ReplyRecord) -> None:
        """End the reply with a note saying it was interrupted; post the note if nothing was shown."""
        try:
            if record.messages:
                last = record.messages[-1]
                channel = self.get_partial_messageable(int(last["handle"]["channel_id"]))
                text = interrupted_ending(last["text"], REPLY_LIMITS)
                await channel.get_partial_message(int(last["handle"]["message_id"])).edit(content=text)
            else:
                await self._post_note(record.place, INTERRUPTED_NOTE)
        except discord.HTTPException as error:
            log.warning("interrupted_reply_not_finished", thread=record.thread, status=error.status)
            return
        self.core.metrics.recovered.labels(NAME).inc()
        log.info("interrupted_reply_finished", thread=record.thread, messages=len(record.messages))

    async def _post_note(self, place: dict[str, Any], note: str) -> None:
        try:  # in the reply's thread (or DM), if it was opened
            await self.get_partial_messageable(int(place["thread_id"])).send(note)
        except (discord.NotFound, discord.Forbidden):
            channel = self.get_partial_messageable(int(place["channel_id"]))
            await channel.get_partial_message(int(place["message_id"])).reply(note, mention_author=False)

    # -- messages --------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        try:
            conversation = await self._conversation_for(message)
        except ReplyFailure as failure:  # Redis is down: which conversation it continues is unknown
            await message.reply(failure_note(failure), mention_author=False)
            return
        if conversation is None:
            return
        if not await self.first_to_claim(f"discord:msg:{message.id}"):
            return
        if not self._allowed(message.author, message.guild, message.channel):
            await self._explain_refusal_once(message)
            return
        key, destination, channel_id = conversation
        # A mention in a channel gets a thread from it, opened at once: in a burst of mentions the
        # thread creations then claim their share of the global limit before any reply's first
        # words do (those need their thread, and a creation pushed into the next second delays
        # its reply's words by a second more).
        where: Destination | Callable[[], Awaitable[Destination]]
        where = functools.partial(self._open_thread, message) if destination is None else destination
        place = {"channel_id": message.channel.id, "message_id": message.id, "thread_id": channel_id}
        surface = ChannelReply(where, channel_id, self.rate_limits, self._linker(key), place)
        surface.open()
        files = await read_attachments([_attachment(item) for item in message.attachments])
        turn = Turn(key, str(message.author.id), message.author.display_name,
                    with_files(self._without_mention(message.content), files),
                    channel=_quota_channel(message.channel), notices=files.notices)  # fmt: skip
        await self._answer(turn, surface)

    async def first_to_claim(self, key: str) -> bool:
        """Only one process answers an event, however the shards are spread (or overlap). Without
        Redis to tell, every process that got it answers: better twice than never."""
        try:
            return await self.core.store.claim(key, EVENT_CLAIM_SECONDS)
        except ReplyFailure:
            return True

    async def _conversation_for(
        self, message: discord.Message
    ) -> tuple[str, Destination | None, int] | None:
        """The conversation a message belongs to, or None when it isn't addressed to the bot.

        The destination is None for a mention in a channel: its thread is opened only once
        the author is known to be allowed.
        """
        assert self.user is not None
        channel = message.channel
        if isinstance(channel, discord.DMChannel):
            return f"discord:dm:{channel.id}", Destination(channel), channel.id
        if isinstance(channel, discord.Thread):
            if channel.owner_id == self.user.id or self._mentions_me(message) or self._replies_to_me(message):
                return f"discord:conv:{channel.id}", Destination(channel), channel.id
            return None
        if self._replies_to_me(message):
            replied = message.reference.message_id if message.reference else None
            key = await self.core.store.resolve(f"discord:msg:{replied}") or f"discord:conv:{replied}"
            return key, Destination(channel, reply_to=message), channel.id
        if self._mentions_me(message):
            # A thread started from a message shares that message's id.
            return f"discord:conv:{message.id}", None, message.id
        return None

    async def _open_thread(self, message: discord.Message) -> Destination:
        channel = message.channel
        try:
            if getattr(channel, "type", None) not in THREAD_CHANNEL_TYPES:
                raise _NoThreads("channel type has no threads")
            async with budget.spend((self.rate_limits.creates(channel.id), self.rate_limits.global_)):
                return Destination(await self._create_thread(message))
        except (discord.Forbidden, discord.HTTPException, _NoThreads) as error:
            log.info("thread_unavailable_replying_instead", channel=channel.id, reason=str(error)[:200])
            return Destination(channel, reply_to=message)

    async def _create_thread(self, message: discord.Message) -> discord.Thread:
        """A thread started from `message`, as soon as it exists.

        discord.py returns from the request that empties a rate-limit bucket only once the
        bucket resets (up to 5 s when several mentions arrive in one channel together), though
        the thread exists at once; Discord announces it on the gateway right away, so the
        first of the two is used and the request is left to finish on its own.
        """
        announced: asyncio.Future[discord.Thread] = asyncio.ensure_future(
            self.wait_for("thread_create", check=lambda thread: thread.id == message.id)
        )
        created = asyncio.ensure_future(message.create_thread(name=thread_name(self._without_mention(message.content))))
        try:
            await asyncio.wait((announced, created), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            created.cancel()
            raise
        finally:
            announced.cancel()
        if created.done() or not announced.done() or announced.cancelled():
            return await created
        self._tasks.add(created)
        created.add_done_callback(self._tasks.discard)
        created.add_done_callback(retrieve_outcome)
        return announced.result()

    def _linker(self, key: str) -> Any:
        async def link(posted: discord.Message) -> None:
            # Replying to any of the bot's messages continues this conversation.
            if not isinstance(posted.channel, discord.Thread | discord.DMChannel):
                await self.core.store.link(f"discord:msg:{posted.id}", key)

        return link

    async def _answer(self, turn: Turn, surface: ChannelReply | InteractionReply) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # cancelled on close(), which lets the reply land its final text
        try:
            await self.core.answer(turn, surface)
        except Exception:  # noqa: BLE001 - a platform error in one reply must not end the others
            log.exception("discord_reply_failed", thread=turn.thread)
        finally:
            self._tasks.discard(task)

    def _mentions_me(self, message: discord.Message) -> bool:
        assert self.user is not None
        return any(user.id == self.user.id for user in message.mentions)

    def _replies_to_me(self, message: discord.Message) -> bool:
        assert self.user is not None
        referenced = message.reference.resolved if message.reference else None
        return isinstance(referenced, discord.Message) and referenced.author.id == self.user.id

    def _without_mention(self, content: str) -> str:
        assert self.user is not None
        return re.sub(rf"<@!?{self.user.id}>", "", content).strip()

    # -- access ----------------------------------------------------------------------

    def _allowed(self, user: discord.abc.User, guild: discord.Guild | None, channel: Any) -> bool:
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

    def _refusal(self, guild: discord.Guild | None) -> str:
        if guild is None and not self.settings.allow_dms:
            return "I don't answer direct messages here. Mention me in a server channel instead."
        return "Sorry, I'm not available to you here (this server limits who can use me, or where)."

    async def _explain_refusal_once(self, message: discord.Message) -> None:
        scope = message.guild.id if message.guild else "dm"
        with contextlib.suppress(ReplyFailure):  # without Redis, told again rather than not at all
            if not await self.core.store.claim(f"discord:refused:{message.author.id}:{scope}", DENIAL_NOTICE_TTL):
                return
        text = self._refusal(message.guild)
        try:
            await message.author.send(text)
        except discord.HTTPException:
            await message.reply(text, mention_author=False, delete_after=30)

    # -- slash commands --------------------------------------------------------------

    def _register_commands(self) -> None:
        @self.tree.command(name="ask", description="Ask the model a question")
        @app_commands.describe(prompt="Your question")
        async def ask(interaction: discord.Interaction, prompt: str) -> None:
            await self._ask(interaction, prompt)

        @self.tree.command(name="reset", description="Forget this thread's or DM's conversation")
        async def reset(interaction: discord.Interaction) -> None:
            await self._reset(interaction)

        @self.tree.command(name="model", description="Show which model answers")
        async def model(interaction: discord.Interaction) -> None:
            await interaction.response.send_message(f"I answer with {self.core.describe()}.", ephemeral=True)

    def _interaction_key(self, interaction: discord.Interaction) -> str | None:
        channel = interaction.channel
        if isinstance(channel, discord.DMChannel):
            return f"discord:dm:{channel.id}"
        if isinstance(channel, discord.Thread):
            return f"discord:conv:{channel.id}"
        return None

    async def _ask(self, interaction: discord.Interaction, prompt: str) -> None:
        if not self._allowed(interaction.user, interaction.guild, interaction.channel):
            await interaction.response.send_message(self._refusal(interaction.guild), ephemeral=True)
            return
        if not prompt.strip():
            await interaction.response.send_message("Usage: `/ask prompt: your question`", ephemeral=True)
            return
        await interaction.response.defer(thinking=True)
        key = self._interaction_key(interaction) or f"discord:ask:{interaction.id}"
        turn = Turn(key, str(interaction.user.id), interaction.user.display_name, prompt.strip(),
                    channel=_quota_channel(interaction.channel))  # fmt: skip
        surface = InteractionReply(interaction, self.rate_limits, self._linker(key))
        await self._answer(turn, surface)

    async def _reset(self, interaction: discord.Interaction) -> None:
        key = self._interaction_key(interaction)
        if key is None:
            text = "Conversations live in threads and DMs: use /reset inside one of them."
        else:
            await self.core.reset(key)
            text = "Done: I've forgotten this conversation. The next message starts fresh."
        await interaction.response.send_message(text, ephemeral=True)


class _NoThreads(Exception):
    pass


class ClaimingCommandTree(app_commands.CommandTree["MistralDiscordBot"]):
    """Slash commands run in the one process that claims the interaction first."""

    async def interaction_check(self, interaction: discord.Interaction[MistralDiscordBot], /) -> bool:
        return await interaction.client.first_to_claim(f"discord:interaction:{interaction.id}")


def _attachment(item: discord.Attachment) -> Attachment:
    async def download() -> bytes:
        try:
            return await item.read()
        except (discord.HTTPException, aiohttp.ClientError) as error:
            raise DownloadFailed(f"{type(error).__name__}: {error}") from error

    return Attachment(item.filename, item.content_type or "", item.size, download)


def _quota_channel(channel: Any) -> str:
    """Where CHANNEL_TURNS_PER_MINUTE counts a message: a thread counts as its channel, DMs not at all."""
    if isinstance(channel, discord.DMChannel):
        return ""
    return str(getattr(channel, "parent_id", None) or channel.id) if isinstance(channel, discord.Thread) else str(channel.id)


def _ready(destination: Destination) -> asyncio.Future[Destination]:
    future: asyncio.Future[Destination] = asyncio.get_running_loop().create_future()
    future.set_result(destination)
    return future


# -- entry points ----------------------------------------------------------------------


def point_at(settings: DiscordSettings) -> None:
    """Send REST (and, if set, gateway) traffic to the configured URLs (proxies, tests)."""
    discord.http.Route.BASE = settings.api_base_url
    if settings.gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)


async def run(core: ChatCore, settings: Settings) -> None:
    discord_settings = DiscordSettings.from_env(settings.env)
    point_at(discord_settings)
    client = MistralDiscordBot(core, discord_settings)
    async with client:
        try:
            await client.start(discord_settings.token)
        except discord.LoginFailure as error:
            raise ConfigError(f"DISCORD_TOKEN was rejected by Discord ({error})") from None
        except discord.PrivilegedIntentsRequired:
            raise ConfigError(
                "Discord refused the Message Content intent: enable it for the bot in the developer portal "
                "(Bot → Privileged Gateway Intents → Message Content Intent)"
            ) from None


def application_id_from_token(token: str) -> str:
    """A bot token's first segment is its user id (= the application id), base64-encoded."""
    head = token.split(".", 1)[0]
    try:
        return base64.b64decode(head + "=" * (-len(head) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ConfigError("DISCORD_TOKEN does not look like a bot token") from None


def invite_url(token: str) -> str:
    client_id = application_id_from_token(token)
    return (
        f"https://discord.com/oauth2/authorize?client_id={client_id}"
        f"&scope=bot%20applications.commands&permissions={INVITE_PERMISSIONS.value}"
    )


def command(argv: list[str], settings: Settings) -> int | None:
    if "--invite-url" not in argv:
        return None
    print(invite_url(DiscordSettings.from_env(settings.env).token))
    return 0
