"""FakeDiscord's messages: people's messages sent, edited and deleted, history, attachments, mentions."""

from __future__ import annotations

import bisect
import gc
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aiohttp import web

from fakes.discord.errors import FieldError, empty_message, invalid_form_body
from fakes.discord.models import FakeGuild, FakeUser, StoredMessage, UploadedFile, _history_payload, _message_id, _walk
from fakes.discord.protocol import (
    DISCORD_EPOCH_MS,
    ROLE_MENTION_RE,
    USER_MENTION_RE,
    ChannelType,
    MessageFlag,
    MessageType,
    _copied,
    iso_timestamp,
    snowflake_time,
)
from fakes.discord.validation import message_field_errors, number_components


def resolve_mentions(
    content: str,
    allowed: Mapping[str, Any] | None,
    guild: FakeGuild | None,
    users: Mapping[int, FakeUser],
    replied_author_id: int | None,
) -> tuple[list[FakeUser], list[int], bool]:
    """Who a message pings: content tokens filtered by ``allowed_mentions`` (absent → everything)."""
    parse = {"users", "roles", "everyone"} if allowed is None else set(allowed.get("parse") or [])
    explicit_users = {int(u) for u in (allowed or {}).get("users") or []}
    explicit_roles = {int(r) for r in (allowed or {}).get("roles") or []}
    mentioned: list[FakeUser] = []
    for raw in dict.fromkeys(USER_MENTION_RE.findall(content)):
        user = users.get(int(raw))
        if user is not None and ("users" in parse or user.id in explicit_users):
            mentioned.append(user)
    replied = allowed is None or bool(allowed.get("replied_user"))
    if replied_author_id is not None and replied and replied_author_id in users:
        if all(u.id != replied_author_id for u in mentioned):
            mentioned.append(users[replied_author_id])
    roles = [
        int(r)
        for r in dict.fromkeys(ROLE_MENTION_RE.findall(content))
        if guild is not None and int(r) in guild.roles and ("roles" in parse or int(r) in explicit_roles)
    ]
    everyone = "everyone" in parse and ("@everyone" in content or "@here" in content)
    return mentioned, roles, everyone


