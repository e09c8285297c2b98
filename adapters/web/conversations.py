"""The web chat's shared state: each browser's list of conversations (in Redis when the bot has
it), and, in this process, the open pages of each conversation, the answers being written in it
(`Hub`, each answer streaming through an adapters.web.reply.WebReply) and the questions waiting
for theirs, counted per browser and per network address (`Waiting`).

A browser's first conversation is the thread `web:<chat_id>` (where the chat page kept its one
conversation before there was a list); the others are `web:<chat_id>:<conversation id>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import time
import unicodedata
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from adapters.web.outbox import Outbox
from bot.app import Services
from bot.state.redis_client import RedisClient, hash_tag, served
from bot.state.store import StoredMessage
from config.models import ModelChoice

log = structlog.get_logger(__name__)

FIRST = "0"  # a browser's first conversation: the thread web:<chat_id>
MAX_CONVERSATIONS = 100  # per browser
MAX_TITLE_CHARS = 80
_CONVERSATION_ID = re.compile(r"[0-9a-f]{12}")
# A deleted conversation's field holds `{"deleted": <when>}` this long, so that an answer still
# being written in it (in any process) neither lists it again nor keeps what it stores.
DELETED_KEPT_SECONDS = 24 * 3600
_DELETED = '{"deleted": '
# Saves an entry (ARGV[1] → ARGV[2]) unless its conversation was deleted: 1 if saved, else 0.
_SAVE = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and string.sub(current, 1, #ARGV[4]) == ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
# Marks conversation ARGV[1] deleted (ARGV[2]), forgets the marks from before ARGV[4], and adds
# the fresh conversation ARGV[5] → ARGV[6] when no other is left.
_REMOVE = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local fields = redis.call('HGETALL', KEYS[1])
local left = 0
for i = 1, #fields, 2 do
  local value = fields[i + 1]
  if string.sub(value, 1, #ARGV[7]) == ARGV[7] then
    local at = tonumber(string.sub(value, #ARGV[7] + 1, -2))
    if at and at < tonumber(ARGV[4]) then redis.call('HDEL', KEYS[1], fields[i]) end
  else
    left = left + 1
  end
end
if left == 0 then redis.call('HSET', KEYS[1], ARGV[5], ARGV[6]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return left
"""

# Marks every conversation of the browser deleted (ARGV[1]), its first (ARGV[4]) too even if never listed, and adds
# the fresh conversation ARGV[2] → ARGV[3]: every conversation it had, those deleted before too.
_REMOVE_ALL = """
local fields = redis.call('HGETALL', KEYS[1])
local had, first = {}, false
for i = 1, #fields, 2 do
  had[#had + 1] = fields[i]
  first = first or fields[i] == ARGV[4]
  if string.sub(fields[i + 1], 1, #ARGV[6]) ~= ARGV[6] then redis.call('HSET', KEYS[1], fields[i], ARGV[1]) end
end
if not first then
  had[#had + 1] = ARGV[4]
  redis.call('HSET', KEYS[1], ARGV[4], ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return had
"""


def thread_of(chat_id: str, conversation: str) -> str:
    return f"web:{chat_id}" if conversation == FIRST else f"web:{chat_id}:{conversation}"


def new_conversation_id() -> str:
    return secrets.token_hex(6)


def is_conversation_id(value: object) -> bool:
    return isinstance(value, str) and (value == FIRST or _CONVERSATION_ID.fullmatch(value) is not None)


