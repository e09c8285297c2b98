"""How an OpenAI-compatible server checks a chat request before answering, for the fake model server: tools,
tool calls and their answers, content parts and images; each check gives the 400's (message, param, code)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Literal

from aiohttp import web

ErrorStyle = Literal["tgi", "vllm", "openai"]
ApiStyle = Literal["hf", "openai", "vllm"]  # whose request errors (unknown model, bad content) to send

_DATA_URL_RE = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)
IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
_MISTRAL_TOOL_ID_RE = re.compile(r"[a-zA-Z0-9]{9}")
_TOOL_NAME_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def _image_urls(parts: list[Any]) -> list[str]:
    return [
        str(p["image_url"].get("url"))
        for p in parts
        if isinstance(p, dict) and p.get("type") == "image_url" and isinstance(p.get("image_url"), dict)
    ]


_Error = tuple[str, str | None, str]  # (message, param, code) of a 400


def _invalid_type(param: str, expected: str, value: Any) -> _Error:
    names = {str: "a string", list: "an array", dict: "an object", bool: "a boolean", type(None): "null"}
    got = names.get(type(value), "a number")
    return f"Invalid type for '{param}': expected {expected}, but got {got} instead.", param, "invalid_type"


def _missing(param: str) -> _Error:
    return f"Missing required parameter: '{param}'.", param, "missing_required_parameter"


def _tools_error(tools: Any) -> _Error | None:
    """(message, param, code) of the first malformed ``tools`` entry, as OpenAI words it, or None."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        return _invalid_type("tools", "an array", tools)
    if not tools:
        message = (
            "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead."
        )
        return message, "tools", "empty_array"
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            return _invalid_type(where, "an object", tool)
        if "type" not in tool:
            return _missing(f"{where}.type")
        if tool["type"] != "function":
            return (
                f"Invalid value: '{tool['type']}'. Supported values are: 'function'.",
                f"{where}.type",
                "invalid_value",
            )
        function = tool.get("function")
        if function is None:
            return _missing(f"{where}.function")
        if not isinstance(function, dict):
            return _invalid_type(f"{where}.function", "an object", function)
        name = function.get("name")
        if name is None:
            return _missing(f"{where}.function.name")
        if not isinstance(name, str):
            return _invalid_type(f"{where}.function.name", "a string", name)
        if not _TOOL_NAME_RE.fullmatch(name):
            param = f"{where}.function.name"
            message = (
                f"Invalid '{param}': string does not match pattern. "
                "Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'."
            )
            return message, param, "invalid_value"
        if function.get("description") is not None and not isinstance(function["description"], str):
            return _invalid_type(f"{where}.function.description", "a string", function["description"])
        if function.get("parameters") is not None and not isinstance(function["parameters"], dict):
            return _invalid_type(f"{where}.function.parameters", "an object", function["parameters"])
    return None


_MISTRAL_ID_ERROR = "Tool call IDs should be alphanumeric strings with length 9!"  # Mistral's chat template


def _tool_messages_error(messages: Any, *, mistral_ids: bool) -> _Error | None:
    """(message, param, code) of the first misplaced or malformed tool call or tool message, or None.

    A run of tool messages answers the assistant message with ``tool_calls`` right before it, and must
    answer each of its calls before any other message (or the end of the conversation)."""
    calls: list[str] = []  # ids of the calls the current run of tool messages answers
    answered: set[str] = set()
    asked_at = -1  # index of the assistant message that made them; -1: no run open
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict):
            continue
        if message.get("role") == "tool":
            error = _tool_message_error(message, i, calls if asked_at >= 0 else None, mistral_ids=mistral_ids)
            if error is not None:
                return error
            answered.add(message["tool_call_id"])
            continue
        if asked_at >= 0:
            error = _unanswered_error(calls, answered, asked_at)
            if error is not None:
                return error
            asked_at = -1
        tool_calls = message.get("tool_calls")
        if message.get("role") == "assistant" and tool_calls is not None:
            error = _tool_calls_error(tool_calls, f"messages[{i}].tool_calls", mistral_ids=mistral_ids)
            if error is not None:
                return error
            calls, answered, asked_at = [call["id"] for call in tool_calls], set(), i
    return _unanswered_error(calls, answered, asked_at) if asked_at >= 0 else None


def _unanswered_error(calls: list[str], answered: set[str], asked_at: int) -> _Error | None:
    missing = [call_id for call_id in calls if call_id not in answered]
    if not missing:
        return None
    message = (
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(missing)}"
    )
    return message, f"messages.[{asked_at}].role", "invalid_parameter"


def _tool_calls_error(tool_calls: Any, where: str, *, mistral_ids: bool) -> _Error | None:
    if not isinstance(tool_calls, list):
        return _invalid_type(where, "an array", tool_calls)
    for j, call in enumerate(tool_calls):
        at = f"{where}[{j}]"
        if not isinstance(call, dict):
            return _invalid_type(at, "an object", call)
        for key in ("id", "type", "function"):
            if key not in call:
                return _missing(f"{at}.{key}")
        if not isinstance(call["id"], str):
            return _invalid_type(f"{at}.id", "a string", call["id"])
        if mistral_ids and not _MISTRAL_TOOL_ID_RE.fullmatch(call["id"]):
            return _MISTRAL_ID_ERROR, f"{at}.id", "invalid_value"
        if call["type"] != "function":
            return f"Invalid value: '{call['type']}'. Supported values are: 'function'.", f"{at}.type", "invalid_value"
        function = call["function"]
        if not isinstance(function, dict):
            return _invalid_type(f"{at}.function", "an object", function)
        for key in ("name", "arguments"):
            if key not in function:
                return _missing(f"{at}.function.{key}")
            if not isinstance(function[key], str):
                return _invalid_type(f"{at}.function.{key}", "a string", function[key])
    return None


