"""Usage budgets and retention (config.usage): USER_DAILY_BUDGET and SERVER_MONTHLY_BUDGET in tokens or US dollars,
USAGE_RETENTION_DAYS, and the message for a value the bot can't use."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.channels_file import PlaceFile, load_places
from config.env import ConfigError, Env
from config.settings import load_settings
from config.usage import BUDGET_FORMS, Budget, PlaceBudget, UsageSettings, parse_budget, usage_settings


def test_unset_means_no_limit_and_ninety_days() -> None:
    assert load_settings(Env({})).usage == UsageSettings(None, None, 90)
    assert usage_settings(Env({"USER_DAILY_BUDGET": "", "SERVER_MONTHLY_BUDGET": "  "})) == UsageSettings()


def test_budgets_and_retention_are_read_by_load_settings() -> None:
    usage = load_settings(
        Env({"USER_DAILY_BUDGET": "200000", "SERVER_MONTHLY_BUDGET": "$5", "USAGE_RETENTION_DAYS": "7"})
    ).usage
    assert usage == UsageSettings(Budget(200_000, "tokens"), Budget(5.0, "usd"), 7)


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        ("200000", Budget(200_000, "tokens")),
        ("200,000", Budget(200_000, "tokens")),  # as describe() shows it
        ("200000 tokens", Budget(200_000, "tokens")),
        ("$5", Budget(5.0, "usd")),
        ("5 USD", Budget(5.0, "usd")),
        ("5usd", Budget(5.0, "usd")),
        ("$0.50", Budget(0.5, "usd")),
        (" $ 12.25 ", Budget(12.25, "usd")),
        ("$1,000", Budget(1000.0, "usd")),
        ("0.5 usd", Budget(0.5, "usd")),
    ],
)
def test_a_budget_is_tokens_or_us_dollars(text: str, budget: Budget) -> None:
    assert parse_budget(text, "USER_DAILY_BUDGET") == budget


@pytest.mark.parametrize("text", ["5 EUR", "€5", "$", "five dollars", "1.5", "-5", "$-1", "10k", "1,5", "5$ 5"])
def test_anything_else_names_the_variable_and_the_accepted_forms(text: str) -> None:
    for name in ("USER_DAILY_BUDGET", "SERVER_MONTHLY_BUDGET"):
        with pytest.raises(ConfigError) as raised:
            load_settings(Env({name: text}))
        message = str(raised.value)
        assert message.startswith(f"{name}: {text.strip()!r} is not a budget")
        assert BUDGET_FORMS in message


def test_a_zero_budget_is_refused_as_allowing_nothing() -> None:
    for text in ("0", "$0", "0 USD", "$0.0000001"):
        with pytest.raises(ConfigError, match="it would allow nothing; leave it empty for no limit"):
            parse_budget(text, "SERVER_MONTHLY_BUDGET")


def test_parse_budget_names_where_it_was_written_and_empty_is_no_limit() -> None:
    assert parse_budget("", "/budget") is None
    assert parse_budget("   ", "/budget") is None
    where = "CHANNELS_FILE='c.yml', servers '1': field 'budget'"
    with pytest.raises(ConfigError) as raised:
        parse_budget("lots", where)
    assert str(raised.value) == f"{where}: 'lots' is not a budget: expected {BUDGET_FORMS}, or nothing for no limit"


@pytest.mark.parametrize(
    ("budget", "shown", "units"),
    [
        (Budget(200_000, "tokens"), "200,000 tokens", 200_000),
        (Budget(5.0, "usd"), "$5.00", 5_000_000),
        (Budget(0.5, "usd"), "$0.50", 500_000),
        (Budget(1234.5, "usd"), "$1,234.50", 1_234_500_000),
        (Budget(0.005, "usd"), "$0.005", 5_000),
    ],
)
def test_describe_and_the_ledgers_units(budget: Budget, shown: str, units: int) -> None:
    assert budget.describe() == shown
    assert budget.units == units


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_retention_is_at_least_a_day(value: str) -> None:
    with pytest.raises(ConfigError, match=f"USAGE_RETENTION_DAYS={value!r} is invalid: expected a whole number"):
        usage_settings(Env({"USAGE_RETENTION_DAYS": value}))


def channels_file(tmp_path: Path, text: str) -> PlaceFile:
    path = tmp_path / "channels.yml"
    path.write_text(text, encoding="utf-8")
    return load_places(Env({"CHANNELS_FILE": str(path)}))


def test_channels_file_budgets_are_read_per_channel_and_server(tmp_path: Path) -> None:
    places = channels_file(
        tmp_path,
        'servers:\n  "9": {budget: {person_daily: 50000, monthly: $20}}\n'
        'channels:\n  "1": {budget: {person_daily: "10,000"}}\n',
    )
    server = PlaceBudget.from_json(places.setting("server", "9", "budget"))
    channel = PlaceBudget.from_json(places.setting("channel", "1", "budget"))
    assert server == PlaceBudget(Budget(50_000, "tokens"), Budget(20.0, "usd"))
    assert channel == PlaceBudget(person_daily=Budget(10_000, "tokens"))


@pytest.mark.parametrize(
    ("budget", "named"),
    [
        ("{person_daily: lots}", "field 'budget', person_daily: 'lots' is not a budget"),
        ("{yearly: 5}", "field 'budget': expected person_daily and/or monthly"),
        ("20000", "field 'budget': expected person_daily and/or monthly"),
        ("{monthly: 0}", "field 'budget', monthly: '0' is not a budget: it would allow nothing"),
    ],
)
def test_a_channels_file_budget_that_doesnt_parse_names_the_entry_and_field(
    tmp_path: Path, budget: str, named: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        channels_file(tmp_path, f'channels:\n  "1": {{budget: {budget}}}\n')
    assert "channels '1'" in str(refused.value) and named in str(refused.value)


def test_a_places_stored_budget_survives_its_json_and_a_bad_one_is_ignored() -> None:
    budget = PlaceBudget(Budget(1_000, "tokens"), Budget(0.5, "usd"))
    assert PlaceBudget.from_json(budget.to_json()) == budget
    assert PlaceBudget.from_json('{"monthly": "nonsense"}') == PlaceBudget()
    assert PlaceBudget.from_json(None).empty
