"""Slack's piece of handing a help channel's thread to people (adapters.shared.helpdesk): the helpers are people or a
user group (`/respond helpers @a @b` or `<!subteam^S…|@support>`), mentioned by name in one line in the thread.
**Still need help?** is a button beside 👍 / 👎 under an answer in a help channel that has helpers (.votes); it and a
👎 there hand the thread off. Once the thread was handed off, or one of the helpers (named, or a member of the group:
usergroups.users.list, kept a few minutes) wrote in it, the bot stays out of it unless it is mentioned."""

from __future__ import annotations

import re
import time

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.shared.helpdesk.calling import Outcome, Unreachable, call_helpers, helpers_of, stays_out, told
from adapters.shared.place_settings import respond_mode
from adapters.slack_bot.places.message_places import slack_places
from adapters.slack_bot.ports import Answerer
from adapters.slack_bot.reply.surfaces import Reach
from adapters.slack_bot.reply.vote_blocks import in_help_channel, with_help
from bot.errors import ReplyFailure
from bot.reply.render import failure_note
from bot.respond.decision import RespondMode
from bot.state.personas import Place

log = structlog.get_logger(__name__)


def mentions(helpers: tuple[str, ...], bot_user_id: str) -> list[str]:
    """The helpers as Slack mentions them: a user group, or people; never the bot itself."""
    said = []
    for one in helpers:
        if one.startswith("S"):
            said.append(f"<!subteam^{one}>")
        elif one[:1] in ("U", "W") and one != bot_user_id:
            said.append(f"<@{one}>")
    return said


GROUP_SECONDS = 300.0  # how long a user group's members are kept in a process before Slack is asked again
GROUPS_KEPT = 1_000
_groups: dict[tuple[str, str], tuple[float, tuple[str, ...] | None]] = {}


async def group_members(reach: Reach, group: str) -> tuple[str, ...] | None:
    """A user group's members (kept GROUP_SECONDS), None when Slack has no such group; () when it can't be read (an
    app without usergroups:read): mentioned all the same, its members not known."""
    kept = _groups.get((reach.team, group))
    if kept is not None and time.monotonic() - kept[0] < GROUP_SECONDS:
        return kept[1]
    try:
        members: tuple[str, ...] | None = tuple((await reach.client.usergroups_users_list(usergroup=group))["users"])
    except SlackApiError as error:
        said = error.response.get("error")
        if said not in ("no_such_subteam", "subteam_not_found", "disabled_subteam"):
            log.warning("slack_user_group_not_read", group=group, error=said)
            return ()
        members = None
    if len(_groups) >= GROUPS_KEPT:
        _groups.clear()
    _groups[(reach.team, group)] = (time.monotonic(), members)
    return members


class SlackHelperCall:
    """A help channel's thread (`thread_ts`), as the helpers get it."""

    def __init__(self, host: Answerer, reach: Reach, channel: str, thread_ts: str) -> None:
        self._host, self._reach, self._channel = host, reach, channel
        self.places: tuple[Place, ...] = slack_places(reach.team, channel)
        self.channel = f"{reach.team}:{channel}"
        self.thread = thread_ts

    async def mention(self, helpers: tuple[str, ...]) -> str:
        groups = [one for one in helpers if one.startswith("S")]
        gone = {one for one in groups if await group_members(self._reach, one) is None}
        said = mentions(tuple(one for one in helpers if one not in gone), self._reach.bot_user_id)
        if not said:
            raise Unreachable("its user group is gone, or its helpers are the bot itself")
        return " ".join(said)

    async def post(self, text: str, helpers: tuple[str, ...]) -> None:
        budgets = self._host.budgets(self._reach.team)
        try:
            async with budgets.limits.write((budgets.posts(self._channel),)):
                await self._reach.client.chat_postMessage(channel=self._channel, thread_ts=self.thread, text=text)
        except SlackApiError as error:
            log.warning("helpers_call_not_posted", error=error.response.get("error"))

    async def tell_admins(self, note: str) -> None:
        log.warning("helpers_note_for_admins", team=self._reach.team, channel=self._channel, note=note)


def in_dm(places: tuple[Place, ...]) -> bool:
    """A DM's places (a workspace's settings reach them too): nobody is called there."""
    return any(place.kind == "channel" and place.id.startswith("D") for place in places)


