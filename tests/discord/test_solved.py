"""A help thread marked solved, on Discord, through the real bot process, the fake Discord and the real knowledge:
**Solved** under the bot's answer in a help channel (not elsewhere), for the asker and the helpers only, a second
click unmarking; **Mark as answer** on a helper's message; `/solved` and `/solved undo:True`; a ✅ by the asker (a
stranger's does nothing); a forum post's Solved tag, set by the bot on marking and by a person by hand. A solved
thread answers the next person who asks the same in other words, cited by the thread's link; its answer edited is
read again, deleted or 👎'd it leaves. One bot for the module."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from adapters.shared.feedback.records import Feedback
from fakes.citing_model import citing_responder, passages_in
from fakes.discord import FakeInteraction, FakeUser, Perm
from fakes.harness.discord_world import DiscordWorld, log_shown
from fakes.harness.processes import REDIS_URL
from fakes.harness.server_folders import server_folder

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(180)]

ADMIN = Perm.MANAGE_GUILD | Perm.MANAGE_CHANNELS
HANDBOOK = "# Office handbook\n\nTo reach the VPN from home, install WireGuard and import the IT profile.\n"
VPN = "How do I connect to the VPN from home?"
BADGE_FIX = "Hold the red reset button under the badge reader for ten seconds, then badge again."


@dataclass
class Scene:
    world: DiscordWorld
    channels: dict[str, dict[str, Any]]
    admin: FakeUser
    alice: FakeUser
    bob: FakeUser
    helen: FakeUser  # a helper


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    folder = server_folder("solved-discord-")
    (folder / "docs").mkdir()
    (folder / "docs" / "handbook.md").write_text(HANDBOOK, encoding="utf-8")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scene(folder: Path) -> AsyncIterator[Scene]:
    async with DiscordWorld.open() as world:
        admins = world.fake.add_role(world.guild, "admins", permissions=ADMIN)
        support = world.fake.add_role(world.guild, "support")
        admin = world.add_user("admin", roles=[admins])
        alice, bob = world.add_user("alice"), world.add_user("bob")
        helen = world.add_user("helen", roles=[support])
        channels = {name: world.add_channel(name) for name in ("desk", "plain", "lobby")}
        channels["forum"] = world.fake.add_forum_channel(world.guild, "ask-here")
        world.model.responder = citing_responder
        await world.start_bot(
            KNOWLEDGE_DIR=str(folder / "docs"), KNOWLEDGE_DATA_DIR=str(folder / "data"), LOG_LEVEL="debug"
        )
        scene = Scene(world, channels, admin, alice, bob, helen)
        assert "Done" in await command(scene, channels["desk"], admin, "respond", {"mode": "questions"})
        assert "Done" in await command(scene, channels["desk"], admin, "respond", {"mode": "helpers", "role": support})
        await knowledge_ready(scene)
        yield scene
        if world.bot is not None:
            await world.stop_bot(check=True)


@pytest.fixture
def world(scene: Scene) -> Iterator[DiscordWorld]:
    with log_shown(scene.world) as world:
        yield world


async def command(
    scene: Scene, channel: dict[str, Any], user: FakeUser, name: str, options: dict[str, Any] | None = None
) -> str:
    return await answered(scene, await scene.world.fake.send_slash_command(channel["id"], user, name, options))


async def answered(scene: Scene, interaction: FakeInteraction) -> str:
    return await scene.world.private_answer(interaction)


async def knowledge_ready(scene: Scene) -> None:
    await scene.world.until_cited(scene.channels["lobby"], scene.alice, VPN, "Office handbook")


async def answer_in(world: DiscordWorld, thread: dict[str, Any], after: str | None = None) -> dict[str, Any]:
    """The bot's finished answer in `thread` (its last message with buttons)."""

    def finished() -> dict[str, Any] | None:
        done = [m for m in world.bot_messages(thread, after=after) if m.get("components")]
        return done[-1] if done else None

    return await world.fake.wait_for(finished, 20)


def buttons(message: dict[str, Any]) -> list[str]:
    return [item["custom_id"] for row in message.get("components", []) for item in row.get("components", [])]


async def prompt_for(world: DiscordWorld, channel: dict[str, Any], user: FakeUser, question: str) -> list[str]:
    """Asks `question` in a new thread of `channel`; the knowledge passages its prompt carried."""
    said = await world.mention(channel, user, question)
    await world.wait_bot_text(await world.wait_thread(said), lambda text: bool(text.strip()), timeout=20)
    [request] = await world.wait_model_request(question)
    return list(passages_in(request.body).values())


def solved_passages(passages: list[str]) -> list[str]:
    return [passage for passage in passages if "Accepted answer" in passage]


def checked(world: DiscordWorld, message: dict[str, Any]) -> bool:
    """Whether the bot's ✅ is on `message` (the route's emoji as discord.py sends it, percent-encoded or not)."""
    return any(emoji in ("✅", "%E2%9C%85") for emoji in world.fake.bot_reactions(message["id"]))


# -- the tests ------------------------------------------------------------------------------------


