"""`python -m bot [console|discord|slack|…] [adapter flags]`."""

from __future__ import annotations

import os

# huggingface_hub reads this when imported. Its telemetry would fetch a registry from the Hub
# with a blocking request during the first reply: every reply freezes for up to 3 s where the
# Hub can't be reached. Operators may still set it to 0.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import asyncio  # noqa: E402 - after the setting above, like every import below
import signal
import sys
from types import ModuleType

import structlog

import adapters
from bot import loop
from bot.app import build_core, close_core, describe_store
from bot.logs import configure_logging
from config.env import ConfigError
from config.settings import Settings, load_settings

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
    configure_logging(settings.log_level if explicit_level or not console else "WARNING",
                      json_output=settings.env.str("LOG_FORMAT", "text") == "json")
    if len(chosen) == 1 and hasattr(chosen[0], "command"):
        handled = chosen[0].command(rest, settings)
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
    core = await build_core(settings, console=console)
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    if main_task is not None:
        loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    try:
        results = await asyncio.gather(
            *(_run_adapter(module, core, settings) for module in chosen), return_exceptions=False
        )
        return 0 if all(results) else 1
    except asyncio.CancelledError:
        log.info("shutting_down")
        return 0
    finally:
        await close_core(core)


async def _run_adapter(module: ModuleType, core, settings: Settings) -> bool:  # type: ignore[no-untyped-def]
    """Run one adapter; a crash in one is reported and does not stop the others."""
    try:
        await module.run(core, settings)
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
