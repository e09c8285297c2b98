"""Tools on Discord, through the real bot process and the fake Discord: the calls' lines in the reply, the sources
as <links>, Run / Cancel buttons that only the asker's click answers (once, however often it is clicked), and
/tools. The tools are the MCP server of fakes/mcp_tools.py, started by the bot over stdio."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fakes.discord import FakeUser
from fakes.harness.discord_world import DiscordWorld
from fakes.mcp_config import fake_server, servers_file
from fakes.mcp_failures import FAILING, FAILING_TIMEOUT, FAILURES
from fakes.mcp_refusing import SECRET, refusing_server
from fakes.model_server import Script, ToolAgent, ToolCallScript

CALLS = {
    "weather": [ToolCallScript("lookup", '{"query": "weather"}')],
    "slowly": [ToolCallScript("slow", '{"ms": 1500}')],
    "note": [ToolCallScript("add_note", '{"text": "buy milk"}')],
    "cancelme": [ToolCallScript("add_note", '{"text": "never"}')],
    "nested": [ToolCallScript("lookup", "[" * 1000 + "]" * 1000)],  # json.loads raises RecursionError
    "every way": list(FAILING),
}


@dataclass
class Scene:
    discord: DiscordWorld
    notes: Path
    channel: dict[str, Any]
    alice: FakeUser
    bob: FakeUser


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    notes = tmp_path / "notes.txt"
    config = servers_file(tmp_path, fake={**fake_server(MCP_NOTES_FILE=notes), "timeout_seconds": FAILING_TIMEOUT})
    async with DiscordWorld.open() as world:
        agent = ToolAgent(CALLS, base=Script(rate=100))
        respond = world.model.responder
        assert respond is not None
        world.model.responder = lambda body: agent(body) or respond(body)
        channel, alice, bob = world.add_channel("general"), world.add_user("alice"), world.add_user("bob")
        await world.start_bot(MCP_SERVERS_FILE=str(config), TOOL_CONFIRM_SECONDS="20")
        yield Scene(world, notes, channel, alice, bob)


async def test_a_call_shows_live_then_as_a_small_line_and_its_sources_as_links(
    scene: Scene,
) -> None:
    discord, channel, alice = scene.discord, scene.channel, scene.alice
    thread = await discord.wait_thread(await discord.mention(channel, alice, "slowly please"))
    await discord.wait_bot_text(thread, lambda text: "-# ✓ `slow`" in text, timeout=20)
    shown = [r.json.get("content", "") for r in discord.fake.requests if isinstance(r.json, dict)]
    assert any("-# 🔧 `slow` …" in text for text in shown)  # while it ran

    message = await discord.mention(channel, alice, "weather please")
    thread = await discord.wait_thread(message)
    [reply] = await discord.wait_bot_text(thread, lambda text: "Sources:" in text, timeout=20)
    text = reply["content"]
    assert "-# ✓ `lookup`, " in text
    assert "-# 1. <https://example.org/weather>" in text and "-# 2. <https://docs.example.org/weather>" in text
    assert "Using Result for weather" in text


async def test_only_the_askers_click_runs_the_tool_and_only_once(scene: Scene) -> None:
    discord, notes, channel, alice, bob = scene.discord, scene.notes, scene.channel, scene.alice, scene.bob
    thread = await discord.wait_thread(await discord.mention(channel, alice, "note this"))
    [question] = await discord.fake.wait_for(lambda: discord.fake.messages_with_buttons(thread["id"]), 20)
    assert "may I run `add_note` (fake)" in question["content"] and "buy milk" in question["content"]
    run, cancel = (button["custom_id"] for button in discord.fake.buttons_of(question["id"]))
    assert (run.startswith("tool:yes:"), cancel.startswith("tool:no:")) == (True, True)

    intruder = await discord.fake.click_button(question["id"], run, bob)
    await discord.fake.wait_for(lambda: intruder.callback_type is not None, 5)
    assert intruder.ephemeral and "Only the person who asked" in _content(intruder.response_data)
    assert not notes.exists()

    # A doubled click: Discord delivers both, and the bot may handle either first.
    clicks = [await discord.fake.click_button(question["id"], run, alice) for _ in range(2)]
    await discord.wait_bot_text(thread, lambda text: "✓ `add_note`" in text and "Using noted #1" in text, timeout=20)
    await discord.fake.wait_for(lambda: all(click.callback_type is not None for click in clicks), 5)
    # One is acknowledged (the question itself shows the outcome), the other told it was already answered.
    assert sorted(click.callback_type for click in clicks) == [4, 6]
    [doubled] = [click for click in clicks if click.callback_type == 4]
    assert doubled.ephemeral and "already answered" in _content(doubled.response_data)
    assert notes.read_text().splitlines() == ["buy milk"]
    await discord.fake.wait_for(lambda: not discord.fake.buttons_of(question["id"]) or None, 5)  # its buttons gone
    after = next(m for m in discord.fake.messages_in(thread["id"]) if m["id"] == question["id"])
    assert after["content"].startswith("✓ `add_note` (fake) runs: approved")


async def test_cancel_means_the_tool_does_not_run_and_the_answer_goes_on(scene: Scene) -> None:
    discord, notes, channel, alice = scene.discord, scene.notes, scene.channel, scene.alice
    thread = await discord.wait_thread(await discord.mention(channel, alice, "cancelme"))
    [question] = await discord.fake.wait_for(lambda: discord.fake.messages_with_buttons(thread["id"]), 20)
    cancel = discord.fake.buttons_of(question["id"])[1]["custom_id"]
    await discord.fake.click_button(question["id"], cancel, alice)
    await discord.wait_bot_text(thread, lambda text: "✗ `add_note`: declined" in text and "Using" in text, timeout=20)
    assert not notes.exists()


async def test_tools_lists_each_tool_and_which_ask_first(scene: Scene) -> None:
    discord, channel, alice = scene.discord, scene.channel, scene.alice
    interaction = await discord.fake.send_slash_command(channel["id"], alice, "tools")
    await discord.fake.wait_for(lambda: interaction.callback_type is not None, 10)
    listing = _content(interaction.response_data)
    assert interaction.ephemeral
    assert "• `lookup`: " in listing and "• `add_note` (asks you first): " in listing


async def test_a_channel_manager_turns_tools_off_in_a_channel_and_on_again(scene: Scene) -> None:
    discord, channel, alice, bob = scene.discord, scene.channel, scene.alice, scene.bob
    managers = discord.fake.add_role(discord.guild, "managers", permissions=1 << 4)  # Manage Channels
    carol = discord.add_user("carol", roles=[managers])

    async def tools(user: FakeUser, **options: str) -> str:
        interaction = await discord.fake.send_slash_command(channel["id"], user, "tools", options)
        await discord.fake.wait_for(lambda: interaction.callback_type is not None, 10)
        assert interaction.ephemeral
        return _content(interaction.response_data)

    assert (await tools(bob, offer="off")).startswith("Only members with Manage Channels")
    assert await tools(carol, offer="off") == "Done: tools are turned off in this channel, from the next message on."
    assert (await tools(alice)).startswith("Tools are turned off here.\n")
    thread = await discord.wait_thread(await discord.mention(channel, alice, "weather please, t-off"))
    await discord.wait_bot_text(thread, bool, timeout=20)
    [request] = discord.model_requests("t-off")
    assert not request.body.get("tools")  # the model isn't offered any

    await tools(carol, offer="default")
    thread = await discord.wait_thread(await discord.mention(channel, alice, "weather please, t-on"))
    await discord.wait_bot_text(thread, lambda text: "Sources:" in text, timeout=20)


async def test_a_call_whose_arguments_are_nested_too_deep_fails_and_the_conversation_goes_on(scene: Scene) -> None:
    discord, channel, alice = scene.discord, scene.channel, scene.alice
    thread = await discord.wait_thread(await discord.mention(channel, alice, "nested please"))
    failed = "-# ✗ `lookup`: the arguments are nested too deeply (more than 64 levels)"
    await discord.wait_bot_text(thread, lambda text: failed in text and "Using Error:" in text, timeout=20)
    followup = await discord.say(thread["id"], alice, "and what now?")  # not held: answered at once
    [answer] = await discord.wait_bot_text(thread, bool, after=followup["id"], timeout=20)
    assert answer["content"] and "✗" not in answer["content"]


async def test_calls_that_fail_every_way_each_show_why_and_the_answer_and_the_next_go_on(scene: Scene) -> None:
    discord, channel, alice = scene.discord, scene.channel, scene.alice
    thread = await discord.wait_thread(await discord.mention(channel, alice, "fail every way please"))
    replies = await discord.wait_bot_text(thread, lambda text: "Using Error:" in text, timeout=30)
    lines = [line for reply in replies for line in reply["content"].splitlines() if line.startswith("-# ✗")]
    assert len(lines) == len(FAILING)
    for call, why in FAILURES.items():
        assert any(line.startswith(f"-# ✗ `{call.name}`: {why}") for line in lines), (call, lines)
    followup = await discord.say(thread["id"], alice, "and what now?")
    [answer] = await discord.wait_bot_text(thread, bool, after=followup["id"], timeout=20)
    assert answer["content"] and "✗" not in answer["content"]


async def test_tools_says_which_models_use_them_and_shows_a_refusing_server_without_its_key(tmp_path: Path) -> None:
    async with refusing_server() as hosted, DiscordWorld.open() as world:
        config = servers_file(tmp_path, fake=fake_server(), hosted={"url": hosted})
        channel, alice = world.add_channel("general"), world.add_user("alice")
        await world.start_bot(MCP_SERVERS_FILE=str(config), MODELS="small-model", TOOL_MODELS="small-model")

        async def tools(where: dict[str, Any]) -> str:
            interaction = await world.fake.send_slash_command(where["id"], alice, "tools")
            await world.fake.wait_for(lambda: interaction.callback_type is not None, 10)
            return _content(interaction.response_data)

        listing = await tools(channel)
        assert (
            "**Mistral-7B-Instruct-v0.3** answers new conversations here and doesn't use tools: it answers from what "
            "it knows. The models here that do: **small-model**. Switch with /model small-model.\n"
            "The tools connected:\n"
        ) in listing
        host = hosted.split("/api/", 1)[0]
        assert f"⚠️ `hosted` is down: {host}: the server answered 401 Unauthorized. I keep" in listing

        thread = await world.wait_thread(await world.mention(channel, alice, "hello there"))
        await world.wait_bot_text(thread, bool, timeout=20)
        switch = await world.fake.send_slash_command(thread["id"], alice, "model", {"name": "small-model"})
        await world.fake.wait_for(lambda: switch.callback_type is not None, 10)
        in_thread = await tools(thread)
        assert "**small-model** answers this conversation and uses these tools:\n• `lookup`" in in_thread
        assert SECRET not in listing + in_thread and "/api/mcp" not in listing + in_thread
        assert SECRET not in world.stderr  # nor in the log


def _content(data: dict[str, Any] | None) -> str:
    return str((data or {}).get("content", ""))


async def test_a_reply_cut_by_a_crash_mid_call_says_so_and_the_tool_never_runs_again(tmp_path: Path) -> None:
    notes, events = tmp_path / "notes.txt", tmp_path / "events.txt"
    config = servers_file(tmp_path, fake=fake_server(MCP_NOTES_FILE=notes, MCP_EVENTS_FILE=events))
    settings = {"MCP_SERVERS_FILE": str(config), "REPLY_LEASE_SECONDS": "2", "REPLY_SWEEP_SECONDS": "0.5"}
    async with DiscordWorld.open() as world:
        agent = ToolAgent({"slow note": [ToolCallScript("add_note_slowly", '{"text": "once", "ms": 4000}')]})
        respond = world.model.responder
        assert respond is not None
        world.model.responder = lambda body: agent(body) or respond(body)
        channel, alice = world.add_channel("general"), world.add_user("alice")
        crashed = await world.start_bot(**settings)
        thread = await world.wait_thread(await world.mention(channel, alice, "slow note please"))
        [question] = await world.fake.wait_for(lambda: world.fake.messages_with_buttons(thread["id"]), 20)
        await world.fake.click_button(question["id"], world.fake.buttons_of(question["id"])[0]["custom_id"], alice)
        await world.fake.wait_for(lambda: events.exists() and "started" in events.read_text(), 10)
        await asyncio.sleep(0.3)
        crashed.process.kill()  # mid-call
        await crashed.process.wait()
        try:
            await world.start_bot(**settings)
            ended = await world.wait_bot_text(
                thread, lambda text: "interrupted while `add_note_slowly` ran" in text, timeout=20
            )
            assert any("may or may not have completed" in message["content"] for message in ended)
            await world.settle(5)  # the tool would have finished by now, had it been run again
            assert events.read_text().splitlines() == ["started"]  # started once, never again
            assert not notes.exists() or len(notes.read_text().splitlines()) <= 1
        finally:
            crashed.cleanup()
