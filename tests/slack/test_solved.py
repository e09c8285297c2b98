"""A help channel's thread marked solved, on Slack, through the real bot process (Socket Mode), the fake Slack and the
real knowledge: **✅ Solved** under the bot's answer in a help channel (not in a mention-only channel), the message
shortcut **Mark as answer** and a ✅ reaction, by the asker or a helper (anyone else is refused privately, or for a
reaction changes nothing); the thread's question and its accepted answer then answer the next person who asks the same
in other words, cited by the thread's link, until the thread is unmarked, its answer deleted or 👎'd; an edit of the
answer is what the next asker reads. One bot for the module."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from fakes.citing_model import citing_responder
from fakes.harness.processes import delete_keys
from fakes.harness.server_folders import server_folder
from fakes.harness.slack_world import SlackHarness, eventually, finished, started
from fakes.model_server import FakeModelServer, Script
from fakes.slack import FakeSlack
from fakes.slack.models import StoredMessage

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(180)]

ADMIN, BOB, HELEN = "U0ADMIN01", "U0BOB0001", "U0HELEN01"  # Bob asks nothing of these threads; Helen helps
ALICE = FakeSlack.DEFAULT_USER
HELP, BARE = "C0HELP001", "C0BARE001"  # help channels: with a helper, without
QUIET = FakeSlack.DEFAULT_CHANNEL  # mentions only
MARK = "mark_answer"
HANDBOOK = (
    "# Office handbook\n\n"
    "To reach the VPN from home, install WireGuard and import the IT profile from the intranet.\n\n"
    "The printer on floor 3 takes badge codes: hold your badge to the reader and pick your job.\n"
)
COVERED = "How do I connect to the VPN from home?"
ESPRESSO = "The espresso machine on floor 2 shows a red light, how do I get it working again?"
DESCALE = "Hold the descale button for five seconds, then refill the water tank."


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    folder = server_folder("solved-slack-")
    (folder / "docs").mkdir()
    (folder / "docs" / "handbook.md").write_text(HANDBOOK, encoding="utf-8")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def harness(folder: Path) -> AsyncIterator[SlackHarness]:
    prefix = f"test:slack-solved:{uuid.uuid4().hex[:12]}:"
    fake = FakeSlack()
    fake.add_user(ADMIN, "admin").is_admin = True
    fake.add_user(BOB, "bob")
    fake.add_user(HELEN, "helen")
    fake.add_channel(HELP, "help")
    fake.add_channel(BARE, "bare")
    env = {"KNOWLEDGE_DIR": str(folder / "docs"), "KNOWLEDGE_DATA_DIR": str(folder / "data"), "LOG_LEVEL": "debug"}
    async with FakeModelServer(Script(text="ok")) as model:
        model.responder = citing_responder
        harness = SlackHarness(fake, model.base_url, prefix, extra_env=env)
        await started(harness)
        try:
            for channel in (HELP, BARE):
                assert "Done" in await respond(harness, channel, ADMIN, "all")
            assert "Done" in await respond(harness, HELP, ADMIN, f"helpers <@{HELEN}>")
            await knowledge_ready(harness)
            yield harness
        except BaseException:
            print(harness.report())
            raise
        finally:
            await finished(harness)
            delete_keys(prefix)


async def respond(harness: SlackHarness, channel: str, user: str, text: str) -> str:
    envelope = await harness.fake.send_slash_command("/respond", text, user, channel)
    await harness.fake.wait_ack(envelope)
    return str((harness.fake.ack_payloads[envelope] or {}).get("text", ""))


def answer_text(harness: SlackHarness, channel: str, thread_ts: str) -> str:
    return "\n".join(reply.history[-1][1] for reply in harness.replies(channel, thread_ts))


async def knowledge_ready(harness: SlackHarness) -> None:
    """The folder is read in the background after start-up: a mention is asked until its answer cites it."""
    for attempt in range(60):
        event, _ = await harness.mention(QUIET, ALICE, f"{COVERED} ({attempt})")
        await harness.wait_turn(QUIET, event["ts"], timeout=20)
        if "Office handbook" in answer_text(harness, QUIET, event["ts"]):
            return
        await asyncio.sleep(1)
    raise AssertionError("the knowledge folder was never read")


async def asked(harness: SlackHarness, channel: str, user: str, text: str) -> tuple[str, StoredMessage]:
    """A question posted in `channel`: its ts, and the bot's answer, the message under which its buttons are."""
    event, _ = await harness.say(channel, user, text)
    await harness.wait_turn(channel, event["ts"], timeout=20)
    await eventually(
        lambda: any(m.blocks_of("actions") for m in harness.replies(channel, event["ts"])), 10, "the answer's buttons"
    )
    [answer] = [m for m in harness.replies(channel, event["ts"]) if m.blocks_of("actions")]
    return event["ts"], answer


