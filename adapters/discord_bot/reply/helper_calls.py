"""Discord's piece of handing a help channel's thread to people (adapters.shared.helpdesk): the helpers are a role
(`/respond helpers`), mentioned with allowed_mentions limited to that role. **Still need help?** is a button beside
👍 / 👎 under an answer in a help channel that has helpers (.vote_buttons); it and a 👎 there hand the thread off. Once
the thread was handed off, or a member with the role wrote in it, the bot stays out of it unless it is mentioned. A
forum's post handed off gets the forum's **Needs human** tag."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import discord
import structlog

from adapters.discord_bot.places.forum_tags import NEEDS_HUMAN, ForumTags
from adapters.discord_bot.places.message_places import places_of
from adapters.shared.helpdesk.calling import Outcome, Unreachable, call_helpers, helpers_of, stays_out, told
from adapters.shared.place_settings import respond_mode
from adapters.shared.platform_jobs import PlatformJobs
from adapters.shared.ratelimit import Budgets, RateLimits, Write
from bot.errors import ReplyFailure
from bot.reply.render import failure_note
from bot.respond.decision import RespondMode
from bot.state.personas import Place

log = structlog.get_logger(__name__)
Where = Callable[[], Awaitable[discord.abc.Messageable]]


@dataclass(frozen=True)
class HelpDesk:
    """What an answer offers besides its votes: in a help channel's thread, Solved (`solvable`); where the channel has
    helpers, Still need help? (`helpers`)."""

    solvable: bool = False
    helpers: bool = False


NO_HELPDESK = HelpDesk()


class Limits(Protocol):
    """Discord's buckets (.surfaces.DiscordRateLimits, which imports this module through its buttons)."""

    @property
    def limits(self) -> RateLimits: ...

    def creates(self, channel_id: int) -> Budgets: ...


class Opened(Protocol):
    @property
    def channel(self) -> discord.abc.MessageableChannel: ...


class HelperHost(Protocol):
    """What this uses of the client (client.py), which it never imports."""

    @property
    def jobs(self) -> PlatformJobs: ...

    @property
    def rate_limits(self) -> Limits: ...

    @property
    def user(self) -> discord.ClientUser | None: ...

    async def open_thread(self, message: discord.Message, slot: Write | None = None) -> Opened: ...


class DiscordHelperCall:
    """A help channel's thread as the helpers get it: `where` gives the thread (opening it if need be)."""

    def __init__(self, host: HelperHost, guild: discord.Guild, places: tuple[Place, ...], ids: tuple[str, str]) -> None:
        self._host, self._guild = host, guild
        self.places = places
        self.channel, self.thread = ids
        self.where: Where | None = None

    def _roles(self, helpers: tuple[str, ...]) -> list[discord.Role]:
        found = [self._guild.get_role(int(one)) for one in helpers if one.isdigit()]
        # Never @everyone, nor a bot's own role: the bot hands off to people only.
        return [role for role in found if role and not role.is_default() and not role.is_bot_managed()]

    async def mention(self, helpers: tuple[str, ...]) -> str:
        roles = self._roles(helpers)
        if not roles:
            raise Unreachable("its helper role was deleted, or is not one of people")
        return " ".join(role.mention for role in roles)

    async def post(self, text: str, helpers: tuple[str, ...]) -> None:
        assert self.where is not None
        thread = await self.where()
        pings = discord.AllowedMentions(everyone=False, users=False, replied_user=False, roles=self._roles(helpers))
        limits = self._host.rate_limits
        async with limits.limits.write(limits.creates(int(getattr(thread, "id", self.thread)))):
            await thread.send(text, allowed_mentions=pings)
        if isinstance(thread, discord.Thread) and isinstance(thread.parent, discord.ForumChannel):
            await self._tag_needs_human(thread)

    async def _tag_needs_human(self, post: discord.Thread) -> None:
        """A forum's post handed off wears the forum's Needs human tag (added to the forum where the bot may); what
        it can't do is said once, in the post, to whoever runs the forum."""

        async def say(text: str) -> None:
            await post.send(text, allowed_mentions=discord.AllowedMentions.none())

        try:
            tagged = await ForumTags(self._host.jobs.first_to_claim).tag(post, NEEDS_HUMAN, say)
        except discord.HTTPException as error:  # the hand-off is made: a tag left off is logged, not raised
            log.warning("needs_human_tag_failed", post=post.id, status=error.status, error=str(error)[:200])
            return
        log.info("needs_human_tag", post=post.id, outcome=tagged.value)

    async def tell_admins(self, note: str) -> None:
        log.warning("helpers_note_for_admins", guild=self._guild.id, channel=self.channel, note=note)


