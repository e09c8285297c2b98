"""A help channel the bot runs by itself, on Slack, through the real bot process (Socket Mode), the fake Slack and the
real knowledge (KNOWLEDGE_DIR on the embedded engine, the embedded embeddings): `/respond all` answers every top-level
message in its thread without a mention; `/respond questions` answers what the knowledge covers and stays silent on
chatter, on questions for someone else and on what it can't answer; people talking to each other in its thread get
no answer; other bots' messages and edits are ignored; two processes answer a message once."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.state.redis_client import close, connect
from bot.usage.days import day_of
from bot.usage.ledger import UsageLedger
from fakes.citing_model import citing_responder
from fakes.harness.processes import REDIS_URL, delete_keys
from fakes.harness.server_folders import server_folder
from fakes.harness.slack_world import BotProcess, SlackHarness, eventually, finished, started
from fakes.model_server import FakeModelServer, RecordedRequest, Script
from fakes.slack import FakeSlack

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

ADMIN = "U0ADMIN01"
ALICE = FakeSlack.DEFAULT_USER
BOB = "U0BOB0001"
HELP, LOUNGE, QUIET = "C0HELP001", "C0LOUNGE1", FakeSlack.DEFAULT_CHANNEL
HANDBOOK = (
    "# Office handbook\n\n"
    "To reach the VPN from home, install WireGuard and import the IT profile from the intranet.\n\n"
    "The printer on floor 3 takes badge codes: hold your badge to the reader and pick your job.\n"
)
COVERED = "How do I connect to the VPN from home?"
QUIET_SECONDS = 2.0


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    folder = server_folder("help-channels-slack-")  # nobody's, when root: the bot runs the database as its owner
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
    prefix = f"test:slack-help:{uuid.uuid4().hex[:12]}:"
    fake = FakeSlack()
    fake.add_user(ADMIN, "admin").is_admin = True
    fake.add_user(BOB, "bob")
    fake.add_channel(HELP, "help")
    fake.add_channel(LOUNGE, "lounge")
    env = {
        "KNOWLEDGE_DIR": str(folder / "docs"),
        "KNOWLEDGE_DATA_DIR": str(folder / "data"),
        "LOG_LEVEL": "debug",
    }
    harness = SlackHarness(fake, model.base_url, prefix, extra_env=env)
    await started(harness)
    try:
        assert "Done" in await respond(harness, HELP, ADMIN, "questions")
        assert "Done" in await respond(harness, LOUNGE, ADMIN, "all")
        await knowledge_ready(harness)
        yield harness
    except BaseException:
        print(harness.report())
        raise
    finally:
        await finished(harness)
        delete_keys(prefix)


async def respond(harness: SlackHarness, channel: str, user: str, mode: str = "") -> str:
    envelope = await harness.fake.send_slash_command("/respond", mode, user, channel)
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


async def answered(harness: SlackHarness, event: dict[str, Any]) -> str:
    await harness.wait_turn(event["channel"], event["ts"], timeout=20)
    return answer_text(harness, event["channel"], event["ts"])


def turns(harness: SlackHarness, channel: str, thread_ts: str) -> list[dict[str, Any]]:
    """The `turn_finished` records of that conversation, from every bot."""
    key = harness.thread_key(channel, thread_ts)
    return [record for bot in harness.bots for record in bot.logs("turn_finished", thread=key)]


def decisions(harness: SlackHarness, event: dict[str, Any]) -> list[dict[str, Any]]:
    return [record for bot in harness.bots for record in bot.logs("respond_decision", message=event["ts"])]


def handled(bot: BotProcess, event: dict[str, Any]) -> list[str]:
    """What one bot's log says it did with `event`: decided on it, or found it claimed by another."""
    return [
        record["event"]
        for record in bot.logs(message=event["ts"])
        if record.get("event") in ("respond_decision", "respond_claimed_elsewhere")
    ]


async def stays_unanswered(harness: SlackHarness, event: dict[str, Any]) -> None:
    """Once the bot has logged its decision on `event` (so it saw it), nothing follows for a while."""
    await eventually(lambda: bool(decisions(harness, event)), 15, f"the decision on {event['text']!r}")
    await asyncio.sleep(QUIET_SECONDS)
    assert harness.replies(event["channel"], event["ts"]) == []
    assert turns(harness, event["channel"], event["ts"]) == []