class MessagesArea:
    """FakeDiscord's messages: a part of the class, its state FakeDiscord's (set in its __init__)."""

    async def send_user_message(
        self,
        channel_id: int | str,
        author: FakeUser,
        content: str,
        *,
        mentions_bot: bool = False,
        reference_message_id: int | str | None = None,
        ping_replied_author: bool = True,
        embeds: Sequence[dict[str, Any]] = (),
        files: Sequence[tuple[str, str, bytes]] = (),
    ) -> dict[str, Any]:
        """A user posts a message: stored like Discord and dispatched as MESSAGE_CREATE.

        ``mentions_bot`` prefixes ``<@bot_id>`` unless the content already mentions the bot.
        The author must be able to see the channel (LookupError otherwise, as Discord's client would not
        let them post). ``files`` are (filename, content type, data) attachments, downloadable from the fake's
        CDN route at their ``url`` (served with their content type). Images whose bytes Pillow
        reads (PNG, JPEG, GIF, WebP) get their real content type, ``width`` and ``height``, as
        Discord reports them. ``reference_message_id`` makes it a reply (type 19): the payload
        carries ``message_reference`` and ``referenced_message``, the full replied-to message
        (author, content, attachments; its own ``referenced_message`` left out, as Discord does).
        Returns the full (unfiltered) gateway payload.
        """
        channel = self._require_channel(int(channel_id))
        guild = self._guild_of(channel)
        if guild is not None and not self._user_sees(channel, guild, author):
            raise LookupError(f"{author.username} cannot see channel {channel['id']} (roles, overwrites) to post there")
        if mentions_bot and not re.search(rf"<@!?{self.bot_user.id}>", content):
            content = f"{self.bot_user.mention} {content}"
        body: dict[str, Any] = {"content": content, "embeds": list(embeds)}
        if reference_message_id is not None:
            body["message_reference"] = {"message_id": str(reference_message_id)}
            body["allowed_mentions"] = {"parse": ["users", "roles", "everyone"], "replied_user": ping_replied_author}
        uploads = [UploadedFile.of(f"files[{i}]", name, data, kind) for i, (name, kind, data) in enumerate(files)]
        reference = self._resolve_reference(channel, body)
        await self._unarchive_for_message(channel)
        stored = self._store_message(channel, author, body, files=uploads, reference=reference)
        await self._announce_new_message(stored, force=True)
        return self._gateway_message(stored)

    async def _serve_attachment(self, request: web.Request) -> web.Response:
        """The CDN: an attachment's bytes (no authorization, like Discord's signed CDN URLs)."""
        attachment_id = int(request.match_info["attachment_id"])
        stored = self._attachment_data.get(attachment_id)
        if stored is None:
            return web.Response(status=404, text="Not Found")
        data, content_type = stored
        self.attachment_downloads.append(attachment_id)
        return web.Response(body=data, headers={"Content-Type": content_type or "application/octet-stream"})

    async def edit_user_message(self, message_id: int | str, content: str) -> dict[str, Any]:
        stored = self._messages[int(message_id)]
        await self._edit_message(stored, {"content": content}, [], force_announce=True)
        return self._gateway_message(stored)

    async def user_reacts(self, message_id: int | str, user: FakeUser, emoji: str) -> None:
        """A person adds a unicode `emoji` reaction to a message: MESSAGE_REACTION_ADD, as Discord sends it (in a
        server with the reacting ``member``; only to sessions with the reactions intent)."""
        stored = self._messages[int(message_id)]
        data: dict[str, Any] = {
            "user_id": str(user.id),
            "channel_id": str(stored.channel_id),
            "message_id": str(stored.id),
            "message_author_id": str(stored.author_id),
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
        }
        guild = self.guilds.get(stored.guild_id) if stored.guild_id else None
        if guild is not None:
            data["guild_id"] = str(guild.id)
            if (member := guild.members.get(user.id)) is not None:
                data["member"] = member.payload()
        await self.dispatch("MESSAGE_REACTION_ADD", data)

    def bot_reactions(self, message_id: int | str) -> list[str]:
        """The emoji the bot's reactions on a message are now (added and not removed since), as in their routes."""
        shown: list[str] = []
        changes = [(at, emoji, True) for at, one, emoji in self.reactions if one == int(message_id)]
        changes += [(at, emoji, False) for at, one, emoji in self.reactions_removed if one == int(message_id)]
        for _, emoji, added in sorted(changes, key=lambda change: change[0]):
            if added and emoji not in shown:
                shown.append(emoji)
            elif not added and emoji in shown:
                shown.remove(emoji)
        return shown

    async def delete_user_message(self, message_id: int | str) -> None:
        """A person deletes their message: MESSAGE_DELETE with ``id``, ``channel_id`` and ``guild_id`` only
        (no content); GET answers 404 (10008) for it from now on."""
        await self._delete_message(self._messages[int(message_id)], force_announce=True)

    async def delete_user_messages(self, channel_id: int | str, message_ids: Iterable[int | str]) -> None:
        """A moderator deletes several messages of a channel at once: one MESSAGE_DELETE_BULK with ``ids``,
        ``channel_id`` and ``guild_id``; each is gone (404) from now on."""
        channel = self._require_channel(int(channel_id))
        deleted = [self._messages[int(m)] for m in message_ids]
        if any(m.channel_id != int(channel["id"]) or m.deleted for m in deleted):
            raise LookupError(f"every message must be a live one of channel {channel_id}")
        for stored in deleted:
            stored.deleted = True
        data: dict[str, Any] = {"ids": [str(m.id) for m in deleted], "channel_id": channel["id"]}
        if channel.get("guild_id") is not None:
            data["guild_id"] = channel["guild_id"]
        await self.dispatch("MESSAGE_DELETE_BULK", data)

    def seed_history(
        self,
        channel_id: int | str,
        count: int,
        *,
        authors: Sequence[FakeUser],
        content: Callable[[int], str] | None = None,
        spacing: float = 1.0,
    ) -> list[StoredMessage]:
        """`count` messages written before anything else in the channel (`spacing` seconds apart, the
        newest `spacing` before its oldest message or now), by `authors` in turn, with ``content(i)``
        (default "message i"): stored only, no gateway events, as history the bot finds with GET
        /channels/{id}/messages. Fast (plain payloads, no mention parsing): 100,000 in about half a second."""
        channel = self._require_channel(int(channel_id))
        stored_list = self._messages_by_channel.setdefault(int(channel["id"]), [])
        end = min(snowflake_time(stored_list[0].id) if stored_list else time.time(), time.time()) - spacing
        guild_id = guild.id if (guild := self._guild_of(channel)) else None
        text = content or (lambda index: f"message {index}")
        seeded: list[StoredMessage] = []
        previous = 0
        collecting = gc.isenabled()
        gc.disable()  # many small dicts: the collector would take most of the time
        try:
            for index in range(count):
                at = end - (count - 1 - index) * spacing
                message_id = max((int(at * 1000) - DISCORD_EPOCH_MS) << 22, previous + 1)
                while message_id in self._messages:
                    message_id += 1
                previous = message_id
                payload = _history_payload(message_id, channel["id"], authors[index % len(authors)], text(index), at)
                stored = StoredMessage(payload, guild_id, [(at, payload["content"])])
                self._messages[message_id] = stored
                seeded.append(stored)
        finally:
            if collecting:
                gc.enable()
        stored_list[:0] = seeded
        if channel.get("last_message_id") is None and seeded:
            channel["last_message_id"] = str(seeded[-1].id)
        return seeded

    def history_page(
        self,
        channel_id: int | str,
        limit: int = 50,
        *,
        before: int | str | None = None,
        after: int | str | None = None,
        around: int | str | None = None,
    ) -> list[StoredMessage]:
        """What GET /channels/{id}/messages answers (without permission checks): up to `limit` live,
        non-ephemeral messages, newest first; before / after / around a message id (one of them)."""
        stored = self._messages_by_channel.get(int(channel_id), [])
        before, after, around = (int(a) if a is not None else None for a in (before, after, around))
        if around is not None:
            older = _walk(stored, bisect.bisect_right(stored, around, key=_message_id) - 1, -1, limit // 2 + 1)
            newer = _walk(stored, bisect.bisect_right(stored, around, key=_message_id), 1, limit - len(older))
            return [*reversed(newer), *older]
        if after is not None and before is None:
            newer = _walk(stored, bisect.bisect_right(stored, after, key=_message_id), 1, limit)
            return list(reversed(newer))
        start = len(stored) if before is None else bisect.bisect_left(stored, before, key=_message_id)
        return _walk(stored, start - 1, -1, limit)

    def _resolve_reference(self, channel: Mapping[str, Any], body: Mapping[str, Any]) -> StoredMessage | None:
        reference = body.get("message_reference")
        if not reference:
            return None
        target = self._messages.get(int(reference.get("message_id", 0)))
        if target is None or target.deleted:
            if reference.get("fail_if_not_exists", True):
                raise invalid_form_body(
                    [FieldError(("message_reference",), "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")]
                )
            return None
        return target

    def _store_message(
        self,
        channel: dict[str, Any],
        author: FakeUser,
        body: Mapping[str, Any],
        *,
        files: Sequence[UploadedFile] = (),
        reference: StoredMessage | None = None,
        message_type: int | None = None,
        flags: int = 0,
        extra: Mapping[str, Any] | None = None,
        message_id: int | None = None,
    ) -> StoredMessage:
        """`message_id`: one taken already (a forum post's starter message has its post's id)."""
        now = time.time()
        message_id = message_id if message_id is not None else self._ids.next()
        guild = self._guild_of(channel)
        content = str(body.get("content") or "")
        users, roles, everyone = resolve_mentions(
            content, body.get("allowed_mentions"), guild, self.users, reference.author_id if reference else None
        )
        if message_type is None:
            message_type = MessageType.REPLY if reference else MessageType.DEFAULT
        payload: dict[str, Any] = {
            "id": str(message_id),
            "channel_id": channel["id"],
            "type": message_type,
            "content": content,
            "author": author.payload(),
            "timestamp": iso_timestamp(now),
            "edited_timestamp": None,
            "tts": bool(body.get("tts", False)),
            "mention_everyone": everyone,
            "mentions": [u.payload() for u in users],
            "mention_roles": [str(r) for r in roles],
            "attachments": self._attachments(files),
            "embeds": list(body.get("embeds") or []),
            "components": number_components(body.get("components") or []),
            "pinned": False,
            "flags": flags | int(body.get("flags") or 0),
        }
        if body.get("nonce") is not None:
            payload["nonce"] = body["nonce"]
        if reference is not None:
            payload["message_reference"] = {
                "type": 0,
                "message_id": str(reference.id),
                "channel_id": str(reference.channel_id),
                **({"guild_id": str(guild.id)} if guild else {}),
            }
            referenced = _copied(reference.payload)
            referenced.pop("referenced_message", None)  # one level only, like Discord
            payload["referenced_message"] = referenced
        payload.update(extra or {})
        stored = StoredMessage(payload, guild.id if guild else None, [(now, content)])
        self._messages[message_id] = stored
        self._messages_by_channel.setdefault(int(channel["id"]), []).append(stored)
        self._note_channel_activity(channel, stored)
        return stored

    def _attachments(self, files: Sequence[UploadedFile]) -> list[dict[str, Any]]:
        """Attachment objects as Discord sends them (images with ``width`` / ``height``); the
        bytes are served at ``url`` by the fake CDN."""
        attachments = []
        for upload in files:
            attachment_id = self._ids.next()
            filename = upload.filename or "file"
            url = f"{self.base_url}/attachments/{attachment_id}/{filename}"
            attachment: dict[str, Any] = {
                "id": str(attachment_id),
                "filename": filename,
                "size": upload.size,
                "url": url,
                "proxy_url": url,
                "content_type": upload.content_type,
            }
            if upload.width is not None and upload.height is not None:
                attachment.update(width=upload.width, height=upload.height)
            if upload.data is not None:
                self._attachment_data[attachment_id] = (upload.data, upload.content_type)
            attachments.append(attachment)
        return attachments

    def _note_channel_activity(self, channel: dict[str, Any], stored: StoredMessage) -> None:
        channel["last_message_id"] = str(stored.id)
        if channel["type"] in ChannelType.THREADS:
            stored.payload["position"] = channel["total_message_sent"]
            channel["message_count"] += 1
            channel["total_message_sent"] += 1
            self._schedule_archive(channel)  # a new message is activity: the idle time starts again

    async def _edit_message(
        self,
        stored: StoredMessage,
        body: Mapping[str, Any],
        files: Sequence[UploadedFile],
        *,
        clear_loading: bool = False,
        force_announce: bool = False,
    ) -> None:
        errors = message_field_errors(body)
        if errors:
            raise invalid_form_body(errors)
        channel = self.channels.get(stored.channel_id)
        if channel is not None:
            self._check_active(channel)
        payload = stored.payload
        content = str(body["content"] or "") if "content" in body else payload["content"]
        embeds = list(body["embeds"] or []) if "embeds" in body else payload["embeds"]
        attachments = payload["attachments"] + self._attachments(files)
        if "attachments" in body and body["attachments"] is not None:
            kept = {str(a.get("id")) for a in body["attachments"]}
            attachments = [a for a in payload["attachments"] if a["id"] in kept] + self._attachments(files)
        if not (content or embeds or attachments or payload["components"] or body.get("components")):
            raise empty_message()
        now = time.time()
        if content != payload["content"]:
            stored.history.append((now, content))
        payload.update(content=content, embeds=embeds, attachments=attachments, edited_timestamp=iso_timestamp(now))
        if "components" in body:
            payload["components"] = number_components(body["components"] or [])
        if "flags" in body and body["flags"] is not None:
            payload["flags"] = (payload["flags"] & ~0b100) | (int(body["flags"]) & 0b100)  # only SUPPRESS_EMBEDS
        if clear_loading:
            payload["flags"] &= ~MessageFlag.LOADING
        if "allowed_mentions" in body or "content" in body:
            guild = self.guilds.get(stored.guild_id) if stored.guild_id else None
            users, roles, everyone = resolve_mentions(content, body.get("allowed_mentions"), guild, self.users, None)
            payload.update(mentions=[u.payload() for u in users], mention_roles=[str(r) for r in roles])
            payload["mention_everyone"] = everyone
        await self._announce(stored, "MESSAGE_UPDATE", self._gateway_message(stored), force_announce)

    async def _delete_message(self, stored: StoredMessage, *, force_announce: bool = False) -> None:
        stored.deleted = True
        data: dict[str, Any] = {"id": str(stored.id), "channel_id": str(stored.channel_id)}
        if stored.guild_id is not None:
            data["guild_id"] = str(stored.guild_id)
        await self._announce(stored, "MESSAGE_DELETE", data, force_announce)

    async def _announce_new_message(self, stored: StoredMessage, *, force: bool = False) -> None:
        await self._announce(stored, "MESSAGE_CREATE", self._gateway_message(stored), force)

    async def _announce(self, stored: StoredMessage, event: str, data: dict[str, Any], force: bool) -> None:
        """Dispatch a message event unless it is ephemeral or an unechoed bot message."""
        if stored.flags & MessageFlag.EPHEMERAL:
            return
        if force or self.echo_bot_messages or stored.author_id != self.bot_user.id:
            await self.dispatch(event, data)

    def _gateway_message(self, stored: StoredMessage) -> dict[str, Any]:
        """Gateway shape: REST payload + guild_id and the author's partial member."""
        data = _copied(stored.payload)
        guild = self.guilds.get(stored.guild_id) if stored.guild_id else None
        if guild is not None:
            data["guild_id"] = str(guild.id)
            member = guild.members.get(stored.author_id)
            if member is not None and "webhook_id" not in data:
                data["member"] = member.payload(with_user=False)
        return data