def title_from(text: str) -> str:
    """A conversation's title as a person may give it (or its first question): one line of
    text, without control characters, at most MAX_TITLE_CHARS long. The page shows it as text."""
    clean = " ".join("".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf", "Co", "Cs")).split())
    return clean if len(clean) <= MAX_TITLE_CHARS else clean[: MAX_TITLE_CHARS - 1].rstrip() + "…"


# -- each browser's conversations -----------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    id: str
    title: str = ""  # "" until its first question
    used: float = 0.0  # when it was started or last asked something

    def frame(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title}


def ordered(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda entry: (-entry.used, entry.id))


class Conversations:
    """A hash per browser: conversation id → {"title", "used"} (or, once deleted, {"deleted"}),
    kept as long as history is."""

    def __init__(self, client: RedisClient, key_prefix: str, ttl_seconds: int) -> None:
        self._redis = client
        self._prefix = key_prefix
        self._ttl = ttl_seconds
        self._save = client.register_script(_SAVE)
        self._remove = client.register_script(_REMOVE)
        self._remove_all = client.register_script(_REMOVE_ALL)

    def _key(self, chat_id: str) -> str:
        return f"{self._prefix}web:{hash_tag(chat_id)}:conversations"

    async def entries(self, chat_id: str) -> list[Entry]:
        """The browser's conversations, the most recently used first (its first conversation
        when it has none, unless that one was deleted); raises STORE_UNAVAILABLE."""
        raw = await self._run(self._redis.hgetall(self._key(chat_id)))
        entries = []
        for conversation, value in raw.items():
            if _is_deleted(value):
                continue
            try:
                data = json.loads(value)
                entries.append(Entry(str(conversation), str(data.get("title", "")), float(data.get("used", 0))))
            except (ValueError, TypeError, AttributeError):
                log.warning("web_conversation_unreadable", conversation=conversation)
        if not entries:
            return [Entry(new_conversation_id() if _is_deleted(raw.get(FIRST)) else FIRST)]
        return ordered(entries)

    async def save(self, chat_id: str, entry: Entry) -> bool:
        """Keep `entry`; False if its conversation was deleted (it stays deleted)."""
        value = json.dumps({"title": entry.title, "used": entry.used})
        args: list[str | float] = [entry.id, value, self._ttl, _DELETED]
        return bool(await self._run(self._save(keys=[self._key(chat_id)], args=args)))

    async def remove(self, chat_id: str, conversation: str) -> None:
        """Mark the conversation deleted; if it was the browser's last, a fresh one is started."""
        now = time.time()
        args: list[str | float] = [conversation, json.dumps({"deleted": now}), self._ttl, now - DELETED_KEPT_SECONDS]
        args += [new_conversation_id(), json.dumps({"title": "", "used": now}), _DELETED]
        await self._run(self._remove(keys=[self._key(chat_id)], args=args))

    async def remove_all(self, chat_id: str) -> list[str]:
        """Mark every conversation of the browser deleted and start a fresh one; every conversation it had (those
        deleted before too: their histories may be left if forgetting them failed)."""
        now = time.time()
        args: list[str | float] = [json.dumps({"deleted": now}), new_conversation_id()]
        args += [json.dumps({"title": "", "used": now}), FIRST, self._ttl, _DELETED]
        return [
            str(conversation)
            for conversation in await self._run(self._remove_all(keys=[self._key(chat_id)], args=args))
        ]

    async def deleted(self, chat_id: str, conversation: str) -> bool:
        return _is_deleted(await self._run(self._redis.hget(self._key(chat_id), conversation)))

    async def _run(self, command: Awaitable[Any]) -> Any:
        return await served(command, "web_conversations_error")


def _is_deleted(value: str | None) -> bool:
    return value is not None and value.startswith(_DELETED)


def conversations_for(services: Services, ttl_seconds: int) -> Conversations:
    return Conversations(services.redis.main, services.settings.history.key_prefix, ttl_seconds)


# -- this process's pages and answers -------------------------------------------------------


class Page(Protocol):
    """What the hub knows of an open page (adapters.web.chat.Tab)."""

    chat_id: str
    thread: str
    outbox: Outbox
    model: ModelChoice

    async def greet(self, conversation: str | None = None) -> None: ...


@dataclass(eq=False)
class Live:
    """A question of a page and its answer, from the moment it is accepted until its last frame
    is sent. `shown`: the question is stored and the answer under way, so pages that (re)connect
    are shown it as it is written."""

    thread: str
    question: str  # the page's id for the question
    asked: dict[str, Any]  # the `asked` frame other pages are sent when it is shown
    again: bool = False
    shown: bool = False
    finishing: bool = False  # its final text is written, waiting to be stored
    stop_requested: bool = False
    answer: str = ""  # its answer's token (adapters.web.votes), kept with it: the votes on it go by it
    reply: str = ""
    text: str = ""
    model: str = ""
    finals: list[dict[str, Any]] = field(default_factory=list)  # sent once the answer is stored
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)  # its latest tool frames (adapters.web.tools)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"question": self.question, "reply": self.reply, "text": self.text, "again": self.again}
        if self.model:
            frame["model"] = self.model
        if self.tools:
            frame["tools"] = [*self.tools.values()]
        return frame


@dataclass
class _Thread:
    pages: set[Page] = field(default_factory=set)
    lives: list[Live] = field(default_factory=list)
    version: int = 0  # moves whenever an answer is shown, written in full or stored


class Waiting:
    """The questions of this process's pages still waiting for their answers (asked, and not yet
    answered, failed or stopped), counted per browser and per client address."""

    def __init__(self) -> None:
        self._browsers: Counter[str] = Counter()
        self._addresses: Counter[str] = Counter()

    def of_browser(self, chat_id: str) -> int:
        return self._browsers[chat_id]

    def of_address(self, address: str) -> int:
        return self._addresses[address]

    def add(self, chat_id: str, address: str) -> None:
        self._browsers[chat_id] += 1
        self._addresses[address] += 1

    def remove(self, chat_id: str, address: str) -> None:
        for counts, key in ((self._browsers, chat_id), (self._addresses, address)):
            counts[key] -= 1
            if counts[key] <= 0:
                del counts[key]