async def answer_to(harness: SlackHarness, text: str) -> str:
    """What the next person asking `text` in the help channel reads."""
    ts, _ = await asked(harness, HELP, BOB, text)
    return answer_text(harness, HELP, ts)


def buttons(message: StoredMessage) -> list[str]:
    [actions] = message.blocks_of("actions")
    return [button["action_id"] for button in actions["elements"]]


async def told(harness: SlackHarness, user: str, send: Awaitable[object]) -> str:
    """What `user` is told privately after `send` (their click, shortcut or reaction delivered)."""
    before = len(harness.fake.ephemerals)
    await send
    await eventually(lambda: any(e.user == user for e in harness.fake.ephemerals[before:]), 15, "a private answer")
    return next(e.text for e in harness.fake.ephemerals[before:] if e.user == user)


async def helper_answers(harness: SlackHarness, question: str, answer: str) -> tuple[str, str]:
    """Alice asks in the help channel and Helen answers in its thread: the thread's ts and Helen's message's."""
    ts, _ = await asked(harness, HELP, ALICE, question)
    said, _ = await harness.say(HELP, HELEN, answer, thread_ts=ts)
    return ts, said["ts"]


def link(harness: SlackHarness, thread_ts: str) -> str:
    """The thread's link as an answer cites it."""
    return f"<{harness.fake.permalink(HELP, thread_ts)}|["


# -- the tests ------------------------------------------------------------------------------------


async def test_solved_is_under_answers_in_help_channels_only(harness: SlackHarness) -> None:
    _, answer = await asked(harness, HELP, ALICE, "Which floor is the printer on?")
    assert buttons(answer) == ["vote_up", "vote_down", "still_need_help", "solved"]
    _, answer = await asked(harness, BARE, ALICE, "Which floor is the printer on?")
    assert buttons(answer) == ["vote_up", "vote_down", "solved"]  # no helpers: no person promised, still solvable
    event, _ = await harness.mention(QUIET, ALICE, "Which floor is the printer on?")
    await harness.wait_turn(QUIET, event["ts"], timeout=20)
    await eventually(lambda: any(m.blocks_of("actions") for m in harness.replies(QUIET, event["ts"])), 10, "buttons")
    [answer] = [m for m in harness.replies(QUIET, event["ts"]) if m.blocks_of("actions")]
    assert buttons(answer) == ["vote_up", "vote_down"]


async def test_the_asker_marks_the_bots_answer_and_unmarks_it(harness: SlackHarness) -> None:
    fake = harness.fake
    ts, answer = await asked(harness, HELP, ALICE, COVERED)
    refused = await told(harness, BOB, fake.send_block_action(BOB, HELP, answer.ts, "solved"))
    assert refused == "Only the person who asked and this channel's helpers can mark this thread solved."
    marked = await told(harness, ALICE, fake.send_block_action(ALICE, HELP, answer.ts, "solved"))
    assert marked.startswith("Marked solved, with the bot's answer")
    assert link(harness, ts) in await answer_to(harness, "Can I connect to the VPN when I work from home?")

    assert (await told(harness, ALICE, fake.send_block_action(ALICE, HELP, answer.ts, "solved"))).startswith(
        "Unmarked: this thread is no longer solved"
    )
    assert link(harness, ts) not in await answer_to(harness, "Could I connect to the VPN when I work from home?")

    # Marked again, then the bot's answer deleted by an admin: the thread leaves the knowledge (Bolt would drop the
    # deletion as the app's own event).
    assert (await told(harness, ALICE, fake.send_block_action(ALICE, HELP, answer.ts, "solved"))).startswith("Marked")
    await fake.send_event(fake.message_deleted_event(HELP, answer.ts))
    await harness.bots[0].wait_log("slack_solved_answer_gone", message=answer.ts, why="deleted")
    assert link(harness, ts) not in await answer_to(harness, "May I connect to the VPN when I work from home?")


