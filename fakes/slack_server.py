"""A loopback stand-in for Slack: Web API, Socket Mode websocket and signed HTTP delivery.

One ``aiohttp.web`` server on 127.0.0.1 (random port) serves

* the Web API at ``/api/<method>`` (point ``AsyncWebClient(base_url=fake.api_url)`` at it;
  the base ends with ``/`` because slack_sdk joins method names with ``urljoin``),
* the Socket Mode websocket at ``/socket`` (``apps.connections.open`` hands out its URL, so a
  Socket Mode client whose web client uses ``fake.api_url`` finds it on its own),
* ``response_url`` targets at ``/response/<id>`` (``respond()`` after a slash command or a
  message shortcut: 5 uses within 30 minutes; ``in_channel`` responses become channel messages,
  the others are recorded in ``responses``),
* files shared in user messages at ``/files-pri/...`` (downloadable with the bot token),
* the upload URLs ``files.getUploadURLExternal`` hands out at ``/upload/v1/<ticket>`` (files.slack.com's).

Nothing is mocked: the real ``slack_sdk`` / ``slack_bolt`` talk to it over sockets.

Behaviour copied from Slack (see ``/work/shared/notes/platform-facts.md`` and slack_sdk 3.47):

* Errors are HTTP 200 with ``{"ok": false, "error": ...}``; rate limits are HTTP 429 with an
  integer ``Retry-After`` header and ``{"ok": false, "error": "ratelimited"}``.
* ``text`` longer than ``msg_too_long_at`` (default 4,000) -> ``msg_too_long``; streaming
  ``markdown_text`` over 12,000 characters per call -> ``msg_too_long`` (per call, not cumulative).
* ``chat.startStream`` needs ``thread_ts``; outside DMs also ``recipient_user_id`` /
  ``recipient_team_id`` (``missing_recipient_user_id`` / ``missing_recipient_team_id``, the error
  names in Slack's method reference). A stream lives ``stream_max_age`` seconds from its start
  (appends do not extend it); after that append/stop answer ``message_not_in_streaming_state``
  while ``chat.update`` still works on the message.
* slack_sdk's ``chat_stream`` helper sends text as ``chunks=[{"type": "markdown_text", ...}]``,
  not ``markdown_text``; both are accepted. ``task_update`` chunks (a task card) need a non-empty
  ``id`` and ``title`` and a ``status`` of pending / in_progress / complete / error; ``details`` and
  ``output`` are strings; each of ``sources`` is ``{"type": "url", "url", "text"}`` with a non-empty
  ``text``; ``plan_update`` needs a ``title``; else ``invalid_chunks`` naming each problem. A stored
  message keeps its non-text chunks in order (``chunks``; ``tasks`` / ``task_statuses`` per card).
* Block Kit: ``blocks`` of chat.postMessage / chat.update / chat.postEphemeral / chat.stopStream
  and response_url posts are checked (layout types, section / header / context / markdown /
  rich_text / image / actions shapes and limits, e.g. context: 1-10 text or image elements;
  actions: 1-25 interactive elements, a button's plain_text text up to 75 characters, its
  ``action_id`` up to 255 (unique in the block), ``value`` up to 2,000, ``style`` primary/danger);
  ``invalid_blocks`` lists each problem with its ``[json-pointer:/blocks/…]``.
* Message shortcuts: ``send_message_shortcut`` (Socket Mode, ``interactive`` envelope) or
  ``message_shortcut`` + ``post_signed_interactive`` (HTTP: a signed form ``payload=<JSON>``)
  deliver a ``message_action`` payload carrying the full stored message (files included).
* Button clicks: ``send_block_action`` (Socket Mode) or ``block_actions`` +
  ``post_signed_interactive`` (HTTP) deliver the ``block_actions`` payload of a click on a button of
  a stored message (its ``action_id``, ``block_id`` and ``value`` as the message has them).
* The assistant panel: ``assistant_thread_started_event(user, viewing)`` opens a thread in the
  person's DM with the app (its root an ``assistant_app_thread`` message) and builds the event as
  Slack sends it (``assistant_thread {user_id, context {channel_id, team_id, enterprise_id},
  channel_id, thread_ts}``); ``assistant_thread_context_changed_event`` when they move to another
  channel; their questions are ``message_event(dm, user, text, thread_ts=...)`` (``message.im``).
  ``assistant.threads.setSuggestedPrompts`` takes 1-4 prompts, each with a non-empty ``title`` and
  ``message`` (else ``invalid_arguments`` naming each problem), ``setTitle`` a ``title``; both
  answer ``invalid_thread_ts`` for a thread that is not the panel's and need ``assistant:write``
  (``setStatus``: that or ``chat:write``). Recorded in ``suggested_prompts`` / ``assistant_threads``
  (``prompts_for``, ``title_of``).
* The Home tab: ``app_home_opened_event(user, tab)`` (with ``view`` once one was published);
  ``views.publish`` takes a ``home`` view of up to 100 blocks of the types a Home tab allows,
  checked like message blocks (``invalid_arguments`` with ``[json-pointer:/view/blocks/…]``),
  250 kB (``view_too_large``), ``hash`` (``hash_conflict``), ``not_enabled`` when
  ``home_tab_enabled`` is off. Recorded in ``published_views`` and ``home_views``.
* Modals: every interactive payload (block_actions, slash command, shortcut, view_submission) carries a
  fresh ``trigger_id`` of its person; ``views.open`` (Tier 4) exchanges it within ``trigger_id_lifetime``
  seconds (3 at Slack; a constructor argument) and once: else ``expired_trigger_id`` /
  ``exchanged_trigger_id``, and ``invalid_trigger_id`` for one the fake never issued. The ``view`` (an
  object, or a JSON string as the form encoding sends it) must be a valid modal (``modal_view_errors``:
  title plain_text <= 24, <= 100 blocks checked like message blocks, input blocks with a plain_text
  ``label`` <= 2,000 and an ``element`` (plain_text_input: ``action_id``, ``multiline``, ``min_length`` /
  ``max_length`` <= 3,000, ``placeholder``), ``submit`` <= 24 and required with input blocks,
  ``private_metadata`` <= 3,000, ``callback_id`` <= 255), else ``invalid_arguments`` with
  ``[json-pointer:/view/…]`` messages. Recorded in ``views_opened`` (``OpenedView``: user, view, time).
  ``view_submission(user, view_id, values)`` / ``send_view_submission`` (Socket Mode) build and deliver
  the submission (``state.values`` ``{block_id: {action_id: {"type", "value"}}}``); the app's ack
  (``response_action`` errors / update / push / clear) keeps the modal open or closes it.
* File uploads (slack_sdk's ``files_upload_v2``): ``files.getUploadURLExternal`` (``filename``, ``length`` > 0,
  else ``invalid_arguments`` / ``missing_argument``; ``alt_txt`` <= 1,000: ``alt_txt_too_large``; a snippet <= 1 MB:
  ``snippet_too_large``) answers ``upload_url`` + ``file_id``; the bytes are POSTed there without a token, as a raw
  body (what slack_sdk sends) or a multipart ``file`` field, answered 200 ``text/plain`` ``OK - <bytes>``;
  ``files.completeUploadExternal`` (``files`` a JSON list of ``{id, title}``, ``channel_id`` or ``channels``,
  ``initial_comment``, ``thread_ts``) answers ``file_not_found`` for an id never handed out, never uploaded or
  already completed, ``invalid_arguments`` when the bytes uploaded differ from ``length`` (the fake's choice: Slack
  does not document it), ``channel_not_found`` / ``not_in_channel`` for a conversation the bot can't post to (as
  conversations.history), ``channels_limit_exceeded`` beyond 100. It shares the files (downloadable like users')
  in a ``file_share`` message of the bot per channel (``initial_comment`` its text, in the thread of ``thread_ts``),
  recorded in ``uploaded_files`` (``UploadedFile``; ``uploads_to``). Both need ``files:write``; both Tier 4.
* Scopes: the token has ``scopes`` (by default those config/slack-app-manifest.yml asks for);
  ``conversations.history`` / ``.replies`` need the channel type's history scope (``missing_scope`` with
  ``needed``) and the bot in the channel (``not_in_channel``; a private channel it is not in:
  ``channel_not_found``; ``Channel.bot_member``); ``conversations.members`` the type's read scope
  (``KNOWLEDGE_SCOPES``: channels:read, groups:read, not in the manifest's list yet).
* Channel history (conversations.history newest first, .replies oldest first): ``limit``, ``cursor``
  (Slack's base64 ``next_ts:<µs>``), ``oldest`` / ``latest`` / ``inclusive``, ``has_more`` and
  ``response_metadata.next_cursor``; thread parents carry ``reply_count`` / ``reply_users`` /
  ``latest_reply``. Two tiers (``history_tier``, per workspace): ``"internal"`` (internal and Marketplace
  apps: 50 calls a window per method, ``limit`` up to 999 / 1000) and ``"outside_marketplace"`` (1 call a
  window, ``limit`` at most and by default 15); the window is ``history_window_seconds`` (60 at Slack).
  Beyond it: 429 with ``Retry-After`` (the whole seconds until a call leaves the window).
  ``seed_history`` / ``seed_message`` fill a channel fast (100,000 messages in about a second), without events.
* Edits and deletes by people: ``message_changed_event`` / ``message_deleted_event`` change the stored
  message and build the hidden ``message`` events Slack sends (``message`` + ``previous_message``;
  ``deleted_ts`` + ``previous_message``); a deleted thread parent with replies becomes a ``tombstone``
  (a ``message_changed``), as at Slack. Deliver them with ``send_event`` or ``event_callback`` +
  ``post_signed_event``.
* Permalinks: ``chat.getPermalink`` (Tier 4) gives ``https://<team_domain>.slack.com/archives/<channel>/
  p<ts without the dot>`` (a reply's with ``?thread_ts=…&cid=…``); ``permalink()`` computes the same.
* Membership: each channel keeps its people (``Channel.members``; the bot is ``bot_member``);
  ``member_joined_event`` / ``member_left_event`` change it and build ``member_joined_channel`` /
  ``member_left_channel``; ``conversations.members`` lists them (paginated, ``user:<id>`` cursors),
  ``conversations.info`` says ``is_private`` / ``is_member`` (and ``num_members`` when asked).
* Bots' messages: the bot's own (chat.postMessage) carry ``bot_id``, ``app_id``, ``bot_profile`` and
  the bot's ``user``, without a subtype; ``bot_message_event`` posts another app's (the same fields) or,
  with ``legacy``, an integration's (subtype ``bot_message``, ``username``, no user);
  ``message_event_of`` builds the ``message`` event of any stored message.
* Workspaces: one ``FakeSlack`` is one workspace (its ``team_id``, ``team_domain``, channels, members,
  messages and rate windows); several behind ``FakeSlackOAuth`` may share channel ids and stay apart.
* Socket Mode: ``hello`` on connect; ``events_api`` envelopes not acked within ``ack_timeout`` are
  redelivered with a new ``envelope_id``, ``retry_attempt + 1`` and ``retry_reason "timeout"``, up
  to ``max_retries`` (3) times. Slash commands and interactive payloads are never redelivered
  (Slack shows the user a timeout instead); they are listed in ``unacked`` when they time out.

Rate-limit assumptions (Slack publishes per-minute tiers, not bucket sizes): every limit is a
token bucket refilled at ``per_minute / 60`` per second holding ``burst`` tokens. Tier 2 =
20/min (burst 4), Tier 3 = 50/min (burst 10), Tier 4 = 100/min (burst 20). ``chat.startStream``
and ``chat.stopStream`` are assumed Tier 2 (not documented), ``chat.appendStream`` is Tier 4 (the
method reference says t4), so are ``views.open``, ``views.publish``,
``files.getUploadURLExternal`` and ``files.completeUploadExternal``. ``chat.postMessage`` is 1/s per
channel with a burst of 3.
``apps.connections.open`` (Tier 1 at Slack) is unlimited by default so that reconnect tests do not
stall on a 60 s Retry-After; set it with ``limits.set(...)`` if a test needs it.
``conversations.history`` / ``.replies`` are limited by their window instead (see above); internal apps'
Tier 3 is the default here.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import functools
import gc
import hashlib
import hmac
import io
import itertools
import json
import math
import mimetypes
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

JsonDict = dict[str, Any]

MARKDOWN_TEXT_MAX = 12_000
SECTION_TEXT_MAX = 3_000
SECTION_FIELDS_MAX = 10
SECTION_FIELD_TEXT_MAX = 2_000
HEADER_TEXT_MAX = 150
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
BUTTON_TEXT_MAX = 75
ACTION_ID_MAX = 255
BUTTON_VALUE_MAX = 2_000
BUTTON_URL_MAX = 3_000
# Interactive elements an actions block takes (a chat bot builds buttons; the others are not checked further).
ACTION_ELEMENT_TYPES = frozenset(
    {
        "button",
        "checkboxes",
        "datepicker",
        "datetimepicker",
        "multi_static_select",
        "multi_users_select",
        "overflow",
        "radio_buttons",
        "static_select",
        "timepicker",
        "users_select",
        "conversations_select",
        "channels_select",
        "external_select",
        "workflow_button",
        "rich_text_input",
    }
)
TASK_STATUSES = ("pending", "in_progress", "complete", "error")
ALT_TEXT_MAX = 2_000
BLOCK_ID_MAX = 255
MAX_BLOCKS = 50
MAX_VIEW_BLOCKS = 100  # a view (home tab, modal) holds up to 100 blocks
VIEW_MAX_BYTES = 250_000  # views.publish: view_too_large
PRIVATE_METADATA_MAX = 3_000
CALLBACK_ID_MAX = 255
EXTERNAL_ID_MAX = 255
MODAL_TITLE_MAX = 24  # a modal's title, submit and close: plain_text of up to 24 characters
MODAL_BUTTON_MAX = 24
INPUT_LABEL_MAX = 2_000
INPUT_HINT_MAX = 2_000
PLACEHOLDER_MAX = 150
PLAIN_TEXT_INPUT_MAX = 3_000  # plain_text_input: min_length / max_length / initial_value
TRIGGER_ID_LIFETIME = 3.0  # a trigger_id opens a view within 3 seconds of the interaction, once
# Elements an input block takes; plain_text_input is checked in depth, the others only by type.
INPUT_ELEMENT_TYPES = frozenset(
    {
        "plain_text_input",
        "email_text_input",
        "url_text_input",
        "number_input",
        "rich_text_input",
        "checkboxes",
        "radio_buttons",
        "datepicker",
        "timepicker",
        "datetimepicker",
        "static_select",
        "multi_static_select",
        "users_select",
        "multi_users_select",
        "conversations_select",
        "multi_conversations_select",
        "channels_select",
        "multi_channels_select",
        "external_select",
        "multi_external_select",
        "file_input",
    }
)
# Input elements whose state is a typed ``value`` (what view_submission fills from the test's text).
TEXT_INPUT_TYPES = ("plain_text_input", "email_text_input", "url_text_input", "number_input")
MAX_SUGGESTED_PROMPTS = 4  # assistant.threads.setSuggestedPrompts: "up to four"
TEXT_OBJECT_TYPES = ("plain_text", "mrkdwn")
RICH_TEXT_ELEMENT_TYPES = ("rich_text_section", "rich_text_list", "rich_text_preformatted", "rich_text_quote")
# Block types Slack accepts in messages (layout blocks); anything else is invalid_blocks.
MESSAGE_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "context_actions",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)
# Block types a Home tab takes (no markdown, table or context_actions blocks: those are messages only).
HOME_BLOCK_TYPES = frozenset(
    {"actions", "context", "divider", "header", "image", "input", "rich_text", "section", "video"}
)
# Block types a modal takes (the same as a Home tab).
MODAL_BLOCK_TYPES = HOME_BLOCK_TYPES
# The scopes config/slack-app-manifest.yml asks for (what the fake grants unless a test says otherwise).
DEFAULT_SCOPES = frozenset(
    {
        "app_mentions:read",
        "assistant:write",
        "channels:history",
        "groups:history",
        "channels:read",
        "groups:read",
        "im:history",
        "im:read",
        "im:write",
        "chat:write",
        "commands",
        "files:write",
        "users:read",
        "files:read",
    }
)
# Methods that need a scope (any one of those listed), checked after the token.
HISTORY_SCOPES = {"channel": "channels:history", "group": "groups:history", "im": "im:history"}
METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "assistant.threads.setSuggestedPrompts": ("assistant:write",),
    "assistant.threads.setTitle": ("assistant:write",),
    "assistant.threads.setStatus": ("assistant:write", "chat:write"),
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
}
# What reading a channel's members and getting member_joined_channel / member_left_channel need (in the manifest,
# so in DEFAULT_SCOPES too; a test takes them away with `fake.scopes -= KNOWLEDGE_SCOPES`).
KNOWLEDGE_SCOPES = frozenset({"channels:read", "groups:read"})
READ_SCOPES = {"channel": "channels:read", "group": "groups:read", "im": "im:read"}
HISTORY_METHODS = ("conversations.history", "conversations.replies")
# conversations.history / .replies by kind of app (Slack's rule since 2025-05-29): requests per window (a minute
# at Slack) per method per workspace, and the largest / default ``limit`` of each method.
HistoryTier = Literal["internal", "outside_marketplace"]


@dataclass(frozen=True)
class HistoryAccess:
    per_window: int
    max_limit: dict[str, int]
    default_limit: dict[str, int]


HISTORY_ACCESS: dict[str, HistoryAccess] = {
    # Tier 3 for internal and Marketplace apps; the method references give 999 / 1000 as the largest limit.
    "internal": HistoryAccess(
        50,
        {"conversations.history": 999, "conversations.replies": 1000},
        {"conversations.history": 100, "conversations.replies": 1000},
    ),
    # Distributed outside the Marketplace: 1 request a minute, ``limit`` at most (and by default) 15.
    "outside_marketplace": HistoryAccess(
        1,
        {"conversations.history": 15, "conversations.replies": 15},
        {"conversations.history": 15, "conversations.replies": 15},
    ),
}
MEMBERS_LIMIT_MAX = 1000  # conversations.members
SLACKBOT = "USLACKBOT"
TOMBSTONE_TEXT = "This message was deleted."
RESPONSE_URL_MAX_USES = 5  # Slack: a response_url takes 5 messages within 30 minutes
RESPONSE_URL_MAX_AGE = 30 * 60.0
FILE_ALT_TXT_MAX = 1_000  # files.getUploadURLExternal: alt_txt_too_large
SNIPPET_MAX_BYTES = 1_000_000  # a snippet (snippet_type) is limited to 1 MB: snippet_too_large
UPLOAD_CHANNELS_MAX = 100  # files.completeUploadExternal: channels_limit_exceeded
JSON_PARAMS = ("blocks", "attachments", "chunks", "metadata", "loading_messages", "users", "prompts", "view")


# --------------------------------------------------------------------------------------------
# rate limits


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``per_minute`` sustained, ``burst`` requests back to back."""

    per_minute: float
    burst: int = 1

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0


