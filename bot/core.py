"""The platform-neutral flow of one turn: admitted → history → prompt → model (and tools) → live reply → history.
Each step is a module of its own (bot.turn.admission, bot.turn.preparation, bot.turn.answering, bot.turn.remembering);
ChatCore.answer runs them in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import replace
from functools import partial

from bot.errors import FailureKind, ReplyFailure
from bot.knowledge.service import Knowledge
from bot.loop import finish_even_if_cancelled
from bot.metrics import Metrics
from bot.model.backends import ModelBackend
from bot.model.breaker import CircuitBreaker
from bot.model.choice import ModelChoices
from bot.reply.render import LiveRenderer, RenderResult
from bot.reply.surface import ReplySurface
from bot.reply.thought_view import ShowReasoning, ThoughtShow
from bot.respond.decision import Responder
from bot.state.conversation_index import ConversationIndex
from bot.state.coordination import Coordination, TurnQuota
from bot.state.forget import ForgetReport, Forgetting
from bot.state.locks import ConversationLocks
from bot.state.personas import Personas, Place
from bot.state.store import HistoryStore, StoredMessage
from bot.tools.gate import ConfirmGate
from bot.tools.toolbox import ToolBox
from bot.turn.admission import Admission, refuse
from bot.turn.answering import Answering
from bot.turn.message import Turn
from bot.turn.model_slots import ModelSlots
from bot.turn.preparation import Preparation, Prepared
from bot.turn.prompt import PromptBuilder
from bot.turn.remembering import Remembering
from bot.turn.rewriting import follow_up_rewriter
from bot.turn.searching import TurnKnowledge
from bot.usage.accounting import Accounting, Spend, UsageCounters, payer_of
from bot.usage.ledger import UsageLedger
from config.models import ModelCatalog, ModelChoice
from config.respond import RespondSettings
from config.tools import ToolSettings
from config.usage import UsageSettings

__all__ = ["ChatCore", "Turn"]


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
        knowledge: Knowledge | None = None,
        knowledge_share: float = 0.3,
        respond: RespondSettings | None = None,
        usage: UsageSettings | None = None,
    ) -> None:
        """`max_concurrent_replies`: answers streamed from the model at once; more wait their turn; `show_reasoning`:
        what a thinking model's reply shows of its thought (see bot.reply.thought_view)."""
        history = store.settings
        self._backend = backend
        self._store = store
        coordination = coordination or Coordination(store.client, history.key_prefix, history.ttl_seconds)
        self._metrics = metrics or Metrics()
        self._admission = Admission(quota or TurnQuota(coordination))
        self._choices = ModelChoices(models, store, breaker or CircuitBreaker())
        self._locks = ConversationLocks(store.client, store.lock_key)
        errors = self._metrics.redis_errors.inc
        index = ConversationIndex(store.client, history.key_prefix, history.ttl_seconds, errors)
        self.forgetting = Forgetting(store, self._locks, index, self._admission.quota, errors)
        respond = respond or RespondSettings()
        rewriter = follow_up_rewriter(backend, models, respond.router_model)
        turn_knowledge = TurnKnowledge(knowledge, prompts, knowledge_share, rewriter)
        self._preparation = Preparation(store, prompts, self._choices, index, coordination, personas, turn_knowledge)
        slots = ModelSlots(self._metrics, max_concurrent_replies)
        toolbox = tools if tools is not None else ToolBox(ToolSettings())
        self._answering = Answering(backend, slots, prompts, models, toolbox, gate, turn_knowledge)
        self._remembering = Remembering(store, prompts)
        usage = usage or UsageSettings()
        ledger = UsageLedger(store.client, history.key_prefix, retention_days=usage.retention_days, on_error=errors)
        counters = UsageCounters(self._metrics.registry)
        self.accounting = Accounting(ledger, usage, models, counters, prompts.count, prompts.budget.prompt_tokens)
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._rendering: dict[str, LiveRenderer] = {}  # answers being written, by conversation
        self._show_reasoning = show_reasoning
        self.responder = Responder(
            backend,
            models,
            respond,
            self._metrics,
            lambda: self.knowledge,
            lambda: [spec["function"]["name"] for spec in toolbox.specs()],
            self.accounting,
        )
        if knowledge is not None:
            self.use_knowledge(knowledge)

    @property
    def models(self) -> ModelCatalog:
        return self._choices.catalog

    @property
    def tools(self) -> ToolBox:
        return self._answering.tools

    @property
    def gate(self) -> ConfirmGate | None:
        return self._answering.gate

    @property
    def knowledge(self) -> Knowledge | None:
        return self._preparation.knowledge.knowledge

    def expect_knowledge(self, wait_seconds: float) -> asyncio.Event:
        """Knowledge is starting with the bot: questions wait up to `wait_seconds` for it, then say they go without.
        Set the event returned once it has started (or failed to)."""
        started = asyncio.Event()
        self._preparation.knowledge.starting = started
        self._preparation.knowledge.start_wait = wait_seconds
        return started

    def use_knowledge(self, knowledge: Knowledge) -> None:
        """Search `knowledge` for every turn that has access to some from now on (its indexing counted as usage)."""
        knowledge.count_indexed = self.accounting.count_indexing
        self._preparation.knowledge.knowledge = knowledge

    @property
    def personas(self) -> Personas | None:
        return self._preparation.personas

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
        return await self._admission.quota.left(scope, user)

    async def admit(self, turn: Turn) -> Turn:
        """Take the turn's quota now (raises ReplyFailure, QUOTA, past it): a turn nobody asked for is given up
        before its adapter opens anything for it. The turn returned is answered without taking it again."""
        await self._admission.quota.check(turn.quota_scope, turn.author_id, turn.channel)
        return replace(turn, admitted=True)

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
        """Forget `thread` (`with_model`: its model choice too) and what other parts keep of it (Forgetting.on_reset);
        this process's answer being written there stops first (its tool calls cancelled)."""
        self.stop(thread)
        async with self._locks.hold(thread):
            await self._store.clear(thread, with_model=with_model)
        await self.forgetting.kept_elsewhere(thread)

    async def forget_server(self, server: Place, channels: Sequence[Place] = ()) -> int:
        """The bot left `server`: what it and its channels set (`channels`, and those listed as they set something)
        and every conversation held there are deleted; how many conversations (raises STORE_UNAVAILABLE)."""
        if self.personas is not None:
            await self.personas.forget_server(server, channels)
        await self.accounting.ledger.forget_scope(server.key)
        return await self.forgetting.server(server, partial(self.reset, with_model=True))

    async def forget_person(self, scope: str, user: str, threads: Sequence[str] = ()) -> ForgetReport:
        """/forget-me: `user`'s own conversations (and `threads`, others known to be theirs) go, their messages and
        the answers to them leave shared ones, their question counters and usage records go (raises
        STORE_UNAVAILABLE); `scope`: their turns' `quota_scope`."""
        report, days = await asyncio.gather(
            self.forgetting.person(scope, user, threads), self.accounting.ledger.forget_person(f"{scope}:{user}")
        )
        return replace(report, usage_days=days)

    def stop(self, thread: str) -> bool:
        """Stop this process's answer in `thread`, keeping what it showed; False if there is none."""
        renderer = self._rendering.get(thread)
        if renderer is not None:
            renderer.stop(ReplyFailure(FailureKind.STOPPED))
        return renderer is not None

    def stop_taking_turns(self) -> None:
        """From now on a turn gets a short "restarting" note instead of an answer."""
        self._admission.stop_taking_turns()

    async def drain(self, grace: float) -> bool:
        """Wait up to `grace` seconds for the replies being written; True if all finished."""
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
            return True
        except TimeoutError:
            return False

    async def _answer(self, turn: Turn, surface: ReplySurface) -> RenderResult:
        try:
            turn = await self._admission.admit(turn)
        except ReplyFailure as failure:
            return await refuse(turn, surface, failure)
        payer = payer_of(turn.platform, turn.quota_scope, turn.author_id, turn.places)
        spend = self.accounting.spend(payer, turn.places)
        try:
            return await self._answer_admitted(turn, surface, spend)
        finally:
            if spend.early is not None:  # stopped before its budgets were checked: the early hold is given back
                await finish_even_if_cancelled(self.accounting.early.drop(spend.early))

    async def _answer_admitted(self, turn: Turn, surface: ReplySurface, spend: Spend) -> RenderResult:
        async with contextlib.AsyncExitStack() as held:
            try:  # taking the conversation fails too when Redis is down: the person is told why
                fence = await held.enter_async_context(self._locks.hold(turn.thread))
                prepared = await self._preparation.prepare(turn, fence, spend.meter)
                breaker = self._choices.breaker(prepared.model)
                breaker.check()
                await self._hold_budgets(spend, turn, prepared)
            except ReplyFailure as failure:
                await spend.finish()  # the search's embedding was used all the same
                refused = await refuse(turn, surface, failure)
                if failure.kind is FailureKind.BUDGET:  # the question stays, answered with why it wasn't
                    return await self._remembering.remember(turn, surface, refused, fence)
                return refused
            left_out = await self._preparation.left_out_notice(turn, prepared.prompt)
            renderer = LiveRenderer(
                surface,
                notices=turn.notices + prepared.notices + left_out,
                footer=surface.model_line(label, first_reply=prepared.first_reply)
                if (label := self._choices.label(prepared.model))
                else "",
            )
            tool_turn = self._answering.tool_turn(turn, surface, prepared, spend)
            self._rendering[turn.thread] = renderer
            thoughts = ThoughtShow(self._show_reasoning, surface)
            remember = partial(
                self._remembering.remember, turn, surface, fence=fence, tool_turn=tool_turn, cited=prepared.cited
            )
            try:
                pieces = self._answering.pieces(prepared, surface, renderer, tool_turn, spend.meter)
                result = await renderer.render(thoughts.present(pieces))
            except asyncio.CancelledError:
                # Stopping: an answer the person already sees whole is still remembered.
                await finish_even_if_cancelled(spend.finish())
                await finish_even_if_cancelled(remember(renderer.result(), before=thoughts.prefix))
                raise
            finally:
                del self._rendering[turn.thread]
            breaker.record(result.failure, answered=bool(result.text))
            remembered, _ = await finish_even_if_cancelled(
                asyncio.gather(remember(result, before=thoughts.prefix), spend.finish())
            )
            sources = tuple((citation.label, citation.url) for citation in prepared.cited)
            return replace(remembered, model=prepared.model.display_name, sources=sources)

    async def _hold_budgets(self, spend: Spend, turn: Turn, prepared: Prepared) -> None:
        """Hold the answer's first call of every budget that applies (raises ReplyFailure(BUDGET))."""
        spend.max_new_tokens = prepared.model.settings.sampling.max_new_tokens
        model, tokens = prepared.model.settings.model_id, prepared.prompt.tokens
        await self.accounting.hold(spend, turn.places, prepared.budgets, model, tokens)