async def test_mark_as_answer_makes_a_helpers_message_what_the_next_asker_reads(harness: SlackHarness) -> None:
    fake = harness.fake
    ts, helen = await helper_answers(harness, ESPRESSO, DESCALE)
    refused = await told(harness, BOB, fake.send_message_shortcut(MARK, BOB, HELP, helen))
    assert refused.startswith("Only the person who asked")
    marked = await told(harness, ALICE, fake.send_message_shortcut(MARK, ALICE, HELP, helen))
    assert marked.startswith("Marked solved, with helen's answer")
    said = await answer_to(harness, "The espresso machine on floor 2 has a red light, what do I do?")
    assert "descale button for five seconds" in said and link(harness, ts) in said

    await fake.send_event(fake.message_changed_event(HELP, helen, DESCALE.replace("five", "ten")))
    await harness.bots[0].wait_log("slack_solved_answer_edited", thread=ts)
    said = await answer_to(harness, "What do I do when the espresso machine on floor 2 has a red light?")
    assert "descale button for ten seconds" in said and link(harness, ts) in said

    await fake.send_event(fake.message_deleted_event(HELP, helen))
    await harness.bots[0].wait_log("slack_solved_answer_gone", message=helen, why="deleted")
    said = await answer_to(harness, "Espresso machine on floor 2 with a red light: what now?")
    assert "descale" not in said and link(harness, ts) not in said

    question = fake.seed_message(QUIET, "When is lunch?", user=ALICE)
    elsewhere = fake.seed_message(QUIET, "Lunch is at noon.", user=HELEN, thread_ts=question.ts)
    not_here = await told(harness, ALICE, fake.send_message_shortcut(MARK, ALICE, QUIET, elsewhere.ts))
    assert not_here.startswith("Threads are marked solved in a help channel's threads")  # a mention-only channel
    not_a_thread = await told(harness, ALICE, fake.send_message_shortcut(MARK, ALICE, HELP, ts))
    assert not_a_thread == "That is the thread's question: mark the message that answered it."


async def test_a_check_mark_by_the_asker_marks_and_by_anyone_else_changes_nothing(harness: SlackHarness) -> None:
    fake = harness.fake
    ts, helen = await helper_answers(
        harness,
        "The badge reader at the garage door beeps twice, why?",
        "Garage badges expire every 90 days: renew yours at reception.",
    )
    before = len(fake.ephemerals)
    stranger = fake.reaction_added_event(HELP, helen, BOB)
    assert stranger is not None
    await fake.send_event(stranger)
    await harness.bots[0].wait_log("slack_solved_reaction_ignored", message=helen, reason="not_allowed")
    assert [e for e in fake.ephemerals[before:] if e.user == BOB] == []  # and the asker's ✅ below marks it anew

    asker = fake.reaction_added_event(HELP, helen, ALICE, "heavy_check_mark")
    assert asker is not None
    assert (await told(harness, ALICE, fake.send_event(asker))).startswith("Marked solved, with helen's answer")
    said = await answer_to(harness, "Why does the garage door's badge reader beep twice?")
    assert "renew yours at reception" in said and link(harness, ts) in said

    before = len(fake.responses)
    await fake.send_slash_command("/forget-me", "", HELEN, HELP)  # what she answered goes with her
    await eventually(lambda: len(fake.responses) > before, 20, "the answer to /forget-me")
    assert "from this workspace's knowledge" in fake.responses[before].text
    said = await answer_to(harness, "The garage door's badge reader beeps twice: why is that?")
    assert "renew yours at reception" not in said and link(harness, ts) not in said


async def test_a_downvote_on_the_accepted_answer_takes_it_out(harness: SlackHarness) -> None:
    fake = harness.fake
    ts, answer = await asked(harness, HELP, ALICE, "How do I print on floor 3 with my badge?")
    assert (await told(harness, ALICE, fake.send_block_action(ALICE, HELP, answer.ts, "solved"))).startswith(
        "Marked solved"
    )
    assert link(harness, ts) in await answer_to(harness, "Printing on floor 3 with a badge, how does it work?")
    await fake.send_block_action(BOB, HELP, answer.ts, "vote_down")
    await harness.bots[0].wait_log("slack_solved_answer_gone", message=answer.ts, why="downvoted")
    assert link(harness, ts) not in await answer_to(harness, "With my badge, how do I print on floor 3?")
