"""A help channel the bot runs by itself, on Discord, through the real bot process, the fake Discord and the real
knowledge (KNOWLEDGE_DIR on the embedded engine, the embedded embeddings): `/respond all` answers every top-level
message without a mention; `/respond questions` answers the questions the knowledge covers and stays silent on
"thanks!", on questions for someone else and on what it can't answer; its threads stay quiet while people there talk
to each other; other bots are ignored; two processes answer a message once. One bot for the module."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from adapters.shared.feedback.records import Feedback
from fakes.citing_model import citing_responder
from fakes.discord import FakeInteraction, FakeUser, Perm
from fakes.harness.discord_world import THREAD_FROM_MESSAGE, BotProcess, DiscordWorld, log_shown
from fakes.harness.processes import REDIS_URL
from fakes.harness.server_folders import server_folder

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

ADMIN = Perm.MANAGE_GUILD | Perm.MANAGE_CHANNELS
HANDBOOK = (
    "# Office handbook\n\n"
    "To reach the VPN from home, install WireGuard and import the IT profile from the intranet.\n\n"
    "The printer on floor 3 takes badge codes: hold your badge to the reader and pick your job.\n"
)
COVERED = "How do I connect to the VPN from home?"
QUIET_SECONDS = 2.0  # what "no answer" waits for: a decision and a thread take well under a second here


@dataclass
class Scene:
    world: DiscordWorld
    channels: dict[str, dict[str, Any]]
    admin: FakeUser
    alice: FakeUser
    bob: FakeUser
    other_bot: FakeUser


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    folder = server_folder("help-channels-discord-")  # nobody's, when root: the bot runs the database as its owner
    (folder / "docs").mkdir()
    (folder / "docs" / "handbook.md").write_text(HANDBOOK, encoding="utf-8")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scene(folder: Path) -> AsyncIterator[Scene]:
    async with DiscordWorld.open() as world:
        admins = world.fake.add_role(world.guild, "admins", permissions=ADMIN)
        admin = world.add_user("admin", roles=[admins])
        alice, bob = world.add_user("alice"), world.add_user("bob")
        other_bot = world.add_user("otherbot", bot=True)
        channels = {name: world.add_channel(name) for name in ("help", "lounge", "quiet", "burst")}
        world.model.responder = citing_responder
        await world.start_bot(
            KNOWLEDGE_DIR=str(folder / "docs"), KNOWLEDGE_DATA_DIR=str(folder / "data"), LOG_LEVEL="debug"
        )
        scene = Scene(world, channels, admin, alice, bob, other_bot)
        assert "Done" in await respond(scene, channels["help"], admin, "questions")
        assert "Done" in await respond(scene, channels["lounge"], admin, "all")
        assert "Done" in await respond(scene, channels["burst"], admin, "all")
        await knowledge_ready(scene)
        yield scene
        if world.bot is not None:
            await world.stop_bot(check=True)


@pytest.fixture
def world(scene: Scene) -> Iterator[DiscordWorld]:
    with log_shown(scene.world) as world:
        yield world


async def respond(scene: Scene, channel: dict[str, Any], user: FakeUser, mode: str | None = None) -> str:
    options = {} if mode is None else {"mode": mode}
    interaction = await scene.world.fake.send_slash_command(channel["id"], user, "respond", options)
    return await answered(scene, interaction)


async def answered(scene: Scene, interaction: FakeInteraction) -> str:
    return await scene.world.private_answer(interaction)


async def knowledge_ready(scene: Scene) -> None:
    await scene.world.until_cited(scene.channels["quiet"], scene.alice, COVERED, "Office handbook")


async def answer_in_thread(world: DiscordWorld, message: dict[str, Any]) -> str:
    thread = await world.wait_thread(message, timeout=15)
    messages = await world.wait_bot_text(thread, lambda text: bool(text.strip()), timeout=20)
    return "\n".join(m["content"] for m in messages)


async def stays_unanswered(world: DiscordWorld, message: dict[str, Any]) -> None:
    """Once the bot has logged its decision on `message` (so it saw it), nothing follows for a while."""
    await world.fake.wait_for(lambda: decision_lines(world, message), 10)
    await world.settle(QUIET_SECONDS)
    assert world.fake.thread_for_message(message["id"]) is None
    assert world.bot_messages(message["channel_id"], after=message["id"]) == []


async def passed_over(world: DiscordWorld, message: dict[str, Any], later: dict[str, Any]) -> None:
    """`message` got nothing though `later`, sent after it in the same place, was answered: the gateway delivers a
    channel's messages in order, so the bot saw `message` first and passed it over (it logs no decision for it)."""
    await answer_in_thread(world, later)
    assert world.fake.thread_for_message(message["id"]) is None
    assert world.bot_messages(message["channel_id"], after=message["id"]) == []
    assert world.model_requests(message["content"]) == []


