"""The web chat's conversation side: one open page (`Tab`) and the frames it exchanges with the
server (see adapters.web). What pages share (the browser's conversations, the answers being
written): adapters.web.conversations; the browser's list of them, as a page changes it:
adapters.web.conversation_list; the surface an answer streams through: adapters.web.reply;
its tools' frames, and a click on Run / Cancel: adapters.web.tools."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

import structlog
from aiohttp import web

from adapters.shared.platform_jobs import PlatformJobs, switched_model
from adapters.shared.tool_words import model_use
from adapters.web.conversation_list import ConversationList
from adapters.web.conversations import (
    FIRST,
    MAX_TITLE_CHARS,
    Hub,
    Live,
    is_conversation_id,
    thread_of,
    title_from,
)
from adapters.web.forget import forget_browser
from adapters.web.instructions import change, hello_fields, own_text, places_of
from adapters.web.outbox import Outbox
from adapters.web.redraw import history_entry, question_view
from adapters.web.reply import WebReply
from adapters.web.tools import click, listing
from adapters.web.uploads import (
    MAX_MESSAGE_CHARS,
    UploadLimits,
    attachments_from,
    file_names,
    frame_bytes,
    question_about,
    title_about,
    uploads_of,
)
from adapters.web.usage import usage_of
from adapters.web.votes import Ballots, give_reason, kept, new_token, page_id, token_of, vote, with_votes
from bot.core import Turn
from bot.errors import ReplyFailure
from bot.reply.render import RenderResult, failure_note
from config.models import ModelChoice

log = structlog.get_logger(__name__)

# Questions waiting for their answers (asked, not yet answered, failed or stopped). A person asks
# one at a time in a page and never meets these; past one, the question is refused, saying so:
MAX_WAITING_PER_PAGE = 3  # "You have 3 questions waiting for their answers already: …"
MAX_WAITING_PER_BROWSER = 6  # "This browser has 6 questions waiting …" (a few tabs asking at once)
MAX_WAITING_PER_ADDRESS = 20  # "There are 20 questions from your network address waiting …" (a home, an office)
DELETED = "This conversation was deleted."


def model_info(choice: ModelChoice) -> dict[str, Any]:
    """A model as the page's picker shows it."""
    return {"id": choice.id, "name": choice.display_name, "vision": choice.vision}


