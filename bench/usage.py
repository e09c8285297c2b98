"""Benchmark: what counting usage and checking budgets add to a mention's way to the model.

    python -m bench.usage [--n 50] [--rounds 20] [--tokens 40]

In this process, the bot's own core (bot.core.ChatCore, real Redis at REDIS_URL or 127.0.0.1:6379, the real
AsyncInferenceClient) against the fake model server in a child process (fakes/model_server.py, which reports
usage as OpenAI does). Each round sends `--n` questions at once, each in a conversation of its own, by 10 people of
one server, twice: to a core with no budget, and to a core with USER_DAILY_BUDGET and SERVER_MONTHLY_BUDGET set (never
reached), the two alternating so that drift on the machine falls on both. Every turn is counted either way (its
tokens written to Redis after its answer); with budgets each turn also holds both (bot.usage.early: while its prompt
is built; the holds of turns asking at once go in one script call) and settles them after its answer.

Reported: mention → model request (the core called → the model server received the request) p50 / p99 without and
with budgets and the difference; the budgets' check as the turns waited for it (the core's bot_budget_check_seconds:
its mean and the share of turns it took at most 0.5, 1, 2, 5, 10 ms); this process's CPU per turn, without and with
budgets; and that no question was refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

import uvloop

from adapters.launch import configure_logging
from bench.common import ModelServerProcess, machine, percentile
from bot.core import ChatCore, Turn
from bot.loop import freeze_startup_heap
from bot.model.backends import InferenceBackend
from bot.reply.surface import SurfaceLimits
from bot.state.personas import Personas, Place
from bot.state.redis_client import connect
from bot.state.store import HistoryStore
from bot.turn.prompt import MistralTokenCounter, PromptBudget, PromptBuilder
from config.env import Env
from config.models import ModelCatalog, ModelChoice, Price
from config.settings import HistorySettings, load_settings
from config.usage import Budget, UsageSettings
from fakes.memory_surface import MemorySurface

SERVER = Place("bench", "server", "guild")
CHANNEL = Place("bench", "channel", "help", server="guild")
PEOPLE = 10
NEVER_REACHED = Budget(1_000_000_000, "tokens")


def make_core(model_url: str, store: HistoryStore, counter: MistralTokenCounter, usage: UsageSettings) -> ChatCore:
    env = Env({"INFERENCE_BASE_URL": f"{model_url}/v1", "HF_TOKEN": "hf_bench", "MODEL_TIMEOUT_SECONDS": "60"})
    model = load_settings(env).model
    prompts = PromptBuilder(counter, "You are a bench bot.", PromptBudget(8192, model.sampling.max_new_tokens))
    catalog = ModelCatalog((ModelChoice(model.model_id, "Bench", False, model, price=Price(0.2, 0.6)),))
    personas = Personas(
        store.client, store.settings.key_prefix, "You are a bench bot.", size=counter.count, max_tokens=4000
    )
    return ChatCore(
        InferenceBackend(), store, prompts, catalog, personas=personas, usage=usage, max_concurrent_replies=500
    )


async def one_round(core: ChatCore, n: int, tag: str) -> list[tuple[str, float, bool]]:
    """N questions at once: (text, when the core was called, answered)."""

    async def ask(index: int) -> tuple[str, float, bool]:
        text = f"{tag} question {index} {uuid.uuid4().hex[:6]}?"
        turn = Turn(
            thread=f"bench:{uuid.uuid4().hex}",
            author_id=str(index % PEOPLE),
            author_name="Ada",
            text=text,
            places=(CHANNEL, SERVER),
        )
        called = time.time()
        result = await core.answer(turn, MemorySurface(SurfaceLimits(max_length=4000, min_edit_interval=0.05)))
        return text, called, result.failure is None

    return await asyncio.gather(*(ask(index) for index in range(n)))


def check_shares(core: ChatCore) -> dict[str, Any]:
    """The budgets' check as each turn waited for it (bot_budget_check_seconds): the share done within each bound."""
    registry = core._metrics.registry
    count = registry.get_sample_value("bot_budget_check_seconds_count") or 0.0
    shares = {}
    for bound in ("0.0005", "0.001", "0.002", "0.005", "0.01"):
        within = registry.get_sample_value("bot_budget_check_seconds_bucket", {"le": bound}) or 0.0
        shares[f"within_{float(bound) * 1000:g}_ms"] = within / count if count else None
    total = registry.get_sample_value("bot_budget_check_seconds_sum") or 0.0
    return {"checks": int(count), "mean_ms": 1000 * total / count if count else None, **shares}


