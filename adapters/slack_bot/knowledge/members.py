"""Who may read which private channel's knowledge, kept by the bot in Redis per workspace: the members of each private
channel that holds knowledge (read once with conversations.members when it becomes knowledge), then kept current
from member_joined_channel / member_left_channel events, and from a knowledge channel made private or public (the
channel_convert_to_private / _public messages). A question reads it in two round trips, never asking Slack.

Public channels are open to every member of a workspace, so only private channels are kept here."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.shared.knowledge_sources.channels import KnowledgeChannels
from adapters.slack_bot.knowledge.messages import scope_of
from bot.errors import FailureKind, ReplyFailure
from bot.state.redis_client import REDIS_ERRORS, RedisClient

log = structlog.get_logger(__name__)

MADE_PRIVATE = "channel_convert_to_private"
MADE_PUBLIC = "channel_convert_to_public"
CONVERSIONS = (MADE_PRIVATE, MADE_PUBLIC)

T = TypeVar("T")


class PrivateMembers:
    def __init__(self, redis: RedisClient, key_prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}knowledge:slack:"

    async def track(self, team: str, channel: str, members: Iterable[str]) -> None:
        """`channel` is private and holds knowledge: `members` (all of them) may read it."""
        people = list(members)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(self._members(team, channel))
            if people:
                pipe.sadd(self._members(team, channel), *people)
            pipe.sadd(self._private(team), channel)
            await self._run(pipe.execute())

    async def is_tracked(self, team: str, channel: str) -> bool:
        return bool(await self._run(self._redis.sismember(self._private(team), channel)))

    async def is_member(self, team: str, channel: str, user: str) -> bool:
        return bool(await self._run(self._redis.sismember(self._members(team, channel), user)))

    async def joined(self, team: str, channel: str, user: str) -> None:
        if await self.is_tracked(team, channel):
            await self._run(self._redis.sadd(self._members(team, channel), user))

    async def left(self, team: str, channel: str, user: str) -> None:
        await self._run(self._redis.srem(self._members(team, channel), user))

    async def readable(
        self, team: str, user: str, knowledge_channels: Iterable[str], *, public: bool = True
    ) -> frozenset[str]:
        """The channels whose knowledge `user` may read: the public ones of `knowledge_channels` (unless not
        `public`: a guest's), and the private channels holding knowledge that they are a member of."""
        private = {_text(channel) for channel in await self._run(self._redis.smembers(self._private(team)))}
        public_channels = {channel for channel in knowledge_channels if channel not in private} if public else set()
        if not private:
            return frozenset(public_channels)
        ordered = sorted(private)
        async with self._redis.pipeline(transaction=False) as pipe:
            for channel in ordered:
                pipe.sismember(self._members(team, channel), user)
            memberships = await self._run(pipe.execute())
        member_of = {channel for channel, member in zip(ordered, memberships, strict=True) if member}
        return frozenset(public_channels | member_of)

    async def public(self, team: str, knowledge_channels: Iterable[str]) -> frozenset[str]:
        """Those of `knowledge_channels` every full member of the workspace may read: the ones not private."""
        private = {_text(channel) for channel in await self._run(self._redis.smembers(self._private(team)))}
        return frozenset(channel for channel in knowledge_channels if channel not in private)

    async def made_public(self, team: str, channel: str) -> None:
        """`channel` is public now: every full member may read it, no membership is kept for it."""
        async with self._redis.pipeline(transaction=False) as pipe:  # one key each: a Cluster's keys differ in slot
            pipe.srem(self._private(team), channel)
            pipe.delete(self._members(team, channel))
            await self._run(pipe.execute())

    async def forget_team(self, team: str) -> None:
        private = await self._run(self._redis.smembers(self._private(team)))
        async with self._redis.pipeline(transaction=False) as pipe:  # one key each: a Cluster's keys differ in slot
            for channel in private:
                pipe.delete(self._members(team, _text(channel)))
            pipe.delete(self._private(team))
            await self._run(pipe.execute())

    def _private(self, team: str) -> str:
        return f"{self._prefix}private:{team}"

    def _members(self, team: str, channel: str) -> str:
        return f"{self._prefix}members:{team}:{channel}"

    async def _run(self, command: Awaitable[T]) -> T:
        try:
            return await command
        except REDIS_ERRORS as error:
            raise ReplyFailure(FailureKind.STORE_UNAVAILABLE, f"knowledge members: {error}") from error


async def channel_members(client: AsyncWebClient, channel: str) -> list[str]:
    """Every member of the channel (conversations.members, Tier 4, a page of up to 1,000 at a time)."""
    members: list[str] = []
    cursor: str | None = None
    while True:
        response = await client.conversations_members(channel=channel, limit=1000, cursor=cursor)
        members += [str(member) for member in response.get("members") or []]
        cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            return members


async def follow_conversion(
    members: PrivateMembers, channels: KnowledgeChannels, client: AsyncWebClient, team: str, event: dict[str, Any]
) -> None:
    """A knowledge channel made private (its members alone read it from now on: nobody at once, then those Slack
    lists) or public (everyone does). Any other message: nothing."""
    subtype, channel = event.get("subtype"), str(event.get("channel") or "")
    try:
        if subtype not in CONVERSIONS or channel not in await channels.channels(scope_of(team)):
            return
        if subtype == MADE_PUBLIC:
            await members.made_public(team, channel)
        else:
            await members.track(team, channel, ())
            await members.track(team, channel, await channel_members(client, channel))
    except ReplyFailure as failure:
        log.error("slack_knowledge_privacy_lost", team=team, channel=channel, change=subtype, detail=failure.detail)
        return
    except SlackApiError as error:  # tracked with no members: no one reads it until /knowledge channel on again
        log.error("slack_knowledge_members_unread", team=team, channel=channel, error=error.response.get("error"))
        return
    log.info("slack_knowledge_channel_converted", team=team, channel=channel, change=subtype)


def follow_renames(app: AsyncApp, channels: KnowledgeChannels) -> None:
    """A knowledge channel renamed is listed (and its new messages titled) under its new name. Archiving one changes
    nothing: an archived channel stays readable by whoever could read it."""

    async def renamed(body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        await follow_rename(channels, str(context.team_id or body.get("team_id") or ""), event)

    for kind in ("channel_rename", "group_rename"):
        app.event(kind)(renamed)


def follow_membership(app: AsyncApp, members: PrivateMembers, *, knowledge_on: bool) -> None:
    """People joining or leaving a private channel that holds knowledge change who may read it
    (member_joined_channel / member_left_channel). The bot removed from one (group_left) can't follow its membership
    any more, so no one reads its knowledge until an admin runs /knowledge channel on there again (which reads its
    members anew)."""

    async def membership(event: dict[str, Any], context: AsyncBoltContext) -> None:
        team = str(event.get("team") or context.team_id or "")
        channel, user = str(event.get("channel") or ""), str(event.get("user") or "")
        if not (team and channel and user) or not knowledge_on:
            return
        joined = event.get("type") == "member_joined_channel"
        try:
            await (members.joined(team, channel, user) if joined else members.left(team, channel, user))
        except ReplyFailure as failure:
            log.error("slack_knowledge_membership_lost", channel=channel, joined=joined, detail=failure.detail)

    async def removed(event: dict[str, Any], context: AsyncBoltContext) -> None:
        team, channel = str(context.team_id or ""), str(event.get("channel") or "")
        if team and channel:
            try:
                await members.track(team, channel, ())
            except ReplyFailure as failure:
                log.error("slack_knowledge_membership_lost", channel=channel, detail=failure.detail)

    app.event("member_joined_channel")(membership)
    app.event("member_left_channel")(membership)
    app.event("group_left")(removed)


async def follow_rename(channels: KnowledgeChannels, team: str, event: dict[str, Any]) -> None:
    """channel_rename / group_rename: a knowledge channel's title follows its name (its passages said before keep
    the name they were said under)."""
    about = event.get("channel") or {}
    channel, name = str(about.get("id") or ""), str(about.get("name") or "")
    if not (team and channel and name):
        return
    try:
        if await channels.rename(scope_of(team), channel, f"#{name}"):
            log.info("slack_knowledge_channel_renamed", team=team, channel=channel)
    except ReplyFailure as failure:
        log.warning("slack_knowledge_rename_lost", team=team, channel=channel, detail=failure.detail)


async def readable_places(
    members: PrivateMembers, client: AsyncWebClient, team: str, user: str, channels: Iterable[str]
) -> set[str]:
    """Of `channels` (where questions were asked), those `user` (a full member: an admin) may read: the public
    ones, the private ones and group DMs they are in, their own DM with the bot. One that Slack won't say: not."""
    ordered = sorted(set(channels))
    found = await asyncio.gather(*(_reads(members, client, team, user, channel) for channel in ordered))
    return {channel for channel, reads in zip(ordered, found, strict=True) if reads}


async def _reads(members: PrivateMembers, client: AsyncWebClient, team: str, user: str, channel: str) -> bool:
    try:
        info = (await client.conversations_info(channel=channel))["channel"]
        if info.get("is_im"):
            return bool(info.get("user") == user)
        if not info.get("is_private"):
            return True
        if await members.is_tracked(team, channel):
            return await members.is_member(team, channel, user)
        return user in await channel_members(client, channel)
    except (SlackApiError, ReplyFailure) as error:
        log.info("slack_channel_unreadable", team=team, channel=channel, error=str(error))
        return False


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