async def stays_out_of(host: Answerer, reach: Reach, event: dict[str, object], thread_ts: str) -> bool:
    """Whether a message in the bot's thread is left to people: the thread was handed off, or a helper wrote there
    (this one, perhaps). A mention of the bot brings it back."""
    channel, user = str(event.get("channel", "")), str(event.get("user", ""))
    try:
        helpers = await helpers_of(host.jobs.core, slack_places(reach.team, channel))
    except ReplyFailure:
        return False
    if not helpers:
        return False
    mentioned = f"<@{reach.bot_user_id}>" in str(event.get("text", ""))
    helper = await among_helpers(reach, helpers, user)
    where = ("slack", f"{reach.team}:{channel}", thread_ts)
    return await stays_out(host.jobs, where, str(event.get("ts", "")), helper=helper, mentioned=mentioned)


async def among_helpers(reach: Reach, helpers: tuple[str, ...], user: str) -> bool:
    """Whether `user` is one of `helpers`: named, or a member of a user group named."""
    if user in helpers:
        return True
    for group in (one for one in helpers if one.startswith("S")):
        if user in (await group_members(reach, group) or ()):
            return True
    return False


async def is_helper(host: Answerer, reach: Reach, channel: str, user: str) -> bool:
    """Whether `user` is one of the channel's helpers (raises STORE_UNAVAILABLE without Redis)."""
    return await among_helpers(reach, await helpers_of(host.jobs.core, slack_places(reach.team, channel)), user)


async def help_votes(host: Answerer, votes: str, places: tuple[Place, ...]) -> str:
    """The buttons under an answer in a thread: Solved in a help channel (`/respond questions` or `all`), Still need
    help? too where it has helpers; neither in a DM, a mention-only channel, or without Redis."""
    if in_dm(places):
        return votes
    try:
        if await respond_mode(host.jobs.core, places) is RespondMode.MENTIONS:
            return votes
        helped = bool(await helpers_of(host.jobs.core, places))
    except ReplyFailure:
        return votes
    return in_help_channel(with_help(votes) if helped else votes)


async def still_need_help(host: Answerer, reach: Reach, channel: str, thread_ts: str, answer: str | None = None) -> str:
    """The button: the thread handed to its helpers; what the clicker is told, privately."""
    if channel.startswith("D"):
        return told(Outcome.NO_HELPERS, host.jobs)
    try:
        call = SlackHelperCall(host, reach, channel, thread_ts)
        return told(await call_helpers(host.jobs, call, answer), host.jobs)
    except ReplyFailure as failure:
        return failure_note(failure)


async def after_downvote(host: Answerer, reach: Reach, channel: str, thread_ts: str) -> None:
    """A 👎 on an answer in a help channel's thread: the thread handed to its helpers, where there are."""
    call = SlackHelperCall(host, reach, channel, thread_ts)
    if in_dm(call.places):
        return
    try:
        if await respond_mode(host.jobs.core, call.places) is RespondMode.MENTIONS:
            return
        outcome = await call_helpers(host.jobs, call)
    except ReplyFailure:
        log.warning("downvote_not_handed_off", channel=channel)
        return
    log.info("downvote_handed_off", channel=channel, thread=thread_ts, outcome=outcome.value)


HELPER_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>|\b([UW][A-Z0-9]{6,})\b")
HELPER_GROUP = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|[^>]*)?>|\b(S[A-Z0-9]{6,})\b")


def named_helpers(text: str) -> tuple[str, ...]:
    """The people and user groups `/respond helpers …` names (@here, @channel and @everyone are never helpers)."""
    users = [a or b for a, b in HELPER_USER.findall(text)]
    groups = [a or b for a, b in HELPER_GROUP.findall(text)]
    return tuple(dict.fromkeys(groups + users))


async def bots_among(client: AsyncWebClient, helpers: tuple[str, ...], bot_user_id: str) -> list[str]:
    """The helpers named who are bots (this one included): the bot hands off to people only."""
    bots = []
    for one in helpers:
        if one == bot_user_id:
            bots.append(one)
        elif not one.startswith("S"):
            try:
                info = (await client.users_info(user=one)).get("user") or {}
            except SlackApiError:
                continue  # unknown to Slack: it says so when mentioned
            if info.get("is_bot"):
                bots.append(one)
    return bots
