"""Wires the bot from its settings: the core (history, prompt, model) and the services the
adapters share around it (coordination, the reply ledger, the platforms' rate limits, metrics)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from bot.breaker import CircuitBreaker
from bot.coordination import Coordination, MemoryCoordination, RedisCoordination, TurnQuota
from bot.core import ChatCore
from bot.ledger import ReplyLedger
from bot.locks import ConversationLocks
from bot.loop import freeze_startup_heap
from bot.metrics import Metrics
from bot.model import InferenceBackend, ModelBackend, RoutedBackend
from bot.prompt import MistralTokenCounter, PromptBudget, PromptBuilder
from bot.ratelimit import RateLimits
from bot.redis_client import REDIS_ERRORS, RedisClients
from bot.store import HistoryStore, MemoryHistoryStore, RedisHistoryStore
from config.env import ConfigError
from config.settings import MEMORY_STORE_URL, BackendKind, ModelSettings, Settings

log = structlog.get_logger(__name__)

# Redis may still be starting beside the bot (a container, a restart): keep trying this long
# before giving up with a message, rather than failing a deploy over a second's race.
REDIS_START_SECONDS = 5.0


@dataclass(frozen=True)
class Services:
    """What an adapter is given: the core, and the jobs every platform shares around it."""

    core: ChatCore
    coordination: Coordination
    ledger: ReplyLedger
    metrics: Metrics
    rate_limits: RateLimits | None  # None without Redis: Discord and Slack can't start then
    redis: RedisClients | None

    def require_rate_limits(self) -> RateLimits:
        """A platform adapter starts only with Redis to keep its rate limits in."""
        if self.rate_limits is None:
            raise ConfigError(
                "REDIS_URL: Discord and Slack keep the bot's rate limits in Redis "
                "(memory:// serves the console and the web chat only)"
            )
        return self.rate_limits

    async def ping(self) -> None:
        """Redis answers (nothing to ask without it); raises when it doesn't."""
        if self.redis is not None:
            await self.redis.ping()

    async def aclose(self) -> None:
        if self.rate_limits is not None:
            await self.rate_limits.aclose()
        await self.ledger.stop()
        await self.core.aclose()
        if self.redis is not None:
            await self.redis.aclose()


async def build(settings: Settings, *, console: bool) -> Services:
    """Build the bot; raise ConfigError with an operator-readable reason when it can't start."""
    metrics = Metrics()
    url = settings.history.url_for(console=console)
    redis = None if url.startswith(MEMORY_STORE_URL) else RedisClients.connect(url, cluster=settings.history.cluster)
    if redis is not None:
        await _wait_for_redis(redis, url)
    elif not console:
        log.warning(
            "history_not_durable",
            message="REDIS_URL=memory:// keeps history in this process only: "
            "every conversation is lost when the bot restarts. Use Redis in production.",
        )
    prefix, operations = settings.history.key_prefix, settings.operations
    store: HistoryStore
    if redis is not None:
        store = RedisHistoryStore(redis.main, settings.history, metrics.redis_errors.inc)
        coordination: Coordination = RedisCoordination(
            redis.main, prefix, settings.history.ttl_seconds, metrics.redis_errors.inc
        )
        locks = ConversationLocks(redis.main, store.lock_key)
    else:
        store, coordination, locks = MemoryHistoryStore(settings.history), MemoryCoordination(), ConversationLocks()
    ledger = ReplyLedger(
        redis.main if redis else None,
        prefix,
        beat=redis.heartbeat if redis else None,
        lease_seconds=operations.reply_lease_seconds,
        sweep_seconds=operations.reply_sweep_seconds,
    )
    await ledger.start()
    counter = await asyncio.to_thread(MistralTokenCounter)  # loads the tokenizer file (~0.1–0.7 s)
    prompts = PromptBuilder(
        counter, settings.system_prompt, PromptBudget(settings.context_tokens, settings.model.sampling.max_new_tokens)
    )
    backend = create_backend(settings.model, context_tokens=settings.context_tokens)
    core = ChatCore(
        backend,
        store,
        prompts,
        settings.models,
        coordination=coordination,
        quota=TurnQuota(coordination, operations.user_turns_per_minute, operations.channel_turns_per_minute),
        breaker=CircuitBreaker(failures=operations.circuit_failures, open_seconds=operations.circuit_open_seconds),
        metrics=metrics,
        locks=locks,
        notice_seconds=settings.history.ttl_seconds,
        max_concurrent_replies=operations.max_concurrent_replies,
    )
    rate_limits = RateLimits(redis.control, prefix) if redis else None
    freeze_startup_heap()
    return Services(core, coordination, ledger, metrics, rate_limits, redis)


def create_backend(default: ModelSettings, *, context_tokens: int) -> ModelBackend:
    """What reaches every model of the catalog: the in-process one when it is the default (the
    others, if any, are on servers), and the HTTP client for the servers."""
    if default.backend is BackendKind.LOCAL:
        from bot.local_model import LocalBackend  # llama-cpp is only needed for local models

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


def describe_store(settings: Settings, *, console: bool) -> str:
    url = settings.history.url_for(console=console)
    if url.startswith(MEMORY_STORE_URL):
        return "in-memory history (lost on exit)"
    kind = "Redis Cluster" if settings.history.cluster else "Redis"
    return f"{kind} history at {redacted(url)}"


def redacted(url: str) -> str:
    """Hide a password in a Redis URL before it is shown or logged."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
