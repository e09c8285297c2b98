"""Block Kit validation as Slack does it: messages' blocks, modals and home views (``invalid_blocks``
with Slack's pointers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fakes.slack.protocol import (
    ACTION_ELEMENT_TYPES,
    ACTION_ID_MAX,
    ACTIONS_ELEMENTS_MAX,
    ALT_TEXT_MAX,
    BLOCK_ID_MAX,
    BUTTON_TEXT_MAX,
    BUTTON_URL_MAX,
    BUTTON_VALUE_MAX,
    CALLBACK_ID_MAX,
    CONTEXT_ELEMENTS_MAX,
    EXTERNAL_ID_MAX,
    HEADER_TEXT_MAX,
    INPUT_ELEMENT_TYPES,
    INPUT_HINT_MAX,
    INPUT_LABEL_MAX,
    MARKDOWN_TEXT_MAX,
    MAX_BLOCKS,
    MAX_VIEW_BLOCKS,
    MESSAGE_BLOCK_TYPES,
    MODAL_BLOCK_TYPES,
    MODAL_BUTTON_MAX,
    MODAL_TITLE_MAX,
    PLACEHOLDER_MAX,
    PLAIN_TEXT_INPUT_MAX,
    PRIVATE_METADATA_MAX,
    RICH_TEXT_ELEMENT_TYPES,
    SECTION_FIELD_TEXT_MAX,
    SECTION_FIELDS_MAX,
    SECTION_TEXT_MAX,
    TEXT_OBJECT_TYPES,
    ApiError,
    JsonDict,
)


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
