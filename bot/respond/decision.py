"""Whether a message nobody addressed to the bot gets an answer, in a channel set to answer without a mention
(`/respond`): "all" answers every message with something in it; "questions" only questions the bot can help with. The
decision is a fast step before the answer: a cheap look at the text first (who it is for, small talk, whether it asks
anything), then the knowledge's relevance, then, where ROUTER_MODEL is set and the knowledge found nothing, a one-word
classifier prompt. Every decision is logged at debug level with its reason, and counted."""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from bot.errors import ReplyFailure
from bot.knowledge.passages import Access, Hit
from bot.knowledge.service import Knowledge
from bot.knowledge.vectors import relevance_for
from bot.loop import within
from bot.metrics import Metrics
from bot.model.backends import ChatMessage, ModelBackend
from bot.respond.words import asks_something, small_talk
from bot.turn.rewriting import small_model
from bot.turn.searching import EVERYONES, HITS, QUESTION_CHARS, SEARCH_SECONDS, count_embedding
from bot.usage.accounting import Accounting, Payer
from bot.usage.meter import UsageMeter
from config.models import ModelCatalog, ModelSettings
from config.respond import RespondSettings

log = structlog.get_logger(__name__)


class RespondMode(enum.StrEnum):
    MENTIONS = "mentions"  # today's behaviour: only what is addressed to the bot
    QUESTIONS = "questions"
    ALL = "all"


# Why a message is or isn't answered, as the log and the metric say it.
ANSWER_ALL, ANSWER_KNOWN, ANSWER_ROUTED, ANSWER_QUESTION = "all", "knowledge", "router_yes", "question"
SKIP_EMPTY, SKIP_ELSEWHERE, SKIP_SMALL_TALK = "empty", "to_someone_else", "small_talk"
SKIP_NOT_A_QUESTION, SKIP_NOT_COVERED, SKIP_ROUTED = "not_a_question", "not_covered", "router_no"
SKIP_LATE, SKIP_QUOTA, SKIP_WEAK = "late", "quota", "weakly_covered"
# Skips that are questions the bot could not answer: what `/knowledge gaps` lists.
UNANSWERABLE = frozenset({SKIP_NOT_COVERED, SKIP_ROUTED, SKIP_WEAK})

ROUTER_SECONDS = 3.0  # a classifier slower than this is taken as a "no": the message gets no answer
ROUTER_TOKENS = 3
ROUTER_TEMPERATURE = 0.1  # some servers refuse 0
ROUTER_TOOLS_LISTED = 20

ROUTER_PROMPT = (
    "You decide whether an assistant should answer a message posted in a community's help channel. Answer YES if the "
    "message asks a question or for help that the assistant can answer{with_tools}; answer NO for chatter, "
    "greetings, thanks, opinions, or questions only the people in the channel can answer. Reply with one word: YES "
    "or NO."
)


AccessOf = Callable[[], Awaitable[Access | None]]
HasHelpers = Callable[[], Awaitable[bool]]  # whether the channel has people to hand a question to

# RESPOND_MIN_CONFIDENCE's default per embedding model, measured by bench.respond (docs/BENCHMARKS.md, "The confidence
# gate"): above (nearly) all the questions the knowledge wrongly found passages for, below nearly all it rightly did.
# Another model: its own threshold of meaning (bot.knowledge.vectors).
CONFIDENCE = {"all-minilm-l6-v2": 0.4, "wordllama-l2-supercat-256": 0.3}


@dataclass(frozen=True)
class Unprompted:
    """A message in a channel that answers without a mention, as its adapter sees it."""

    platform: str
    channel: str  # for the log
    message: str  # its id, for the log
    text: str  # without the bot's mention
    to_someone_else: bool = False  # a reply to another person, or a mention of other people and not the bot
    files: int = 0
    payer: Payer | None = None  # whose usage the decision's search and router count as


@dataclass(frozen=True)
class Decision:
    answer: bool
    reason: str
    found: tuple[Hit, ...] | None = None  # the knowledge searched for it: its answer uses this, not a new search

    @property
    def unanswerable(self) -> bool:
        """A question the bot stayed silent on because it could not answer it."""
        return self.reason in UNANSWERABLE


