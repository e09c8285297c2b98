"""Discord: mentions open a thread, DMs are one conversation, /ask /reset /model (see client.py).

Every `python -m bot` loads this package to learn its name and tokens; discord.py (0.2 s of CPU to
import) loads only when Discord is the platform started (start.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import Services
    from config.settings import Settings

NAME = "discord"
TOKEN_VARIABLES = ("DISCORD_TOKEN",)


def check(settings: Settings) -> None:
    """The Discord settings, checked before anything starts (raises ConfigError)."""
    from adapters.discord_bot import start

    start.check(settings)


async def run(services: Services, settings: Settings) -> None:
    from adapters.discord_bot import start

    await start.run(services, settings)


def command(argv: list[str], settings: Settings) -> int | None:
    from adapters.discord_bot import start

    return start.command(argv, settings)
