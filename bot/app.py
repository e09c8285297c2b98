"""Wires the bot from its settings: the core (history, prompt, model) and the services the
adapters share around it (Redis, coordination, metrics)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial

import structlog

from bot.core import ChatCore
from bot.knowledge.opener import KnowledgeOpener
from bot.knowledge.setup import open_knowledge
from bot.loop import freeze_startup_heap
from bot.metrics import Metrics
from bot.model.backends import InferenceBackend, ModelBackend, RoutedBackend
from bot.model.breaker import CircuitBreaker
from bot.reply.thought_view import ShowReasoning
from bot.state.coordination import Coordination, TurnQuota
from bot.state.personas import Personas
from bot.state.redis_client import REDIS_ERRORS, RedisClients
from bot.state.store import HistoryStore
from bot.tools.gate import ConfirmGate
from bot.tools.toolbox import ToolBox
from bot.turn.prompt import MistralTokenCounter, PromptBudget, PromptBuilder
from config.env import ConfigError
from config.settings import MEMORY_STORE_URL, BackendKind, ModelSettings, Settings

log = structlog.get_logger(__name__)

# Redis may still be starting beside the bot (a container, a restart): keep trying this long
# before giving up with a message, rather than failing a deploy over a second's race.
REDIS_START_SECONDS = 5.0


@dataclass(frozen=True)
class Services:
    """What an adapter is given: the core, what every platform shares around it, and the settings."""

    core: ChatCore
    coordination: Coordination
    metrics: Metrics
    redis: RedisClients
    settings: Settings
    prompts: PromptBuilder | None = None  # how the core counts tokens and budgets its prompts
    knowledge: KnowledgeOpener | None = None  # started when first needed (see bot.knowledge.setup)

    async def aclose(self) -> None:
        if self.knowledge is not None:
            await self.knowledge.aclose()
        await self.core.aclose()
        await self.core.tools.aclose()
        await self.redis.aclose()


async def build(settings: Settings, *, console: bool) -> Services:
    """Build the bot; raise ConfigError with an operator-readable reason when it can't start."""
    metrics = Metrics()
    url = settings.history.url_for(console=console)
    if url.startswith(MEMORY_STORE_URL):
        redis = RedisClients.in_memory()
        if not console:
            log.warning(
                "history_not_durable",
                message="REDIS_URL=memory:// keeps history in this process only: every conversation is lost "
                "when the bot restarts, and a second process would share nothing with it. Use Redis in production.",
            )
    else:
        redis = RedisClients.connect(url, cluster=settings.history.cluster)
        await _wait_for_redis(redis, url)
    history, operations = settings.history, settings.operations
    store = HistoryStore(redis.main, history, metrics.redis_errors.inc)
    coordination = Coordination(redis.main, history.key_prefix, history.ttl_seconds, metrics.redis_errors.inc)
    counter = await asyncio.to_thread(MistralTokenCounter)  # loads the tokenizer file (~0.1–0.7 s)
    prompts = PromptBuilder(
        counter, settings.system_prompt, PromptBudget(settings.context_tokens, settings.model.sampling.max_new_tokens)
    )
    core = ChatCore(
        create_backend(settings.model, context_tokens=settings.context_tokens),
        store,
        prompts,
        settings.models,
        coordination=coordination,
        quota=TurnQuota(coordination, operations.user_turns_per_minute, operations.channel_turns_per_minute),
        breaker=CircuitBreaker(failures=operations.circuit_failures, open_seconds=operations.circuit_open_seconds),
        metrics=metrics,
        max_concurrent_replies=operations.max_concurrent_replies,
        tools=ToolBox(settings.tools),
        personas=Personas(
            redis.main,
            history.key_prefix,
            settings.system_prompt,
            size=prompts.system_tokens,
            max_tokens=prompts.budget.prompt_tokens // 2,
            file=settings.places,
            on_error=metrics.redis_errors.inc,
            conversation_seconds=history.ttl_seconds,
        ),
        gate=ConfirmGate(redis.main, history.key_prefix, metrics.redis_errors.inc),
        show_reasoning=ShowReasoning(settings.show_reasoning),
        knowledge_share=settings.knowledge.prompt_share,
        respond=settings.respond,
        usage=settings.usage,
    )
    knowledge = KnowledgeOpener(partial(open_knowledge, settings, metrics.rerank_failed), core.use_knowledge)
    await core.tools.start()  # a server that isn't up yet is connected in the background
    freeze_startup_heap()
    return Services(core, coordination, metrics, redis, settings, prompts, knowledge)


def create_backend(default: ModelSettings, *, context_tokens: int) -> ModelBackend:
    """What reaches every model of the catalog: the in-process one when it is the default (the
    others, if any, are on servers), and the HTTP client for the servers."""
    if default.backend is BackendKind.LOCAL:
        from bot.model.local import LocalBackend  # llama-cpp is only needed for local models

        return RoutedBackend(InferenceBackend(), LocalBackend(default, context_tokens=context_tokens))
    return InferenceBackend()


async def _wait_for_redis(redis: RedisClients, url: str) -> None:
    deadline = asyncio.get_running_loop().time() + REDIS_START_SECONDS
    while True:
        try:
            await redis.ping()
            return
        except REDIS_ERRORS as error:
            if asyncio.get_running_loop().time() >= deadline:
                await redis.aclose()
                raise ConfigError(f"REDIS_URL: cannot reach Redis at {redacted(url)} ({error})") from None
            await asyncio.sleep(0.5)


def redacted(url: str) -> str:
    """Hide a password in a Redis URL before it is shown or logged."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
