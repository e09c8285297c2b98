"""FakeDiscord's forum channels (type 15): posts, their tags, and the thread listings a bot reads them with.

A post is a public thread (type 11) under the forum whose id is its starter message's: a person's post is announced
with THREAD_CREATE (``newly_created``, its ``applied_tags``) then MESSAGE_CREATE of the starter message, as Discord
sends them. The bot makes one with POST /channels/{forum}/threads and a ``message`` (Send Messages in the forum; the
answer is the thread with its ``message``). Tags: the forum's ``available_tags`` (at most 20, names 1-20 characters,
unique; set with PATCH /channels/{forum}, Manage Channels, announced with CHANNEL_UPDATE) and a post's
``applied_tags`` (at most 5 of the forum's; set with PATCH /channels/{post} by its owner or with Manage Threads, a
``moderated`` tag with Manage Threads only; THREAD_UPDATE). Threads are listed as Discord lists them: GET
/channels/{channel}/threads/archived/public (newest archived first, ``before`` an ISO timestamp, ``limit`` 2-100,
``has_more``; Read Message History) and GET /guilds/{guild}/threads/active (those the bot can view). A message sent
straight into a forum is refused (400 50024), as Discord's only way in is a post."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fakes.discord.errors import (
    DiscordHTTPError,
    FieldError,
    invalid_form_body,
    missing_permissions,
    unknown_channel,
)
from fakes.discord.models import FakeGuild, FakeUser, UploadedFile
from fakes.discord.protocol import ChannelType, Perm, _copied
from fakes.discord.validation import validate_new_message, validate_thread_body

if TYPE_CHECKING:
    from fakes.discord.rest import RestCall

MAX_APPLIED_TAGS = 5
MAX_AVAILABLE_TAGS = 20
MAX_TAG_NAME = 20


def wrong_channel_type() -> DiscordHTTPError:
    return DiscordHTTPError(400, 50024, "Cannot execute action on this channel type")


class ForumsArea:
    """FakeDiscord's forums: a part of the class, its state FakeDiscord's (set in its __init__)."""

    def add_forum_channel(self, guild: FakeGuild, name: str, *, tags: Iterable[str | Mapping[str, Any]] = ()) -> Any:
        """A forum channel (type 15) with `tags` as its ``available_tags`` (a name, or a tag's fields: ``name``,
        ``moderated``, ``emoji_name``), sent in GUILD_CREATE."""
        channel: dict[str, Any] = self.add_text_channel(guild, name)
        channel.update(
            type=ChannelType.GUILD_FORUM,
            available_tags=self._tags_from(tags, []),
            default_reaction_emoji=None,
            default_sort_order=None,
            default_forum_layout=0,
            default_thread_rate_limit_per_user=0,
        )
        return channel

    def tag_id(self, forum: Mapping[str, Any], name: str) -> int:
        """The id of the forum's tag named `name` (LookupError if it has none)."""
        for tag in self.channels[int(forum["id"])]["available_tags"]:
            if tag["name"] == name:
                return int(tag["id"])
        raise LookupError(f"forum {forum['id']} has no tag {name!r}")

    async def create_forum_post(
        self,
        forum: Mapping[str, Any],
        author: FakeUser,
        title: str,
        content: str,
        *,
        applied_tags: Sequence[int] = (),
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A person posts in a forum: THREAD_CREATE, then MESSAGE_CREATE of the starter message (the post's id).
        Returns (the post, the starter message's gateway payload)."""
        stored_forum = self.channels[int(forum["id"])]
        if stored_forum["type"] != ChannelType.GUILD_FORUM:
            raise ValueError("a post is made in a forum channel")
        guild = self._guild_of(stored_forum)
        if guild is None or not self.permissions_for(stored_forum, author.id) & Perm.SEND_MESSAGES:
            raise LookupError(f"{author.username} may not post in forum {forum['id']}")
        tags = self._checked_applied_tags(stored_forum, [str(t) for t in applied_tags])
        post = self._new_post(stored_forum, author, title, tags)
        await self._announce_thread(post)
        stored = self._store_message(post, author, {"content": content}, message_id=int(post["id"]))
        await self._announce_new_message(stored, force=True)
        return post, self._gateway_message(stored)

    async def set_post_tags(self, post: Mapping[str, Any], tag_ids: Sequence[int]) -> dict[str, Any]:
        """A moderator sets a post's tags by hand: THREAD_UPDATE; returns the post."""
        thread = self.channels[int(post["id"])]
        thread["applied_tags"] = self._checked_applied_tags(self.channels[int(thread["parent_id"])], tag_ids)
        await self.dispatch("THREAD_UPDATE", _copied(thread))
        return thread

    def _new_post(self, forum: Mapping[str, Any], owner: FakeUser, title: str, tags: list[str]) -> dict[str, Any]:
        post_id = self._ids.next()
        post: dict[str, Any] = self._create_thread(
            forum, title, thread_id=post_id, thread_type=ChannelType.PUBLIC_THREAD
        )
        post.update(owner_id=str(owner.id), applied_tags=tags)
        self.thread_members[post_id] = {owner.id}
        return post

    # -- REST --------------------------------------------------------------------------------------

    async def create_post(self, forum: dict[str, Any], body: Mapping[str, Any], files: Sequence[UploadedFile]) -> Any:
        """POST /channels/{forum}/threads: the bot's post, its ``message`` the starter; the thread with its message."""
        self._require_permission(forum, Perm.SEND_MESSAGES)
        validate_thread_body(body)
        message = body.get("message")
        if not isinstance(message, Mapping):
            raise invalid_form_body([FieldError(("message",), "BASE_TYPE_REQUIRED", "This field is required")])
        validate_new_message(message, files)
        tags = self._checked_applied_tags(forum, body.get("applied_tags") or [])
        post = self._new_post(forum, self.bot_user, str(body["name"]), tags)
        post["thread_metadata"]["auto_archive_duration"] = body.get("auto_archive_duration") or 1440
        await self._announce_thread(post)
        stored = self._store_message(post, self.bot_user, message, files=files, message_id=int(post["id"]))
        await self._announce_new_message(stored)
        return {**_copied(post), "message": _copied(stored.payload)}

    async def edit_channel(self, call: RestCall) -> Any:
        """PATCH /channels/{id}: a post's ``applied_tags`` (and a thread's name, archived, locked), a forum's
        ``available_tags``, a channel's name and topic."""
        channel = self._channel_for_bot(call.snowflake("channel_id", unknown_channel))
        body = call.body()
        mine = self.permissions_for(channel, self.bot_user.id)
        if channel["type"] in ChannelType.THREADS:
            owner = channel.get("owner_id") == str(self.bot_user.id)
            if not owner and not mine & Perm.MANAGE_THREADS:
                raise missing_permissions()
            await self._edit_thread(channel, body, moderator=bool(mine & Perm.MANAGE_THREADS))
            return _copied(channel)
        if not mine & Perm.MANAGE_CHANNELS:
            raise missing_permissions()
        if "available_tags" in body:
            if channel["type"] != ChannelType.GUILD_FORUM:
                raise wrong_channel_type()
            channel["available_tags"] = self._tags_from(body["available_tags"] or [], channel["available_tags"])
        channel.update({key: body[key] for key in ("name", "topic") if key in body})
        await self.dispatch("CHANNEL_UPDATE", _copied(channel))
        return _copied(channel)

    async def _edit_thread(self, thread: dict[str, Any], body: Mapping[str, Any], *, moderator: bool) -> None:
        if "applied_tags" in body:
            parent = self.channels[int(thread["parent_id"])]
            if parent["type"] != ChannelType.GUILD_FORUM:
                raise wrong_channel_type()
            tags = self._checked_applied_tags(parent, body["applied_tags"] or [])
            moderated = {t["id"] for t in parent["available_tags"] if t.get("moderated")}
            if not moderator and moderated & (set(tags) ^ set(thread.get("applied_tags") or [])):
                raise missing_permissions()
            thread["applied_tags"] = tags
        if "name" in body:
            validate_thread_body({"name": body["name"]})
            thread["name"] = body["name"]
        metadata = thread["thread_metadata"]
        for key in ("archived", "locked"):
            if key in body:
                metadata[key] = bool(body[key])
        await self.dispatch("THREAD_UPDATE", _copied(thread))
        self._schedule_archive(thread)

    async def archived_public_threads(self, call: RestCall) -> Any:
        """GET /channels/{id}/threads/archived/public: archived public threads, newest archived first."""
        channel = self._channel_for_bot(call.snowflake("channel_id", unknown_channel))
        if channel["type"] not in (ChannelType.GUILD_TEXT, ChannelType.GUILD_FORUM):
            raise wrong_channel_type()
        if not self.permissions_for(channel, self.bot_user.id) & Perm.READ_MESSAGE_HISTORY:
            raise missing_permissions()
        limit = _thread_limit(call.query.get("limit"))
        before = call.query.get("before")
        archived = [
            thread
            for thread in self.channels.values()
            if thread["type"] == ChannelType.PUBLIC_THREAD
            and thread.get("parent_id") == channel["id"]
            and thread["thread_metadata"]["archived"]
            and (before is None or _instant(thread["thread_metadata"]["archive_timestamp"]) < _instant(before))
        ]
        archived.sort(key=lambda thread: _instant(thread["thread_metadata"]["archive_timestamp"]), reverse=True)
        return {"threads": _copied(archived[:limit]), "members": [], "has_more": len(archived) > limit}

    async def active_threads(self, call: RestCall) -> Any:
        """GET /guilds/{guild}/threads/active: the guild's active threads the bot can view."""
        guild = self.guilds.get(call.snowflake("guild_id"))
        if guild is None or not guild.has_bot:
            raise DiscordHTTPError(403, 50001, "Missing Access")
        threads = [
            thread
            for thread in self.channels.values()
            if thread["type"] in ChannelType.THREADS
            and thread.get("guild_id") == str(guild.id)
            and not thread["thread_metadata"]["archived"]
            and self.permissions_for(thread, self.bot_user.id) & Perm.VIEW_CHANNEL
        ]
        return {"threads": _copied(threads), "members": []}

    # -- tags --------------------------------------------------------------------------------------

    def _tags_from(self, given: Iterable[Any], current: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """A forum's ``available_tags`` as Discord keeps them: a tag with a known id kept (its id), others new."""
        tags = [{"name": tag} if isinstance(tag, str) else dict(tag) for tag in given]
        errors: list[FieldError] = []
        if len(tags) > MAX_AVAILABLE_TAGS:
            message = f"Must be {MAX_AVAILABLE_TAGS} or fewer in length."
            errors.append(FieldError(("available_tags",), "BASE_TYPE_MAX_LENGTH", message))
        for index, tag in enumerate(tags):
            if not 1 <= len(str(tag.get("name") or "")) <= MAX_TAG_NAME:
                message = f"Must be between 1 and {MAX_TAG_NAME} in length."
                errors.append(FieldError(("available_tags", index, "name"), "BASE_TYPE_BAD_LENGTH", message))
        if errors:
            raise invalid_form_body(errors)
        names = [str(tag["name"]) for tag in tags]
        if len(set(names)) != len(names):
            raise DiscordHTTPError(400, 40061, "Tag names must be unique")
        known = {str(tag["id"]) for tag in current}
        return [
            {
                "id": str(tag["id"]) if str(tag.get("id")) in known else str(self._ids.next()),
                "name": str(tag["name"]),
                "moderated": bool(tag.get("moderated", False)),
                "emoji_id": tag.get("emoji_id"),
                "emoji_name": tag.get("emoji_name"),
            }
            for tag in tags
        ]

    def _checked_applied_tags(self, forum: Mapping[str, Any], given: Iterable[Any]) -> list[str]:
        """A post's tags: at most 5, each one of its forum's (400 50035 naming ``applied_tags``)."""
        tags = list(dict.fromkeys(str(tag) for tag in given))
        if len(tags) > MAX_APPLIED_TAGS:
            message = f"Must be {MAX_APPLIED_TAGS} or fewer in length."
            raise invalid_form_body([FieldError(("applied_tags",), "BASE_TYPE_MAX_LENGTH", message)])
        available = {str(tag["id"]) for tag in forum.get("available_tags") or []}
        for index, tag in enumerate(tags):
            if tag not in available:
                message = "Tag is not available in this channel."
                raise invalid_form_body([FieldError(("applied_tags", index), "TAG_NOT_AVAILABLE", message)])
        return tags


def _thread_limit(raw: str | None) -> int:
    try:
        limit = int(raw) if raw is not None else 50
    except ValueError:
        limit = 0
    if not 2 <= limit <= 100:
        message = "int value should be between 2 and 100."
        raise invalid_form_body([FieldError(("limit",), "NUMBER_TYPE_MAX", message)])
    return limit


def _instant(timestamp: str) -> float:
    """An ISO timestamp as seconds (Discord's ``before`` and ``archive_timestamp``)."""
    try:
        return datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return time.time()
