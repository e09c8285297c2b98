"""Tools in the terminal: `python -m bot console` with an MCP server, driven through its stdin: a line per call,
sources under the answer, y/N before a tool that changes something, /tools."""

from __future__ import annotations

from pathlib import Path

from tests.console.test_console import Console, clean_env
from tests.fakes.mcp_config import fake_server, servers_file
from tests.fakes.model_server import FakeModelServer, Script, ToolAgent, ToolCallScript

CALLS = {
    "weather": [ToolCallScript("lookup", '{"query": "weather"}')],
    "note": [ToolCallScript("add_note", '{"text": "buy milk"}')],
}


async def test_calls_show_as_lines_and_a_tool_that_changes_something_asks_y_n(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    servers = servers_file(tmp_path, fake=fake_server(MCP_NOTES_FILE=notes))
    async with FakeModelServer(Script(text="Hello.")) as model:
        model.responder = ToolAgent(CALLS)
        env = clean_env(INFERENCE_BASE_URL=f"{model.base_url}/v1", MCP_SERVERS_FILE=str(servers))
        console = await Console.start("console", env=env)
        await console.read_until("you> ")

        await console.say("/tools")
        await console.read_until("(asks you first)")
        assert "• `lookup`: Look something up." in console.output

        await console.say("what's the weather?")
        await console.read_until("2. <https://docs.example.org/weather>")
        assert "✓ `lookup`, " in console.output and "Using Result for weather" in console.output

        await console.say("note: buy milk")
        await console.read_until('Run add_note (fake) with {"text": "buy milk"}? [y/N] ')
        await console.say("n")
        await console.read_until("✗ `add_note`: declined")
        assert not notes.exists()

        await console.say("note: buy milk")
        await console.read_until("[y/N] ", occurrences=2)
        await console.say("y")
        await console.read_until("✓ `add_note`, ")
        await console.read_until("you> ", occurrences=5)
        assert notes.read_text().splitlines() == ["buy milk"]
        code, stderr = await console.finish()
        assert code == 0, stderr
