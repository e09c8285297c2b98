"""Slack's settings for installs to any workspace (SLACK_CLIENT_ID): what start-up refuses, and why."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from adapters.slack_bot.settings import SlackSettings
from config.env import ConfigError, Env

TOKEN_KEY = Fernet.generate_key().decode()


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "SLACK_TOKEN_ENCRYPTION_KEY is missing"),
        ("not-a-fernet-key", "SLACK_TOKEN_ENCRYPTION_KEY is invalid: expected a Fernet key"),
    ],
)
def test_settings_refuse_a_missing_or_invalid_key(key: str | None, message: str) -> None:
    values = {"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "s", "SLACK_SIGNING_SECRET": "x"}
    with pytest.raises(ConfigError) as raised:
        SlackSettings.from_env(Env(values | ({"SLACK_TOKEN_ENCRYPTION_KEY": key} if key else {})))
    assert message in str(raised.value)
    assert "Fernet.generate_key()" in str(raised.value)  # how to make one
    if key:
        assert key not in str(raised.value)


def test_oauth_settings_need_the_signing_secret_and_no_bot_token() -> None:
    values = {"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "s", "SLACK_TOKEN_ENCRYPTION_KEY": TOKEN_KEY}
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        SlackSettings.from_env(Env(values))
    with pytest.raises(ConfigError, match="SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together"):
        SlackSettings.from_env(Env({"SLACK_CLIENT_ID": "1.2", "SLACK_SIGNING_SECRET": "x"}))
    settings = SlackSettings.from_env(Env(values | {"SLACK_SIGNING_SECRET": "x", "SLACK_API_URL": "http://h:1/api"}))
    assert settings.oauth is not None and settings.bot_token == ""
    assert settings.oauth.authorize_url == "http://h:1/oauth/v2/authorize"
    assert TOKEN_KEY not in repr(settings) and "'s'" not in repr(settings.oauth)
