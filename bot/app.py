"""Assembles the core from settings: model backend, history store, prompt builder."""

from __future__ import annotations

import asyncio

import structlog

from bot.core import ChatCore
from bot.errors import ReplyFailure
from bot.loop import freeze_startup_heap
from bot.model import create_backend
from bot.prompt import MistralTokenCounter, PromptBudget, PromptBuilder
from bot.store import open_store
from config.env import ConfigError
from config.settings import MEMORY_STORE_URL, Settings

log = structlog.get_logger(__name__)


async def build_core(settings: Settings, *, console: bool) -> ChatCore:
    """Build the core; raise ConfigError with an operator-readable reason when it can't start."""
    url = settings.history.url_for(console=console)
    store = open_store(url, settings.history)
    try:
        await store.ping()
    except ReplyFailure as failure:
        await store.aclose()
        raise ConfigError(f"REDIS_URL: cannot reach Redis at {_redacted(url)} ({failure.detail})") from None
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
    freeze_startup_heap()
    return ChatCore(backend, store, prompts)


def describe_store(settings: Settings, *, console: bool) -> str:
    url = settings.history.url_for(console=console)
    if url.startswith(MEMORY_STORE_URL):
        return "in-memory history (lost on exit)"
    return f"Redis history at {_redacted(url)}"


def _redacted(url: str) -> str:
    """Hide a password in a Redis URL before it is shown or logged."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


async def close_core(core: ChatCore) -> None:
    await core.backend.aclose()
    await core.store.aclose()
