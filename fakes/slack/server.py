"""FakeSlack: one workspace in memory, its Web API, Socket Mode and HTTP delivery in one aiohttp app;
its lifecycle, directory, message store and the Web API's plumbing. What people do, the Web API's methods
and how events reach the app are areas of their own."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp
from aiohttp import web

from fakes.slack.blocks import _validate_blocks
from fakes.slack.delivery import DeliveryArea
from fakes.slack.events import EventsArea
from fakes.slack.helpers import _as_blocks, _bearer, _format_ts, _maybe_json
from fakes.slack.models import (
    AssistantThread,
    Channel,
    Delivery,
    EphemeralMessage,
    OpenedView,
    PublishedView,
    RecordedCall,
    ResponseUrlPost,
    StatusChange,
    StoredMessage,
    SuggestedPrompts,
    UploadedFile,
    User,
    _Injected,
    _message_key,
    _PendingUpload,
    _ResponseTarget,
    _Trigger,
)
from fakes.slack.protocol import (
    DEFAULT_SCOPES,
    HISTORY_ACCESS,
    HISTORY_METHODS,
    JSON_PARAMS,
    MARKDOWN_TEXT_MAX,
    METHOD_SCOPES,
    RESPONSE_URL_MAX_AGE,
    RESPONSE_URL_MAX_USES,
    TRIGGER_ID_LIFETIME,
    ApiError,
    HistoryTier,
    JsonDict,
)
from fakes.slack.rate_limits import SlackLimits, _RateLimiter, _WindowLimiter
from fakes.slack.web_api import WebApiArea


class FakeSlack(EventsArea, WebApiArea, DeliveryArea):
    """Loopback Slack. Use ``async with FakeSlack() as fake:`` (or ``start()`` / ``stop()``)."""

    DEFAULT_USER = "U0ALICE01"
    DEFAULT_CHANNEL = "C0GENERAL"
    DEFAULT_DM = "D0ALICE01"

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test",
        app_token: str = "xapp-test",
        limits: SlackLimits | None = None,
        msg_too_long_at: int = 4000,
        stream_max_age: float = 300.0,
        native_streaming: bool = True,
        streaming_disabled_error: str = "channel_type_not_supported",
        require_recipient_in_dm: bool = False,
        ack_timeout: float = 3.0,
        max_retries: int = 3,
        team_id: str = "T0FAKE001",
        bot_user_id: str = "U0MISTRAL",
        bot_id: str = "B0MISTRAL",
        app_id: str = "A0MISTRAL",
        bot_name: str = "mistralbot",
        scopes: frozenset[str] = DEFAULT_SCOPES,
        home_tab_enabled: bool = True,
        enterprise_id: str | None = None,
        team_domain: str | None = None,
        history_tier: HistoryTier = "internal",
        history_window_seconds: float = 60.0,
        trigger_id_lifetime: float = TRIGGER_ID_LIFETIME,
    ) -> None:
        self.bot_token = bot_token
        # The workspace's subdomain (permalinks, auth.test's url); distinct per team unless given.
        self.team_domain = team_domain or ("fake-workspace" if team_id == "T0FAKE001" else f"fake-{team_id.lower()}")
        # conversations.history / .replies: "internal" (and Marketplace) apps get Tier 3, 50 requests a window;
        # "outside_marketplace" apps 1 request a window and ``limit`` at most 15. Slack's window is a minute.
        self.history_tier: HistoryTier = history_tier
        self.history_window_seconds = history_window_seconds
        # An Enterprise Grid workspace (its org's id in events and auth.test); with is_enterprise_install the app
        # was installed to the whole org (fakes/slack/oauth.py sets both).
        self.enterprise_id = enterprise_id
        self.is_enterprise_install = False
        self.scopes = set(scopes)  # the bot token's scopes (missing_scope for methods needing others)
        self.home_tab_enabled = home_tab_enabled  # views.publish of a home view: not_enabled when off
        self._files: dict[str, bytes] = {}  # what files.slack.com serves, by file id
        self.uploaded_files: list[UploadedFile] = []  # completed files_upload_v2 uploads, in order
        self._pending_uploads: dict[str, _PendingUpload] = {}  # by file id, until completed
        self._upload_tickets: dict[str, str] = {}  # upload URL ticket -> file id
        self.file_downloads: list[str] = []
        self.app_token = app_token
        self.limits = limits if limits is not None else SlackLimits()
        self.msg_too_long_at = msg_too_long_at
        self.stream_max_age = stream_max_age
        self.native_streaming = native_streaming
        self.streaming_disabled_error = streaming_disabled_error
        self.require_recipient_in_dm = require_recipient_in_dm
        self.ack_timeout = ack_timeout
        self.max_retries = max_retries
        self.team_id, self.bot_user_id, self.bot_id, self.app_id = team_id, bot_user_id, bot_id, app_id
        self.bot_name = bot_name

        self.calls: list[RecordedCall] = []
        self.ratelimited_count = 0
        self.users: dict[str, User] = {}
        self.user_groups: dict[str, list[str]] = {}  # a user group's id → its members (usergroups.users.list)
        self.channels: dict[str, Channel] = {}
        self.ephemerals: list[EphemeralMessage] = []
        self.statuses: list[StatusChange] = []
        self.suggested_prompts: list[SuggestedPrompts] = []
        self.assistant_threads: dict[tuple[str, str], AssistantThread] = {}  # by (DM channel, thread_ts)
        self.published_views: list[PublishedView] = []
        self.home_views: dict[str, JsonDict] = {}  # each person's current Home tab
        # views.open: a trigger_id works this many seconds after the interaction (3 at Slack), once.
        self.trigger_id_lifetime = trigger_id_lifetime
        self._triggers: dict[str, _Trigger] = {}
        self.views_opened: list[OpenedView] = []  # every accepted views.open, in order
        self._views: dict[str, OpenedView] = {}  # by view id
        self._submission_envelopes: dict[str, str] = {}  # Socket Mode envelope id -> the submitted view's id
        self.responses: list[ResponseUrlPost] = []  # POSTs to response_url (refused ones too: see .status)
        self.response_url_max_uses = RESPONSE_URL_MAX_USES
        self.response_url_max_age = RESPONSE_URL_MAX_AGE
        self._response_targets: dict[str, _ResponseTarget] = {}
        self.deliveries: list[Delivery] = []
        self.acks: dict[str, float] = {}
        self.ack_payloads: dict[str, JsonDict | None] = {}
        self.unacked: list[Delivery] = []  # given up on (retries exhausted / never retried)
        self.socket_connect_count = 0
        self.latency: dict[str, float] = {}

        self._messages: dict[str, list[StoredMessage]] = {}  # by channel, in ts order (deleted ones too)
        self._by_ts: dict[str, dict[str, StoredMessage]] = {}  # by channel, then ts
        self._thread_replies: dict[tuple[str, str], list[StoredMessage]] = {}  # by (channel, thread_ts)
        self._limiter = _RateLimiter()
        self._windows = _WindowLimiter()
        self._injected: dict[str, list[_Injected]] = {}
        self._last_ts_micros = 0
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0
        self._handlers: dict[str, Callable[[JsonDict, float], JsonDict]] = self._method_table()
        self._seed_directory()

    async def start(self) -> FakeSlack:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_get("/socket", self._handle_socket)
        app.router.add_get("/files-pri/{file_id}/{name}", self._handle_file_download)
        app.router.add_post("/upload/v1/{ticket}", self._handle_upload)
        app.router.add_post("/response/{response_id}", self._handle_response_url)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        # No cap on connections: Slack delivers each event on its own, so a burst of deliveries
        # must not queue here behind each other and be counted as the bot's slow acks.
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.close_sockets()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """Web API base for ``AsyncWebClient(base_url=...)`` / ``SLACK_API_URL`` (ends with /)."""
        return f"{self.base_url}/api/"

    def _seed_directory(self) -> None:
        bot = User(self.bot_user_id, self.bot_name, self.bot_name, self.bot_name, self.team_id, is_bot=True)
        self.users[bot.id] = bot
        self.add_user(self.DEFAULT_USER, "alice", real_name="Alice Example")
        self.add_channel(self.DEFAULT_CHANNEL, "general")
        self.add_channel(self.DEFAULT_DM, self.DEFAULT_USER, is_im=True, user=self.DEFAULT_USER)

    def add_user_group(self, id: str, members: Iterable[str]) -> None:
        """A user group (mentioned as ``<!subteam^id>``) and its members; deleting it from user_groups removes it."""
        self.user_groups[id] = list(members)

    def add_user(
        self, id: str, display_name: str, *, real_name: str | None = None, name: str | None = None, guest: str = ""
    ) -> User:
        """A person of the workspace; like Slack's default channel, #general (DEFAULT_CHANNEL) takes them in, unless
        they are a guest (`guest`: "multi" or "single"), who is only in the channels they are invited to."""
        user = User(id, display_name, real_name or display_name, name or display_name.lower(), self.team_id)
        user.guest = guest
        self.users[id] = user
        general = self.channels.get(self.DEFAULT_CHANNEL)
        if general is not None and not general.is_private and not guest:
            general.members.add(id)
        return user

    def add_channel(
        self,
        id: str,
        name: str,
        is_im: bool = False,
        *,
        user: str | None = None,
        is_private: bool = False,
        can_stream: bool = True,
        members: Iterable[str] | None = None,
        bot_member: bool = True,
    ) -> Channel:
        """A conversation of this workspace. ``members`` (people) defaults to every person known now for a
        public channel, nobody for a private one (add them with member_joined_event), the other party of a DM."""
        channel = Channel(
            id, name, is_im=is_im, is_private=is_private, user=user, can_stream=can_stream, bot_member=bot_member
        )
        if members is not None:
            channel.members = set(members)
        elif is_im:
            channel.members = {user} if user else set()
        elif not is_private:
            channel.members = {u.id for u in self.users.values() if not u.is_bot}
        self.channels[id] = channel
        self._messages.setdefault(id, [])
        return channel

    def members_of(self, channel: str) -> list[str]:
        """A channel's members as conversations.members lists them: its people, and the bot when it is in."""
        chan = self.channels[channel]
        members = set(chan.members)
        if chan.bot_member or chan.is_im:
            members.add(self.bot_user_id)
        return sorted(members)

    def is_member(self, channel: str, user: str) -> bool:
        return user in self.members_of(channel)

    def permalink(self, channel: str, ts: str) -> str:
        """A message's link as chat.getPermalink gives it (a thread reply's with ``thread_ts`` and ``cid``)."""
        link = f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        message = self._by_ts.get(channel, {}).get(ts)
        if message is not None and message.is_reply:
            link += f"?thread_ts={message.thread_ts}&cid={channel}"
        return link

    def _resolve_channel(self, value: Any) -> Channel:
        key = str(value or "").lstrip("#")
        if key in self.channels:
            return self.channels[key]
        if key in self.users:
            return self._dm_with(key)
        named = [c for c in self.channels.values() if c.name == key and not c.is_im]
        if named:
            return named[0]
        raise ApiError("channel_not_found")

    def _dm_with(self, user_id: str) -> Channel:
        for channel in self.channels.values():
            if channel.is_im and channel.user == user_id:
                return channel
        return self.add_channel("D" + user_id[1:], user_id, is_im=True, user=user_id)

    def next_ts(self) -> str:
        """A new message ts: real epoch time, unique and strictly increasing."""
        self._last_ts_micros = max(self._last_ts_micros + 1, int(time.time() * 1_000_000))
        return _format_ts(self._last_ts_micros)

    def _store(self, message: StoredMessage, now: float) -> StoredMessage:
        message.history.append((now, message.visible_text))
        bisect.insort(self._messages.setdefault(message.channel, []), message, key=_message_key)
        self._index(message)
        return message

    def _index(self, message: StoredMessage) -> None:
        self._by_ts.setdefault(message.channel, {})[message.ts] = message
        if message.is_reply:
            assert message.thread_ts is not None
            replies = self._thread_replies.setdefault((message.channel, message.thread_ts), [])
            bisect.insort(replies, message, key=_message_key)

    def find_message(self, channel: str, ts: str) -> StoredMessage | None:
        message = self._by_ts.get(channel, {}).get(ts)
        return None if message is None or message.deleted else message

    def _message_or_error(self, channel: str, ts: str) -> StoredMessage:
        message = self.find_message(channel, ts)
        if message is None:
            raise ApiError("message_not_found")
        return message

    def messages_in(
        self, channel: str, thread_ts: str | None = None, *, include_deleted: bool = False
    ) -> list[StoredMessage]:
        """All messages of a channel in ts order, or one thread (parent first) if ``thread_ts``."""
        out = [m for m in self._messages.get(channel, []) if include_deleted or not m.deleted]
        if thread_ts is not None:
            out = [m for m in out if thread_ts in (m.ts, m.thread_ts)]
        return out

    def bot_messages_in(self, channel: str, thread_ts: str | None = None) -> list[StoredMessage]:
        return [m for m in self.messages_in(channel, thread_ts) if m.is_bot]

    def _replies_of(self, parent: StoredMessage) -> list[StoredMessage]:
        return [m for m in self._thread_replies.get((parent.channel, parent.ts), []) if not m.deleted]

    def _message_json(self, message: StoredMessage) -> JsonDict:
        data: JsonDict = {"type": "message", "ts": message.ts, "text": message.text}
        if message.user:
            data["user"] = message.user
        if message.bot_id:
            data.update(self._bot_fields(message))
        if message.subtype:
            data["subtype"] = message.subtype
        if message.subtype == "tombstone":
            data["hidden"] = True
        if message.blocks:
            data["blocks"] = message.blocks
        if message.files:
            data["files"] = message.files
            data["upload"] = False
        data["team"] = self.team_id
        if message.thread_ts and message.thread_ts != message.ts:
            data["thread_ts"] = message.thread_ts
            parent = self.find_message(message.channel, message.thread_ts)
            if parent is not None and parent.user:
                data["parent_user_id"] = parent.user
        replies = self._replies_of(message)
        if replies:
            data["thread_ts"] = message.ts
            data["reply_count"] = len(replies)
            data["reply_users"] = sorted({r.user or r.bot_id or "" for r in replies})
            data["latest_reply"] = replies[-1].ts
        if message.edited_at is not None:
            data["edited"] = {"user": message.user, "ts": _format_ts(int(message.edited_at * 1_000_000))}
        if message.reactions:
            data["reactions"] = [
                {"name": name, "users": users, "count": len(users)} for name, users in message.reactions.items()
            ]
        return data

    def _bot_fields(self, message: StoredMessage) -> JsonDict:
        """What a bot's message carries: an app's bot (the fake's own or another) its ``bot_id``, ``app_id`` and
        ``bot_profile`` (and no subtype); a legacy integration (subtype ``bot_message``) ``bot_id``, ``username``
        and ``icons``, and no user."""
        assert message.bot_id is not None
        if message.subtype == "bot_message":
            return {"bot_id": message.bot_id, "username": message.username or message.bot_id, "icons": {}}
        own = message.bot_id == self.bot_id
        app_id = self.app_id if own else (message.app_id or f"A{message.bot_id[1:]}")
        name = self.bot_name if own else (message.username or message.bot_id.lower())
        profile = {
            "id": message.bot_id,
            "deleted": False,
            "name": name,
            "updated": 1_700_000_000,
            "app_id": app_id,
            "icons": {"image_36": "https://a.slack-edge.com/80588/img/plugins/app/bot_36.png"},
            "team_id": self.team_id,
        }
        return {"bot_id": message.bot_id, "app_id": app_id, "bot_profile": profile}

    def _content(self, params: JsonDict, *, required: bool) -> tuple[str | None, list[JsonDict] | None]:
        """Validated (text, blocks) of chat.postMessage / chat.update / chat.postEphemeral."""
        text = params.get("text")
        markdown = params.get("markdown_text")
        blocks = _as_blocks(params.get("blocks"))
        attachments = _maybe_json(params.get("attachments"))
        if markdown and (text or blocks):
            raise ApiError("markdown_text_conflict")
        if required and not (text or markdown or blocks or attachments):
            raise ApiError("no_text")
        if text is not None and len(str(text)) > self.msg_too_long_at:
            raise ApiError("msg_too_long")
        if markdown is not None and len(str(markdown)) > MARKDOWN_TEXT_MAX:
            raise ApiError("msg_too_long")
        if blocks:
            _validate_blocks(blocks)
        chosen = markdown if markdown else text
        return (None if chosen is None else str(chosen)), blocks

    def calls_to(self, method: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.method == method]

    def inject_error(
        self, method: str, error: str, *, status: int = 200, times: int = 1, retry_after: int | None = None
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with ``error`` (e.g. 500 fatal_error)."""
        self._injected.setdefault(method, []).append(_Injected(error, status, retry_after, times))

    def reset_rate_limits(self) -> None:
        self._limiter.reset()
        self._windows.reset()

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params, token = await self._read_params(request)
        if self.latency.get(method):
            await asyncio.sleep(self.latency[method])
        now = time.time()
        status, body, headers = self._dispatch(method, params, token, now)
        if status == 429:
            self.ratelimited_count += 1
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.calls.append(RecordedCall(method, params, token, now, status, body, request.method, peer))
        return web.json_response(body, status=status, headers=headers)

    async def _read_params(self, request: web.Request) -> tuple[JsonDict, str | None]:
        params: JsonDict = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    params.update(body)
            else:
                params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        params = {k: _maybe_json(v) if k in JSON_PARAMS else v for k, v in params.items()}
        token = _bearer(request.headers.get("Authorization")) or params.get("token")
        params.pop("token", None)
        return params, token

    def _dispatch(
        self, method: str, params: JsonDict, token: str | None, now: float
    ) -> tuple[int, JsonDict, dict[str, str]]:
        handler = self._handlers.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        auth_error = self._auth_error(method, token)
        if auth_error:
            return 200, {"ok": False, "error": auth_error}, {}
        needed = METHOD_SCOPES.get(method, ())
        if needed and not self.scopes.intersection(needed):
            return 200, self._missing_scope(",".join(needed)), {}
        retry_after = self._rate_check(method, params, now)
        if retry_after is None:
            retry_after = self._history_rate_check(method, now)
        if retry_after is not None:
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
        injected = self._take_injected(method)
        if injected is not None:
            headers = {"Retry-After": str(injected.retry_after)} if injected.retry_after is not None else {}
            return injected.status, {"ok": False, "error": injected.error}, headers
        try:
            return 200, {"ok": True, **handler(params, now)}, {}
        except ApiError as exc:
            return 200, {"ok": False, "error": exc.error, **exc.extra}, {}

    def _auth_error(self, method: str, token: str | None) -> str | None:
        if not token:
            return "not_authed"
        if token not in (self.bot_token, self.app_token):
            return "invalid_auth"
        wants_app_token = method == "apps.connections.open"
        if (token == self.app_token) != wants_app_token:
            return "not_allowed_token_type"
        return None

    def _rate_check(self, method: str, params: JsonDict, now: float) -> int | None:
        """A per-minute tier (a token bucket); conversations.history / .replies: see _history_rate_check."""
        limit = self.limits.limit_for(method)
        if limit is None:
            return None
        key = f"{self.team_id}:{method}"
        if method == "chat.postMessage":
            key += f":{self._channel_key(params.get('channel'))}"
        return self._limiter.retry_after(key, limit, now)

    def _history_rate_check(self, method: str, now: float) -> int | None:
        if not self.limits.enabled or method not in HISTORY_METHODS:
            return None
        allowed = HISTORY_ACCESS[self.history_tier].per_window
        return self._windows.retry_after(f"{self.team_id}:{method}", allowed, self.history_window_seconds, now)

    def _channel_key(self, value: Any) -> str:
        try:
            return self._resolve_channel(value).id
        except ApiError:
            return str(value)

    def _missing_scope(self, needed: str) -> JsonDict:
        return {"ok": False, "error": "missing_scope", "needed": needed, "provided": ",".join(sorted(self.scopes))}

    def _take_injected(self, method: str) -> _Injected | None:
        queue = self._injected.get(method)
        if not queue:
            return None
        injected = queue[0]
        injected.times -= 1
        if injected.times <= 0:
            queue.pop(0)
        return injected

    def _method_table(self) -> dict[str, Callable[[JsonDict, float], JsonDict]]:
        return {
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.delete": self._chat_delete,
            "chat.startStream": self._chat_start_stream,
            "chat.appendStream": self._chat_append_stream,
            "chat.stopStream": self._chat_stop_stream,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroups_users_list,
            "conversations.replies": self._conversations_replies,
            "conversations.history": self._conversations_history,
            "conversations.info": self._conversations_info,
            "conversations.members": self._conversations_members,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.open": self._conversations_open,
            "assistant.threads.setStatus": self._assistant_set_status,
            "assistant.threads.setSuggestedPrompts": self._assistant_set_suggested_prompts,
            "assistant.threads.setTitle": self._assistant_set_title,
            "views.publish": self._views_publish,
            "views.open": self._views_open,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
        }
