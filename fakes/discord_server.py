"""Loopback stand-in for Discord: REST API (``/api/v10``) and gateway (``/gateway``) in one aiohttp app.

The real discord.py talks to it over sockets.  Point discord.py at it with::

    discord.http.Route.BASE = fake.api_base_url                               # REST, incl. interaction webhooks
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)  # gateway (plain Client)

What it models (in memory): one bot user / application, guilds with roles, members, text channels,
threads and DM channels, messages with full edit history, application commands and interactions.
What it checks like Discord: bot token on REST and IDENTIFY, content length (2000), empty messages,
thread names (1..100), missing permissions (configurable per channel), interaction acknowledgement
(once, within 3 s) and fixed-window rate limits with Discord's headers and 429 bodies.

Application commands: slash commands (type 1, with options, choices, sub-commands, autocomplete)
and message context-menu commands (type 3) are registered with the bulk-overwrite routes and
validated as Discord does (50035 field errors), their ``integration_types`` and ``contexts`` too
(against the application's ``installation_contexts``, servers only unless told). Tests drive them
with ``send_slash_command``, ``send_message_command`` (the target message in
``data.resolved.messages``) and ``send_autocomplete`` (interaction type 4; returns the bot's
type-8 ``choices``, checked: at most 25, 1-100 characters). Replies carry ``referenced_message``;
attachments are served by a fake CDN (``/attachments/<id>/<name>``, the bot's uploads too),
images with ``width`` / ``height``.

Buttons: messages (created, edited, interaction replies and follow-ups, webhook edits) carry
``components``: at most 5 action rows of 1-5 buttons, checked like Discord (custom_id 1-100
characters and unique, label up to 80, link buttons with a url; 400 50035 naming the field), stored
with Discord's numeric component ``id``s; ``components: []`` removes them. Select menus and v2
layout components are refused (not modelled). ``click_button(message_id, custom_id, user)``
dispatches INTERACTION_CREATE of type 3 with the full message; the bot answers within 3 s, once,
with 4 (a reply to the clicked message, ephemeral with ``flags: 64``: ``messages_seen_by`` shows
it to the clicker only), 5, 6 (nothing visible) or 7 (the clicked message edited); 6 and 7 are
refused (400) for commands. ``components_of``, ``buttons_of`` and ``messages_with_buttons`` read
what is stored.

Modals: a command or a click may be answered with callback type 9, checked like Discord (title
1-45, custom_id 1-100, 1-5 action rows of one text input each: custom_id, style 1 or 2, label
1-45, min/max_length 0-4000, a prefilled value within max_length; 400 50035 naming the field); a
modal submission answered with another modal is 40060. ``interaction.modal`` / ``text_inputs``
show what the person sees; ``submit_modal(interaction, {custom_id: value})`` submits it once
(INTERACTION_CREATE of type 5 with a fresh id and token, the same person, channel and guild;
values checked against each input's lengths), and the bot's answer to that is read like any other.

User installs: ``install_for_user(user)`` adds the app to a person's account. Their commands then
work where the bot is not: a guild added with ``with_bot=False``, a group DM (``add_group_dm``),
a DM between two people (``add_dm_between``). Interactions carry Discord's ``context`` (0 guild,
1 the bot's DM, 2 any other DM), ``authorizing_integration_owners`` ("0": the guild, or "0" in
the bot's DM, where the server install applies; "1": the user, where their install applies) and
``app_permissions``; a command not offered there (its ``contexts`` / ``integration_types``, no
install) raises LookupError. The bot gets no gateway events from such places (``gateway.withheld``
has them) and its REST calls there fail: 403 Missing Access in a guild, 404 in a (group) DM; it
can answer only through the interaction's webhook.

Threads archive like Discord's: one without a new message for its ``auto_archive_duration``
(minutes; or ``thread_archive_seconds``, for every thread, when set) is archived and announced
with THREAD_UPDATE (``thread_metadata.archived`` true). A new message in an archived thread
unarchives it first (THREAD_UPDATE, then MESSAGE_CREATE); editing a message or adding a reaction
there, or joining it, is refused (400, code 50083). GUILD_CREATE lists active threads only.

Permissions: guilds have roles with permission bits (@everyone's id is the guild's), members have
role ids, channels have ``permission_overwrites`` (role and member, allow / deny as strings), all in
GUILD_CREATE; a member's permissions in a channel are computed as Discord does (owner and
administrators: everything; then @everyone's overwrite, the roles' overwrites, the member's own;
no View Channel, nothing; a thread has its parent's, a private thread is seen by its members and
those who may Manage Threads). They decide what the bot gets (no message, typing or thread events
of a channel it cannot view; 403 50001 to its REST calls there; 50013 without Send Messages or
Create Threads), what people may do (``send_user_message``, ``click_button``) and an interaction's
``member.permissions`` / ``app_permissions``. Tests change them live: ``make_private_channel``,
``set_overwrite`` (CHANNEL_UPDATE), ``create_role``, ``set_role_permissions`` (GUILD_ROLE_*),
``set_member_roles`` (GUILD_MEMBER_UPDATE, Members intent only), ``create_text_channel``. Every
message event carries the author's ``member`` (roles), so discord.py's ``permissions_for`` works
from its cache without the Members intent.

Knowledge: ``edit_user_message`` (MESSAGE_UPDATE, the full message with ``edited_timestamp``),
``delete_user_message`` (MESSAGE_DELETE: ids only) and ``delete_user_messages``
(MESSAGE_DELETE_BULK); deleted messages answer 404 10008. ``create_user_thread`` (THREAD_CREATE;
public, from a message, or private with members) and ``delete_thread`` (THREAD_DELETE only, none for
its messages). GET /channels/{id}/messages: ``limit`` 1-100
(default 50; else 400 50035), newest first, ``before`` / ``after`` / ``around``; 403 50001 without
View Channel, ``[]`` without Read Message History (as Discord documents); its own bucket,
``Limits.message_history`` (5 per 5 s per channel, as observed). ``seed_history`` stores N past
messages fast (100,000 in about half a second) without events. ``remove_bot_from_guild``
(GUILD_DELETE; the bot's member and managed role go) and ``add_bot_to_guild`` (GUILD_CREATE as a
join). ``can_view(channel, user)`` and ``permissions_for(channel, user_id)`` answer as Discord would.

Everything a test may want to assert on is recorded: ``requests`` (method, route key, JSON body,
arrival time, status), ``ratelimited`` (served 429s), message ``history`` (time, content) per edit,
``identify_payload``, gateway connections, interactions and their callbacks.

Run standalone (benchmarks): ``python -m fakes.discord_server --port 8099``.  A small control
API under ``/_fake/`` lets another process inject user messages and read state.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import dataclasses
import datetime as dt
import gc
import hashlib
import inspect
import io
import json
import logging
import math
import mimetypes
import re
import secrets
import time
import zlib
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

__all__ = [
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeUser",
    "InteractionCallbackRejected",
    "Limits",
    "OverwriteType",
    "Perm",
    "RateLimit",
    "RateLimitHit",
    "RecordedRequest",
    "StoredMessage",
    "overwrite",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000
JSON_CONTENT_TYPE = "application/json"
INTERACTION_ACK_TIMEOUT = 3.0
INTERACTION_TOKEN_LIFETIME = 15 * 60.0
MAX_CONTENT_LENGTH = 2000
MAX_THREAD_NAME_LENGTH = 100
MAX_COMMAND_NAME_LENGTH = 32
MAX_DESCRIPTION_LENGTH = 100
MAX_OPTIONS = 25  # per command (and per subcommand)
MAX_CHOICES = 25  # declared choices, and autocomplete answers
MAX_CHOICE_LENGTH = 100  # a choice's name, and a string choice's value
MAX_COMMANDS = {1: 100, 2: 15, 3: 15}  # per scope, by command type (CHAT_INPUT, USER, MESSAGE)
COMMAND_NAME_RE = re.compile(r"[-_'\w]{1,32}")  # CHAT_INPUT commands and all option names
MAX_ACTION_ROWS = 5  # per message
MAX_ROW_BUTTONS = 5  # per action row
MAX_BUTTON_LABEL = 80
MAX_CUSTOM_ID = 100
MAX_BUTTON_URL = 512
MAX_COMPONENT_ID = 2**31 - 1  # a component's optional numeric ``id`` (0: let Discord number it)
MAX_MODAL_TITLE = 45
MAX_MODAL_ROWS = 5  # action rows of one text input each
MAX_TEXT_INPUT_LABEL = 45
MAX_TEXT_INPUT_LENGTH = 4000  # min_length, max_length and the prefilled value
MAX_TEXT_INPUT_PLACEHOLDER = 100


class Intent:
    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    GUILD_MESSAGE_TYPING = 1 << 11
    DIRECT_MESSAGES = 1 << 12
    DIRECT_MESSAGE_TYPING = 1 << 14
    MESSAGE_CONTENT = 1 << 15
    PRIVILEGED = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT


class Perm:
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    MANAGE_ROLES = 1 << 28
    USE_APPLICATION_COMMANDS = 1 << 31
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    CREATE_PRIVATE_THREADS = 1 << 36
    SEND_MESSAGES_IN_THREADS = 1 << 38
    THREADS = CREATE_PUBLIC_THREADS | CREATE_PRIVATE_THREADS | SEND_MESSAGES_IN_THREADS
    MEMBER_DEFAULT = (
        ADD_REACTIONS
        | VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | USE_APPLICATION_COMMANDS
        | THREADS
    )
    # app_permissions where only a user install reaches (Discord documents these for (G)DMs with
    # other users; the fake uses them in guilds without the bot too), and in the bot's own DM.
    USER_INSTALL_APP = ATTACH_FILES | EMBED_LINKS | MENTION_EVERYONE
    BOT_DM_APP = USER_INSTALL_APP | USE_EXTERNAL_EMOJIS
    ALL = (1 << 53) - 1  # the guild owner and administrators: every permission, overwrites or not
    READ = VIEW_CHANNEL | READ_MESSAGE_HISTORY


class OverwriteType:
    ROLE = 0
    MEMBER = 1


class ChannelType:
    GUILD_TEXT = 0
    DM = 1
    GROUP_DM = 3
    PUBLIC_THREAD = 11
    PRIVATE_THREAD = 12
    THREADS = (PUBLIC_THREAD, PRIVATE_THREAD)


class IntegrationType:
    """Where an application (and each of its global commands) can be installed."""

    GUILD_INSTALL = 0
    USER_INSTALL = 1
    ALL = (GUILD_INSTALL, USER_INSTALL)


class ContextType:
    """Where an interaction is used: a guild, the bot's own DM, or any other (group) DM."""

    GUILD = 0
    BOT_DM = 1
    PRIVATE_CHANNEL = 2
    ALL = (GUILD, BOT_DM, PRIVATE_CHANNEL)


class MessageType:
    DEFAULT = 0
    REPLY = 19
    CHAT_INPUT_COMMAND = 20
    CONTEXT_MENU_COMMAND = 23


class InteractionType:
    PING = 1
    APPLICATION_COMMAND = 2
    MESSAGE_COMPONENT = 3
    APPLICATION_COMMAND_AUTOCOMPLETE = 4
    MODAL_SUBMIT = 5


class CommandType:
    CHAT_INPUT = 1
    USER = 2
    MESSAGE = 3
    PRIMARY_ENTRY_POINT = 4
    CONTEXT_MENU = (USER, MESSAGE)


class OptionType:
    SUB_COMMAND = 1
    SUB_COMMAND_GROUP = 2
    STRING = 3
    INTEGER = 4
    BOOLEAN = 5
    USER = 6
    CHANNEL = 7
    ROLE = 8
    MENTIONABLE = 9
    NUMBER = 10
    ATTACHMENT = 11
    ALL = range(1, 12)
    NESTING = (SUB_COMMAND, SUB_COMMAND_GROUP)
    WITH_CHOICES = (STRING, INTEGER, NUMBER)  # the only types that take choices or autocomplete


class MessageFlag:
    HAS_THREAD = 1 << 5
    EPHEMERAL = 1 << 6
    LOADING = 1 << 7
    IS_COMPONENTS_V2 = 1 << 15


class ComponentType:
    """Components the fake models: action rows of buttons on messages, of text inputs in modals
    (no selects, no v2 layout, no Label)."""

    ACTION_ROW = 1
    BUTTON = 2
    TEXT_INPUT = 4


class TextInputStyle:
    SHORT = 1
    PARAGRAPH = 2
    ALL = (SHORT, PARAGRAPH)


class ButtonStyle:
    PRIMARY = 1
    SECONDARY = 2
    SUCCESS = 3
    DANGER = 4
    LINK = 5  # a ``url``, no ``custom_id``: clicking opens the link, no interaction
    PREMIUM = 6  # a ``sku_id``, no ``custom_id``, label, emoji or url
    ALL = range(1, 7)
    WITH_CUSTOM_ID = (PRIMARY, SECONDARY, SUCCESS, DANGER)


class Op:
    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    PRESENCE_UPDATE = 3
    VOICE_STATE_UPDATE = 4
    RESUME = 6
    RECONNECT = 7
    REQUEST_GUILD_MEMBERS = 8
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11


class CallbackType:
    PONG = 1
    CHANNEL_MESSAGE_WITH_SOURCE = 4
    DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
    DEFERRED_UPDATE_MESSAGE = 6
    UPDATE_MESSAGE = 7
    APPLICATION_COMMAND_AUTOCOMPLETE_RESULT = 8
    MODAL = 9
    CREATES_MESSAGE = (CHANNEL_MESSAGE_WITH_SOURCE, DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE)
    UPDATES_MESSAGE = (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE)  # component (and modal) interactions only


IMAGE_CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
USER_MENTION_RE = re.compile(r"<@!?(\d+)>")
ROLE_MENTION_RE = re.compile(r"<@&(\d+)>")


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


class _Snowflakes:
    """Discord-style ids: milliseconds since the Discord epoch << 22, strictly increasing."""

    def __init__(self) -> None:
        self._last = 0

    def skip_to(self, used: int) -> None:
        """`used` was taken (an id picked for its shard): every later id is above it."""
        self._last = max(self._last, used)

    def next(self) -> int:
        candidate = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(candidate, self._last + 1)
        return self._last


def snowflake_time(snowflake: int) -> float:
    """Unix time (seconds) encoded in a snowflake."""
    return ((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000.0


def _copied(payload: T) -> T:
    """A deep copy of a JSON payload (every payload here is one), several times cheaper than
    copy.deepcopy: the fake shares the benchmark machine with the bot it measures."""
    return json.loads(json.dumps(payload))  # type: ignore[no-any-return]


def _message_id(stored: StoredMessage) -> int:
    return stored.id


def _walk(stored: Sequence[StoredMessage], start: int, step: int, limit: int) -> list[StoredMessage]:
    """Up to `limit` live, non-ephemeral messages from index `start` on, one way (step ±1)."""
    found: list[StoredMessage] = []
    index = start
    while 0 <= index < len(stored) and len(found) < limit:
        message = stored[index]
        if not message.deleted and not message.flags & MessageFlag.EPHEMERAL:
            found.append(message)
        index += step
    return found


def _history_payload(message_id: int, channel_id: str, author: FakeUser, content: str, at: float) -> dict[str, Any]:
    return {
        "id": str(message_id),
        "channel_id": channel_id,
        "type": MessageType.DEFAULT,
        "content": content,
        "author": author.payload(),
        "timestamp": iso_timestamp(at),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "components": [],
        "pinned": False,
        "flags": 0,
    }


def iso_timestamp(unix_time: float) -> str:
    return dt.datetime.fromtimestamp(unix_time, dt.UTC).isoformat()


def _token_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:32]


# --------------------------------------------------------------------------------------------------
# Errors with Discord's JSON bodies
# --------------------------------------------------------------------------------------------------


class DiscordHTTPError(Exception):
    """An error response shaped like Discord's (``{"message", "code", "errors"?}``)."""

    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


@dataclass(frozen=True)
class FieldError:
    path: tuple[str | int, ...]
    code: str
    message: str


def invalid_form_body(field_errors: Sequence[FieldError]) -> DiscordHTTPError:
    errors: dict[str, Any] = {}
    for error in field_errors:
        node = errors
        for part in error.path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": error.code, "message": error.message})
    return DiscordHTTPError(400, 50035, "Invalid Form Body", errors)


def max_length_error(path: tuple[str | int, ...], limit: int) -> FieldError:
    return FieldError(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def unauthorized() -> DiscordHTTPError:
    return DiscordHTTPError(401, 0, "401: Unauthorized")


def not_found_route() -> DiscordHTTPError:
    return DiscordHTTPError(404, 0, "404: Not Found")


def unknown_channel() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10003, "Unknown Channel")


def unknown_message() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10008, "Unknown Message")


def unknown_user() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10013, "Unknown User")


def unknown_webhook() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10015, "Unknown Webhook")


def unknown_interaction() -> DiscordHTTPError:
    return DiscordHTTPError(404, 10062, "Unknown interaction")


def missing_permissions() -> DiscordHTTPError:
    return DiscordHTTPError(403, 50013, "Missing Permissions")


def missing_access() -> DiscordHTTPError:
    return DiscordHTTPError(403, 50001, "Missing Access")


def empty_message() -> DiscordHTTPError:
    return DiscordHTTPError(400, 50006, "Cannot send an empty message")


def thread_archived() -> DiscordHTTPError:
    return DiscordHTTPError(400, 50083, "Thread is archived")


# --------------------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------------------


@dataclass
class FakeUser:
    id: int
    username: str
    bot: bool = False
    global_name: str | None = None

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "avatar_decoration_data": None,
            "banner": None,
            "accent_color": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
        }


@dataclass
class FakeRole:
    id: int
    name: str
    permissions: int
    position: int = 0
    bot_id: int | None = None

    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "managed": self.bot_id is not None,
            "mentionable": False,
            "flags": 0,
        }
        if self.bot_id is not None:
            payload["tags"] = {"bot_id": str(self.bot_id)}
        return payload


@dataclass
class FakeMember:
    user: FakeUser
    role_ids: list[int]
    joined_at: float
    nick: str | None = None

    def payload(self, *, with_user: bool = True) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "roles": [str(r) for r in self.role_ids],
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "joined_at": iso_timestamp(self.joined_at),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            payload["user"] = self.user.payload()
        return payload


@dataclass
class FakeGuild:
    id: int
    name: str
    owner_id: int
    created: float
    roles: dict[int, FakeRole] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)
    channel_ids: list[int] = field(default_factory=list)
    has_bot: bool = True  # False: only people with the app installed to their account reach it here

    @property
    def everyone_role(self) -> FakeRole:
        return self.roles[self.id]

    def permissions_of(self, user_id: int) -> int:
        """Guild-wide permissions (no channel overwrites): @everyone's and the member's roles'; all for
        the owner or an administrator."""
        if user_id == self.owner_id:
            return Perm.ALL
        member = self.members.get(user_id)
        permissions = self.everyone_role.permissions
        for role_id in member.role_ids if member else ():
            role = self.roles.get(role_id)
            permissions |= role.permissions if role else 0
        return Perm.ALL if permissions & Perm.ADMINISTRATOR else permissions

    def permissions_in(self, overwrites: Sequence[Mapping[str, Any]], user_id: int) -> int:
        """A member's permissions in a channel with `overwrites`, as Discord computes them: the guild-wide
        ones, then @everyone's overwrite, then the member's roles' overwrites together, then the member's
        own (each: deny, then allow). Without View Channel, nothing else either."""
        permissions = self.permissions_of(user_id)
        if permissions == Perm.ALL:
            return permissions
        by_target = {(int(o["type"]), int(o["id"])): (int(o["allow"]), int(o["deny"])) for o in overwrites}
        member = self.members.get(user_id)
        role_ids = member.role_ids if member else []
        roles = [by_target.get((OverwriteType.ROLE, role_id), (0, 0)) for role_id in role_ids]
        layers = [
            by_target.get((OverwriteType.ROLE, self.id), (0, 0)),
            (_bits_or(a for a, _ in roles), _bits_or(d for _, d in roles)),
            by_target.get((OverwriteType.MEMBER, user_id), (0, 0)),
        ]
        for allow, deny in layers:
            permissions = (permissions & ~deny) | allow
        return permissions if permissions & Perm.VIEW_CHANNEL else 0