class Responder:
    def __init__(
        self,
        backend: ModelBackend,
        models: ModelCatalog,
        settings: RespondSettings,
        metrics: Metrics,
        knowledge: Callable[[], Knowledge | None],
        tool_names: Callable[[], Sequence[str]] = tuple,
        accounting: Accounting | None = None,
    ) -> None:
        """`knowledge`: the knowledge in use now (it may start after the bot); `tool_names`: the tools offered."""
        self._backend = backend
        self._router = _router_model(models, settings.router_model)
        self.max_delay_seconds = settings.max_delay_seconds
        self._min_confidence = settings.min_confidence
        self._metrics = metrics
        self._accounting = accounting
        self._knowledge = knowledge
        self._tool_names = tool_names

    async def decide(
        self, message: Unprompted, mode: RespondMode, access: AccessOf, helpers: HasHelpers | None = None
    ) -> Decision:
        """Whether `message` gets an answer in a channel in `mode`, and why; logged and counted. `access`: what its
        author may be answered from, asked only when the knowledge is searched; `helpers`: whether the channel has
        people to hand a weakly covered question to, asked only for one (without them it is answered as before)."""
        started = time.perf_counter()
        meter = UsageMeter() if self._accounting is None else self._accounting.meter()
        decision = await self._decide(message, mode, access, meter, helpers)
        seconds = time.perf_counter() - started
        if meter.calls and message.payer is not None and self._accounting is not None:
            await self._accounting.record(message.payer, meter.calls)  # an answer's turn searches no more: it was here
        self.count(message.platform, decision)
        self._metrics.respond_decision.observe(seconds)
        log.debug(
            "respond_decision",
            platform=message.platform,
            channel=message.channel,
            message=message.message,
            mode=mode.value,
            answer=decision.answer,
            reason=decision.reason,
            relevance=_best(decision.found),
            ms=round(seconds * 1000, 2),
        )
        return decision

    def count(self, platform: str, decision: Decision) -> None:
        outcome = "answered" if decision.answer else "skipped"
        self._metrics.unprompted.labels(platform, outcome, decision.reason).inc()

    def dropped(self, platform: str, reason: str) -> None:
        """A message decided for an answer got none after all: too late (RESPOND_MAX_DELAY_SECONDS), or over quota."""
        self._metrics.unprompted.labels(platform, "skipped", reason).inc()
        if reason == SKIP_LATE:
            self._metrics.unprompted_late.labels(platform).inc()

    async def _decide(
        self, message: Unprompted, mode: RespondMode, access: AccessOf, meter: UsageMeter, helpers: HasHelpers | None
    ) -> Decision:
        text = message.text.strip()
        if not text:
            return Decision(False, SKIP_EMPTY)  # nothing to answer, or only files, or only a mention of someone
        if mode is RespondMode.ALL:
            return Decision(True, ANSWER_ALL)
        if message.to_someone_else:
            return Decision(False, SKIP_ELSEWHERE)
        if small_talk(text):
            return Decision(False, SKIP_SMALL_TALK)
        if not asks_something(text):
            return Decision(False, SKIP_NOT_A_QUESTION)
        knowledge = self._knowledge()
        found: list[Hit] | None = None
        if knowledge is not None:
            found = await self._search(knowledge, text, await access())
            if found is not None:
                count_embedding(meter, knowledge, text[:QUESTION_CHARS])
            if found and helpers is not None and self._weak(knowledge, found) and await helpers():
                return Decision(False, SKIP_WEAK, tuple(found))  # for the helpers, not guessed
            if found:
                return Decision(True, ANSWER_KNOWN, tuple(found))
        if self._router is not None:
            yes = await self._ask_router(self._router, text, meter)
            return Decision(yes, ANSWER_ROUTED if yes else SKIP_ROUTED, () if found is not None else None)
        if knowledge is not None:
            return Decision(False, SKIP_NOT_COVERED)
        return Decision(True, ANSWER_QUESTION)  # no knowledge to judge by: the model answers what is asked

    def _weak(self, knowledge: Knowledge, found: Sequence[Hit]) -> bool:
        """Found only below RESPOND_MIN_CONFIDENCE (by default the embedding model's measured CONFIDENCE); a hit
        without a vector yet (a re-embed) is not judged."""
        floor = self._min_confidence
        if floor is None:
            name = knowledge.embedder.name
            floor = CONFIDENCE.get(name, relevance_for(name).meaning)
        return not any(math.isnan(hit.relevance) or hit.relevance >= floor for hit in found)

    async def _search(self, knowledge: Knowledge, text: str, access: Access | None) -> list[Hit] | None:
        try:
            return await within(knowledge.search(text[:QUESTION_CHARS], access or EVERYONES, HITS), SEARCH_SECONDS)
        except Exception as error:  # noqa: BLE001 - whatever the engine or embedder raised, the message is skipped
            log.error("respond_search_failed", error=str(error) or type(error).__name__)
            return None

    async def _ask_router(self, model: ModelSettings, text: str, meter: UsageMeter) -> bool:
        """The classifier's YES or NO; anything else, a failure or a slow answer is a no."""
        names = list(self._tool_names())[:ROUTER_TOOLS_LISTED]
        with_tools = f", alone or with its tools ({', '.join(names)})" if names else ""
        messages: list[ChatMessage] = [
            {"role": "system", "content": ROUTER_PROMPT.format(with_tools=with_tools)},
            {"role": "user", "content": text[:QUESTION_CHARS]},
        ]
        try:
            said = await asyncio.wait_for(self._collect(messages, model, meter), ROUTER_SECONDS)
        except (ReplyFailure, TimeoutError) as error:
            log.warning("respond_router_failed", model=model.model_id, error=str(error) or type(error).__name__)
            return False
        return said.strip().lstrip("*\"' ").upper().startswith("YES")

    async def _collect(self, messages: list[ChatMessage], model: ModelSettings, meter: UsageMeter) -> str:
        # A thinking model's thought is not its verdict: only its text counts.
        pieces = self._backend.stream(messages, model, meter=meter)
        return "".join([piece async for piece in pieces if isinstance(piece, str)])


def _best(found: Sequence[Hit] | None) -> float | None:
    """The best relevance the knowledge found, for the log (what RESPOND_MIN_CONFIDENCE is compared with)."""
    known = [hit.relevance for hit in found or () if not math.isnan(hit.relevance)]
    return round(max(known), 3) if known else None


def _router_model(models: ModelCatalog, name: str | None) -> ModelSettings | None:
    """ROUTER_MODEL's settings, asked for a word."""
    return None if name is None else small_model(models, name, ROUTER_TOKENS, ROUTER_TEMPERATURE)
