"""FakeSlack's Web API methods (chat.*, conversations.*, files.*, views.*, assistant.*, ...)."""

from __future__ import annotations

import bisect
import itertools
import json
import mimetypes
import uuid
from collections.abc import Iterable, Iterator
from urllib.parse import urlencode

from fakes.slack.blocks import _validate_blocks, _view_metadata_errors, block_errors, modal_view_errors
from fakes.slack.helpers import (
    _as_blocks,
    _cursor_key,
    _decode_cursor,
    _encode_cursor,
    _file_id,
    _maybe_json,
    _required,
    _stream_text,
    _ts_key,
)
from fakes.slack.models import (
    AssistantThread,
    Channel,
    EphemeralMessage,
    OpenedView,
    PublishedView,
    StatusChange,
    StoredMessage,
    SuggestedPrompts,
    UploadedFile,
    _cursor_of,
    _message_key,
    _PendingUpload,
)
from fakes.slack.protocol import (
    FILE_ALT_TXT_MAX,
    HISTORY_ACCESS,
    HISTORY_SCOPES,
    HOME_BLOCK_TYPES,
    MAX_SUGGESTED_PROMPTS,
    MAX_VIEW_BLOCKS,
    MEMBERS_LIMIT_MAX,
    READ_SCOPES,
    SNIPPET_MAX_BYTES,
    UPLOAD_CHANNELS_MAX,
    VIEW_MAX_BYTES,
    ApiError,
    JsonDict,
)