def _tool_message_error(
    message: dict[str, Any], i: int, calls: list[str] | None, *, mistral_ids: bool
) -> _Error | None:
    """What is wrong with the tool message at `i`; `calls`: the ids it may answer (None: no call to answer)."""
    call_id = message.get("tool_call_id")
    if call_id is None:
        message_text = "Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'."
        return message_text, f"messages.[{i}].tool_call_id", "missing_required_parameter"
    if not isinstance(call_id, str):
        return _invalid_type(f"messages[{i}].tool_call_id", "a string", call_id)
    if not isinstance(message.get("content"), str):
        return _invalid_type(f"messages[{i}].content", "a string", message.get("content"))
    if mistral_ids and not _MISTRAL_TOOL_ID_RE.fullmatch(call_id):
        return _MISTRAL_ID_ERROR, f"messages[{i}].tool_call_id", "invalid_value"
    if calls is None:
        text = (
            "Invalid parameter: messages with role 'tool' must be a response to a preceding message with 'tool_calls'."
        )
        return text, f"messages.[{i}].role", "invalid_parameter"
    if call_id not in calls:
        text = f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of previous message."
        return text, f"messages.[{i}].tool_call_id", "invalid_parameter"
    return None


def _content_error(messages: Any) -> tuple[str, str | None, str] | None:
    """(message, param, code) of the first malformed content part, as OpenAI words it, or None."""
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            where = f"messages[{i}].content[{j}]"
            error = _part_error(part, where, str(message.get("role")))
            if error is not None:
                return error
    return None


def _part_error(part: Any, where: str, role: str) -> tuple[str, str | None, str] | None:
    if not isinstance(part, dict):
        return _invalid_type(where, "an object", part)
    kind = part.get("type")
    if kind == "text":
        return (
            None if isinstance(part.get("text"), str) else _invalid_type(f"{where}.text", "a string", part.get("text"))
        )
    if kind != "image_url":
        message = f"Invalid value: '{kind}'. Supported values are: 'text' and 'image_url'."
        return message, f"{where}.type", "invalid_value"
    if role != "user":
        message = (
            "Image URLs are only allowed for messages with role 'user', "
            f"but this message with role '{role}' contains an image URL."
        )
        return message, where, "invalid_value"
    image_url = part.get("image_url")
    param = f"{where}.image_url"
    if not isinstance(image_url, dict):
        return _invalid_type(param, "an object", image_url)
    if image_url.get("detail", "auto") not in ("auto", "low", "high"):
        message = f"Invalid value: '{image_url.get('detail')}'. Supported values are: 'auto', 'low', and 'high'."
        return message, f"{param}.detail", "invalid_value"
    return _image_url_error(image_url.get("url"), f"{param}.url")


def _image_url_error(url: Any, param: str) -> tuple[str, str | None, str] | None:
    if not isinstance(url, str):
        return _invalid_type(param, "a string", url)
    if url.startswith(("http://", "https://")):
        return None
    match = _DATA_URL_RE.fullmatch(url)
    if match is None:
        message = f"Invalid '{param}'. Expected a valid URL, but got a value with an invalid format."
        return message, param, "invalid_value"
    if match["mime"] not in IMAGE_MIME_TYPES:
        message = "Invalid MIME type. Only image types are supported."
        return message, param, "invalid_image_format"
    try:
        data = base64.b64decode(match["data"], validate=True)
    except (binascii.Error, ValueError):
        return "Invalid base64 image_url.", param, "invalid_image_url"
    if _sniff_image(data) is None:
        message = "You uploaded an unsupported image. Please make sure your image is valid."
        return message, param, "invalid_image_format"
    return None


def _sniff_image(data: bytes) -> str | None:
    """The image MIME type the bytes start like (PNG, JPEG, GIF, WebP), else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _unknown_model_response(style: ApiStyle, model: str) -> web.Response:
    """What a server answers for a model it does not serve."""
    if style == "openai":
        message = f"The model `{model}` does not exist or you do not have access to it."
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": "model_not_found"}
        return web.json_response({"error": error}, status=404)
    if style == "vllm":
        body = {
            "object": "error",
            "message": f"The model `{model}` does not exist.",
            "type": "NotFoundError",
            "param": None,
            "code": 404,
        }
        return web.json_response(body, status=404)
    message = f"The requested model '{model}' is not supported by any provider you have enabled."
    return web.json_response({"error": {"message": message, "code": "model_not_supported"}}, status=400)


def _invalid_request_response(style: ApiStyle, message: str, param: str | None, code: str) -> web.Response:
    """A 400 for a malformed request, in the server's shape (the HF router relays OpenAI's)."""
    if style == "vllm":
        body: dict[str, Any] = {"object": "error", "message": message, "type": "BadRequestError", "param": None}
        body["code"] = 400
        return web.json_response(body, status=400)
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return web.json_response({"error": error}, status=400)


def _context_error_body(style: ErrorStyle) -> dict[str, Any]:
    if style == "vllm":
        return {
            "object": "error",
            "message": (
                "This model's maximum context length is 4096 tokens. However, you requested 5500 tokens "
                "(5000 in the messages, 500 in the completion). Please reduce the length of the messages "
                "or completion."
            ),
            "type": "BadRequestError",
            "param": None,
            "code": "context_length_exceeded",
        }
    if style == "openai":
        return {
            "error": {
                "message": "This model's maximum context length is 4096 tokens. However, your messages "
                "resulted in 5000 tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        }
    return {
        "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. "
        "Given: 5000 `inputs` tokens and 500 `max_new_tokens`",
        "error_type": "validation",
    }