def decision_lines(world: DiscordWorld, message: dict[str, Any]) -> list[str]:
    return [line for line in world.stderr.splitlines() if "respond_decision" in line and message["id"] in line]


def handled(log: str, message: dict[str, Any]) -> list[str]:
    """What one process's log says it did with `message`: decided on it, or found it claimed by another."""
    events = ("respond_decision", "respond_claimed_elsewhere")
    return [
        event
        for line in log.splitlines()
        for event in events
        if event in line.split() and f"message={message['id']}" in line.split()
    ]


def decision_logged(world: DiscordWorld, message: dict[str, Any]) -> str:
    """What the debug log says the bot decided for `message`, and why."""
    [line] = decision_lines(world, message)
    fields = dict(field.split("=", 1) for field in line.split() if "=" in field)
    return f"answer={fields['answer']} reason={fields['reason']}"


# -- the tests ------------------------------------------------------------------------------------


async def test_respond_shows_the_mode_and_only_admins_change_it(scene: Scene) -> None:
    shown = await respond(scene, scene.channels["help"], scene.alice)
    assert "**questions** (this channel)" in shown
    assert "Manage Channels" in await respond(scene, scene.channels["help"], scene.alice, "all")
    assert "**questions**" in await respond(scene, scene.channels["help"], scene.alice)  # unchanged
    assert "**mentions** (the default)" in await respond(scene, scene.channels["quiet"], scene.alice)


async def test_all_answers_a_top_level_message_without_a_mention(scene: Scene, world: DiscordWorld) -> None:
    said = await world.say(scene.channels["lounge"], scene.alice, "Good morning everyone, what a day")
    assert (await answer_in_thread(world, said)).strip()


async def test_questions_answers_a_question_the_knowledge_covers_with_its_source(
    scene: Scene, world: DiscordWorld
) -> None:
    said = await world.say(scene.channels["help"], scene.alice, COVERED)
    answer = await answer_in_thread(world, said)
    assert "WireGuard" in answer and "Office handbook" in answer
    assert decision_logged(world, said) == "answer=True reason=knowledge"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("thanks!", "small_talk"),
        ("lol", "small_talk"),
        ("good morning", "small_talk"),
        ("I'm heading out for lunch now", "not_a_question"),
        # Nothing in the knowledge covers it: silence, not "I don't know".
        ("What is the capital of Mongolia?", "not_covered"),
        ("", "empty"),  # a message with only a file
    ],
)
async def test_questions_stays_silent_on_chatter_and_on_what_it_cannot_answer(
    scene: Scene, world: DiscordWorld, text: str, reason: str
) -> None:
    files = [("photo.txt", "text/plain", b"nothing")] if not text else []
    said = await world.say(scene.channels["help"], scene.alice, text, files=files)
    await stays_unanswered(world, said)
    if text:
        assert world.model_requests(text) == []
    assert decision_logged(world, said) == f"answer=False reason={reason}"


async def test_questions_skips_a_question_for_another_person(scene: Scene, world: DiscordWorld) -> None:
    bob = scene.bob
    to_bob = await world.say(scene.channels["help"], scene.alice, f"<@{bob.id}> how do I connect to the VPN?")
    await stays_unanswered(world, to_bob)
    assert decision_logged(world, to_bob) == "answer=False reason=to_someone_else"
    bob_said = await world.say(scene.channels["help"], bob, "I set up the VPN yesterday.")
    reply = await world.say(
        scene.channels["help"], scene.alice, "How did you connect to the VPN?", reference_message_id=bob_said["id"]
    )
    await stays_unanswered(world, reply)
    assert decision_logged(world, reply) == "answer=False reason=to_someone_else"


