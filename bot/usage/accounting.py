"""A turn's usage, start to end: the budgets that apply to it held before its first model call, a meter its calls
count into, and afterwards its counts written (per person, server or workspace, model and day) beside its history,
its budgets settled, and the Prometheus counters `tokens_total{model,kind}` and `cost_usd_total{model}` raised."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from bot.loop import off_loop_if_large
from bot.state.personas import Place
from bot.usage.budgets import Budgets, Spending
from bot.usage.early import Early, EarlyHolds
from bot.usage.ledger import UsageLedger
from bot.usage.limits import Limit, turn_limits
from bot.usage.meter import Counted, UsageMeter
from bot.usage.totals import MICRO, Usage
from config.models import FREE, ModelCatalog, Price
from config.settings import BackendKind
from config.usage import Budget, PlaceBudget, UsageSettings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Payer:
    """Whose usage a turn is: the platform, the person (unique across platforms and workspaces: "discord:42",
    "slack:T1:U1") and the server or workspace ("discord:server:1", "slack:server:T1"; "" for none, e.g. a DM)."""

    platform: str
    person: str
    scope: str = ""


def payer_of(platform: str, quota_scope: str, author: str, places: Sequence[Place]) -> Payer:
    server = next((place for place in places if place.kind == "server"), None)
    return Payer(platform, f"{quota_scope}:{author}", server.key if server is not None else "")


@dataclass
class Spend:
    """One turn's usage as it is answered: who pays, the meter its calls count on, the budgets it holds."""

    accounting: Accounting
    payer: Payer
    meter: UsageMeter
    max_new_tokens: int
    spending: Spending | None = None
    early: asyncio.Task[Early] | None = None  # the budgets held while the prompt is built (bot.usage.early)

    async def more(self, model: str, messages: Sequence[dict[str, Any]]) -> None:
        """Before another call of the turn (a tool round): hold it too, or raise ReplyFailure(BUDGET_REACHED)."""
        if self.spending is not None:
            prompt = self.meter.prompt_tokens_of(messages)
            await self.accounting.budgets.grow(self.spending, self.meter, model, prompt, self.max_new_tokens)

    async def finish(self) -> None:
        early, self.early = self.early, None
        await self.accounting.early.drop(early)  # a turn refused before its model was asked
        await self.accounting.finish(self.payer, self.meter, self.spending)


