"""What the fake Discord stores: users, roles, members, guilds and their overwrites, messages,
interactions, uploads, the requests it was sent and its rate limits."""

from __future__ import annotations

import dataclasses
import io
import mimetypes
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fakes.discord.protocol import (
    IMAGE_CONTENT_TYPES,
    CallbackType,
    CommandType,
    InteractionType,
    MessageFlag,
    MessageType,
    OverwriteType,
    Perm,
    iso_timestamp,
)


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