TIER_1 = RateLimit(per_minute=1, burst=1)
TIER_2 = RateLimit(per_minute=20, burst=4)
TIER_3 = RateLimit(per_minute=50, burst=10)
TIER_4 = RateLimit(per_minute=100, burst=20)
POST_MESSAGE_PER_CHANNEL = RateLimit(per_minute=60, burst=3)


def default_method_limits() -> dict[str, RateLimit]:
    """Per-workspace limits by method (see the module docstring for the assumptions)."""
    return {
        "auth.test": TIER_4,
        "chat.update": TIER_3,
        "chat.delete": TIER_3,
        "chat.postEphemeral": TIER_4,
        "chat.startStream": TIER_2,
        "chat.appendStream": TIER_4,
        "chat.stopStream": TIER_2,
        "users.info": TIER_4,
        "conversations.info": TIER_3,
        "conversations.members": TIER_4,
        "chat.getPermalink": TIER_4,
        "conversations.open": TIER_3,
        "assistant.threads.setStatus": TIER_3,
        "assistant.threads.setSuggestedPrompts": TIER_4,
        "assistant.threads.setTitle": TIER_4,
        "views.publish": TIER_4,
        "views.open": TIER_4,
        "reactions.add": TIER_3,
        "reactions.remove": TIER_3,
        "files.getUploadURLExternal": TIER_4,
        "files.completeUploadExternal": TIER_4,
    }


