"""The page's Forget me button (confirmed in the page first): the browser's conversations all go, with their
answers being written, their Instructions and the browser's question counters; every page of the browser then
shows a fresh conversation, and the page that asked is told what went (adapters.jobs.forget_me).

The frames (besides those in adapters.web): page → server `forget`; server → that page a `notice` {text, level:
"info"} saying what was deleted (or "warning", why not), after a `hello` to every page of the browser.
"""

from __future__ import annotations

from typing import Protocol

from adapters.jobs.forget_me import UNREACHABLE, forget_me
from adapters.jobs.platform_jobs import PlatformJobs
from adapters.web.conversations import Hub, Page, thread_of
from adapters.web.instructions import place_of
from bot.errors import ReplyFailure
from bot.forget import scope_of

NAME = "web"


class ForgettingPage(Page, Protocol):
    def notice(self, text: str, *, level: str = "warning") -> None: ...


async def forget_browser(page: ForgettingPage, hub: Hub, jobs: PlatformJobs) -> None:
    """Forget everything of `page`'s browser. Its conversations are marked deleted first, so an answer still being
    written in one, by any process, is forgotten too once stored (as when one conversation is deleted)."""
    core, chat_id = jobs.core, page.chat_id
    try:
        conversations = await hub.conversations.remove_all(chat_id)
    except ReplyFailure:
        page.notice(UNREACHABLE)
        return
    threads = [thread_of(chat_id, conversation) for conversation in conversations]
    for thread in threads:
        for live in hub.lives(thread):
            live.stop_requested = True
        core.stop(thread)
    said = await forget_me(core, scope_of(NAME), chat_id, threads)
    if said != UNREACHABLE and core.personas is not None:
        try:
            await core.personas.forget([place_of(chat_id, conversation) for conversation in conversations])
        except ReplyFailure:
            said = UNREACHABLE
    for shown in hub.browser(chat_id):
        await shown.greet(None)
    page.notice(said, level="warning" if said == UNREACHABLE else "info")
