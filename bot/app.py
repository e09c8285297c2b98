"""Assembles the core from settings: history store, prompt builder, model backend, and what
keeps replies safe (the reply ledger, quotas, the circuit breaker, metrics)."""

from __future__ import annotations

import asyncio

import structlog

from bot.breaker import CircuitBreaker
from bot.budget import RateLimits
from bot.core import ChatCore
from bot.errors import ReplyFailure
from bot.ledger import ReplyLedger
from bot.locks import ConversationLocks
from bot.loop import freeze_startup_heap
from bot.metrics import Metrics
from bot.model import create_backend
from bot.prompt import MistralTokenCounter, PromptBudget, PromptBuilder
from bot.quota import TurnQuota
from bot.store import HistoryStore, RedisHistoryStore, open_store
from config.env import ConfigError
from config.settings import MEMORY_STORE_URL, Settings

log = structlog.get_logger(__name__)

# Redis may still be starting beside the bot (a container, a restart): keep trying this long
# before giving up with a message, rather than failing a deploy over a second's race.
REDIS_START_SECONDS = 5.0


async def build_core(settings: Settings, *, console: bool) -> ChatCore:
    """Build the core; raise ConfigError with an operator-readable reason when it can't start."""
    metrics = Metrics()
    url = settings.history.url_for(console=console)
    store = open_store(url, settings.history, on_error=metrics.redis_errors.inc)
    await _wait_for_redis(store, url)
    if not store.durable and not console:
        log.warning(
            "history_not_durable",
            message="REDIS_URL=memory:// keeps history in this process only: "
            "every conversation is lost when the bot restarts. Use Redis in production.",
        )
    counter = await asyncio.to_thread(MistralTokenCounter)  # loads the tokenizer file (~0.1–0.7 s)
    budget = PromptBudget(settings.context_tokens, settings.model.sampling.max_new_tokens)
    prompts = PromptBuilder(counter, settings.system_prompt, budget)
    backend = create_backend(settings.model, context_tokens=settings.context_tokens)
    redis = store if isinstance(store, RedisHistoryStore) else None
    operations = settings.operations
    records, beat = (redis.records, redis.heartbeat) if redis else (None, None)
    ledger = ReplyLedger(records, settings.history.key_prefix, beat=beat, lease_seconds=operations.reply_lease_seconds,
                         sweep_seconds=operations.reply_sweep_seconds)
    locks = ConversationLocks(redis.client, redis.lock_key) if redis else ConversationLocks()
    budgets = RateLimits(redis.control, settings.history.key_prefix) if redis else RateLimits()
    await ledger.start()
    quota = TurnQuota(store, operations.user_turns_per_minute, operations.channel_turns_per_minute)
    breaker = CircuitBreaker(failures=operations.circuit_failures, open_seconds=operations.circuit_open_seconds)
    freeze_startup_heap()
    return ChatCore(backend, store, prompts, ledger=ledger, quota=quota, breaker=breaker, metrics=metrics,
                    locks=locks, budgets=budgets, notice_seconds=settings.history.ttl_seconds,
                    max_concurrent_replies=operations.max_concurrent_replies)  # fmt: skip


async def _wait_for_redis(store: HistoryStore, url: str) -> None:
    deadline = asyncio.get_running_loop().time() + REDIS_START_SECONDS
    while True:
        try:
            await store.ping()
            return
        except ReplyFailure as failure:
            if asyncio.get_running_loop().time() >= deadline:
                await store.aclose()
                raise ConfigError(f"REDIS_URL: cannot reach Redis at {redacted(url)} ({failure.detail})") from None
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


async def close_core(core: ChatCore) -> None:
    await core.budgets.settle_all()
    await core.ledger.stop()
    await core.backend.aclose()
    await core.store.aclose()
