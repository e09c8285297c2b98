"""Tools in the terminal: `python -m bot console` with an MCP server, driven through its stdin: a line per call,
sources under the answer, y/N before a tool that changes something, /tools."""

from __future__ import annotations

import sys
from pathlib import Path

from fakes.mcp_config import fake_server, servers_file
from fakes.model_server import FakeModelServer, Script, ToolAgent, ToolCallScript
from tests.console.test_console import Console, clean_env

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


async def test_tools_says_when_this_conversations_model_uses_none_and_which_models_do(tmp_path: Path) -> None:
    servers = servers_file(tmp_path, fake=fake_server())
    async with FakeModelServer(Script(text="Hello.")) as model:
        model.responder = ToolAgent(CALLS)
        env = clean_env(
            INFERENCE_BASE_URL=f"{model.base_url}/v1",
            MODELS="small-model",
            TOOL_MODELS="small-model",
            MCP_SERVERS_FILE=str(servers),
        )
        console = await Console.start("console", env=env)
        await console.read_until("you> ")
        await console.say("/tools")
        await console.read_until("• `lookup`")
        assert (
            "Mistral-7B-Instruct-v0.3 answers this conversation and doesn't use tools: it answers from what it knows. "
            "The models here that do: small-model. Switch with /model small-model.\nThe tools connected:\n"
        ) in console.output
        await console.say("what's the weather?")
        await console.read_until("you> ", occurrences=3)
        assert "tools" not in model.requests[-1].body  # as /tools said

        await console.say("/model small-model")
        await console.read_until("you> ", occurrences=4)
        await console.say("/tools")
        await console.read_until("small-model answers this conversation and uses these tools:\n• `lookup`")
        await console.say("what's the weather?")
        await console.read_until("✓ `lookup`, ")
        code, stderr = await console.finish()
        assert code == 0, stderr


async def test_the_embedded_model_says_it_uses_no_tools(tmp_path: Path) -> None:
    servers = servers_file(tmp_path, fake=fake_server())
    console = await Console.start(env=clean_env(MCP_SERVERS_FILE=str(servers)))  # no model set: the embedded one
    await console.read_until("you> ")
    await console.say("/tools")
    await console.read_until("• `lookup`")
    code, stderr = await console.finish()
    assert code == 0, stderr
    assert "SmolLM2-135M-Instruct answers this conversation and doesn't use tools" in console.output
    assert "None of the models here uses them." in console.output
    assert "The tools I can use" not in console.output


async def test_a_servers_stderr_stays_out_of_the_chat_and_says_why_it_stopped(tmp_path: Path) -> None:
    banner = "FAKE TOOLS SERVER v1 -- listening on stdio, 11 tools ready"
    servers = servers_file(
        tmp_path,
        fake=fake_server(MCP_STDERR_BANNER=banner),
        # Its package is installed for another interpreter, not this one.
        elsewhere={"command": sys.executable, "args": ["-m", "mcp_server_installed_elsewhere"]},
    )
    async with FakeModelServer(Script(text="Hello.")) as model:
        model.responder = ToolAgent(CALLS)
        env = clean_env(INFERENCE_BASE_URL=f"{model.base_url}/v1", MCP_SERVERS_FILE=str(servers))
        console = await Console.start("console", env=env)
        await console.read_until("you> ")
        await console.say("what's the weather?")
        await console.read_until("2. <https://docs.example.org/weather>")
        await console.say("/tools")
        await console.read_until("I keep trying to reach it.")
        code, stderr = await console.finish()
    assert code == 0, stderr
    assert (
        f"⚠️ `elsewhere` is down: {sys.executable!r} exited before it was ready; its last output: "
        f"“{sys.executable}: No module named mcp_server_installed_elsewhere”. I keep trying to reach it."
    ) in console.output
    assert banner not in console.output and banner not in stderr  # the terminal shows neither
