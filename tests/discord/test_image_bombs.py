"""A small file that decodes to hundreds of megabytes can't take the bot down: images are decoded
in limited worker processes, never in the bot's own. The real bot process against the loopback
fake Discord, with a model that sees images."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from fakes.documents import flat_png
from fakes.harness.discord_world import DiscordWorld, log_shown
from fakes.harness.process_resources import children, memory
from fakes.model_server import Script

VISION_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
MB = 1024 * 1024


async def rss_once_below(pid: int, below: int, within: float) -> int:
    """The process's VmRSS as soon as it is below `below`, else as it is `within` seconds on."""
    deadline = time.monotonic() + within
    while (rss := memory(pid)["VmRSS"]) >= below and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return rss


async def test_three_mentions_of_huge_pngs_at_once_leave_the_bots_memory_as_it_was() -> None:
    bomb = flat_png(7000)
    assert len(bomb) < 200_000
    async with DiscordWorld.open() as world:
        with log_shown(world):
            channel = world.add_channel("general")
            people = [world.add_user(name) for name in ("ann", "ben", "cat")]
            world.answer("bomb", Script(text="Two blue squares.", rate=50))
            bot = await world.start_bot(MODEL_ID=VISION_MODEL, VISION_MODELS=VISION_MODEL)
            await asyncio.sleep(1.0)  # the image workers start beside the bot
            start = memory(bot.pid)["VmRSS"]

            mentions = await asyncio.gather(
                *(
                    world.mention(
                        channel,
                        person,
                        f"bomb {number}: what is in these?",
                        files=[(f"square{n}.png", "image/png", bomb) for n in range(2)],
                    )
                    for number, person in enumerate(people)
                )
            )
            for mention in mentions:
                thread = await world.wait_thread(mention, timeout=60)
                await world.wait_bot_text(thread["id"], lambda text: text.startswith("Two blue squares."), timeout=90)
            after_answers = memory(bot.pid)
            within_five_seconds = await rss_once_below(bot.pid, start + 50 * MB, within=5.0)
            helpers = children(bot.pid)  # the image workers' fork server, and through it the workers

            for request in world.model_requests("bomb"):
                [content] = [m["content"] for m in request.body["messages"] if m["role"] == "user"][-1:]
                assert sum(1 for part in content if part["type"] == "image_url") == 2
            assert after_answers["VmHWM"] - start < 200 * MB, (start // MB, after_answers["VmHWM"] // MB)
            assert within_five_seconds - start < 50 * MB, (start // MB, within_five_seconds // MB)
            assert helpers, "the bot started no process to decode images in"
            await world.stop_bot(check=True)

    deadline = time.monotonic() + 10  # the bot has exited; its helpers follow as they see it gone
    while (left := [pid for pid in helpers if running(pid)]) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not left, "the bot left processes behind"


def running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
