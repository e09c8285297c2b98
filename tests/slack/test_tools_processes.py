"""A confirmed call runs at most once across the bot's processes: two `python -m bot slack` processes on one
workspace (Socket Mode), the question asked by the one answering, the click taken by the other (the fake delivers
to the newest connection), the click doubled. The tool is the MCP server of fakes/mcp_tools.py, one per
process."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from fakes.harness.processes import delete_keys
from fakes.harness.slack_world import SlackHarness, eventually, finished, started
from fakes.mcp_config import fake_server, servers_file
from fakes.model_server import FakeModelServer, Script, ToolAgent, ToolCallScript
from fakes.slack import FakeSlack

ALICE = FakeSlack.DEFAULT_USER
GENERAL = FakeSlack.DEFAULT_CHANNEL


@pytest.mark.timeout(180)
async def test_a_click_taken_by_another_process_runs_the_call_once_however_often_it_comes(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    servers = servers_file(tmp_path, fake=fake_server(MCP_NOTES_FILE=notes))
    prefix = f"test:slack-tool-processes:{uuid.uuid4().hex[:12]}:"
    env = {"MCP_SERVERS_FILE": str(servers), "TOOL_CONFIRM_SECONDS": "120"}
    async with FakeModelServer(Script(text="Hello.")) as model:
        model.responder = ToolAgent({"note": [ToolCallScript("add_note", '{"text": "buy milk"}')]})
        harness = await started(SlackHarness(FakeSlack(), model.base_url, prefix, streaming="off", extra_env=env))
        try:
            [asking] = harness.bots
            await asking.wait_log("mcp_server_up", server="fake", timeout=30)
            event, _ = await harness.mention(GENERAL, ALICE, "note: buy milk")
            thread = str(event["ts"])

            def question() -> list[object]:
                return [
                    m
                    for m in harness.replies(GENERAL, thread)
                    if any(b["block_id"] != "votes" for b in m.blocks_of("actions"))
                ]

            await eventually(lambda: bool(question()), 15, "the question with its buttons")
            [asked] = [
                m
                for m in harness.replies(GENERAL, thread)
                if any(b["block_id"] != "votes" for b in m.blocks_of("actions"))
            ]
            other = await harness.start_bot()  # the newest connection: it gets the clicks
            click = harness.fake.block_actions(ALICE, GENERAL, asked.ts, "tool_confirm_yes")
            again = harness.fake.block_actions(ALICE, GENERAL, asked.ts, "tool_confirm_yes")
            for payload in (click, click, again):  # one click delivered twice, and a second click
                await harness.fake.send_block_action(ALICE, GENERAL, asked.ts, "tool_confirm_yes", payload=payload)
            await harness.wait_turn(GENERAL, thread, timeout=30)

            assert notes.read_text().splitlines() == ["buy milk"]  # run once, by the process that asked
            assert asked.text == "✓ `add_note` (fake) runs: approved."
            assert asking.logs("tool_call", tool="add_note") and not other.logs("tool_call")
            await eventually(lambda: bool(harness.fake.ephemerals), 10, "the later click to be answered")
            assert {(e.user, e.text) for e in harness.fake.ephemerals} == {(ALICE, "This was already answered.")}
        except BaseException:
            print(harness.report())
            raise
        finally:
            await finished(harness)
            delete_keys(prefix)