def _put_overwrite(channel: dict[str, Any], target_id: int, target_type: int, allow: int, deny: int) -> None:
    """Set (or, with nothing allowed or denied, remove) one target's overwrite in a channel."""
    kept = [o for o in channel.get("permission_overwrites") or [] if int(o["id"]) != target_id]
    if allow or deny:
        kept.append({"id": str(target_id), "type": target_type, "allow": str(allow), "deny": str(deny)})
    channel["permission_overwrites"] = kept


def overwrite(target: FakeUser | int, *, allow: int = 0, deny: int = 0) -> dict[str, Any]:
    """A permission overwrite as Discord sends it: for a member (a FakeUser) or a role (its id;
    @everyone's is the guild's id), allow / deny as strings of permission bits."""
    if isinstance(target, FakeUser):
        return {"id": str(target.id), "type": OverwriteType.MEMBER, "allow": str(allow), "deny": str(deny)}
    return {"id": str(target), "type": OverwriteType.ROLE, "allow": str(allow), "deny": str(deny)}


def _bits_or(values: Iterable[int]) -> int:
    result = 0
    for value in values:
        result |= value
    return result


@dataclass
class StoredMessage:
    """A message as the fake stores it.  ``payload`` is the REST shape (no guild_id/member)."""

    payload: dict[str, Any]
    guild_id: int | None
    history: list[tuple[float, str]]
    deleted: bool = False

    @property
    def id(self) -> int:
        return int(self.payload["id"])

    @property
    def channel_id(self) -> int:
        return int(self.payload["channel_id"])

    @property
    def content(self) -> str:
        return self.payload["content"]

    @property
    def author_id(self) -> int:
        return int(self.payload["author"]["id"])

    @property
    def flags(self) -> int:
        return self.payload["flags"]


@dataclass
class FakeInteraction:
    """An application command (slash or context menu), autocomplete, button-click (message
    component) or modal submission interaction the fake delivered, plus everything the bot answered.

    What the bot answered: ``callback_type`` (4 a message, 5 deferred "thinking…", 6 a button
    click acknowledged with nothing visible, 7 the clicked message edited, 8 autocomplete
    choices, 9 a modal; None before any answer), ``response_data`` (that callback's ``data``:
    content / components / embeds / flags; a modal's custom_id / title / components, also as
    ``modal`` and ``text_inputs``), ``ephemeral`` (a reply only the user sees),
    ``original_message_id`` (the reply of a type 4/5; after a type 6/7 the clicked message,
    which is what ``@original`` edits then) and ``followup_message_ids``. ``rejected`` holds the
    error bodies of callbacks Discord would have refused (the first answer is the only one)."""

    id: int
    token: str
    application_id: int
    channel_id: int
    guild_id: int | None
    user: FakeUser
    command_name: str
    payload: dict[str, Any]
    created_at: float
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    original_message_id: int | None = None
    followup_message_ids: list[int] = field(default_factory=list)
    interaction_type: int = InteractionType.APPLICATION_COMMAND  # 4: autocomplete
    command_type: int = CommandType.CHAT_INPUT  # 3: a message context-menu command
    target_id: int | None = None  # the message a message command was used on
    rejected: list[dict[str, Any]] = field(default_factory=list)  # error bodies of refused callbacks
    custom_id: str | None = None  # a button click (interaction type 3): the button's custom_id; a modal's (type 5)
    message_id: int | None = None  # a button click: the message whose button was clicked
    triggered_by: int | None = None  # a modal submission (type 5): the interaction answered with the modal
    modal_submitted: bool = False  # the modal this interaction was answered with was submitted (it is closed)

    @property
    def acknowledged(self) -> bool:
        return bool(self.callbacks)

    @property
    def callback_type(self) -> int | None:
        return self.callbacks[0]["type"] if self.callbacks else None

    @property
    def response_data(self) -> dict[str, Any] | None:
        """The ``data`` of the bot's answer (a copy as it was sent), or None before it."""
        return self.callbacks[0]["data"] if self.callbacks else None

    @property
    def ephemeral(self) -> bool:
        """Whether the answer is a message (type 4, or the deferred 5) only the user sees."""
        if self.callback_type not in CallbackType.CREATES_MESSAGE or self.response_data is None:
            return False
        return bool(int(self.response_data.get("flags") or 0) & MessageFlag.EPHEMERAL)

    @property
    def choices(self) -> list[dict[str, Any]] | None:
        """An autocomplete interaction's answer (callback type 8), or None before it."""
        for callback in self.callbacks:
            if callback["type"] == CallbackType.APPLICATION_COMMAND_AUTOCOMPLETE_RESULT:
                return list(callback["data"].get("choices") or [])
        return None

    @property
    def modal(self) -> dict[str, Any] | None:
        """The modal the bot answered with (callback type 9: ``custom_id``, ``title``, ``components``), or None."""
        return self.response_data if self.callback_type == CallbackType.MODAL else None

    @property
    def text_inputs(self) -> list[dict[str, Any]]:
        """The text inputs of the modal shown (``custom_id``, ``label``, ``style``, prefilled ``value``…), in order."""
        rows = (self.modal or {}).get("components") or []
        return [dict(child) for row in rows for child in row.get("components") or []]


@dataclass
class UploadedFile:
    field_name: str
    filename: str | None
    size: int
    content_type: str | None
    width: int | None = None  # images only (PNG, JPEG, GIF, WebP), as Discord reports them
    height: int | None = None
    data: bytes | None = field(default=None, repr=False)  # what the CDN serves at the attachment's url

    @classmethod
    def of(cls, field_name: str, filename: str | None, data: bytes, content_type: str | None) -> UploadedFile:
        """An upload as Discord sees it: images are recognised by their bytes (content type,
        width and height); anything else keeps its declared type, or one guessed from its name."""
        upload = cls(field_name, filename, len(data), content_type, data=data)
        image = image_info(data)
        if image is not None:
            upload.content_type, upload.width, upload.height = image
        elif content_type in (None, "", "application/octet-stream") and filename:
            guessed, _ = mimetypes.guess_type(filename)
            if guessed is not None:
                upload.content_type = f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed
        return upload


def image_info(data: bytes) -> tuple[str, int, int] | None:
    """(content type, width, height) when `data` is a PNG, JPEG, GIF or WebP image Pillow can
    read the header of, else None (a truncated or unknown file: Discord reports no size)."""
    try:
        from PIL import Image
    except ImportError:  # Pillow comes with requirements-local.txt; without it, no image sizes
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            content_type = IMAGE_CONTENT_TYPES.get(str(image.format))
            width, height = image.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return (content_type, width, height) if content_type else None


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the /api/v10 prefix, e.g. /channels/1/messages
    route: str  # discord.py's Route.key, e.g. "POST /channels/{channel_id}/messages"
    query: dict[str, str]
    json: Any
    files: list[UploadedFile]
    headers: dict[str, str]
    time: float  # time.time() at arrival
    status: int | None = None
    response: Any = None
    finished: float | None = None
    connection: Any = None  # the client's address and port: one per connection it opened

    @property
    def allowed_mentions(self) -> Any:
        return self.json.get("allowed_mentions") if isinstance(self.json, dict) else None


@dataclass(frozen=True)
class RateLimit:
    limit: int
    per: float  # window length, seconds


@dataclass(frozen=True)
class Limits:
    """Fixed-window limits keyed by (bucket, major parameter).  ``None`` disables a bucket."""

    message_create: RateLimit | None = RateLimit(5, 5.0)  # per channel
    message_edit: RateLimit | None = RateLimit(5, 5.0)  # per channel
    thread_create: RateLimit | None = RateLimit(5, 5.0)  # per channel
    interaction_webhook: RateLimit | None = RateLimit(5, 2.0)  # per interaction token
    default: RateLimit | None = RateLimit(50, 1.0)  # any other route, per route + major parameter
    global_per_second: int | None = 50  # per bot token; interactions and webhooks are exempt
    message_history: RateLimit | None = RateLimit(5, 5.0)  # GET /channels/{id}/messages, per channel (as observed)

    @classmethod
    def disabled(cls) -> Limits:
        return cls(**{f.name: None for f in dataclasses.fields(cls)})


@dataclass
class RateLimitHit:
    time: float
    route: str
    bucket: str
    major: str
    retry_after: float
    is_global: bool
    injected: bool = False


# --------------------------------------------------------------------------------------------------
# Rate limiting
# --------------------------------------------------------------------------------------------------


@dataclass
class _Window:
    limit: int
    per: float
    started: float
    count: int = 0

    def reset_after(self, now: float) -> float:
        return max(0.0, self.started + self.per - now)


@dataclass(frozen=True)
class BucketStatus:
    limit: int
    remaining: int
    reset_after: float
    bucket_hash: str

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": f"{time.time() + self.reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{self.reset_after:.3f}",
            "X-RateLimit-Bucket": self.bucket_hash,
        }


class RateLimitExceeded(Exception):
    def __init__(self, retry_after: float, *, is_global: bool, status: BucketStatus | None) -> None:
        super().__init__(f"rate limited for {retry_after:.3f}s")
        self.retry_after = max(retry_after, 0.001)
        self.is_global = is_global
        self.status = status

    def body(self) -> dict[str, Any]:
        return {
            "message": "You are being rate limited.",
            "retry_after": round(self.retry_after, 3),
            "global": self.is_global,
            "code": 0,
        }

    def headers(self) -> dict[str, str]:
        headers = self.status.headers() if self.status else {}
        headers["Retry-After"] = str(math.ceil(self.retry_after))
        headers["X-RateLimit-Scope"] = "global" if self.is_global else "user"
        if self.is_global:
            headers["X-RateLimit-Global"] = "true"
        return headers


@dataclass
class _InjectedLimit:
    route: str | None
    remaining: int
    retry_after: float
    is_global: bool


