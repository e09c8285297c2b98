"""Tool calls as Slack shows them: a task card per call in a native stream (`task_update` chunks), the
sources as a context line under the answer, the Run / Cancel question of a tool that asks first, the
/tools listing; and, for a reply whose stream fell back to a plain message, the same lines as
bot.tools.events.ToolLines writes on other platforms.

Nothing a tool returns becomes a mention or a link, except the sources (plain http(s) URLs, see
bot.tools.events.safe_sources)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from adapters.shared.tool_words import ToolUse, confirm_question, describe_tools, settled_text
from adapters.slack_bot.reply.text import escape_mrkdwn
from bot.reply.thought_view import thought_line
from bot.tools.consent import ConfirmRequest
from bot.tools.events import MAX_SOURCES, ToolEvent, ToolFinished, ToolStarted, finished_line
from bot.tools.gate import Decision
from bot.tools.toolbox import ToolBox

CONFIRM_YES = "tool_confirm_yes"  # the buttons' action ids (see adapters.slack_bot.buttons.tools)
CONFIRM_NO = "tool_confirm_no"
KEY = re.compile(r"[0-9a-f]{16}")  # a question's key (bot.tools.gate.ConfirmGate.new_key), a button's value
TITLE_CHARS = 150
FIELD_CHARS = 500  # a card's details and output (tools' texts come shortened to 300 already)
SOURCE_TEXT_CHARS = 60
TEXT_CHARS = 3000  # a section block's text; a slash command's answer
THOUGHT_CARD = "thought"  # the card of a thinking model's thought (call ids are the model's, never this)
THOUGHT_CHARS = 3000  # what a thought's card shows of it
LINES_CHARS = 600  # what lines a plain message shows of the calls, besides its text (it has ~500 to spare)
_LINK_START = re.compile(r"(?i)(?<=[a-z])://|\bwww\.")
_ZERO_WIDTH = "\u200b"
Chunk = dict[str, Any]


def inert(text: str) -> str:
    """A tool's text, shown as it is but unable to mention anyone or become a link: a zero-width space after each
    "<" (no <!channel>, <@U…> or <url|label>) and inside each "://" and "www."."""
    text = text.replace("<", "<" + _ZERO_WIDTH)
    return _LINK_START.sub(lambda found: found[0][0] + _ZERO_WIDTH + found[0][1:], text)


def _bold(text: str) -> str:
    return f"*{text}*"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def source_text(url: str) -> str:
    """A source's short label: its address without the scheme."""
    return _cut(url.split("://", 1)[-1].rstrip("/"), SOURCE_TEXT_CHARS) or "source"


def task_chunk(card_id: str, event: ToolStarted | ToolFinished) -> Chunk:
    title = f"{event.name} ({event.server})" if event.server else event.name
    chunk: Chunk = {"type": "task_update", "id": card_id, "title": _cut(inert(title), TITLE_CHARS)}
    if event.arguments:
        chunk["details"] = _cut(inert(event.arguments), FIELD_CHARS)
    if isinstance(event, ToolStarted):
        chunk["status"] = "in_progress"
        return chunk
    chunk["status"] = "complete" if event.ok else "error"
    output = event.result if event.ok else f"Did not run: {event.error}" if event.error == "declined" else event.error
    if output:
        chunk["output"] = _cut(inert(output), FIELD_CHARS)
    if event.sources:
        chunk["sources"] = [{"type": "url", "url": url, "text": source_text(url)} for url in event.sources]
    return chunk


def thought_chunk(thought: str, seconds: int) -> Chunk:
    """A thinking model's thought as a finished task card, closed under "Thought for N s"."""
    title = thought_line(seconds)
    return {
        "type": "task_update",
        "id": THOUGHT_CARD,
        "title": title,
        "status": "complete",
        "output": _cut(inert(thought), THOUGHT_CHARS),
    }


def text_chunk(markdown: str) -> Chunk:
    return {"type": "markdown_text", "text": markdown}


class Cards:
    """The task cards still to send, one per call: a card's latest update replaces the one waiting (its status
    wins), so cards held back by the rate limits go out together with the next write."""

    def __init__(self) -> None:
        self._waiting: dict[str, Chunk] = {}
        self._ids: dict[str, str] = {}  # a call's id → its card's (a call id used again gets a card of its own)
        self._made = 0

    @property
    def pending(self) -> bool:
        return bool(self._waiting)

    def add(self, event: ToolStarted | ToolFinished) -> None:
        if isinstance(event, ToolStarted) or event.call_id not in self._ids:
            self._made += 1
            used = event.call_id in self._ids
            self._ids[event.call_id] = f"{event.call_id}-{self._made}" if used else event.call_id
        card = task_chunk(self._ids[event.call_id], event)
        self._waiting[card["id"]] = card

    def add_card(self, card: Chunk) -> None:
        self._waiting[card["id"]] = card

    def take(self) -> list[Chunk]:
        cards, self._waiting = list(self._waiting.values()), {}
        return cards

    def put_back(self, cards: list[Chunk]) -> None:
        """Cards whose write failed: waiting again, before (and under) any newer update of theirs."""
        waiting = {card["id"]: card for card in cards}
        waiting.update(self._waiting)
        self._waiting = waiting


