"""Slack: mentions and DMs answered in threads, /ask, /reset, /model and /tools, the assistant panel and
the Home tab, tool calls as task cards with Run / Cancel buttons, Socket Mode or HTTP (see bot.py).

Every `python -m bot` loads this package to learn its name and tokens; Bolt and the Slack SDK load only
when Slack is the platform started."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import Services
    from config.settings import Settings

NAME = "slack"
TOKEN_VARIABLES = ("SLACK_BOT_TOKEN",)
# One workspace with its bot token, or installs to any workspace through Slack's OAuth flow.
TOKEN_VARIABLE_SETS = (TOKEN_VARIABLES, ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"))


def check(settings: Settings) -> None:
    """The Slack settings, checked before anything starts (raises ConfigError)."""
    from adapters.slack_bot.settings import SlackSettings

    SlackSettings.from_env(settings.env)


async def run(services: Services, settings: Settings) -> None:
    from adapters.slack_bot.bot import SlackBot
    from adapters.slack_bot.settings import SlackSettings

    await SlackBot(services, SlackSettings.from_env(settings.env), settings.images).run()