class Tab:
    """One open page: its websocket, its browser (`chat_id`), its client's network address (as
    guard.counted_address counts it) and the conversation it shows."""

    def __init__(
        self,
        jobs: PlatformJobs,
        hub: Hub,
        ws: web.WebSocketResponse,
        chat_id: str,
        address: str,
        conversation: str = "",
        ballots: Ballots | None = None,
    ) -> None:
        """`conversation`: the one the page showed last, if it still exists. `ballots`: where the browser's votes
        are read when a conversation is drawn again (without: drawn with none pressed)."""
        self._jobs = jobs
        self._hub = hub
        self._ballots = ballots
        self.chat_id = chat_id
        self.address = address
        self.conversation = conversation if is_conversation_id(conversation) else FIRST
        self.thread = thread_of(chat_id, self.conversation)
        self.outbox = Outbox(ws)
        self.model = self._jobs.core.models.default  # the conversation's model, as this page shows it
        self.uploads = UploadLimits.of(jobs)  # what a question may carry besides its text
        self._waiting = 0  # questions asked here whose answers are not written yet
        self._greeting = asyncio.Lock()
        self._greeted = False  # its first hello is sent: other frames may follow
        self._usage_due = False  # an answer of the browser ended before that: its usage is sent after the hello
        self._open = True
        self._list = ConversationList(self, hub, jobs)  # the browser's conversations
        hub.join(self)

    def close(self) -> None:
        """The page went away (its answers still finish and are stored)."""
        self._open = False
        self._hub.leave(self)
        self.outbox.close()

    def send(self, event: dict[str, Any]) -> None:
        self._hub.send([self], event)

    def notice(self, text: str, *, level: str = "warning") -> None:
        self.send({"type": "notice", "text": text, "level": level})

    async def greet(self, conversation: str | None = None) -> None:
        """The models, the browser's conversations and the one shown (`conversation` if it
        exists, else the last used), with its answer being written if any: for a page that has
        just (re)connected or switched. From then on it is sent that conversation's answers."""
        async with self._greeting:
            core = self._jobs.core
            entries = await self._list.entries()
            wanted = self.conversation if conversation is None else conversation
            entry = next((entry for entry in entries if entry.id == wanted), entries[0])
            self.conversation = entry.id
            self._hub.move(self, thread_of(self.chat_id, entry.id))
            try:
                self.model = await core.model_for(self.thread)
                stored = await self._hub.settled_history(self.thread, core.history)
                instructions = await own_text(core.personas, self.chat_id, entry.id)
            except ReplyFailure as failure:
                stored, instructions = [], ""
                self.notice(failure_note(failure))
            history = [history_entry(message) for message in stored]
            tokens = [token for message in stored if (token := token_of(message)) is not None]
            votes = await self._ballots.of(self.chat_id, entry.id, tokens) if self._ballots else {}
            self.send(
                {
                    "type": "hello",
                    "models": [model_info(choice) for choice in core.models.choices],
                    "model": model_info(self.model),
                    "tools": model_use(core, self.model).uses,  # whether this conversation's model uses them
                    "toolsConnected": bool(core.tools),
                    "maxChars": MAX_MESSAGE_CHARS,
                    **self.uploads.hello_fields(),
                    "conversation": entry.id,
                    "conversations": [entry.frame() for entry in entries],
                    "history": with_votes(history, stored, entry.id, votes),
                    "live": [live.frame() for live in self._hub.lives(self.thread) if live.shown],
                    **hello_fields(instructions),
                    "usage": await usage_of(core, self.chat_id, entry.id),
                }
            )
            self._greeted = True
            if self._usage_due:
                self._usage_due = False
                await self.show_usage()
        first = next((message.content for message in stored if message.role == "user"), "")
        if not entry.title and title_from(first):  # a conversation from before there were titles
            await self._list.save(entries, replace(entry, title=title_from(first)))

    async def receive(self, raw: str) -> bool:
        """Act on one frame from the page; False for a frame larger than what it carries may need:
        its text, and the files it carries (images only when this chat takes them)."""
        size = frame_bytes(raw)
        if not self.uploads.may_fit(size, raw):  # before parsing it
            return False
        try:
            event = json.loads(raw)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            log.warning("web_unreadable_event", thread=self.thread)
            return True
        kind = event.get("type")
        uploads = uploads_of(event)
        if not self.uploads.fits(size, uploads):
            return False
        question = str(event.get("id", ""))[:64]
        if kind == "ask" and isinstance(event.get("text"), str):
            await self._ask(question, event["text"], uploads)
        elif kind == "again":
            self._again(question)
        elif kind == "stop":
            self._stop()
        elif kind == "reset":
            await self._reset()
        elif kind == "model" and isinstance(event.get("id"), str):
            await self._choose(event["id"][:200])
        elif kind == "new":
            await self._list.new()
        elif kind == "open" and is_conversation_id(event.get("id")):
            await self.greet(event["id"])
        elif kind == "rename" and is_conversation_id(event.get("id")) and isinstance(event.get("title"), str):
            await self._list.rename(event["id"], event["title"][: 4 * MAX_TITLE_CHARS])
        elif kind == "delete" and is_conversation_id(event.get("id")):
            await self._list.delete(event["id"])
        elif kind == "forget":
            await forget_browser(self, self._hub, self._jobs)
        elif kind == "vote":
            await vote(self, self._hub, self._jobs, event)
        elif kind == "vote_reason":
            await give_reason(self, self._hub, self._jobs, event)
        elif kind == "confirm" and (said := await click(self._jobs.core.gate, self.chat_id, event)) is not None:
            self.notice(said)  # to this page only: the click didn't settle the question
        elif kind == "tools":
            self.send(listing(self._jobs.core.tools, model_use(self._jobs.core, self.model)))
        elif kind == "instructions":
            await change(self, self._hub, self._jobs.core.personas, event)
        return True

    # -- questions and answers ----------------------------------------------------------

    async def _ask(self, question: str, text: str, uploads: list[object]) -> None:
        if text.strip() == "/reset" and not uploads:
            await self._reset()
            return
        refusal = _refusal(text, with_files=bool(uploads)) or self._busy()
        if refusal is not None:
            self.send({"type": "refused", "question": question, "reason": refusal})
            return
        title = title_from(text) or title_from(title_about(uploads))
        names = file_names(uploads)
        asked = {"question": question, "text": text, "images": len(uploads) - len(names), "files": names}
        live = Live(self.thread, question, asked, answer=new_token())
        self._start(live, self.conversation, self._answer(live, self.conversation, text, uploads, title))

    def _again(self, question: str) -> None:
        """Answer the conversation's last question again, in place of its last answer."""
        refusal = self._busy()
        if refusal is not None:
            self.send({"type": "refused", "question": question, "reason": refusal})
            return
        live = Live(self.thread, question, {"question": question, "again": True}, again=True, answer=new_token())
        places = places_of(self.chat_id, self.conversation)
        turn = Turn(self.thread, self.chat_id, "web", "", channel="web", again=True, places=places)
        surface, votes = WebReply(self._hub, self._jobs.core, live), kept(self.chat_id, self.conversation, live.answer)
        self._start(live, self.conversation, self._jobs.answer(turn, surface, kept=votes))

    def _busy(self) -> str | None:
        """Why one more question can't wait for its answer here, if it can't."""
        if self._waiting >= MAX_WAITING_PER_PAGE:
            questions = f"You have {MAX_WAITING_PER_PAGE} questions"
        elif self._hub.waiting.of_browser(self.chat_id) >= MAX_WAITING_PER_BROWSER:
            questions = f"This browser has {MAX_WAITING_PER_BROWSER} questions"
        elif self._hub.waiting.of_address(self.address) >= MAX_WAITING_PER_ADDRESS:
            questions = f"There are {MAX_WAITING_PER_ADDRESS} questions from your network address"
        else:
            return None
        return f"{questions} waiting for their answers already: ask again once one is answered."

    def _start(self, live: Live, conversation: str, work: Coroutine[Any, Any, object]) -> None:
        """Answer in a task of its own: the answer completes (and is stored) even if the page
        closes now; its last frames go out once it is stored."""
        self._hub.begin(live)
        self._waiting += 1
        self._hub.waiting.add(self.chat_id, self.address)
        self._jobs.spawn(self._answering(live, conversation, work))

    async def _answering(self, live: Live, conversation: str, work: Coroutine[Any, Any, object]) -> None:
        try:
            result = await work
            if isinstance(result, RenderResult) and result.complete and live.finals:
                live.finals[-1]["answer"] = page_id(conversation, live.answer)  # kept for votes: 👍 / 👎 under it
        finally:
            self._waiting -= 1
            self._hub.waiting.remove(self.chat_id, self.address)
            await self._hub.finish(live)
        await self._forget_if_deleted(conversation)
        for page in self._hub.browser(self.chat_id):  # what it used, in every page of the browser
            if isinstance(page, Tab):
                await page.show_usage()

    async def show_usage(self) -> None:
        """The sidebar's usage line of the browser, as it stands now (adapters.web.usage); a page that hasn't had its
        hello yet gets it right after (a page's first frame is always its hello)."""
        if not self._greeted:
            self._usage_due = True
            return
        self.send({"type": "usage", **await usage_of(self._jobs.core, self.chat_id, self.conversation)})

    async def _forget_if_deleted(self, conversation: str) -> None:
        """An answer stored in a conversation deleted meanwhile is forgotten too. The delete marks
        the conversation before it clears its history, so this clearing or the delete's own comes
        after the answer was stored (each waits for the conversation's lock)."""
        thread = thread_of(self.chat_id, conversation)
        try:
            if await self._hub.conversations.deleted(self.chat_id, conversation):
                await self._jobs.core.reset(thread)
        except ReplyFailure as failure:
            log.warning("web_deleted_conversation_not_cleared", thread=thread, detail=failure.detail)

    async def _answer(
        self, live: Live, conversation: str, text: str, uploads: list[object], title: str
    ) -> RenderResult | None:
        """Read the question's files as on every platform (images checked and scaled down, documents'
        text read in the isolated workers and cut to fit, text files' text), then answer."""
        if not await self._list.touch(conversation, title):
            await self._refuse_deleted(live.question, conversation)
            return None
        # Decoding megabytes of base64 is left to a thread, as the documents' reading is to the workers.
        attachments, notices = await asyncio.to_thread(attachments_from, uploads, self.uploads)
        asked = text if text.strip() else question_about(uploads)
        read = await self._jobs.question(asked, attachments, asker=self.chat_id)
        notices += read.notices
        if not text.strip() and not read.images and read.text == asked:
            reason = " ".join(notices) or "Type a message first."  # every file it had was unusable
            self.send({"type": "refused", "question": live.question, "reason": reason})
            return None
        turn = Turn(
            live.thread,
            self.chat_id,
            "web",
            read.text,  # with its files' text: kept in the history, for what follows
            channel="web",  # the page is one channel
            notices=tuple(notices),
            images=read.images,
            places=places_of(self.chat_id, conversation),
            view=question_view(text, uploads),  # drawn again with its files' names, not their text
        )
        votes = kept(self.chat_id, conversation, live.answer)
        return await self._jobs.answer(turn, WebReply(self._hub, self._jobs.core, live), kept=votes)

    async def _refuse_deleted(self, question: str, conversation: str) -> None:
        """The question's conversation was deleted (from another tab): it is not answered, and a
        page still showing that conversation is shown another."""
        self.send({"type": "refused", "question": question, "reason": DELETED})
        if self.conversation == conversation and self._open:
            await self.greet(None)
            self.notice(DELETED)

    def _stop(self) -> None:
        """Stop the answer being written in this conversation by this process (or, if it is
        still waiting its turn, as soon as it starts)."""
        if not self._jobs.core.stop(self.thread):
            waiting = [live for live in self._hub.lives(self.thread) if not live.shown]
            if waiting:
                waiting[0].stop_requested = True

    async def _choose(self, name: str) -> None:
        """Answer this conversation with the model called `name` from now on; every page showing
        the conversation is told, and this one also with a notice. A failed switch puts the
        picker back."""
        core = self._jobs.core
        try:
            choice = await core.choose_model(self.thread, name)
        except ReplyFailure as failure:
            self.send({"type": "model", "model": model_info(self.model)})
            self.notice(failure_note(failure))
            return
        if choice is None:
            self.send({"type": "model", "model": model_info(self.model)})
            names = ", ".join(option.display_name for option in core.models.choices)
            self.notice(f"There is no model called “{name.strip()}” here. The models: {names}.")
            return
        pages = self._hub.pages(self.thread)
        for page in pages:
            page.model = choice
        self._hub.send(pages, {"type": "model", "model": model_info(choice)})
        self.notice(switched_model(choice, str), level="info")

    async def _reset(self) -> None:
        """Forget this conversation's messages (typed /reset): it stays in the list, untitled."""
        thread, conversation = self.thread, self.conversation
        try:
            await self._jobs.core.reset(thread)
        except ReplyFailure as failure:
            self.notice(failure_note(failure))
            return
        self._hub.send(self._hub.pages(thread), {"type": "cleared"})
        entries = await self._list.entries()
        entry = next((entry for entry in entries if entry.id == conversation), None)
        if entry is not None and entry.title:
            await self._list.save(entries, replace(entry, title=""))


def _refusal(text: str, *, with_files: bool = False) -> str | None:
    if not text.strip() and not with_files:
        return "Type a message first."
    if len(text) > MAX_MESSAGE_CHARS:
        return (
            f"Your message is {len(text):,} characters long; the limit is {MAX_MESSAGE_CHARS:,}. "
            "Please shorten it or send it in parts."
        )
    return None
