"""The fake REST API (``/api/v10``): its routes, each a handler that reads the call and asks the fake."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from fakes.discord.errors import (
    DiscordHTTPError,
    FieldError,
    invalid_form_body,
    missing_access,
    not_found_route,
    unknown_channel,
    unknown_guild,
    unknown_interaction,
    unknown_member,
    unknown_message,
    unknown_user,
    unknown_webhook,
)
from fakes.discord.models import FakeInteraction, FakeUser, StoredMessage, UploadedFile
from fakes.discord.protocol import (
    INTERACTION_TOKEN_LIFETIME,
    JSON_CONTENT_TYPE,
    CallbackType,
    ChannelType,
    ComponentType,
    MessageFlag,
    Perm,
    _copied,
)
from fakes.discord.validation import _text_input_max, validate_commands, validate_new_message, validate_thread_body

if TYPE_CHECKING:
    from fakes.discord.server import FakeDiscord


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
            RouteSpec("GET", "/guilds/{guild_id}/members/{user_id}", f.get_member),
            RouteSpec("GET", "/oauth2/applications/@me", f.get_application),
            RouteSpec("GET", "/applications/@me", f.get_application),
            RouteSpec("GET", "/channels/{channel_id}", f.get_channel),
            RouteSpec("PATCH", "/channels/{channel_id}", f.fake.edit_channel),
            RouteSpec("GET", "/channels/{channel_id}/threads/archived/public", f.fake.archived_public_threads),
            RouteSpec("GET", "/guilds/{guild_id}/threads/active", f.fake.active_threads),
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

    async def get_member(self, call: RestCall) -> Any:
        """GET /guilds/{guild}/members/{user}: a member with their roles (no privileged intent needed), for a server
        the bot is in."""
        guild = self.fake.guilds.get(call.snowflake("guild_id", unknown_guild))
        if guild is None or self.fake.bot_user.id not in guild.members:
            raise unknown_guild()
        member = guild.members.get(call.snowflake("user_id", unknown_member))
        if member is None:
            raise unknown_member()
        return member.payload()

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
        if channel["type"] == ChannelType.GUILD_FORUM:
            raise DiscordHTTPError(400, 50024, "Cannot execute action on this channel type")  # only in a post
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
        stored = self._message_in_route(call)
        self.fake.reactions_removed.append((time.time(), stored.id, call.params["emoji"]))
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
        if channel["type"] == ChannelType.GUILD_FORUM:
            return await fake.create_post(channel, call.body(), call.files)
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
