"""The platform-neutral flow of one turn: history → prompt → model → live reply → history."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, cast

import structlog

from bot.breaker import CircuitBreaker
from bot.conversation_index import ConversationIndex
from bot.coordination import Coordination, TurnQuota
from bot.errors import FailureKind, ReplyFailure, failing
from bot.forget import ForgetReport, Forgetting, scope_of
from bot.locks import ConversationLocks
from bot.loop import finish_even_if_cancelled, off_loop_if_large
from bot.metrics import Metrics
from bot.model import ChatMessage, ModelBackend, ModelPiece
from bot.model_choice import ModelChoices
from bot.model_slots import ModelSlots
from bot.personas import Personas, Place, filled
from bot.prompt import Prompt, PromptBuilder, earlier_tool_messages
from bot.render import LiveRenderer, RenderResult
from bot.store import HistoryStore, StoredMessage, new_image_ids
from bot.surface import ReplySurface
from bot.text import clean_question
from bot.thinking import Thought
from bot.thought_view import ShowReasoning, ThoughtShow
from bot.tool_replies import shown_tool_turn, tool_turn_for
from bot.tools.agent import ToolExchange, ToolTurn
from bot.tools.events import Tail
from bot.tools.gate import ConfirmGate
from bot.tools.toolbox import ToolBox
from config.models import ModelCatalog, ModelChoice
from config.tools import ToolSettings, offers_tools

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Turn:
    """One message addressed to the bot, as an adapter sees it."""

    thread: str  # the conversation's key, starting with the platform: "discord:conv:123"
    author_id: str
    author_name: str
    text: str
    channel: str = ""  # where CHANNEL_TURNS_PER_MINUTE counts it ("" = no channel limit)
    notices: tuple[str, ...] = ()  # for the end of the reply (say, attachments that were skipped)
    images: tuple[str, ...] = ()  # data URLs of the images sent with it
    again: bool = False  # answer the conversation's last question again (its text is unused)
    places: tuple[Place, ...] = ()  # where settings (persona, model, tools) apply to it, the most specific first
    workspace: str = ""  # the Slack workspace it comes from: its quota counters are that workspace's alone
    received_at: float = field(default_factory=time.monotonic)

    @property
    def platform(self) -> str:
        return self.thread.split(":", 1)[0]

    @property
    def quota_scope(self) -> str:
        """Where its quota counters live: the platform, or the platform's workspace (whose ids may repeat others')."""
        return scope_of(self.platform, self.workspace)


@dataclass(frozen=True)
class _Prepared:
    prompt: Prompt
    messages: list[ChatMessage]  # the prompt's, its images filled in
    model: ModelChoice
    first_reply: bool  # the conversation's first answer
    notices: tuple[str, ...]
    tools_here: bool | None = None  # whether the turn's place offers tools (None: not said)


class ChatCore:
    def __init__(
        self,
        backend: ModelBackend,
        store: HistoryStore,
        prompts: PromptBuilder,
        models: ModelCatalog,
        *,
        coordination: Coordination | None = None,
        quota: TurnQuota | None = None,
        breaker: CircuitBreaker | None = None,
        metrics: Metrics | None = None,
        max_concurrent_replies: int = 200,
        tools: ToolBox | None = None,
        gate: ConfirmGate | None = None,
        personas: Personas | None = None,
        show_reasoning: ShowReasoning = ShowReasoning.COLLAPSED,
    ) -> None:
        """`max_concurrent_replies`: answers streamed from the model at once; more wait their turn; `show_reasoning`:
        what a thinking model's reply shows of its thought (see bot.thought_view)."""
        history = store.settings
        self._backend = backend
        self._store = store
        self._coordination = coordination or Coordination(store.client, history.key_prefix, history.ttl_seconds)
        self._metrics = metrics or Metrics()
        self._prompts = prompts
        self._quota = quota or TurnQuota(self._coordination)
        self._choices = ModelChoices(models, store, breaker or CircuitBreaker())
        self._locks = ConversationLocks(store.client, store.lock_key)
        errors = self._metrics.redis_errors.inc
        self._index = ConversationIndex(store.client, history.key_prefix, history.ttl_seconds, errors)
        self._forgetting = Forgetting(store, self._locks, self._index, self._quota, errors)
        self._slots = ModelSlots(self._metrics, max_concurrent_replies)
        self._draining = False
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._rendering: dict[str, LiveRenderer] = {}  # answers being written, by conversation
        self.tools = tools or ToolBox(ToolSettings())
        self.personas = personas
        self.gate = gate
        self._show_reasoning = show_reasoning

    @property
    def models(self) -> ModelCatalog:
        return self._choices.catalog

    # What adapters ask besides answers; each raises STORE_UNAVAILABLE without Redis.

    async def model_for(self, thread: str) -> ModelChoice:
        return await self._choices.of(thread)

    async def own_model(self, thread: str) -> ModelChoice | None:
        """The model chosen for `thread`, or pinned to it with its first answer (None: none yet: its place's or the
        default answers it)."""
        return self.models.find(await self._store.chosen_model(thread))

    async def choose_model(self, thread: str, name: str) -> ModelChoice | None:
        """Answer `thread` with the model called `name` from now on; None if there is none such."""
        return await self._choices.choose(thread, name)

    async def turns_left(self, scope: str, user: str) -> int | None:
        """The questions `user` may still ask this minute (None: unlimited); `scope`: a turn's `quota_scope`."""
        return await self._quota.left(scope, user)

    async def history(self, thread: str) -> list[StoredMessage]:
        return await self._store.read(thread)

    async def aclose(self) -> None:
        await self._backend.aclose()

    async def answer(self, turn: Turn, surface: ReplySurface) -> RenderResult:
        """Answer one turn on `surface`; never raises for model, store or prompt failures."""
        self._active += 1
        self._idle.clear()
        try:
            with self._metrics.in_flight.labels(turn.platform).track_inprogress():
                result = await self._answer(turn, surface)
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()
        self._metrics.turn_finished(turn.platform, turn.thread, turn.received_at, result)
        return result

    async def reset(self, thread: str, *, with_model: bool = False) -> None:
        """Forget `thread` (`with_model`: its model choice too); this process's answer being written there stops
        first (its tool calls cancelled)."""
        self.stop(thread)
        async with self._locks.hold(thread):
            await self._store.clear(thread, with_model=with_model)

    async def forget_server(self, server: Place, channels: Sequence[Place] = ()) -> int:
        """The bot left `server`: what it and its channels set (`channels`, and those listed as they set something)
        and every conversation held there are deleted; how many conversations (raises STORE_UNAVAILABLE)."""
        if self.personas is not None:
            await self.personas.forget_server(server, channels)
        return await self._forgetting.server(server, partial(self.reset, with_model=True))

    async def forget_person(self, scope: str, user: str, threads: Sequence[str] = ()) -> ForgetReport:
        """/forget-me: `user`'s own conversations (and `threads`, others known to be theirs) go, their messages and
        the answers to them leave shared ones, and their question counters go (raises STORE_UNAVAILABLE)."""
        return await self._forgetting.person(scope, user, threads)

    def stop(self, thread: str) -> bool:
        """Stop this process's answer in `thread`, keeping what it showed; False if there is none."""
        renderer = self._rendering.get(thread)
        if renderer is not None:
            renderer.stop(ReplyFailure(FailureKind.STOPPED))
        return renderer is not None

    def stop_taking_turns(self) -> None:
        """From now on a turn gets a short "restarting" note instead of an answer."""
        self._draining = True

    async def drain(self, grace: float) -> bool:
        """Wait up to `grace` seconds for the replies being written; True if all finished."""
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
            return True
        except TimeoutError:
            return False

    async def _answer(self, turn: Turn, surface: ReplySurface) -> RenderResult:
        try:
            turn = await self._admit(turn)
        except ReplyFailure as failure:
            return await self._refuse(turn, surface, failure)
        async with contextlib.AsyncExitStack() as held:
            try:  # taking the conversation fails too when Redis is down: the person is told why
                fence = await held.enter_async_context(self._locks.hold(turn.thread))
                prepared = await self._prepare(turn, fence)
                breaker = self._choices.breaker(prepared.model)
                breaker.check()
            except ReplyFailure as failure:
                return await self._refuse(turn, surface, failure)
            renderer = LiveRenderer(
                surface,
                notices=turn.notices + prepared.notices + await self._left_out_notice(turn, prepared.prompt),
                footer=surface.model_line(label, first_reply=prepared.first_reply)
                if (label := self._choices.label(prepared.model))
                else "",
            )
            tool_turn = self._tool_turn(turn, surface, prepared)
            self._rendering[turn.thread] = renderer
            thoughts = ThoughtShow(self._show_reasoning, surface)
            try:
                result = await renderer.render(thoughts.present(self._pieces(prepared, surface, renderer, tool_turn)))
            except asyncio.CancelledError:
                # Stopping: an answer the person already sees whole is still remembered.
                shown = renderer.result()
                await finish_even_if_cancelled(self._remember(turn, shown, fence, tool_turn, thoughts.prefix))
                raise
            finally:
                del self._rendering[turn.thread]
            breaker.record(result.failure, answered=bool(result.text))
            return await finish_even_if_cancelled(self._remember(turn, result, fence, tool_turn, thoughts.prefix))

    def _tool_turn(self, turn: Turn, surface: ReplySurface, prepared: _Prepared) -> ToolTurn | None:
        """The answer's tool loop, when its model is offered tools and some are connected."""
        if prepared.tools_here is False or not self.tools.specs():
            return None
        if not offers_tools(prepared.model, self.models, self.tools.settings):
            return None
        settings = prepared.model.settings

        def ask_model(messages: list[ChatMessage], offered: list[dict[str, Any]]) -> AsyncIterator[ModelPiece]:
            return self._slots.pieces(self._backend.stream(messages, settings, offered))

        room = self._prompts.budget.prompt_tokens - prepared.prompt.tokens
        asker = (turn.author_id, turn.author_name)
        return tool_turn_for(
            ask_model, self.tools, self.gate, asker, surface, room_tokens=room, count=self._prompts.count
        )

    def _pieces(
        self, prepared: _Prepared, surface: ReplySurface, renderer: LiveRenderer, tool_turn: ToolTurn | None
    ) -> AsyncIterator[str | Tail | Thought]:
        if tool_turn is None:  # no tools offered: the model's stream is text (and thoughts) only
            pieces = self._backend.stream(prepared.messages, prepared.model.settings)
            return cast(AsyncIterator[str | Thought], self._slots.pieces(pieces))
        return shown_tool_turn(tool_turn, prepared.messages, surface, renderer)

    async def _admit(self, turn: Turn) -> Turn:
        """The turn with its text cleaned, or why it is refused before anything is stored."""
        if self._draining:
            raise ReplyFailure(FailureKind.RESTARTING, "shutting down")
        cleaned = turn if turn.again else replace(turn, text=clean_question(turn.text))
        await self._quota.check(turn.quota_scope, turn.author_id, turn.channel)
        return cleaned

    async def _refuse(self, turn: Turn, surface: ReplySurface, failure: ReplyFailure) -> RenderResult:
        log.warning("turn_refused", thread=turn.thread, kind=failure.kind.name, detail=failure.detail)
        return await LiveRenderer(surface, notices=turn.notices).render(failing(failure))

    async def _prepare(self, turn: Turn, fence: str) -> _Prepared:
        """Store the person's message (refused if it can never fit); the prompt for its model."""
        if turn.again:
            stored = self._store.retry_turn(turn.thread, fence)
        else:
            tokens = await off_loop_if_large(len(turn.text), self._prompts.check_fits, turn.text)
            images = new_image_ids(turn.images)
            message = StoredMessage(
                "user", turn.text, turn.author_id, turn.author_name, time.time(), tokens, (*images,)
            )
            stored = self._store.begin_turn(turn.thread, message, fence, images)
        noted = self._index.note(turn.thread, turn.places, scope=turn.quota_scope, person=turn.author_id)
        conversation, place, _ = await asyncio.gather(stored, self._place_settings(turn), noted)
        system_prompt, place_model, tools_here = place
        history = conversation.messages
        first_reply = not any(stored.role == "assistant" for stored in history)
        model = await self._choices.for_turn(turn.thread, conversation.model, place_model, first_reply=first_reply)
        size = sum(len(stored.content) for stored in history)
        build = partial(self._prompts.build, sees_images=model.vision, system_prompt=system_prompt)
        prompt = await off_loop_if_large(size, build, history)
        urls = await self._store.images(turn.thread, prompt.images)
        notices = self._choices.image_notices(model, sent=len(turn.images), missing=len(prompt.images) - len(urls))
        return _Prepared(prompt, prompt.with_images(urls), model, first_reply, notices, tools_here)

    async def _place_settings(self, turn: Turn) -> tuple[str | None, str, bool | None]:
        """What the turn's places set: the persona, its placeholders filled (None: the default as it is, its tokens
        counted once); the model of new conversations there ("": none); whether tools are offered there."""
        if self.personas is None:
            return None, "", None
        settings = await self.personas.settings(turn.places)
        text = filled(settings.persona.text, user=turn.author_name, places=turn.places)
        return None if text == self.personas.default else text, settings.model, settings.tools

    async def _left_out_notice(self, turn: Turn, prompt: Prompt) -> tuple[str, ...]:
        """Said once per conversation, the first time its oldest messages no longer fit."""
        if not prompt.left_out:
            return ()
        try:
            if not await self._coordination.claim(f"notice:left-out:{turn.thread}", self._store.settings.ttl_seconds):
                return ()
        except ReplyFailure:
            return ()
        return (
            f"This conversation is longer than I can read at once: only the last {prompt.used} messages were used.",
        )

    async def _remember(
        self, turn: Turn, result: RenderResult, fence: str, tool_turn: ToolTurn | None = None, before: str = ""
    ) -> RenderResult:
        """Store the answer (without `before` it, the thought's line); one that failed is stored with its reason
        (shown again on a reload, and the model told it went unanswered: see bot.prompt)."""
        failed = "" if result.complete or result.failure is None else result.failure.reason
        exchange = tool_turn.exchange if tool_turn is not None else ToolExchange(result.text.removeprefix(before))
        text, tools = exchange.text, tuple(exchange.messages)
        # Counted as later prompts send it: the calls, their results shortened, and the text.
        counted = json.dumps(earlier_tool_messages(tools, text), ensure_ascii=False) if tools else text
        tokens = 0 if failed else await off_loop_if_large(len(counted), self._prompts.count, counted)
        try:
            reply = StoredMessage("assistant", text, at=time.time(), tokens=tokens, failed=failed, tools=tools)
            await self._store.add_reply(turn.thread, reply, fence)
        except ReplyFailure as failure:
            log.error("reply_not_saved", thread=turn.thread, detail=failure.detail)
            return replace(result, saved=False)
        return result
