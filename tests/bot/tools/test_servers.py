"""The bot's connection to one MCP server (bot.tools.servers.McpServer), against real servers written with the
official SDK: fakes.mcp_tools over stdio and streamable HTTP, and the reference servers mcp-server-time
and mcp-server-fetch from PyPI. Real processes and sockets, no mocks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.tools.servers import McpServer
from config.tools_file import ServerConfig
from fakes.harness.processes import ROOT, free_port, terminate
from fakes.mcp_refusing import SECRET, refusing_server

FAKE = ("-m", "fakes.mcp_tools")
QUICK = (0.05, 0.2)  # backoff: retry at once, for the tests


async def eventually(check: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def children() -> set[int]:
    """This process's child processes (zombies included: they stay children until reaped)."""
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        found |= {int(pid) for pid in (task / "children").read_text().split()}
    return found


def fake_config(tmp_path: Path, **fields: Any) -> ServerConfig:
    """The fake over stdio, its notes and events in `tmp_path`."""
    env = {"MCP_NOTES_FILE": str(tmp_path / "notes"), "MCP_EVENTS_FILE": str(tmp_path / "events")}
    config = ServerConfig(name="fake", command=sys.executable, args=(*FAKE, "stdio"), cwd=str(ROOT), env=env)
    return replace(config, **fields)


async def started(config: ServerConfig, on_tools_changed: Callable[[], None] = lambda: None) -> McpServer:
    server = McpServer(config, on_tools_changed=on_tools_changed, backoff=QUICK)
    await server.start()
    assert await server.wait_ready(15), server.problem
    return server


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[McpServer]:
    server = await started(fake_config(tmp_path))
    yield server
    await server.aclose()


