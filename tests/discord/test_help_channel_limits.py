"""Channels that answer every message (`respond: all` in CHANNELS_FILE), under Discord's real limits, through the real
bot process and the fake Discord: fifty messages at once are each answered once with no 429; a flood from one person
is answered at USER_TURNS_PER_MINUTE with one private notice; a burst bigger than a channel's thread limit gets no
late answers past RESPOND_MAX_DELAY_SECONDS, and each message left unanswered is counted."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from fakes.harness.discord_world import DiscordWorld

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

CHANNELS = 10
PER_CHANNEL = 5  # Discord opens 5 threads per channel every 5 s: a burst of 50 fits in 10 channels at once
QUOTA = 4
MAX_DELAY = 2.0


@dataclass
class Scene:
    world: DiscordWorld
    channels: list[dict[str, Any]]  # each answers every message
    flood: dict[str, Any]
    burst: dict[str, Any]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scene(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scene]:
    async with DiscordWorld.open() as world:
        channels = [world.add_channel(f"all-{n}") for n in range(CHANNELS)]
        flood, burst = world.add_channel("flood"), world.add_channel("burst")
        settings = {"channels": {str(c["id"]): {"respond": "all"} for c in [*channels, flood, burst]}}
        path = Path(tmp_path_factory.mktemp("help-limits")) / "channels.yml"
        path.write_text(yaml.safe_dump(settings), encoding="utf-8")
        await world.start_bot(
            CHANNELS_FILE=str(path),
            USER_TURNS_PER_MINUTE=str(QUOTA),
            RESPOND_MAX_DELAY_SECONDS=str(MAX_DELAY),
            LOG_LEVEL="debug",  # each message's decision (respond_decision): the bot saw what it left unanswered
        )
        await world.settle(1.5)  # start-up's own requests leave Discord's global second before the bursts
        yield Scene(world, channels, flood, burst)
        if world.bot is not None:
            await world.stop_bot(check=True)


def decided(world: DiscordWorld, message: dict[str, Any]) -> bool:
    """Whether the bot logged its decision on `message`."""
    return any(
        "respond_decision" in line and f"message={message['id']}" in line.split() for line in world.stderr.splitlines()
    )


def threads_for(world: DiscordWorld, messages: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    return [world.fake.thread_for_message(message["id"]) for message in messages]


async def test_fifty_messages_at_once_are_each_answered_once_with_no_429(scene: Scene) -> None:
    world, channels = scene.world, scene.channels
    people = [world.add_user(f"person-{n}") for n in range(CHANNELS * PER_CHANNEL)]
    sends = [
        world.say(channels[n % CHANNELS], person, f"Burst message number {n}: how does this work?")
        for n, person in enumerate(people)
    ]
    said = await asyncio.gather(*sends)
    for message in said:
        thread = await world.wait_thread(message, timeout=30)
        await world.wait_bot_text(thread, lambda text: bool(text.strip()), timeout=30)
    await world.settle(1.0)
    assert world.fake.ratelimited_count == 0
    for n in range(len(said)):
        assert len(world.model_requests(f"Burst message number {n}:")) == 1


async def test_a_flood_from_one_person_is_answered_at_the_quota_with_one_notice(scene: Scene) -> None:
    world, flood = scene.world, scene.flood
    flooder = world.add_user("flooder")
    said = [await world.say(flood, flooder, f"Flood {n}, anyone there?") for n in range(QUOTA + 6)]
    # Every message of the flood was decided on (to be answered: the quota comes after), so those left unanswered
    # were seen and refused, not lost with a bot that stopped.
    await world.fake.wait_for(lambda: all(decided(world, message) for message in said), 15)
    await world.settle(3.0)
    answered = [thread for thread in threads_for(world, said) if thread is not None]
    assert len(answered) == QUOTA
    notices = world.bot_messages(world.fake.dm_channel_for(flooder))
    [notice] = [notice["content"] for notice in notices]
    assert notice.startswith(f"⚠️ You're sending messages faster than I can answer ({QUOTA} a minute).")
    assert world.fake.ratelimited_count == 0


async def test_a_burst_past_a_channels_thread_limit_gets_no_late_answers(scene: Scene) -> None:
    world, burst = scene.world, scene.burst
    people = [world.add_user(f"burster-{n}") for n in range(12)]
    said = await asyncio.gather(*(world.say(burst, p, f"Late test {n}: what now?") for n, p in enumerate(people)))
    await world.settle(MAX_DELAY + 6.0)
    opened = [thread for thread in threads_for(world, list(said)) if thread is not None]
    assert PER_CHANNEL <= len(opened) < len(said)  # the first five at once; none after the cut-off
    late = re.findall(r"unasked_message_too_late", world.stderr)
    assert len(late) == len(said) - len(opened)
    assert world.fake.ratelimited_count == 0