async def passed_over(
    harness: SlackHarness, model: FakeModelServer, said: tuple[dict[str, Any], str], later: dict[str, Any]
) -> None:
    """The event got nothing though the bot acknowledged it and answered `later`, delivered after it on the same
    socket: the bot saw it first and passed it over (it logs no decision for it)."""
    event, envelope = said
    await harness.fake.wait_ack(envelope)
    await answered(harness, later)
    assert harness.replies(event["channel"], event["ts"]) == []
    assert turns(harness, event["channel"], event["ts"]) == []
    assert asked(model, event.get("text") or event["message"]["text"]) == []


def asked(model: FakeModelServer, text: str) -> list[RecordedRequest]:
    """The model's requests whose question contains `text`."""
    return [request for request in model.requests if text in (request.last_user_content() or "")]


def decision_logged(harness: SlackHarness, event: dict[str, Any]) -> tuple[bool, str]:
    [record] = decisions(harness, event)
    return record["answer"], record["reason"]


# -- the tests ------------------------------------------------------------------------------------


async def test_respond_shows_the_mode_and_only_admins_change_it(harness: SlackHarness) -> None:
    assert "*questions* (this channel)" in await respond(harness, HELP, ALICE)
    assert "Only workspace admins" in await respond(harness, HELP, ALICE, "all")
    assert "*mentions* (the default)" in await respond(harness, QUIET, ALICE)


async def test_all_answers_a_top_level_message_in_its_thread(harness: SlackHarness) -> None:
    event, _ = await harness.say(LOUNGE, ALICE, "Good morning everyone, what a day")
    assert (await answered(harness, event)).strip()
    assert decision_logged(harness, event) == (True, "all")


async def test_questions_answers_what_the_knowledge_covers(harness: SlackHarness) -> None:
    event, _ = await harness.say(HELP, ALICE, COVERED)
    answer = await answered(harness, event)
    assert "WireGuard" in answer and "Office handbook" in answer
    assert decision_logged(harness, event) == (True, "knowledge")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("thanks!", "small_talk"),
        ("good morning", "small_talk"),
        (f"<@{BOB}> how do I connect to the VPN?", "to_someone_else"),
        ("What is the capital of Mongolia?", "not_covered"),
    ],
)
async def test_questions_stays_silent_on_chatter_and_on_what_it_cannot_answer(
    harness: SlackHarness, text: str, reason: str
) -> None:
    event, _ = await harness.say(HELP, ALICE, text)
    await stays_unanswered(harness, event)
    assert decision_logged(harness, event) == (False, reason)


async def test_a_question_left_unanswered_still_counts_its_search(harness: SlackHarness) -> None:
    """The decision searched the knowledge for it: the embedding model read its words, and that is the asker's."""
    asker = "U0USAGE01"
    harness.fake.add_user(asker, "carol")
    question = "Which football team won the league in 1998?"
    event, _ = await harness.say(HELP, asker, question)
    await stays_unanswered(harness, event)
    client = connect(REDIS_URL, cluster=False)
    try:
        ledger = UsageLedger(client, harness.key_prefix)
        counted = await ledger.totals(f"slack:T0FAKE001:{asker}", [day_of(time.time())], kind="person")
    finally:
        await close(client)
    embedding = counted.by_model["all-minilm-l6-v2"]
    assert embedding.prompt_tokens > 0 and embedding.completion_tokens == 0 and counted.turns == 0


async def test_a_mentions_channel_and_other_bots_get_no_answer(harness: SlackHarness, model: FakeModelServer) -> None:
    quiet = await harness.say(QUIET, ALICE, f"{COVERED} Nobody mentioned the bot here.")
    await passed_over(harness, model, quiet, (await harness.mention(QUIET, BOB, "And the printer on floor 3?"))[0])
    from_a_bot = await harness.say(LOUNGE, "U0OTHERBOT", "How do I connect to the VPN, other bot?", bot_id="B0OTHER01")
    later = (await harness.say(LOUNGE, ALICE, "The lounge plant needs water"))[0]
    await passed_over(harness, model, from_a_bot, later)


