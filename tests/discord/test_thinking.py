"""A thinking model on Discord, end to end (the real bot process against the fake Discord): "Thinking… N s" while it
thinks, then the answer under a small "Thought for N s · thinking.md" line, the thought attached as thinking.md."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from fakes.harness.discord_world import INDICATOR, DiscordWorld, log_shown
from fakes.model_server import Script

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(60)]

THOUGHT = "Zebracorns? Let me think.\n" + " ".join(f"idea{i}" for i in range(60))
ANSWER = "Zebracorns are imaginary."


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world() -> AsyncIterator[tuple[DiscordWorld, dict[str, Any], Any]]:
    async with DiscordWorld.open() as world:
        channel, alice = world.add_channel("thinking"), world.add_user("alice")
        await world.start_bot()
        yield world, channel, alice
        if world.bot is not None:
            await world.stop_bot(check=True)


async def test_the_thought_is_a_file_on_the_answer_and_never_shown_or_sent_back(
    world: tuple[DiscordWorld, dict[str, Any], Any],
) -> None:
    shared, channel, alice = world
    with log_shown(shared):
        await _a_thinking_reply(shared, channel, alice)


async def _a_thinking_reply(world: DiscordWorld, channel: dict[str, Any], alice: Any) -> None:
    world.answer("t-think", Script(text=ANSWER, thought=THOUGHT, thought_style="think_tags", rate=40))
    world.answer("t-again", Script(text="Still imaginary."))
    message = await world.mention(channel, alice, "t-think What is a zebracorn?")
    thread = await world.wait_thread(message)
    [reply] = await world.wait_bot_text(thread["id"], lambda text: text.endswith(ANSWER), timeout=15)

    assert reply["content"].startswith("-# 💭 Thought for ")
    assert reply["content"].endswith(" s · thinking.md\n" + ANSWER)
    [attachment] = reply["attachments"]
    assert attachment["filename"] == "thinking.md"
    async with aiohttp.ClientSession() as http, http.get(attachment["url"]) as response:
        assert await response.text() == THOUGHT + "\n"
    shown = [text for _, text in world.fake.edit_history(reply["id"])]
    assert shown[0].startswith("-# 💭 Thinking… 0 s") and shown[0].endswith(INDICATOR)
    assert not any("idea" in text or "<think" in text for text in shown)  # the raw thought never shows

    await world.say(thread["id"], alice, "t-again Really?")
    await world.wait_bot_text(thread["id"], lambda text: text.endswith("Still imaginary."))
    [request] = world.model_requests("t-again")
    assistant = [m["content"] for m in request.body["messages"] if m["role"] == "assistant"]
    assert assistant == [ANSWER]  # no thought goes back to the model
