"""The browser's conversations, as one page changes them: a new one, renamed, deleted, moved to the top when asked
something; each change sent to every page of the browser as its list (the `conversations` frame, see adapters.web).
The list itself is kept by adapters.web.conversations."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Protocol

from adapters.shared.platform_jobs import PlatformJobs
from adapters.web.conversations import (
    MAX_CONVERSATIONS,
    Entry,
    Hub,
    Page,
    entry_used_now,
    new_conversation_id,
    ordered,
    thread_of,
    title_from,
)
from adapters.web.instructions import forget
from bot.errors import ReplyFailure
from bot.reply.render import failure_note


class ListingPage(Page, Protocol):
    """The page whose browser's list changes: the conversation it shows, and where it is told what went wrong."""

    conversation: str

    def notice(self, text: str, *, level: str = "warning") -> None: ...


class ConversationList:
    """The list of `page`'s browser, changed from that page."""

    def __init__(self, page: ListingPage, hub: Hub, jobs: PlatformJobs) -> None:
        self._page = page
        self._hub = hub
        self._jobs = jobs

    async def new(self) -> None:
        """Start a conversation and show it (this one, if nothing was asked in it yet)."""
        entries = await self.entries()
        current = next((entry for entry in entries if entry.id == self._page.conversation), None)
        if current is not None and not current.title and not self._hub.lives(self._page.thread):
            await self._page.greet(current.id)
            return
        if len(entries) >= MAX_CONVERSATIONS:
            self._page.notice(f"This browser has {MAX_CONVERSATIONS} conversations: delete one to start another.")
            return
        entry = Entry(new_conversation_id(), "", time.time())
        if await self.save(entries, entry):
            await self._page.greet(entry.id)

    async def rename(self, conversation: str, title: str) -> None:
        entries = await self.entries()
        entry = next((entry for entry in entries if entry.id == conversation), None)
        if entry is not None and title_from(title):
            await self.save(entries, replace(entry, title=title_from(title)))

    async def delete(self, conversation: str) -> None:
        """Forget a conversation: its messages, its place in the list; its pages show another
        (a fresh one if it was the last). It is marked deleted first, so an answer still being
        written in it, by any process, is not kept (see touch, and the Tab's _forget_if_deleted)."""
        entries = await self.entries()
        if not any(entry.id == conversation for entry in entries):
            return
        thread = thread_of(self._page.chat_id, conversation)
        for live in self._hub.lives(thread):
            live.stop_requested = True
        self._jobs.core.stop(thread)
        try:
            await self._hub.conversations.remove(self._page.chat_id, conversation)
            await self._jobs.core.reset(thread)  # once its answer being written has stopped
            await forget(self._jobs.core.personas, self._page.chat_id, conversation)
        except ReplyFailure as failure:
            self._page.notice(failure_note(failure))
            return
        remaining = await self.entries()
        pages = self._hub.browser(self._page.chat_id)
        self._hub.send([page for page in pages if page.thread != thread], _listing(remaining))
        for page in pages:
            if page.thread == thread:
                await page.greet(None)

    async def touch(self, conversation: str, title: str) -> bool:
        """The conversation was asked something: it goes to the top of the list, titled with its
        first question if it has no title yet. False if it was deleted."""
        try:
            entries = await self._hub.conversations.entries(self._page.chat_id)
            listed = next((entry for entry in entries if entry.id == conversation), Entry(conversation))
            entry = entry_used_now(listed, title)
            if not await self._hub.conversations.save(self._page.chat_id, entry):
                return False
        except ReplyFailure:
            return True  # the answer says why (the history is out of reach too)
        self._list_with(entries, entry)
        return True

    async def entries(self) -> list[Entry]:
        try:
            return await self._hub.conversations.entries(self._page.chat_id)
        except ReplyFailure as failure:
            self._page.notice(failure_note(failure))
            return [Entry(self._page.conversation)]

    async def save(self, entries: list[Entry], entry: Entry) -> bool:
        """Keep `entry`, and send every page of the browser the list with it; False if it was
        not kept (its conversation was deleted, or the store is out of reach: the page is told)."""
        try:
            if not await self._hub.conversations.save(self._page.chat_id, entry):
                return False
        except ReplyFailure as failure:
            self._page.notice(failure_note(failure))
            return False
        self._list_with(entries, entry)
        return True

    def _list_with(self, entries: list[Entry], entry: Entry) -> None:
        """Send every page of the browser its list, `entry` as just saved."""
        listed = ordered([*(other for other in entries if other.id != entry.id), entry])
        self._hub.send(self._hub.browser(self._page.chat_id), _listing(listed))


def _listing(entries: list[Entry]) -> dict[str, Any]:
    return {"type": "conversations", "items": [entry.frame() for entry in ordered(entries)]}