class Hub:
    """The pages open in this process, by conversation and by browser, the answers they are being
    written and the questions waiting for theirs (`waiting`). An answer's frames go to every page
    showing its conversation."""

    def __init__(self, conversations: Conversations) -> None:
        self.conversations = conversations
        self.waiting = Waiting()
        self._threads: dict[str, _Thread] = {}
        self._browsers: dict[str, set[Page]] = {}

    # pages

    def join(self, page: Page) -> None:
        self._threads.setdefault(page.thread, _Thread()).pages.add(page)
        self._browsers.setdefault(page.chat_id, set()).add(page)

    def leave(self, page: Page) -> None:
        self._drop_page(page)
        pages = self._browsers.get(page.chat_id)
        if pages is not None:
            pages.discard(page)
            if not pages:
                del self._browsers[page.chat_id]

    def move(self, page: Page, thread: str) -> None:
        if thread != page.thread:
            self._drop_page(page)
            page.thread = thread
            self._threads.setdefault(thread, _Thread()).pages.add(page)

    def pages(self, thread: str) -> list[Page]:
        state = self._threads.get(thread)
        return list(state.pages) if state else []

    def browser(self, chat_id: str) -> list[Page]:
        return list(self._browsers.get(chat_id, ()))

    def send(self, pages: Iterable[Page], event: dict[str, Any], replaces: str | None = None) -> None:
        data = json.dumps(event)  # \u escapes: a lone surrogate a page sent can't break the frame
        for page in pages:
            page.outbox.put(data, replaces)

    # answers

    def begin(self, live: Live) -> None:
        self._threads.setdefault(live.thread, _Thread()).lives.append(live)

    def lives(self, thread: str) -> list[Live]:
        state = self._threads.get(thread)
        return list(state.lives) if state else []

    def show(self, live: Live) -> None:
        """The answer is under way: every page of its conversation shows its question."""
        if not live.shown:
            live.shown = True
            self._moved(live.thread)
            self.send(self.pages(live.thread), {"type": "asked", **live.asked})

    def stream(self, live: Live, event: dict[str, Any]) -> None:
        live.reply, live.text, live.model = event["reply"], event["text"], event.get("model", "")
        self.send(self.pages(live.thread), event, replaces=live.reply)

    def finishing(self, live: Live, event: dict[str, Any]) -> None:
        """Its final text, held until the answer is stored."""
        live.finals.append(event)
        if not live.finishing:
            live.finishing = True
            self._moved(live.thread)

    async def finish(self, live: Live) -> None:
        """The answer is stored (or failed to be): its final frames go to its pages."""
        state = self._threads.get(live.thread)
        if state is not None and live in state.lives:
            state.lives.remove(live)
            state.version += 1
            self._forget_if_unused(live.thread)
        pages = self.pages(live.thread)
        for event in live.finals:
            self.send(pages, event)
        live.done.set()
        if live.finals:
            await asyncio.gather(*(page.outbox.flushed() for page in pages))

    async def settled_history(
        self, thread: str, read: Callable[[str], Awaitable[Sequence[StoredMessage]]]
    ) -> Sequence[StoredMessage]:
        """The conversation's history, read while no answer of this process was shown, finished
        or stored, so that it and the answers being written (`lives`) fit together."""
        stored: Sequence[StoredMessage] = []
        for _ in range(5):  # an answer a second at most moves; this is never reached in practice
            for live in self.lives(thread):
                if live.finishing:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(live.done.wait(), 10)
            state = self._threads.get(thread)
            version = state.version if state else 0
            stored = await read(thread)
            state = self._threads.get(thread)
            if (state.version if state else 0) == version:
                break
        return stored

    def _moved(self, thread: str) -> None:
        self._threads.setdefault(thread, _Thread()).version += 1

    def _drop_page(self, page: Page) -> None:
        state = self._threads.get(page.thread)
        if state is not None:
            state.pages.discard(page)
            self._forget_if_unused(page.thread)

    def _forget_if_unused(self, thread: str) -> None:
        state = self._threads.get(thread)
        if state is not None and not state.pages and not state.lives:
            del self._threads[thread]


def entry_used_now(entry: Entry, title: str = "") -> Entry:
    """`entry` asked something now: titled with `title` if it had no title yet."""
    return Entry(entry.id, entry.title or title, time.time())