async def test_a_mentions_channel_answers_only_mentions(scene: Scene, world: DiscordWorld) -> None:
    quiet = scene.channels["quiet"]
    said = await world.say(quiet, scene.alice, f"{COVERED} Nobody mentioned the bot here.")
    await passed_over(world, said, await world.mention(quiet, scene.bob, "And what about the printer on floor 3?"))


async def test_another_bots_message_is_ignored(scene: Scene, world: DiscordWorld) -> None:
    lounge = scene.channels["lounge"]
    said = await world.say(lounge, scene.other_bot, "How do I connect to the VPN from the other bot?")
    await passed_over(world, said, await world.say(lounge, scene.alice, "The lounge plant needs water"))
    only_a_bot = await world.say(scene.channels["help"], scene.alice, f"<@{scene.other_bot.id}>")
    await stays_unanswered(world, only_a_bot)
    assert decision_logged(world, only_a_bot) == "answer=False reason=empty"


async def test_a_thread_where_people_talk_to_each_other_stays_quiet(scene: Scene, world: DiscordWorld) -> None:
    alice, bob = scene.alice, scene.bob
    said = await world.say(scene.channels["help"], alice, "How do I print on floor 3?")
    thread = await world.wait_thread(said, timeout=15)
    await world.wait_bot_text(thread, lambda text: "badge" in text, timeout=20)
    followup = await world.say(thread, alice, "And where is the badge reader?")
    await world.wait_bot_text(thread, lambda text: bool(text.strip()), after=followup["id"], timeout=20)
    assert len(world.model_requests("where is the badge reader")) == 1

    requests = len(world.model.requests)
    to_alice = await world.say(thread, bob, f"<@{alice.id}> it's next to the door, I'll show you")
    await world.say(thread, alice, "Thanks, on my way!", reference_message_id=to_alice["id"])
    # Said to the bot after them, and answered: the two before reached it first and were passed over.
    back_to_the_bot = await world.say(thread, alice, "Does the reader take visitor badges too?")
    await world.wait_bot_text(thread, lambda text: bool(text.strip()), after=back_to_the_bot["id"], timeout=20)
    assert world.model_requests("next to the door") == [] and world.model_requests("on my way") == []
    assert len(world.model.requests) == requests + 1  # the model was asked about the last one only


async def test_an_edit_does_not_bring_a_new_answer(scene: Scene, world: DiscordWorld) -> None:
    lounge = scene.channels["lounge"]
    said = await world.say(lounge, scene.alice, "The coffee machine is broken again")
    answer = await answer_in_thread(world, said)
    requests = len(world.model.requests)
    await world.fake.edit_user_message(said["id"], "The coffee machine is broken again, and the kettle")
    # A message after the edit, answered: the edit reached the bot before it (one gateway, in order).
    await answer_in_thread(world, await world.say(lounge, scene.bob, "Who took the last biscuit?"))
    assert len(world.model.requests) == requests + 1 and world.model_requests("and the kettle") == []
    assert "\n".join(m["content"] for m in world.bot_messages(said["id"])) == answer  # no second answer in its thread


async def test_two_processes_answer_each_message_once(scene: Scene, world: DiscordWorld) -> None:
    identified = world.fake.gateway.identify_count
    # No knowledge of its own ("all" needs none); its debug log says what it did with each message.
    second = await BotProcess.start("discord", env=world.bot_env(LOG_LEVEL="debug"))
    try:
        await world.fake.wait_for(lambda: world.fake.gateway.identify_count > identified or None, 30)
        await asyncio.sleep(1.0)  # its guilds arrive after IDENTIFY
        assert len([s for s in world.fake.gateway.sessions.values() if s.connected]) == 2  # each message goes to both
        said = [await world.say(scene.channels["lounge"], scene.bob, f"Lunch plans number {n}") for n in range(3)]
        for message in said:
            await answer_in_thread(world, message)
        # Each process saw each message: one decided on it, the other found it claimed (a dead second process
        # would leave one answer too).
        for message in said:
            await world.fake.wait_for(
                lambda m=message: all(handled(log, m) for log in (world.stderr, second.stderr)), 10
            )
            events = sorted(event for log in (world.stderr, second.stderr) for event in handled(log, message))
            assert events == ["respond_claimed_elsewhere", "respond_decision"], events
        await world.settle(1.0)
        for n, message in enumerate(said):
            assert len(world.model_requests(f"Lunch plans number {n}")) == 1
            creates = [
                r for r in world.fake.requests if r.route == THREAD_FROM_MESSAGE and str(message["id"]) in r.path
            ]
            assert len(creates) == 1
        assert second.running, f"the second process died:\n{second.stderr}"
    finally:
        await second.stop()
        second.cleanup()


