"""What `python -m bot` runs: the process around one bot (bot.app). Its logging, the adapters chosen
by name or by the tokens set, the operator's /metrics and /healthz, and a graceful stop on a signal
(replies being written get SHUTDOWN_GRACE_SECONDS)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any, TextIO

import structlog
import uvloop
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import adapters
from adapters.shared.knowledge_sources.folder import keep_knowledge
from adapters.shared.web_knowledge.fetch.addresses import PrivateAllowance
from adapters.shared.web_knowledge.keeping import keep_web_knowledge
from bot.app import Services, build, redacted
from bot.metrics import Metrics
from config.env import ConfigError
from config.models import BackendKind
from config.settings import DEFAULT_MODEL_ID, MEMORY_STORE_URL, Settings, load_settings

log = structlog.get_logger("bot")


def main(argv: list[str]) -> int:
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2
    available = adapters.load_all()
    chosen, rest = _choose(argv, available, settings)
    if chosen is None:
        names = "|".join(sorted(available))
        print(f"usage: python -m bot [{names}] [options]", file=sys.stderr)
        return 2
    console = [module.NAME for module in chosen] == ["console"]
    explicit_level = settings.env.raw("LOG_LEVEL") is not None
    configure_logging(
        settings.log_level if explicit_level or not console else "WARNING",
        json_output=settings.env.str("LOG_FORMAT", "text") == "json",
    )
    try:
        PrivateAllowance.parse(" ".join(settings.knowledge.web.allow_private))  # a bad entry stops the start
        for module in chosen:  # every chosen adapter's own settings, checked before anything starts
            if hasattr(module, "check"):
                module.check(settings)
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2
    if len(chosen) == 1 and hasattr(chosen[0], "command"):
        handled: int | None = chosen[0].command(rest, settings)
        if handled is not None:
            return handled
    if not argv:
        _announce(chosen, settings, console)
    if (note := embedded_model_note(settings)) is not None:
        print(note, file=sys.stderr, flush=True)
    try:
        # uvloop: about half asyncio's CPU per socket event.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_serve(chosen, settings, console))
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _choose(
    argv: list[str], available: dict[str, ModuleType], settings: Settings
) -> tuple[list[ModuleType] | None, list[str]]:
    if argv and not argv[0].startswith("-"):
        module = available.get(argv[0])
        return ([module] if module else None), argv[1:]
    auto = adapters.configured(available, settings.env)
    return (auto or [available["console"]]), argv


def describe_store(settings: Settings, *, console: bool) -> str:
    url = settings.history.url_for(console=console)
    if url.startswith(MEMORY_STORE_URL):
        return "in-memory history (lost on exit)"
    kind = "Redis Cluster" if settings.history.cluster else "Redis"
    return f"{kind} history at {redacted(url)}"


def embedded_model_note(settings: Settings) -> str | None:
    """What the embedded model is for, said on start when it is the one that answers."""
    model = settings.model
    if model.backend is not BackendKind.LOCAL or settings.env.raw("LOCAL_MODEL_PATH"):
        return None
    return (
        "The embedded model (SmolLM2-135M) is for trying the bot offline with no keys: its answers are often wrong. "
        f"For real answers set HF_TOKEN=hf_… (they then come from {DEFAULT_MODEL_ID} through Hugging Face)."
    )


def _announce(chosen: list[ModuleType], settings: Settings, console: bool) -> None:
    names = ", ".join(module.NAME for module in chosen)
    why = (
        "no platform token is set (DISCORD_TOKEN, SLACK_BOT_TOKEN, SLACK_CLIENT_ID)"
        if console
        else "their tokens are set"
    )
    print(
        f"Starting {names} ({why}). Model: {settings.model.describe()}. "
        f"History: {describe_store(settings, console=console)}.",
        file=sys.stderr,
        flush=True,
    )


async def _serve(chosen: list[ModuleType], settings: Settings, console: bool) -> int:
    services = await build(settings, console=console)
    port = settings.operations.metrics_port
    metrics_server = await serve_metrics(services.metrics, port, services.redis.ping) if port else None
    knowledge = asyncio.create_task(keep_knowledge(services), name="knowledge")
    web_knowledge = asyncio.create_task(keep_web_knowledge(services), name="web-knowledge")
    platforms: asyncio.Future[list[int]] = asyncio.ensure_future(
        asyncio.gather(*(_run_adapter(module, services, settings) for module in chosen))
    )
    stopping = asyncio.Event()

    def on_signal() -> None:
        if stopping.is_set():  # a second Ctrl-C: stop now
            platforms.cancel()
        stopping.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    signalled: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({platforms, signalled}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.is_set():
            await _shut_down(services, platforms, settings.operations.shutdown_grace_seconds)
            return 0
        return max(platforms.result())
    finally:
        signalled.cancel()
        for keeping in (knowledge, web_knowledge):
            keeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeping
        if metrics_server is not None:
            await metrics_server.cleanup()
        await services.aclose()


async def _shut_down(services: Services, platforms: asyncio.Future[list[int]], grace: float) -> None:
    """New turns get a "restarting" note; replies being written get `grace` seconds to finish,
    then end with an "interrupted" note; then the platforms disconnect."""
    log.info("shutting_down", grace_seconds=grace)
    services.core.stop_taking_turns()
    finished = await services.core.drain(grace)
    platforms.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await platforms
    log.info("shut_down", replies_interrupted=not finished)


async def _run_adapter(module: ModuleType, services: Services, settings: Settings) -> int:
    """Run one adapter; its exit code (2: a setting the platform refused, 1: a crash). A failure in one is
    reported in one line and does not stop the others."""
    try:
        await module.run(services, settings)
        return 0
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr, flush=True)
        return 2
    except Exception:
        log.exception("adapter_crashed", adapter=module.NAME)
        return 1


# Library chatter at INFO (HTTP request lines) and watchfiles' "rust notify timeout" at DEBUG would drown the bot's own
# events.
NOISY_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "discord.gateway", "slack_bolt", "slack_sdk", "watchfiles")


def configure_logging(level: str, *, json_output: bool = False) -> None:
    numeric = logging.getLevelName(level.upper())
    stream = log_stream()
    logging.basicConfig(level=numeric, stream=stream, format="%(message)s", force=True)
    renderer = structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))


@functools.cache
def log_stream() -> TextIO:
    """Standard error through a descriptor of the logs' own. llama-cpp-python silences llama.cpp while it loads a
    model (the local model, the knowledge's embedder) by pointing descriptor 2 at /dev/null for the whole process,
    from the loading thread: every line the bot logged meanwhile (a second or more) was lost."""
    try:
        own = os.dup(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):  # no descriptor (stderr replaced)
        return sys.stderr
    return open(own, "w", buffering=1, encoding=sys.stderr.encoding or "utf-8", errors="backslashreplace")


async def serve_metrics(metrics: Metrics, port: int, check_redis: Callable[[], Awaitable[None]]) -> web.AppRunner:
    """Serve /metrics and /healthz on `port` (every interface: scrapers and probes come from outside)."""

    async def show_metrics(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_: web.Request) -> web.Response:
        problems = metrics.problems()
        try:
            await check_redis()
        except Exception as error:  # noqa: BLE001 - any failure is a reason to report unhealthy
            problems.append(f"redis: {type(error).__name__}: {error}")
        if problems:
            return web.json_response({"status": "unhealthy", "problems": problems}, status=503)
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", show_metrics)
    app.router.add_get("/healthz", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host="0.0.0.0", port=port).start()
    log.info("metrics_listening", port=port, paths="/metrics /healthz")
    return runner
