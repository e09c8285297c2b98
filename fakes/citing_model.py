"""A fake model's `responder` that answers from the knowledge passages in its system prompt, as an instructed model
does: it quotes the passage that shares the most words with the question and cites it as [n]; with no passages it
says the knowledge doesn't cover it (and cites nothing)."""

from __future__ import annotations

import re
from typing import Any

from fakes.model_server import Script

_PASSAGE = re.compile(r"^\[(\d+)\] [^\n]*:\n(.*?)(?=\n\n\[\d+\] |\Z)", re.MULTILINE | re.DOTALL)
_WORD = re.compile(r"\w+")
NOT_COVERED = "The community's knowledge doesn't cover it."


def passages_in(body: dict[str, Any]) -> dict[int, str]:
    """The numbered passages the request's system prompt carries."""
    system = next((m for m in body.get("messages", []) if m.get("role") == "system"), None)
    content = system.get("content") if system else None
    if not isinstance(content, str):
        return {}
    return {int(number): text.strip() for number, text in _PASSAGE.findall(content)}


def last_question(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    content = users[-1].get("content", "") if users else ""
    return content if isinstance(content, str) else ""


def citing_responder(body: dict[str, Any]) -> Script | None:
    passages = passages_in(body)
    if not passages:
        return Script(text=NOT_COVERED)
    words = set(_WORD.findall(last_question(body).lower()))
    number = max(passages, key=lambda n: (len(words & set(_WORD.findall(passages[n].lower()))), -n))
    return Script(text=f"From what I know: {passages[number]} [{number}]")