@dataclass
class SlackLimits:
    """Rate limits a test can loosen, tighten or switch off (also while the fake runs)."""

    enabled: bool = True
    methods: dict[str, RateLimit] = field(default_factory=default_method_limits)
    post_message_per_channel: RateLimit | None = POST_MESSAGE_PER_CHANNEL

    @classmethod
    def off(cls) -> SlackLimits:
        return cls(enabled=False)

    def set(self, method: str, per_minute: float, burst: int = 1) -> None:
        """Limit ``method`` (``"chat.postMessage"`` sets the per-channel limit)."""
        limit = RateLimit(per_minute=per_minute, burst=burst)
        if method == "chat.postMessage":
            self.post_message_per_channel = limit
        else:
            self.methods[method] = limit

    def unset(self, method: str) -> None:
        if method == "chat.postMessage":
            self.post_message_per_channel = None
        else:
            self.methods.pop(method, None)

    def limit_for(self, method: str) -> RateLimit | None:
        if not self.enabled:
            return None
        if method == "chat.postMessage":
            return self.post_message_per_channel
        return self.methods.get(method)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class _RateLimiter:
    """Token buckets keyed by (bucket key, limit) so that changing a limit starts afresh."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, RateLimit], _Bucket] = {}

    def retry_after(self, key: str, limit: RateLimit, now: float) -> int | None:
        """Take a token; return None, or the whole seconds to wait when the bucket is empty."""
        bucket = self._buckets.setdefault((key, limit), _Bucket(float(limit.burst), now))
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(limit.burst), bucket.tokens + elapsed * limit.per_second)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        if limit.per_second <= 0:
            return 60
        return max(1, math.ceil((1.0 - bucket.tokens) / limit.per_second))

    def reset(self) -> None:
        self._buckets.clear()


class _WindowLimiter:
    """At most ``allowed`` requests in any ``window`` seconds per key (conversations.history / .replies:
    Slack states them per minute, without a burst); a refused request does not count."""

    def __init__(self) -> None:
        self._times: dict[str, deque[float]] = {}

    def retry_after(self, key: str, allowed: int, window: float, now: float) -> int | None:
        times = self._times.setdefault(key, deque())
        while times and times[0] <= now - window:
            times.popleft()
        if len(times) < allowed:
            times.append(now)
            return None
        return max(1, math.ceil(times[0] + window - now))

    def reset(self) -> None:
        self._times.clear()


# --------------------------------------------------------------------------------------------
# records


@dataclass
class RecordedCall:
    """One Web API request as the fake saw it (``params`` merge query, form and JSON body)."""

    method: str
    params: JsonDict
    token: str | None
    time: float
    status: int
    response: JsonDict
    http_method: str = "POST"
    connection: Any = None  # the client's address and port: one per connection it opened

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        return self.response.get("error")


@dataclass
class User:
    id: str
    display_name: str
    real_name: str
    name: str
    team_id: str
    is_bot: bool = False
    is_admin: bool = False  # a workspace admin (users.info's is_admin)
    guest: str = ""  # "multi" or "single": a multi- or single-channel guest (is_restricted, is_ultra_restricted)

    def to_api(self) -> JsonDict:
        profile = {
            "display_name": self.display_name,
            "display_name_normalized": self.display_name,
            "real_name": self.real_name,
            "real_name_normalized": self.real_name,
        }
        return {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "real_name": self.real_name,
            "deleted": False,
            "is_bot": self.is_bot,
            "is_admin": self.is_admin,
            "is_owner": False,
            "is_restricted": bool(self.guest),
            "is_ultra_restricted": self.guest == "single",
            "is_app_user": False,
            "tz": "Europe/Paris",
            "profile": profile,
        }


@dataclass
class Channel:
    id: str
    name: str
    is_im: bool = False
    is_private: bool = False
    user: str | None = None  # the other party of a DM
    can_stream: bool = True
    bot_member: bool = True  # the bot is in it (else conversations.history: not_in_channel)
    members: set[str] = field(default_factory=set)  # the people in it (the bot: bot_member)

    @property
    def channel_type(self) -> str:
        if self.is_im:
            return "im"
        return "group" if self.is_private else "channel"

    def to_api(self) -> JsonDict:
        data: JsonDict = {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_im and not self.is_private,
            "is_group": self.is_private,
            "is_im": self.is_im,
            "is_private": self.is_private or self.is_im,
            "is_mpim": False,
            "is_member": self.bot_member or self.is_im,
            "is_archived": False,
        }
        if self.is_im:
            data["user"] = self.user
            del data["name"]
        return data


@dataclass
class StoredMessage:
    """A message as Slack keeps it. ``history`` lists ``(time.time(), visible text)`` for the
    post and every later change (update, stream append/stop) so tests can time visibility."""

    channel: str
    ts: str
    text: str
    user: str | None = None
    bot_id: str | None = None
    thread_ts: str | None = None
    blocks: list[JsonDict] | None = None
    subtype: str | None = None
    history: list[tuple[float, str]] = field(default_factory=list)
    stream_state: str | None = None  # "streaming" | "stopped" | "expired" | None
    stream_started_at: float | None = None
    chunks: list[JsonDict] = field(default_factory=list)  # non-text stream chunks
    reactions: dict[str, list[str]] = field(default_factory=dict)
    edited_at: float | None = None
    deleted: bool = False
    files: list[JsonDict] = field(default_factory=list)  # file objects shared with the message
    username: str | None = None  # a legacy integration's (subtype bot_message) name
    app_id: str | None = None  # another app's id, for its bot's messages (the bot's own: the fake's app_id)

    @property
    def is_bot(self) -> bool:
        return self.bot_id is not None

    @functools.cached_property
    def key(self) -> tuple[int, int]:
        """The ts as (seconds, microseconds), for ordering."""
        return _ts_key(self.ts)

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    def task_updates(self, task_id: str | None = None) -> list[JsonDict]:
        """The message's ``task_update`` chunks in order (of one card with ``task_id``)."""
        return [
            c for c in self.chunks if c.get("type") == "task_update" and (task_id is None or c.get("id") == task_id)
        ]

    @property
    def tasks(self) -> dict[str, JsonDict]:
        """Each task card as it shows now: its updates merged in order (a later field wins), by id."""
        cards: dict[str, JsonDict] = {}
        for chunk in self.task_updates():
            cards.setdefault(str(chunk["id"]), {}).update(chunk)
        return cards

    def task_statuses(self, task_id: str) -> list[str]:
        """Every status a card was sent with, in order."""
        return [str(c.get("status")) for c in self.task_updates(task_id)]

    def blocks_of(self, block_type: str) -> list[JsonDict]:
        """The message's blocks of one type (e.g. ``"context"``), in order."""
        return [b for b in self.blocks or [] if b.get("type") == block_type]

    @property
    def context_texts(self) -> list[str]:
        """Each context block's text elements, joined by a space (its images left out)."""
        return [
            " ".join(str(e.get("text", "")) for e in b.get("elements") or [] if e.get("type") in TEXT_OBJECT_TYPES)
            for b in self.blocks_of("context")
        ]

    @property
    def visible_text(self) -> str:
        return self.text or _blocks_text(self.blocks or [])

    @property
    def created_at(self) -> float:
        return self.history[0][0] if self.history else float(self.ts)

    def first_seen(self, needle: str) -> float | None:
        """When ``needle`` first became visible in this message, or None."""
        return next((t for t, text in self.history if needle in text), None)