def thread_call(host: HelperHost, thread: discord.Thread) -> DiscordHelperCall:
    """An answer's thread in a help channel (or a forum's post)."""
    call = DiscordHelperCall(host, thread.guild, places_of(thread, thread.guild), (_parent(thread), str(thread.id)))

    async def where() -> discord.abc.Messageable:
        return thread

    call.where = where
    return call


def message_call(host: HelperHost, message: discord.Message) -> DiscordHelperCall:
    """An unasked question: the thread from it, opened when the helpers are called (a forum's post is one)."""
    assert message.guild is not None
    channel = message.channel
    if isinstance(channel, discord.Thread):
        return thread_call(host, channel)
    call = DiscordHelperCall(host, message.guild, places_of(channel, message.guild), (str(channel.id), str(message.id)))

    async def where() -> discord.abc.Messageable:
        return (await host.open_thread(message)).channel

    call.where = where
    return call


async def help_desk(jobs: PlatformJobs, places: tuple[Place, ...]) -> HelpDesk:
    """What answers in a thread here carry: Solved in a help channel, Still need help? where it has helpers. Without
    Redis, neither."""
    try:
        if await respond_mode(jobs.core, places) is RespondMode.MENTIONS:
            return NO_HELPDESK
        return HelpDesk(solvable=True, helpers=bool(await helpers_of(jobs.core, places)))
    except ReplyFailure:
        return NO_HELPDESK


async def still_need_help(host: HelperHost, interaction: discord.Interaction[Any], answer: str) -> None:
    """The button: the thread handed to its helpers; the clicker told, privately, what happened."""
    thread = interaction.channel
    await interaction.response.defer(ephemeral=True, thinking=True)
    if not isinstance(thread, discord.Thread) or thread.guild is None:
        said = told(Outcome.NO_HELPERS, host.jobs)
    else:
        try:
            said = told(await call_helpers(host.jobs, thread_call(host, thread), answer), host.jobs)
        except ReplyFailure as failure:
            said = failure_note(failure)
    await interaction.edit_original_response(content=said)


async def after_downvote(host: HelperHost, interaction: discord.Interaction[Any]) -> None:
    """A 👎 on an answer in a help channel's thread: the thread handed to its helpers, where there are."""
    thread = interaction.channel
    if not isinstance(thread, discord.Thread) or thread.guild is None:
        return
    call = thread_call(host, thread)
    try:
        if await respond_mode(host.jobs.core, call.places) is RespondMode.MENTIONS:
            return
        outcome = await call_helpers(host.jobs, call)
    except ReplyFailure:
        log.warning("downvote_not_handed_off", thread=thread.id)
        return
    log.info("downvote_handed_off", thread=thread.id, outcome=outcome.value)


async def stays_out_of(host: HelperHost, message: discord.Message) -> bool:
    """Whether a message in the bot's thread (or a forum's post) is left to people: the thread was handed off, or a
    helper wrote there (this one, perhaps). A mention of the bot brings it back."""
    thread, me = message.channel, host.user
    if not isinstance(thread, discord.Thread) or thread.guild is None or me is None:
        return False
    if thread.owner_id != me.id and not isinstance(thread.parent, discord.ForumChannel):
        return False
    try:
        helpers = await helpers_of(host.jobs.core, places_of(thread, thread.guild))
    except ReplyFailure:
        return False
    if not helpers:
        return False  # nobody to hand off to, so nothing was
    roles = {str(role.id) for role in getattr(message.author, "roles", ())}
    mentioned = any(user.id == me.id for user in message.mentions)
    where = ("discord", _parent(thread), str(thread.id))
    return await stays_out(host.jobs, where, str(message.id), helper=bool(roles & set(helpers)), mentioned=mentioned)


def _parent(thread: discord.Thread) -> str:
    return str(thread.parent_id or thread.id)
