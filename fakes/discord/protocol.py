"""Discord's numbers as the fake speaks them: limits, intents, permission bits, the enums of
channels, messages, interactions and components, gateway opcodes, and snowflakes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from typing import TypeVar

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
    GUILD_MESSAGE_REACTIONS = 1 << 10
    GUILD_MESSAGE_TYPING = 1 << 11
    DIRECT_MESSAGES = 1 << 12
    DIRECT_MESSAGE_REACTIONS = 1 << 13
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
    GUILD_FORUM = 15  # every message is in a post: a public thread whose id is its starter message's
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


def iso_timestamp(unix_time: float) -> str:
    return dt.datetime.fromtimestamp(unix_time, dt.UTC).isoformat()


def _token_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:32]