@dataclass
class EphemeralMessage:
    channel: str
    user: str
    text: str
    blocks: list[JsonDict] | None
    thread_ts: str | None
    time: float


@dataclass
class StatusChange:
    channel_id: str
    thread_ts: str
    status: str
    time: float
    loading_messages: list[str] | None = None


@dataclass
class SuggestedPrompts:
    """One accepted ``assistant.threads.setSuggestedPrompts`` call."""

    channel_id: str
    thread_ts: str | None
    prompts: list[JsonDict]  # each {"title": ..., "message": ...}
    title: str | None
    time: float


@dataclass
class AssistantThread:
    """A thread of the assistant panel (``assistant_thread_started``): its root message is in the
    person's DM with the app; ``context`` is what they were viewing, ``title`` set by the app."""

    user: str
    channel_id: str
    thread_ts: str
    context: JsonDict
    title: str | None = None
    titles: list[str] = field(default_factory=list)  # every setTitle, in order


@dataclass
class PublishedView:
    """One accepted ``views.publish`` (the stored view, with its id and hash)."""

    user_id: str
    view: JsonDict
    time: float

    @property
    def blocks(self) -> list[JsonDict]:
        return list(self.view.get("blocks") or [])

    @property
    def text(self) -> str:
        """The view's visible text (section, header and context texts), one block a line."""
        lines = []
        for block in self.blocks:
            if isinstance(block.get("text"), dict):
                lines.append(str(block["text"].get("text", "")))
            elements = [e for e in block.get("elements") or [] if isinstance(e, dict)]
            lines.extend(str(e.get("text", "")) for e in elements if e.get("type") in TEXT_OBJECT_TYPES)
        return "\n".join(lines)


@dataclass
class _Trigger:
    """A ``trigger_id`` the fake put in an interactive payload: whose interaction, when, and whether a
    ``views.open`` already exchanged it."""

    user: str
    issued: float
    source: str  # the payload's type: "block_actions", "slash_command", "message_action", "view_submission"
    exchanged: bool = False


@dataclass
class OpenedView:
    """One accepted ``views.open``: the modal as the fake stored and answered it (``id`` "V…", ``team_id``,
    ``hash``, ``state``, block ids filled in; replaced by a valid ``response_action: "update"``), the
    person it opened for (the trigger_id's), the trigger_id it took and when.

    ``submissions`` are the view_submission payloads built for it, ``acks`` the app's answer to each one
    delivered over Socket Mode (its ack payload: None / {} to close, or ``response_action`` "errors",
    "update", "push", "clear"). ``closed``: submitted and not kept open by an "errors" / "update" / "push"
    answer (or by no answer at all: Slack then shows an error in the still open modal)."""

    view_id: str
    user: str
    team_id: str
    view: JsonDict
    time: float
    trigger_id: str
    closed: bool = False
    submissions: list[JsonDict] = field(default_factory=list)
    acks: list[JsonDict | None] = field(default_factory=list)
    update_errors: list[str] = field(default_factory=list)  # problems of a refused response_action "update"

    @property
    def callback_id(self) -> str:
        return str(self.view.get("callback_id") or "")

    @property
    def private_metadata(self) -> str:
        return str(self.view.get("private_metadata") or "")

    @property
    def blocks(self) -> list[JsonDict]:
        return list(self.view.get("blocks") or [])

    @property
    def response_actions(self) -> list[str | None]:
        """Each acked submission's ``response_action`` (None: a plain ack, which closes the modal)."""
        return [(ack or {}).get("response_action") for ack in self.acks]


@dataclass
class ResponseUrlPost:
    """A POST to a ``response_url`` (what bolt's ``respond()`` sends). ``status`` is what the fake
    answered (200 "ok"; 400 no_text / invalid_blocks; 404 expired_url / used_url)."""

    response_id: str
    body: JsonDict
    time: float
    channel: str | None = None
    user: str | None = None  # who ran the command or shortcut: who sees an ephemeral response
    source: str | None = None  # "slash_command" | "message_action" | "block_actions"
    status: int = 200
    error: str | None = None

    @property
    def text(self) -> str:
        return str(self.body.get("text") or "")

    @property
    def response_type(self) -> str:
        """``ephemeral`` (Slack's default: only `user` sees it) or ``in_channel``."""
        return str(self.body.get("response_type") or "ephemeral")

    @property
    def ephemeral(self) -> bool:
        return self.response_type != "in_channel"


@dataclass
class UploadedFile:
    """A file the app uploaded (files.getUploadURLExternal, a POST of its bytes, files.completeUploadExternal):
    its ``id``, ``name`` (the upload's filename), ``title``, ``data``, ``mimetype`` (guessed from the name), the
    bot as ``user``, when it was completed, where it was shared (``channels``; ``channel`` the first, None for a
    private file), the ``thread_ts`` and ``initial_comment`` given, and the ``file_share`` message per channel
    (``message_ts``). ``file`` is the file object Slack answered with."""

    id: str
    name: str
    title: str
    data: bytes
    mimetype: str
    user: str
    time: float
    channels: list[str] = field(default_factory=list)
    thread_ts: str | None = None
    initial_comment: str | None = None
    message_ts: dict[str, str] = field(default_factory=dict)
    file: JsonDict = field(default_factory=dict)

    @property
    def channel(self) -> str | None:
        return self.channels[0] if self.channels else None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


@dataclass
class _PendingUpload:
    """An upload started with files.getUploadURLExternal; ``data`` once its bytes were POSTed."""

    file_id: str
    filename: str
    length: int
    created: float
    alt_txt: str | None = None
    snippet_type: str | None = None
    data: bytes | None = None


@dataclass
class _ResponseTarget:
    channel: str
    user: str
    source: str
    created: float
    thread_ts: str | None = None
    uses: int = 0