class RateLimiter:
    """Discord-like fixed windows.  Requests rejected with 429 do not consume the bucket."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._windows: dict[str, _Window] = {}
        self._injected: list[_InjectedLimit] = []

    def inject(self, route: str | None, *, count: int, retry_after: float, is_global: bool) -> None:
        self._injected.append(_InjectedLimit(route, count, retry_after, is_global))

    def take_injected(self, route: str) -> _InjectedLimit | None:
        for injected in self._injected:
            if injected.remaining > 0 and injected.route in (None, route):
                injected.remaining -= 1
                return injected
        return None

    def check_global(self, token: str) -> None:
        limit = self.limits.global_per_second
        if limit is None:
            return
        window = self._window(f"global:{token}", limit, 1.0)
        now = time.monotonic()
        if window.count >= window.limit:
            raise RateLimitExceeded(window.reset_after(now), is_global=True, status=None)
        window.count += 1

    def check_bucket(self, name: str, rate: RateLimit, major: str) -> BucketStatus:
        window = self._window(f"{name}|{major}", rate.limit, rate.per)
        now = time.monotonic()
        if window.count >= window.limit:
            status = BucketStatus(window.limit, 0, window.reset_after(now), _token_hash(name))
            raise RateLimitExceeded(status.reset_after, is_global=False, status=status)
        window.count += 1
        return BucketStatus(window.limit, window.limit - window.count, window.reset_after(now), _token_hash(name))

    def _window(self, key: str, limit: int, per: float) -> _Window:
        now = time.monotonic()
        window = self._windows.get(key)
        if window is None or now >= window.started + window.per:
            window = self._windows[key] = _Window(limit, per, now)
        return window


# --------------------------------------------------------------------------------------------------
# Gateway
# --------------------------------------------------------------------------------------------------


@dataclass
class GatewayConnection:
    ws: web.WebSocketResponse
    request: web.Request
    query: dict[str, str]
    opened_at: float
    compressor: Any | None = None  # zlib compressobj when zlib-stream was requested
    session: GatewaySession | None = None
    closed_at: float | None = None
    close_code: int | None = None
    closed_by_server: bool = False
    heartbeats: int = 0
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def live(self) -> bool:
        return self.closed_at is None and not self.ws.closed

    async def send_text(self, text: str) -> None:
        async with self.send_lock:
            if self.ws.closed:
                return
            try:
                if self.compressor is not None:
                    data = self.compressor.compress(text.encode()) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError) as exc:
                log.debug("gateway send failed: %s", exc)

    async def send_json(self, payload: Mapping[str, Any]) -> None:
        await self.send_text(json.dumps(payload))


@dataclass
class GatewaySession:
    session_id: str
    identify: dict[str, Any]
    intents: int
    seq: int = 0
    backlog: list[tuple[int, str]] = field(default_factory=list)
    connection: GatewayConnection | None = None
    invalidated: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def connected(self) -> bool:
        return self.connection is not None and self.connection.live


def on_shard(session: GatewaySession, guild_id: int | None) -> bool:
    """Discord's routing: a guild's events go to shard (guild_id >> 22) % count, DMs to shard 0."""
    shard = session.identify.get("shard")
    if not shard:
        return True
    shard_id, count = shard
    return shard_id == (0 if guild_id is None else (guild_id >> 22) % count)


class _Gateway:
    """The websocket side: HELLO / IDENTIFY / READY / RESUME / heartbeats and dispatch fan-out."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: list[GatewayConnection] = []
        self.dispatched: list[tuple[float, str, dict[str, Any]]] = []
        self.identify_payload: dict[str, Any] | None = None
        self.identify_count = 0
        self.identified_shards: list[tuple[int, int] | None] = []  # (shard id, count) per IDENTIFY
        self.resume_count = 0
        self.replayed_count = 0  # frames re-sent on RESUME
        self.withheld: list[tuple[float, str, dict[str, Any]]] = []  # events of places the bot is not in

    # -- websocket handler -------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = GatewayConnection(ws=ws, request=request, query=dict(request.query), opened_at=time.time())
        if request.query.get("compress") == "zlib-stream" and self.fake.gateway_compression:
            conn.compressor = zlib.compressobj()
        self.connections.append(conn)
        try:
            await conn.send_json({"op": Op.HELLO, "d": {"heartbeat_interval": self.fake.heartbeat_interval_ms}})
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_text(conn, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
        finally:
            self._on_closed(conn)
        return ws

    @staticmethod
    def _on_closed(conn: GatewayConnection) -> None:
        conn.closed_at = time.time()
        conn.close_code = conn.ws.close_code
        session = conn.session
        if session is None or session.connection is not conn:
            return
        session.connection = None
        if not conn.closed_by_server and conn.close_code in (1000, 1001):
            session.invalidated = True  # a clean client close ends the session, like Discord

    async def _on_text(self, conn: GatewayConnection, text: str) -> None:
        try:
            payload = json.loads(text)
            op, data = payload["op"], payload.get("d")
        except (ValueError, KeyError, TypeError):
            await conn.ws.close(code=4002, message=b"Error while decoding payload.")
            return
        if op == Op.HEARTBEAT:
            conn.heartbeats += 1
            await conn.send_json({"op": Op.HEARTBEAT_ACK})
        elif op == Op.IDENTIFY:
            await self._identify(conn, data)
        elif op == Op.RESUME:
            await self._resume(conn, data)
        elif conn.session is None:
            await conn.ws.close(code=4003, message=b"Not authenticated.")
        elif op == Op.REQUEST_GUILD_MEMBERS:
            await self._send_member_chunk(conn.session, data)
        elif op not in (Op.PRESENCE_UPDATE, Op.VOICE_STATE_UPDATE):
            await conn.ws.close(code=4001, message=b"Unknown opcode.")

    # -- identify / resume -------------------------------------------------------------------------

    async def _identify(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        if conn.session is not None:
            await conn.ws.close(code=4005, message=b"Already authenticated.")
            return
        if data.get("token") != self.fake.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        intents = data.get("intents")
        if not isinstance(intents, int):
            await conn.ws.close(code=4013, message=b"Invalid intent(s).")
            return
        if intents & self.fake.disallowed_intents:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        shard = data.get("shard")
        if shard is not None and not (isinstance(shard, list) and len(shard) == 2 and 0 <= shard[0] < shard[1]):
            await conn.ws.close(code=4010, message=b"Invalid shard.")
            return
        self.identify_payload = data
        self.identify_count += 1
        self.identified_shards.append(tuple(shard) if shard else None)
        session = GatewaySession(session_id=secrets.token_hex(16), identify=data, intents=intents)
        self.sessions[session.session_id] = session
        async with session.lock:
            session.connection = conn
            conn.session = session
            await self._dispatch_locked(session, "READY", self.fake._ready_payload(session))
            for guild in self.fake.guilds.values():
                if guild.has_bot and on_shard(session, guild.id):
                    await self._dispatch_locked(session, "GUILD_CREATE", self.fake._guild_create_payload(guild))

    async def _resume(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or session.invalidated or data.get("token") != self.fake.token:
            await conn.send_json({"op": Op.INVALID_SESSION, "d": False})
            return
        client_seq = data.get("seq") or 0
        async with session.lock:
            previous = session.connection
            session.connection = conn
            conn.session = session
            if previous is not None and previous is not conn and previous.live:
                await previous.ws.close(code=4000, message=b"Session resumed elsewhere.")
            for seq, frame in session.backlog:
                if seq > client_seq:
                    self.replayed_count += 1
                    await conn.send_text(frame)
            await self._dispatch_locked(session, "RESUMED", {"_trace": ["fake-discord"]})
        self.resume_count += 1

    async def _send_member_chunk(self, session: GatewaySession, data: dict[str, Any]) -> None:
        guild = self.fake.guilds.get(int(data.get("guild_id", 0)))
        if guild is None or not guild.has_bot:
            return
        chunk = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in guild.members.values()],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        async with session.lock:
            await self._dispatch_locked(session, "GUILD_MEMBERS_CHUNK", chunk)

    # -- dispatch ----------------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send an event to every session; `dispatched` records when it went out (to the last one).
        Events of a guild without the bot or of a (group) DM it is not in are only recorded in
        `withheld`: Discord sends the bot nothing from there (interactions excepted)."""
        if not self.fake.bot_receives(event, data):
            self.withheld.append((time.time(), event, data))
            return
        guild_id = data.get("guild_id")
        for session in list(self.sessions.values()):
            if session.invalidated or not on_shard(session, int(guild_id) if guild_id else None):
                continue
            filtered = filter_event_for_intents(event, data, session.intents, self.fake.bot_user.id)
            if filtered is None:
                continue
            async with session.lock:
                await self._dispatch_locked(session, event, filtered)
        self.dispatched.append((time.time(), event, data))

    @staticmethod
    async def _dispatch_locked(session: GatewaySession, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        frame = json.dumps({"op": Op.DISPATCH, "t": event, "s": session.seq, "d": data})
        session.backlog.append((session.seq, frame))
        if session.connected:
            assert session.connection is not None
            await session.connection.send_text(frame)

    # -- test controls -----------------------------------------------------------------------------

    def live_connections(self) -> list[GatewayConnection]:
        return [c for c in self.connections if c.live]

    async def disconnect(self, code: int | None, timeout: float) -> None:
        for conn in self.live_connections():
            conn.closed_by_server = True
            if code is None:
                transport = conn.request.transport
                if transport is not None:
                    transport.abort()
                    continue
                code = 1011
            try:
                await asyncio.wait_for(conn.ws.close(code=code, message=b"fake disconnect"), timeout)
            except TimeoutError:
                log.warning("gateway close handshake timed out")

    async def send_op(self, op: int, data: Any) -> None:
        for conn in self.live_connections():
            await conn.send_json({"op": op, "d": data})

    async def invalidate(self, *, resumable: bool) -> None:
        for conn in self.live_connections():
            if conn.session is not None and not resumable:
                conn.session.invalidated = True
            await conn.send_json({"op": Op.INVALID_SESSION, "d": resumable})


def _event_intent(event: str, data: Mapping[str, Any]) -> int | None:
    """The intent Discord requires for an event (None: always delivered)."""
    in_guild = data.get("guild_id") is not None
    if event.startswith("MESSAGE_REACTION"):
        return None
    if event.startswith("MESSAGE_"):
        return Intent.GUILD_MESSAGES if in_guild else Intent.DIRECT_MESSAGES
    if event == "TYPING_START":
        return Intent.GUILD_MESSAGE_TYPING if in_guild else Intent.DIRECT_MESSAGE_TYPING
    if event in ("GUILD_MEMBER_ADD", "GUILD_MEMBER_UPDATE", "GUILD_MEMBER_REMOVE"):
        return Intent.GUILD_MEMBERS
    if event.startswith(("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE", "CHANNEL_", "THREAD_", "GUILD_ROLE")):
        return Intent.GUILDS
    return None


def filter_event_for_intents(event: str, data: dict[str, Any], intents: int, bot_id: int) -> dict[str, Any] | None:
    """What a session with ``intents`` receives for an event, or None when it receives nothing."""
    required = _event_intent(event, data)
    if required is not None and not intents & required:
        return None
    if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE") and not intents & Intent.MESSAGE_CONTENT:
        return _without_message_content(data, bot_id)
    return data


def _without_message_content(data: dict[str, Any], bot_id: int) -> dict[str, Any]:
    """Discord blanks content for guild messages unless they are the bot's own or mention it."""
    if data.get("guild_id") is None or data.get("author", {}).get("id") == str(bot_id):
        return data
    if any(u.get("id") == str(bot_id) for u in data.get("mentions", [])):
        return data
    stripped = dict(data)
    stripped.update(content="", embeds=[], attachments=[], components=[])
    stripped.pop("poll", None)
    return stripped


# --------------------------------------------------------------------------------------------------
# REST
# --------------------------------------------------------------------------------------------------


@dataclass
class RestCall:
    request: web.Request
    params: dict[str, str]
    query: Mapping[str, str]
    json: Any
    files: list[UploadedFile]

    def snowflake(self, name: str, error: Callable[[], DiscordHTTPError] = not_found_route) -> int:
        try:
            return int(self.params[name])
        except (KeyError, ValueError):
            raise error() from None

    def body(self) -> dict[str, Any]:
        if self.json is None:
            return {}
        if not isinstance(self.json, dict):
            raise DiscordHTTPError(400, 50109, "The request body contains invalid JSON.")
        return self.json


Handler = Callable[[RestCall], Awaitable[Any]]


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str  # discord.py's template, e.g. /channels/{channel_id}/messages
    handler: Handler
    bucket: str | None = None  # a Limits field; None → per-route default bucket
    auth: bool = True
    global_limit: bool = True

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


class NoContent:
    """Marker a handler returns for ``204 No Content``."""


NO_CONTENT = NoContent()


def json_response(status: int, payload: Any, headers: Mapping[str, str]) -> web.Response:
    if payload is None:
        return web.Response(status=status, headers=dict(headers))
    return web.Response(
        status=status,
        body=json.dumps(payload).encode(),
        headers={**headers, "Content-Type": JSON_CONTENT_TYPE},
    )


async def read_body(request: web.Request) -> tuple[Any, list[UploadedFile]]:
    """JSON body, or ``payload_json`` + files for multipart/form-data (what discord.py sends with files)."""
    if request.content_type == "multipart/form-data":
        return await _read_multipart(request)
    raw = await request.read()
    if not raw:
        return None, []
    try:
        return json.loads(raw), []
    except ValueError:
        raise DiscordHTTPError(400, 50109, "The request body contains invalid JSON.") from None


async def _read_multipart(request: web.Request) -> tuple[Any, list[UploadedFile]]:
    payload: Any = None
    files: list[UploadedFile] = []
    reader = await request.multipart()
    async for part in reader:
        data = await part.read()  # type: ignore[union-attr]
        if part.name == "payload_json":
            payload = json.loads(data)
        else:
            content_type = part.headers.get("Content-Type")
            filename = part.filename  # type: ignore[union-attr]
            files.append(UploadedFile.of(part.name or "", filename, bytes(data), content_type))
    _check_uploads(payload, files)
    return payload, files


MAX_UPLOADS = 10  # files per message
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # a bot's uploads per request, without boosts
_FILE_FIELD = re.compile(r"files\[(\d+)\]")


def _check_uploads(payload: Any, files: Sequence[UploadedFile]) -> None:
    """As Discord checks a multipart body: at most 10 files of 10 MiB in all, each in a ``files[n]`` field, and each
    new entry of ``attachments`` (an integer id) naming one of them."""
    if sum(upload.size for upload in files) > MAX_UPLOAD_BYTES:
        raise DiscordHTTPError(413, 40005, "Request entity too large")
    errors: list[FieldError] = []
    if len(files) > MAX_UPLOADS:
        errors.append(FieldError(("files",), "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_UPLOADS} or fewer in length."))
    numbers = set()
    for upload in files:
        field_match = _FILE_FIELD.fullmatch(upload.field_name)
        if field_match is None:
            errors.append(FieldError((upload.field_name,), "BASE_TYPE_BAD_FIELD", "Unknown file field."))
        else:
            numbers.add(int(field_match.group(1)))
    listed = payload.get("attachments") if isinstance(payload, dict) else None
    for index, entry in enumerate(listed if isinstance(listed, list) else []):
        new_id = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(new_id, int) and new_id < 2**32 and new_id not in numbers:  # a snowflake: an attachment kept
            errors.append(FieldError(("attachments", index, "id"), "ATTACHMENT_NOT_FOUND", "Unknown attachment."))
    if errors:
        raise invalid_form_body(errors)


class _RestApi:
    """Route table and handlers.  Every handler gets a parsed RestCall and returns a JSON-able value."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    def routes(self) -> list[RouteSpec]:
        f = self
        return [
            RouteSpec("GET", "/gateway", f.get_gateway, auth=False),
            RouteSpec("GET", "/gateway/bot", f.get_gateway_bot),
            RouteSpec("GET", "/users/@me", f.get_me),
            RouteSpec("POST", "/users/@me/channels", f.create_dm),
            RouteSpec("GET", "/users/{user_id}", f.get_user),
            RouteSpec("GET", "/oauth2/applications/@me", f.get_application),
            RouteSpec("GET", "/applications/@me", f.get_application),
            RouteSpec("GET", "/channels/{channel_id}", f.get_channel),
            RouteSpec("GET", "/channels/{channel_id}/messages", f.get_messages, "message_history"),
            RouteSpec("POST", "/channels/{channel_id}/messages", f.create_message, "message_create"),
            RouteSpec("GET", "/channels/{channel_id}/messages/{message_id}", f.get_message),
            RouteSpec("PATCH", "/channels/{channel_id}/messages/{message_id}", f.edit_message, "message_edit"),
            RouteSpec("DELETE", "/channels/{channel_id}/messages/{message_id}", f.delete_message),
            RouteSpec(
                "POST", "/channels/{channel_id}/messages/{message_id}/threads", f.thread_from_message, "thread_create"
            ),
            RouteSpec("POST", "/channels/{channel_id}/threads", f.thread_without_message, "thread_create"),
            RouteSpec("POST", "/channels/{channel_id}/typing", f.typing),
            RouteSpec("PUT", "/channels/{channel_id}/thread-members/@me", f.join_thread),
            RouteSpec("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", f.add_reaction),
            RouteSpec(
                "DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", f.remove_reaction
            ),
            RouteSpec("GET", "/applications/{application_id}/commands", f.get_commands),
            RouteSpec("PUT", "/applications/{application_id}/commands", f.put_commands),
            RouteSpec("GET", "/applications/{application_id}/guilds/{guild_id}/commands", f.get_commands),
            RouteSpec("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", f.put_commands),
            RouteSpec(
                "POST",
                "/interactions/{webhook_id}/{webhook_token}/callback",
                f.interaction_callback,
                auth=False,
                global_limit=False,
            ),
            *self._webhook_routes(),
        ]

    def _webhook_routes(self) -> list[RouteSpec]:
        f = self
        original = "/webhooks/{webhook_id}/{webhook_token}/messages/@original"
        message = "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
        specs = [
            ("GET", original, f.get_webhook_message),
            ("PATCH", original, f.edit_webhook_message),
            ("DELETE", original, f.delete_webhook_message),
            ("GET", message, f.get_webhook_message),
            ("PATCH", message, f.edit_webhook_message),
            ("DELETE", message, f.delete_webhook_message),
            ("POST", "/webhooks/{webhook_id}/{webhook_token}", f.execute_webhook),
        ]
        return [
            RouteSpec(method, path, handler, "interaction_webhook", auth=False, global_limit=False)
            for method, path, handler in specs
        ]

    # -- gateway / users / application -------------------------------------------------------------

    async def get_gateway(self, call: RestCall) -> Any:
        return {"url": self.fake.gateway_url}

    async def get_gateway_bot(self, call: RestCall) -> Any:
        return {
            "url": self.fake.gateway_url,
            "shards": self.fake.recommended_shards,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1},
        }

    async def get_me(self, call: RestCall) -> Any:
        return self.fake._client_user_payload()

    async def get_user(self, call: RestCall) -> Any:
        return self.fake._require_user(call.snowflake("user_id", unknown_user)).payload()

    async def get_application(self, call: RestCall) -> Any:
        return self.fake._application_payload()

    async def create_dm(self, call: RestCall) -> Any:
        try:
            user = self.fake._require_user(int(call.body().get("recipient_id", 0)))
        except (TypeError, ValueError):
            raise unknown_user() from None
        return self.fake.dm_channel_for(user)

    # -- channels and messages ---------------------------------------------------------------------

    async def get_channel(self, call: RestCall) -> Any:
        return self.fake._channel_for_bot(call.snowflake("channel_id", unknown_channel))

    async def get_messages(self, call: RestCall) -> Any:
        """Newest first, up to ``limit`` (1-100, default 50). Without View Channel: 403 50001; without
        Read Message History: ``[]`` (Discord's documented answer, no error)."""
        fake = self.fake
        channel = fake._channel_for_bot(call.snowflake("channel_id", unknown_channel))
        limit = _history_limit(call.query.get("limit"))
        anchors = {k: _snowflake_param(call.query, k) for k in ("before", "after", "around")}
        in_guild = fake._guild_of(channel) is not None
        if in_guild and not fake.permissions_for(channel, fake.bot_user.id) & Perm.READ_MESSAGE_HISTORY:
            return []
        page = fake.history_page(channel["id"], limit, **anchors)
        return [_copied(m.payload) for m in page]

    async def get_message(self, call: RestCall) -> Any:
        return _copied(self._message_in_route(call).payload)

    async def create_message(self, call: RestCall) -> Any:
        fake = self.fake
        channel = fake._channel_for_bot(call.snowflake("channel_id", unknown_channel))
        fake._check_can_send(channel)
        body = call.body()
        validate_new_message(body, call.files)
        reference = fake._resolve_reference(channel, body)
        await fake._unarchive_for_message(channel)
        stored = fake._store_message(channel, fake.bot_user, body, files=call.files, reference=reference)
        await fake._announce_new_message(stored)
        return _copied(stored.payload)

    async def edit_message(self, call: RestCall) -> Any:
        stored = self._message_in_route(call)
        if stored.author_id != self.fake.bot_user.id:
            raise DiscordHTTPError(403, 50005, "Cannot edit a message authored by another user")
        await self.fake._edit_message(stored, call.body(), call.files)
        return _copied(stored.payload)

    async def delete_message(self, call: RestCall) -> Any:
        await self.fake._delete_message(self._message_in_route(call))
        return NO_CONTENT

    def _message_in_route(self, call: RestCall) -> StoredMessage:
        self.fake._channel_for_bot(call.snowflake("channel_id", unknown_channel))
        stored = self.fake._messages.get(call.snowflake("message_id", unknown_message))
        if stored is None or stored.deleted or stored.channel_id != int(call.params["channel_id"]):
            raise unknown_message()
        return stored

    async def typing(self, call: RestCall) -> Any:
        channel = self.fake._channel_for_bot(call.snowflake("channel_id", unknown_channel))
        self.fake.typing.append((time.time(), int(channel["id"])))
        return NO_CONTENT

    async def join_thread(self, call: RestCall) -> Any:
        channel = self.fake._channel_for_bot(call.snowflake("channel_id", unknown_channel))
        if channel["type"] not in ChannelType.THREADS:
            raise DiscordHTTPError(400, 50024, "Cannot execute action on this channel type")
        self.fake._check_active(channel)
        return NO_CONTENT

    async def add_reaction(self, call: RestCall) -> Any:
        stored = self._message_in_route(call)
        self.fake._check_active(self.fake.channels[stored.channel_id])
        self.fake.reactions.append((time.time(), stored.id, call.params["emoji"]))
        return NO_CONTENT

    async def remove_reaction(self, call: RestCall) -> Any:
        self._message_in_route(call)
        return NO_CONTENT

    # -- threads -----------------------------------------------------------------------------------

    async def thread_from_message(self, call: RestCall) -> Any:
        fake = self.fake
        channel = fake._channel_for_bot(call.snowflake("channel_id", unknown_channel))
        if channel["type"] != ChannelType.GUILD_TEXT:
            raise DiscordHTTPError(400, 50024, "Cannot execute action on this channel type")
        fake._check_can_create_threads(channel, ChannelType.PUBLIC_THREAD)
        stored = self._message_in_route(call)
        if stored.id in fake._threads_by_message:
            raise DiscordHTTPError(400, 160004, "A thread has already been created for this message")
        body = call.body()
        validate_thread_body(body)
        thread = fake._create_thread(
            channel, body["name"], thread_id=stored.id, thread_type=ChannelType.PUBLIC_THREAD, body=body
        )
        fake._threads_by_message[stored.id] = int(thread["id"])
        stored.payload["thread"] = thread
        stored.payload["flags"] |= MessageFlag.HAS_THREAD
        await fake._announce_thread(thread)
        return thread

    async def thread_without_message(self, call: RestCall) -> Any:
        fake = self.fake
        channel = fake._channel_for_bot(call.snowflake("channel_id", unknown_channel))
        if channel["type"] != ChannelType.GUILD_TEXT:
            raise DiscordHTTPError(400, 50024, "Cannot execute action on this channel type")
        body = call.body()
        thread_type = int(body.get("type") or ChannelType.PRIVATE_THREAD)
        fake._check_can_create_threads(channel, thread_type)
        validate_thread_body(body)
        thread_id = fake._ids.next()
        thread = fake._create_thread(channel, body["name"], thread_id=thread_id, thread_type=thread_type, body=body)
        await fake._announce_thread(thread)
        return thread

    # -- application commands ----------------------------------------------------------------------

    async def get_commands(self, call: RestCall) -> Any:
        scope = self._command_scope(call)
        return _copied(self.fake.commands.get(scope, []))

    async def put_commands(self, call: RestCall) -> Any:
        scope = self._command_scope(call)
        if not isinstance(call.json, list):
            raise invalid_form_body([FieldError((), "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")])
        validate_commands(call.json, installable=self.fake.installation_contexts, global_scope=scope is None)
        self.fake.commands[scope] = self.fake._assign_command_ids(scope, call.json)
        return _copied(self.fake.commands[scope])

    def _command_scope(self, call: RestCall) -> int | None:
        if call.snowflake("application_id") != self.fake.application_id:
            raise DiscordHTTPError(403, 50001, "Missing Access")
        if "guild_id" not in call.params:
            return None
        guild_id = call.snowflake("guild_id")
        guild = self.fake.guilds.get(guild_id)
        if guild is None or not guild.has_bot:
            raise missing_access()
        return guild_id

    # -- interactions and their webhooks -----------------------------------------------------------

    async def interaction_callback(self, call: RestCall) -> Any:
        interaction = self.fake._interactions.get(call.snowflake("webhook_id", unknown_interaction))
        if interaction is None or interaction.token != call.params["webhook_token"]:
            raise unknown_interaction()
        if interaction.acknowledged:
            raise DiscordHTTPError(400, 40060, "Interaction has already been acknowledged.")
        if time.time() - interaction.created_at > self.fake.interaction_ack_timeout:
            raise unknown_interaction()
        body = call.body()
        try:
            message = await self.fake._apply_interaction_callback(interaction, body, call.files)
        except DiscordHTTPError as error:
            interaction.rejected.append(error.body())
            raise
        if call.query.get("with_response", "").lower() not in ("1", "true"):
            return NO_CONTENT
        return interaction_callback_response(interaction, body, message)

    async def get_webhook_message(self, call: RestCall) -> Any:
        return _copied(self._webhook_message(call).payload)

    async def edit_webhook_message(self, call: RestCall) -> Any:
        stored = self._webhook_message(call)
        await self.fake._edit_message(stored, call.body(), call.files, clear_loading=True)
        return _copied(stored.payload)

    async def delete_webhook_message(self, call: RestCall) -> Any:
        await self.fake._delete_message(self._webhook_message(call))
        return NO_CONTENT

    async def execute_webhook(self, call: RestCall) -> Any:
        interaction = self._interaction_for_webhook(call)
        body = call.body()
        validate_new_message(body, call.files)
        stored = await self.fake._send_followup(interaction, body, call.files)
        if call.query.get("wait", "").lower() not in ("1", "true"):
            return NO_CONTENT
        return _copied(stored.payload)

    def _interaction_for_webhook(self, call: RestCall) -> FakeInteraction:
        interaction = self.fake._interactions_by_token.get(call.params["webhook_token"])
        if interaction is None or call.snowflake("webhook_id", unknown_webhook) != interaction.application_id:
            raise unknown_webhook()
        if time.time() - interaction.created_at > INTERACTION_TOKEN_LIFETIME:
            raise DiscordHTTPError(401, 50027, "Invalid Webhook Token")
        return interaction

    def _webhook_message(self, call: RestCall) -> StoredMessage:
        interaction = self._interaction_for_webhook(call)
        raw_id = call.params.get("message_id", "@original")
        if raw_id == "@original":
            message_id = interaction.original_message_id
        else:
            message_id = call.snowflake("message_id", unknown_message)
            if message_id not in (interaction.original_message_id, *interaction.followup_message_ids):
                message_id = None
        stored = self.fake._messages.get(message_id) if message_id is not None else None
        if stored is None or stored.deleted:
            raise unknown_message()
        return stored


def _history_limit(raw: str | None) -> int:
    if raw is None:
        return 50
    try:
        limit = int(raw)
    except ValueError:
        error = FieldError(("limit",), "NUMBER_TYPE_COERCE", f'Value "{raw}" is not int.')
        raise invalid_form_body([error]) from None
    if limit < 1:
        error = FieldError(("limit",), "NUMBER_TYPE_MIN", "int value should be greater than or equal to 1.")
        raise invalid_form_body([error])
    if limit > 100:
        error = FieldError(("limit",), "NUMBER_TYPE_MAX", "int value should be less than or equal to 100.")
        raise invalid_form_body([error])
    return limit


def _snowflake_param(query: Mapping[str, str], name: str) -> int | None:
    if name not in query:
        return None
    try:
        return int(query[name])
    except ValueError:
        message = f'Value "{query[name]}" is not snowflake.'
        raise invalid_form_body([FieldError((name,), "NUMBER_TYPE_COERCE", message)]) from None


def interaction_callback_response(
    interaction: FakeInteraction, body: Mapping[str, Any], message: StoredMessage | None
) -> dict[str, Any]:
    """The ``?with_response=true`` body discord.py 2.5+ asks for. `message`: the one the callback
    created (types 4, 5) or edited (type 7, the clicked message)."""
    summary: dict[str, Any] = {"id": str(interaction.id), "type": interaction.interaction_type}
    if message is not None:
        summary["response_message_id"] = str(message.id)
        summary["response_message_loading"] = bool(message.flags & MessageFlag.LOADING)
        summary["response_message_ephemeral"] = bool(message.flags & MessageFlag.EPHEMERAL)
    response: dict[str, Any] = {"interaction": summary, "resource": {"type": body.get("type")}}
    if message is not None and body.get("type") in (
        CallbackType.CHANNEL_MESSAGE_WITH_SOURCE,
        CallbackType.UPDATE_MESSAGE,
    ):
        response["resource"]["message"] = _copied(message.payload)
    return response


class InteractionCallbackRejected(Exception):
    """The bot answered an interaction with a callback Discord refuses (400); ``body`` is the error."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(json.dumps(body))
        self.body = body


def _submitted_row(row: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, Any]:
    """An action row of a modal as its submission carries it: the text input's custom_id and value,
    checked as Discord's client checks what a person typed (ValueError)."""
    text_input = row["components"][0]
    custom_id = text_input["custom_id"]
    value = given.get(custom_id, text_input.get("value") or "")
    low, high = int(text_input.get("min_length") or 0), _text_input_max(text_input)
    if len(value) > high:
        raise ValueError(f"text input {custom_id!r} holds {high} characters at most; {len(value)} were typed")
    if (value and len(value) < low) or (not value and text_input.get("required", True)):
        raise ValueError(f"text input {custom_id!r} needs {max(low, 1)} characters at least; {len(value)} were typed")
    submitted = {"type": ComponentType.TEXT_INPUT, "id": text_input["id"], "custom_id": custom_id, "value": value}
    return {"type": ComponentType.ACTION_ROW, "id": row["id"], "components": [submitted]}


def _check_channel_then_user(channel_id: Any, user: Any) -> None:
    if isinstance(channel_id, FakeUser) or not isinstance(user, FakeUser):
        raise TypeError("pass the channel first, then the FakeUser (like send_slash_command)")


def _last_leaf(options: Mapping[str, Any]) -> str:
    """The name of the last option given, inside the sub-command if one is given."""
    name, value = list(options.items())[-1]
    return _last_leaf(value) if isinstance(value, Mapping) and value else name


def _focused_option(options: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The option marked ``focused`` in an autocomplete interaction's options (at any depth)."""
    for option in options:
        if option.get("focused"):
            return option
        found = _focused_option(option.get("options") or [])
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def validate_new_message(body: Mapping[str, Any], files: Sequence[UploadedFile]) -> None:
    errors = message_field_errors(body)
    if errors:
        raise invalid_form_body(errors)
    has_content = bool(body.get("content"))
    has_other = any(body.get(key) for key in ("embeds", "sticker_ids", "components", "poll"))
    if not (has_content or has_other or files):
        raise empty_message()


def message_field_errors(body: Mapping[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    content = body.get("content")
    if content is not None and len(str(content)) > MAX_CONTENT_LENGTH:
        errors.append(max_length_error(("content",), MAX_CONTENT_LENGTH))
    errors.extend(embed_errors(body.get("embeds") or []))
    errors.extend(component_errors(body.get("components")))
    return errors


def component_errors(components: Any) -> list[FieldError]:
    """A message's ``components``, checked like Discord: at most 5 action rows (type 1) of 1-5
    buttons (type 2): ``style`` 1-4 with a ``custom_id`` of 1-100 characters, unique in the
    message; 5 (link) with a ``url`` and no custom_id; 6 (premium) with a ``sku_id`` only; an
    optional ``label`` of at most 80, ``disabled`` (bool), ``emoji`` (object) and numeric ``id``
    (unique). Null or ``[]``: none. Select menus and the v2 layout components are valid on
    Discord but not modelled here: the fake refuses them (400) rather than pretend.
    Codes Discord does not document are the fake's own names."""
    if components is None:
        return []
    path: tuple[str | int, ...] = ("components",)
    if not isinstance(components, list):
        return [FieldError(path, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")]
    if len(components) > MAX_ACTION_ROWS:
        return [max_length_error(path, MAX_ACTION_ROWS)]
    errors: list[FieldError] = []
    custom_ids: set[str] = set()
    ids: set[int] = set()
    for index, row in enumerate(components):
        here = (*path, index)
        if not isinstance(row, dict):
            errors.append(FieldError(here, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType"))
            continue
        if row.get("type") != ComponentType.ACTION_ROW:
            message = "Value must be one of {1}: the fake models action rows of buttons only (no v2 layout)."
            errors.append(FieldError((*here, "type"), "BASE_TYPE_CHOICES", message))
            continue
        errors.extend(_component_id_errors(here, row, ids))
        children = row.get("components")
        if not isinstance(children, list):
            errors.append(_required_field((*here, "components")))
            continue
        if not 1 <= len(children) <= MAX_ROW_BUTTONS:
            errors.append(_bad_length((*here, "components"), 1, MAX_ROW_BUTTONS))
            continue
        for position, button in enumerate(children):
            errors.extend(_button_errors((*here, "components", position), button, custom_ids, ids))
    return errors


def _component_id_errors(path: tuple[str | int, ...], component: Mapping[str, Any], ids: set[int]) -> list[FieldError]:
    value = component.get("id")
    if value is None or value == 0:
        return []
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COMPONENT_ID:
        message = f"int value should be greater than or equal to 0 and less than or equal to {MAX_COMPONENT_ID}."
        return [FieldError((*path, "id"), "NUMBER_TYPE_MAX", message)]
    if value in ids:
        return [FieldError((*path, "id"), "COMPONENT_ID_DUPLICATED", "Component id cannot be duplicated")]
    ids.add(value)
    return []


def _button_errors(path: tuple[str | int, ...], button: Any, custom_ids: set[str], ids: set[int]) -> list[FieldError]:
    if not isinstance(button, dict):
        return [FieldError(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")]
    if button.get("type") != ComponentType.BUTTON:
        message = "Value must be one of {2}: the fake models buttons only (no select menus)."
        return [FieldError((*path, "type"), "BASE_TYPE_CHOICES", message)]
    style = button.get("style")
    if isinstance(style, bool) or style not in ButtonStyle.ALL:
        return [FieldError((*path, "style"), "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4, 5, 6}.")]
    errors = _component_id_errors(path, button, ids)
    label = button.get("label")
    if label is not None and (not isinstance(label, str) or len(label) > MAX_BUTTON_LABEL):
        errors.append(max_length_error((*path, "label"), MAX_BUTTON_LABEL))
    disabled = button.get("disabled")
    if disabled is not None and not isinstance(disabled, bool):
        errors.append(FieldError((*path, "disabled"), "BASE_TYPE_BOOLEAN", "Must be either true or false."))
    emoji = button.get("emoji")
    if emoji is not None and not (isinstance(emoji, dict) and (emoji.get("id") or emoji.get("name"))):
        errors.append(
            FieldError((*path, "emoji"), "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        )
    custom_id, url = button.get("custom_id"), button.get("url")
    if style in ButtonStyle.WITH_CUSTOM_ID:
        if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= MAX_CUSTOM_ID:
            errors.append(_bad_length((*path, "custom_id"), 1, MAX_CUSTOM_ID))
        elif custom_id in custom_ids:
            message = "Component custom id cannot be duplicated"
            errors.append(FieldError((*path, "custom_id"), "COMPONENT_CUSTOM_ID_DUPLICATED", message))
        else:
            custom_ids.add(custom_id)
        if url is not None:
            message = "A button with a custom_id cannot have a url"
            errors.append(FieldError((*path, "url"), "BUTTON_COMPONENT_URL_NOT_ALLOWED", message))
    else:
        if custom_id is not None:
            message = "A link or premium button cannot have a custom_id"
            errors.append(FieldError((*path, "custom_id"), "BUTTON_COMPONENT_CUSTOM_ID_NOT_ALLOWED", message))
        if style == ButtonStyle.LINK and not (
            isinstance(url, str)
            and url.startswith(("http://", "https://", "discord://"))
            and len(url) <= MAX_BUTTON_URL
        ):
            errors.append(FieldError((*path, "url"), "URL_TYPE_INVALID_URL", "Not a well formed URL."))
        if style == ButtonStyle.PREMIUM and not button.get("sku_id"):
            errors.append(_required_field((*path, "sku_id")))
    return errors


def modal_errors(data: Any) -> list[FieldError]:
    """A modal (callback type 9) ``data``, checked like Discord: a ``custom_id`` of 1-100 characters, a ``title`` of
    1-45, 1-5 action rows of one text input (type 4) each: a ``custom_id`` of 1-100, unique in the modal, ``style``
    1 (short) or 2 (paragraph), a ``label`` of 1-45, ``min_length`` 0-4000, ``max_length`` 1-4000, a ``placeholder``
    of at most 100, ``required`` a bool and a prefilled ``value`` no longer than max_length (4000 at most). Labels
    (type 18) and select menus in modals exist on Discord but are not modelled: the fake refuses them."""
    if not isinstance(data, dict):
        return [FieldError(("data",), "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")]
    errors: list[FieldError] = []
    for name, limit in (("custom_id", MAX_CUSTOM_ID), ("title", MAX_MODAL_TITLE)):
        value = data.get(name)
        if not isinstance(value, str) or not 1 <= len(value) <= limit:
            errors.append(_bad_length(("data", name), 1, limit))
    path: tuple[str | int, ...] = ("data", "components")
    rows = data.get("components")
    if not isinstance(rows, list):
        return [*errors, _required_field(path)]
    if not 1 <= len(rows) <= MAX_MODAL_ROWS:
        return [*errors, _bad_length(path, 1, MAX_MODAL_ROWS)]
    custom_ids: set[str] = set()
    ids: set[int] = set()
    for index, row in enumerate(rows):
        errors.extend(_modal_row_errors((*path, index), row, custom_ids, ids))
    return errors


def _modal_row_errors(path: tuple[str | int, ...], row: Any, custom_ids: set[str], ids: set[int]) -> list[FieldError]:
    if not isinstance(row, dict):
        return [FieldError(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")]
    if row.get("type") != ComponentType.ACTION_ROW:
        message = "Value must be one of {1}: the fake models action rows of text inputs in modals (no Label)."
        return [FieldError((*path, "type"), "BASE_TYPE_CHOICES", message)]
    children = row.get("components")
    if not isinstance(children, list):
        return [_required_field((*path, "components"))]
    if len(children) != 1:
        return [_bad_length((*path, "components"), 1, 1)]
    return [
        *_component_id_errors(path, row, ids),
        *_text_input_errors((*path, "components", 0), children[0], custom_ids, ids),
    ]


def _text_input_errors(
    path: tuple[str | int, ...], text_input: Any, custom_ids: set[str], ids: set[int]
) -> list[FieldError]:
    if not isinstance(text_input, dict):
        return [FieldError(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")]
    if text_input.get("type") != ComponentType.TEXT_INPUT:
        message = "Value must be one of {4}: the fake models text inputs in modals (no select menus)."
        return [FieldError((*path, "type"), "BASE_TYPE_CHOICES", message)]
    errors = _component_id_errors(path, text_input, ids)
    custom_id = text_input.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= MAX_CUSTOM_ID:
        errors.append(_bad_length((*path, "custom_id"), 1, MAX_CUSTOM_ID))
    elif custom_id in custom_ids:
        message = "Component custom id cannot be duplicated"
        errors.append(FieldError((*path, "custom_id"), "COMPONENT_CUSTOM_ID_DUPLICATED", message))
    else:
        custom_ids.add(custom_id)
    style = text_input.get("style")
    if isinstance(style, bool) or style not in TextInputStyle.ALL:
        errors.append(FieldError((*path, "style"), "BASE_TYPE_CHOICES", "Value must be one of {1, 2}."))
    label = text_input.get("label")
    if not isinstance(label, str) or not 1 <= len(label) <= MAX_TEXT_INPUT_LABEL:
        errors.append(_bad_length((*path, "label"), 1, MAX_TEXT_INPUT_LABEL))
    for name, low in (("min_length", 0), ("max_length", 1)):
        number = text_input.get(name)
        if number is not None and (
            isinstance(number, bool) or not isinstance(number, int) or not low <= number <= MAX_TEXT_INPUT_LENGTH
        ):
            message = f"int value should be greater than or equal to {low} and less than or equal to 4000."
            errors.append(FieldError((*path, name), "NUMBER_TYPE_MAX", message))
    placeholder = text_input.get("placeholder")
    if placeholder is not None and (not isinstance(placeholder, str) or len(placeholder) > MAX_TEXT_INPUT_PLACEHOLDER):
        errors.append(max_length_error((*path, "placeholder"), MAX_TEXT_INPUT_PLACEHOLDER))
    required = text_input.get("required")
    if required is not None and not isinstance(required, bool):
        errors.append(FieldError((*path, "required"), "BASE_TYPE_BOOLEAN", "Must be either true or false."))
    value = text_input.get("value")
    if value is not None and (not isinstance(value, str) or len(value) > _text_input_max(text_input)):
        errors.append(max_length_error((*path, "value"), _text_input_max(text_input)))
    return errors


def _text_input_max(text_input: Mapping[str, Any]) -> int:
    """The most a text input holds: its ``max_length`` when valid, else 4000."""
    limit = text_input.get("max_length")
    if isinstance(limit, int) and not isinstance(limit, bool) and 1 <= limit <= MAX_TEXT_INPUT_LENGTH:
        return limit
    return MAX_TEXT_INPUT_LENGTH


def number_components(components: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of `components` with every missing (or 0) ``id`` filled in, as Discord does:
    sequentially from 1, in order (each row, then its buttons), skipping ids already taken."""
    numbered = _copied(list(components))
    flat = [c for row in numbered for c in (row, *(row.get("components") or []))]
    taken = {c["id"] for c in flat if c.get("id")}
    next_id = 1
    for component in flat:
        if component.get("id"):
            continue
        while next_id in taken:
            next_id += 1
        component["id"] = next_id
        taken.add(next_id)
    return numbered


def buttons_in(components: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The buttons of a message's action rows, in order."""
    return [
        dict(child)
        for row in components
        for child in row.get("components") or []
        if child.get("type") == ComponentType.BUTTON
    ]


def embed_errors(embeds: Sequence[Mapping[str, Any]]) -> list[FieldError]:
    if len(embeds) > 10:
        return [max_length_error(("embeds",), 10)]
    errors: list[FieldError] = []
    for index, embed in enumerate(embeds):
        for key, limit in (("title", 256), ("description", 4096)):
            if len(embed.get(key) or "") > limit:
                errors.append(max_length_error(("embeds", index, key), limit))
        total = sum(len(embed.get(key) or "") for key in ("title", "description"))
        total += sum(len(f.get("name", "")) + len(f.get("value", "")) for f in embed.get("fields") or [])
        if total > 6000:
            message = "Embed size exceeds maximum size of 6000"
            errors.append(FieldError(("embeds", index), "BASE_TYPE_MAX_LENGTH", message))
    return errors


def validate_thread_body(body: Mapping[str, Any]) -> None:
    name = body.get("name")
    if not name:
        raise invalid_form_body([FieldError(("name",), "BASE_TYPE_REQUIRED", "This field is required")])
    if len(str(name)) > MAX_THREAD_NAME_LENGTH:
        message = f"Must be between 1 and {MAX_THREAD_NAME_LENGTH} in length."
        raise invalid_form_body([FieldError(("name",), "BASE_TYPE_BAD_LENGTH", message)])
    duration = body.get("auto_archive_duration")
    if duration is not None and duration not in (60, 1440, 4320, 10080):
        message = "Value must be one of {60, 1440, 4320, 10080}."
        raise invalid_form_body([FieldError(("auto_archive_duration",), "BASE_TYPE_CHOICES", message)])


def validate_commands(
    commands: Sequence[Any], *, installable: Collection[int] = IntegrationType.ALL, global_scope: bool = True
) -> None:
    """A bulk overwrite's commands, checked like Discord: 400 50035 (Invalid Form Body) with every
    field error; too many commands of one type: 400 30032.

    CHAT_INPUT (type 1): lowercase names matching Discord's regex, a 1-100 character description,
    options (types 1-11; lowercase names; descriptions; required before optional; choices and
    ``autocomplete`` only on string / integer / number options, never both). USER and MESSAGE
    (types 2, 3): any name of 1-32 characters (spaces and capitals allowed), no description, no
    options. Names are unique per type.

    ``integration_types`` (null or a list of 0 GUILD_INSTALL / 1 USER_INSTALL) and ``contexts``
    (null or a list of 0 GUILD / 1 BOT_DM / 2 PRIVATE_CHANNEL). For a global command, as Discord
    documents: every integration type must be one the application supports (`installable`: the
    developer portal's Installation Contexts), and PRIVATE_CHANNEL needs USER_INSTALL among the
    command's integration types (omitted: the application's). Guild commands carry them to no
    effect (a guild command is used in its guild, through the server install). Discord documents
    these rules but not their error codes: the codes here are the fake's own names.
    """
    errors: list[FieldError] = []
    seen: set[tuple[str, int]] = set()
    counts: dict[int, int] = {}
    for index, command in enumerate(commands):
        if not isinstance(command, dict):
            errors.append(FieldError((index,), "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType"))
            continue
        command_type = command.get("type", CommandType.CHAT_INPUT)
        if command_type not in (1, 2, 3, 4):
            errors.append(FieldError((index, "type"), "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4}."))
            continue
        errors.extend(_command_errors((index,), command, command_type))
        errors.extend(_install_errors((index,), command, installable, global_scope=global_scope))
        key = (str(command.get("name")), command_type)
        if key in seen:
            message = "Application command names must be unique"
            errors.append(FieldError((index, "name"), "APPLICATION_COMMANDS_DUPLICATE_NAME", message))
        seen.add(key)
        counts[command_type] = counts.get(command_type, 0) + 1
    if errors:
        raise invalid_form_body(errors)
    for command_type, count in counts.items():
        limit = MAX_COMMANDS.get(command_type)
        if limit is not None and count > limit:
            raise DiscordHTTPError(400, 30032, f"Maximum number of application commands reached ({limit})")


def _install_errors(
    path: tuple[str | int, ...], command: Mapping[str, Any], installable: Collection[int], *, global_scope: bool
) -> list[FieldError]:
    """A command's ``integration_types`` and ``contexts``, checked (see validate_commands)."""
    errors: list[FieldError] = []
    lists: dict[str, list[int]] = {}
    for name, allowed in (("integration_types", IntegrationType.ALL), ("contexts", ContextType.ALL)):
        value = command.get(name)
        if value is None:
            continue
        if not isinstance(value, list):
            errors.append(FieldError((*path, name), "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType"))
            continue
        choices = "{" + ", ".join(str(a) for a in allowed) + "}"
        for position, item in enumerate(value):
            if isinstance(item, bool) or item not in allowed:
                errors.append(
                    FieldError((*path, name, position), "BASE_TYPE_CHOICES", f"Value must be one of {choices}.")
                )
        lists[name] = [item for item in value if item in allowed and not isinstance(item, bool)]
    if errors or not global_scope:
        return errors
    types = lists.get("integration_types")
    for position, item in enumerate(types or []):
        if item not in installable:
            kind = "user" if item == IntegrationType.USER_INSTALL else "server"
            message = f"The application does not support {kind} installs (developer portal: Installation Contexts)"
            errors.append(FieldError((*path, "integration_types", position), "INTEGRATION_TYPE_NOT_SUPPORTED", message))
    effective = set(installable) if types is None else set(types)
    if ContextType.PRIVATE_CHANNEL in lists.get("contexts", []) and IntegrationType.USER_INSTALL not in effective:
        message = "The PRIVATE_CHANNEL context needs USER_INSTALL among the command's integration types"
        errors.append(FieldError((*path, "contexts"), "PRIVATE_CHANNEL_CONTEXT_NEEDS_USER_INSTALL", message))
    return errors


def _required_field(path: tuple[str | int, ...]) -> FieldError:
    return FieldError(path, "BASE_TYPE_REQUIRED", "This field is required")


def _bad_length(path: tuple[str | int, ...], low: int, high: int) -> FieldError:
    return FieldError(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")


def _invalid_name(path: tuple[str | int, ...]) -> FieldError:
    return FieldError(path, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")


def _command_errors(path: tuple[str | int, ...], command: Mapping[str, Any], command_type: int) -> list[FieldError]:
    errors: list[FieldError] = []
    name = command.get("name")
    if not isinstance(name, str) or not name:
        errors.append(_required_field((*path, "name")))
    elif command_type == CommandType.CHAT_INPUT:
        if not COMMAND_NAME_RE.fullmatch(name) or name != name.lower():
            errors.append(_invalid_name((*path, "name")))
    elif len(name) > MAX_COMMAND_NAME_LENGTH or not name.strip():
        errors.append(_bad_length((*path, "name"), 1, MAX_COMMAND_NAME_LENGTH))
    description = command.get("description")
    options = command.get("options")
    if command_type == CommandType.CHAT_INPUT:
        errors.extend(_description_errors((*path, "description"), description))
        errors.extend(_option_list_errors((*path, "options"), options, nesting=2))
    else:
        if description:  # absent, null and "" are accepted
            message = "Context menu commands cannot have description"
            code = "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION_INVALID"
            errors.append(FieldError((*path, "description"), code, message))
        if options:
            message = "Context menu commands cannot have options"
            errors.append(FieldError((*path, "options"), "APPLICATION_COMMAND_CONTEXT_MENU_OPTIONS_INVALID", message))
    return errors


def _description_errors(path: tuple[str | int, ...], description: Any) -> list[FieldError]:
    if description is None:
        return [_required_field(path)]
    if not isinstance(description, str) or not 1 <= len(description) <= MAX_DESCRIPTION_LENGTH:
        return [_bad_length(path, 1, MAX_DESCRIPTION_LENGTH)]
    return []


def _option_list_errors(path: tuple[str | int, ...], options: Any, *, nesting: int) -> list[FieldError]:
    """`nesting`: how many sub-command levels may still follow (2 at the top, 1 in a group, 0 in
    a sub-command)."""
    if options is None:
        return []
    if not isinstance(options, list):
        return [FieldError(path, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")]
    if len(options) > MAX_OPTIONS:
        return [max_length_error(path, MAX_OPTIONS)]
    errors: list[FieldError] = []
    names: set[str] = set()
    optional_seen = False
    types = {o.get("type") for o in options if isinstance(o, dict)}
    if types & set(OptionType.NESTING) and types - set(OptionType.NESTING):
        message = "Sub-command and sub-command group option types are mutually exclusive to all other types"
        errors.append(FieldError(path, "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", message))
    for index, option in enumerate(options):
        here = (*path, index)
        if not isinstance(option, dict):
            errors.append(FieldError(here, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType"))
            continue
        errors.extend(_option_errors(here, option, nesting))
        name = str(option.get("name"))
        if name in names:
            message = "Application command option names must be unique"
            errors.append(FieldError((*here, "name"), "APPLICATION_COMMAND_OPTIONS_DUPLICATE_NAME", message))
        names.add(name)
        if option.get("required"):
            if optional_seen:
                message = "Required options must be placed before non-required options"
                errors.append(FieldError(here, "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID", message))
        elif option.get("type") not in OptionType.NESTING:
            optional_seen = True
    return errors


def _option_errors(path: tuple[str | int, ...], option: Mapping[str, Any], nesting: int) -> list[FieldError]:
    errors: list[FieldError] = []
    option_type = option.get("type")
    if option_type not in OptionType.ALL:
        message = "Value must be one of {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}."
        return [FieldError((*path, "type"), "BASE_TYPE_CHOICES", message)]
    name = option.get("name")
    if not isinstance(name, str) or not name:
        errors.append(_required_field((*path, "name")))
    elif not COMMAND_NAME_RE.fullmatch(name) or name != name.lower():
        errors.append(_invalid_name((*path, "name")))
    errors.extend(_description_errors((*path, "description"), option.get("description")))
    if option_type in OptionType.NESTING:
        is_group = option_type == OptionType.SUB_COMMAND_GROUP
        if nesting < (2 if is_group else 1):
            message = "Sub-commands cannot be nested this deep"
            errors.append(FieldError((*path, "type"), "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", message))
            return errors
        children = option.get("options")
        if is_group and any(isinstance(c, dict) and c.get("type") != OptionType.SUB_COMMAND for c in children or []):
            message = "A sub-command group may only contain sub-commands"
            errors.append(FieldError((*path, "options"), "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", message))
        errors.extend(_option_list_errors((*path, "options"), children, nesting=1 if is_group else 0))
        return errors
    choices = option.get("choices")
    autocomplete = bool(option.get("autocomplete"))
    if (choices or autocomplete) and option_type not in OptionType.WITH_CHOICES:
        key = "autocomplete" if autocomplete else "choices"
        message = "Only string, integer and number options may have choices or autocomplete"
        errors.append(FieldError((*path, key), "APPLICATION_COMMAND_OPTION_TYPE_INVALID", message))
    elif choices and autocomplete:
        message = "Autocomplete options may not have choices"
        errors.append(FieldError((*path, "autocomplete"), "APPLICATION_COMMAND_AUTOCOMPLETE_CHOICES_INVALID", message))
    if choices is not None and isinstance(option_type, int):
        errors.extend(choice_errors((*path, "choices"), choices, option_type))
    if option_type == OptionType.STRING:
        for key, low in (("min_length", 0), ("max_length", 1)):
            value = option.get(key)
            if value is not None and not (isinstance(value, int) and low <= value <= 6000):
                message = f"int value should be greater than or equal to {low} and less than or equal to 6000."
                errors.append(FieldError((*path, key), "NUMBER_TYPE_MAX", message))
    return errors


def choice_errors(path: tuple[str | int, ...], choices: Any, option_type: int) -> list[FieldError]:
    """Declared choices of an option, or the choices of an autocomplete answer: at most 25, each
    ``{"name": 1-100 characters, "value": a string of at most 100 / an integer / a number}``."""
    if not isinstance(choices, list):
        return [FieldError(path, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")]
    if len(choices) > MAX_CHOICES:
        return [max_length_error(path, MAX_CHOICES)]
    errors: list[FieldError] = []
    for index, choice in enumerate(choices):
        here = (*path, index)
        if not isinstance(choice, dict):
            errors.append(FieldError(here, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType"))
            continue
        name = choice.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_CHOICE_LENGTH:
            errors.append(_bad_length((*here, "name"), 1, MAX_CHOICE_LENGTH))
        value = choice.get("value")
        if option_type == OptionType.STRING:
            if not isinstance(value, str):
                errors.append(FieldError((*here, "value"), "BASE_TYPE_STRING", "Must be a string."))
            elif len(value) > MAX_CHOICE_LENGTH:
                errors.append(max_length_error((*here, "value"), MAX_CHOICE_LENGTH))
        elif option_type == OptionType.INTEGER and (isinstance(value, bool) or not isinstance(value, int)):
            errors.append(FieldError((*here, "value"), "NUMBER_TYPE_COERCE", f'Value "{value}" is not int.'))
        elif option_type == OptionType.NUMBER and (isinstance(value, bool) or not isinstance(value, int | float)):
            errors.append(FieldError((*here, "value"), "NUMBER_TYPE_COERCE", f'Value "{value}" is not a number.'))
    return errors


# --------------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------------


class FakeDiscord:
    """In-memory Discord for one bot: REST under ``api_base_url``, gateway at ``gateway_url``."""

    def __init__(
        self,
        *,
        token: str = "fake-token",
        limits: Limits | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_name: str = "mistralbot",
        heartbeat_interval_ms: int = 41_250,
        gateway_compression: bool = True,
        disallowed_intents: int = 0,
        interaction_ack_timeout: float = INTERACTION_ACK_TIMEOUT,
        echo_bot_messages: bool = True,
        thread_archive_seconds: float | None = None,
        installation_contexts: Iterable[int] = (IntegrationType.GUILD_INSTALL,),
    ) -> None:
        """`thread_archive_seconds`: archive any thread after this many seconds without a new
        message (None: after its `auto_archive_duration` minutes, as Discord does).
        `installation_contexts`: where the application may be installed (the developer portal's
        Installation Contexts; a new application's default is servers only, add
        ``IntegrationType.USER_INSTALL`` for user installs; changeable until commands sync)."""
        self.token = token
        self.limits = limits if limits is not None else Limits()
        self.host = host
        self.port = port
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.gateway_compression = gateway_compression  # honour ?compress=zlib-stream
        self.disallowed_intents = disallowed_intents  # e.g. Intent.MESSAGE_CONTENT → close 4014
        self.interaction_ack_timeout = interaction_ack_timeout
        self.echo_bot_messages = echo_bot_messages  # Discord sends the bot its own MESSAGE_CREATE/UPDATE
        self.thread_archive_seconds = thread_archive_seconds
        self.installation_contexts: set[int] = set(installation_contexts)
        self.user_installs: set[int] = set()  # users who added the app to their account

        self._ids = _Snowflakes()
        self.recommended_shards = 1  # what GET /gateway/bot answers
        self._attachment_data: dict[int, tuple[bytes, str | None]] = {}  # CDN: (bytes, type) by attachment id
        self.attachment_downloads: list[int] = []
        self.bot_user = FakeUser(self._ids.next(), bot_name, bot=True)
        self.application_id = self.bot_user.id  # like every modern bot: application id == bot user id
        self.owner = FakeUser(self._ids.next(), "owner")

        self.users: dict[int, FakeUser] = {self.bot_user.id: self.bot_user, self.owner.id: self.owner}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, dict[str, Any]] = {}
        self.commands: dict[int | None, list[dict[str, Any]]] = {}  # None → global
        self.requests: list[RecordedRequest] = []
        self.ratelimited: list[RateLimitHit] = []
        self.typing: list[tuple[float, int]] = []
        self.reactions: list[tuple[float, int, str]] = []
        self.interactions: list[FakeInteraction] = []

        self._messages: dict[int, StoredMessage] = {}
        self._messages_by_channel: dict[int, list[StoredMessage]] = {}
        self._threads_by_message: dict[int, int] = {}
        self._dm_by_user: dict[int, int] = {}
        self._private_without_bot: set[int] = set()  # group DMs and DMs between people
        self.thread_members: dict[int, set[int]] = {}  # thread id → ids of the users in it (private threads)
        self._interactions: dict[int, FakeInteraction] = {}
        self._interactions_by_token: dict[str, FakeInteraction] = {}
        self._ephemeral_for: dict[int, int] = {}  # ephemeral message id → the one user who sees it
        self._archive_timers: dict[int, asyncio.TimerHandle] = {}  # active threads' auto-archive
        self._archiving: set[asyncio.Task[None]] = set()
        self.archived: list[tuple[float, int]] = []  # (time.time(), thread id) per automatic archive

        self.ratelimiter = RateLimiter(self.limits)
        self.gateway = _Gateway(self)
        self._rest = _RestApi(self)
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self._add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        for channel in self.channels.values():  # threads added before the loop ran
            if channel["type"] in ChannelType.THREADS:
                self._schedule_archive(channel)

    async def stop(self) -> None:
        for timer in self._archive_timers.values():
            timer.cancel()
        self._archive_timers.clear()
        for task in list(self._archiving):
            task.cancel()
        for conn in self.gateway.live_connections():
            conn.closed_by_server = True
            try:
                await asyncio.wait_for(conn.ws.close(code=1001, message=b"server stopping"), 1.0)
            except (TimeoutError, ConnectionError):
                pass
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base_url(self) -> str:
        return f"{self.base_url}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/", self.gateway.handle)
        app.router.add_get("/attachments/{attachment_id}/{filename}", self._serve_attachment)
        for spec in self._rest.routes():
            app.router.add_route(spec.method, API_PREFIX + spec.path, self._route_handler(spec))
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._route_handler(None))
        _add_control_routes(self, app)

    def _route_handler(self, spec: RouteSpec | None) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return await self._serve(spec, request)

        return handle

    # -- setup API ---------------------------------------------------------------------------------

    def add_user(
        self, name: str, *, bot: bool = False, roles: Iterable[int] = (), global_name: str | None = None
    ) -> FakeUser:
        """A user who is a member of every guild added so far (and of guilds added later)."""
        user = FakeUser(self._ids.next(), name, bot=bot, global_name=global_name)
        self.users[user.id] = user
        role_ids = list(roles)
        for guild in self.guilds.values():
            self._add_member(guild, user, [r for r in role_ids if r in guild.roles])
        return user

    def add_guild(
        self, name: str = "Test Guild", *, shard: tuple[int, int] | None = None, with_bot: bool = True
    ) -> FakeGuild:
        """A guild with @everyone, a managed bot role, the bot and all known users as members.
        `shard` (id, count): its id is chosen so that Discord routes it to that shard.
        `with_bot=False`: a guild the bot was never added to (no bot member or role, not in READY,
        no gateway events, its channels refused to the bot's REST calls with 403), where only
        users who installed the app to their account (``install_for_user``) can use its commands."""
        guild_id = self._ids.next()
        if shard is not None:
            shard_id, count = shard
            guild_id = (((guild_id >> 22) // count + 1) * count + shard_id) << 22  # a later millisecond
            self._ids.skip_to(guild_id)
        guild = FakeGuild(guild_id, name, owner_id=self.owner.id, created=time.time(), has_bot=with_bot)
        guild.roles[guild.id] = FakeRole(guild.id, "@everyone", Perm.MEMBER_DEFAULT)
        bot_role = FakeRole(self._ids.next(), self.bot_user.username, Perm.MEMBER_DEFAULT, 1, bot_id=self.bot_user.id)
        if with_bot:
            guild.roles[bot_role.id] = bot_role
        self.guilds[guild.id] = guild
        for user in self.users.values():
            if user is not self.bot_user:
                self._add_member(guild, user, [])
            elif with_bot:
                self._add_member(guild, user, [bot_role.id])
        return guild

    def add_role(self, guild: FakeGuild, name: str, *, permissions: int = 0) -> int:
        role = FakeRole(self._ids.next(), name, permissions, position=len(guild.roles))
        guild.roles[role.id] = role
        return role.id

    def add_text_channel(
        self, guild: FakeGuild, name: str, *, allow_threads: bool = True, allow_send: bool = True
    ) -> dict[str, Any]:
        channel_id = self._ids.next()
        channel = {
            "id": str(channel_id),
            "type": ChannelType.GUILD_TEXT,
            "guild_id": str(guild.id),
            "name": name,
            "position": len(guild.channel_ids),
            "parent_id": None,
            "topic": None,
            "nsfw": False,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "default_auto_archive_duration": 1440,
            "permission_overwrites": [],
            "flags": 0,
        }
        self.channels[channel_id] = channel
        guild.channel_ids.append(channel_id)
        self.set_channel_permissions(channel_id, allow_threads=allow_threads, allow_send=allow_send)
        return channel

    def add_thread(
        self, parent: Mapping[str, Any], name: str, *, private: bool = False, owner: FakeUser | None = None
    ) -> dict[str, Any]:
        """A pre-existing active thread (sent in GUILD_CREATE.threads), started by `owner` (the bot)."""
        thread_type = ChannelType.PRIVATE_THREAD if private else ChannelType.PUBLIC_THREAD
        parent_channel = self.channels[int(parent["id"])]
        thread = self._create_thread(parent_channel, name, thread_id=self._ids.next(), thread_type=thread_type)
        thread["owner_id"] = str((owner or self.bot_user).id)
        self.thread_members[int(thread["id"])] = {(owner or self.bot_user).id}
        return thread

    def set_channel_permissions(self, channel_id: int, *, allow_threads: bool = True, allow_send: bool = True) -> None:
        """Deny the bot thread creation (403 50013) and/or sending in a channel: the bot's member overwrite
        (other overwrites are kept). Nothing is dispatched; ``set_overwrite`` announces a change."""
        deny = 0
        if not allow_threads:
            deny |= Perm.CREATE_PUBLIC_THREADS | Perm.CREATE_PRIVATE_THREADS
        if not allow_send:
            deny |= Perm.SEND_MESSAGES | Perm.SEND_MESSAGES_IN_THREADS
        _put_overwrite(self.channels[int(channel_id)], self.bot_user.id, OverwriteType.MEMBER, 0, deny)

    def dm_channel_for(self, user: FakeUser) -> dict[str, Any]:
        channel_id = self._dm_by_user.get(user.id)
        if channel_id is None:
            channel_id = self._ids.next()
            self.channels[channel_id] = {
                "id": str(channel_id),
                "type": ChannelType.DM,
                "last_message_id": None,
                "recipients": [user.payload()],
                "flags": 0,
            }
            self._dm_by_user[user.id] = channel_id
        return self.channels[channel_id]

    def add_group_dm(self, owner: FakeUser, *others: FakeUser, name: str | None = None) -> dict[str, Any]:
        """A group DM of people (type 3) the bot is not in: no gateway events from it, 404 to the
        bot's REST calls; commands reach it only through user installs (context PRIVATE_CHANNEL)."""
        return self._private_channel(ChannelType.GROUP_DM, [owner, *others], owner=owner, name=name)

    def add_dm_between(self, user: FakeUser, other: FakeUser) -> dict[str, Any]:
        """A DM between two people (not the bot's): like a group DM for the bot."""
        return self._private_channel(ChannelType.DM, [user, other])

    def _private_channel(
        self, channel_type: int, members: Sequence[FakeUser], *, owner: FakeUser | None = None, name: str | None = None
    ) -> dict[str, Any]:
        channel_id = self._ids.next()
        channel: dict[str, Any] = {
            "id": str(channel_id),
            "type": channel_type,
            "last_message_id": None,
            "recipients": [member.payload() for member in members],
            "flags": 0,
        }
        if channel_type == ChannelType.GROUP_DM:
            channel.update(name=name, icon=None, owner_id=str((owner or members[0]).id))
        self.channels[channel_id] = channel
        self._private_without_bot.add(channel_id)
        return channel

    def install_for_user(self, user: FakeUser) -> None:
        """`user` adds the app to their account (the user install link): its global commands that
        allow USER_INSTALL follow them into every guild, group DM and DM."""
        if IntegrationType.USER_INSTALL not in self.installation_contexts:
            raise ValueError("the application does not support user installs (installation_contexts)")
        self.user_installs.add(user.id)

    # -- inspection API ----------------------------------------------------------------------------

    @property
    def ratelimited_count(self) -> int:
        return len(self.ratelimited)

    @property
    def identify_payload(self) -> dict[str, Any] | None:
        return self.gateway.identify_payload

    @property
    def connected(self) -> bool:
        return any(s.connected for s in self.gateway.sessions.values())

    def messages_in(self, channel_id: int | str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Messages of a channel or thread, oldest first (copies of the REST payloads).

        Ephemeral interaction replies are included (``flags & 64``); GET history omits them.
        """
        stored = self._messages_by_channel.get(int(channel_id), [])
        return [_copied(m.payload) for m in stored if include_deleted or not m.deleted]

    def stored_messages_in(self, channel_id: int | str) -> list[StoredMessage]:
        """The channel's or thread's live messages as stored, oldest first: no copies, for
        a caller polling many channels often (a benchmark) and changing nothing."""
        return [m for m in self._messages_by_channel.get(int(channel_id), []) if not m.deleted]

    def message(self, message_id: int | str) -> StoredMessage:
        return self._messages[int(message_id)]

    def components_of(self, message_id: int | str) -> list[dict[str, Any]]:
        """A message's ``components`` as stored (copies): its action rows, each with its buttons,
        every component numbered with an ``id`` as Discord does. ``[]`` when it has none."""
        return _copied(self._messages[int(message_id)].payload["components"])

    def buttons_of(self, message_id: int | str) -> list[dict[str, Any]]:
        """The buttons of a message (copies), row by row: ``[b["custom_id"] for b in ...]``."""
        return buttons_in(self.components_of(message_id))

    def messages_with_buttons(self, channel_id: int | str) -> list[dict[str, Any]]:
        """The live messages of a channel or thread that have at least one button, oldest first
        (copies of the REST payloads; ephemeral ones included, like ``messages_in``)."""
        return [m for m in self.messages_in(channel_id) if buttons_in(m["components"])]

    def messages_seen_by(self, channel_id: int | str, user: FakeUser) -> list[dict[str, Any]]:
        """``messages_in`` as `user` sees the channel: ephemeral replies only when they are theirs."""
        return [
            m
            for m in self.messages_in(channel_id)
            if not m["flags"] & MessageFlag.EPHEMERAL or self._ephemeral_for.get(int(m["id"])) == user.id
        ]

    def edit_history(self, message_id: int | str) -> list[tuple[float, str]]:
        """(time.time(), content) for the creation and every later content change."""
        return list(self._messages[int(message_id)].history)

    def thread_for_message(self, message_id: int | str) -> dict[str, Any] | None:
        thread_id = self._threads_by_message.get(int(message_id))
        return self.channels.get(thread_id) if thread_id is not None else None

    def requests_for(self, route: str) -> list[RecordedRequest]:
        """Recorded requests whose route key (e.g. ``"PATCH /channels/{channel_id}/messages/{message_id}"``) matches."""
        return [r for r in self.requests if r.route == route]

    def original_response(self, interaction: FakeInteraction) -> dict[str, Any] | None:
        if interaction.original_message_id is None:
            return None
        return _copied(self._messages[interaction.original_message_id].payload)

    async def wait_for(
        self, predicate: Callable[[], T | Awaitable[T]], timeout: float = 5.0, *, interval: float = 0.01
    ) -> T:
        """Poll ``predicate`` (sync or async) until it returns something truthy; return that value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value  # type: ignore[return-value]
            if loop.time() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            await asyncio.sleep(interval)

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Until a gateway session is identified (or resumed) and its connection is open."""
        await self.wait_for(lambda: self.connected, timeout)

    # -- test-driven events ------------------------------------------------------------------------

    async def dispatch(self, event_name: str, data: dict[str, Any]) -> None:
        """Send a raw DISPATCH to every session (intent filtering applies)."""
        await self.gateway.dispatch(event_name, data)

    async def remove_bot_from_guild(self, guild: FakeGuild) -> None:
        """The bot is kicked or its app removed from `guild`: GUILD_DELETE without `unavailable`; it is
        no member any more and its managed role is gone (its REST calls there get 403 50001)."""
        await self.gateway.dispatch("GUILD_DELETE", {"id": str(guild.id)})
        guild.has_bot = False
        guild.members.pop(self.bot_user.id, None)
        for role in [r for r in guild.roles.values() if r.bot_id == self.bot_user.id]:
            del guild.roles[role.id]

    async def add_bot_to_guild(self, guild: FakeGuild) -> None:
        """The bot is (re-)invited to `guild`: a member again with a new managed role, and GUILD_CREATE
        with everything there (channels, overwrites, threads, members)."""
        bot_role = FakeRole(self._ids.next(), self.bot_user.username, Perm.MEMBER_DEFAULT, 1, bot_id=self.bot_user.id)
        guild.roles[bot_role.id] = bot_role
        self._add_member(guild, self.bot_user, [bot_role.id])
        guild.has_bot = True
        payload = self._guild_create_payload(guild)
        del payload["unavailable"]  # a join, not a guild coming back after an outage (discord.py: guild_join)
        await self.gateway.dispatch("GUILD_CREATE", payload)

    async def guild_outage(self, guild: FakeGuild) -> None:
        """`guild` becomes unavailable (a Discord outage): GUILD_DELETE with `unavailable: true`."""
        await self.gateway.dispatch("GUILD_DELETE", {"id": str(guild.id), "unavailable": True})

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

    async def delete_thread(self, thread: Mapping[str, Any]) -> None:
        """A moderator deletes a thread: it and its messages are gone (404), and Discord says so with one
        THREAD_DELETE (``id``, ``guild_id``, ``parent_id``, ``type``), no MESSAGE_DELETE for its messages."""
        stored = self.channels.pop(int(thread["id"]))
        for message in self._messages.values():
            if message.channel_id == int(thread["id"]):
                message.deleted = True
        self.thread_members.pop(int(thread["id"]), None)
        keys = ("id", "guild_id", "parent_id", "type")
        await self.dispatch("THREAD_DELETE", {key: stored[key] for key in keys})

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

    async def create_role(self, guild: FakeGuild, name: str, *, permissions: int = 0) -> int:
        """``add_role`` announced to a connected bot (GUILD_ROLE_CREATE); returns the role id."""
        role_id = self.add_role(guild, name, permissions=permissions)
        await self.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": guild.roles[role_id].payload()})
        return role_id

    async def set_role_permissions(self, guild: FakeGuild, role_id: int, permissions: int) -> None:
        """A role's guild-wide permissions change (@everyone's id is the guild's): GUILD_ROLE_UPDATE."""
        role = guild.roles[int(role_id)]
        role.permissions = permissions
        await self.dispatch("GUILD_ROLE_UPDATE", {"guild_id": str(guild.id), "role": role.payload()})

    async def set_member_roles(self, guild: FakeGuild, user: FakeUser, role_ids: Iterable[int]) -> None:
        """`user`'s roles in `guild` become `role_ids`: GUILD_MEMBER_UPDATE (sent with the Members intent
        only; without it the bot learns the roles from the member object of their next message or
        interaction)."""
        member = guild.members[user.id]
        roles = [int(r) for r in role_ids]
        unknown = [r for r in roles if r not in guild.roles or r == guild.id]
        if unknown:
            raise LookupError(f"no roles {unknown} to give in {guild.name!r} (@everyone is implicit)")
        member.role_ids = roles
        await self.dispatch("GUILD_MEMBER_UPDATE", {"guild_id": str(guild.id), **member.payload()})

    async def create_text_channel(
        self, guild: FakeGuild, name: str, *, overwrites: Iterable[Mapping[str, Any]] = ()
    ) -> dict[str, Any]:
        """A text channel made while the bot is connected (CHANNEL_CREATE), with `overwrites` (as
        ``overwrite(...)`` makes them)."""
        channel = self.add_text_channel(guild, name)
        channel["permission_overwrites"] = [dict(o) for o in overwrites]
        await self.dispatch("CHANNEL_CREATE", _copied(channel))
        return channel

    async def set_overwrite(
        self, channel: Mapping[str, Any], target: FakeUser | int, *, allow: int = 0, deny: int = 0
    ) -> dict[str, Any]:
        """Set a channel's permission overwrite for a role (its id; @everyone's is the guild's id) or a
        member (a FakeUser); nothing allowed or denied removes it. Announced with CHANNEL_UPDATE (the
        whole channel, ``permission_overwrites`` included); returns the channel."""
        stored = self.channels[int(channel["id"])]
        if stored["type"] in ChannelType.THREADS:
            raise ValueError("threads have no overwrites of their own: set them on the parent channel")
        if isinstance(target, FakeUser):
            _put_overwrite(stored, target.id, OverwriteType.MEMBER, allow, deny)
        else:
            _put_overwrite(stored, int(target), OverwriteType.ROLE, allow, deny)
        await self.dispatch("CHANNEL_UPDATE", _copied(stored))
        return stored

    async def make_private_channel(
        self,
        channel: Mapping[str, Any],
        *,
        roles: Iterable[int] = (),
        users: Iterable[FakeUser] = (),
        bot_can_read: bool = True,
    ) -> dict[str, Any]:
        """Make a channel private as Discord's "Private Channel" switch does: @everyone denied View
        Channel, `roles` and `users` allowed View Channel and Read Message History, and the bot too
        unless `bot_can_read` is False. One CHANNEL_UPDATE; returns the channel."""
        stored = self.channels[int(channel["id"])]
        guild = self._guild_of(stored)
        if guild is None or stored["type"] in ChannelType.THREADS:
            raise ValueError("only a guild channel (not a thread) can be made private")
        _put_overwrite(stored, guild.id, OverwriteType.ROLE, 0, Perm.VIEW_CHANNEL)
        for role_id in roles:
            _put_overwrite(stored, int(role_id), OverwriteType.ROLE, Perm.READ, 0)
        for user in users:
            _put_overwrite(stored, user.id, OverwriteType.MEMBER, Perm.READ, 0)
        bot = next((o for o in stored["permission_overwrites"] if o["id"] == str(self.bot_user.id)), None)
        allow, deny = (int(bot["allow"]), int(bot["deny"])) if bot else (0, 0)
        if bot_can_read:
            allow, deny = allow | Perm.READ, deny & ~Perm.READ
        else:
            allow, deny = allow & ~Perm.READ, deny | Perm.VIEW_CHANNEL
        _put_overwrite(stored, self.bot_user.id, OverwriteType.MEMBER, allow, deny)
        await self.dispatch("CHANNEL_UPDATE", _copied(stored))
        return stored

    async def create_user_thread(
        self,
        parent: Mapping[str, Any],
        owner: FakeUser,
        name: str,
        *,
        private: bool = False,
        members: Iterable[FakeUser] = (),
        from_message_id: int | str | None = None,
    ) -> dict[str, Any]:
        """A person starts a thread in a text channel: public (type 11; from one of the channel's
        messages with `from_message_id`, then the thread's id is that message's) or private (type 12,
        seen by its `owner`, `members` and whoever may Manage Threads; include ``fake.bot_user`` in
        `members` for the bot to get its events). THREAD_CREATE with ``newly_created``; returns it."""
        stored_parent = self.channels[int(parent["id"])]
        thread_type = ChannelType.PRIVATE_THREAD if private else ChannelType.PUBLIC_THREAD
        starter = self._messages.get(int(from_message_id)) if from_message_id is not None else None
        if from_message_id is not None and (starter is None or starter.channel_id != int(parent["id"]) or private):
            raise LookupError(f"a public thread can start from a message of channel {parent['id']} only")
        thread_id = starter.id if starter is not None else self._ids.next()
        thread = self._create_thread(stored_parent, name, thread_id=thread_id, thread_type=thread_type)
        thread["owner_id"] = str(owner.id)
        self.thread_members[thread_id] = {owner.id, *(m.id for m in members)}
        if starter is not None:
            self._threads_by_message[starter.id] = thread_id
            starter.payload["thread"] = _copied(thread)
            starter.payload["flags"] |= MessageFlag.HAS_THREAD
        await self._announce_thread(thread)
        return thread

    async def send_slash_command(
        self, channel_id: int | str, user: FakeUser, name: str, options: Mapping[str, Any] | None = None
    ) -> FakeInteraction:
        """A user runs ``/name`` with `options` (e.g. ``{"name": "foo"}`` for ``/model name:foo``):
        dispatches INTERACTION_CREATE (type 2) for a registered CHAT_INPUT command.

        Options are checked against the registered ones as Discord's client does: only declared
        names, values of the declared type (USER: a FakeUser or id; CHANNEL: a channel or id;
        ATTACHMENT: (filename, content type, bytes)), one of the declared choices, every required
        option present. A sub-command is given as ``{"sub": {...its options...}}``."""
        _check_channel_then_user(channel_id, user)
        channel = self._require_channel(int(channel_id))
        guild = self._guild_of(channel)
        command = self._find_command(name, guild)
        data = self._command_data(command)
        resolved: dict[str, Any] = {}
        declared = command.get("options") or []
        chosen = self._command_options(declared, options or {}, guild, resolved, f"/{name}")
        if chosen:
            data["options"] = chosen
        if resolved:
            data["resolved"] = resolved
        return await self._deliver_interaction(channel, user, command, data)

    async def send_message_command(
        self, channel_id: int | str, user: FakeUser, name: str, target_message_id: int | str
    ) -> FakeInteraction:
        """A user picks the message command `name` (Apps → name) on a message of the channel:
        dispatches INTERACTION_CREATE (type 2) with ``data: {id, name, type: 3, target_id,
        resolved: {messages: {target_id: <the full message: author, content, attachments, ...>}}}``.
        The bot answers it like a slash command (callbacks, follow-ups); its reply is a message of
        type 23 whose ``interaction_metadata`` names the target."""
        _check_channel_then_user(channel_id, user)
        channel = self._require_channel(int(channel_id))
        target = self._messages.get(int(target_message_id))
        if target is None or target.deleted or target.channel_id != int(channel["id"]):
            raise LookupError(f"no message {target_message_id} in channel {channel_id} to run {name!r} on")
        command = self._find_command(name, self._guild_of(channel), CommandType.MESSAGE)
        data = self._command_data(command)
        data["target_id"] = str(target.id)
        data["resolved"] = {"messages": {str(target.id): _copied(target.payload)}}
        return await self._deliver_interaction(channel, user, command, data, target_id=target.id)

    async def send_autocomplete(
        self,
        channel_id: int | str,
        user: FakeUser,
        command_name: str,
        options: Mapping[str, Any],
        *,
        focused: str | None = None,
        timeout: float = 5.0,
    ) -> list[dict[str, Any]]:
        """A user types into an autocomplete option of ``/command_name``: dispatches
        INTERACTION_CREATE of type 4 (APPLICATION_COMMAND_AUTOCOMPLETE) whose options carry what
        is filled in so far, the `focused` one (default: the last given) marked ``focused: true``
        with its partial text as a string. Returns the ``choices`` the bot answered with
        (callback type 8: at most 25, names and string values of 1-100 characters, checked like
        Discord). Raises InteractionCallbackRejected when Discord would have refused the answer,
        TimeoutError when there is none."""
        _check_channel_then_user(channel_id, user)
        if not options:
            raise ValueError("autocomplete needs the option being typed into")
        channel = self._require_channel(int(channel_id))
        guild = self._guild_of(channel)
        command = self._find_command(command_name, guild)
        focus = focused if focused is not None else _last_leaf(options)
        data = self._command_data(command)
        resolved: dict[str, Any] = {}
        declared = command.get("options") or []
        data["options"] = self._command_options(declared, options, guild, resolved, f"/{command_name}", focused=focus)
        if _focused_option(data["options"]) is None:
            raise LookupError(f"/{command_name}: no option {focus!r} among {list(options)} to focus")
        if resolved:
            data["resolved"] = resolved
        interaction = await self._deliver_interaction(
            channel, user, command, data, interaction_type=InteractionType.APPLICATION_COMMAND_AUTOCOMPLETE
        )
        await self.wait_for(lambda: interaction.choices is not None or interaction.rejected, timeout)
        if interaction.choices is None:
            raise InteractionCallbackRejected(interaction.rejected[0])
        return interaction.choices

    async def click_button(self, message_id: int | str, custom_id: str, user: FakeUser) -> FakeInteraction:
        """`user` clicks the button `custom_id` of a message: dispatches INTERACTION_CREATE of
        type 3 (MESSAGE_COMPONENT) with ``data: {component_type: 2, custom_id, id}`` (``id``: the
        button's numeric component id), ``message``: the full message with its components, and
        the fields every interaction has (``member`` or ``user``, ``channel``, ``guild_id``,
        ``token``, ``app_permissions``, ``entitlements``, ``context``,
        ``authorizing_integration_owners``, ``locale``, ``guild_locale``).

        The bot answers it within 3 s, once: 4 a message (``flags: 64``: only the clicker sees
        it), 5 deferred, 6 acknowledged with nothing visible, 7 the clicked message edited; after
        6 or 7 ``@original`` is the clicked message. The returned FakeInteraction records the
        answer (``callback_type``, ``response_data``, ``ephemeral``, ``original_message_id``).

        What Discord's client would not let a person do raises instead: LookupError for a
        message that does not exist (or was deleted), a channel `user` cannot see, someone
        else's ephemeral message, a custom_id the message has no button for; ValueError for a
        disabled button."""
        if isinstance(message_id, FakeUser) or not isinstance(user, FakeUser) or not isinstance(custom_id, str):
            raise TypeError("pass the message id, then the button's custom_id, then the FakeUser")
        stored = self._messages.get(int(message_id))
        if stored is None or stored.deleted:
            raise LookupError(f"no message {message_id} to click a button on")
        channel = self._require_channel(stored.channel_id)
        guild = self._guild_of(channel)
        context, where = self._context(channel, guild)
        if not self._user_sees(channel, guild, user):
            raise LookupError(f"{user.username} cannot see {where} (channel {channel['id']}) to click a button there")
        if stored.flags & MessageFlag.EPHEMERAL and self._ephemeral_for.get(stored.id) != user.id:
            raise LookupError(f"message {stored.id} is ephemeral and not {user.username}'s: they cannot see it")
        buttons = buttons_in(stored.payload["components"])
        button = next((b for b in buttons if b.get("custom_id") == custom_id), None)
        if button is None:
            have = [b.get("custom_id") for b in buttons if b.get("custom_id")]
            raise LookupError(f"message {stored.id} has no button {custom_id!r} (its buttons: {have})")
        if button.get("disabled"):
            raise ValueError(f"button {custom_id!r} of message {stored.id} is disabled: it cannot be clicked")
        data: dict[str, Any] = {"component_type": ComponentType.BUTTON, "custom_id": custom_id}
        if button.get("id"):
            data["id"] = button["id"]
        metadata = stored.payload.get("interaction_metadata") or {}
        owners = dict(metadata.get("authorizing_integration_owners") or {})
        if not owners and guild is not None and guild.has_bot:
            owners[str(IntegrationType.GUILD_INSTALL)] = str(guild.id)
        elif not owners and context == ContextType.BOT_DM:
            owners[str(IntegrationType.GUILD_INSTALL)] = "0"
        extra = {
            "message": _copied(stored.payload),
            "context": context,
            "authorizing_integration_owners": owners,
            "app_permissions": str(self._app_permissions(channel, guild, context)),
        }
        return await self._create_interaction(
            channel,
            guild,
            user,
            data,
            InteractionType.MESSAGE_COMPONENT,
            extra,
            command_name="",
            custom_id=custom_id,
            message_id=stored.id,
        )

    async def submit_modal(self, shown: FakeInteraction, values: Mapping[str, str] | None = None) -> FakeInteraction:
        """The person `shown` a modal (the bot answered `shown` with callback type 9) fills it in and
        presses Submit: dispatches INTERACTION_CREATE of type 5 (MODAL_SUBMIT) with ``data:
        {custom_id, components: [{type: 1, id, components: [{type: 4, id, custom_id, value}]}]}``,
        a fresh id and token, the same user, channel and guild as `shown` (``member`` with their
        permissions now), its ``context`` and ``authorizing_integration_owners``, and ``message``
        when the modal answered a button click. `values` by text input custom_id; an input left
        out is submitted with what it was prefilled with (its ``value``, else empty).

        The bot answers it like any interaction, within 3 s, once (4, 5; 6 or 7 for a modal shown
        on a button click), not with another modal (400 40060); its reply's
        ``interaction_metadata`` has ``triggering_interaction_metadata``. What Discord's client
        would not let a person submit raises: LookupError when `shown` has no modal or it was
        submitted already (it closed), or for a custom_id the modal has no input for; ValueError
        for a value longer than the input's max_length, shorter than its min_length or, in a
        required input, empty."""
        modal = shown.modal
        if modal is None:
            raise LookupError(f"interaction {shown.id} was not answered with a modal (callback {shown.callback_type})")
        if shown.modal_submitted:
            raise LookupError(f"the modal shown for interaction {shown.id} was submitted already: it is closed")
        rows = number_components(modal["components"])
        given = dict(values or {})
        unknown = set(given) - {row["components"][0]["custom_id"] for row in rows}
        if unknown:
            raise LookupError(f"the modal {modal['title']!r} has no text input {sorted(unknown)}")
        submitted = [_submitted_row(row, given) for row in rows]
        shown.modal_submitted = True
        channel = self._require_channel(shown.channel_id)
        guild = self._guild_of(channel)
        data = {"custom_id": modal["custom_id"], "components": submitted}
        extra = {
            key: _copied(shown.payload[key]) for key in ("context", "authorizing_integration_owners", "app_permissions")
        }
        clicked = self._messages.get(shown.message_id or 0)
        if shown.interaction_type == InteractionType.MESSAGE_COMPONENT and clicked is not None:
            extra["message"] = _copied(clicked.payload)
        return await self._create_interaction(
            channel,
            guild,
            shown.user,
            data,
            InteractionType.MODAL_SUBMIT,
            extra,
            command_name=shown.command_name,
            command_type=shown.command_type,
            custom_id=str(modal["custom_id"]),
            message_id=shown.message_id,
            triggered_by=shown.id,
        )

    def can_view(self, channel: Mapping[str, Any], user: FakeUser) -> bool:
        """Whether `user` can see `channel` (a guild channel or thread: View Channel from roles and
        overwrites; a private thread: a member of it, or may Manage Threads; a DM: a recipient)."""
        return self._user_sees(self.channels[int(channel["id"])], self._guild_of(channel), user)

    def _user_sees(self, channel: Mapping[str, Any], guild: FakeGuild | None, user: FakeUser) -> bool:
        """Whether `user` can see `channel`: a member of its guild with VIEW_CHANNEL there, the
        person of the bot's DM, or a recipient of a (group) DM."""
        if guild is not None:
            return user.id in guild.members and bool(self.permissions_for(channel, user.id) & Perm.VIEW_CHANNEL)
        if int(channel["id"]) in self._dm_by_user.values():
            return self._dm_by_user.get(user.id) == int(channel["id"])
        return any(r.get("id") == str(user.id) for r in channel.get("recipients") or [])

    async def disconnect_gateway(self, code: int | None = 4000, *, timeout: float = 5.0) -> None:
        """Close every live gateway connection with ``code``; ``None`` drops TCP (abnormal, 1006).

        Codes discord.py resumes after: anything but 1000, 4004 and 4010-4014.  Events dispatched
        while the client is away are buffered and replayed on RESUME.
        """
        await self.gateway.disconnect(code, timeout)

    async def send_reconnect(self) -> None:
        """Op 7 RECONNECT: discord.py closes and resumes."""
        await self.gateway.send_op(Op.RECONNECT, None)

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """Op 9 INVALID_SESSION: discord.py re-identifies (or resumes when ``resumable``)."""
        await self.gateway.invalidate(resumable=resumable)

    def inject_ratelimit(
        self, route: str | None = None, *, count: int = 1, retry_after: float = 0.25, is_global: bool = False
    ) -> None:
        """Answer the next ``count`` requests to ``route`` (a route key; None = any) with 429."""
        self.ratelimiter.inject(route, count=count, retry_after=retry_after, is_global=is_global)

    # -- request pipeline --------------------------------------------------------------------------

    async def _serve(self, spec: RouteSpec | None, request: web.Request) -> web.Response:
        record = RecordedRequest(
            method=request.method,
            path=request.path[len(API_PREFIX) :],
            route=spec.key if spec else f"{request.method} {request.path[len(API_PREFIX) :]}",
            query=dict(request.query),
            json=None,
            files=[],
            headers=dict(request.headers),
            time=time.time(),
            connection=request.transport.get_extra_info("peername") if request.transport else None,
        )
        self.requests.append(record)
        headers: dict[str, str] = {"Via": "1.1 google"}
        try:
            record.json, record.files = await read_body(request)
            if spec is None:
                raise not_found_route()
            if spec.auth:
                self._check_auth(request)
            call = RestCall(request, dict(request.match_info), request.query, record.json, record.files)
            headers.update(self._check_rate_limits(spec, call))
            result = await spec.handler(call)
            status, payload = (204, None) if result is NO_CONTENT else (200, result)
        except DiscordHTTPError as error:
            status, payload = error.status, error.body()
        except RateLimitExceeded as limited:
            status, payload = 429, limited.body()
            headers.update(limited.headers())
        record.status, record.response, record.finished = status, payload, time.time()
        return json_response(status, payload, headers)

    def _check_auth(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bot {self.token}":
            raise unauthorized()

    def _check_rate_limits(self, spec: RouteSpec, call: RestCall) -> dict[str, str]:
        """Injected 429s, then the global limit, then the route bucket; returns the bucket headers."""
        self._raise_injected(spec)
        bucket_name, rate = self._bucket_for(spec)
        major = _major_parameter(call.params)
        try:
            if spec.global_limit:
                self.ratelimiter.check_global(self.token)
            if rate is None:
                return {}
            return self.ratelimiter.check_bucket(bucket_name, rate, major).headers()
        except RateLimitExceeded as limited:
            self.ratelimited.append(
                RateLimitHit(time.time(), spec.key, bucket_name, major, limited.retry_after, limited.is_global)
            )
            raise

    def _raise_injected(self, spec: RouteSpec) -> None:
        injected = self.ratelimiter.take_injected(spec.key)
        if injected is None:
            return
        self.ratelimited.append(
            RateLimitHit(time.time(), spec.key, "injected", "", injected.retry_after, injected.is_global, True)
        )
        raise RateLimitExceeded(injected.retry_after, is_global=injected.is_global, status=None)

    def _bucket_for(self, spec: RouteSpec) -> tuple[str, RateLimit | None]:
        if spec.bucket is not None:
            return spec.bucket, getattr(self.limits, spec.bucket)
        return spec.key, self.limits.default

    # -- state helpers used by handlers ------------------------------------------------------------

    def _require_channel(self, channel_id: int) -> dict[str, Any]:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise unknown_channel()
        return channel

    def _channel_for_bot(self, channel_id: int) -> dict[str, Any]:
        """A channel the bot's own REST call is about: one of a guild it is not in is refused
        (403 Missing Access), a (group) DM it is not in does not exist for it (404)."""
        channel = self._require_channel(channel_id)
        guild = self._guild_of(channel)
        if guild is not None and not (guild.has_bot and self.permissions_for(channel, self.bot_user.id)):
            raise missing_access()  # not in the guild, or no View Channel there
        if channel_id in self._private_without_bot:
            raise unknown_channel()
        return channel

    def bot_sees(self, channel: Mapping[str, Any]) -> bool:
        """Whether the bot is in `channel`: its guild has the bot, or it is the bot's own DM."""
        guild = self._guild_of(channel)
        if guild is not None:
            return guild.has_bot
        return int(channel["id"]) not in self._private_without_bot

    def bot_receives(self, event: str, data: Mapping[str, Any]) -> bool:
        """Whether Discord sends the bot this gateway event: not from a guild it is not in, nor
        from a (group) DM it is not in. Interactions reach it from anywhere its commands do."""
        if event == "INTERACTION_CREATE":
            return True
        guild_id = data.get("guild_id")
        if guild_id is not None:
            guild = self.guilds.get(int(guild_id))
            return guild is None or (guild.has_bot and self._bot_views_channel_of(event, data))
        channel_id = data.get("channel_id") or (data.get("id") if event.startswith("CHANNEL_") else None)
        return channel_id is None or int(channel_id) not in self._private_without_bot

    def _bot_views_channel_of(self, event: str, data: Mapping[str, Any]) -> bool:
        """Messages, typing and reactions of a channel the bot cannot view, and threads it cannot see,
        are not sent to it (channels themselves are: a bot gets every channel of its guilds)."""
        if event.startswith(("MESSAGE_", "TYPING_")):
            channel = self.channels.get(int(data.get("channel_id") or 0))
        elif event.startswith("THREAD_") and "type" in data:
            channel = self.channels.get(int(data.get("id") or 0))
        else:
            return True
        return channel is None or bool(self.permissions_for(channel, self.bot_user.id) & Perm.VIEW_CHANNEL)

    def _require_user(self, user_id: int) -> FakeUser:
        user = self.users.get(user_id)
        if user is None:
            raise unknown_user()
        return user

    def _guild_of(self, channel: Mapping[str, Any]) -> FakeGuild | None:
        guild_id = channel.get("guild_id")
        return self.guilds.get(int(guild_id)) if guild_id is not None else None

    def _parent_id(self, channel: Mapping[str, Any]) -> int:
        """The channel whose permissions apply (a thread's parent)."""
        if channel["type"] in ChannelType.THREADS:
            return int(channel["parent_id"])
        return int(channel["id"])

    def _check_can_send(self, channel: Mapping[str, Any]) -> None:
        needed = Perm.SEND_MESSAGES_IN_THREADS if channel["type"] in ChannelType.THREADS else Perm.SEND_MESSAGES
        self._require_permission(channel, needed)

    def _check_can_create_threads(self, channel: Mapping[str, Any], thread_type: int) -> None:
        private = thread_type == ChannelType.PRIVATE_THREAD
        self._require_permission(channel, Perm.CREATE_PRIVATE_THREADS if private else Perm.CREATE_PUBLIC_THREADS)

    def _require_permission(self, channel: Mapping[str, Any], needed: int) -> None:
        if self._guild_of(channel) is not None and not self.permissions_for(channel, self.bot_user.id) & needed:
            raise missing_permissions()

    def permissions_for(self, channel: Mapping[str, Any], user_id: int) -> int:
        """`user_id`'s permissions in a guild channel or thread (a thread has its parent's overwrites; a
        private thread is seen by its members and those who may Manage Threads only); 0 for a non-member."""
        guild = self._guild_of(channel)
        if guild is None or user_id not in guild.members:
            return 0
        parent = self.channels[self._parent_id(channel)]
        permissions = guild.permissions_in(parent.get("permission_overwrites") or [], user_id)
        if channel["type"] == ChannelType.PRIVATE_THREAD and not permissions & Perm.MANAGE_THREADS:
            if user_id not in self.thread_members.get(int(channel["id"]), set()):
                return 0
        return permissions

    def _add_member(self, guild: FakeGuild, user: FakeUser, role_ids: list[int]) -> None:
        guild.members[user.id] = FakeMember(user, role_ids, joined_at=time.time())

    # -- messages ----------------------------------------------------------------------------------

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
    ) -> StoredMessage:
        now = time.time()
        message_id = self._ids.next()
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

    # -- threads -----------------------------------------------------------------------------------

    def _create_thread(
        self,
        parent: Mapping[str, Any],
        name: str,
        *,
        thread_id: int,
        thread_type: int,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = body or {}
        now = iso_timestamp(time.time())
        thread = {
            "id": str(thread_id),
            "type": thread_type,
            "guild_id": parent["guild_id"],
            "parent_id": parent["id"],
            "owner_id": str(self.bot_user.id),
            "name": name,
            "last_message_id": None,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "rate_limit_per_user": body.get("rate_limit_per_user") or 0,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": body.get("auto_archive_duration") or 1440,
                "archive_timestamp": now,
                "locked": False,
                "invitable": body.get("invitable", True),
                "create_timestamp": now,
            },
        }
        self.channels[thread_id] = thread
        self.thread_members[thread_id] = {self.bot_user.id}
        self._schedule_archive(thread)
        return thread

    async def _announce_thread(self, thread: dict[str, Any]) -> None:
        await self.dispatch("THREAD_CREATE", {**_copied(thread), "newly_created": True})

    def archive_after(self, thread: Mapping[str, Any]) -> float:
        """Seconds without a new message after which `thread` is archived."""
        if self.thread_archive_seconds is not None:
            return self.thread_archive_seconds
        return float(thread["thread_metadata"]["auto_archive_duration"]) * 60.0

    def _schedule_archive(self, thread: dict[str, Any]) -> None:
        """(Re)start an active thread's idle time; without a running loop, start() does it."""
        thread_id = int(thread["id"])
        timer = self._archive_timers.pop(thread_id, None)
        if timer is not None:
            timer.cancel()
        if thread["thread_metadata"]["archived"]:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._archive_timers[thread_id] = loop.call_later(self.archive_after(thread), self._archive_due, thread_id)

    def _archive_due(self, thread_id: int) -> None:
        self._archive_timers.pop(thread_id, None)
        task = asyncio.ensure_future(self.archive_thread(thread_id, automatic=True))
        self._archiving.add(task)
        task.add_done_callback(self._archiving.discard)

    async def archive_thread(self, thread_id: int | str, *, automatic: bool = False) -> dict[str, Any]:
        """Archive a thread now (as its idle time running out does) and announce it with
        THREAD_UPDATE; returns the thread."""
        thread = self.channels[int(thread_id)]
        metadata = thread["thread_metadata"]
        timer = self._archive_timers.pop(int(thread_id), None)
        if timer is not None:
            timer.cancel()
        if not metadata["archived"]:
            metadata["archived"] = True
            metadata["archive_timestamp"] = iso_timestamp(time.time())
            if automatic:
                self.archived.append((time.time(), int(thread_id)))
            await self.dispatch("THREAD_UPDATE", _copied(thread))
        return thread

    async def _unarchive_for_message(self, channel: dict[str, Any]) -> None:
        """A new message in an archived thread unarchives it first, announced with THREAD_UPDATE."""
        if channel["type"] not in ChannelType.THREADS or not channel["thread_metadata"]["archived"]:
            return
        metadata = channel["thread_metadata"]
        metadata["archived"] = False
        metadata["archive_timestamp"] = iso_timestamp(time.time())
        self._schedule_archive(channel)
        await self.dispatch("THREAD_UPDATE", _copied(channel))

    def _check_active(self, channel: Mapping[str, Any]) -> None:
        """Editing messages, reacting or joining: refused in an archived thread."""
        if channel["type"] in ChannelType.THREADS and channel["thread_metadata"]["archived"]:
            raise thread_archived()

    # -- commands and interactions -----------------------------------------------------------------

    def _assign_command_ids(self, scope: int | None, commands: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Bulk overwrite: keep ids of commands with the same (name, type), like Discord. Omitted
        (or null) ``integration_types`` become the application's installation contexts."""
        existing = {(c["name"], c.get("type", 1)): c for c in self.commands.get(scope, [])}
        installs = sorted(self.installation_contexts) if scope is None else [IntegrationType.GUILD_INSTALL]
        stored = []
        for command in commands:
            previous = existing.get((command["name"], command.get("type", 1)))
            entry: dict[str, Any] = {
                "type": 1,
                "description": "",
                "options": [],
                "default_member_permissions": None,
                "dm_permission": True,
                "nsfw": False,
                "contexts": None,
                **_copied(command),
                "id": previous["id"] if previous else str(self._ids.next()),
                "application_id": str(self.application_id),
                "version": str(self._ids.next()),
            }
            if entry.get("integration_types") is None:
                entry["integration_types"] = installs
            if entry["default_member_permissions"] is not None:  # Discord answers a string of bits
                entry["default_member_permissions"] = str(int(entry["default_member_permissions"]))
            if scope is not None:
                entry["guild_id"] = str(scope)
            stored.append(entry)
        return stored

    def _find_command(
        self, name: str, guild: FakeGuild | None, command_type: int = CommandType.CHAT_INPUT
    ) -> dict[str, Any]:
        scopes: list[int | None] = ([guild.id] if guild and guild.has_bot else []) + [None]
        for scope in scopes:
            for command in self.commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == command_type:
                    return command
        kind = {CommandType.CHAT_INPUT: f"/{name}", CommandType.MESSAGE: f"message command {name!r}"}
        described = kind.get(command_type, f"command {name!r} of type {command_type}")
        raise LookupError(f"{described} is not registered (global or in this guild); sync the command tree first")

    @staticmethod
    def _command_data(command: Mapping[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {"id": command["id"], "name": command["name"], "type": command.get("type", 1)}
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return data

    async def _deliver_interaction(
        self,
        channel: Mapping[str, Any],
        user: FakeUser,
        command: Mapping[str, Any],
        data: dict[str, Any],
        *,
        interaction_type: int = InteractionType.APPLICATION_COMMAND,
        target_id: int | None = None,
    ) -> FakeInteraction:
        """Record an interaction and dispatch it as INTERACTION_CREATE, like Discord does when a
        person runs a command (or types into an autocomplete option). Not in a guild channel the
        person cannot see: LookupError (Discord's client shows them nothing there)."""
        guild = self._guild_of(channel)
        if guild is not None and not self._user_sees(channel, guild, user):
            raise LookupError(f"{user.username} cannot see channel {channel['id']} to use {command['name']!r} there")
        context, owners = self._authorize(channel, guild, user, command)
        extra = {
            "context": context,
            "authorizing_integration_owners": owners,
            "app_permissions": str(self._app_permissions(channel, guild, context)),
        }
        return await self._create_interaction(
            channel,
            guild,
            user,
            data,
            interaction_type,
            extra,
            command_name=str(command["name"]),
            command_type=int(command.get("type", 1)),
            target_id=target_id,
        )

    async def _create_interaction(
        self,
        channel: Mapping[str, Any],
        guild: FakeGuild | None,
        user: FakeUser,
        data: dict[str, Any],
        interaction_type: int,
        extra: Mapping[str, Any],
        **fields: Any,
    ) -> FakeInteraction:
        """A new interaction (fresh id and token) with `extra` in its payload, recorded and dispatched as
        INTERACTION_CREATE; `fields` are the FakeInteraction's own (command_name, custom_id, …)."""
        interaction_id = self._ids.next()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
        payload = self._interaction_payload(interaction_id, token, channel, guild, user, data, interaction_type)
        payload.update(extra)
        interaction = FakeInteraction(
            id=interaction_id,
            token=token,
            application_id=self.application_id,
            channel_id=int(channel["id"]),
            guild_id=guild.id if guild else None,
            user=user,
            payload=payload,
            created_at=time.time(),
            interaction_type=interaction_type,
            **fields,
        )
        await self._record_and_dispatch(interaction)
        return interaction

    async def _record_and_dispatch(self, interaction: FakeInteraction) -> None:
        self.interactions.append(interaction)
        self._interactions[interaction.id] = interaction
        self._interactions_by_token[interaction.token] = interaction
        await self.dispatch("INTERACTION_CREATE", interaction.payload)

    def _interaction_payload(
        self,
        interaction_id: int,
        token: str,
        channel: Mapping[str, Any],
        guild: FakeGuild | None,
        user: FakeUser,
        data: dict[str, Any],
        interaction_type: int,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": interaction_type,
            "data": data,
            "channel_id": channel["id"],
            "channel": {**_copied(channel)},
            "token": token,
            "version": 1,
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if guild is not None:
            member = guild.members.get(user.id) or FakeMember(user, [], time.time())
            payload.update(guild_id=str(guild.id), guild_locale="en-US")
            payload["guild"] = {"id": str(guild.id), "locale": "en-US", "features": []}
            permissions = self.permissions_for(channel, user.id)  # in the channel, overwrites included
            payload["member"] = {**member.payload(), "permissions": str(permissions)}
        else:
            payload.update(user=user.payload())
        return payload

    def _app_permissions(self, channel: Mapping[str, Any], guild: FakeGuild | None, context: int) -> int:
        """What the app may do where the interaction happened: the bot's permissions in a guild
        it is in; Discord's documented sets in DMs (the fake uses the (G)DM one for a guild
        reached through a user install)."""
        if guild is not None and guild.has_bot:
            return self.permissions_for(channel, self.bot_user.id)
        return Perm.BOT_DM_APP if context == ContextType.BOT_DM else Perm.USER_INSTALL_APP

    def _context(self, channel: Mapping[str, Any], guild: FakeGuild | None) -> tuple[int, str]:
        """An interaction's ``context`` in `channel`, and a description of the place."""
        if guild is not None:
            return ContextType.GUILD, f"guild {guild.name!r}"
        if int(channel["id"]) in self._dm_by_user.values():
            return ContextType.BOT_DM, "the bot's DM"
        return ContextType.PRIVATE_CHANNEL, "a DM or group DM without the bot"

    def _authorize(
        self, channel: Mapping[str, Any], guild: FakeGuild | None, user: FakeUser, command: Mapping[str, Any]
    ) -> tuple[int, dict[str, str]]:
        """The interaction's ``context`` and ``authorizing_integration_owners``, as Discord
        computes them: "0" (the guild's id, or "0" in the bot's DM) where the app is installed to
        the guild, "1" (the user's id) where the user installed it; each only if the command
        allows that installation and the context. LookupError: Discord's client would not offer
        the command here."""
        context, where = self._context(channel, guild)
        if "guild_id" in command:  # a guild command: its guild only, through the server install
            types, contexts = {IntegrationType.GUILD_INSTALL}, {ContextType.GUILD}
        else:
            types = set(command.get("integration_types") or self.installation_contexts)
            contexts = set(ContextType.ALL if command.get("contexts") is None else command["contexts"])
        name = command["name"]
        if context not in contexts:
            raise LookupError(f"{name!r} is not offered in {where}: its contexts are {sorted(contexts)}")
        owners: dict[str, str] = {}
        if IntegrationType.GUILD_INSTALL in types and context == ContextType.GUILD and guild and guild.has_bot:
            owners[str(IntegrationType.GUILD_INSTALL)] = str(guild.id)
        elif IntegrationType.GUILD_INSTALL in types and context == ContextType.BOT_DM:
            owners[str(IntegrationType.GUILD_INSTALL)] = "0"
        if IntegrationType.USER_INSTALL in types and user.id in self.user_installs:
            owners[str(IntegrationType.USER_INSTALL)] = str(user.id)
        if not owners:
            why = "has not installed the app (install_for_user)"
            if user.id in self.user_installs:
                why = f"installed the app, but {name!r} has no USER_INSTALL among its integration types"
            raise LookupError(
                f"{name!r} is not offered to {user.username} in {where}: the bot is not there and they {why}"
            )
        return context, owners

    def _command_options(
        self,
        declared: Sequence[Mapping[str, Any]],
        given: Mapping[str, Any],
        guild: FakeGuild | None,
        resolved: dict[str, Any],
        where: str,
        *,
        focused: str | None = None,
    ) -> list[dict[str, Any]]:
        """The interaction's ``options`` for what a person filled in, checked against the registered
        options as Discord's client does (it sends nothing else). A sub-command is given as
        ``{"sub": {...its options...}}``. With `focused` (autocomplete): that option is marked
        ``focused: true`` and carries the partial text typed so far; required options may be missing."""
        by_name = {str(o["name"]): o for o in declared}
        result: list[dict[str, Any]] = []
        for name, value in given.items():
            option = by_name.get(name)
            if option is None:
                raise LookupError(f"{where} has no option {name!r} (registered: {sorted(by_name)})")
            option_type = int(option["type"])
            if option_type in OptionType.NESTING:
                if not isinstance(value, Mapping):
                    raise TypeError(f"{where} {name}: give a sub-command's options as a mapping")
                children = option.get("options") or []
                nested = self._command_options(children, value, guild, resolved, f"{where} {name}", focused=focused)
                result.append({"name": name, "type": option_type, "options": nested})
            elif focused is not None and name == focused:
                if not option.get("autocomplete"):
                    raise ValueError(f"{where} option {name!r} is not registered with autocomplete")
                result.append({"name": name, "type": option_type, "value": str(value), "focused": True})
            else:
                option_value = self._option_value(option, value, guild, resolved, f"{where} {name}")
                result.append({"name": name, "type": option_type, "value": option_value})
        nesting = [o for o in result if o["type"] in OptionType.NESTING]
        if len(nesting) > 1 or (declared and all(o["type"] in OptionType.NESTING for o in declared) and not nesting):
            raise ValueError(f"{where}: pick exactly one of its sub-commands {sorted(by_name)}")
        missing = [n for n, o in by_name.items() if o.get("required") and n not in given]
        if missing and focused is None:
            raise ValueError(f"{where} needs its required option(s) {missing}: Discord's client insists on them")
        return result

    def _option_value(
        self, option: Mapping[str, Any], value: Any, guild: FakeGuild | None, resolved: dict[str, Any], where: str
    ) -> Any:
        option_type = int(option["type"])
        if option_type in (OptionType.USER, OptionType.MENTIONABLE) and isinstance(value, FakeUser | int | str):
            user = value if isinstance(value, FakeUser) else self.users[int(value)]
            resolved.setdefault("users", {})[str(user.id)] = user.payload()
            if guild is not None and user.id in guild.members:
                member = guild.members[user.id].payload(with_user=False)
                member["permissions"] = str(guild.permissions_of(user.id))
                resolved.setdefault("members", {})[str(user.id)] = member
            return str(user.id)
        if option_type == OptionType.CHANNEL:
            channel = value if isinstance(value, dict) else self.channels[int(value)]
            resolved.setdefault("channels", {})[channel["id"]] = {**channel, "permissions": str(Perm.MEMBER_DEFAULT)}
            return channel["id"]
        if option_type == OptionType.ROLE:
            role = guild.roles[int(value)] if guild is not None else None
            if role is None:
                raise LookupError(f"{where}: no role {value} in this guild")
            resolved.setdefault("roles", {})[str(role.id)] = role.payload()
            return str(role.id)
        if option_type == OptionType.ATTACHMENT:
            filename, content_type, data = value  # (filename, content type, bytes), like send_user_message's files
            [attachment] = self._attachments([UploadedFile.of("files[0]", filename, data, content_type)])
            resolved.setdefault("attachments", {})[attachment["id"]] = attachment
            return attachment["id"]
        expected: dict[int, tuple[type, ...]] = {
            OptionType.STRING: (str,),
            OptionType.INTEGER: (int,),
            OptionType.BOOLEAN: (bool,),
            OptionType.NUMBER: (int, float),
        }
        wanted = expected.get(option_type, ())
        if not isinstance(value, wanted) or (option_type != OptionType.BOOLEAN and isinstance(value, bool)):
            raise TypeError(f"{where} is an option of type {option_type}; {value!r} does not fit it")
        choices = option.get("choices")
        if choices and value not in [c.get("value") for c in choices]:
            raise ValueError(f"{where} must be one of its choices {[c.get('value') for c in choices]}")
        if isinstance(value, str) and not option.get("min_length", 0) <= len(value) <= option.get("max_length", 6000):
            raise ValueError(f"{where}: {value!r} is outside the option's min_length / max_length")
        if option_type in (OptionType.INTEGER, OptionType.NUMBER):
            low, high = option.get("min_value"), option.get("max_value")
            if (low is not None and value < low) or (high is not None and value > high):
                raise ValueError(f"{where}: {value!r} is outside the option's min_value / max_value")
        return value

    async def _apply_interaction_callback(
        self, interaction: FakeInteraction, body: Mapping[str, Any], files: Sequence[UploadedFile]
    ) -> StoredMessage | None:
        callback_type = body.get("type")
        data = body.get("data") or {}
        if interaction.interaction_type == InteractionType.APPLICATION_COMMAND_AUTOCOMPLETE:
            if callback_type != CallbackType.APPLICATION_COMMAND_AUTOCOMPLETE_RESULT:
                message = "Value must be one of {8}."
                raise invalid_form_body([FieldError(("type",), "BASE_TYPE_CHOICES", message)])
            focused = _focused_option(interaction.payload["data"].get("options") or [])
            option_type = int(focused["type"]) if focused else OptionType.STRING
            errors = choice_errors(("data", "choices"), data.get("choices", []), option_type)
            if errors:
                raise invalid_form_body(errors)
        elif callback_type == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE:
            validate_new_message(data, files)
        elif callback_type == CallbackType.MODAL:
            if interaction.interaction_type == InteractionType.MODAL_SUBMIT:  # a modal does not answer a modal
                raise DiscordHTTPError(400, 40060, "Interaction has already been acknowledged.")
            errors = modal_errors(body.get("data"))
            if errors:
                raise invalid_form_body(errors)
        elif callback_type in CallbackType.UPDATES_MESSAGE and interaction.interaction_type not in (
            InteractionType.MESSAGE_COMPONENT,
            InteractionType.MODAL_SUBMIT,
        ):
            message = "Value must be one of {4, 5, 9}: types 6 and 7 update the message of a component interaction."
            raise invalid_form_body([FieldError(("type",), "BASE_TYPE_CHOICES", message)])
        elif callback_type not in (
            CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
            CallbackType.DEFERRED_UPDATE_MESSAGE,
            CallbackType.UPDATE_MESSAGE,
            CallbackType.MODAL,
        ):
            message = "Value must be one of {4, 5, 6, 7, 9}."
            raise invalid_form_body([FieldError(("type",), "BASE_TYPE_CHOICES", message)])
        if callback_type in CallbackType.UPDATES_MESSAGE:
            return await self._update_clicked_message(interaction, callback_type, data, files)
        interaction.callbacks.append({"type": callback_type, "data": _copied(data), "time": time.time()})
        if callback_type not in CallbackType.CREATES_MESSAGE:
            return None
        flags = int(data.get("flags") or 0) & MessageFlag.EPHEMERAL
        if callback_type == CallbackType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE:
            flags |= MessageFlag.LOADING
            data = {}
        await self._unarchive_for_message(self._require_channel(interaction.channel_id))
        stored = self._interaction_message(interaction, data, files, flags)
        interaction.original_message_id = stored.id
        await self._announce_new_message(stored)
        return stored

    async def _update_clicked_message(
        self, interaction: FakeInteraction, callback_type: int, data: Mapping[str, Any], files: Sequence[UploadedFile]
    ) -> StoredMessage | None:
        """Type 6 (DEFERRED_UPDATE_MESSAGE): acknowledged, nothing changes. Type 7 (UPDATE_MESSAGE):
        the clicked message is edited with `data` (checked like an edit: a message left empty is
        400 50006 and the callback does not count). After either, ``@original`` is that message."""
        clicked = self._messages.get(interaction.message_id or 0)
        if callback_type == CallbackType.UPDATE_MESSAGE:
            if clicked is None or clicked.deleted:
                raise unknown_message()
            errors = message_field_errors(data)
            if errors:
                raise invalid_form_body(errors)
            await self._edit_message(clicked, data, files)
        interaction.callbacks.append({"type": callback_type, "data": _copied(dict(data)), "time": time.time()})
        if clicked is not None:
            interaction.original_message_id = clicked.id
        return clicked if callback_type == CallbackType.UPDATE_MESSAGE else None

    def _interaction_message(
        self, interaction: FakeInteraction, body: Mapping[str, Any], files: Sequence[UploadedFile], flags: int
    ) -> StoredMessage:
        """A reply or follow-up to an interaction: for a command, a message of type 20 / 23 whose
        ``interaction_metadata`` names the command; for a button click, a reply (type 19) to the
        clicked message whose ``interaction_metadata`` has ``interacted_message_id``; for a modal
        submission, like a command's, its ``interaction_metadata`` with ``triggering_interaction_metadata``."""
        channel = self._require_channel(interaction.channel_id)
        clicked = (
            self._messages.get(interaction.message_id or 0)
            if interaction.interaction_type == InteractionType.MESSAGE_COMPONENT
            else None
        )
        extra: dict[str, Any] = {
            "webhook_id": str(self.application_id),
            "application_id": str(self.application_id),
            "interaction_metadata": self._interaction_metadata(interaction),
        }
        if interaction.interaction_type != InteractionType.MESSAGE_COMPONENT:
            extra["interaction"] = {  # deprecated; a command's name
                "id": str(interaction.id),
                "type": interaction.interaction_type,
                "name": interaction.command_name,
                "user": interaction.user.payload(),
            }
        if clicked is not None:
            message_type = MessageType.REPLY
            extra["message_reference"] = {
                "type": 0,
                "message_id": str(clicked.id),
                "channel_id": str(clicked.channel_id),
                **({"guild_id": str(clicked.guild_id)} if clicked.guild_id else {}),
            }
            referenced = _copied(clicked.payload)
            referenced.pop("referenced_message", None)
            extra["referenced_message"] = referenced
        elif interaction.command_type == CommandType.CHAT_INPUT:
            message_type = MessageType.CHAT_INPUT_COMMAND
        else:
            message_type = MessageType.CONTEXT_MENU_COMMAND
        stored = self._store_message(
            channel, self.bot_user, body, files=files, message_type=message_type, flags=flags, extra=extra
        )
        if flags & MessageFlag.EPHEMERAL:
            self._ephemeral_for[stored.id] = interaction.user.id
        return stored

    def _interaction_metadata(self, interaction: FakeInteraction) -> dict[str, Any]:
        """A reply's ``interaction_metadata``: a button click's names the clicked message, a modal
        submission's the interaction that showed the modal, a command's its name."""
        metadata: dict[str, Any] = {
            "id": str(interaction.id),
            "type": interaction.interaction_type,
            "user": interaction.user.payload(),
            "authorizing_integration_owners": interaction.payload.get("authorizing_integration_owners", {}),
        }
        trigger = self._interactions.get(interaction.triggered_by or 0)
        if interaction.interaction_type == InteractionType.MESSAGE_COMPONENT:
            metadata["interacted_message_id"] = str(interaction.message_id)
        elif interaction.interaction_type == InteractionType.MODAL_SUBMIT and trigger is not None:
            metadata["triggering_interaction_metadata"] = self._interaction_metadata(trigger)
        else:
            metadata.update(name=interaction.command_name, command_type=interaction.command_type)
        if interaction.command_type == CommandType.MESSAGE and interaction.target_id is not None:
            metadata["target_message_id"] = str(interaction.target_id)
        return metadata

    async def _send_followup(
        self, interaction: FakeInteraction, body: Mapping[str, Any], files: Sequence[UploadedFile]
    ) -> StoredMessage:
        """A follow-up; the first one after a deferral replaces the "thinking…" message, like Discord."""
        original = self._messages.get(interaction.original_message_id or 0)
        if original is not None and original.flags & MessageFlag.LOADING:
            await self._edit_message(original, {"embeds": [], **body}, files, clear_loading=True)
            return original
        flags = int(body.get("flags") or 0) & MessageFlag.EPHEMERAL
        await self._unarchive_for_message(self._require_channel(interaction.channel_id))
        stored = self._interaction_message(interaction, body, files, flags)
        interaction.followup_message_ids.append(stored.id)
        await self._announce_new_message(stored)
        return stored

    # -- gateway payloads --------------------------------------------------------------------------

    def _client_user_payload(self) -> dict[str, Any]:
        return {**self.bot_user.payload(), "verified": True, "mfa_enabled": False, "email": None, "locale": "en-US"}

    def _application_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.application_id),
            "name": self.bot_user.username,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "hook": True,
            "rpc_origins": [],
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": self.owner.payload(),
            "team": None,
            "flags": 0,
            "bot": self.bot_user.payload(),
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": sum(1 for guild in self.guilds.values() if guild.has_bot),
            "approximate_user_install_count": len(self.user_installs),
            "tags": [],
            # One key per supported installation context (no default install link configured).
            "integration_types_config": {str(kind): {} for kind in sorted(self.installation_contexts)},
        }

    def _ready_payload(self, session: GatewaySession) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "v": 10,
            "user": self._client_user_payload(),
            "guilds": [
                {"id": str(g.id), "unavailable": True}
                for g in self.guilds.values()
                if g.has_bot and on_shard(session, g.id)
            ],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "auth": {},
            "_trace": ["fake-discord"],
        }
        if "shard" in session.identify:
            payload["shard"] = session.identify["shard"]
        return payload

    def _guild_create_payload(self, guild: FakeGuild) -> dict[str, Any]:
        channels = [_copied(self.channels[c]) for c in guild.channel_ids]
        threads = [
            _copied(c)
            for c in self.channels.values()
            if c["type"] in ChannelType.THREADS
            and c.get("guild_id") == str(guild.id)
            and not c["thread_metadata"]["archived"]
            and self.permissions_for(c, self.bot_user.id) & Perm.VIEW_CHANNEL
        ]
        for channel in channels:
            channel.pop("guild_id", None)  # Discord omits it inside GUILD_CREATE
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "application_id": None,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500_000,
            "features": [],
            "roles": [r.payload() for r in guild.roles.values()],
            "emojis": [],
            "stickers": [],
            "joined_at": iso_timestamp(guild.created),
            "large": False,
            "unavailable": False,
            "lazy": True,
            "member_count": len(guild.members),
            "members": [m.payload() for m in guild.members.values()],
            "channels": channels,
            "threads": threads,
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "incidents_data": None,
        }


def _major_parameter(params: Mapping[str, str]) -> str:
    parts = [params[k] for k in ("channel_id", "guild_id", "webhook_id", "webhook_token") if k in params]
    return "+".join(parts)


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


# --------------------------------------------------------------------------------------------------
# Control API for out-of-process drivers (benchmarks); not part of Discord
# --------------------------------------------------------------------------------------------------


def _add_control_routes(fake: FakeDiscord, app: web.Application) -> None:
    async def state(request: web.Request) -> web.Response:
        return web.json_response(_describe(fake))

    async def user_message(request: web.Request) -> web.Response:
        body = await request.json()
        payload = await fake.send_user_message(
            body["channel_id"],
            fake.users[int(body["author_id"])],
            body["content"],
            mentions_bot=bool(body.get("mentions_bot", False)),
            reference_message_id=body.get("reference_message_id"),
        )
        return web.json_response(payload)

    async def seed_history(request: web.Request) -> web.Response:
        body = await request.json()
        authors = [fake.users[int(a)] for a in body["author_ids"]]
        seeded = fake.seed_history(body["channel_id"], int(body["count"]), authors=authors)
        return web.json_response({"first_id": str(seeded[0].id) if seeded else None, "count": len(seeded)})

    async def edit_message(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(await fake.edit_user_message(body["message_id"], body["content"]))

    async def delete_message(request: web.Request) -> web.Response:
        body = await request.json()
        await fake.delete_user_message(body["message_id"])
        return web.json_response({})

    async def channel_messages(request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel_id"])
        messages = [
            {**m.payload, "history": m.history} for m in fake._messages_by_channel.get(channel_id, []) if not m.deleted
        ]
        return web.json_response(messages)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": len(fake.requests),
                "ratelimited": fake.ratelimited_count,
                "connected": fake.connected,
                "resumes": fake.gateway.resume_count,
            }
        )

    app.router.add_get("/_fake/state", state)
    app.router.add_get("/_fake/stats", stats)
    app.router.add_post("/_fake/user_message", user_message)
    app.router.add_post("/_fake/seed_history", seed_history)
    app.router.add_post("/_fake/edit_message", edit_message)
    app.router.add_post("/_fake/delete_message", delete_message)
    app.router.add_get("/_fake/channels/{channel_id}/messages", channel_messages)


def _describe(fake: FakeDiscord) -> dict[str, Any]:
    return {
        "api_base_url": fake.api_base_url,
        "gateway_url": fake.gateway_url,
        "token": fake.token,
        "bot_user_id": str(fake.bot_user.id),
        "application_id": str(fake.application_id),
        "users": {u.username: str(u.id) for u in fake.users.values()},
        "guilds": {
            str(g.id): {"name": g.name, "channels": {fake.channels[c]["name"]: str(c) for c in g.channel_ids}}
            for g in fake.guilds.values()
        },
    }


async def _serve_forever(args: argparse.Namespace) -> None:
    limits = Limits.disabled() if args.no_limits else Limits()
    fake = FakeDiscord(
        token=args.token,
        limits=limits,
        host=args.host,
        port=args.port,
        thread_archive_seconds=args.thread_archive_seconds,
    )
    guild = fake.add_guild("Test Guild")
    fake.add_text_channel(guild, "general")
    fake.add_text_channel(guild, "no-threads", allow_threads=False)
    fake.add_user("alice")
    async with fake:
        print(json.dumps(_describe(fake), indent=2), flush=True)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loopback fake of Discord's REST API and gateway")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="fake-token")
    parser.add_argument("--no-limits", action="store_true", help="disable rate limits")
    parser.add_argument(
        "--thread-archive-seconds",
        type=float,
        default=None,
        help="archive threads after this many seconds without a new message "
        "(default: each thread's auto_archive_duration, in minutes)",
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve_forever(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