def lags(asked: Sequence[tuple[str, float, bool]], received: dict[str, float]) -> list[float]:
    return [received[text] - called for text, called, _ in asked if text in received]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bench:usage:{uuid.uuid4().hex[:8]}:"
    client = connect(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), cluster=False)
    store = HistoryStore(client, HistorySettings(None, prefix, max_messages=50, ttl_seconds=3600))
    counter = await asyncio.to_thread(MistralTokenCounter)
    budgets = UsageSettings(user_daily_budget=NEVER_REACHED, server_monthly_budget=NEVER_REACHED)
    with ModelServerProcess(tokens=args.tokens, rate=200.0, first_token_delay=0.05) as model:
        cores = {
            "no budget": make_core(model.base_url, store, counter, UsageSettings()),
            "budgets": make_core(model.base_url, store, counter, budgets),
        }
        asked: dict[str, list[tuple[str, float, bool]]] = {name: [] for name in cores}
        cpu = dict.fromkeys(cores, 0.0)
        await one_round(cores["no budget"], args.n, "warm-up")
        await one_round(cores["budgets"], args.n, "warm-up")
        freeze_startup_heap()  # as the bot does once started: a full collection then skips the tokenizer's tables
        for index in range(args.rounds):
            order = list(cores) if index % 2 == 0 else list(reversed(cores))
            for name in order:
                started = time.process_time()
                asked[name] += await one_round(cores[name], args.n, name)
                cpu[name] += time.process_time() - started
        received = {
            str(request.get("last_user_message")): float(request["received_at"])
            for request in await asyncio.to_thread(model.request_timings)
        }
        checks = check_shares(cores["budgets"])
        for core in cores.values():
            await core.aclose()
    keys = [key async for key in client.scan_iter(f"{prefix}*", count=1000)]
    for start in range(0, len(keys), 500):
        await client.delete(*keys[start : start + 500])
    await client.aclose()
    turns = args.n * args.rounds
    result: dict[str, Any] = {"machine": machine(), "n": args.n, "rounds": args.rounds, "tokens": args.tokens}
    for name in cores:
        measured = lags(asked[name], received)
        result[name] = {
            "mention_to_model_ms": {
                "p50": 1000 * (percentile(measured, 0.5) or 0),
                "p99": 1000 * (percentile(measured, 0.99) or 0),
            },
            "answered": sum(ok for _, _, ok in asked[name]),
            "asked": len(asked[name]),
            "cpu_ms_per_turn": 1000 * cpu[name] / turns,
        }
    result["added_p99_ms"] = (
        result["budgets"]["mention_to_model_ms"]["p99"] - result["no budget"]["mention_to_model_ms"]["p99"]
    )
    result["added_p50_ms"] = (
        result["budgets"]["mention_to_model_ms"]["p50"] - result["no budget"]["mention_to_model_ms"]["p50"]
    )
    result["check_on_the_path"] = checks
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50, help="questions at once in each round")
    parser.add_argument("--rounds", type=int, default=20, help="rounds per variant")
    parser.add_argument("--tokens", type=int, default=40, help="tokens in each answer")
    args = parser.parse_args()
    configure_logging("warning")  # a turn_finished line per turn would be most of the output
    result = uvloop.run(run(args))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