async def start_http_fake(port: int, tmp_path: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "MCP_NOTES_FILE": str(tmp_path / "notes"), "MCP_EVENTS_FILE": str(tmp_path / "events")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, *FAKE, "http", "--port", str(port), cwd=ROOT, env=env
    )
    await eventually(lambda: listening(port), 15, "the HTTP fake to listen")
    return process


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
async def http_fake(tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    process = await start_http_fake(port, tmp_path)
    yield f"http://127.0.0.1:{port}/mcp"
    await terminate(process, 5)


# -- the fake over stdio ------------------------------------------------------------------


async def test_tools_are_listed_with_their_read_only_flags(fake: McpServer) -> None:
    tools = {tool.name: tool for tool in fake.tools}

    assert set(tools) == {
        "lookup",
        "add_note",
        "delete_note",
        "add_note_slowly",
        "hang",
        "fail",
        "huge",
        "exit_now",
        "slow",
        "add_tool",
        "strict",
        "endless",
        "deep_result",
    }
    assert tools["lookup"].read_only and tools["hang"].read_only
    assert not tools["add_note"].read_only
    assert tools["lookup"].server == "fake"
    assert tools["lookup"].description == "Look something up."
    assert tools["lookup"].input_schema["properties"]["query"]["type"] == "string"
    assert fake.up and fake.problem == ""


async def test_only_the_tools_the_config_names_are_offered(tmp_path: Path) -> None:
    server = await started(fake_config(tmp_path, tools=frozenset({"lookup", "add_note", "no_such_tool"})))
    try:
        assert sorted(tool.name for tool in server.tools) == ["add_note", "lookup"]
    finally:
        await server.aclose()


async def test_a_result_gives_its_text_and_the_links_it_points_to(fake: McpServer) -> None:
    outcome = await fake.call("lookup", {"query": "otters"}, 10)

    assert outcome.ok
    assert outcome.text == "Result for otters: see https://example.org/otters"
    assert outcome.links == ("https://example.org/otters", "https://docs.example.org/otters")


async def test_each_call_runs_exactly_once(fake: McpServer, tmp_path: Path) -> None:
    first = await fake.call("add_note", {"text": "milk"}, 10)
    second = await fake.call("add_note", {"text": "eggs"}, 10)

    assert (first.ok, first.text, second.text) == (True, "noted #1", "noted #2")
    assert lines(tmp_path / "notes") == ["milk", "eggs"]


async def test_a_call_that_times_out_is_cancelled_on_the_server(fake: McpServer, tmp_path: Path) -> None:
    started_at = time.monotonic()
    outcome = await fake.call("hang", {}, 1)

    assert time.monotonic() - started_at < 5  # ended at its timeout, not whenever the tool might answer
    assert (outcome.ok, outcome.error) == (False, "timed out after 1 s")
    await eventually(lambda: lines(tmp_path / "events") == ["cancelled"], 2, "the server to see the cancellation")
    assert (await fake.call("slow", {"ms": 10}, 5)).text == "slept 10 ms"


async def test_a_cancelled_caller_cancels_the_call_on_the_server(fake: McpServer, tmp_path: Path) -> None:
    call = asyncio.create_task(fake.call("hang", {}, 30))
    await asyncio.sleep(0.5)
    call.cancel()

    with pytest.raises(asyncio.CancelledError):
        await call
    await eventually(lambda: lines(tmp_path / "events") == ["cancelled"], 2, "the server to see the cancellation")
    assert fake.up


async def test_a_tool_error_gives_its_message(fake: McpServer) -> None:
    outcome = await fake.call("fail", {}, 10)

    assert not outcome.ok
    assert "the lookup service is down" in outcome.error
    assert "the lookup service is down" in outcome.text


async def test_a_huge_result_comes_back_whole(fake: McpServer) -> None:
    outcome = await fake.call("huge", {}, 10)

    assert outcome.ok and outcome.text == "0123456789" * 10_000


async def test_a_server_that_dies_mid_call_fails_the_call_at_once_and_is_restarted(fake: McpServer) -> None:
    started_at = time.monotonic()
    outcome = await fake.call("exit_now", {}, 30)

    assert time.monotonic() - started_at < 10  # not after the call's 30 s timeout
    assert (outcome.ok, outcome.error) == (False, "the server stopped during the call")
    assert not fake.up
    assert await fake.wait_ready(15), fake.problem
    assert (await fake.call("lookup", {"query": "back"}, 10)).text.startswith("Result for back")


async def test_a_server_whose_process_dies_is_down_at_once_and_started_again(tmp_path: Path) -> None:
    before = children()
    server = await started(fake_config(tmp_path))
    try:
        (first,) = children() - before
        os.kill(first, signal.SIGKILL)
        await eventually(lambda: not server.up, 2, "the server to be down")
        assert server.problem == "the server exited"

        assert await server.wait_ready(15), server.problem
        assert children() - before not in (set(), {first})
        assert (await server.call("slow", {"ms": 1}, 5)).text == "slept 1 ms"
    finally:
        await server.aclose()


async def test_a_server_that_adds_a_tool_is_listed_again(tmp_path: Path) -> None:
    changed = asyncio.Event()
    server = await started(fake_config(tmp_path), on_tools_changed=changed.set)
    try:
        assert (await server.call("add_tool", {}, 10)).ok
        await asyncio.wait_for(changed.wait(), 5)

        assert "extra" in {tool.name for tool in server.tools}
        assert (await server.call("extra", {}, 10)).text == "extra"
    finally:
        await server.aclose()


async def test_a_missing_program_is_reported_and_tried_again(tmp_path: Path) -> None:
    program = tmp_path / "mcp-later"
    server = McpServer(fake_config(tmp_path, command=str(program), args=()), backoff=QUICK)
    await server.start()
    try:
        assert not await server.wait_ready(0.5)
        assert not server.up
        assert server.problem == f"can't start {str(program)!r}: No such file or directory"
        outcome = await server.call("lookup", {"query": "x"}, 5)
        assert not outcome.ok and "No such file" in outcome.error

        program.write_text(f"#!/bin/sh\nexec {sys.executable} -m fakes.mcp_tools stdio\n")
        program.chmod(program.stat().st_mode | stat.S_IXUSR)
        assert await server.wait_ready(15), server.problem
    finally:
        await server.aclose()


async def test_a_program_that_exits_before_it_is_ready_says_why_in_its_own_words(tmp_path: Path) -> None:
    # The package is installed for another interpreter, not this one: Python says so on stderr and exits.
    config = fake_config(tmp_path, command=sys.executable, args=("-m", "mcp_server_not_installed_here"))
    server = McpServer(config, backoff=QUICK)
    await server.start()
    try:
        assert await server.wait_first_try(15) and not server.up
        assert server.problem == (
            f"{sys.executable!r} exited before it was ready; "
            f"its last output: “{sys.executable}: No module named mcp_server_not_installed_here”"
        )
    finally:
        await server.aclose()


async def test_what_a_program_says_is_shown_inert_and_in_a_few_lines(tmp_path: Path) -> None:
    noisy = "import sys\nfor n in range(50): print(f'line {n} ' + 'x' * 500, file=sys.stderr)\n"
    hostile = "print('<@123> @everyone <b>hi</b> \\x1b[31mred', file=sys.stderr)\nraise SystemExit(3)\n"
    server = McpServer(fake_config(tmp_path, args=("-c", noisy + hostile)), backoff=QUICK)
    await server.start()
    try:
        assert await server.wait_first_try(15)
        said = server.problem.split("its last output: ", 1)[1]
        inert = "\u2039@\u200b123\u203a @\u200beveryone \u2039b\u203ahi\u2039/b\u203a red”"  # angle quotes, no mention
        assert len(said) <= 302 and said.endswith(inert)
        assert "<" not in said and "\x1b" not in said and "line 46" not in said  # the last 3 lines at most
    finally:
        await server.aclose()


async def test_a_server_that_refuses_is_shown_by_its_host_and_status_never_its_key() -> None:
    async with refusing_server() as url:
        server = McpServer(ServerConfig(name="hosted", url=url), backoff=QUICK)
        await server.start()
        try:
            assert await server.wait_first_try(15) and not server.up
            host = url.split("/api/", 1)[0]
            assert server.problem == f"{host}: the server answered 401 Unauthorized"
            assert SECRET not in (await server.call("lookup", {}, 1)).error
        finally:
            await server.aclose()


async def test_aclose_leaves_no_process_behind(tmp_path: Path) -> None:
    before = children()
    server = await started(fake_config(tmp_path))
    assert len(children() - before) == 1
    call = asyncio.create_task(server.call("hang", {}, 30))
    await asyncio.sleep(0.3)

    await server.aclose()

    assert children() - before == set()
    assert (await call).error == "the server stopped during the call"
    assert not server.up


# -- the fake over streamable HTTP --------------------------------------------------------


async def test_a_server_over_http(http_fake: str, tmp_path: Path) -> None:
    config = ServerConfig(name="web", url=http_fake, headers={"X-Test": "yes"}, tools=frozenset({"lookup", "hang"}))
    server = await started(config)
    try:
        assert sorted(tool.name for tool in server.tools) == ["hang", "lookup"]
        outcome = await server.call("lookup", {"query": "owls"}, 10)
        assert outcome.links == ("https://example.org/owls", "https://docs.example.org/owls")

        timed_out = await server.call("hang", {}, 1)
        assert timed_out.error == "timed out after 1 s"
        await eventually(lambda: lines(tmp_path / "events") == ["cancelled"], 2, "the server to see the cancellation")
    finally:
        await server.aclose()


async def test_a_url_where_nothing_listens_is_reported_and_tried_again(tmp_path: Path) -> None:
    port = free_port()
    server = McpServer(ServerConfig(name="web", url=f"http://127.0.0.1:{port}/mcp?key=secret"), backoff=QUICK)
    await server.start()
    process = None
    try:
        assert not await server.wait_ready(0.5)
        assert server.problem == f"http://127.0.0.1:{port}: connection refused"  # the host alone: no path, no query

        process = await start_http_fake(port, tmp_path)
        assert await server.wait_ready(15), server.problem
    finally:
        await server.aclose()
        if process is not None:
            await terminate(process, 5)


# -- the reference servers from PyPI ------------------------------------------------------


async def test_the_time_server() -> None:
    server = await started(ServerConfig(name="time", command=sys.executable, args=("-m", "mcp_server_time")))
    try:
        tools = {tool.name: tool for tool in server.tools}
        assert set(tools) == {"get_current_time", "convert_time"}
        assert all(tool.read_only for tool in tools.values())
        assert tools["get_current_time"].input_schema["required"] == ["timezone"]

        outcome = await server.call("get_current_time", {"timezone": "UTC"}, 10)
        assert outcome.ok and '"timezone": "UTC"' in outcome.text.replace("\n", " ")
    finally:
        await server.aclose()


@pytest.fixture
async def web_page() -> AsyncIterator[str]:
    async def page(request: web.Request) -> web.Response:
        body = "<html><head><title>Otters</title></head><body><article><h1>Sea otters</h1>"
        body += "<p>Sea otters hold hands while they sleep so that they don't drift apart.</p></article></body></html>"
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/otters", page)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/otters"
    await runner.cleanup()


async def test_the_fetch_server(web_page: str) -> None:
    args = ("-m", "mcp_server_fetch", "--ignore-robots-txt", "--allow-private-ips")  # the page is on loopback
    server = await started(ServerConfig(name="fetch", command=sys.executable, args=args))
    try:
        assert [tool.name for tool in server.tools] == ["fetch"]
        outcome = await server.call("fetch", {"url": web_page}, 20)

        assert outcome.ok, outcome.error
        assert "Sea otters hold hands while they sleep" in outcome.text
        assert web_page in outcome.links
    finally:
        await server.aclose()