async def test_solved_is_offered_in_help_channels_and_toggled_by_the_asker(scene: Scene, world: DiscordWorld) -> None:
    plain = await world.mention(scene.channels["plain"], scene.alice, f"{VPN} (in plain)")
    plain_answer = await answer_in(world, await world.wait_thread(plain))
    assert buttons(plain_answer) == [f"vote:up:{plain['id']}", f"vote:down:{plain['id']}"]

    said = await world.say(scene.channels["desk"], scene.alice, f"{VPN} (desk)")
    thread = await world.wait_thread(said, timeout=15)
    answer = await answer_in(world, thread)
    solved = f"solved:{said['id']}"
    assert solved in buttons(answer) and f"vote:help:{said['id']}" in buttons(answer)

    refused = await world.fake.click_button(answer["id"], solved, scene.bob)
    assert "Only the person who asked" in await answered(scene, refused)
    assert not checked(world, answer)

    marked = await world.fake.click_button(answer["id"], solved, scene.alice)
    assert (await answered(scene, marked)).startswith("Marked solved, with the bot's answer")
    await world.fake.wait_for(lambda: checked(world, answer), 10)
    taught = solved_passages(await prompt_for(world, scene.channels["lobby"], scene.bob, "vpn at home, how?"))
    assert taught and "(desk)" in taught[0] and "Accepted answer (the bot)" in taught[0]

    unmarked = await world.fake.click_button(answer["id"], solved, scene.alice)
    assert (await answered(scene, unmarked)).startswith("Unmarked")
    await world.fake.wait_for(lambda: not checked(world, answer), 10)
    assert solved_passages(await prompt_for(world, scene.channels["lobby"], scene.bob, "home vpn: how?")) == []


async def test_a_helpers_message_marked_as_answer_answers_the_next_asker(scene: Scene, world: DiscordWorld) -> None:
    fake = world.fake
    said = await world.mention(scene.channels["desk"], scene.alice, "The badge reader on floor 2 is frozen, help?")
    thread = await world.wait_thread(said, timeout=15)
    await answer_in(world, thread)
    fix = await world.say(thread, scene.helen, BADGE_FIX)

    stranger = await fake.send_message_command(thread["id"], scene.bob, "Mark as answer", fix["id"])
    assert "Only the person who asked" in await answered(scene, stranger)
    marked = await fake.send_message_command(thread["id"], scene.alice, "Mark as answer", fix["id"])
    assert (await answered(scene, marked)).startswith("Marked solved, with helen's answer")

    asked = await world.mention(scene.channels["lobby"], scene.bob, "my badge reader froze, how do I reset it?")
    reply = await world.wait_bot_text(
        await world.wait_thread(asked), lambda text: "red reset button" in text, timeout=20
    )
    link = f"https://discord.com/channels/{world.guild.id}/{thread['id']}"
    assert link in "\n".join(m["content"] for m in reply)  # cited by the thread's link

    await fake.edit_user_message(fix["id"], "Unplug the badge reader for a minute, then badge again.")
    await fake.wait_for(lambda: "discord_solved_answer_edited" in world.stderr, 15)
    edited = solved_passages(await prompt_for(world, scene.channels["lobby"], scene.bob, "badge reader frozen?"))
    assert edited and "Unplug the badge reader" in edited[0] and "red reset button" not in edited[0]

    await fake.delete_user_message(fix["id"])
    await fake.wait_for(lambda: "discord_solved_answer_gone" in world.stderr, 15)
    assert solved_passages(await prompt_for(world, scene.channels["lobby"], scene.bob, "badge reader stuck?")) == []


async def test_solved_command_and_a_checkmark_by_the_asker(scene: Scene, world: DiscordWorld) -> None:
    said = await world.say(scene.channels["desk"], scene.alice, f"{VPN} (by command)")
    thread = await world.wait_thread(said, timeout=15)
    answer = await answer_in(world, thread)

    assert "Only the person who asked" in await command(scene, thread, scene.bob, "solved")
    assert (await command(scene, thread, scene.alice, "solved")).startswith("Marked solved, with the bot's answer")
    await world.fake.wait_for(lambda: checked(world, answer), 10)
    assert (await command(scene, thread, scene.helen, "solved", {"undo": True})).startswith("Unmarked")
    await world.fake.wait_for(lambda: not checked(world, answer), 10)
    assert "Threads are marked solved" in await command(scene, scene.channels["plain"], scene.alice, "solved")

    await world.fake.user_reacts(answer["id"], scene.bob, "✅")  # a stranger's: seen, and nothing marked
    await world.fake.wait_for(lambda: "discord_solved_reaction" in world.stderr, 10)
    assert "Only the person who asked" in world.stderr.split("discord_solved_reaction")[-1].splitlines()[0]
    await world.settle(1.0)
    assert not checked(world, answer)
    await world.fake.user_reacts(answer["id"], scene.alice, "✅")
    await world.fake.wait_for(lambda: checked(world, answer), 10)

    down = await world.fake.click_button(answer["id"], f"vote:down:{said['id']}", scene.bob)
    await world.fake.wait_for(lambda: down.modal, 10)
    await world.fake.wait_for(lambda: not checked(world, answer), 10)  # a 👎 on the accepted answer unmarks it
    assert (await command(scene, thread, scene.alice, "solved", {"undo": True})).startswith("This thread isn't")


