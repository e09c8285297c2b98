"""FakeDiscord's interactions: slash and message commands, autocomplete, buttons and modals, their
callbacks, follow-ups and webhook messages."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

from fakes.discord.errors import DiscordHTTPError, FieldError, invalid_form_body, unknown_message
from fakes.discord.models import FakeGuild, FakeInteraction, FakeMember, FakeUser, StoredMessage, UploadedFile
from fakes.discord.protocol import (
    CallbackType,
    CommandType,
    ComponentType,
    ContextType,
    IntegrationType,
    InteractionType,
    MessageFlag,
    MessageType,
    OptionType,
    Perm,
    _copied,
)
from fakes.discord.rest import (
    InteractionCallbackRejected,
    _check_channel_then_user,
    _focused_option,
    _last_leaf,
    _submitted_row,
)
from fakes.discord.validation import (
    buttons_in,
    choice_errors,
    message_field_errors,
    modal_errors,
    number_components,
    validate_new_message,
)


class InteractionsArea:
    """FakeDiscord's interactions: a part of the class, its state FakeDiscord's (set in its __init__)."""

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