@dataclass
class Delivery:
    """One Socket Mode envelope sent to the app."""

    envelope_id: str
    type: str
    payload: JsonDict
    retry_attempt: int
    retry_reason: str
    accepts_response_payload: bool
    sent_at: float

    def to_wire(self) -> JsonDict:
        return {
            "envelope_id": self.envelope_id,
            "payload": self.payload,
            "type": self.type,
            "accepts_response_payload": self.accepts_response_payload,
            "retry_attempt": self.retry_attempt,
            "retry_reason": self.retry_reason,
        }


class ApiError(Exception):
    """Raised inside a method handler; becomes ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass
class _Injected:
    error: str
    status: int
    retry_after: int | None
    times: int


# --------------------------------------------------------------------------------------------
# small pure helpers


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


# A thread parent's summary fields: in conversations.history, not in the event of a new message.
_THREAD_SUMMARY = frozenset({"reply_count", "reply_users", "reply_users_count", "latest_reply"})


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _message_key(message: StoredMessage) -> tuple[int, int]:
    return message.key


def _encode_cursor(kind: str, value: str) -> str:
    return base64.b64encode(f"{kind}:{value}".encode()).decode()


def _decode_cursor(cursor: str, kind: str) -> str:
    try:
        found, _, value = base64.b64decode(cursor, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise ApiError("invalid_cursor") from None
    if found != kind or not value:
        raise ApiError("invalid_cursor")
    return value


def _cursor_of(message: StoredMessage) -> str:
    seconds, micros = message.key
    return _encode_cursor("next_ts", str(seconds * 1_000_000 + micros))


def _cursor_key(cursor: str) -> tuple[int, int]:
    value = _decode_cursor(cursor, "next_ts")
    if not value.isdigit():
        raise ApiError("invalid_cursor")
    return divmod(int(value), 1_000_000)


def _format_ts(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _blocks_text(blocks: list[JsonDict]) -> str:
    parts: list[str] = []
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(str(text.get("text", "")))
        elif isinstance(text, str):
            parts.append(text)
        parts.extend(_rich_text(block.get("elements") or []))
    return "\n".join(p for p in parts if p)


def _rich_text(elements: list[Any]) -> list[str]:
    out: list[str] = []
    for element in elements:
        if not isinstance(element, dict):
            continue
        if isinstance(element.get("text"), str):
            out.append(element["text"])
        out.extend(_rich_text(element.get("elements") or []))
    return out


_block_ids = itertools.count(1)


def _rich_text_blocks(text: str) -> list[JsonDict]:
    section = {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
    return [{"type": "rich_text", "block_id": f"{next(_block_ids):05x}"[-5:], "elements": [section]}]


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _file_id() -> str:
    return f"F{uuid.uuid4().hex[:10].upper()}"


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def _required(params: JsonDict, key: str) -> str:
    value = params.get(key)
    if value is None or value == "":
        raise ApiError("invalid_arguments", response_metadata={"messages": [f"[ERROR] missing required field: {key}"]})
    return str(value)


def _as_blocks(value: Any) -> list[JsonDict] | None:
    value = _maybe_json(value)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(b, dict) and "type" in b for b in value):
        raise ApiError("invalid_blocks_format")
    return value


def _validate_blocks(blocks: list[JsonDict]) -> None:
    """Block Kit checks as Slack makes them: ``invalid_blocks`` with every problem in ``errors`` and
    ``response_metadata.messages`` (``"[ERROR] <problem> [json-pointer:/blocks/0/text]"``)."""
    errors = block_errors(blocks)
    if errors:
        raise ApiError(
            "invalid_blocks", errors=errors, response_metadata={"messages": [f"[ERROR] {e}" for e in errors]}
        )


def block_errors(
    blocks: list[JsonDict],
    *,
    limit: int = MAX_BLOCKS,
    base: str = "/blocks",
    types: frozenset[str] = MESSAGE_BLOCK_TYPES,
) -> list[str]:
    """What Slack finds wrong with message blocks (or, with ``limit`` 100, ``base`` "/view/blocks"
    and ``types`` HOME_BLOCK_TYPES, a Home tab's): at most 50 blocks of layout types it knows;
    section (``text`` and/or up to 10 ``fields``; text up to 3,000, fields 2,000), header
    (plain_text, 150), context (1-10 elements: plain_text / mrkdwn text objects or images),
    markdown (12,000), rich_text, image (url and ``alt_text``), actions (1-25 elements), block ids
    unique and at most 255 characters."""
    if len(blocks) > limit:
        return [f"no more than {limit} items allowed [json-pointer:{base}]"]
    errors: list[str] = []
    block_ids: set[str] = set()
    for index, block in enumerate(blocks):
        pointer = f"{base}/{index}"
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not 0 < len(block_id) <= BLOCK_ID_MAX:
                errors.append(f"must be less than {BLOCK_ID_MAX + 1} characters [json-pointer:{pointer}/block_id]")
            elif block_id in block_ids:
                errors.append(f"duplicate block_id [json-pointer:{pointer}/block_id]")
            else:
                block_ids.add(block_id)
        errors.extend(_one_block_errors(block, pointer, types))
    return errors


def _one_block_errors(block: JsonDict, pointer: str, types: frozenset[str] = MESSAGE_BLOCK_TYPES) -> list[str]:
    kind = block.get("type")
    if kind not in types:
        return [f"unsupported type: {kind} [json-pointer:{pointer}/type]"]
    if kind == "section":
        return _section_errors(block, pointer)
    if kind == "header":
        return _text_object_errors(block.get("text"), f"{pointer}/text", plain_only=True, limit=HEADER_TEXT_MAX)
    if kind == "context":
        return _context_errors(block.get("elements"), f"{pointer}/elements")
    if kind == "markdown":
        text = block.get("text")
        if not isinstance(text, str) or not text:
            return [f"must be more than 0 characters [json-pointer:{pointer}/text]"]
        if len(text) > MARKDOWN_TEXT_MAX:
            return [f"must be less than {MARKDOWN_TEXT_MAX + 1} characters [json-pointer:{pointer}/text]"]
        return []
    if kind == "rich_text":
        return _elements_errors(block.get("elements"), f"{pointer}/elements", 1, None, RICH_TEXT_ELEMENT_TYPES)
    if kind == "image":
        return _image_errors(block, pointer)
    if kind == "actions":
        elements = block.get("elements")
        errors = _elements_errors(elements, f"{pointer}/elements", 1, ACTIONS_ELEMENTS_MAX, ACTION_ELEMENT_TYPES)
        return errors or _action_errors(elements, f"{pointer}/elements")
    if kind == "input":
        return _input_errors(block, pointer)
    return []  # divider, and the blocks a chat bot does not build (file, video, table, ...)


def _input_errors(block: JsonDict, pointer: str) -> list[str]:
    """An input block: a plain_text ``label`` (2,000) and an ``element`` of an input type (its ``action_id``
    up to 255) are required; ``hint`` plain_text (2,000); ``optional`` / ``dispatch_action`` booleans."""
    errors: list[str] = []
    if block.get("label") is None:
        errors.append(f"missing required field: label [json-pointer:{pointer}/label]")
    else:
        errors.extend(_text_object_errors(block["label"], f"{pointer}/label", plain_only=True, limit=INPUT_LABEL_MAX))
    if block.get("hint") is not None:
        errors.extend(_text_object_errors(block["hint"], f"{pointer}/hint", plain_only=True, limit=INPUT_HINT_MAX))
    errors.extend(
        f"must be a boolean [json-pointer:{pointer}/{key}]"
        for key in ("optional", "dispatch_action")
        if key in block and not isinstance(block[key], bool)
    )
    element = block.get("element")
    here = f"{pointer}/element"
    if element is None:
        return [*errors, f"missing required field: element [json-pointer:{here}]"]
    if not isinstance(element, dict) or element.get("type") not in INPUT_ELEMENT_TYPES:
        return [*errors, f"must provide a valid element [json-pointer:{here}]"]
    action_id = element.get("action_id")
    if action_id is not None and (not isinstance(action_id, str) or not 0 < len(action_id) <= ACTION_ID_MAX):
        errors.append(f"must be less than {ACTION_ID_MAX + 1} characters [json-pointer:{here}/action_id]")
    if element["type"] == "plain_text_input":
        errors.extend(_plain_text_input_errors(element, here))
    return errors


def _plain_text_input_errors(element: JsonDict, pointer: str) -> list[str]:
    """``placeholder`` plain_text (150), ``multiline`` a boolean, ``min_length`` 0-3,000 and ``max_length``
    1-3,000 (not below min_length), ``initial_value`` a string of at most ``max_length`` characters."""
    errors: list[str] = []
    placeholder = element.get("placeholder")
    if placeholder is not None:
        here = f"{pointer}/placeholder"
        errors.extend(_text_object_errors(placeholder, here, plain_only=True, limit=PLACEHOLDER_MAX))
    if "multiline" in element and not isinstance(element["multiline"], bool):
        errors.append(f"must be a boolean [json-pointer:{pointer}/multiline]")
    lengths: dict[str, int] = {}
    for key, low in (("min_length", 0), ("max_length", 1)):
        value = element.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= PLAIN_TEXT_INPUT_MAX:
            errors.append(f"must be between {low} and {PLAIN_TEXT_INPUT_MAX} [json-pointer:{pointer}/{key}]")
        else:
            lengths[key] = value
    longest = lengths.get("max_length", PLAIN_TEXT_INPUT_MAX)
    if lengths.get("min_length", 0) > longest:
        errors.append(f"must not be more than max_length [json-pointer:{pointer}/min_length]")
    initial = element.get("initial_value")
    if initial is not None and (not isinstance(initial, str) or len(initial) > longest):
        errors.append(f"must be less than {longest + 1} characters [json-pointer:{pointer}/initial_value]")
    return errors


def _view_metadata_errors(view: JsonDict) -> list[str]:
    """A view's ``private_metadata`` (3,000), ``callback_id`` and ``external_id`` (255 each): strings."""
    errors: list[str] = []
    for key, limit in (
        ("private_metadata", PRIVATE_METADATA_MAX),
        ("callback_id", CALLBACK_ID_MAX),
        ("external_id", EXTERNAL_ID_MAX),
    ):
        value = view.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            errors.append(f"must provide a string [json-pointer:/view/{key}]")
        elif len(value) > limit:
            errors.append(f"must be less than {limit + 1} characters [json-pointer:/view/{key}]")
    return errors


def modal_view_errors(view: JsonDict) -> list[str]:
    """What Slack finds wrong with a modal (``views.open``; a ``response_action: "update"``): ``type``
    "modal"; ``title`` plain_text of up to 24 characters; up to 100 ``blocks`` of the types a modal takes,
    checked like message blocks (input blocks: ``label`` and ``element``, see _input_errors); ``submit`` /
    ``close`` plain_text (24), ``submit`` required once there is an input block; ``private_metadata``
    (3,000), ``callback_id`` / ``external_id`` (255); ``clear_on_close`` / ``notify_on_close`` booleans."""
    if view.get("type") != "modal":
        return ["must be modal [json-pointer:/view/type]"]
    errors: list[str] = []
    if view.get("title") is None:
        errors.append("missing required field: title [json-pointer:/view/title]")
    else:
        errors.extend(_text_object_errors(view["title"], "/view/title", plain_only=True, limit=MODAL_TITLE_MAX))
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        errors.append("must provide an array [json-pointer:/view/blocks]")
        blocks = []
    else:
        errors.extend(block_errors(blocks, limit=MAX_VIEW_BLOCKS, base="/view/blocks", types=MODAL_BLOCK_TYPES))
    for key in ("submit", "close"):
        if view.get(key) is not None:
            errors.extend(_text_object_errors(view[key], f"/view/{key}", plain_only=True, limit=MODAL_BUTTON_MAX))
    if view.get("submit") is None and any(b.get("type") == "input" for b in blocks):
        errors.append("missing required field: submit (the view has input blocks) [json-pointer:/view/submit]")
    errors.extend(_view_metadata_errors(view))
    errors.extend(
        f"must be a boolean [json-pointer:/view/{key}]"
        for key in ("clear_on_close", "notify_on_close")
        if key in view and not isinstance(view[key], bool)
    )
    return errors


def _text_object_errors(value: Any, pointer: str, *, plain_only: bool = False, limit: int | None = None) -> list[str]:
    if not isinstance(value, dict):
        return [f"must provide an object [json-pointer:{pointer}]"]
    allowed = ("plain_text",) if plain_only else TEXT_OBJECT_TYPES
    if value.get("type") not in allowed:
        return [f"must be one of {', '.join(allowed)} [json-pointer:{pointer}/type]"]
    text = value.get("text")
    if not isinstance(text, str):
        return [f"must provide a string [json-pointer:{pointer}/text]"]
    if not text:
        return [f"must be more than 0 characters [json-pointer:{pointer}/text]"]
    if limit is not None and len(text) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{pointer}/text]"]
    return []