async def deferred_answer(world: DiscordWorld, interaction: FakeInteraction) -> dict[str, Any]:
    """The message a deferred ephemeral command finally shows (its text and attachments)."""

    def shown() -> dict[str, Any] | None:
        message = world.fake.original_response(interaction)
        return message if message and message.get("content") else None

    return await world.fake.wait_for(shown, 20)


async def kept_for_votes(world: DiscordWorld, question: dict[str, Any]) -> None:
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        feedback = Feedback(client, world.key_prefix, answer_seconds=60)
        await world.fake.wait_for(lambda: feedback.answer(f"discord:{question['id']}"), 10)
    finally:
        await client.aclose()


def csv_sent(world: DiscordWorld, interaction: FakeInteraction) -> str:
    [upload] = [f for r in world.fake.requests if interaction.token in r.path for f in r.files if f.data]
    assert upload.filename == "knowledge-gaps.csv"
    return (upload.data or b"").decode()


async def test_votes_are_kept_changed_and_a_reason_reaches_knowledge_gaps_until_forget_me(
    scene: Scene, world: DiscordWorld
) -> None:
    alice, bob, help_channel = scene.alice, scene.bob, scene.channels["help"]
    said = await world.say(help_channel, alice, "How do I use the printer on floor 3?")
    thread = await world.wait_thread(said, timeout=15)
    [answer] = await world.wait_bot_text(thread, lambda text: "badge" in text, timeout=20)
    up, down = f"vote:up:{said['id']}", f"vote:down:{said['id']}"
    await kept_for_votes(world, said)  # a moment after its final text: nobody clicks faster

    first = await world.fake.click_button(answer["id"], up, alice)
    assert (await answered(scene, first)) == "Thanks for the 👍."
    again = await world.fake.click_button(answer["id"], up, alice)
    assert (await answered(scene, again)) == "You already voted 👍 on this answer."
    await answered(scene, await world.fake.click_button(answer["id"], up, bob))
    changed = await world.fake.click_button(answer["id"], down, alice)
    form = await world.fake.wait_for(lambda: changed.modal, 10)
    assert form["title"] == "What was wrong with this answer?"
    submitted = await world.fake.submit_modal(changed, {"reason": "It never says where floor 3's reader is"})
    assert (await answered(scene, submitted)) == "Thanks: the team will see why."

    await stays_unanswered(world, await world.say(help_channel, bob, "Which river runs through Ulaanbaatar?"))
    refused = await world.fake.send_slash_command(help_channel["id"], bob, "knowledge", {"gaps": {}})
    assert "Manage Server" in await answered(scene, refused)
    listing = await world.fake.send_slash_command(help_channel["id"], scene.admin, "knowledge", {"gaps": {}})
    shown = await deferred_answer(world, listing)
    assert "where floor 3's reader is" in shown["content"]
    link = f"https://discord.com/channels/{world.guild.id}/{help_channel['id']}/{said['id']}"
    assert f"(<{link}>)" in shown["content"]
    assert "Which river runs through Ulaanbaatar?" in shown["content"]  # the question it stayed silent on
    rows = csv_sent(world, listing)
    assert rows.splitlines()[0] == "group,kind,question,reason,link,model,person,when"
    assert "downvoted,How do I use the printer on floor 3?,It never says where floor 3's reader is," in rows

    forgot = await world.fake.send_slash_command(help_channel["id"], alice, "forget-me")
    assert "your votes on answers" in (await deferred_answer(world, forgot))["content"]
    after = await world.fake.send_slash_command(help_channel["id"], scene.admin, "knowledge", {"gaps": {}})
    assert "floor 3's reader" not in (await deferred_answer(world, after))["content"]
    gone = await world.fake.click_button(answer["id"], up, bob)  # her question's record went with her
    assert "can't take votes any more" in await answered(scene, gone)