def sources_context(urls: tuple[str, ...]) -> dict[str, Any]:
    """The context line under an answer: "Sources: <url|1> <url|2> …" (at most MAX_SOURCES)."""
    links = " ".join(f"<{url.replace('&', '&amp;')}|{number}>" for number, url in enumerate(urls[:MAX_SOURCES], 1))
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(f"Sources: {links}", TEXT_CHARS)}]}


class InlineLines:
    """The calls as lines of a plain message's text, as ToolLines writes them: "🔧 `lookup` …" after the text while
    a call runs, "✓ `lookup`, 0.4 s" or "✗ `lookup`: timed out" where the text had reached when it finished, the
    sources as a numbered list at the end. For a reply whose native stream fell back to a plain message once the
    turn had begun (the core then sends it events, not lines); the text the surface is given has none of them."""

    def __init__(self) -> None:
        self._running: dict[str, str] = {}
        self._lines: list[tuple[int, str]] = []  # (where in the message's text, line)
        self._sources: tuple[str, ...] = ()
        self._seen = 0  # the length of the message's text last shown
        self._room = LINES_CHARS

    def add(self, event: ToolEvent) -> None:
        if isinstance(event, ToolStarted):
            self._running[event.call_id] = event.name
        elif isinstance(event, ToolFinished):
            self._running.pop(event.call_id, None)
            self._line(finished_line(event))
        else:
            self._sources = event.urls

    def saw(self, text: str) -> None:
        self._seen = len(text)

    def new_message(self) -> None:
        """The reply goes on in a new message: the lines so far stay in the last one."""
        self._lines, self._seen = [], 0

    def render(self, text: str) -> str:
        if not (self._lines or self._sources or self._running):
            return text
        shown, at = "", 0
        for wanted, line in self._lines:
            offset = max(at, min(wanted, len(text)))
            shown, at = _joined(_resumed(shown, text[at:offset]), line), offset
        shown = _resumed(shown, text[at:])
        if self._sources:
            listed = "\n".join(f"{number}. <{url}>" for number, url in enumerate(self._sources, 1))
            shown = _joined(shown, "Sources:\n" + listed)
        running = "\n".join(f"🔧 `{name}` …" for name in self._running.values())
        return (_joined(shown, running) if running else shown).rstrip("\n")

    def _line(self, line: str) -> None:
        if len(line) >= self._room:
            line = "…" if self._room > 1 else ""
        if line:
            self._room -= len(line) + 1
            self._lines.append((self._seen, inert(line)))


def _resumed(shown: str, text: str) -> str:
    """The text going on after lines: a blank line between."""
    return shown + ("\n" + text.lstrip("\n") if shown and text.strip() else text)


def _joined(before: str, line: str) -> str:
    if not before.strip():
        return line + "\n"
    return before + ("" if before.endswith("\n\n") else "\n" if before.endswith("\n") else "\n\n") + line + "\n"


# -- asking before a tool runs --------------------------------------------------------------


def slack_code(text: str) -> str:
    """Inline code in mrkdwn, with nothing in it a mention or a link."""
    return "`" + escape_mrkdwn(text.replace("`", "'")) + "`"


def _escaped(request: ConfirmRequest) -> ConfirmRequest:
    return replace(request, asker_name=escape_mrkdwn(request.asker_name), server=escape_mrkdwn(request.server))


def question_message(request: ConfirmRequest) -> tuple[str, list[dict[str, Any]]]:
    """The question and its Run / Cancel buttons (the buttons' value: the question's key)."""
    text = _cut(confirm_question(_escaped(request), slack_code), TEXT_CHARS)

    def button(label: str, action_id: str, **style: str) -> dict[str, Any]:
        return {
            "type": "button",
            "text": {"type": "plain_text", "text": label},
            "action_id": action_id,
            "value": request.key,
            **style,
        }

    buttons = [button("Run", CONFIRM_YES, style="primary"), button("Cancel", CONFIRM_NO)]
    return text, [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "block_id": f"tool_confirm:{request.key}", "elements": buttons},
    ]


def settled_message(request: ConfirmRequest, decision: Decision) -> tuple[str, list[dict[str, Any]]]:
    """What the question says once answered: no buttons."""
    text = _cut(settled_text(_escaped(request), decision, slack_code), TEXT_CHARS)
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def tools_listing(tools: ToolBox, use: ToolUse | None = None) -> str:
    """/tools and the Home tab: whether the conversation's model uses them (`use`), the tools, in mrkdwn, with
    nothing a server wrote a mention or a link."""
    listing = describe_tools(tools, code=lambda name: "`" + name.replace("`", "'") + "`", use=use, bold=_bold)
    return _cut(inert(escape_mrkdwn(listing)), TEXT_CHARS)
