"""Slack's settings, read from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from config.env import ConfigError, Env


@dataclass(frozen=True)
class SlackSettings:
    bot_token: str
    app_token: str | None
    signing_secret: str | None
    api_url: str
    port: int
    allowed_channel_ids: frozenset[str]
    blocked_user_ids: frozenset[str]
    admin_user_ids: frozenset[str]  # may set a channel's model, besides workspace admins and owners
    streaming: str  # "auto": native streams while their budget allows; "off": chat.update only

    @classmethod
    def from_env(cls, env: Env) -> SlackSettings:
        token = env.optional_str("SLACK_BOT_TOKEN")
        if token is None or not token.startswith("xoxb-"):
            raise ConfigError("SLACK_BOT_TOKEN is invalid: expected a bot token starting with xoxb-")
        app_token = env.optional_str("SLACK_APP_TOKEN")
        if app_token is not None and not app_token.startswith("xapp-"):
            raise ConfigError("SLACK_APP_TOKEN is invalid: expected an app-level token starting with xapp-")
        secret = env.optional_str("SLACK_SIGNING_SECRET")
        if app_token is None and secret is None:
            raise ConfigError("Set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode on $PORT)")
        api_url = env.url("SLACK_API_URL", "https://slack.com/api/", ("http", "https")) or ""
        return cls(
            bot_token=token,
            app_token=app_token,
            signing_secret=secret,
            api_url=api_url if api_url.endswith("/") else api_url + "/",  # slack_sdk joins method names
            port=env.int("PORT", 3000, minimum=1, maximum=65535),
            allowed_channel_ids=env.id_set("SLACK_ALLOWED_CHANNEL_IDS"),
            blocked_user_ids=env.id_set("SLACK_BLOCKED_USER_IDS"),
            admin_user_ids=env.id_set("SLACK_ADMIN_USER_IDS"),
            streaming=env.choice("SLACK_STREAMING", "auto", ("auto", "off")),
        )
