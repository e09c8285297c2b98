"""A forum channel as a help channel, on Discord, through the real bot process and the fake Discord's forums: with
`/respond questions` a new post is the question (its title and first message) and is answered inside the post, no
thread opened; a chatter post is seen and left alone; a follow-up in an answered post continues its conversation;
in a forum left to mentions, a post is answered only when the bot is mentioned in it. No knowledge: `questions`
answers what asks something. One bot for the module."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from fakes.discord import FakeInteraction, FakeUser, Perm
from fakes.harness.discord_world import THREAD_FROM_MESSAGE, DiscordWorld, log_shown
from fakes.model_server import Script

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

ADMIN = Perm.MANAGE_GUILD | Perm.MANAGE_CHANNELS
QUIET_SECONDS = 2.0


@dataclass
class Scene:
    world: DiscordWorld
    help: dict[str, Any]  # a forum answering questions
    ideas: dict[str, Any]  # a forum left to mentions
    admin: FakeUser
    alice: FakeUser
    bob: FakeUser


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scene() -> AsyncIterator[Scene]:
    async with DiscordWorld.open() as world:
        fake = world.fake
        admins = fake.add_role(world.guild, "admins", permissions=ADMIN)
        admin = world.add_user("admin", roles=[admins])
        alice, bob = world.add_user("alice"), world.add_user("bob")
        help_forum = fake.add_forum_channel(world.guild, "help", tags=["Solved", "Needs human", "VPN"])
        ideas = fake.add_forum_channel(world.guild, "ideas")
        await world.start_bot(LOG_LEVEL="debug")
        scene = Scene(world, help_forum, ideas, admin, alice, bob)
        # A forum has no message box: its admin runs /respond in one of its posts, for the whole forum.
        rules, _ = await fake.create_forum_post(help_forum, admin, "How this forum works", "Ask here, one post each.")
        assert "Done" in await respond(scene, rules, admin, "questions")
        yield scene
        if world.bot is not None:
            await world.stop_bot(check=True)


@pytest.fixture
def world(scene: Scene) -> Iterator[DiscordWorld]:
    with log_shown(scene.world) as world:
        yield world


async def respond(scene: Scene, channel: dict[str, Any], user: FakeUser, mode: str) -> str:
    interaction: FakeInteraction = await scene.world.fake.send_slash_command(
        channel["id"], user, "respond", {"mode": mode}
    )
    return await scene.world.fake.wait_for(lambda: str((interaction.response_data or {}).get("content", "")), 10)


def decision_lines(world: DiscordWorld, message: dict[str, Any]) -> list[str]:
    return [line for line in world.stderr.splitlines() if "respond_decision" in line and message["id"] in line]


async def test_a_new_post_is_answered_inside_the_post_from_its_title_and_message(
    scene: Scene, world: DiscordWorld
) -> None:
    world.answer("keeps dropping", Script(text="Turn off sleep for the network card.", rate=50))
    post, starter = await world.fake.create_forum_post(
        scene.help, scene.alice, "VPN keeps dropping", "It happens after my laptop sleeps. How do I fix it?"
    )
    await world.wait_bot_text(post, lambda text: "sleep for the network card" in text, timeout=20)
    [asked] = world.model_requests("keeps dropping")
    question = asked.last_user_content() or ""
    assert "VPN keeps dropping" in question and "after my laptop sleeps" in question
    assert world.fake.requests_for(THREAD_FROM_MESSAGE) == []  # no thread of its own: the post is one
    assert "answer=True" in decision_lines(world, starter)[0]


async def test_a_chatter_post_is_seen_and_left_alone(scene: Scene, world: DiscordWorld) -> None:
    post, starter = await world.fake.create_forum_post(scene.help, scene.bob, "Friday", "great week everyone, thanks")
    await world.fake.wait_for(lambda: decision_lines(world, starter), 10)
    await world.settle(QUIET_SECONDS)
    assert "answer=False" in decision_lines(world, starter)[0]
    assert world.bot_messages(post) == []


async def test_a_follow_up_in_an_answered_post_continues_its_conversation(scene: Scene, world: DiscordWorld) -> None:
    world.answer("Printer jams", Script(text="Open tray 2 and pull the sheet out.", rate=50))
    world.answer("still blinking", Script(text="Then power-cycle it.", rate=50))
    post, _ = await world.fake.create_forum_post(scene.help, scene.alice, "Printer jams", "How do I clear a jam?")
    first = await world.wait_bot_text(post, lambda text: "tray 2" in text, timeout=20)
    follow_up = await world.say(post, scene.alice, "it is still blinking orange")  # not a question: a conversation
    await world.wait_bot_text(post, lambda text: "power-cycle" in text, after=first[-1]["id"], timeout=20)
    [asked] = world.model_requests("still blinking")
    history = [str(m.get("content")) for m in asked.body["messages"]]
    assert any("tray 2" in said for said in history)  # the earlier answer is its history
    assert int(follow_up["channel_id"]) == int(post["id"])


async def test_people_talking_to_each_other_in_an_answered_post_are_left_alone(
    scene: Scene, world: DiscordWorld
) -> None:
    world.answer("Badge reader", Script(text="Hold the badge flat on the reader.", rate=50))
    post, _ = await world.fake.create_forum_post(scene.help, scene.alice, "Badge reader", "How do I badge in?")
    await world.wait_bot_text(post, lambda text: "flat on the reader" in text, timeout=20)
    aside = await world.say(post, scene.bob, f"{scene.alice.mention} mine works if you hold it longer")
    later = await world.say(post, scene.alice, "how long should I hold it?")
    await world.wait_bot_text(post, lambda text: len(text.strip()) > 0, after=later["id"], timeout=20)
    assert int(world.bot_messages(post, after=aside["id"])[0]["id"]) > int(later["id"])  # the aside got nothing


async def test_in_a_forum_left_to_mentions_a_post_is_answered_when_mentioned(scene: Scene, world: DiscordWorld) -> None:
    world.answer("dark mode", Script(text="Dark mode is on the roadmap.", rate=50))
    post, starter = await world.fake.create_forum_post(scene.ideas, scene.alice, "Dark mode", "Could we get dark mode?")
    mention = await world.mention(post, scene.alice, "is dark mode planned?")
    answer = await world.wait_bot_text(post, lambda text: "roadmap" in text, timeout=20)
    assert all(int(m["id"]) > int(mention["id"]) for m in answer)  # the post itself was passed over
    assert decision_lines(world, starter) == []