async def test_people_talking_to_each_other_in_its_thread_get_no_answer(
    harness: SlackHarness, model: FakeModelServer
) -> None:
    event, _ = await harness.say(HELP, ALICE, "How do I print on floor 3?")
    assert "badge" in await answered(harness, event)
    await harness.say(HELP, ALICE, "And where is the badge reader?", thread_ts=event["ts"])
    await harness.wait_turn(HELP, event["ts"], count=2, timeout=20)
    assert len(asked(model, "where is the badge reader")) == 1  # the follow-up in its thread was answered
    requests = len(model.requests)
    to_alice = f"<@{ALICE}> it's next to the door, I'll show you"
    await harness.fake.wait_ack((await harness.say(HELP, BOB, to_alice, thread_ts=event["ts"]))[1])
    # Said to the bot after Bob's message, and answered: Bob's reached the bot first and was passed over.
    await harness.say(HELP, ALICE, "Does the reader take visitor badges too?", thread_ts=event["ts"])
    await eventually(lambda: bool(asked(model, "visitor badges")), 20, "the model asked about visitor badges")
    await harness.wait_turn(HELP, event["ts"], count=3, timeout=20)
    assert asked(model, "next to the door") == [] and len(model.requests) == requests + 1
    assert len(turns(harness, HELP, event["ts"])) == 3


async def test_an_edit_brings_no_new_answer(harness: SlackHarness, model: FakeModelServer) -> None:
    event, _ = await harness.say(LOUNGE, ALICE, "The coffee machine is broken again")
    await answered(harness, event)
    answers = len(harness.replies(LOUNGE, event["ts"]))
    edit = harness.fake.message_changed_event(LOUNGE, event["ts"], "The coffee machine is broken again, and the kettle")
    edited = (edit, await harness.fake.send_event(edit))
    await passed_over(harness, model, edited, (await harness.say(LOUNGE, BOB, "Who took the last biscuit?"))[0])
    assert len(turns(harness, LOUNGE, event["ts"])) == 1 and len(harness.replies(LOUNGE, event["ts"])) == answers


async def test_two_processes_answer_a_message_once(harness: SlackHarness) -> None:
    second = await harness.start_bot()
    try:
        events = [harness.fake.message_event(LOUNGE, BOB, f"Lunch plans number {n}") for n in range(3)]
        for event in events:
            assert len(await harness.broadcast_event(event)) == 2, "both bots must be connected"
        for event in events:
            await answered(harness, event)
        # Each bot saw each message: one decided on it, the other found it claimed (a dead second bot would leave
        # one answer too).
        for event in events:
            await eventually(
                lambda e=event: all(handled(bot, e) for bot in harness.bots), 10, f"both on {event['text']}"
            )
            assert sorted(name for bot in harness.bots for name in handled(bot, event)) == [
                "respond_claimed_elsewhere",
                "respond_decision",
            ]
        await asyncio.sleep(1.0)
        for event in events:
            assert len(harness.replies(LOUNGE, event["ts"])) == 1
            key = harness.thread_key(LOUNGE, event["ts"])
            await eventually(
                lambda key=key: len([r for b in harness.bots for r in b.logs("turn_finished", thread=key)]) == 1
            )
    finally:
        await harness.stop_bot(second)
        harness.bots.remove(second)


async def slash(harness: SlackHarness, name: str, user: str, channel: str, text: str = "") -> str:
    """A command answered later through its response_url (to the person alone)."""
    fake, before = harness.fake, len(harness.fake.responses)
    await fake.send_slash_command(name, text, user, channel)
    await eventually(lambda: len(fake.responses) > before, 20, f"the answer to {name}")
    response = fake.responses[before]
    assert response.ephemeral and response.user == user
    return response.text


async def told_privately(harness: SlackHarness, user: str, before: int) -> str:
    await eventually(lambda: len(harness.fake.ephemerals) > before, 10, "an ephemeral message")
    said = harness.fake.ephemerals[before]
    assert said.user == user
    return said.text


