"""👍 / 👎 under each finished answer of the web chat: one vote per browser and answer (the person is the browser,
`web:<chat_id>`, as its questions' asker), changeable, kept with every platform's votes
(adapters.shared.feedback.records). A 👎 may say why, in a box under the answer (optional).

Answer ids. Each answer gets a random token when it starts (`new_token`), kept with the stored answer (its view, see
adapters.web.redraw), so that a reload draws the same buttons. The page knows the answer as `<conversation>.<token>`
(`page_id`); the feedback store as `web:<chat_id>:<conversation>:<token>` (`feedback_id`), built from the cookie of
the browser voting: a page of another browser naming it names an answer of its own browser, which doesn't exist. A
vote in a conversation the browser no longer lists (deleted, or Forget me) is refused the same way, with GONE.

The frames (besides those in adapters.web):

- page → server: `vote` {answer, up: true | false}; `vote_reason` {answer, reason} (after a 👎, up to
  REASON_MAX_CHARS; an empty one is not sent).
- server → page: `voted` {answer, vote: "up" | "down" | null, status: "new" | "changed" | "unchanged" | "missing"} to
  every page of this process showing the conversation (null: it can't take votes); to the page that voted, a
  `notice` with GONE when the answer can't take votes; after a reason, REASON_THANKS (info) or GONE. In `hello`, each
  answer that can take votes has `answer` and, if this browser voted on it, `vote`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import structlog

from adapters.shared.feedback.records import Feedback, VoteOutcome
from adapters.shared.feedback.vote_replies import GONE, REASON_MAX_CHARS, REASON_THANKS
from adapters.shared.platform_jobs import Kept, PlatformJobs
from adapters.web.conversations import Hub, Page, is_conversation_id, thread_of
from bot.errors import ReplyFailure
from bot.reply.render import failure_note
from bot.state.store import StoredMessage

log = structlog.get_logger(__name__)

NAME = "web"
SCOPE = "web"  # the web chat's gaps are listed together (`Feedback.gaps("web")`)
VIEW_KEY = "answer"  # where the stored answer keeps its token (StoredMessage.view)
VOTES = ("up", "down")
_TOKEN = re.compile(r"[0-9a-f]{16}")


class VotingPage(Page, Protocol):
    def notice(self, text: str, *, level: str = "warning") -> None: ...


def new_token() -> str:
    return secrets.token_hex(8)


def person_of(chat_id: str) -> str:
    """The browser as a voter and asker (what Forget me deletes)."""
    return f"{NAME}:{chat_id}"


def page_id(conversation: str, token: str) -> str:
    return f"{conversation}.{token}"


def feedback_id(chat_id: str, conversation: str, token: str) -> str:
    return f"{NAME}:{chat_id}:{conversation}:{token}"


def parse(answer: object) -> tuple[str, str] | None:
    """A page's answer id: its conversation and token; None for anything else."""
    if not isinstance(answer, str):
        return None
    conversation, _, token = answer.partition(".")
    return (conversation, token) if is_conversation_id(conversation) and _TOKEN.fullmatch(token) else None


def kept(chat_id: str, conversation: str, token: str) -> Kept:
    """Where an answer of the browser's conversation is kept for votes (PlatformJobs.answer)."""
    return Kept(feedback_id(chat_id, conversation, token), SCOPE, "", person_of(chat_id), conversation)


def token_of(message: StoredMessage) -> str | None:
    """The token of a stored answer that can take votes (complete: with text, not failed), else None."""
    view = message.view if isinstance(message.view, dict) else {}
    token = view.get(VIEW_KEY)
    if message.role != "assistant" or message.failed or not message.content.strip() or not isinstance(token, str):
        return None
    return token if _TOKEN.fullmatch(token) else None


class Ballots:
    """The browser's votes on the answers of a conversation drawn again, read in one round trip."""

    def __init__(self, feedback: Feedback) -> None:
        self._feedback = feedback

    async def of(self, chat_id: str, conversation: str, tokens: Sequence[str]) -> dict[str, str]:
        """token → "up" | "down", for those `tokens` the browser voted on; {} if Redis can't say."""
        ids = {feedback_id(chat_id, conversation, token): token for token in tokens}
        try:
            votes = await self._feedback.votes_of(list(ids), person_of(chat_id))
        except ReplyFailure:
            return {}  # drawn without them: a click still says where the vote stands
        return {ids[answer]: vote for answer, vote in votes.items() if vote in VOTES}


def with_votes(
    history: list[dict[str, Any]], stored: Sequence[StoredMessage], conversation: str, votes: Mapping[str, str]
) -> list[dict[str, Any]]:
    """`hello`'s history entries (one per stored message), each answer that can take votes with its id and the
    browser's vote on it."""
    for entry, message in zip(history, stored, strict=True):
        if (token := token_of(message)) is not None:
            entry["answer"] = page_id(conversation, token)
            if token in votes:
                entry["vote"] = votes[token]
    return history


async def vote(page: VotingPage, hub: Hub, jobs: PlatformJobs, event: Mapping[str, Any]) -> None:
    """The page's 👍 (`up`) or 👎 on one of its browser's answers: every page of the conversation shows it."""
    answer, up = event.get("answer"), event.get("up")
    where = parse(answer)
    if where is None or not isinstance(up, bool):
        log.warning("web_vote_unreadable")
        return
    conversation, token = where
    try:
        if await _listed(hub, page.chat_id, conversation):
            ballot = feedback_id(page.chat_id, conversation, token)
            outcome = await jobs.feedback.vote(ballot, person_of(page.chat_id), up)
        else:
            outcome = VoteOutcome("missing", 0, 0)
    except ReplyFailure as failure:
        page.notice(failure_note(failure))
        return
    if outcome.status in ("new", "changed"):
        jobs.metrics.votes.labels(NAME, "up" if up else "down").inc()
    shown = None if outcome.missing else ("up" if up else "down")
    pages = {*hub.pages(thread_of(page.chat_id, conversation)), page}
    hub.send(pages, {"type": "voted", "answer": answer, "vote": shown, "status": outcome.status})
    if outcome.missing:
        page.notice(GONE)


async def give_reason(page: VotingPage, hub: Hub, jobs: PlatformJobs, event: Mapping[str, Any]) -> None:
    """What was wrong with an answer the browser gave 👎, kept with its vote."""
    where, reason = parse(event.get("answer")), event.get("reason")
    if where is None or not isinstance(reason, str):
        log.warning("web_vote_reason_unreadable")
        return
    if not reason.strip():
        return
    conversation, token = where
    try:
        given = await _listed(hub, page.chat_id, conversation) and await jobs.feedback.give_reason(
            feedback_id(page.chat_id, conversation, token), person_of(page.chat_id), reason[:REASON_MAX_CHARS]
        )
    except ReplyFailure as failure:
        page.notice(failure_note(failure))
        return
    page.notice(REASON_THANKS if given else GONE, level="info" if given else "warning")


async def _listed(hub: Hub, chat_id: str, conversation: str) -> bool:
    """Whether the browser still has the conversation (raises STORE_UNAVAILABLE)."""
    return any(entry.id == conversation for entry in await hub.conversations.entries(chat_id))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