class WebApiArea:
    """FakeSlack's web api: a part of the class, its state FakeSlack's (set in its __init__)."""

    def _auth_test(self, params: JsonDict, now: float) -> JsonDict:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": "Fake Workspace",
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": self.is_enterprise_install,
            **({"enterprise_id": self.enterprise_id} if self.enterprise_id else {}),
        }

    def _apps_connections_open(self, params: JsonDict, now: float) -> JsonDict:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        query = urlencode({"ticket": ticket, "app_id": self.app_id})
        return {"url": f"ws://127.0.0.1:{self.port}/socket?{query}"}

    def _chat_post_message(self, params: JsonDict, now: float) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        text, blocks = self._content(params, required=True)
        thread_ts = params.get("thread_ts") or None
        message = StoredMessage(
            channel=channel.id,
            ts=self.next_ts(),
            text=text or "",
            user=self.bot_user_id,
            bot_id=self.bot_id,
            thread_ts=str(thread_ts) if thread_ts else None,
            blocks=blocks,
        )
        self._store(message, now)
        return {"channel": channel.id, "ts": message.ts, "message": self._message_json(message)}

    def _chat_update(self, params: JsonDict, now: float) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        message = self._message_or_error(channel.id, _required(params, "ts"))
        text, blocks = self._content(params, required=True)
        if not message.is_bot:
            raise ApiError("cant_update_message")
        if text is not None:
            message.text = text
        if blocks is not None:
            message.blocks = blocks
        message.edited_at = now
        message.history.append((now, message.visible_text))
        return {"channel": channel.id, "ts": message.ts, "text": message.text, "message": self._message_json(message)}

    def _chat_post_ephemeral(self, params: JsonDict, now: float) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        user = _required(params, "user")
        if user not in self.users:
            raise ApiError("user_not_in_channel")
        text, blocks = self._content(params, required=True)
        thread_ts = params.get("thread_ts") or None
        self.ephemerals.append(EphemeralMessage(channel.id, user, text or "", blocks, thread_ts, now))
        return {"message_ts": self.next_ts()}

    def _chat_delete(self, params: JsonDict, now: float) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        message = self._message_or_error(channel.id, _required(params, "ts"))
        if not message.is_bot:
            raise ApiError("cant_delete_message")
        message.deleted = True
        message.history.append((now, ""))
        return {"channel": channel.id, "ts": message.ts}

    def _chat_start_stream(self, params: JsonDict, now: float) -> JsonDict:
        if not self.native_streaming:
            raise ApiError(self.streaming_disabled_error)
        channel = self._resolve_channel(params.get("channel"))
        thread_ts = _required(params, "thread_ts")
        if not channel.can_stream:
            raise ApiError("channel_type_not_supported")
        if not channel.is_im or self.require_recipient_in_dm:
            if not params.get("recipient_user_id"):
                raise ApiError("missing_recipient_user_id")
            if not params.get("recipient_team_id"):
                raise ApiError("missing_recipient_team_id")
        text, chunks = _stream_text(params)
        message = StoredMessage(
            channel=channel.id,
            ts=self.next_ts(),
            text=text,
            user=self.bot_user_id,
            bot_id=self.bot_id,
            thread_ts=thread_ts,
            stream_state="streaming",
            stream_started_at=now,
            chunks=chunks,
        )
        self._store(message, now)
        return {"channel": channel.id, "ts": message.ts}

    def _streaming_message(self, params: JsonDict, now: float) -> tuple[Channel, StoredMessage]:
        channel = self._resolve_channel(params.get("channel"))
        message = self._message_or_error(channel.id, _required(params, "ts"))
        expired = message.stream_started_at is not None and now - message.stream_started_at > self.stream_max_age
        if message.stream_state == "streaming" and expired:
            message.stream_state = "expired"
        if message.stream_state != "streaming":
            raise ApiError("message_not_in_streaming_state")
        return channel, message

    def _append_to_stream(self, message: StoredMessage, text: str, chunks: list[JsonDict], now: float) -> None:
        message.text += text
        message.chunks.extend(chunks)
        message.history.append((now, message.visible_text))

    def _chat_append_stream(self, params: JsonDict, now: float) -> JsonDict:
        channel, message = self._streaming_message(params, now)
        text, chunks = _stream_text(params)
        if not text and not chunks:
            raise ApiError("no_text")
        self._append_to_stream(message, text, chunks, now)
        return {"channel": channel.id, "ts": message.ts}

    def _chat_stop_stream(self, params: JsonDict, now: float) -> JsonDict:
        channel, message = self._streaming_message(params, now)
        text, chunks = _stream_text(params)
        blocks = _as_blocks(params.get("blocks"))
        if blocks:
            _validate_blocks(blocks)
            message.blocks = (message.blocks or []) + blocks
        message.stream_state = "stopped"
        self._append_to_stream(message, text, chunks, now)
        return {"channel": channel.id, "ts": message.ts, "message": self._message_json(message)}

    def _users_info(self, params: JsonDict, now: float) -> JsonDict:
        user = self.users.get(_required(params, "user"))
        if user is None:
            raise ApiError("user_not_found")
        return {"user": user.to_api()}

    def _usergroups_users_list(self, params: JsonDict, now: float) -> JsonDict:
        members = self.user_groups.get(_required(params, "usergroup"))
        if members is None:
            raise ApiError("no_such_subteam")
        return {"users": list(members)}

    def _history_limit(self, method: str, params: JsonDict) -> int:
        """``limit`` as Slack applies it: the tier's default when absent, at most the tier's largest."""
        access = HISTORY_ACCESS[self.history_tier]
        try:
            asked = int(params.get("limit") or 0)
        except (TypeError, ValueError):
            asked = 0
        return min(asked or access.default_limit[method], access.max_limit[method])

    def _page(self, method: str, messages: Iterable[StoredMessage], params: JsonDict) -> JsonDict:
        """One page of `messages` (in the order returned, from the cursor on). Slack's cursor is base64 of
        ``next_ts:<ts in microseconds>``: the first message of the next page, so new messages do not shift it."""
        limit = self._history_limit(method, params)
        taken = list(itertools.islice(messages, limit + 1))
        page, rest = taken[:limit], taken[limit:]
        return {
            "messages": [self._message_json(m) for m in page],
            "has_more": bool(rest),
            "pin_count": 0,
            "response_metadata": {"next_cursor": _cursor_of(rest[0]) if rest else ""},
        }

    @staticmethod
    def _bounds(params: JsonDict) -> tuple[tuple[int, int] | None, tuple[int, int] | None, bool]:
        """(oldest, latest, inclusive) of a history call."""
        inclusive = str(params.get("inclusive", "0")).lower() in ("1", "true")
        oldest, latest = params.get("oldest"), params.get("latest")
        return (
            _ts_key(str(oldest)) if oldest else None,
            _ts_key(str(latest)) if latest else None,
            inclusive,
        )

    def _in_window(self, messages: list[StoredMessage], params: JsonDict) -> list[StoredMessage]:
        oldest, latest, inclusive = self._bounds(params)
        return [
            m
            for m in messages
            if (oldest is None or m.key > oldest or (inclusive and m.key == oldest))
            and (latest is None or m.key < latest or (inclusive and m.key == latest))
        ]

    def _conversations_replies(self, params: JsonDict, now: float) -> JsonDict:
        """A thread, oldest first (its parent first on the first page), found by its parent's ts or any of its
        replies' (as Slack's method reference says of ``ts``); a message without replies alone."""
        channel = self._resolve_channel(params.get("channel"))
        self._check_readable(channel)
        parent = self.find_message(channel.id, _required(params, "ts"))
        if parent is not None and parent.is_reply and parent.thread_ts is not None:
            parent = self.find_message(channel.id, parent.thread_ts)
        if parent is None:
            raise ApiError("thread_not_found")
        thread = self._in_window([parent, *self._replies_of(parent)] if not parent.is_reply else [parent], params)
        if params.get("cursor"):
            start = _cursor_key(str(params["cursor"]))
            thread = [m for m in thread if m.key >= start]
        return self._page("conversations.replies", thread, params)

    def _conversations_history(self, params: JsonDict, now: float) -> JsonDict:
        """A channel's messages, newest first: top-level ones (thread replies only when also sent to the
        channel, subtype thread_broadcast); a thread's parent carries reply_count, reply_users, latest_reply."""
        channel = self._resolve_channel(params.get("channel"))
        self._check_readable(channel)
        cursor = _cursor_key(str(params["cursor"])) if params.get("cursor") else None
        return self._page("conversations.history", self._newest_first(channel.id, params, cursor), params)

    def _newest_first(self, channel: str, params: JsonDict, cursor: tuple[int, int] | None) -> Iterator[StoredMessage]:
        """The channel's top-level messages in the call's window, newest first from the cursor on (walks back
        from a bisected start, so a page of a 100,000-message channel costs its own length)."""
        oldest, latest, inclusive = self._bounds(params)
        messages = self._messages.get(channel, [])
        end = len(messages)
        if latest is not None:
            end = (bisect.bisect_right if inclusive else bisect.bisect_left)(messages, latest, key=_message_key)
        if cursor is not None:
            end = min(end, bisect.bisect_right(messages, cursor, key=_message_key))
        for index in range(end - 1, -1, -1):
            message = messages[index]
            if oldest is not None and (message.key < oldest or (message.key == oldest and not inclusive)):
                return
            if not message.deleted and (not message.is_reply or message.subtype == "thread_broadcast"):
                yield message

    def _check_readable(self, channel: Channel) -> None:
        """A channel's history is read with its type's scope, by a member (a public channel the
        bot is not in: not_in_channel; a private one: the bot can't see it, channel_not_found)."""
        needed = HISTORY_SCOPES[channel.channel_type]
        if needed not in self.scopes:
            raise ApiError("missing_scope", needed=needed, provided=",".join(sorted(self.scopes)))
        if not channel.is_im and not channel.bot_member:
            raise ApiError("channel_not_found" if channel.is_private else "not_in_channel")

    def _files_get_upload_url_external(self, params: JsonDict, now: float) -> JsonDict:
        filename = _required(params, "filename")
        try:
            length = int(_required(params, "length"))
        except ValueError:
            raise ApiError(
                "invalid_arguments", response_metadata={"messages": ["[ERROR] invalid type for field: length"]}
            ) from None
        if length <= 0:
            raise ApiError("missing_argument")
        alt_txt = params.get("alt_txt") or None
        if alt_txt is not None and len(str(alt_txt)) > FILE_ALT_TXT_MAX:
            raise ApiError("alt_txt_too_large")
        snippet_type = params.get("snippet_type") or None
        if snippet_type is not None and length > SNIPPET_MAX_BYTES:
            raise ApiError("snippet_too_large")
        file_id, ticket = _file_id(), uuid.uuid4().hex
        self._pending_uploads[file_id] = _PendingUpload(file_id, filename, length, now, alt_txt, snippet_type)
        self._upload_tickets[ticket] = file_id
        return {"upload_url": f"{self.base_url}/upload/v1/{ticket}", "file_id": file_id}

    def _files_complete_upload_external(self, params: JsonDict, now: float) -> JsonDict:
        _required(params, "files")
        entries = _maybe_json(params["files"])
        if not isinstance(entries, list) or not all(isinstance(e, dict) and e.get("id") for e in entries or [{}]):
            raise ApiError("invalid_arguments", response_metadata={"messages": ["[ERROR] invalid field: files"]})
        uploads: list[tuple[_PendingUpload, bytes, str]] = []
        for entry in entries:
            pending = self._pending_uploads.get(str(entry["id"]))
            if pending is None or pending.data is None:
                raise ApiError("file_not_found")
            if len(pending.data) != pending.length:
                message = f"[ERROR] {pending.file_id}: {len(pending.data)} bytes uploaded, length {pending.length}"
                raise ApiError("invalid_arguments", response_metadata={"messages": [message]})
            uploads.append((pending, pending.data, str(entry.get("title") or pending.filename)))
        targets = [str(params["channel_id"])] if params.get("channel_id") else []
        targets += [c.strip() for c in str(params.get("channels") or "").split(",") if c.strip()]
        if len(targets) > UPLOAD_CHANNELS_MAX:
            raise ApiError("channels_limit_exceeded")
        thread_ts = str(params["thread_ts"]) if params.get("thread_ts") else None
        if thread_ts is not None and len(targets) > 1:
            raise ApiError(
                "invalid_arguments", response_metadata={"messages": ["[ERROR] thread_ts takes a single channel"]}
            )
        channels: list[Channel] = []
        for target in targets:
            channel = self._resolve_channel(target)
            if not channel.is_im and not channel.bot_member:
                raise ApiError("channel_not_found" if channel.is_private else "not_in_channel")
            if channel not in channels:
                channels.append(channel)
        comment = params.get("initial_comment") or None
        blocks = None if comment else _as_blocks(params.get("blocks"))
        if blocks:
            _validate_blocks(blocks)

        kinds = {"channel": "channels", "group": "groups", "im": "ims"}
        shared: list[JsonDict] = []
        records: list[UploadedFile] = []
        for pending, data, title in uploads:
            del self._pending_uploads[pending.file_id]
            mimetype = mimetypes.guess_type(pending.filename)[0] or "application/octet-stream"
            file = self._share_file(
                pending.filename, mimetype, data, self.bot_user_id, file_id=pending.file_id, title=title
            )
            for kind in kinds.values():
                file[kind] = [c.id for c in channels if kinds[c.channel_type] == kind]
            if pending.alt_txt:
                file["alt_txt"] = pending.alt_txt
            shared.append(file)
            records.append(
                UploadedFile(
                    pending.file_id,
                    pending.filename,
                    title,
                    data,
                    mimetype,
                    self.bot_user_id,
                    now,
                    [c.id for c in channels],
                    thread_ts,
                    None if comment is None else str(comment),
                    file=file,
                )
            )
        for channel in channels:
            message = StoredMessage(
                channel=channel.id,
                ts=self.next_ts(),
                text="" if comment is None else str(comment),
                user=self.bot_user_id,
                bot_id=self.bot_id,
                thread_ts=thread_ts,
                blocks=blocks,
                subtype="file_share",
                files=list(shared),
            )
            self._store(message, now)
            for record in records:
                record.message_ts[channel.id] = message.ts
        self.uploaded_files.extend(records)
        return {"files": shared}

    def _conversations_info(self, params: JsonDict, now: float) -> JsonDict:
        """A conversation's ``is_private`` / ``is_member`` (``num_members`` when asked); a private channel the
        bot is not in is invisible to it (channel_not_found)."""
        channel = self._resolve_channel(params.get("channel"))
        if channel.is_private and not channel.is_im and not channel.bot_member:
            raise ApiError("channel_not_found")
        data = channel.to_api()
        if str(params.get("include_num_members", "")).lower() in ("1", "true"):
            data["num_members"] = len(self.members_of(channel.id))
        return {"channel": data}

    def _conversations_members(self, params: JsonDict, now: float) -> JsonDict:
        """A channel's members (the bot too when it is in), by id, paginated with Slack's ``user:<id>`` cursor;
        the channel type's read scope; a private channel the bot is not in: channel_not_found."""
        channel = self._resolve_channel(params.get("channel"))
        needed = READ_SCOPES[channel.channel_type]
        if needed not in self.scopes:
            raise ApiError("missing_scope", needed=needed, provided=",".join(sorted(self.scopes)))
        if channel.is_private and not channel.bot_member:
            raise ApiError("channel_not_found")
        members = self.members_of(channel.id)
        if params.get("cursor"):
            after = _decode_cursor(str(params["cursor"]), "user")
            members = [m for m in members if m >= after]
        try:
            limit = min(int(params.get("limit") or 100) or 100, MEMBERS_LIMIT_MAX)
        except (TypeError, ValueError):
            limit = 100
        page, rest = members[:limit], members[limit:]
        cursor = _encode_cursor("user", rest[0]) if rest else ""
        return {"members": page, "response_metadata": {"next_cursor": cursor}}

    def _chat_get_permalink(self, params: JsonDict, now: float) -> JsonDict:
        channel = self._resolve_channel(params.get("channel"))
        if channel.is_private and not channel.is_im and not channel.bot_member:
            raise ApiError("channel_not_found")
        message = self._message_or_error(channel.id, _required(params, "message_ts"))
        return {"channel": channel.id, "permalink": self.permalink(channel.id, message.ts)}

    def _conversations_open(self, params: JsonDict, now: float) -> JsonDict:
        users = params.get("users")
        user_id = (users[0] if isinstance(users, list) else str(users or "").split(",")[0]).strip()
        if user_id not in self.users:
            raise ApiError("user_not_found")
        return {"channel": {"id": self._dm_with(user_id).id}}

    def _assistant_set_status(self, params: JsonDict, now: float) -> JsonDict:
        channel = self._resolve_channel(params.get("channel_id"))
        thread_ts = _required(params, "thread_ts")
        if "status" not in params:
            raise ApiError("invalid_arguments")
        loading = params.get("loading_messages")
        self.statuses.append(StatusChange(channel.id, thread_ts, str(params["status"]), now, loading))
        return {}

    def _assistant_thread(self, params: JsonDict, *, required: bool) -> tuple[Channel, AssistantThread | None]:
        """The DM channel and assistant thread a call names (channel_not_found, invalid_thread_ts)."""
        channel = self._resolve_channel(_required(params, "channel_id"))
        thread_ts = str(params.get("thread_ts") or "")
        if not thread_ts:
            if required:
                _required(params, "thread_ts")
            return channel, None
        thread = self.assistant_threads.get((channel.id, thread_ts))
        if thread is None:
            raise ApiError("invalid_thread_ts")
        return channel, thread

    def _assistant_set_suggested_prompts(self, params: JsonDict, now: float) -> JsonDict:
        """1-4 prompts, each with a non-empty ``title`` and ``message``; an optional list ``title``."""
        channel, thread = self._assistant_thread(params, required=False)
        prompts = params.get("prompts")
        problems: list[str] = []
        if not isinstance(prompts, list) or not prompts:
            problems.append("must provide at least 1 item [json-pointer:/prompts]")
        elif len(prompts) > MAX_SUGGESTED_PROMPTS:
            problems.append(f"no more than {MAX_SUGGESTED_PROMPTS} items allowed [json-pointer:/prompts]")
        else:
            for i, prompt in enumerate(prompts):
                for key in ("title", "message"):
                    value = prompt.get(key) if isinstance(prompt, dict) else None
                    if not isinstance(value, str) or not value.strip():
                        problems.append(f"missing required field: {key} [json-pointer:/prompts/{i}/{key}]")
        title = params.get("title")
        if title is not None and not isinstance(title, str):
            problems.append("must provide a string [json-pointer:/title]")
        if problems:
            raise ApiError("invalid_arguments", response_metadata={"messages": [f"[ERROR] {p}" for p in problems]})
        assert isinstance(prompts, list)
        thread_ts = thread.thread_ts if thread else None
        self.suggested_prompts.append(SuggestedPrompts(channel.id, thread_ts, prompts, title, now))
        return {}

    def _assistant_set_title(self, params: JsonDict, now: float) -> JsonDict:
        _, thread = self._assistant_thread(params, required=True)
        assert thread is not None
        title = _required(params, "title")
        thread.title = title
        thread.titles.append(title)
        return {}

    def _views_publish(self, params: JsonDict, now: float) -> JsonDict:
        """A Home tab view for one person: ``type: "home"``, up to 100 valid blocks, 250 kB."""
        user_id = _required(params, "user_id")
        if user_id not in self.users:
            raise ApiError("invalid_arguments", response_metadata={"messages": ["invalid `user_id`"]})
        view = params.get("view")
        if not isinstance(view, dict):
            raise ApiError(
                "invalid_arguments", response_metadata={"messages": ["[ERROR] missing required field: view"]}
            )
        if len(json.dumps(view)) > VIEW_MAX_BYTES:
            raise ApiError("view_too_large")
        problems = self._home_view_errors(view)
        if problems:
            raise ApiError("invalid_arguments", response_metadata={"messages": [f"[ERROR] {p}" for p in problems]})
        if not self.home_tab_enabled:
            raise ApiError("not_enabled")
        current = self.home_views.get(user_id)
        if params.get("hash") and current is not None and params["hash"] != current["hash"]:
            raise ApiError("hash_conflict")
        view_id = current["id"] if current else f"V{uuid.uuid4().hex[:10].upper()}"
        stored = {
            **view,
            "id": view_id,
            "team_id": self.team_id,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
            "hash": f"{now:.6f}.{uuid.uuid4().hex[:8]}",
            "root_view_id": view_id,
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
        }
        self.home_views[user_id] = stored
        self.published_views.append(PublishedView(user_id, stored, now))
        return {"view": stored}

    def _views_open(self, params: JsonDict, now: float) -> JsonDict:
        """A modal for the person whose interaction issued ``trigger_id`` (or ``interactivity_pointer``):
        a trigger_id of this fake (``invalid_trigger_id``), not exchanged before (``exchanged_trigger_id``),
        at most ``trigger_id_lifetime`` seconds old (``expired_trigger_id``); a valid modal (see
        modal_view_errors: ``invalid_arguments``), 250 kB (``view_too_large``), an unused ``external_id``
        (``duplicate_external_id``). A refused view leaves the trigger_id unexchanged."""
        trigger_id = params.get("trigger_id") or params.get("interactivity_pointer")
        if not trigger_id:
            raise ApiError(
                "invalid_arguments", response_metadata={"messages": ["[ERROR] missing required field: trigger_id"]}
            )
        trigger = self._triggers.get(str(trigger_id))
        if trigger is None:
            raise ApiError("invalid_trigger_id")
        if trigger.exchanged:
            raise ApiError("exchanged_trigger_id")
        if now - trigger.issued > self.trigger_id_lifetime:
            raise ApiError("expired_trigger_id")
        view = params.get("view")
        if not isinstance(view, dict):
            raise ApiError(
                "invalid_arguments", response_metadata={"messages": ["[ERROR] missing required field: view"]}
            )
        if len(json.dumps(view)) > VIEW_MAX_BYTES:
            raise ApiError("view_too_large")
        problems = modal_view_errors(view)
        if problems:
            raise ApiError("invalid_arguments", response_metadata={"messages": [f"[ERROR] {p}" for p in problems]})
        external_id = view.get("external_id")
        if external_id and any(v.view.get("external_id") == external_id for v in self.views_opened):
            raise ApiError("duplicate_external_id")
        trigger.exchanged = True
        view_id = f"V{uuid.uuid4().hex[:10].upper()}"
        stored = self._stored_modal(view, view_id, now)
        opened = OpenedView(view_id, trigger.user, self.team_id, stored, now, str(trigger_id))
        self.views_opened.append(opened)
        self._views[view_id] = opened
        return {"view": stored}

    def _stored_modal(self, view: JsonDict, view_id: str, now: float) -> JsonDict:
        """A modal as Slack keeps and returns it: every block with a ``block_id`` and every input element
        with an ``action_id`` (random ones where the app gave none), ``state``, ``hash`` and the ids."""
        view = json.loads(json.dumps(view))  # a copy: ids are filled in
        for block in view.get("blocks") or []:
            block.setdefault("block_id", uuid.uuid4().hex[:5])
            element = block.get("element")
            if block.get("type") == "input" and isinstance(element, dict):
                element.setdefault("action_id", uuid.uuid4().hex[:5])
                block.setdefault("optional", False)
                block.setdefault("dispatch_action", False)
        return {
            **view,
            "id": view_id,
            "team_id": self.team_id,
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{now:.6f}.{uuid.uuid4().hex[:8]}",
            "clear_on_close": view.get("clear_on_close", False),
            "notify_on_close": view.get("notify_on_close", False),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": self.app_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }

    def opened_view(self, view_id: str) -> OpenedView | None:
        return self._views.get(view_id)

    @staticmethod
    def _home_view_errors(view: JsonDict) -> list[str]:
        if view.get("type") != "home":
            return ["must be home [json-pointer:/view/type]"]
        blocks = view.get("blocks")
        if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
            return ["must provide an array [json-pointer:/view/blocks]"]
        problems = block_errors(blocks, limit=MAX_VIEW_BLOCKS, base="/view/blocks", types=HOME_BLOCK_TYPES)
        return problems + _view_metadata_errors(view)

    def title_of(self, channel_id: str, thread_ts: str) -> str | None:
        """An assistant thread's title (None: never set)."""
        thread = self.assistant_threads.get((channel_id, thread_ts))
        return thread.title if thread else None

    def prompts_for(self, channel_id: str, thread_ts: str | None) -> list[JsonDict] | None:
        """The suggested prompts last set for a thread (None: never)."""
        calls = [c for c in self.suggested_prompts if c.channel_id == channel_id and c.thread_ts == thread_ts]
        return calls[-1].prompts if calls else None

    def _reaction_target(self, params: JsonDict) -> tuple[StoredMessage, str]:
        channel = self._resolve_channel(params.get("channel"))
        message = self._message_or_error(channel.id, _required(params, "timestamp"))
        return message, _required(params, "name")

    def _reactions_add(self, params: JsonDict, now: float) -> JsonDict:
        message, name = self._reaction_target(params)
        users = message.reactions.setdefault(name, [])
        if self.bot_user_id in users:
            raise ApiError("already_reacted")
        users.append(self.bot_user_id)
        return {}

    def _reactions_remove(self, params: JsonDict, now: float) -> JsonDict:
        message, name = self._reaction_target(params)
        users = message.reactions.get(name, [])
        if self.bot_user_id not in users:
            raise ApiError("no_reaction")
        users.remove(self.bot_user_id)
        if not users:
            del message.reactions[name]
        return {}

    def status_of(self, channel_id: str, thread_ts: str) -> str | None:
        """The last ``assistant.threads.setStatus`` status of a thread ("" = cleared)."""
        changes = [s for s in self.statuses if s.channel_id == channel_id and s.thread_ts == thread_ts]
        return changes[-1].status if changes else None
