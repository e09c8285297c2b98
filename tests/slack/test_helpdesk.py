"""A help channel hands a thread to people, on Slack, through the real bot process (Socket Mode), the fake Slack and
the real knowledge: `/respond helpers` names people or a user group (admins only, never a bot); under an answer in a
channel with helpers, **Still need help?** and a 👎 mention them once per thread, a flood of them at most
HELPERS_PINGS_PER_HOUR times; the bot then stays out of the thread, as it does once a helper wrote there, unless
mentioned; a question the knowledge covers only weakly goes to the helpers unguessed (without helpers it is answered
as before); with no helpers nothing promises a person. One bot for the module."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from adapters.shared.feedback.records import Feedback
from bot.state.redis_client import close, connect
from fakes.citing_model import citing_responder
from fakes.harness.processes import REDIS_URL, delete_keys
from fakes.harness.server_folders import server_folder
from fakes.harness.slack_world import SlackHarness, eventually, finished, started
from fakes.model_server import FakeModelServer, Script
from fakes.slack import FakeSlack
from fakes.slack.models import StoredMessage

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(180)]

ADMIN, BOB, HELEN, GRACE = "U0ADMIN01", "U0BOB0001", "U0HELEN01", "U0GRACE01"  # Grace: of the group only
ALICE = FakeSlack.DEFAULT_USER
GROUP = "S0SUPPORT"
DESK, FLOOD, WEAKS, BARE, CLEARED, GONE = "C0DESK001", "C0FLOOD01", "C0WEAK001", "C0BARE001", "C0CLEAR01", "C0GONE001"
QUIET = FakeSlack.DEFAULT_CHANNEL
HANDBOOK = (
    "# Office handbook\n\n"
    "To reach the VPN from home, install WireGuard and import the IT profile from the intranet.\n\n"
    "The printer on floor 3 takes badge codes: hold your badge to the reader and pick your job.\n"
)
COVERED = "How do I connect to the VPN from home?"  # relevance 0.49 (MiniLM)
WEAK = "Which floor is the office handbook about?"  # 0.23: below RESPOND_MIN_CONFIDENCE's default for MiniLM (0.4)
HANDED = "this thread needs a person"
PINGS_PER_HOUR = 2
QUIET_SECONDS = 2.0


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    folder = server_folder("helpdesk-slack-")
    (folder / "docs").mkdir()
    (folder / "docs" / "handbook.md").write_text(HANDBOOK, encoding="utf-8")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text="ok")) as model:
        model.responder = citing_responder
        yield model


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def harness(folder: Path, model: FakeModelServer) -> AsyncIterator[SlackHarness]:
    prefix = f"test:slack-helpdesk:{uuid.uuid4().hex[:12]}:"
    fake = FakeSlack()
    fake.add_user(ADMIN, "admin").is_admin = True
    fake.add_user(BOB, "bob")
    fake.add_user(HELEN, "helen")
    fake.add_user(GRACE, "grace")
    fake.add_user_group(GROUP, [GRACE])
    names = ((DESK, "desk"), (FLOOD, "flood"), (WEAKS, "weak"), (BARE, "bare"), (CLEARED, "cleared"), (GONE, "gone"))
    for channel, name in names:
        fake.add_channel(channel, name)
    env = {
        "KNOWLEDGE_DIR": str(folder / "docs"),
        "KNOWLEDGE_DATA_DIR": str(folder / "data"),
        "LOG_LEVEL": "debug",
        "HELPERS_PINGS_PER_HOUR": str(PINGS_PER_HOUR),
    }
    harness = SlackHarness(fake, model.base_url, prefix, extra_env=env)
    await started(harness)
    try:
        for channel in (DESK, FLOOD, WEAKS, BARE, CLEARED, GONE):
            assert "Done" in await respond(harness, channel, ADMIN, "questions")
        assert "Done" in await respond(harness, DESK, ADMIN, f"helpers <!subteam^{GROUP}|@support> <@{HELEN}|helen>")
        for channel in (FLOOD, WEAKS, CLEARED):  # each its own hour of pings
            assert "Done" in await respond(harness, channel, ADMIN, f"helpers <@{HELEN}>")
        assert "Done" in await respond(harness, GONE, ADMIN, "helpers <!subteam^S0NOGROUP|@gone>")
        await knowledge_ready(harness)
        yield harness
    except BaseException:
        print(harness.report())
        raise
    finally:
        await finished(harness)
        delete_keys(prefix)


async def respond(harness: SlackHarness, channel: str, user: str, text: str = "") -> str:
    envelope = await harness.fake.send_slash_command("/respond", text, user, channel)
    await harness.fake.wait_ack(envelope)
    return str((harness.fake.ack_payloads[envelope] or {}).get("text", ""))


async def knowledge_ready(harness: SlackHarness) -> None:
    for attempt in range(60):
        event, _ = await harness.mention(QUIET, ALICE, f"{COVERED} ({attempt})")
        await harness.wait_turn(QUIET, event["ts"], timeout=20)
        if "Office handbook" in "\n".join(r.history[-1][1] for r in harness.replies(QUIET, event["ts"])):
            return
        await asyncio.sleep(1)
    raise AssertionError("the knowledge folder was never read")


async def asked_and_answered(harness: SlackHarness, channel: str, user: str, text: str) -> tuple[str, StoredMessage]:
    """The question's ts and its answer's message with the buttons, once the answer takes votes."""
    event, _ = await harness.say(channel, user, text)
    await harness.wait_turn(channel, event["ts"], timeout=20)
    [answer] = [m for m in harness.replies(channel, event["ts"]) if m.blocks_of("actions")]
    client = connect(REDIS_URL, cluster=False)
    try:
        feedback = Feedback(client, harness.key_prefix, answer_seconds=60)
        answer_id = f"slack:{harness.fake.team_id}:{channel}:{event['ts']}"
        for _ in range(100):
            if await feedback.answer(answer_id):
                break
            await asyncio.sleep(0.1)
    finally:
        await close(client)
    return event["ts"], answer


def buttons(message: StoredMessage) -> list[str]:
    [actions] = message.blocks_of("actions")
    return [button["action_id"] for button in actions["elements"]]


def pings(harness: SlackHarness, channel: str, thread_ts: str) -> list[StoredMessage]:
    return [m for m in harness.replies(channel, thread_ts) if HANDED in m.text]


async def click(harness: SlackHarness, user: str, channel: str, answer: StoredMessage, action: str) -> str:
    """What the clicker is then told, privately."""
    before = len(harness.fake.ephemerals)
    await harness.fake.send_block_action(user, channel, answer.ts, action)
    await eventually(lambda: any(e.user == user for e in harness.fake.ephemerals[before:]), 10, "an ephemeral")
    return next(e.text for e in harness.fake.ephemerals[before:] if e.user == user)


def decisions(harness: SlackHarness, ts: str) -> list[dict[str, Any]]:
    return [record for bot in harness.bots for record in bot.logs("respond_decision", message=ts)]


async def stays_quiet(harness: SlackHarness, channel: str, thread_ts: str, event: dict[str, Any], reason: str) -> None:
    """The bot saw `event` (its decision is logged) and wrote nothing after it."""
    await eventually(lambda: bool(decisions(harness, event["ts"])), 15, f"the decision on {event['text']!r}")
    await asyncio.sleep(QUIET_SECONDS)
    assert [m for m in harness.replies(channel, thread_ts) if float(m.ts) > float(event["ts"])] == []
    [record] = decisions(harness, event["ts"])
    assert (record["answer"], record["reason"]) == (False, reason)


# -- the tests ------------------------------------------------------------------------------------


async def test_only_admins_name_helpers_and_never_a_bot(harness: SlackHarness) -> None:
    assert "Only workspace admins" in await respond(harness, DESK, ALICE, f"helpers <@{ALICE}>")
    shown = await respond(harness, DESK, ALICE)
    assert f"Helpers: <!subteam^{GROUP}>, <@{HELEN}>" in shown and "*questions*" in shown
    itself = await respond(harness, DESK, ADMIN, f"helpers <@{harness.fake.bot_user_id}>")
    assert "never to itself or another bot" in itself
    assert "Name the helpers" in await respond(harness, DESK, ADMIN, "helpers <!here>")
    assert f"<@{HELEN}>" in await respond(harness, DESK, ALICE)  # unchanged


async def test_still_need_help_calls_the_helpers_once(harness: SlackHarness) -> None:
    ts, answer = await asked_and_answered(harness, DESK, ALICE, COVERED)
    assert buttons(answer) == ["vote_up", "vote_down", "still_need_help", "solved"]
    assert (await click(harness, ALICE, DESK, answer, "still_need_help")).startswith("Done: the channel's helpers")
    [ping] = pings(harness, DESK, ts)
    assert ping.text.startswith(f"<!subteam^{GROUP}> <@{HELEN}> ")
    assert "already called" in await click(harness, BOB, DESK, answer, "still_need_help")
    await harness.fake.send_block_action(BOB, DESK, answer.ts, "vote_down")
    await eventually(lambda: any(f.user == BOB for f in harness.fake.views_opened), 10, "the 👎 form")
    await asyncio.sleep(1.0)
    assert len(pings(harness, DESK, ts)) == 1

    followup, _ = await harness.say(DESK, ALICE, "Also, how do I reach the VPN from a hotel?", thread_ts=ts)
    await stays_quiet(harness, DESK, ts, followup, "handed_off")
    mentioned, _ = await harness.mention(DESK, ALICE, "and the printer on floor 3?", thread_ts=ts)
    await harness.wait_turn(DESK, ts, timeout=20)
    await eventually(
        lambda: any(float(m.ts) > float(mentioned["ts"]) and m.blocks_of("actions") for m in harness.replies(DESK, ts)),
        20,
        "the answer with its buttons",
    )
    [followed] = [
        m for m in harness.replies(DESK, ts) if float(m.ts) > float(mentioned["ts"]) and m.blocks_of("actions")
    ]
    assert buttons(followed) == ["vote_up", "vote_down", "still_need_help", "solved"]  # each answer in a help thread


async def test_a_downvote_hands_the_thread_off_once(harness: SlackHarness) -> None:
    ts, answer = await asked_and_answered(harness, DESK, BOB, f"{COVERED} (asks Bob)")
    await harness.fake.send_block_action(BOB, DESK, answer.ts, "vote_down")
    await eventually(lambda: bool(pings(harness, DESK, ts)), 10, "the helpers called")
    await harness.fake.send_block_action(ALICE, DESK, answer.ts, "vote_down")
    await asyncio.sleep(1.0)
    assert len(pings(harness, DESK, ts)) == 1


async def test_the_bot_stays_out_once_a_helper_wrote(harness: SlackHarness) -> None:
    ts, _ = await asked_and_answered(harness, DESK, ALICE, f"{COVERED} (asks again)")
    helper, _ = await harness.say(DESK, HELEN, "I'll take this one: which floor are you on?", thread_ts=ts)
    await stays_quiet(harness, DESK, ts, helper, "helper_answering")
    followup, _ = await harness.say(DESK, ALICE, "Floor 3, and how do I hold the badge?", thread_ts=ts)
    await stays_quiet(harness, DESK, ts, followup, "helper_answering")
    assert pings(harness, DESK, ts) == []


async def test_a_flood_of_calls_pings_at_most_the_hourly_limit(harness: SlackHarness) -> None:
    answers = [await asked_and_answered(harness, FLOOD, ALICE, f"{COVERED} (number {n})") for n in range(4)]
    before = len(harness.fake.ephemerals)
    await asyncio.gather(*(harness.fake.send_block_action(ALICE, FLOOD, a.ts, "still_need_help") for _, a in answers))
    await eventually(lambda: len(harness.fake.ephemerals) >= before + len(answers), 10, "each click answered")
    told = [e.text for e in harness.fake.ephemerals[before:]]
    await asyncio.sleep(1.0)
    assert sum(len(pings(harness, FLOOD, ts)) for ts, _ in answers) == PINGS_PER_HOUR
    assert sum("this hour" in said for said in told) == len(answers) - PINGS_PER_HOUR


async def test_a_weakly_covered_question_goes_to_the_helpers_unguessed(
    harness: SlackHarness, model: FakeModelServer
) -> None:
    event, _ = await harness.say(WEAKS, ALICE, WEAK)
    await eventually(lambda: bool(pings(harness, WEAKS, event["ts"])), 15, "the helpers called")
    [record] = decisions(harness, event["ts"])
    assert (record["answer"], record["reason"]) == (False, "weakly_covered")
    assert [r for r in model.requests if WEAK in (r.last_user_content() or "")] == []


async def test_without_helpers_nothing_promises_a_person(harness: SlackHarness, model: FakeModelServer) -> None:
    _, answer = await asked_and_answered(harness, BARE, ALICE, COVERED)
    assert buttons(answer) == ["vote_up", "vote_down", "solved"]  # Solved, but no Still need help?
    weak, _ = await harness.say(BARE, ALICE, WEAK)  # nobody to hand it to: answered as before
    await harness.wait_turn(BARE, weak["ts"], timeout=20)
    [record] = decisions(harness, weak["ts"])
    assert (record["answer"], record["reason"]) == (True, "knowledge") and pings(harness, BARE, weak["ts"]) == []

    ts, answer = await asked_and_answered(harness, CLEARED, ALICE, COVERED)
    assert "Done: nobody" in await respond(harness, CLEARED, ADMIN, "helpers none")
    assert (await click(harness, ALICE, CLEARED, answer, "still_need_help")).startswith("Nobody is set to help")
    assert pings(harness, CLEARED, ts) == []


async def test_a_member_of_the_helpers_group_counts_and_a_group_gone_is_said(harness: SlackHarness) -> None:
    ts, _ = await asked_and_answered(harness, DESK, ALICE, f"{COVERED} (asks a third time)")
    grace, _ = await harness.say(DESK, GRACE, "I'm on it, which laptop is it?", thread_ts=ts)  # of @support
    await stays_quiet(harness, DESK, ts, grace, "helper_answering")

    ts, answer = await asked_and_answered(harness, GONE, ALICE, COVERED)
    assert "can't be mentioned" in await click(harness, ALICE, GONE, answer, "still_need_help")
    assert pings(harness, GONE, ts) == []
    assert sum(len(bot.logs("helpers_note_for_admins")) for bot in harness.bots) == 1
