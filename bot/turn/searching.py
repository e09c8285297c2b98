"""A turn's knowledge: its question searched within what its asker may read, beside the rest of the turn's
preparation, and the passages that fit the knowledge's share of the prompt."""

from __future__ import annotations

import asyncio
import contextlib
import re

import structlog

from bot.knowledge.citing import Shown, shown_in_prompt
from bot.knowledge.passages import DEPLOYMENT_SCOPE, Access, Hit
from bot.knowledge.service import Knowledge
from bot.knowledge.tool import search_tool
from bot.loop import off_loop_if_large, within
from bot.tools.builtin import BuiltinTool
from bot.turn.message import Turn
from bot.turn.prompt import TOKENS_PER_TURN, PromptBuilder
from bot.turn.rewriting import FollowUpRewriter
from bot.usage.meter import UsageMeter

log = structlog.get_logger(__name__)

SEARCH_SECONDS = 3.0  # past this the answer goes on without knowledge (and says so)
START_WAIT_SECONDS = 10.0  # how long a question waits for knowledge still starting (KNOWLEDGE_START_WAIT_SECONDS)
HITS = 8
# What is searched of a question: the files' text the adapters append after it would drown its words.
QUESTION_CHARS = 1_000
_WORD = re.compile(r"\w+")
# A follow-up leans on the question before it ("And on Fridays?", "what about the staging one?", "does it work
# there too?"): it is searched with that question, or its words alone would find passages about something else.
FOLLOW_UP_WORDS = 4  # a question this short is one
REFERRING_WORDS = 10  # a question this short that opens with a connective or refers back is one
_CONNECTIVE = re.compile(r"\s*(and|but|or|also|so|then|what about|how about|same for|what if)\b", re.IGNORECASE)
_REFERRING = re.compile(r"\b(it|its|that|this|these|those|they|them|their|there|one|ones)\b", re.IGNORECASE)
EVERYONES = Access((DEPLOYMENT_SCOPE,))  # a turn its adapter gave no access: KNOWLEDGE_DIR's files only
UNAVAILABLE = "I couldn't search the knowledge just now, so this answer doesn't use it."


class TurnKnowledge:
    def __init__(
        self,
        knowledge: Knowledge | None,
        prompts: PromptBuilder,
        share: float,
        rewriter: FollowUpRewriter | None = None,
    ) -> None:
        """`rewriter`: ROUTER_MODEL, which makes a follow-up a question of its own before it is searched."""
        self.knowledge = knowledge
        self._rewriter = rewriter
        self._prompts = prompts
        self._share = share
        # Set once knowledge expected at start-up has started or failed to; None: none is starting.
        self.starting: asyncio.Event | None = None
        self.start_wait = START_WAIT_SECONDS

    async def search(self, turn: Turn, meter: UsageMeter | None = None, before: str = "") -> list[Hit] | None:
        """The relevant passages for the turn's question ([] when it has no knowledge); None when the search failed.
        A follow-up is searched with the question `before` it (rewritten by the router model where there is one). The
        question's embedding counts on `meter` as the embedding model's input, a rewrite as the router model's."""
        if turn.found is not None:
            return list(turn.found)
        if turn.again or _small_talk(turn.text):
            return []
        if self.knowledge is None and not await self._started(turn):
            return None
        if self.knowledge is None:
            return []
        access = turn.knowledge or EVERYONES
        question = await self._searched(turn, before, meter)
        try:
            hits = await within(self.knowledge.search(question, access, HITS), SEARCH_SECONDS)
        except Exception as error:  # noqa: BLE001 - whatever the engine or embedder raised, the answer goes on
            log.error("knowledge_search_failed", thread=turn.thread, error=str(error) or type(error).__name__)
            return None
        count_embedding(meter, self.knowledge, question)
        return hits

    async def _searched(self, turn: Turn, before: str, meter: UsageMeter | None) -> str:
        """What is searched for the turn: its question, a follow-up made whole by the router model, or joined to the
        question before it."""
        question = turn.text[:QUESTION_CHARS]
        if self._rewriter is None or not before.strip() or not is_follow_up(question):
            return searched_text(question, before)
        rewritten = await self._rewriter.rewrite(before[:QUESTION_CHARS], question, meter, QUESTION_CHARS)
        if rewritten is None:
            return searched_text(question, before)
        log.debug("follow_up_rewritten", thread=turn.thread, chars=len(rewritten))
        return rewritten

    async def _started(self, turn: Turn) -> bool:
        """False when knowledge expected at start-up isn't there within `start_wait`, still starting or failed to
        start: the answer then says it doesn't use it rather than leaving it out unsaid."""
        if self.starting is None:
            return True
        if not self.starting.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.starting.wait(), self.start_wait)
        if self.knowledge is None:
            state = "starting" if not self.starting.is_set() else "failed"
            log.warning("knowledge_not_ready", thread=turn.thread, state=state, waited=self.start_wait)
            return False
        return True

    def tool(self, turn: Turn, citable: list[Hit]) -> BuiltinTool | None:
        """The search as a tool for the turn's answer, when there is knowledge."""
        if self.knowledge is None:
            return None
        return search_tool(self.knowledge, turn.knowledge or EVERYONES, citable)

    async def shown(self, hits: list[Hit], system_tokens: int, question_tokens: int) -> Shown:
        """The hits that fit the knowledge's share of the prompt, leaving room for the system prompt and question."""
        if not hits:
            return Shown()
        budget = self._prompts.budget.prompt_tokens
        room = budget - system_tokens - question_tokens - TOKENS_PER_TURN
        size = sum(len(hit.passage.text) for hit in hits)
        limit = min(int(budget * self._share), room)
        return await off_loop_if_large(size, shown_in_prompt, hits, limit, self._prompts.count)


def count_embedding(meter: UsageMeter | None, knowledge: Knowledge, question: str) -> None:
    if meter is not None:
        meter.add(knowledge.embedder.name, meter.count_text(question), 0, kind="embedding")


def is_follow_up(text: str) -> bool:
    words = _WORD.findall(text[:QUESTION_CHARS])
    if len(words) <= FOLLOW_UP_WORDS:
        return True
    leaning = _CONNECTIVE.match(text) is not None or _REFERRING.search(text) is not None
    return len(words) <= REFERRING_WORDS and leaning


def searched_text(question: str, before: str) -> str:
    """What is searched for a question: a follow-up joined to the question before it."""
    question = question[:QUESTION_CHARS]
    if not before.strip() or not is_follow_up(question):
        return question
    return f"{before[: QUESTION_CHARS - len(question) - 1]}\n{question}"


def _small_talk(text: str) -> bool:
    """ "thanks!", "lol", "ok 👍": one word at most, and no code or number a search could find ("E4711" is searched)."""
    words = _WORD.findall(text[:QUESTION_CHARS])
    return len(words) < 2 and not any(character.isdigit() for word in words for character in word)
