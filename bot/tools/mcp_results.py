"""An MCP tool result as the model reads it (its text) and the web pages it points to (its links)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from mcp.types import CallToolResult, EmbeddedResource, ResourceLink, TextContent, TextResourceContents

_URL = re.compile(r"https?://[^\s<>\"'`{}|\\^\[\]]+", re.IGNORECASE)
_TRAILING = ".,;:!?*_~"  # punctuation that ends a sentence rather than the URL
_CLOSING = {")": "(", "]": "["}


def result_text(result: CallToolResult) -> str:
    """The text contents (and embedded text resources) joined; the structured content as JSON when there is no text."""
    texts = [text for block in result.content if (text := _block_text(block))]
    if texts:
        return "\n".join(texts)
    if result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False)
    return ""


def result_links(result: CallToolResult) -> tuple[str, ...]:
    """The http(s) URLs the result points to, in order, each once: resource links, embedded resources and URLs
    written in its text and structured content."""
    found: dict[str, None] = {}
    for block in result.content:
        for url in _block_links(block):
            found.setdefault(url, None)
    for text in _strings(result.structured_content):
        for url in urls_in(text):
            found.setdefault(url, None)
    return tuple(found)


def urls_in(text: str) -> Iterator[str]:
    """The http(s) URLs written in `text`, without the punctuation around them."""
    for match in _URL.finditer(text):
        url = _trimmed(match.group(0))
        if len(url) > len("https://"):
            yield url


def _trimmed(url: str) -> str:
    """`url` without the sentence's punctuation after it, or a bracket it was written inside."""
    while url:
        last = url[-1]
        if last in _TRAILING or (last in _CLOSING and url.count(last) > url.count(_CLOSING[last])):
            url = url[:-1]
        else:
            break
    return url


def _block_text(block: object) -> str:
    if isinstance(block, TextContent):
        return block.text
    if isinstance(block, EmbeddedResource) and isinstance(block.resource, TextResourceContents):
        return block.resource.text
    return ""


def _block_links(block: object) -> Iterator[str]:
    if isinstance(block, ResourceLink) and _is_web(block.uri):
        yield block.uri
    elif isinstance(block, EmbeddedResource) and _is_web(block.resource.uri):
        yield block.resource.uri
    yield from urls_in(_block_text(block))


def _is_web(uri: str) -> bool:
    return uri.lower().startswith(("http://", "https://"))


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
