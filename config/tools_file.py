"""MCP_SERVERS_FILE: the tool servers the bot connects to, in the common `mcpServers` format
(JSON or YAML), each checked field by field; an error names the file, the server and the field.

    {"mcpServers": {
        "time": {"command": "uvx", "args": ["mcp-server-time"]},
        "search": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ${SEARCH_TOKEN}"},
                   "tools": ["search"], "confirm": false, "timeout_seconds": 10}}}

`${NAME}` inside `env` and `headers` values is read from the environment."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]  # stubs (types-PyYAML) are optional

from config.env import ConfigError, Env

SERVER_FIELDS = ("command", "args", "env", "url", "headers", "tools", "confirm", "timeout_seconds", "type", "cwd")
_SERVER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class ServerConfig:
    """One MCP server: started by the bot (`command`) or reached over streamable HTTP (`url`)."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    tools: frozenset[str] | None = None  # the tools offered (None: all)
    # Which tools ask the person first: True / False for all of them; else per tool name (True: asks, False: doesn't),
    # and a tool not named asks unless its annotations say it is read-only.
    confirm: bool | Mapping[str, bool] | None = None
    timeout_seconds: float = 30.0

    @property
    def stdio(self) -> bool:
        return self.command is not None


def load_servers(env: Env, *, default_timeout: float) -> tuple[ServerConfig, ...]:
    """The servers MCP_SERVERS_FILE lists (none when it is not set)."""
    path = env.optional_str("MCP_SERVERS_FILE")
    if path is None:
        return ()
    where = f"MCP_SERVERS_FILE={path!r}"
    data = _read(Path(path), where)
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise ConfigError(f"{where}: expected an object with 'mcpServers': {{name: server}}")
    return tuple(
        _server(str(name), entry, env, f"{where}, server {name!r}", default_timeout) for name, entry in servers.items()
    )


def _read(path: Path, where: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{where}: can't read it: {error.strerror or error}") from error
    try:
        return json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise ConfigError(
            f"{where}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {error}"
        ) from error


def _server(name: str, entry: Any, env: Env, where: str, default_timeout: float) -> ServerConfig:
    if not _SERVER_NAME.fullmatch(name):
        raise ConfigError(f"{where}: a server name is 1-40 letters, digits, '.', '_' or '-'")
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected an object with 'command' or 'url'")
    unknown = sorted(set(entry) - set(SERVER_FIELDS))
    if unknown:
        raise ConfigError(f"{where}: field {unknown[0]!r}: unknown (expected one of {', '.join(SERVER_FIELDS)})")
    command, url = entry.get("command"), entry.get("url")
    if (command is None) == (url is None):
        raise ConfigError(f"{where}: give exactly one of 'command' (a server the bot starts) or 'url'")
    if command is not None and not (isinstance(command, str) and command.strip()):
        raise ConfigError(f"{where}: field 'command': expected the program to run")
    if url is not None and not (isinstance(url, str) and re.match(r"https?://[^/\s]+", url)):
        raise ConfigError(f"{where}: field 'url': expected an http(s):// URL")
    return ServerConfig(
        name=name,
        command=command,
        args=_strings(entry.get("args", []), f"{where}: field 'args'"),
        env=_filled(entry.get("env", {}), env, f"{where}: field 'env'"),
        cwd=_optional_string(entry.get("cwd"), f"{where}: field 'cwd'"),
        url=url,
        headers=_filled(entry.get("headers", {}), env, f"{where}: field 'headers'"),
        tools=_tool_names(entry.get("tools"), f"{where}: field 'tools'"),
        confirm=_confirm(entry.get("confirm"), f"{where}: field 'confirm'"),
        timeout_seconds=_timeout(entry.get("timeout_seconds", default_timeout), f"{where}: field 'timeout_seconds'"),
    )


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, (str, int, float)) for item in value):
        raise ConfigError(f"{where}: expected a list of strings")
    return tuple(str(item) for item in value)


def _optional_string(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string")
    return value


def _filled(value: Any, env: Env, where: str) -> dict[str, str]:
    """A {name: value} map with each ${NAME} read from the environment."""
    if not isinstance(value, dict) or not all(isinstance(item, (str, int, float)) for item in value.values()):
        raise ConfigError(f"{where}: expected an object of strings")

    def fill(match: re.Match[str]) -> str:
        found = env.raw(match.group(1))
        if found is None:
            raise ConfigError(f"{where}: ${{{match.group(1)}}} is not set in the environment")
        return found

    return {str(key): _PLACEHOLDER.sub(fill, str(item)) for key, item in value.items()}


def _tool_names(value: Any, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ConfigError(f"{where}: expected a list of tool names")
    return frozenset(value)


def _confirm(value: Any, where: str) -> bool | dict[str, bool] | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, list) and all(isinstance(item, str) and item for item in value):
        return dict.fromkeys(value, True)
    if isinstance(value, dict) and all(isinstance(item, bool) for item in value.values()):
        return {str(name): item for name, item in value.items()}
    raise ConfigError(f"{where}: expected true, false, a list of tool names that ask, or {{tool: true/false}}")


def _timeout(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
        raise ConfigError(f"{where}: expected a number of seconds between 0 and 3600")
    return float(value)
