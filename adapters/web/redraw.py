"""A stored conversation drawn again as the page showed it (`hello`'s `history`, after a reload or on opening it).

What the page needs besides a message's text is kept with the message (StoredMessage.view), so it goes with the
history's own limits: its length, its expiry, /reset, deleting the conversation and Forget me.

- A question with files keeps the names of its files besides images (`files`, the chips it was sent with) and how
  much of the stored question the person typed (`typed`). The stored question goes on with the files' text (or asks
  about them when nothing was typed): later prompts carry it, the page shows only what was typed.
- An answer keeps its sources (`sources`, the links listed under it) and the thought a thinking model had before it,
  as SHOW_REASONING showed it: closed above it (`thought` {text, seconds}) or quoted before its text (`before`),
  up to MAX_THOUGHT_CHARS, and the token its votes go by (`answer`: adapters.web.votes). None is ever sent to the
  model.

The page shows all of it as text; a source is a link only for an http(s) URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.web.tools import stored_calls
from adapters.web.uploads import MAX_FILE_NAME_CHARS, MAX_FILES, file_names
from bot.errors import ReplyFailure
from bot.reply.render import WARNING_PREFIX
from bot.reply.split import with_note
from bot.state.store import StoredMessage
from bot.tools.events import safe_sources
from bot.tools.toolbox import shorten
from bot.turn.text import clean_question

# About 5,000 tokens: more than a model thinks within the default max_tokens (800); a longer thought is kept cut.
MAX_THOUGHT_CHARS = 20_000
MAX_SOURCE_CHARS = 2_048  # a longer link is not kept


def question_view(text: str, uploads: list[object]) -> dict[str, Any]:
    """What a question with files keeps: its files' names (those read: MAX_FILES at most) and the length of what
    was typed, as the core stores it (cleaned: see ChatCore._admit), at the start of the stored question."""
    if not uploads:
        return {}
    try:
        typed = len(clean_question(text))
    except ReplyFailure:
        typed = 0  # nothing visible was typed
    return {"files": file_names(uploads)[:MAX_FILES], "typed": typed}


def answer_view(urls: Sequence[object], thought: dict[str, Any] | None, before: str = "") -> dict[str, Any]:
    """What an answer keeps: the sources listed under it, the thought shown closed above it, and what its text was
    shown after (the thought quoted in full), if any."""
    view: dict[str, Any] = {}
    if sources := _sources(urls):
        view["sources"] = sources
    if thought is not None:
        view["thought"] = {"text": shorten(str(thought["text"]), MAX_THOUGHT_CHARS), "seconds": thought["seconds"]}
    if before:
        view["before"] = _bounded_before(before)
    return view


def history_entry(message: StoredMessage) -> dict[str, Any]:
    """A stored message as the page shows it: a question with the chips of its files and only the text typed; an
    answer with its thought, its tool calls and its sources, and, if it failed, ending with its reason, as it did
    while it was written (a code block left open is closed first)."""
    view = message.view if isinstance(message.view, dict) else {}
    text = message.content
    if message.role == "assistant" and isinstance(before := view.get("before"), str):
        text = _bounded_before(before) + text
    if message.failed:
        text = with_note(text, f"{WARNING_PREFIX} {message.failed}")
    entry: dict[str, Any] = {"role": message.role, "text": text, "images": len(message.images)}
    if message.role == "user":
        entry.update(_question_entry(message.content, view))
        return entry
    if message.failed:
        entry["failed"] = message.failed
    if calls := stored_calls(message.tools):
        entry["tools"] = calls
    if sources := _sources(view.get("sources")):
        entry["sources"] = sources
    if (thought := _thought(view.get("thought"))) is not None:
        entry["thought"] = thought
    return entry


def _question_entry(content: str, view: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    typed = view.get("typed")
    if isinstance(typed, int) and not isinstance(typed, bool):
        shown["text"] = content[: max(0, typed)]
    files = view.get("files")
    if isinstance(files, list):
        names = [shorten(name, MAX_FILE_NAME_CHARS) for name in files[:MAX_FILES] if isinstance(name, str)]
        if names:
            shown["files"] = names
    return shown


def _sources(urls: object) -> list[str]:
    """The http(s) links of a sources list, as the page lists them (safe_sources'), each short enough to keep."""
    if not isinstance(urls, Sequence) or isinstance(urls, str):
        return []
    return [url for url in safe_sources([url for url in urls if isinstance(url, str)]) if len(url) <= MAX_SOURCE_CHARS]


def _bounded_before(before: str) -> str:
    """A quoted thought within MAX_THOUGHT_CHARS, a longer one cut at its end (still quoted, then the blank line)."""
    if len(before) <= MAX_THOUGHT_CHARS:
        return before
    return before[: MAX_THOUGHT_CHARS - 3].rstrip() + "…\n\n"


def _thought(value: object) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    text, seconds = value.get("text"), value.get("seconds")
    if not isinstance(text, str) or not text or not isinstance(seconds, int) or isinstance(seconds, bool):
        return None
    return {"text": shorten(text, MAX_THOUGHT_CHARS), "seconds": seconds}