def _section_errors(block: JsonDict, pointer: str) -> list[str]:
    text, fields = block.get("text"), block.get("fields")
    if text is None and fields is None:
        return [f"must define either `text` or `fields` [json-pointer:{pointer}]"]
    errors = [] if text is None else _text_object_errors(text, f"{pointer}/text", limit=SECTION_TEXT_MAX)
    if fields is not None:
        if not isinstance(fields, list) or not fields:
            errors.append(f"must provide at least 1 item [json-pointer:{pointer}/fields]")
        elif len(fields) > SECTION_FIELDS_MAX:
            errors.append(f"no more than {SECTION_FIELDS_MAX} items allowed [json-pointer:{pointer}/fields]")
        else:
            for i, item in enumerate(fields):
                errors.extend(_text_object_errors(item, f"{pointer}/fields/{i}", limit=SECTION_FIELD_TEXT_MAX))
    return errors


def _context_errors(elements: Any, pointer: str) -> list[str]:
    if not isinstance(elements, list) or not elements:
        return [f"must provide at least 1 item [json-pointer:{pointer}]"]
    if len(elements) > CONTEXT_ELEMENTS_MAX:
        return [f"no more than {CONTEXT_ELEMENTS_MAX} items allowed [json-pointer:{pointer}]"]
    errors: list[str] = []
    for i, element in enumerate(elements):
        here = f"{pointer}/{i}"
        if isinstance(element, dict) and element.get("type") == "image":
            errors.extend(_image_errors(element, here))
        elif isinstance(element, dict) and element.get("type") in TEXT_OBJECT_TYPES:
            errors.extend(_text_object_errors(element, here))
        else:
            errors.append(f"must be a plain_text, mrkdwn or image element [json-pointer:{here}]")
    return errors


def _action_errors(elements: list[JsonDict], pointer: str) -> list[str]:
    """An actions block's elements: action ids unique in the block and at most 255 characters; a button's
    plain_text text (75), ``value`` (2,000), ``url`` (3,000) and ``style`` (primary or danger)."""
    errors: list[str] = []
    seen: set[str] = set()
    for i, element in enumerate(elements):
        here = f"{pointer}/{i}"
        action_id = element.get("action_id")
        if action_id is not None:
            if not isinstance(action_id, str) or not 0 < len(action_id) <= ACTION_ID_MAX:
                errors.append(f"must be less than {ACTION_ID_MAX + 1} characters [json-pointer:{here}/action_id]")
            elif action_id in seen:
                errors.append(f"duplicate action_id [json-pointer:{here}/action_id]")
            else:
                seen.add(action_id)
        if element.get("type") != "button":
            continue
        errors.extend(_text_object_errors(element.get("text"), f"{here}/text", plain_only=True, limit=BUTTON_TEXT_MAX))
        for key, limit in (("value", BUTTON_VALUE_MAX), ("url", BUTTON_URL_MAX)):
            value = element.get(key)
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                errors.append(f"must be less than {limit + 1} characters [json-pointer:{here}/{key}]")
        if element.get("style") not in (None, "primary", "danger"):
            errors.append(f"must be one of primary, danger [json-pointer:{here}/style]")
    return errors


def _image_errors(image: JsonDict, pointer: str) -> list[str]:
    errors: list[str] = []
    if not isinstance(image.get("image_url"), str) and not isinstance(image.get("slack_file"), dict):
        errors.append(f"must provide either `image_url` or `slack_file` [json-pointer:{pointer}]")
    alt_text = image.get("alt_text")
    if not isinstance(alt_text, str) or not alt_text:
        errors.append(f"must provide a string [json-pointer:{pointer}/alt_text]")
    elif len(alt_text) > ALT_TEXT_MAX:
        errors.append(f"must be less than {ALT_TEXT_MAX + 1} characters [json-pointer:{pointer}/alt_text]")
    return errors