async def test_a_forum_post_wears_the_solved_tag_and_a_tag_set_by_hand_marks_it(
    scene: Scene, world: DiscordWorld
) -> None:
    fake, forum = world.fake, scene.channels["forum"]
    await fake.set_overwrite(forum, fake.bot_user, allow=Perm.MANAGE_CHANNELS | Perm.MANAGE_THREADS)
    rules, _ = await fake.create_forum_post(forum, scene.admin, "How this forum works", "One question a post.")
    assert "Done" in await command(scene, rules, scene.admin, "respond", {"mode": "questions"})
    post, starter = await fake.create_forum_post(forum, scene.alice, "vpn from home??", VPN)
    answer = await answer_in(world, post)

    marked = await fake.click_button(answer["id"], f"solved:{starter['id']}", scene.alice)
    assert (await answered(scene, marked)).startswith("Marked solved")
    stored = fake.channels[int(post["id"])]
    await fake.wait_for(lambda: stored.get("applied_tags") == [str(fake.tag_id(forum, "Solved"))], 10)
    assert stored["name"] == "vpn from home??"  # the title as it was written
    unmarked = await fake.click_button(answer["id"], f"solved:{starter['id']}", scene.alice)
    assert (await answered(scene, unmarked)).startswith("Unmarked")
    await fake.wait_for(lambda: stored.get("applied_tags") == [], 10)

    other, _ = await fake.create_forum_post(forum, scene.bob, "printer?", f"{VPN} (on a train)")
    other_answer = await answer_in(world, other)
    await fake.set_post_tags(other, [fake.tag_id(forum, "Solved")])  # a moderator, by hand
    await fake.wait_for(lambda: checked(world, other_answer), 15)
    assert (await command(scene, other, scene.bob, "solved", {"undo": True})).startswith("Unmarked")
    await fake.wait_for(lambda: fake.channels[int(other["id"])].get("applied_tags") == [], 10)


async def kept_for_votes(world: DiscordWorld, question: dict[str, Any]) -> None:
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        feedback = Feedback(client, world.key_prefix, answer_seconds=60)
        await world.fake.wait_for(lambda: feedback.answer(f"discord:{question['id']}"), 10)
    finally:
        await client.aclose()


async def test_the_gaps_report_shows_what_the_help_desk_deflected(scene: Scene, world: DiscordWorld) -> None:
    fake = world.fake
    said = await world.say(scene.channels["desk"], scene.alice, f"{VPN} (counted)")
    answer = await answer_in(world, await world.wait_thread(said, timeout=15))
    marked = await fake.click_button(answer["id"], f"solved:{said['id']}", scene.alice)
    assert (await answered(scene, marked)).startswith("Marked solved")
    other = await world.say(scene.channels["desk"], scene.bob, f"{VPN} (handed off)")
    other_answer = await answer_in(world, await world.wait_thread(other, timeout=15))
    await kept_for_votes(world, other)  # as a person's click comes: after the answer is kept for its buttons
    called = await fake.click_button(other_answer["id"], f"vote:help:{other['id']}", scene.bob)
    assert (await answered(scene, called)).startswith("Done: the channel's helpers were called")

    report = await command(scene, scene.channels["lobby"], scene.admin, "knowledge", {"gaps": {}})
    week = re.search(
        r"Last 7 days: (\d+) questions?; the bot answered (\d+), (\d+) solved with its answer, (\d+) solved by a "
        r"person, (\d+) handed to people",
        report,
    )
    assert report.startswith("**Help desk**") and week is not None, report
    asked, answered_, solved, _, handed = (int(number) for number in week.groups())
    assert asked >= 2 and answered_ >= 2 and solved >= 1 and handed >= 1
    assert "Median time to the bot's answer" in report and "and to solved" in report
    assert "handed to people" in report.split("**Knowledge gaps**")[1]  # the handed-off question is listed too
    assert "(handed off)" in report.split("**Knowledge gaps**")[1]


async def test_forget_me_unmarks_the_threads_a_person_answered(scene: Scene, world: DiscordWorld) -> None:
    fake = world.fake
    said = await world.mention(scene.channels["desk"], scene.alice, "The coffee machine shows E7, help?")
    thread = await world.wait_thread(said)
    await answer_in(world, thread)
    fix = await world.say(thread, scene.helen, "E7 means descale: run the descaling program with the blue tablet.")
    marked = await fake.send_message_command(thread["id"], scene.alice, "Mark as answer", fix["id"])
    assert (await answered(scene, marked)).startswith("Marked solved, with helen's answer")
    taught = solved_passages(await prompt_for(world, scene.channels["lobby"], scene.bob, "coffee machine E7?"))
    assert any("descaling program" in passage for passage in taught)

    forgot = await command(scene, scene.channels["lobby"], scene.helen, "forget-me")
    assert "unmarked: 1 solved thread you asked or answered" in forgot.lower()
    assert (
        solved_passages(await prompt_for(world, scene.channels["lobby"], scene.bob, "coffee machine E7 again?")) == []
    )