async def test_votes_are_kept_changed_and_a_reason_reaches_knowledge_gaps_until_forget_me(
    harness: SlackHarness,
) -> None:
    fake = harness.fake
    event, _ = await harness.say(HELP, ALICE, "How do I use the printer on floor 3?")
    await answered(harness, event)
    [answer] = harness.replies(HELP, event["ts"])
    [votes] = answer.blocks_of("actions")
    assert [button["action_id"] for button in votes["elements"]] == ["vote_up", "vote_down", "solved"]
    await eventually(lambda: bool(harness.bots[0].logs("turn_finished", thread=harness.thread_key(HELP, event["ts"]))))
    await asyncio.sleep(0.3)  # the answer is kept for votes a moment after its final text

    before = len(fake.ephemerals)
    await fake.send_block_action(ALICE, HELP, answer.ts, "vote_up")
    assert await told_privately(harness, ALICE, before) == "Thanks for the 👍."
    await fake.send_block_action(BOB, HELP, answer.ts, "vote_up")
    await told_privately(harness, BOB, before + 1)
    opened = len(fake.views_opened)
    await fake.send_block_action(ALICE, HELP, answer.ts, "vote_down")
    await eventually(lambda: len(fake.views_opened) > opened, 10, "the form asking why")
    form = fake.views_opened[opened]
    assert form.user == ALICE and form.view["callback_id"] == "vote_reason"
    before = len(fake.ephemerals)
    await fake.send_view_submission(ALICE, form.view_id, {"reason": "It never says where floor 3's reader is"})
    assert await told_privately(harness, ALICE, before) == "Thanks: the team will see why."

    await stays_unanswered(harness, (await harness.say(HELP, BOB, "Which river runs through Ulaanbaatar?"))[0])
    assert "Only workspace admins" in await slash(harness, "/knowledge", BOB, HELP, "gaps")
    listed = await slash(harness, "/knowledge", ADMIN, HELP, "gaps")
    assert "where floor 3's reader is" in listed and "Ulaanbaatar" in listed
    link = fake.permalink(HELP, event["ts"])
    assert f"<{link}|answer>" in listed
    [csv_file] = [f for f in fake.uploaded_files if f.name == "knowledge-gaps.csv"]
    assert csv_file.channel is not None and csv_file.channel.startswith("D")  # the admin's DM with the bot
    rows = csv_file.data.decode()
    assert "downvoted,How do I use the printer on floor 3?,It never says where floor 3's reader is," in rows

    assert "your votes on answers" in await slash(harness, "/forget-me", ALICE, HELP)
    assert "floor 3's reader" not in await slash(harness, "/knowledge", ADMIN, HELP, "gaps")


async def test_a_burst_past_a_channels_pace_gets_no_late_answers() -> None:
    """Slack posts about one message a second per channel: of twelve messages at once in an `all` channel, those
    whose first message can't be posted within RESPOND_MAX_DELAY_SECONDS get no answer, and are counted."""
    prefix = f"test:slack-help-burst:{uuid.uuid4().hex[:12]}:"
    fake = FakeSlack()
    fake.add_user(ADMIN, "admin").is_admin = True
    fake.add_channel(LOUNGE, "lounge")
    async with FakeModelServer(Script(text="Noted.")) as model:
        harness = SlackHarness(fake, model.base_url, prefix, extra_env={"RESPOND_MAX_DELAY_SECONDS": "2"})
        await started(harness)
        try:
            assert "Done" in await respond(harness, LOUNGE, ADMIN, "all")
            people = [f"U0BURST{n:02d}" for n in range(12)]
            for person in people:
                fake.add_user(person, person.lower())
            events = [fake.message_event(LOUNGE, person, f"Burst {n}, what now?") for n, person in enumerate(people)]
            await asyncio.gather(*(fake.send_event(event) for event in events))
            await asyncio.sleep(6.0)
            answered = [event for event in events if harness.replies(LOUNGE, event["ts"])]
            late = [record for bot in harness.bots for record in bot.logs("unasked_message_too_late")]
            assert 3 <= len(answered) < len(events)  # the channel's first posts at once; none after the cut-off
            assert len(late) == len(events) - len(answered)
            assert all(len(harness.replies(LOUNGE, event["ts"])) == 1 for event in answered)
            assert fake.ratelimited_count == 0
        except BaseException:
            print(harness.report())
            raise
        finally:
            await finished(harness)
            delete_keys(prefix)
