"""Shared fixtures: real Redis (own key prefix), the loopback model server, settings."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # as `python -m bot` does: no Hub call mid-test

import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from adapters.shared.ratelimit import RateLimits
from bot.core import ChatCore
from bot.loop import freeze_startup_heap
from bot.model.backends import InferenceBackend
from bot.state.redis_client import close, connect
from bot.state.store import HistoryStore
from bot.turn.prompt import MistralTokenCounter, PromptBudget, PromptBuilder
from config.env import Env
from config.models import ModelCatalog, ModelChoice
from config.settings import HistorySettings, ModelSettings, load_settings
from fakes.harness.processes import REDIS_URL, ROOT, delete_keys, free_port
from fakes.model_server import FakeModelServer, Script
from tests.system.cluster import OwnCluster

# The modules that take longest, longest first. pytest-xdist (addopts in pyproject.toml: `--dist loadfile`)
# hands each worker whole modules in collection order: these start at once and the short ones fill in
# around them, rather than a long one starting last and the run waiting for it alone.
LONGEST_MODULES = (
    "system/test_container.py",
    "web/test_web.py",
    "system/test_faults.py",
    "web/test_web_security.py",
    "slack/test_slack.py",
    "system/test_scale.py",
    "discord/test_discord.py",
    "discord/test_tools.py",
    "slack/knowledge/test_knowledge.py",
    "discord/knowledge/test_knowledge.py",
    "web/test_tools.py",
    "discord/test_personas.py",
    "slack/installs/test_workspaces.py",
    "web/test_documents.py",
    "console/test_console.py",
    "console/test_console_knowledge.py",
    "bot/tools/test_servers.py",
    "web/test_instructions.py",
    "system/test_cluster.py",
    "shared/test_ratelimit.py",
    "discord/test_discord_installs.py",
    "bot/tools/test_tool_turns.py",
    "discord/test_image_bombs.py",
    "slack/test_slack_assistant.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: place for place, name in enumerate(LONGEST_MODULES)}
    tests = ROOT / "tests"

    def module_rank(item: pytest.Item) -> int:
        inside = item.path.is_relative_to(tests)
        return rank.get(item.path.relative_to(tests).as_posix(), len(rank)) if inside else len(rank)

    items.sort(key=module_rank)  # stable: within a module, and among the other modules, the order stays


@pytest.fixture
def key_prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards (and only they)."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    delete_keys(prefix)


@pytest.fixture
def history_settings(key_prefix: str) -> HistorySettings:
    return HistorySettings(redis_url=REDIS_URL, key_prefix=key_prefix, max_messages=40, ttl_seconds=3600)


@pytest.fixture
async def redis_store(history_settings: HistorySettings) -> AsyncIterator[HistoryStore]:
    store = open_store(history_settings.redis_url or REDIS_URL, history_settings)
    yield store
    await close_store(store)


def open_store(url: str, settings: HistorySettings) -> HistoryStore:
    """A history store with a client of its own (close it with close_store)."""
    return HistoryStore(connect(url, cluster=settings.cluster), settings)


async def close_store(store: HistoryStore) -> None:
    await close(store.client)


@pytest.fixture
async def rate_limits(key_prefix: str) -> AsyncIterator[RateLimits]:
    """Write budgets in Redis under this test's key prefix."""
    client = connect(REDIS_URL, cluster=False, retries=0)
    yield RateLimits(client, key_prefix)
    await close(client)


@pytest.fixture
async def raw_redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def token_counter() -> MistralTokenCounter:
    counter = MistralTokenCounter()
    # As the bot does once started: otherwise a full collection walking the tokenizer's tables
    # stalls this process (the model server's and the bot's loop) for 0.1 s or more at random.
    freeze_startup_heap()
    return counter


@pytest.fixture
async def model_server() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text="Hello from the fake model.")) as server:
        yield server


def remote_model_settings(base_url: str, **overrides: object) -> ModelSettings:
    """Settings for the real AsyncInferenceClient pointed at a loopback server."""
    env = Env({"INFERENCE_BASE_URL": f"{base_url}/v1", "HF_TOKEN": "hf_test", "MODEL_TIMEOUT_SECONDS": "5"})
    settings = load_settings(env).model
    return replace(settings, loading_backoff_seconds=0.05, **overrides)  # type: ignore[arg-type]


def make_core(
    model: ModelSettings,
    store: HistoryStore,
    counter: MistralTokenCounter,
    *,
    system_prompt: str = "You are a test bot.",
    context_tokens: int = 8192,
    **parts: Any,
) -> ChatCore:
    prompts = PromptBuilder(counter, system_prompt, PromptBudget(context_tokens, model.sampling.max_new_tokens))
    catalog = parts.pop("models", None) or ModelCatalog((ModelChoice(model.model_id, model.model_id, False, model),))
    return ChatCore(InferenceBackend(), store, prompts, catalog, **parts)


class OwnRedis:
    """A redis-server of the test's own, with an append-only file so a restart keeps data."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="redis-test-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self._process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self.dir,
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("own redis-server did not start")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None

    def freeze(self) -> None:
        """Stop it answering (SIGSTOP) without closing its connections: a very slow Redis."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def cleanup(self) -> None:
        self.thaw()
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[OwnCluster]:
    """A Redis Cluster of three masters, started once for the run and removed at its end."""
    cluster = OwnCluster(free_port)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()
