"""What `python -m bot` says when it cannot start: one line per mistake, the same words for the same mistake on
every platform, and exit code 2 for every setting that is wrong; and what the embedded model is for."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fakes.harness.processes import ROOT
from tests.console.test_console import clean_env

NO_MODEL_SERVER = "http://127.0.0.1:9/v1"  # never reached: the settings are refused before anything starts


def start(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT,
        env=clean_env(**env),
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("discord", "Configuration error: DISCORD_TOKEN is not set: create a bot in the Discord developer portal"),
        ("slack", "Configuration error: SLACK_BOT_TOKEN is not set: create a Slack app and install it"),
    ],
)
def test_a_platform_without_its_token_says_it_is_not_set_in_one_line(platform: str, expected: str) -> None:
    started = start(platform, INFERENCE_BASE_URL=NO_MODEL_SERVER, REDIS_URL="redis://127.0.0.1:9/0")
    assert started.returncode == 2
    assert started.stderr.count("\n") == 1 and started.stderr.startswith(expected), started.stderr
    assert started.stdout == ""


@pytest.mark.parametrize(
    ("platform", "variables", "expected"),
    [
        ("slack", {"SLACK_BOT_TOKEN": "xoxp-a-user-token"}, "SLACK_BOT_TOKEN is invalid: expected a bot token"),
        ("slack", {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "abc"}, "SLACK_APP_TOKEN is invalid"),
        ("discord", {"DISCORD_TOKEN": "t", "DISCORD_SHARD_IDS": "0"}, "DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT"),
        ("web", {"WEB_PORT": "0"}, "WEB_PORT='0' is invalid"),
        ("console", {"MAX_NEW_TOKENS": "many"}, "MAX_NEW_TOKENS='many' is invalid"),
    ],
)
def test_a_wrong_setting_is_one_line_and_exit_code_2_on_every_platform(
    platform: str, variables: dict[str, str], expected: str
) -> None:
    started = start(platform, INFERENCE_BASE_URL=NO_MODEL_SERVER, REDIS_URL="redis://127.0.0.1:9/0", **variables)
    assert started.returncode == 2
    assert started.stderr == f"Configuration error: {started.stderr.removeprefix('Configuration error: ')}"
    assert started.stderr.count("\n") == 1 and expected in started.stderr, started.stderr


def test_every_started_platforms_settings_are_checked_before_any_starts() -> None:
    """`python -m bot` with both tokens set, one of them wrong: nothing starts, and the wrong one is named."""
    started = start(
        INFERENCE_BASE_URL=NO_MODEL_SERVER,
        REDIS_URL="redis://127.0.0.1:9/0",
        DISCORD_TOKEN="t",
        SLACK_BOT_TOKEN="not-a-bot-token",
    )
    assert started.returncode == 2
    assert (
        started.stderr.startswith("Configuration error: SLACK_BOT_TOKEN is invalid") and started.stderr.count("\n") == 1
    ), started.stderr


def test_the_embedded_model_says_what_it_is_for_and_how_to_get_real_answers() -> None:
    """With nothing configured the console chats with the embedded model: it says at once that it is for trying the
    bot offline, and the one setting that gives real answers."""
    process = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=ROOT,
        env=clean_env(REDIS_URL="memory://"),
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == 0, process.stderr
    assert "embedded model (SmolLM2-135M) is for trying the bot offline" in process.stderr
    assert "set HF_TOKEN=hf_" in process.stderr and "mistralai/Mistral-7B-Instruct-v0.3" in process.stderr
    configured = start("console", INFERENCE_BASE_URL=NO_MODEL_SERVER, REDIS_URL="memory://")
    assert "embedded model" not in configured.stderr  # only said of the embedded one
