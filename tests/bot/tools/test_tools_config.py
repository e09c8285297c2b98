"""MCP_SERVERS_FILE and the tool settings: what an operator writes, what the bot makes of it, and the message for a
bad file (naming the server and the field), before anything starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.env import ConfigError, Env
from config.settings import Settings, load_settings
from config.tools import offers_tools

REMOTE = {"INFERENCE_BASE_URL": "http://127.0.0.1:9/v1"}


def with_servers(tmp_path: Path, servers: object, name: str = "mcp.json", **values: str) -> Settings:
    path = tmp_path / name
    text = json.dumps(servers) if name.endswith(".json") else str(servers)
    path.write_text(text, encoding="utf-8")
    return load_settings(Env({**REMOTE, "MCP_SERVERS_FILE": str(path), **values}))


def refused(tmp_path: Path, servers: object, **values: str) -> str:
    with pytest.raises(ConfigError) as raised:
        with_servers(tmp_path, servers, **values)
    return str(raised.value)


def test_the_common_format_with_secrets_from_the_environment(tmp_path: Path) -> None:
    servers = {
        "mcpServers": {
            "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ_TOKEN": "${TZ_TOKEN}"}},
            "search": {
                "url": "https://mcp.example.com/mcp",
                "headers": {"Authorization": "Bearer ${SEARCH_TOKEN}"},
                "tools": ["search"],
                "confirm": False,
                "timeout_seconds": 10,
            },
        }
    }
    settings = with_servers(tmp_path, servers, TZ_TOKEN="t0k", SEARCH_TOKEN="s3cret", TOOL_TIMEOUT_SECONDS="12")
    time, search = settings.tools.servers
    assert (time.name, time.command, time.args, dict(time.env)) == (
        "time",
        "uvx",
        ("mcp-server-time",),
        {"TZ_TOKEN": "t0k"},
    )
    assert time.timeout_seconds == 12.0 and time.confirm is None and time.tools is None
    assert (search.url, dict(search.headers)) == ("https://mcp.example.com/mcp", {"Authorization": "Bearer s3cret"})
    assert (search.tools, search.confirm, search.timeout_seconds) == (frozenset({"search"}), False, 10.0)


def test_yaml_and_per_tool_confirmation(tmp_path: Path) -> None:
    text = "mcpServers:\n  notes:\n    command: notes-server\n    confirm: {add_note: true, list_notes: false}\n"
    [notes] = with_servers(tmp_path, text, name="mcp.yml").tools.servers
    assert notes.confirm == {"add_note": True, "list_notes": False}


@pytest.mark.parametrize(
    ("servers", "message"),
    [
        ({"servers": {}}, "expected an object with 'mcpServers'"),
        ({"mcpServers": {"a": {}}}, "server 'a': give exactly one of 'command'"),
        ({"mcpServers": {"a": {"command": "x", "url": "http://h"}}}, "server 'a': give exactly one of 'command'"),
        ({"mcpServers": {"a": {"url": "ftp://h"}}}, "server 'a': field 'url': expected an http(s):// URL"),
        ({"mcpServers": {"a": {"command": "x", "args": "y"}}}, "server 'a': field 'args': expected a list"),
        ({"mcpServers": {"a": {"command": "x", "timeout_seconds": 0}}}, "server 'a': field 'timeout_seconds'"),
        ({"mcpServers": {"a": {"command": "x", "confirm": "yes"}}}, "server 'a': field 'confirm'"),
        ({"mcpServers": {"a": {"command": "x", "tools": "t"}}}, "server 'a': field 'tools'"),
        ({"mcpServers": {"a": {"command": "x", "colour": 1}}}, "server 'a': field 'colour': unknown"),
        ({"mcpServers": {"a": {"command": "x", "env": {"K": "${MISSING}"}}}}, "field 'env': ${MISSING} is not set"),
        ({"mcpServers": {"a b": {"command": "x"}}}, "server 'a b': a server name is"),
    ],
)
def test_a_bad_file_stops_start_up_naming_the_server_and_the_field(
    tmp_path: Path, servers: object, message: str
) -> None:
    assert message in refused(tmp_path, servers)


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"MCP_SERVERS_FILE=.*can't read it"):
        load_settings(Env({**REMOTE, "MCP_SERVERS_FILE": str(tmp_path / "missing.json")}))
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_settings(Env({**REMOTE, "MCP_SERVERS_FILE": str(tmp_path / "bad.json")}))


def test_which_models_are_offered_tools(tmp_path: Path) -> None:
    servers = {"mcpServers": {"t": {"command": "x"}}}
    settings = with_servers(tmp_path, servers, MODELS="other-model")
    assert [offers_tools(c, settings.models, settings.tools) for c in settings.models.choices] == [True, True]

    named = with_servers(tmp_path, servers, MODELS="other-model", TOOL_MODELS="other-model")
    assert [offers_tools(c, named.models, named.tools) for c in named.models.choices] == [False, True]

    local = load_settings(Env({"MCP_SERVERS_FILE": str(tmp_path / "mcp.json")}))
    assert not offers_tools(local.models.default, local.models, local.tools)  # the in-process model: never

    none = load_settings(Env(REMOTE))
    assert not offers_tools(none.models.default, none.models, none.tools)  # no servers: no tools
