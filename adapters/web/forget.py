"""The page's Forget me button (confirmed in the page first): the browser's conversations all go, with their
answers being written, their Instructions, the browser's question counters and its feedback on answers (its votes,
its answers kept for votes, their gap entries: adapters.shared.feedback.records); every page of the browser then shows
a fresh conversation, and the page that asked is told what went (adapters.shared.forget_me).

The frames (besides those in adapters.web): page → server `forget`; server → that page a `notice` {text, level:
"info"} saying what was deleted (or "warning", why not), after a `hello` to every page of the browser.
"""

from __future__ import annotations

from typing import Protocol

from adapters.shared.forget_me import UNREACHABLE, forget_me
from adapters.shared.platform_jobs import PlatformJobs
from adapters.web.conversations import Hub, Page, thread_of
from adapters.web.instructions import place_of
from adapters.web.votes import person_of
from bot.errors import ReplyFailure
from bot.state.forget import scope_of

NAME = "web"
DELETED = "Deleted: "  # how forget_me's sentence starts when something went
FEEDBACK = "your feedback on answers"  # votes, and what /knowledge gaps kept of them


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
    if said != UNREACHABLE:
        try:
            if core.personas is not None:
                await core.personas.forget([place_of(chat_id, conversation) for conversation in conversations])
            said = with_feedback(said, await jobs.feedback.forget_person(person_of(chat_id)))
        except ReplyFailure:
            said = UNREACHABLE
    for shown in hub.browser(chat_id):
        await shown.greet(None)
    page.notice(said, level="warning" if said == UNREACHABLE else "info")


def with_feedback(said: str, forgotten: int) -> str:
    """What forget_me said went ("Deleted: a.", "Deleted: a and b.", "Deleted: a, b, and c."), naming the browser's
    feedback too when some went (`forgotten`: how many votes and gap entries), before its last part:
    "Deleted: 2 conversations of yours, your feedback on answers, and your question counters." """
    if not forgotten:
        return said
    if not said.startswith(DELETED) or not said.endswith("."):  # nothing else went (NOTHING)
        return f"{DELETED}{FEEDBACK}."
    listed = said.removeprefix(DELETED).removesuffix(".")
    head, _, last = listed.rpartition(" and ")
    if not head:
        return f"{DELETED}{listed} and {FEEDBACK}."
    return f"{DELETED}{head.removesuffix(',')}, {FEEDBACK}, and {last}."
