"""A server's knowledge on Discord: whose it is (the scope "discord:<guild id>"), which channels are knowledge (kept
in Redis for every process), and what a question may be answered from: the server's knowledge and the deployment's,
and of the channels' messages only those of channels the asker can see now and everyone who sees the answer can see
too (a private channel's, inside that channel only), from the guild discord.py has cached."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import discord
import structlog

from adapters.shared.feedback.records import GapEntry
from adapters.shared.knowledge_sources.channels import KnowledgeChannels
from adapters.shared.knowledge_sources.live import LiveChanges
from adapters.shared.web_knowledge.commands import WebCommands
from adapters.shared.web_knowledge.registry import WebSources
from bot.app import Services
from bot.errors import ReplyFailure
from bot.knowledge.passages import DEPLOYMENT_SCOPE, Access
from bot.knowledge.service import Knowledge

log = structlog.get_logger(__name__)

PLATFORM = "discord"
SCOPE_PREFIX = f"{PLATFORM}:"


def guild_scope(guild_id: int | str) -> str:
    return f"{SCOPE_PREFIX}{guild_id}"


def guild_of_scope(scope: str) -> int:
    return int(scope.removeprefix(SCOPE_PREFIX))


class DiscordKnowledge:
    """The knowledge (started on first use, `opener` None where the bot has none) and the servers' channels."""

    def __init__(self, services: Services) -> None:
        self.opener = services.knowledge
        history = services.settings.history
        self.channels = KnowledgeChannels(services.redis.main, history.key_prefix, services.metrics.redis_errors.inc)
        self.live = LiveChanges(services.redis.main, history.key_prefix, PLATFORM)  # edits, deletes: not read back
        self.web = WebCommands(WebSources(services.redis.main, history.key_prefix), services.settings.knowledge.web)
        self._starting: asyncio.Task[Knowledge | None] | None = None

    @property
    def current(self) -> Knowledge | None:
        """The knowledge if it is started in this process."""
        return self.opener.current if self.opener is not None else None

    async def get(self) -> Knowledge | None:
        """The knowledge, started now if it wasn't; None (logged) when it can't be."""
        return None if self.opener is None else await self.opener.get_or_none()

    async def in_use(self) -> bool:
        """Whether some server has knowledge channels (a history may be read, messages kept)."""
        try:
            return bool(await self.channels.scopes(PLATFORM) or await self.channels.backfills(PLATFORM))
        except ReplyFailure as failure:
            log.warning("knowledge_state_unknown", detail=failure.detail)
            return False

    async def access(self, guild: discord.Guild | None, asker: object, place: object) -> Access | None:
        """What a question asked by `asker` in `guild` (None: a DM) may be answered from, shown in `place` (the
        channel or thread the answer goes to): of the channels' messages, those both the asker and everyone who can
        see the place may read. None without knowledge."""
        if self.current is None:
            await self._start_if_used(guild)
            return None
        if guild is None:
            return Access((DEPLOYMENT_SCOPE,))
        scope = guild_scope(guild.id)
        try:
            in_use = scope in await self.channels.scopes(PLATFORM)
            channels = await self.channels.readable(scope) if in_use else frozenset()
        except ReplyFailure:  # Redis out of reach: no channel's messages, the documents still
            channels = frozenset()
        readable = readable_channels(guild, asker, channels) & audience_channels(guild, place, channels)
        return Access((scope, DEPLOYMENT_SCOPE), readable)

    async def _start_if_used(self, guild: discord.Guild | None) -> None:
        """Knowledge another process started for this server (a channel opted in there) is started here too, once,
        in the background: the next question uses it."""
        if self.opener is None or guild is None or self._starting is not None:
            return
        try:
            used = guild_scope(guild.id) in await self.channels.scopes(PLATFORM)
        except ReplyFailure:
            return
        if used:
            self._starting = asyncio.create_task(self.get(), name="knowledge-start")


def readable_channels(guild: discord.Guild, asker: object, channel_ids: Iterable[str]) -> frozenset[str]:
    """Those of `channel_ids` that `asker` may view now (roles and overwrites), from the cached guild: no API call."""
    if not isinstance(asker, discord.Member):
        return frozenset()
    readable = set()
    for channel_id in channel_ids:
        channel = guild.get_channel(int(channel_id))
        if channel is not None and channel.permissions_for(asker).view_channel:
            readable.add(str(channel_id))
    return frozenset(readable)


def audience_channels(guild: discord.Guild, place: object, channel_ids: Iterable[str]) -> frozenset[str]:
    """Those of `channel_ids` that everyone who can see `place` may view: the place's own channel (a thread's parent
    too), and the channels @everyone may view (from the guild's roles and overwrites, cached)."""
    own = {str(getattr(place, "id", "")), str(getattr(place, "parent_id", None) or "")} - {""}
    everyone = guild.default_role
    audience = set()
    for channel_id in channel_ids:
        channel = guild.get_channel(int(channel_id))
        if str(channel_id) in own or (channel is not None and channel.permissions_for(everyone).view_channel):
            audience.add(str(channel_id))
    return frozenset(audience)


async def readable_gaps(guild: discord.Guild, member: object, entries: list[GapEntry]) -> list[GapEntry]:
    """Those of `entries` asked in a channel or thread `member` may view now (one that can't be found: none)."""
    places = {entry.channel or _linked_channel(entry.link) for entry in entries}
    readable = {place for place in places if await _views(guild, member, place)}
    return [entry for entry in entries if (entry.channel or _linked_channel(entry.link)) in readable]


async def _views(guild: discord.Guild, member: object, channel_id: str) -> bool:
    if not isinstance(member, discord.Member) or not channel_id.isdigit():
        return False
    place = guild.get_channel_or_thread(int(channel_id))
    if place is None:  # an archived thread is no longer cached
        try:
            place = await guild.fetch_channel(int(channel_id))
        except discord.HTTPException as error:
            log.info("gap_channel_unknown", channel=channel_id, status=error.status)
            return False
    try:
        return bool(place.permissions_for(member).view_channel)
    except discord.ClientException:  # a thread whose parent is gone
        return False


def _linked_channel(link: str) -> str:
    """The channel of a message's link (https://discord.com/channels/<guild>/<channel>/<message>), "" if it isn't."""
    parts = link.removeprefix("https://discord.com/channels/").split("/")
    return parts[1] if len(parts) == 3 and link.startswith("https://discord.com/channels/") else ""


def knowledge_channel(channel: object) -> int | None:
    """The channel whose opt-in makes a message there knowledge: the channel itself (a text or forum channel), or a
    public thread's parent (a forum's posts are its public threads). Private threads never are (seeing their parent
    doesn't mean seeing them)."""
    if isinstance(channel, discord.Thread):
        public = channel.type in (discord.ChannelType.public_thread, discord.ChannelType.news_thread)
        return channel.parent_id if public else None
    if isinstance(channel, discord.TextChannel | discord.ForumChannel):
        return channel.id
    return None
