"""The help desk's settings: `helpers:` in CHANNELS_FILE (a Discord role's id; Slack users' or a user group's ids),
RESPOND_MIN_CONFIDENCE and HELPERS_PINGS_PER_HOUR, each checked with a message naming what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.channels_file import PlaceFile, load_places
from config.env import ConfigError, Env
from config.respond import respond_settings


def channels_file(tmp_path: Path, text: str) -> PlaceFile:
    path = tmp_path / "channels.yaml"
    path.write_text(text, encoding="utf-8")
    return load_places(Env({"CHANNELS_FILE": str(path)}))


def test_helpers_are_read_as_ids_one_or_several(tmp_path: Path) -> None:
    places = channels_file(
        tmp_path,
        'channels:\n  "111": {respond: questions, helpers: 555}\n'
        '  "C0HELP": {helpers: [U0ALICE1, U0BOB001]}\n'
        'servers:\n  "T0TEAM": {helpers: "S0SUPPORT, U0CAROL1"}\n',
    )
    assert places.setting("channel", "111", "helpers") == "555"
    assert places.setting("channel", "C0HELP", "helpers") == "U0ALICE1 U0BOB001"
    assert places.setting("server", "T0TEAM", "helpers") == "S0SUPPORT U0CAROL1"


@pytest.mark.parametrize("helpers", ['"@everyone"', '"<!here>"', "[]", '"role name"'])
def test_helpers_that_are_not_ids_are_refused_naming_the_entry(tmp_path: Path, helpers: str) -> None:
    with pytest.raises(ConfigError, match=r"channels '111': field 'helpers'"):
        channels_file(tmp_path, f'channels:\n  "111": {{helpers: {helpers}}}\n')


def test_the_confidence_gate_and_the_hourly_pings() -> None:
    default = respond_settings(Env({}))
    assert default.min_confidence is None and default.helper_pings_per_hour == 5
    set_ = respond_settings(Env({"RESPOND_MIN_CONFIDENCE": "0.4", "HELPERS_PINGS_PER_HOUR": "0"}))
    assert set_.min_confidence == 0.4 and set_.helper_pings_per_hour == 0
    with pytest.raises(ConfigError, match="RESPOND_MIN_CONFIDENCE"):
        respond_settings(Env({"RESPOND_MIN_CONFIDENCE": "2"}))
    with pytest.raises(ConfigError, match="HELPERS_PINGS_PER_HOUR"):
        respond_settings(Env({"HELPERS_PINGS_PER_HOUR": "-1"}))
