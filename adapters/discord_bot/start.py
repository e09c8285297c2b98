"""Discord started: its settings checked, its client run, its extra command-line flags (see __init__.py)."""

from __future__ import annotations

import discord
import yarl

from adapters.discord_bot.client import MistralDiscordBot
from adapters.discord_bot.settings import DiscordSettings, invite_url, user_install_url
from bot.app import Services
from config.env import ConfigError
from config.settings import Settings


def point_at(settings: DiscordSettings) -> None:
    """Send REST (and, if set, gateway) traffic to the configured URLs (a proxy, a test server).

    discord.py takes neither per client: every request's URL starts with the class attribute
    `discord.http.Route.BASE`, and a client with a fixed shard count connects to
    `DiscordWebSocket.DEFAULT_GATEWAY` (https://github.com/Rapptz/discord.py/blob/v2.7.1/discord/http.py,
    `Route`; .../discord/shard.py, `launch_shards`). This is the one place they are set.
    """
    discord.http.Route.BASE = settings.api_base_url
    if settings.gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)


def check(settings: Settings) -> None:
    """The Discord settings, checked before anything starts (raises ConfigError)."""
    DiscordSettings.from_env(settings.env)


async def run(services: Services, settings: Settings) -> None:
    discord_settings = DiscordSettings.from_env(settings.env)
    point_at(discord_settings)
    async with MistralDiscordBot(services, discord_settings, settings.images) as client:
        try:
            await client.start(discord_settings.token)
        except discord.LoginFailure as error:
            raise ConfigError(f"DISCORD_TOKEN was rejected by Discord ({error})") from None
        except discord.PrivilegedIntentsRequired:
            raise ConfigError(
                "Discord refused the Message Content intent: enable it for the bot in the developer portal "
                "(Bot → Privileged Gateway Intents → Message Content Intent)"
            ) from None


def command(argv: list[str], settings: Settings) -> int | None:
    if "--invite-url" not in argv:
        return None
    token = DiscordSettings.from_env(settings.env).token
    print(f"Add to a server: {invite_url(token)}")
    print(f"Add to your account: {user_install_url(token)}")
    return 0
