"""Discord's checks on what a bot sends: messages, components, modals, embeds, threads, commands
(400 50035 with the field named)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from fakes.discord.errors import DiscordHTTPError, FieldError, empty_message, invalid_form_body, max_length_error
from fakes.discord.models import UploadedFile
from fakes.discord.protocol import (
    COMMAND_NAME_RE,
    MAX_ACTION_ROWS,
    MAX_BUTTON_LABEL,
    MAX_BUTTON_URL,
    MAX_CHOICE_LENGTH,
    MAX_CHOICES,
    MAX_COMMAND_NAME_LENGTH,
    MAX_COMMANDS,
    MAX_COMPONENT_ID,
    MAX_CONTENT_LENGTH,
    MAX_CUSTOM_ID,
    MAX_DESCRIPTION_LENGTH,
    MAX_MODAL_ROWS,
    MAX_MODAL_TITLE,
    MAX_OPTIONS,
    MAX_ROW_BUTTONS,
    MAX_TEXT_INPUT_LABEL,
    MAX_TEXT_INPUT_LENGTH,
    MAX_TEXT_INPUT_PLACEHOLDER,
    MAX_THREAD_NAME_LENGTH,
    ButtonStyle,
    CommandType,
    ComponentType,
    ContextType,
    IntegrationType,
    OptionType,
    TextInputStyle,
    _copied,
)


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