def _elements_errors(elements: Any, pointer: str, low: int, high: int | None, types: Sequence[str] | None) -> list[str]:
    if not isinstance(elements, list) or len(elements) < low:
        return [f"must provide at least {low} item [json-pointer:{pointer}]"]
    if high is not None and len(elements) > high:
        return [f"no more than {high} items allowed [json-pointer:{pointer}]"]
    return [
        f"must provide a valid element [json-pointer:{pointer}/{i}]"
        for i, element in enumerate(elements)
        if not isinstance(element, dict) or (types is not None and element.get("type") not in types)
    ]


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG, GIF or WebP image Pillow reads the header of, else None."""
    try:
        from PIL import Image
    except ImportError:  # Pillow comes with requirements-local.txt; without it, no image sizes
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            known = image.format in ("PNG", "JPEG", "GIF", "WEBP")
            width, height = image.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return (width, height) if known else None


def _stream_text(params: JsonDict) -> tuple[str, list[JsonDict]]:
    """Markdown text and other chunks of one stream call (``markdown_text`` and/or ``chunks``)."""
    text = str(params.get("markdown_text") or "")
    others: list[JsonDict] = []
    chunks = _maybe_json(params.get("chunks")) or []
    if not isinstance(chunks, list):
        raise ApiError("invalid_chunks")
    problems = [problem for i, chunk in enumerate(chunks) for problem in chunk_errors(chunk, f"/chunks/{i}")]
    if problems:
        raise ApiError("invalid_chunks", response_metadata={"messages": [f"[ERROR] {p}" for p in problems]})
    for chunk in chunks:
        if chunk["type"] == "markdown_text":
            text += str(chunk.get("text") or "")
        else:
            others.append(chunk)
    if len(text) > MARKDOWN_TEXT_MAX:
        raise ApiError("msg_too_long")
    return text, others


def chunk_errors(chunk: Any, pointer: str) -> list[str]:
    """What Slack finds wrong with one stream chunk (markdown_text, task_update, plan_update)."""
    if not isinstance(chunk, dict) or chunk.get("type") not in ("markdown_text", "task_update", "plan_update"):
        return [f"must be a markdown_text, task_update or plan_update chunk [json-pointer:{pointer}]"]

    def text_field(key: str, *, required: bool) -> list[str]:
        value = chunk.get(key)
        if value is None and not required:
            return []
        if not isinstance(value, str) or (required and not value):
            return [f"must provide a non-empty string [json-pointer:{pointer}/{key}]"]
        return []

    if chunk["type"] == "markdown_text":
        return text_field("text", required=True)
    if chunk["type"] == "plan_update":
        return text_field("title", required=True)
    errors = text_field("id", required=True) + text_field("title", required=True)
    if chunk.get("status") not in TASK_STATUSES:
        errors.append(f"must be one of {', '.join(TASK_STATUSES)} [json-pointer:{pointer}/status]")
    errors += text_field("details", required=False) + text_field("output", required=False)
    sources = chunk.get("sources")
    if sources is not None and not isinstance(sources, list):
        errors.append(f"must provide an array [json-pointer:{pointer}/sources]")
    for i, source in enumerate(sources or []):
        here = f"{pointer}/sources/{i}"
        if not isinstance(source, dict) or source.get("type") != "url":
            errors.append(f"must be a url source [json-pointer:{here}/type]")
            continue
        for key in ("url", "text"):
            if not isinstance(source.get(key), str) or not source[key]:
                errors.append(f"must provide a non-empty string [json-pointer:{here}/{key}]")
    return errors


def _trigger_id() -> str:
    return f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"


def signature_headers(body: str, signing_secret: str, timestamp: int | str | None = None) -> dict[str, str]:
    """``X-Slack-Request-Timestamp`` / ``X-Slack-Signature`` exactly as Slack computes them."""
    ts = str(int(time.time())) if timestamp is None else str(timestamp)
    base = f"v0:{ts}:{body}".encode()
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


# --------------------------------------------------------------------------------------------
# the fake


class FakeSlack:
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
        # was installed to the whole org (fakes/slack_oauth.py sets both).
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

    # ---- lifecycle ------------------------------------------------------------------------

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

    # ---- directory -------------------------------------------------------------------------

    def _seed_directory(self) -> None:
        bot = User(self.bot_user_id, self.bot_name, self.bot_name, self.bot_name, self.team_id, is_bot=True)
        self.users[bot.id] = bot
        self.add_user(self.DEFAULT_USER, "alice", real_name="Alice Example")
        self.add_channel(self.DEFAULT_CHANNEL, "general")
        self.add_channel(self.DEFAULT_DM, self.DEFAULT_USER, is_im=True, user=self.DEFAULT_USER)

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

    # ---- message store -------------------------------------------------------------------

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

    # ---- event builders (a user "posts": the message is stored too) -------------------------

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

    # ---- a person edits or deletes, people join and leave, other bots post, history is seeded ----------

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

    # ---- web API plumbing -----------------------------------------------------------------

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

    # ---- web API methods ----------------------------------------------------------------

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
        """A thread, oldest first (its parent first on the first page); a message without replies alone."""
        channel = self._resolve_channel(params.get("channel"))
        self._check_readable(channel)
        parent = self.find_message(channel.id, _required(params, "ts"))
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

    # ---- response_url -------------------------------------------------------------------

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        """A ``response_url``: takes 5 messages within 30 minutes (then 404 used_url /
        expired_url); each needs ``text`` or valid ``blocks`` (400 no_text / invalid_blocks) unless
        it deletes the original. ``response_type: "in_channel"`` posts a message in the channel for
        everyone (stored like chat.postMessage); otherwise only the user sees it (recorded only)."""
        try:
            body = await request.json()
        except ValueError:
            body = dict(await request.post())
        if not isinstance(body, dict):
            body = {}
        now = time.time()
        response_id = request.match_info["response_id"]
        target = self._response_targets.get(response_id)
        status, error = self._response_url_outcome(target, body, now)
        self.responses.append(
            ResponseUrlPost(
                response_id,
                body,
                now,
                channel=target.channel if target else None,
                user=target.user if target else None,
                source=target.source if target else None,
                status=status,
                error=error,
            )
        )
        if error is not None:
            return web.Response(status=status, text=error)
        assert target is not None
        target.uses += 1
        if body.get("response_type") == "in_channel" and not body.get("delete_original"):
            thread_ts = body.get("thread_ts") or target.thread_ts
            message = StoredMessage(
                channel=target.channel,
                ts=self.next_ts(),
                text=str(body.get("text") or ""),
                user=self.bot_user_id,
                bot_id=self.bot_id,
                thread_ts=str(thread_ts) if thread_ts else None,
                blocks=_as_blocks(body.get("blocks")),
            )
            self._store(message, now)
        return web.Response(text="ok")

    def _response_url_outcome(
        self, target: _ResponseTarget | None, body: JsonDict, now: float
    ) -> tuple[int, str | None]:
        if target is None or now - target.created > self.response_url_max_age:
            return 404, "expired_url"
        if target.uses >= self.response_url_max_uses:
            return 404, "used_url"
        if body.get("delete_original"):
            return 200, None
        try:
            blocks = _as_blocks(body.get("blocks"))
        except ApiError:
            return 400, "invalid_blocks"
        if not body.get("text") and not blocks:
            return 400, "no_text"
        if blocks and block_errors(blocks):
            return 400, "invalid_blocks"
        return 200, None

    # ---- Socket Mode ----------------------------------------------------------------------

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket") not in self._tickets:
            return web.Response(status=401, text="invalid ticket")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connect_count += 1
        await ws.send_json(self._hello())
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._on_socket_text(msg.data)
        finally:
            if ws in self._sockets:
                self._sockets.remove(ws)
        return ws

    def _hello(self) -> JsonDict:
        return {
            "type": "hello",
            "num_connections": len(self._sockets),
            "debug_info": {"host": "applink-fake-1", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }

    def _on_socket_text(self, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        if envelope_id and envelope_id not in self.acks:
            self.acks[envelope_id] = time.time()
            self.ack_payloads[envelope_id] = message.get("payload")
            if envelope_id in self._submission_envelopes:
                self.apply_view_ack(self._submission_envelopes[envelope_id], message.get("payload"))

    @property
    def socket_connected(self) -> bool:
        return any(not ws.closed for ws in self._sockets)

    async def wait_socket_connected(self, timeout: float = 5.0, *, connections: int = 1) -> None:
        """Wait for an open socket, after at least ``connections`` connections in total."""
        deadline = time.monotonic() + timeout
        while not (self.socket_connected and self.socket_connect_count >= connections):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no Socket Mode connection within {timeout} s")
            await asyncio.sleep(0.01)

    async def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> float:
        deadline = time.monotonic() + timeout
        while envelope_id not in self.acks:
            if time.monotonic() > deadline:
                raise TimeoutError(f"envelope {envelope_id} not acked within {timeout} s")
            await asyncio.sleep(0.01)
        return self.acks[envelope_id]

    def deliveries_of(self, event_id: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.payload.get("event_id") == event_id]

    async def send_event(self, event: JsonDict, *, event_id: str | None = None) -> str:
        """Deliver an Events API event over Socket Mode; returns the envelope_id."""
        return await self.send_envelope(
            "events_api", self.event_callback(event, event_id), accepts_response_payload=False
        )

    async def send_slash_command(self, command: str, text: str, user: str, channel: str) -> str:
        payload = self.slash_command(command, text, user, channel)
        return await self.send_envelope("slash_commands", payload, accepts_response_payload=True)

    async def send_interactive(self, payload: JsonDict) -> str:
        return await self.send_envelope("interactive", payload, accepts_response_payload=True)

    async def send_message_shortcut(self, callback_id: str, user: str, channel: str, message_ts: str) -> str:
        """A person uses the message shortcut `callback_id` on a stored message: delivers the
        ``message_action`` payload (see message_shortcut) over Socket Mode in an ``interactive``
        envelope; returns the envelope_id. Not redelivered when unacked (listed in ``unacked``)."""
        return await self.send_interactive(self.message_shortcut(callback_id, user, channel, message_ts))

    async def send_block_action(
        self, user: str, channel: str, message_ts: str, action_id: str, *, payload: JsonDict | None = None
    ) -> str:
        """`user` clicks the button `action_id` of a stored message: delivers its ``block_actions`` payload
        (see block_actions; or `payload`, one built before, to deliver the same click again) over Socket
        Mode in an ``interactive`` envelope; returns the envelope_id."""
        return await self.send_interactive(payload or self.block_actions(user, channel, message_ts, action_id))

    async def send_view_submission(self, user: str, view_id: str, values: dict[str, str | None]) -> str:
        """`user` submits the modal `view_id` having typed `values` (see view_submission): delivers the
        ``view_submission`` payload over Socket Mode in an ``interactive`` envelope; returns the envelope_id.
        The app's ack payload (``response_action`` ...) lands in ``ack_payloads`` and the view's ``acks``."""
        return await self.send_interactive(self.view_submission(user, view_id, values))

    async def send_envelope(
        self,
        type: str,
        payload: JsonDict,
        *,
        accepts_response_payload: bool,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> str:
        ws = await self._open_socket()
        delivery = Delivery(
            envelope_id=str(uuid.uuid4()),
            type=type,
            payload=payload,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
            accepts_response_payload=accepts_response_payload,
            sent_at=time.time(),
        )
        self.deliveries.append(delivery)
        if payload.get("type") == "view_submission":  # before sending: the ack may come back at once
            self._submission_envelopes[delivery.envelope_id] = payload["view"]["id"]
        await ws.send_json(delivery.to_wire())
        self._spawn(self._watch_ack(delivery))
        return delivery.envelope_id

    async def broadcast_event(self, event: JsonDict, *, event_id: str | None = None) -> list[str]:
        """Deliver one event (one ``event_id``) on every open connection at once, each in its own
        envelope: what an app with several processes sees when Slack redelivers to another
        connection while the first is still working. Returns the envelope ids."""
        await self.wait_socket_connected()
        payload = self.event_callback(event, event_id)
        sockets = [ws for ws in self._sockets if not ws.closed]
        deliveries = [Delivery(str(uuid.uuid4()), "events_api", payload, 0, "", False, time.time()) for _ in sockets]
        self.deliveries.extend(deliveries)
        await asyncio.gather(*(ws.send_json(d.to_wire()) for ws, d in zip(sockets, deliveries, strict=False)))
        for delivery in deliveries:
            self._spawn(self._watch_ack(delivery))
        return [d.envelope_id for d in deliveries]

    async def _open_socket(self, timeout: float = 5.0) -> web.WebSocketResponse:
        await self.wait_socket_connected(timeout)
        return [ws for ws in self._sockets if not ws.closed][-1]

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch_ack(self, delivery: Delivery) -> None:
        await asyncio.sleep(self.ack_timeout)
        if delivery.envelope_id in self.acks:
            return
        if delivery.type != "events_api" or delivery.retry_attempt >= self.max_retries:
            self.unacked.append(delivery)
            if delivery.envelope_id in self._submission_envelopes:  # Slack shows an error in the open modal
                self._views[self._submission_envelopes[delivery.envelope_id]].closed = False
            return
        try:
            await self.send_envelope(
                delivery.type,
                delivery.payload,
                accepts_response_payload=delivery.accepts_response_payload,
                retry_attempt=delivery.retry_attempt + 1,
                retry_reason="timeout",
            )
        except (TimeoutError, ConnectionError):
            self.unacked.append(delivery)

    async def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask connected clients to reconnect (they call apps.connections.open again)."""
        for ws in [w for w in self._sockets if not w.closed]:
            await ws.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake-1"}})

    async def close_sockets(self) -> None:
        """Close every socket from the server side (clients with auto-reconnect come back)."""
        for ws in list(self._sockets):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)
        self._sockets.clear()

    # ---- HTTP mode ------------------------------------------------------------------------

    async def _post_signed(
        self,
        url: str,
        body: str,
        content_type: str,
        *,
        signing_secret: str,
        timestamp: int | str | None,
        bad_signature: bool,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        secret = signing_secret + "-wrong" if bad_signature else signing_secret
        headers = {"Content-Type": content_type, **signature_headers(body, secret, timestamp)}
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        assert self._session is not None, "start() the fake first"
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with self._session.post(url, data=body.encode(), headers=headers, timeout=client_timeout) as resp:
            return resp.status, await resp.text()

    async def post_signed_event(
        self,
        bot_url: str,
        payload: JsonDict,
        *,
        signing_secret: str,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        timestamp: int | str | None = None,
        bad_signature: bool = False,
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        """POST an Events API payload (JSON) signed like Slack; returns (status, body)."""
        return await self._post_signed(
            bot_url,
            json.dumps(payload),
            "application/json",
            signing_secret=signing_secret,
            timestamp=timestamp,
            bad_signature=bad_signature,
            retry_num=retry_num,
            retry_reason=retry_reason,
            timeout=timeout,
        )

    async def post_signed_command(
        self,
        bot_url: str,
        payload: JsonDict,
        *,
        signing_secret: str,
        timestamp: int | str | None = None,
        bad_signature: bool = False,
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        """POST a slash command (form-encoded, as Slack does) signed like Slack."""
        return await self._post_signed(
            bot_url,
            urlencode(payload),
            "application/x-www-form-urlencoded",
            signing_secret=signing_secret,
            timestamp=timestamp,
            bad_signature=bad_signature,
            timeout=timeout,
        )

    async def post_signed_interactive(
        self,
        bot_url: str,
        payload: JsonDict,
        *,
        signing_secret: str,
        timestamp: int | str | None = None,
        bad_signature: bool = False,
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        """POST an interactive payload (a message shortcut, ...) as Slack's HTTP mode does: a form
        with one field, ``payload=<JSON>``, signed like Slack; returns (status, body)."""
        return await self._post_signed(
            bot_url,
            urlencode({"payload": json.dumps(payload)}),
            "application/x-www-form-urlencoded",
            signing_secret=signing_secret,
            timestamp=timestamp,
            bad_signature=bad_signature,
            timeout=timeout,
        )

    async def deliver_event_http(
        self, bot_url: str, payload: JsonDict, *, signing_secret: str, ack_timeout: float | None = None
    ) -> list[tuple[int | None, str]]:
        """Deliver like Slack's HTTP mode: on a timeout or a non-2xx answer, retry at once (Slack
        waits ~1 min / 5 min) with ``X-Slack-Retry-Num`` / ``-Reason``, up to ``max_retries``
        times. Returns every attempt's (status, or None after a timeout; body)."""
        attempts: list[tuple[int | None, str]] = []
        wait = self.ack_timeout if ack_timeout is None else ack_timeout
        reason: str | None = None
        for attempt in range(self.max_retries + 1):
            try:
                status, body = await self.post_signed_event(
                    bot_url,
                    payload,
                    signing_secret=signing_secret,
                    retry_num=attempt or None,
                    retry_reason=reason,
                    timeout=wait,
                )
            except TimeoutError:
                attempts.append((None, ""))
                reason = "http_timeout"
                continue
            attempts.append((status, body))
            if 200 <= status < 300:
                break
            reason = "http_error"
        return attempts
