"""Settings: what an operator gets for each combination, and the message for a bad value."""

from __future__ import annotations

import pytest

import adapters
from config.env import ConfigError, Env
from config.settings import BackendKind, load_settings


def settings(**values: str):  # type: ignore[no-untyped-def]
    return load_settings(Env(values))


def test_nothing_configured_means_the_embedded_local_model_and_console_memory() -> None:
    loaded = settings()
    assert loaded.model.backend is BackendKind.LOCAL
    assert loaded.model.local_model_path is not None
    assert loaded.model.local_model_path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert loaded.model.sampling.max_new_tokens == 500
    assert loaded.model.sampling.temperature == 0.3 and loaded.model.sampling.repeat_penalty == 1.1
    assert loaded.history.url_for(console=True) == "memory://"
    assert loaded.history.url_for(console=False) == "redis://127.0.0.1:6379/0"


def test_a_token_selects_mistral_through_the_router() -> None:
    loaded = settings(HF_TOKEN="hf_x", INFERENCE_PROVIDER="together")
    assert loaded.model.backend is BackendKind.HF_ROUTER
    assert loaded.model.model_id == "mistralai/Mistral-7B-Instruct-v0.3"
    assert "hf_x" not in loaded.model.describe()


def test_a_base_url_wins_and_still_sends_the_model_id() -> None:
    loaded = settings(HF_TOKEN="hf_x", INFERENCE_BASE_URL="http://tgi:8080/v1", MODEL_ID="my/model")
    assert loaded.model.backend is BackendKind.OPENAI_COMPATIBLE
    assert loaded.model.describe() == "my/model via OpenAI-compatible server at http://tgi:8080/v1"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"MAX_NEW_TOKENS": "0"}, "MAX_NEW_TOKENS='0' is invalid: expected a whole number ≥ 1"),
        ({"TEMPERATURE": "hot"}, "TEMPERATURE='hot' is invalid: expected a number"),
        ({"TOP_P": "1.5"}, "TOP_P='1.5' is invalid: expected a number ≤ 1.0"),
        ({"INFERENCE_BASE_URL": "localhost:8080"}, "INFERENCE_BASE_URL='localhost:8080' is invalid: expected a URL"),
        ({"REDIS_URL": "127.0.0.1:6379"}, "REDIS_URL='127.0.0.1:6379' is invalid: expected a URL"),
        ({"REDIS_CLUSTER": "maybe"}, "REDIS_CLUSTER='maybe' is invalid: expected true or false"),
        ({"REDIS_CLUSTER": "true", "REDIS_URL": "unix:///run/redis.sock"}, "REDIS_URL must be redis://… or rediss://…"),
        ({"REDIS_CLUSTER": "true", "REDIS_URL": "redis://node-1:7000/2"}, "a Redis Cluster has only database 0"),
        ({"LOCAL_MODEL_PATH": "/nope.gguf"}, "LOCAL_MODEL_PATH='/nope.gguf' is invalid: expected an existing .gguf"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='loud' is invalid: expected one of debug, info, warning, error"),
        ({"INFERENCE_PROVIDER": "together"}, "INFERENCE_PROVIDER='together' is set but HF_TOKEN is not"),
        (
            {"MAX_NEW_TOKENS": "9000", "HF_TOKEN": "hf_x"},
            "MAX_NEW_TOKENS=9000 must be smaller than CONTEXT_TOKENS=8192",
        ),
    ],
)
def test_invalid_values_name_the_variable_and_what_is_expected(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings(**values)
    assert message in str(raised.value)


def test_python_m_bot_starts_every_platform_whose_token_is_set() -> None:
    available = adapters.load_all()
    assert {"console", "discord", "slack"} <= set(available)
    both = adapters.configured(available, Env({"DISCORD_TOKEN": "x", "SLACK_BOT_TOKEN": "xoxb-1"}))
    assert sorted(module.NAME for module in both) == ["discord", "slack"]
    assert adapters.configured(available, Env({})) == []
    # Installs to any workspace (Slack's OAuth flow) need no bot token.
    oauth = adapters.configured(available, Env({"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "s"}))
    assert [module.NAME for module in oauth] == ["slack"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"DISCORD_SHARD_IDS": "0"}, "DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT"),
        ({"DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": "1,x"}, "expected comma-separated numbers"),
        ({"DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": "4"}, "expected numbers from 0 to 3"),
        ({"DISCORD_SHARD_COUNT": "none"}, "DISCORD_SHARD_COUNT='none' is invalid"),
    ],
)
def test_a_bad_shard_setting_names_the_variable(values: dict[str, str], message: str) -> None:
    from adapters.discord_bot.settings import DiscordSettings

    with pytest.raises(ConfigError) as raised:
        DiscordSettings.from_env(Env({"DISCORD_TOKEN": "x.y.z", **values}))
    assert message in str(raised.value)


def test_shards_default_to_what_discord_recommends_and_split_by_process_when_given() -> None:
    from adapters.discord_bot.settings import DiscordSettings

    default = DiscordSettings.from_env(Env({"DISCORD_TOKEN": "x.y.z"}))
    assert (default.shard_count, default.shard_ids) == (None, None)
    split = DiscordSettings.from_env(
        Env({"DISCORD_TOKEN": "x.y.z", "DISCORD_SHARD_COUNT": "4", "DISCORD_SHARD_IDS": "3, 1"})
    )
    assert (split.shard_count, split.shard_ids) == (4, [1, 3])
