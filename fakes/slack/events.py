"""FakeSlack's events: a person posts, edits, deletes or reacts, people join and leave, other bots post,
history is seeded; each stored and built as Slack's event."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from fakes.slack.blocks import modal_view_errors
from fakes.slack.helpers import (
    _THREAD_SUMMARY,
    _file_id,
    _format_ts,
    _no_gc,
    _rich_text_blocks,
    _trigger_id,
    _ts_key,
    image_size,
)
from fakes.slack.models import (
    AssistantThread,
    Channel,
    ResponseUrlPost,
    StoredMessage,
    UploadedFile,
    _message_key,
    _ResponseTarget,
    _Trigger,
)
from fakes.slack.protocol import PLAIN_TEXT_INPUT_MAX, SLACKBOT, TEXT_INPUT_TYPES, TOMBSTONE_TEXT, JsonDict


class EventsArea:
    """FakeSlack's events: a part of the class, its state FakeSlack's (set in its __init__)."""

    def _user_message(self, channel: str, user: str, text: str, ts: str | None, thread_ts: str | None) -> StoredMessage:
        if ts is not None and self.find_message(channel, ts) is not None:
            return self._message_or_error(channel, ts)
        message = StoredMessage(channel=channel, ts=ts or self.next_ts(), text=text, user=user, thread_ts=thread_ts)
        message.blocks = _rich_text_blocks(text)
        if channel not in self.channels:
            is_im = channel.startswith("D")
            self.add_channel(channel, channel, is_im=is_im, user=user if is_im else None)
        return self._store(message, time.time())

    def app_mention_event(
        self,
        channel: str,
        user: str,
        text: str,
        ts: str | None = None,
        thread_ts: str | None = None,
        files: Sequence[tuple[str, str, bytes]] = (),
    ) -> JsonDict:
        """An ``app_mention`` event; ``<@bot>`` is prepended to ``text`` unless already there.
        ``files`` are (name, mimetype, data), shared with the message and downloadable with the
        bot token from their ``url_private_download``."""
        mention = f"<@{self.bot_user_id}>"
        if mention not in text:
            text = f"{mention} {text}"
        message = self._user_message(channel, user, text, ts, thread_ts)
        if files:
            message.files = [self._share_file(name, mimetype, data, user) for name, mimetype, data in files]
        return self._event_base("app_mention", message)

    def _share_file(
        self, name: str, mimetype: str, data: bytes, user: str, *, file_id: str | None = None, title: str | None = None
    ) -> JsonDict:
        file_id = file_id or _file_id()
        self._files[file_id] = data
        url = f"{self.base_url}/files-pri/{self.team_id}-{file_id}/{name}"
        shared: JsonDict = {
            "id": file_id,
            "created": int(time.time()),
            "timestamp": int(time.time()),
            "name": name,
            "title": title or name,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1].lower() if "." in name else "binary",
            "size": len(data),
            "user": user,
            "mode": "hosted",
            "is_external": False,
            "url_private": url,
            "url_private_download": f"{url}?download=1",
        }
        size = image_size(data) if mimetype.startswith("image/") else None
        if size is not None:  # Slack measures images (and makes thumbnails, left out here)
            shared["original_w"], shared["original_h"] = size
        return shared

    async def _handle_file_download(self, request: web.Request) -> web.Response:
        """files.slack.com: a file's bytes for a request carrying the bot token, else Slack's login page."""
        file_id = request.match_info["file_id"].rsplit("-", 1)[-1]
        if request.headers.get("Authorization") != f"Bearer {self.bot_token}" or file_id not in self._files:
            return web.Response(text="<html>Sign in to Slack</html>", content_type="text/html")
        self.file_downloads.append(file_id)
        return web.Response(body=self._files[file_id], content_type="application/octet-stream")

    async def _handle_upload(self, request: web.Request) -> web.Response:
        """files.slack.com's upload URL: the bytes of a pending upload, as the raw body (slack_sdk) or a multipart
        form's file; no token needed (the URL is the credential). Answered ``OK - <bytes received>``."""
        file_id = self._upload_tickets.get(request.match_info["ticket"])
        pending = self._pending_uploads.get(file_id or "")
        if pending is None:
            return web.Response(status=404, text="Not Found", content_type="text/plain")
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            uploaded = form.get("file") or next((v for v in form.values() if isinstance(v, web.FileField)), None)
            if not isinstance(uploaded, web.FileField):
                return web.Response(status=400, text="Bad Request: no file", content_type="text/plain")
            data = uploaded.file.read()
        else:
            data = await request.read()
        pending.data = data
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    def uploads_to(self, channel: str, thread_ts: str | None = None) -> list[UploadedFile]:
        """The app's uploads shared in ``channel`` (in one thread if ``thread_ts``), in order."""
        return [
            f for f in self.uploaded_files if channel in f.channels and (thread_ts is None or f.thread_ts == thread_ts)
        ]

    def share_files(self, user: str, files: Sequence[tuple[str, str, bytes]]) -> list[JsonDict]:
        """File objects for (name, mimetype, data), downloadable with the bot token (images with
        ``original_w`` / ``original_h``); for building events by hand."""
        return [self._share_file(name, mimetype, data, user) for name, mimetype, data in files]

    def message_event(
        self,
        channel: str,
        user: str,
        text: str,
        channel_type: str | None = None,
        thread_ts: str | None = None,
        subtype: str | None = None,
        bot_id: str | None = None,
        ts: str | None = None,
        files: Sequence[tuple[str, str, bytes]] = (),
    ) -> JsonDict:
        """A ``message`` event (``channel_type`` defaults to the channel's: im/channel/group).
        With ``files`` ((name, mimetype, data)) it is a ``file_share`` message, as Slack sends it."""
        message = self._user_message(channel, user, text, ts, thread_ts)
        if files:
            message.files = [self._share_file(name, mimetype, data, user) for name, mimetype, data in files]
            subtype = subtype or "file_share"
        message.subtype, message.bot_id = subtype, bot_id
        event = self._event_base("message", message)
        event["channel_type"] = channel_type or self.channels[channel].channel_type
        if subtype:
            event["subtype"] = subtype
        if bot_id:
            event["bot_id"] = bot_id
            event.pop("client_msg_id", None)
        return event

    def assistant_thread_started_event(self, user: str, viewing: str | None = None) -> JsonDict:
        """`user` opens the assistant panel while viewing channel `viewing` (None: no channel): Slack
        creates a thread in their DM with the app (its root an ``assistant_app_thread`` message) and
        sends ``assistant_thread_started``. The person's messages in it are ``message_event(dm, user,
        text, thread_ts=...)``. The thread is then known to setTitle / setSuggestedPrompts."""
        dm = self._dm_with(user)
        root = StoredMessage(
            channel=dm.id, ts=self.next_ts(), text="New chat", user=self.bot_user_id, subtype="assistant_app_thread"
        )
        self._store(root, time.time())
        context = self._assistant_context(viewing)
        self.assistant_threads[(dm.id, root.ts)] = AssistantThread(user, dm.id, root.ts, context)
        return self._assistant_event("assistant_thread_started", user, dm.id, root.ts, context)

    def assistant_thread_context_changed_event(self, channel_id: str, thread_ts: str, viewing: str | None) -> JsonDict:
        """The person with the panel's thread open moves to channel `viewing`."""
        thread = self.assistant_threads[(channel_id, thread_ts)]
        thread.context = self._assistant_context(viewing)
        return self._assistant_event(
            "assistant_thread_context_changed", thread.user, channel_id, thread_ts, thread.context
        )

    def _assistant_context(self, viewing: str | None) -> JsonDict:
        context: JsonDict = {"team_id": self.team_id, "enterprise_id": None}
        if viewing is not None:
            context["channel_id"] = viewing
        return context

    def _assistant_event(self, kind: str, user: str, channel_id: str, thread_ts: str, context: JsonDict) -> JsonDict:
        thread = {"user_id": user, "context": dict(context), "channel_id": channel_id, "thread_ts": thread_ts}
        return {"type": kind, "assistant_thread": thread, "event_ts": f"{time.time():.6f}"}

    def app_home_opened_event(self, user: str, tab: str = "home") -> JsonDict:
        """`user` opens the app's Home (``tab`` "home") or Messages tab; a Home tab published for
        them before comes as ``view``."""
        event: JsonDict = {
            "type": "app_home_opened",
            "user": user,
            "channel": self._dm_with(user).id,
            "tab": tab,
            "event_ts": f"{time.time():.6f}",
        }
        if tab == "home" and user in self.home_views:
            event["view"] = self.home_views[user]
        return event

    def message_changed_event(self, channel: str, ts: str, text: str) -> JsonDict:
        """The stored message `ts` of `channel` is edited to `text` (a person's, a thread reply's, or a bot's):
        the ``message`` event of subtype ``message_changed`` Slack sends, with ``message`` (the new one, with
        ``edited``), ``previous_message``, ``hidden: true``; its own ``ts`` / ``event_ts``."""
        message = self._stored(channel, ts)
        previous = self._message_json(message)
        now = time.time()
        message.text = text
        if not message.is_bot:
            message.blocks = _rich_text_blocks(text)
        message.edited_at = now
        message.history.append((now, message.visible_text))
        return self._hidden_event(
            "message_changed", message, message=self._message_json(message), previous_message=previous
        )

    def message_deleted_event(self, channel: str, ts: str) -> JsonDict:
        """The stored message `ts` of `channel` is deleted: ``message_deleted`` with ``deleted_ts`` and
        ``previous_message``. A thread's parent that still has replies becomes a tombstone instead, as at
        Slack: ``message_changed`` whose ``message`` has subtype ``tombstone``, user USLACKBOT and the text
        "This message was deleted." (it stays in conversations.history and .replies)."""
        message = self._stored(channel, ts)
        previous = self._message_json(message)
        now = time.time()
        if not message.is_reply and self._replies_of(message):
            message.text, message.subtype, message.user, message.bot_id = TOMBSTONE_TEXT, "tombstone", SLACKBOT, None
            message.blocks, message.files = None, []
            message.history.append((now, message.visible_text))
            return self._hidden_event(
                "message_changed", message, message=self._message_json(message), previous_message=previous
            )
        message.deleted = True
        message.history.append((now, ""))
        return self._hidden_event("message_deleted", message, deleted_ts=message.ts, previous_message=previous)

    def reaction_added_event(
        self, channel: str, ts: str, user: str, reaction: str = "white_check_mark"
    ) -> JsonDict | None:
        """`user` adds the emoji `reaction` (its name, without colons) to the stored message `ts` of `channel`:
        kept on the message (``reactions`` in conversations.history / .replies) and the ``reaction_added`` event
        Slack sends (``user``, ``reaction``, ``item {type: message, channel, ts}``, ``item_user``, ``event_ts``).
        None when Slack would send the app nothing: without the ``reactions:read`` scope, or in a channel it
        isn't in. The same person's same emoji twice counts once, as at Slack."""
        message = self._stored(channel, ts)
        users = message.reactions.setdefault(reaction, [])
        if user not in users:
            users.append(user)
        chan = self.channels.get(channel)
        if "reactions:read" not in self.scopes or (chan is not None and not chan.is_im and not chan.bot_member):
            return None
        event: JsonDict = {
            "type": "reaction_added",
            "user": user,
            "reaction": reaction,
            "item": {"type": "message", "channel": channel, "ts": ts},
            "event_ts": self.next_ts(),
        }
        if message.user:
            event["item_user"] = message.user
        return event

    def _stored(self, channel: str, ts: str) -> StoredMessage:
        message = self.find_message(channel, ts)
        if message is None:
            raise LookupError(f"no message {ts} in {channel}")
        return message

    def _hidden_event(self, subtype: str, stored: StoredMessage, **fields: Any) -> JsonDict:
        event_ts = self.next_ts()
        return {
            "type": "message",
            "subtype": subtype,
            "hidden": True,
            "channel": stored.channel,
            "channel_type": self._channel_type(stored.channel),
            "ts": event_ts,
            "event_ts": event_ts,
            **fields,
        }

    def _channel_type(self, channel: str) -> str:
        chan = self.channels.get(channel)
        return chan.channel_type if chan else "channel"

    def member_joined_event(self, channel: str, user: str, *, inviter: str | None = None) -> JsonDict:
        """`user` (a person, or the bot's user id: the bot is added) joins `channel`: the membership changes
        and this is the ``member_joined_channel`` event Slack sends (``channel_type`` "C" public, "G" private)."""
        chan = self.channels[channel]
        if user == self.bot_user_id:
            chan.bot_member = True
        else:
            chan.members.add(user)
        event = self._membership_event("member_joined_channel", chan, user)
        if inviter:
            event["inviter"] = inviter
        return event

    def member_left_event(self, channel: str, user: str) -> JsonDict:
        """`user` leaves `channel` (or is removed; the bot's user id: the bot is): ``member_left_channel``."""
        chan = self.channels[channel]
        if user == self.bot_user_id:
            chan.bot_member = False
        else:
            chan.members.discard(user)
        return self._membership_event("member_left_channel", chan, user)

    def _membership_event(self, kind: str, channel: Channel, user: str) -> JsonDict:
        return {
            "type": kind,
            "user": user,
            "channel": channel.id,
            "channel_type": "G" if channel.is_private else "C",
            "team": self.team_id,
            "event_ts": f"{time.time():.6f}",
        }

    def converted_event(self, channel: str, user: str, *, private: bool) -> JsonDict:
        """`user` makes `channel` private (or public): it changes, and Slack posts the ``channel_convert_to_private``
        (``channel_convert_to_public``) message, sent as this ``message`` event with its ``channel_type`` the new one.
        The channel keeps its id and its members."""
        chan = self.channels[channel]
        chan.is_private = private
        kind, said = (
            ("private", "can only be viewed or joined by invitation")
            if private
            else ("public", "Any member in this workspace can see and join it")
        )
        message = self._user_message(channel, user, f"made this channel *{kind}*. Now, it {said}.", None, None)
        message.subtype = f"channel_convert_to_{kind}"
        return {
            "type": "message",
            "subtype": message.subtype,
            "user": user,
            "text": message.text,
            "ts": message.ts,
            "channel": channel,
            "event_ts": message.ts,
            "channel_type": chan.channel_type,
        }

    def renamed_event(self, channel: str, name: str) -> JsonDict:
        """`channel` renamed: ``channel_rename`` (a public channel) or ``group_rename`` (a private one), in Slack's
        shape: the channel's ``id``, new ``name`` and ``created``."""
        chan = self.channels[channel]
        chan.name = name
        kind = "group_rename" if chan.is_private else "channel_rename"
        return {"type": kind, "channel": {"id": channel, "name": name, "created": int(time.time())}}

    def archived_event(self, channel: str, user: str, *, archived: bool = True) -> JsonDict:
        """`user` archives (or unarchives) `channel`: ``channel_archive`` / ``channel_unarchive`` for a public
        channel, ``group_archive`` / ``group_unarchive`` for a private one."""
        chan = self.channels[channel]
        kind = ("group_" if chan.is_private else "channel_") + ("archive" if archived else "unarchive")
        return {"type": kind, "channel": channel, "user": user, "event_ts": self.next_ts()}

    def bot_message_event(
        self,
        channel: str,
        text: str,
        *,
        bot_id: str = "B0OTHERBOT",
        user: str | None = "U0OTHERBOT",
        name: str = "otherbot",
        legacy: bool = False,
        thread_ts: str | None = None,
        ts: str | None = None,
    ) -> JsonDict:
        """Another app's bot posts `text` in `channel`: stored, and its ``message`` event as Slack sends it
        (``bot_id``, ``app_id``, ``bot_profile``, its bot ``user``, no subtype). With ``legacy`` it is an
        integration or incoming webhook: subtype ``bot_message``, ``bot_id``, ``username``, no user."""
        message = self.seed_message(
            channel,
            text,
            user=None if legacy else user,
            bot_id=bot_id,
            subtype="bot_message" if legacy else None,
            username=name,
            thread_ts=thread_ts,
            ts=ts,
        )
        return self.message_event_of(channel, message.ts)

    def message_event_of(self, channel: str, ts: str) -> JsonDict:
        """The ``message`` event Slack sends for a stored message (a person's, the bot's own from
        chat.postMessage, another bot's): its fields as conversations.history has them, plus ``channel``,
        ``channel_type`` and ``event_ts``."""
        message = self._stored(channel, ts)
        event = {k: v for k, v in self._message_json(message).items() if k not in _THREAD_SUMMARY}
        if not message.is_reply:
            event.pop("thread_ts", None)
        if message.user and not message.is_bot:
            event["client_msg_id"] = str(uuid.uuid4())
        return {**event, "channel": channel, "channel_type": self._channel_type(channel), "event_ts": message.ts}

    def seed_message(
        self,
        channel: str,
        text: str,
        *,
        user: str | None = None,
        ts: str | None = None,
        thread_ts: str | None = None,
        bot_id: str | None = None,
        subtype: str | None = None,
        username: str | None = None,
        files: Sequence[tuple[str, str, bytes]] = (),
    ) -> StoredMessage:
        """A message already in `channel`, without any event: a person's (``user``; the default person unless
        a ``bot_id`` is given), the bot's own (``user=fake.bot_user_id``), another app's bot (``bot_id`` and its
        ``user``) or an integration's (``bot_id``, ``subtype="bot_message"``, ``username``). ``ts`` may be in
        the past (history); ``thread_ts`` makes it a reply."""
        if user is None and bot_id is None:
            user = self.DEFAULT_USER
        if user == self.bot_user_id and bot_id is None:
            bot_id = self.bot_id
        message = StoredMessage(
            channel=channel,
            ts=self._claim_ts(ts),
            text=text,
            user=user,
            bot_id=bot_id,
            thread_ts=thread_ts,
            subtype=subtype,
            username=username,
        )
        if bot_id is None:
            message.blocks = _rich_text_blocks(text)
        if files:
            message.files = [self._share_file(name, mimetype, data, user or "") for name, mimetype, data in files]
            message.subtype = message.subtype or "file_share"
        if channel not in self.channels:
            self.add_channel(channel, channel)
        return self._store(message, float(message.ts))

    def _claim_ts(self, ts: str | None) -> str:
        """`ts` (later ones from next_ts stay after it), or a new one."""
        if ts is None:
            return self.next_ts()
        seconds, micros = _ts_key(ts)
        self._last_ts_micros = max(self._last_ts_micros, seconds * 1_000_000 + micros)
        return _format_ts(seconds * 1_000_000 + micros)

    def seed_history(
        self,
        channel: str,
        count: int,
        *,
        user: str | None = None,
        text: str = "message {i}",
        start: float | None = None,
        spacing: float = 1.0,
        other_bot_every: int = 0,
        own_bot_every: int = 0,
        thread_every: int = 0,
        replies: int = 2,
    ) -> list[StoredMessage]:
        """`count` top-level messages already in `channel` (no events), oldest first, `spacing` seconds apart
        from `start` (default: ending a minute ago); fast enough for 100,000. Message i (from 0) has the text
        ``text.format(i=i)`` and is by `user` (the default person), except: every `other_bot_every`-th is an
        integration's (subtype ``bot_message``, bot_id B0OTHERBOT), every `own_bot_every`-th the bot's own.
        Every `thread_every`-th gets `replies` thread replies, "reply {j} to message {i}", alternately by
        `user` and by the bot itself (its answers). Returns every message stored, in ts order."""
        person = user or self.DEFAULT_USER
        first = start if start is not None else time.time() - 60 - count * spacing
        step = max(1, int(spacing * 1_000_000))
        base = int(first * 1_000_000)
        made: list[StoredMessage] = []
        with _no_gc():  # many small objects at once: the collector's passes would take most of the time
            for i in range(count):
                parent = self._seeded(
                    channel, base + i * step, text.format(i=i), person, i, other_bot_every, own_bot_every
                )
                made.append(parent)
                for j in range(replies if thread_every and (i + 1) % thread_every == 0 else 0):
                    at = base + i * step + (j + 1) * step // (replies + 1)
                    author = self.bot_user_id if j % 2 else person
                    made.append(
                        self._seeded_message(channel, at, f"reply {j} to message {i}", author, thread_ts=parent.ts)
                    )
            self._store_many(channel, made)
            return sorted(made, key=_message_key)

    def _seeded(
        self, channel: str, micros: int, text: str, person: str, i: int, other_bot_every: int, own_bot_every: int
    ) -> StoredMessage:
        if other_bot_every and (i + 1) % other_bot_every == 0:
            message = self._seeded_message(channel, micros, text, None)
            message.bot_id, message.subtype, message.username, message.blocks = (
                "B0OTHERBOT",
                "bot_message",
                "otherbot",
                None,
            )
            return message
        author = self.bot_user_id if own_bot_every and (i + 1) % own_bot_every == 0 else person
        return self._seeded_message(channel, micros, text, author)

    def _seeded_message(
        self, channel: str, micros: int, text: str, user: str | None, *, thread_ts: str | None = None
    ) -> StoredMessage:
        own = user == self.bot_user_id
        ts = _format_ts(micros)
        return StoredMessage(
            channel=channel,
            ts=ts,
            text=text,
            user=user,
            bot_id=self.bot_id if own else None,
            thread_ts=thread_ts,
            blocks=None if own or user is None else _rich_text_blocks(text),
            history=[(micros / 1_000_000, text)],
        )

    def _store_many(self, channel: str, messages: list[StoredMessage]) -> None:
        if channel not in self.channels:
            self.add_channel(channel, channel)
        stored = self._messages.setdefault(channel, [])
        stored.extend(messages)
        stored.sort(key=_message_key)
        for message in messages:
            self._index(message)
        if messages:
            seconds, micros = max(m.key for m in messages)
            self._last_ts_micros = max(self._last_ts_micros, seconds * 1_000_000 + micros)

    def _event_base(self, event_type: str, message: StoredMessage) -> JsonDict:
        event: JsonDict = {
            "type": event_type,
            "user": message.user,
            "text": message.text,
            "ts": message.ts,
            "channel": message.channel,
            "event_ts": message.ts,
            "team": self.team_id,
            "client_msg_id": str(uuid.uuid4()),
            "blocks": message.blocks,
        }
        if message.files:
            event["files"] = message.files
            event["upload"] = False
        if message.thread_ts:
            event["thread_ts"] = message.thread_ts
            parent = self.find_message(message.channel, message.thread_ts)
            if parent is not None and parent.user:
                event["parent_user_id"] = parent.user
        return event

    def event_callback(self, event: JsonDict, event_id: str | None = None) -> JsonDict:
        """The Events API outer payload (what HTTP mode POSTs and Socket Mode wraps)."""
        authorization = {
            "enterprise_id": self.enterprise_id,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "is_bot": True,
            "is_enterprise_install": self.is_enterprise_install,
        }
        payload: JsonDict = {"enterprise_id": self.enterprise_id} if self.enterprise_id else {}
        return {
            **payload,
            "token": "fake-verification-token",
            "team_id": self.team_id,
            "context_team_id": self.team_id,
            "context_enterprise_id": self.enterprise_id,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
            "authorizations": [authorization],
            "is_ext_shared_channel": False,
            "event_context": f"4-{uuid.uuid4().hex}",
        }

    def slash_command(self, command: str, text: str, user: str, channel: str) -> JsonDict:
        """A slash-command payload; its ``response_url`` points at this fake."""
        chan = self.channels.get(channel)
        user_obj = self.users.get(user)
        return {
            "token": "fake-verification-token",
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel,
            "channel_name": ("directmessage" if chan and chan.is_im else chan.name) if chan else channel,
            "user_id": user,
            "user_name": user_obj.name if user_obj else user,
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self._new_response_url(channel, user, "slash_command"),
            "trigger_id": self._new_trigger(user, "slash_command"),
        }

    def message_shortcut(self, callback_id: str, user: str, channel: str, message_ts: str) -> JsonDict:
        """The interactive payload of a message shortcut (``type: "message_action"``) `user` picks
        on the stored message `message_ts` of `channel`: the full message (text, blocks, files,
        thread), a ``trigger_id`` and a ``response_url`` that takes up to 5 responses."""
        message = self.find_message(channel, message_ts)
        if message is None:
            raise LookupError(f"no message {message_ts} in {channel} to use a shortcut on")
        chan = self.channels.get(channel)
        name = self.users[user].name if user in self.users else user
        return {
            "type": "message_action",
            "token": "fake-verification-token",
            "action_ts": f"{time.time():.6f}",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": {"id": user, "username": name, "team_id": self.team_id, "name": name},
            "channel": {
                "id": channel,
                "name": ("directmessage" if chan and chan.is_im else chan.name) if chan else channel,
            },
            "is_enterprise_install": False,
            "enterprise": None,
            "callback_id": callback_id,
            "trigger_id": self._new_trigger(user, "message_action"),
            "response_url": self._new_response_url(channel, user, "message_action", thread_ts=message.thread_ts),
            "message_ts": message.ts,
            "message": self._message_json(message),
        }

    def block_actions(
        self, user: str, channel: str, message_ts: str, action_id: str, *, is_ephemeral: bool = False
    ) -> JsonDict:
        """The interactive payload of `user` clicking the button `action_id` of the stored message
        `message_ts` in `channel` (``type: "block_actions"``): the button's ``block_id`` and ``value`` as
        the message has them, the full message, a ``trigger_id`` and a ``response_url``."""
        message = self.find_message(channel, message_ts)
        if message is None:
            raise LookupError(f"no message {message_ts} in {channel} to click on")
        found = [
            (block, element)
            for block in message.blocks_of("actions")
            for element in block.get("elements") or []
            if element.get("action_id") == action_id
        ]
        if not found:
            raise LookupError(f"message {message_ts} has no element {action_id!r} (any more)")
        block, element = found[0]
        name = self.users[user].name if user in self.users else user
        now = f"{time.time():.6f}"
        action: JsonDict = {
            "type": element.get("type", "button"),
            "action_id": action_id,
            "block_id": block.get("block_id") or f"b{abs(hash((message_ts, id(block)))) % 10**6:06d}",
            "action_ts": now,
        }
        if "value" in element:
            action["value"] = element["value"]
        if isinstance(element.get("text"), dict):
            action["text"] = element["text"]
        return {
            "type": "block_actions",
            "token": "fake-verification-token",
            "api_app_id": self.app_id,
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": {"id": user, "username": name, "name": name, "team_id": self.team_id},
            "channel": {"id": channel, "name": self.channels[channel].name if channel in self.channels else channel},
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": channel,
                "is_ephemeral": is_ephemeral,
            },
            "message": self._message_json(message),
            "state": {"values": {}},
            "actions": [action],
            "trigger_id": self._new_trigger(user, "block_actions"),
            "response_url": self._new_response_url(channel, user, "block_actions", thread_ts=message.thread_ts),
            "is_enterprise_install": False,
            "enterprise": None,
        }

    def _new_trigger(self, user: str, source: str) -> str:
        """A ``trigger_id`` for `user`'s interaction, issued now: ``views.open`` takes it within
        ``trigger_id_lifetime`` seconds, once."""
        trigger_id = _trigger_id()
        self._triggers[trigger_id] = _Trigger(user, time.time(), source)
        return trigger_id

    def view_submission(self, user: str, view_id: str, values: dict[str, str | None]) -> JsonDict:
        """The ``view_submission`` payload of `user` pressing the submit button of the modal `view_id` (opened
        with views.open) after typing `values`: each key is an input block's ``block_id`` (or, failing
        that, its element's ``action_id``), each value the text typed in it. ``view.state.values`` is
        ``{block_id: {action_id: {"type": "plain_text_input", "value": text}}}`` for every input block; one
        left out of `values` (or given "" or None) has ``"value": None``, as Slack sends an empty field.

        Raises AssertionError for what Slack's client would not send (a test bug): a view never opened,
        already submitted (closed), someone else's; a key naming no text input; text longer than the
        element's ``max_length`` or shorter than its ``min_length``; a required (not ``optional``) input
        left empty. Marks the view closed (see OpenedView.closed; a Socket Mode answer may reopen it)."""
        opened = self._views.get(view_id)
        if opened is None:
            raise AssertionError(f"no view {view_id!r} was opened with views.open: nothing to submit")
        if opened.closed:
            raise AssertionError(f"view {view_id!r} was already submitted (closed): nothing to submit")
        if user != opened.user:
            raise AssertionError(f"view {view_id!r} was opened for {opened.user}, {user} cannot submit it")
        name = self.users[user].name if user in self.users else user
        view = {**opened.view, "state": {"values": self._view_state(opened.view, values)}}
        payload: JsonDict = {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": {"id": user, "username": name, "name": name, "team_id": self.team_id},
            "api_app_id": self.app_id,
            "token": "fake-verification-token",
            "trigger_id": self._new_trigger(user, "view_submission"),
            "view": view,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        opened.closed = True
        opened.submissions.append(payload)
        return payload

    @staticmethod
    def _view_state(view: JsonDict, values: dict[str, str | None]) -> JsonDict:
        """``state.values`` of a submitted modal: every input block, by block_id then action_id."""
        remaining = dict(values)
        state: JsonDict = {}
        for block in view.get("blocks") or []:
            element = block.get("element")
            if block.get("type") != "input" or not isinstance(element, dict):
                continue
            block_id, action_id, kind = block["block_id"], element["action_id"], element.get("type")
            key = block_id if block_id in remaining else action_id if action_id in remaining else None
            text = remaining.pop(key) if key is not None else None
            if kind not in TEXT_INPUT_TYPES:
                if text is not None:
                    raise AssertionError(f"input {block_id!r} is a {kind}: the fake types text into text inputs only")
                state[block_id] = {action_id: {"type": kind}}
                continue
            text = text or None
            if text is None and not block.get("optional", False):
                raise AssertionError(f"input {block_id!r} is required: Slack's client does not submit it empty")
            if text is not None and not element.get("min_length", 0) <= len(text) <= element.get(
                "max_length", PLAIN_TEXT_INPUT_MAX
            ):
                raise AssertionError(f"input {block_id!r} takes min_length..max_length characters, not {len(text)}")
            state[block_id] = {action_id: {"type": kind, "value": text}}
        if remaining:
            raise AssertionError(f"the view has no text input {sorted(remaining)!r} (keys: block_id or action_id)")
        return state

    def apply_view_ack(self, view_id: str, ack: JsonDict | None) -> None:
        """The app answered a submission of `view_id` with `ack` (done for Socket Mode acks; call it with
        the HTTP response's JSON after post_signed_interactive): None / {} / ``clear`` close the modal,
        ``errors`` and ``push`` keep it open, ``update`` replaces it (if valid, else ``update_errors``)."""
        opened = self._views[view_id]
        opened.acks.append(ack)
        action = (ack or {}).get("response_action")
        if action in ("errors", "push"):
            opened.closed = False
        elif action == "update":
            opened.closed = False
            new = (ack or {}).get("view")
            problems = modal_view_errors(new) if isinstance(new, dict) else ["missing required field: view"]
            if problems:
                opened.update_errors.extend(problems)
            else:
                opened.view = self._stored_modal(new, view_id, time.time())

    def _new_response_url(self, channel: str, user: str, source: str, *, thread_ts: str | None = None) -> str:
        response_id = uuid.uuid4().hex
        self._response_targets[response_id] = _ResponseTarget(channel, user, source, time.time(), thread_ts)
        return f"{self.base_url}/response/{response_id}"

    def responses_to(self, response_url: str) -> list[ResponseUrlPost]:
        """What the app POSTed to one ``response_url`` (a payload's), in order."""
        response_id = response_url.rstrip("/").rsplit("/", 1)[-1]
        return [r for r in self.responses if r.response_id == response_id]