class UsageCounters:
    """The Prometheus counters of what the models used."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.tokens = Counter(
            "tokens_total", "Tokens the models read (input) and wrote (output)", ["model", "kind"], registry=registry
        )
        self.cost = Counter(
            "cost_usd_total",
            "What the models cost, in US dollars, from MODELS_FILE's prices",
            ["model"],
            registry=registry,
        )
        self.budget_check = Histogram(
            "bot_budget_check_seconds",
            "A turn's budgets checked and held before its model is asked (the time it adds to the answer)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
            registry=registry,
        )


class Accounting:
    def __init__(
        self,
        ledger: UsageLedger,
        settings: UsageSettings,
        models: ModelCatalog,
        counters: UsageCounters,
        count: Callable[[str], int],
        most_prompt_tokens: int = 8192,
    ) -> None:
        """`count`: the tokenizer a provider's missing usage is counted with; `most_prompt_tokens`: the longest
        prompt (CONTEXT_TOKENS less MAX_NEW_TOKENS)."""
        self.ledger = ledger
        self.settings = settings
        self._models = models
        self._counters = counters
        self._count = count
        self._most_prompt_tokens = most_prompt_tokens
        self.budgets = Budgets(ledger.holds, self.price_of)
        self.early = EarlyHolds(self.budgets, settings, self._most)
        self._indexing: set[asyncio.Task[None]] = set()  # counts of knowledge being indexed, being written

    def price_of(self, model: str) -> Price | None:
        """A model's price: MODELS_FILE's, the in-process model's FREE, else None (counted in tokens only)."""
        choice = self._models.find(model)
        if choice is None:
            return None
        if choice.settings.backend is BackendKind.LOCAL:
            return FREE
        return choice.price

    def meter(self) -> UsageMeter:
        return UsageMeter(self._count)

    def spend(self, payer: Payer, places: Sequence[Place] = ()) -> Spend:
        """A turn's usage; the budgets that likely apply in `places` start being held at once (bot.usage.early)."""
        return Spend(self, payer, self.meter(), 0, early=self.early.start(payer.person, places))

    def limits(self, payer: Payer, places: Sequence[Place], set_here: Sequence[PlaceBudget]) -> tuple[Limit, ...]:
        return turn_limits(self.settings, places, set_here, payer.person)

    async def hold(
        self, spend: Spend, places: Sequence[Place], set_here: Sequence[PlaceBudget], model: str, prompt_tokens: int
    ) -> None:
        """Hold the first call's worth of each budget that applies (`set_here`: what `places` set, read with the
        prompt), or raise ReplyFailure(BUDGET). The meter's allowance is then the call's MAX_NEW_TOKENS: a server
        that ignores it is stopped there."""
        limits = self.limits(spend.payer, places, set_here)
        self.early.learn(places, set_here)
        early, spend.early = spend.early, None
        if not limits:
            await self.early.drop(early)
            return
        with self._counters.budget_check.time():  # what the check added to the wait for the model
            spending = await self.early.take(early, limits)
            if spending is None:
                spending = await self.budgets.hold(limits, model, prompt_tokens, spend.max_new_tokens)
        spend.spending = spending
        spend.meter.allowance = spend.max_new_tokens

    def _most(self, budget: Budget) -> int:
        """The most one call can cost in `budget`'s units: the longest prompt and answer, at the highest price."""
        most_new = max(choice.settings.sampling.max_new_tokens for choice in self._models.choices)
        if budget.unit == "tokens":
            return self._most_prompt_tokens + most_new
        prices = [price for choice in self._models.choices if (price := self.price_of(choice.id)) is not None]
        if not prices:
            return 0
        return max(math.ceil(price.cost(self._most_prompt_tokens, most_new) * MICRO) for price in prices)

    async def finish(self, payer: Payer, meter: UsageMeter, spending: Spending | None) -> None:
        """Write the turn's counts and settle its budgets, at once (never raises: counting never fails a turn)."""
        if not meter.calls and spending is None:
            return
        await asyncio.gather(self.record(payer, meter.calls), self.budgets.settle(spending, meter))

    async def record(self, payer: Payer, calls: Sequence[Counted]) -> None:
        """Count `calls` (a turn's, or a decision's that led to no answer): its part of the ledger's next write."""
        if not calls:
            return
        usages = self._usages(payer, calls)
        for usage in usages:
            self._counters.tokens.labels(usage.model, "input").inc(usage.prompt_tokens)
            self._counters.tokens.labels(usage.model, "output").inc(usage.completion_tokens)
            if usage.cost_usd:
                self._counters.cost.labels(usage.model).inc(usage.cost_usd)
        try:
            await self.ledger.record_all(usages)
        except Exception as error:  # noqa: BLE001 - a count that can't be written is logged, the answer stands
            log.error("usage_not_recorded", person=payer.person, error=str(error) or type(error).__name__)

    def count_indexing(self, knowledge_scope: str, model: str, texts: Sequence[str]) -> None:
        """Count, in the background, the embeddings made to index knowledge: a server's or workspace's passages
        ("discord:<guild>", "slack:<team>") as its own use (no person's, no answer), the deployment's folder in the
        Prometheus counters alone."""
        platform, _, owner = knowledge_scope.partition(":")
        payer = Payer(platform, "", Place(platform, "server", owner).key if owner else "")
        task = asyncio.create_task(self._count_indexed(payer, model, list(texts)))
        self._indexing.add(task)
        task.add_done_callback(self._indexing.discard)

    async def _count_indexed(self, payer: Payer, model: str, texts: list[str]) -> None:
        tokens = await off_loop_if_large(sum(map(len, texts)), _tokens_of, self._count, texts)
        await self.record(payer, [Counted(model, tokens, 0, kind="embedding")])

    def _usages(self, payer: Payer, calls: Sequence[Counted]) -> list[Usage]:
        """One record per model (its calls summed); the turn counts once, on the model that answered."""
        now, summed = time.time(), dict[str, tuple[int, int, bool]]()
        for call in calls:
            prompt, completion, answered = summed.get(call.model, (0, 0, False))
            summed[call.model] = (
                prompt + call.prompt_tokens,
                completion + call.completion_tokens,
                answered or call.kind == "answer",
            )
        usages = []
        for model, (prompt, completion, answered) in summed.items():
            price = self.price_of(model)
            cost = price.cost(prompt, completion) if price is not None else None
            usage = Usage(
                payer.platform,
                payer.scope,
                payer.person,
                model,
                prompt,
                completion,
                cost,
                now,
                turns=1 if answered else 0,
            )
            usages.append(usage)
        return usages


def _tokens_of(count: Callable[[str], int], texts: Sequence[str]) -> int:
    return sum(count(text) for text in texts)
