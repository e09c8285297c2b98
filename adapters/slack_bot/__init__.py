"""Slack: mentions and DMs answered in threads, /ask, /reset, /model and /tools, the assistant panel and
the Home tab, tool calls as task cards with Run / Cancel buttons, Socket Mode or HTTP (see bot.py)."""

from __future__ import annotations

from adapters.slack_bot.bot import SlackBot
from adapters.slack_bot.settings import SlackSettings
from adapters.slack_bot.stream import StreamReply
from adapters.slack_bot.surfaces import MessageReply, Place, WorkspaceBudgets
from adapters.slack_bot.text import to_mrkdwn
from bot.app import Services
from config.settings import Settings

NAME = "slack"
TOKEN_VARIABLES = ("SLACK_BOT_TOKEN",)
# One workspace with its bot token, or installs to any workspace through Slack's OAuth flow.
TOKEN_VARIABLE_SETS = (TOKEN_VARIABLES, ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"))
__all__ = [
    "NAME",
    "TOKEN_VARIABLES",
    "TOKEN_VARIABLE_SETS",
    "MessageReply",
    "Place",
    "StreamReply",
    "WorkspaceBudgets",
    "check",
    "run",
    "to_mrkdwn",
]


def check(settings: Settings) -> None:
    """The Slack settings, checked before anything starts (raises ConfigError)."""
    SlackSettings.from_env(settings.env)


async def run(services: Services, settings: Settings) -> None:
    await SlackBot(services, SlackSettings.from_env(settings.env), settings.images).run()
