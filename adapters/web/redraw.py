"""A stored conversation drawn again as the page showed it (`hello`'s `history`, after a reload or on opening it).

What the page needs besides a message's text is kept with the message (StoredMessage.view), so it goes with the
history's own limits: its length, its expiry, /reset, deleting the conversation and Forget me.

- A question with files keeps the names of its files besides images (`files`, the chips it was sent with) and how
  much of the stored question the person typed (`typed`). The stored question goes on with the files' text (or asks
  about them when nothing was typed): later prompts carry it, the page shows only what was typed.
- An answer keeps its sources (`sources`, the links listed under it), the passages its [n] marks cite (`cited`:
  [{number, label, url, text}], the text up to MAX_QUOTE_CHARS, shown when a mark is pointed at), the thought a
  thinking model had before it, as SHOW_REASONING showed it: closed above it (`thought` {text, seconds}) or quoted
  before its text (`before`), up to MAX_THOUGHT_CHARS, and the token its votes go by (`answer`: adapters.web.votes).
  None is ever sent to the model.

The page shows all of it as text; a source is a link only for an http(s) URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.web.tools import stored_calls
from adapters.web.uploads import MAX_FILE_NAME_CHARS, MAX_FILES, file_names
from bot.errors import ReplyFailure
from bot.knowledge.citing import MAX_CITED
from bot.reply.render import WARNING_PREFIX
from bot.reply.split import with_note
from bot.state.store import StoredMessage
from bot.tools.events import safe_sources
from bot.tools.toolbox import shorten
from bot.turn.text import clean_question

# About 5,000 tokens: more than a model thinks within the default max_tokens (800); a longer thought is kept cut.
MAX_THOUGHT_CHARS = 20_000
MAX_SOURCE_CHARS = 2_048  # a longer link is not kept
MAX_QUOTE_CHARS = 600  # of a cited passage's text: what its [n] mark shows
MAX_LABEL_CHARS = 200  # of a cited source's label (bot.knowledge.citing's are shorter)


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


def answer_view(
    urls: Sequence[object], thought: dict[str, Any] | None, before: str = "", cited: Sequence[object] = ()
) -> dict[str, Any]:
    """What an answer keeps: the sources listed under it, the passages its marks cite, the thought shown closed above
    it, and what its text was shown after (the thought quoted in full), if any."""
    view: dict[str, Any] = {}
    if sources := _sources(urls):
        view["sources"] = sources
    if passages := cited_passages(cited):
        view["cited"] = passages
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
    if passages := cited_passages(view.get("cited")):
        entry["cited"] = passages
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


def quoted(number: int, label: str, url: str, text: str) -> dict[str, Any]:
    """A passage an answer's mark [number] cites, as the page shows it: its source's label, its link (http(s) only)
    and its text, the first MAX_QUOTE_CHARS of it."""
    link = next(iter(_sources([url])), "")
    return {"number": number, "label": shorten(label, MAX_LABEL_CHARS), "url": link, "text": _quote(text)}


def cited_passages(value: object) -> list[dict[str, Any]]:
    """The cited passages of a `cited` list (kept with an answer, or read back), each as `quoted` makes it."""
    if not isinstance(value, Sequence) or isinstance(value, str):
        return []
    passages: list[dict[str, Any]] = []
    for entry in value[:MAX_CITED]:
        if not isinstance(entry, dict):
            continue
        number, label, url, text = (entry.get(key) for key in ("number", "label", "url", "text"))
        if isinstance(number, int) and not isinstance(number, bool) and 0 < number < 100:
            if isinstance(label, str) and isinstance(url, str) and isinstance(text, str):
                passages.append(quoted(number, label, url, text))
    return passages


def _quote(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_QUOTE_CHARS else text[: MAX_QUOTE_CHARS - 1].rstrip() + "…"


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
