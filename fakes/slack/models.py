"""What the fake Slack stores and records: calls, users, channels, messages, ephemeral messages,
assistant threads, views, response_url posts, uploads and deliveries."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from fakes.slack.helpers import _blocks_text, _encode_cursor, _ts_key
from fakes.slack.protocol import TEXT_OBJECT_TYPES, JsonDict


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


@dataclass
class _Injected:
    error: str
    status: int
    retry_after: int | None
    times: int


def _message_key(message: StoredMessage) -> tuple[int, int]:
    return message.key


def _cursor_of(message: StoredMessage) -> str:
    seconds, micros = message.key
    return _encode_cursor("next_ts", str(seconds * 1_000_000 + micros))
