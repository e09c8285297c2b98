"""What `python -m bot` runs: the adapters chosen by name or by the tokens set, around one bot
(bot.app), until a signal stops them (replies being written get SHUTDOWN_GRACE_SECONDS)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from types import ModuleType
from typing import Any

import structlog

import adapters
from bot import loop, metrics
from bot.app import Services, build, redacted
from bot.logs import configure_logging
from config.env import ConfigError
from config.settings import MEMORY_STORE_URL, Settings, load_settings

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
    if len(chosen) == 1 and hasattr(chosen[0], "command"):
        handled: int | None = chosen[0].command(rest, settings)
        if handled is not None:
            return handled
    if not argv:
        _announce(chosen, settings, console)
    try:
        return loop.run(_serve(chosen, settings, console))
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


def _announce(chosen: list[ModuleType], settings: Settings, console: bool) -> None:
    names = ", ".join(module.NAME for module in chosen)
    why = "no platform token is set (DISCORD_TOKEN, SLACK_BOT_TOKEN)" if console else "their tokens are set"
    print(
        f"Starting {names} ({why}). Model: {settings.model.describe()}. "
        f"History: {describe_store(settings, console=console)}.",
        file=sys.stderr,
        flush=True,
    )


async def _serve(chosen: list[ModuleType], settings: Settings, console: bool) -> int:
    services = await build(settings, console=console)
    port = settings.operations.metrics_port
    metrics_server = await metrics.serve(services.metrics, port, services.ping) if port else None
    platforms: asyncio.Future[list[bool]] = asyncio.ensure_future(
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
        return 0 if all(platforms.result()) else 1
    finally:
        signalled.cancel()
        if metrics_server is not None:
            await metrics_server.cleanup()
        await services.aclose()


async def _shut_down(services: Services, platforms: asyncio.Future[list[bool]], grace: float) -> None:
    """New turns get a "restarting" note; replies being written get `grace` seconds to finish,
    then end with an "interrupted" note; then the platforms disconnect."""
    log.info("shutting_down", grace_seconds=grace)
    services.core.stop_taking_turns()
    finished = await services.core.drain(grace)
    platforms.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await platforms
    log.info("shut_down", replies_interrupted=not finished)


async def _run_adapter(module: ModuleType, services: Services, settings: Settings) -> bool:
    """Run one adapter; a crash in one is reported and does not stop the others."""
    try:
        await module.run(services, settings)
        return True
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except ConfigError as error:
        log.error("adapter_config_error", adapter=module.NAME, error=str(error))
        print(f"{module.NAME}: configuration error: {error}", file=sys.stderr)
        return False
    except Exception:
        log.exception("adapter_crashed", adapter=module.NAME)
        return False
