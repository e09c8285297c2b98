"""MCP_SERVERS_FILE for the tests and benchmarks: the server of fakes/mcp_tools.py over stdio, as "fake"."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def fake_server(**env: str | Path) -> dict[str, Any]:
    """The fake tool server's entry; `env`: MCP_NOTES_FILE, MCP_EVENTS_FILE, MCP_TIMING_FILE (see mcp_tools)."""
    return {
        "command": sys.executable,
        "args": ["-m", "fakes.mcp_tools", "stdio"],
        "cwd": str(ROOT),
        "env": {name: str(value) for name, value in env.items()},
    }


def servers_file(directory: Path, **servers: dict[str, Any]) -> Path:
    """A JSON MCP_SERVERS_FILE in `directory` listing `servers` by name."""
    path = directory / "mcp.json"
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    return path
