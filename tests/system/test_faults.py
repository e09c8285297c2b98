"""Faults, end to end: the real bot process (`python -m bot discord|slack`) against the loopback
fakes, killed with SIGKILL, stopped with SIGTERM, cut off from a Redis server of the test's own,
fed a failing model and bad input. What is asserted is what a person on Discord or Slack sees
(the fakes' messages and their edit history) and what an operator sees (exit codes, log lines,
GET /metrics and GET /healthz).

Recovery scenarios run with a short process lease (REPLY_LEASE_SECONDS, REPLY_SWEEP_SECONDS), so a
dead process's replies are found within seconds instead of the default ~15 s.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import redis
from prometheus_client.parser import text_string_to_metric_families

from adapters.shared.reply_records import INTERRUPTED_NOTE
from adapters.slack_bot.reply.text import to_mrkdwn
from bot.errors import FailureKind
from fakes.discord import FakeUser
from fakes.harness.discord_world import (
    INDICATOR,
    MESSAGE_CREATE,
    WARNING,
    BotProcess,
    DiscordWorld,
    clean_env,
    log_shown,
)
from fakes.harness.processes import REDIS_URL, delete_keys, free_port
from fakes.harness.slack_world import SlackHarness, eventually, user_contents
from fakes.model_server import FakeModelServer, Script, tokenize
from fakes.slack import FakeSlack
from tests.conftest import OwnRedis

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

# A dead process's replies are looked for every half second and found once its 2 s lease lapsed.
FAST_RECOVERY = {"REPLY_LEASE_SECONDS": "2", "REPLY_SWEEP_SECONDS": "0.5"}
RESTARTED_WITHIN = 20.0  # seconds from the restart to the interrupted note (the promise to people)
MEMORY_DOWN = f"{WARNING} {FailureKind.STORE_UNAVAILABLE.reason}"
RESTARTING = f"{WARNING} {FailureKind.RESTARTING.reason}"
NO_QUESTION = f"{WARNING} {FailureKind.NO_QUESTION.reason}"
# A conversation whose reply was cut by a crash is held by the dead process for up to the
# conversation lock's lease (15 s): a follow-up may wait that long before it is answered.
AFTER_A_CRASH = 45.0
ALICE = "U0ALICE01"
GENERAL = "C0GENERAL"


def words(count: int, stem: str) -> str:
    return " ".join(f"{stem}{i}" for i in range(count))


def reason(kind: FailureKind) -> str:
    return f"{WARNING} {kind.reason}"


# -- what an operator sees: /metrics and /healthz --------------------------------------------------


async def http_get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(total=10)) as response:
            return response.status, await response.text()


async def metric(port: int, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
    _, text = await http_get(port, "/metrics")
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items())
    )


async def wait_metric(port: int, name: str, value: float, timeout: float = 10.0, **labels: str) -> None:
    deadline = time.monotonic() + timeout
    while (current := await metric(port, name, **labels)) != value:
        assert time.monotonic() < deadline, f"{name}{labels} stayed {current}, not {value}"
        await asyncio.sleep(0.05)


async def wait_health(port: int, status: int, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        code, body = await http_get(port, "/healthz")
        if code == status:
            return body
        assert time.monotonic() < deadline, f"/healthz stayed {code} {body}"
        await asyncio.sleep(0.1)


# -- Discord helpers ----------------------------------------------------------------------------------


async def sigkill(bot: BotProcess) -> None:
    bot.process.kill()
    await bot.process.wait()


async def wait_shown(
    world: DiscordWorld, channel_id: int | str, expected: str, timeout: float = 15.0
) -> dict[str, Any]:
    """The bot's message in `channel_id` that shows exactly `expected` (indicator included, if any)."""
    return await world.fake.wait_for(
        lambda: next((m for m in world.bot_messages(channel_id) if m["content"] == expected), None), timeout
    )


async def wait_turns_logged(world: DiscordWorld, thread_id: int | str, count: int = 1) -> None:
    """Until the bot logged the end of `count` turns in that thread (their metrics are counted by
    then). A reply's last write can land a second before its turn ends: discord.py returns from the
    request that empties a rate-limit bucket only once the bucket resets."""
    key = f"thread=discord:conv:{thread_id}"

    def logged() -> bool:
        return sum(1 for line in world.stderr.splitlines() if "turn_finished" in line and key in line) >= count

    await world.fake.wait_for(logged, 10)


def user_turns(world: DiscordWorld, marker: str) -> list[tuple[str, str]]:
    [request] = world.model_requests(marker)
    return [(m["role"], m["content"]) for m in request.body["messages"] if m["role"] != "system"]


@pytest_asyncio.fixture(loop_scope="module")
async def own_world() -> AsyncIterator[DiscordWorld]:
    """A fake Discord and model server of the test's own; its bots' stderr is shown if it fails."""
    async with DiscordWorld.open() as world:
        try:
            yield world
        finally:
            print(f"--- bot stderr ---\n{world.stderr}")


# -- 1. crash recovery: SIGKILL mid-reply, then a restart -------------------------------------------


async def test_discord_replies_cut_by_a_crash_end_with_an_interrupted_note_after_the_restart_and_the_thread_goes_on(
    own_world: DiscordWorld,
) -> None:
    world = own_world
    channel, alice = world.add_channel("crash"), world.add_user("alice")
    answer = "The first part of the answer, and then"
    partial = "".join(tokenize(answer)[:6])
    world.answer("c1-", Script(text=answer, rate=20, failure="stall", fail_after=6))
    world.answer("c2-", Script(failure="headers_timeout"))  # the model never starts answering
    world.answer("c3-", Script(text="Here is all of it.", rate=50))
    env = {**FAST_RECOVERY, "MODEL_TIMEOUT_SECONDS": "120"}
    crashed = await world.start_bot(**env)
    streaming = await world.mention(channel, alice, "c1-tell me everything")
    silent = await world.mention(channel, alice, "c2-think about it")
    thread, quiet_thread = await world.wait_thread(streaming), await world.wait_thread(silent)
    reply = await wait_shown(world, thread["id"], partial + INDICATOR)
    await world.wait_model_request("c2-")
    await eventually(lambda: recorded(world.key_prefix, str(thread["id"]), partial), 15, "the reply's text recorded")
    await sigkill(crashed)
    port = free_port()
    restarted_at = time.monotonic()
    try:
        restarted = await world.start_bot(**env, METRICS_PORT=str(port))
        await wait_shown(world, thread["id"], f"{partial}\n\n{INTERRUPTED_NOTE}", RESTARTED_WITHIN)
        await wait_shown(world, quiet_thread["id"], INTERRUPTED_NOTE, RESTARTED_WITHIN)
        assert time.monotonic() - restarted_at < RESTARTED_WITHIN
        [ended] = world.bot_messages(thread["id"])
        assert ended["id"] == reply["id"]  # the same message, edited
        assert "interrupted" in ended["content"] and "ask again" in ended["content"]
        assert await metric(port, "bot_interrupted_replies_recovered_total", platform="discord") == 2
        assert restarted.stderr.count("interrupted_reply_finished") == 2

        # The question stayed in the thread's history: asking again continues the conversation.
        follow_up = await world.say(thread["id"], alice, "c3-please go on")
        await world.wait_bot_text(thread["id"], "Here is all of it.", after=follow_up["id"], timeout=AFTER_A_CRASH)
        # The model sees the interrupted question, told it went unanswered (not merged with the new one).
        assert user_turns(world, "c3-") == [
            ("user", "c1-tell me everything"),
            ("assistant", "[This answer was not finished: the bot was interrupted]"),
            ("user", "c3-please go on"),
        ]
        await world.stop_bot(check=True)
    except BaseException:
        print(f"--- the process killed ---\n{crashed.stderr}\n--- after the restart ---\n{world.stderr}")
        raise
    finally:
        crashed.cleanup()


@dataclass
class Answers:
    """The model's script per request, chosen by a marker in the last user message (the last
    marker listed wins: a follow-up merged with an earlier question holds both)."""

    scripts: dict[str, Script]
    default: Script

    def __call__(self, body: dict[str, Any]) -> Script:
        last = next((m.get("content", "") for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
        return next((script for marker, script in reversed(self.scripts.items()) if marker in last), self.default)


@pytest_asyncio.fixture(loop_scope="module")
async def slack_model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text="Hello from the fake model.", rate=50)) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def slack(slack_model: FakeModelServer) -> AsyncIterator[Callable[..., SlackHarness]]:
    """A harness maker: a fake Slack workspace of the test's own and the bots started against it."""
    made: list[SlackHarness] = []
    prefix = f"test:faults:{uuid.uuid4().hex[:12]}:"

    def make(**options: Any) -> SlackHarness:
        harness = SlackHarness(FakeSlack(), slack_model.base_url, prefix, **options)
        made.append(harness)
        return harness

    try:
        yield make
    finally:
        for harness in made:
            print(harness.report())  # shown only when the test failed
            for bot in harness.bots:
                if bot.running:
                    await bot.stop()
            await harness.fake.stop()
        delete_keys(prefix)


def recorded(key_prefix: str, thread: str, text: str) -> bool:
    """A reply in progress in a conversation whose key has `thread` has `text` in its record in Redis. What interim
    edits show reaches the record with the process's next heartbeat (0.6 s with FAST_RECOVERY): a crash test kills
    the process once it has, as the product promises at most a heartbeat's text less than was shown."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        records = [json.loads(raw) for raw in client.hvals(f"{key_prefix}replies")]
    finally:
        client.close()
    return any(
        thread in record["thread"] and any(text in message["text"] for message in record["messages"])
        for record in records
    )


async def test_slack_replies_cut_by_a_crash_are_finished_after_the_restart_streams_stopped_and_thinking_cleared(
    slack: Callable[..., SlackHarness], slack_model: FakeModelServer
) -> None:
    harness = slack(streaming="auto", model_timeout=120.0, extra_env=dict(FAST_RECOVERY))
    await harness.fake.start()
    answer = "The first part of the answer, and then"
    partial = "".join(tokenize(answer)[:6])
    slack_model.responder = Answers(
        {
            "s1-": Script(text=answer, rate=20, failure="stall", fail_after=6),
            "s2-": Script(text=answer, rate=20, failure="stall", fail_after=6),
            "s3-": Script(failure="headers_timeout"),
            "s4-": Script(text="Here is all of it.", rate=50),
        },
        Script(text="Hello."),
    )
    crashed = await harness.start_bot()
    dm = harness.new_dm(ALICE)
    streamed, _ = await harness.mention(GENERAL, ALICE, "s1-tell me everything")
    await harness.say(dm, ALICE, "s2-tell me everything in the DM")
    thinking, _ = await harness.mention(GENERAL, ALICE, "s3-think about it")
    fake = harness.fake
    await eventually(
        lambda: [m.visible_text for m in harness.replies(GENERAL, streamed["ts"])] == [partial], 15, "the stream"
    )
    await eventually(
        lambda: [m.visible_text for m in harness.replies(dm)] == [to_mrkdwn(partial) + INDICATOR], 15, "the DM"
    )
    await eventually(lambda: fake.status_of(GENERAL, thinking["ts"]) == "is thinking…", 15, "the thinking status")
    await eventually(lambda: recorded(harness.key_prefix, dm, partial), 15, "the DM reply's text in its record")
    await eventually(lambda: recorded(harness.key_prefix, GENERAL, partial), 15, "the stream's text in its record")
    crashed.process.kill()
    assert await crashed.stop() == -9

    restarted_at = time.monotonic()
    restarted = await harness.start_bot()
    [stream] = harness.replies(GENERAL, streamed["ts"])
    await eventually(lambda: stream.stream_state == "stopped", RESTARTED_WITHIN, "the stream to be stopped")
    assert stream.visible_text == f"{partial}\n\n{INTERRUPTED_NOTE}"
    await eventually(
        lambda: [m.visible_text for m in harness.replies(dm)] == [to_mrkdwn(f"{partial}\n\n{INTERRUPTED_NOTE}")],
        RESTARTED_WITHIN,
        "the DM reply to end with the note",
    )
    await eventually(
        lambda: [m.visible_text for m in harness.replies(GENERAL, thinking["ts"])] == [INTERRUPTED_NOTE],
        RESTARTED_WITHIN,
        "the note under the question that had no answer yet",
    )
    await eventually(lambda: fake.status_of(GENERAL, thinking["ts"]) == "", RESTARTED_WITHIN, "the status to clear")
    assert time.monotonic() - restarted_at < RESTARTED_WITHIN
    await restarted.wait_log("interrupted_reply_finished", count=3)
    assert len(restarted.logs("interrupted_reply_finished")) == 3

    await harness.say(GENERAL, ALICE, "s4-please go on", thread_ts=streamed["ts"])
    await harness.wait_turn(GENERAL, streamed["ts"], timeout=AFTER_A_CRASH)
    asked = [r for r in slack_model.requests if "s4-" in (r.last_user_content() or "")]
    assert [user_contents(r) for r in asked] == [
        ["s1-tell me everything", "[This answer was not finished: the bot was interrupted]", "s4-please go on"]
    ]
    assert [m.visible_text for m in harness.replies(GENERAL, streamed["ts"])][1:] == ["Here is all of it."]
    await harness.close()


async def test_slack_a_live_process_reply_is_never_touched_and_a_dead_ones_is_finished_by_the_live_one(
    slack: Callable[..., SlackHarness], slack_model: FakeModelServer
) -> None:
    harness = slack(streaming="off", extra_env={"REPLY_LEASE_SECONDS": "1", "REPLY_SWEEP_SECONDS": "0.2"})
    await harness.fake.start()
    long_answer = words(48, "slow")  # 6 s at 8 words a second: six times the process lease
    slack_model.responder = Answers(
        {
            "l1-": Script(text=long_answer, rate=8),
            "l2-": Script(text="Half of it and", rate=20, failure="stall", fail_after=3),
        },
        Script(text="Hello."),
    )
    survivor = await harness.start_bot()
    answering = await harness.start_bot()  # the fake delivers events on the newest connection
    long, _ = await harness.mention(GENERAL, ALICE, "l1-a long one please")
    record = await harness.wait_turn(GENERAL, long["ts"], timeout=30)
    assert record["outcome"] == "OK" and answering.logs("turn_finished", thread=record["thread"])
    [reply] = harness.replies(GENERAL, long["ts"])
    assert reply.visible_text == long_answer
    assert not [text for _, text in reply.history if "interrupted" in text]
    assert not survivor.logs("interrupted_reply_finished")

    cut, _ = await harness.mention(GENERAL, ALICE, "l2-and another")
    await eventually(
        lambda: [m.visible_text for m in harness.replies(GENERAL, cut["ts"])] == ["Half of it" + INDICATOR],
        15,
        "the partial reply",
    )
    await asyncio.sleep(0.5)
    answering.process.kill()
    await answering.stop()
    await eventually(
        lambda: [m.visible_text for m in harness.replies(GENERAL, cut["ts"])] == [f"Half of it\n\n{INTERRUPTED_NOTE}"],
        RESTARTED_WITHIN,
        "the live process to finish the dead one's reply",
    )
    await survivor.wait_log("interrupted_reply_finished")
    assert len(survivor.logs("interrupted_reply_finished")) == 1
    await harness.stop_bot(survivor)


# -- 2. graceful shutdown ---------------------------------------------------------------------------------


async def test_discord_on_sigterm_new_questions_hear_restarting_short_replies_finish_long_ones_are_interrupted(
    own_world: DiscordWorld,
) -> None:
    world, grace = own_world, 6.0
    channels = [world.add_channel(name) for name in ("long", "short", "late")]
    alice = world.add_user("alice")
    long_answer, short_answer = words(300, "long"), words(12, "short")
    world.answer("g1-", Script(text=long_answer, rate=5))  # a minute of text
    world.answer("g2-", Script(text=short_answer, rate=8))  # 1.5 s
    bot = await world.start_bot(SHUTDOWN_GRACE_SECONDS=str(grace))
    long_thread = await world.wait_thread(await world.mention(channels[0], alice, "g1-write a lot"))
    await world.fake.wait_for(lambda: world.bot_messages(long_thread["id"]), 10)
    short_thread = await world.wait_thread(await world.mention(channels[1], alice, "g2-write a little"))
    await world.fake.wait_for(lambda: world.bot_messages(short_thread["id"]), 10)
    stopped_at = time.monotonic()
    bot.process.send_signal(signal.SIGTERM)
    await world.fake.wait_for(lambda: "shutting_down" in bot.stderr, 5)
    late = await world.mention(channels[2], alice, "g3-one more question")
    late_thread = await world.wait_thread(late)
    await world.wait_bot_text(late_thread["id"], RESTARTING)
    await world.wait_bot_text(short_thread["id"], short_answer, timeout=grace)  # within the grace
    code = await asyncio.wait_for(bot.process.wait(), grace + 15)
    waited = time.monotonic() - stopped_at
    stderr = bot.stderr
    assert code == 0, stderr
    assert grace <= waited < grace + 15, waited
    assert world.model_requests("g3-") == []
    [long_reply] = world.bot_messages(long_thread["id"])
    text, _, note = long_reply["content"].partition("\n\n")
    assert note == INTERRUPTED_NOTE and text and long_answer.startswith(text), long_reply["content"]
    assert "replies_interrupted=True" in stderr and "Traceback" not in stderr
    await world.stop_bot(check=True)


async def test_slack_on_sigterm_a_new_dm_hears_restarting_and_a_stream_still_running_is_stopped_with_the_note(
    slack: Callable[..., SlackHarness], slack_model: FakeModelServer
) -> None:
    grace = 3.0
    harness = slack(streaming="auto", extra_env={"SHUTDOWN_GRACE_SECONDS": str(grace)})
    await harness.fake.start()
    long_answer = words(300, "long")
    slack_model.responder = Answers({"t1-": Script(text=long_answer, rate=5)}, Script(text="Hello."))
    bot = await harness.start_bot()
    mention, _ = await harness.mention(GENERAL, ALICE, "t1-write a lot")
    await eventually(lambda: bool(harness.replies(GENERAL, mention["ts"])), 10, "the stream to start")
    bot.process.send_signal(signal.SIGTERM)
    await bot.wait_log("shutting_down", timeout=5)
    dm = harness.new_dm(ALICE)
    await harness.say(dm, ALICE, "t2-one more question")
    await eventually(lambda: [m.visible_text for m in harness.replies(dm)] == [to_mrkdwn(RESTARTING)], 10, "restarting")
    assert await asyncio.wait_for(bot.process.wait(), grace + 15) == 0
    assert await bot.stop() == 0
    assert not [r for r in slack_model.requests if "t2-" in (r.last_user_content() or "")]
    [stream] = harness.replies(GENERAL, mention["ts"])
    text, _, note = stream.visible_text.partition("\n\n")
    assert stream.stream_state == "stopped" and note == INTERRUPTED_NOTE and text and long_answer.startswith(text)
    assert not [line for line in bot.lines if "Traceback" in line]


# -- 3. Redis outages -----------------------------------------------------------------------------------------


async def test_an_unreachable_redis_at_start_ends_start_up_with_one_line_naming_redis_url_password_hidden() -> None:
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    env = clean_env(DISCORD_TOKEN="not.a.token", REDIS_URL=url, LOG_LEVEL="info")
    started = time.monotonic()
    bot = await BotProcess.start("discord", env=env)
    try:
        code = await asyncio.wait_for(bot.process.wait(), 60)
        took, stderr = time.monotonic() - started, bot.stderr
    finally:
        bot.cleanup()
    assert code != 0
    assert took >= 4.5, "start-up gives Redis a few seconds before giving up"
    lines = [line for line in stderr.splitlines() if "REDIS_URL" in line]
    assert len(lines) == 1, stderr
    assert "redis://***@127.0.0.1" in lines[0] and "hunter2" not in stderr


async def test_discord_while_redis_is_down_people_are_told_the_memory_is_unreachable_and_answered_once_it_is_back(
    own_world: DiscordWorld, own_redis: OwnRedis
) -> None:
    world = own_world
    first, second = world.add_channel("first"), world.add_channel("second")
    alice = world.add_user("alice")
    world.answer("r1-", Script(text="Noted: 7.", rate=50))
    world.answer("r4-", Script(text="It was 7.", rate=50))
    port = free_port()
    await world.start_bot(REDIS_URL=own_redis.url, METRICS_PORT=str(port))
    thread = await world.wait_thread(await world.mention(first, alice, "r1-remember 7"))
    await world.wait_bot_text(thread["id"], "Noted: 7.")
    await wait_health(port, 200)

    own_redis.stop()
    assert "redis" in await wait_health(port, 503)
    during = await world.say(thread["id"], alice, "r2-what was it?")
    await world.wait_bot_text(thread["id"], MEMORY_DOWN, after=during["id"], timeout=30)
    new_thread = await world.wait_thread(await world.mention(second, alice, "r3-a new question"))
    await world.wait_bot_text(new_thread["id"], MEMORY_DOWN, timeout=30)
    assert world.model_requests("r2-") == [] and world.model_requests("r3-") == []
    assert world.bot is not None and world.bot.running
    assert await metric(port, "bot_redis_errors_total") > 0

    own_redis.start()  # the same port and data directory
    after = await world.say(thread["id"], alice, "r4-and now?")
    await world.wait_bot_text(thread["id"], "It was 7.", after=after["id"], timeout=30)
    assert user_turns(world, "r4-") == [("user", "r1-remember 7"), ("assistant", "Noted: 7."), ("user", "r4-and now?")]
    await wait_health(port, 200)
    await world.stop_bot(check=True)


async def test_slack_while_redis_is_down_mentions_dms_and_thread_replies_are_told_and_answered_once_it_is_back(
    slack: Callable[..., SlackHarness], slack_model: FakeModelServer, own_redis: OwnRedis
) -> None:
    port = free_port()
    harness = slack(streaming="off", extra_env={"REDIS_URL": own_redis.url, "METRICS_PORT": str(port)})
    await harness.fake.start()
    slack_model.responder = Answers(
        {"m1-": Script(text="Noted: 7."), "m5-": Script(text="It was 7.")}, Script(text="?")
    )
    await harness.start_bot()
    first, _ = await harness.mention(GENERAL, ALICE, "m1-remember 7")
    await harness.wait_turn(GENERAL, first["ts"])
    asked = len(slack_model.requests)

    own_redis.stop()
    await wait_health(port, 503)
    mention, _ = await harness.mention(GENERAL, ALICE, "m2-a new question")
    dm = harness.new_dm(ALICE)
    await harness.say(dm, ALICE, "m3-a DM")
    await harness.say(GENERAL, ALICE, "m4-a reply in the thread", thread_ts=first["ts"])
    told = to_mrkdwn(MEMORY_DOWN)
    await eventually(
        lambda: [m.visible_text for m in harness.replies(GENERAL, mention["ts"])] == [told], 30, "the mention"
    )
    await eventually(lambda: [m.visible_text for m in harness.replies(dm)] == [told], 30, "the DM")
    await eventually(
        lambda: [m.visible_text for m in harness.replies(GENERAL, first["ts"])][1:] == [told], 30, "the thread"
    )
    assert len(slack_model.requests) == asked

    own_redis.start()
    await harness.say(GENERAL, ALICE, "m5-and now?", thread_ts=first["ts"])
    await harness.wait_turn(GENERAL, first["ts"], count=2, timeout=30)
    assert user_contents(slack_model.requests[-1]) == ["m1-remember 7", "Noted: 7.", "m5-and now?"]
    await wait_health(port, 200)
    await harness.close()


# -- 4-7. one Discord bot for model outages, input, ordering, metrics ------------------------------------------

OUTAGES = {
    # name: (script, the partial text kept, the reason given)
    "401": (Script(failure="http_401"), "", FailureKind.AUTH),
    "429": (Script(failure="http_429", retry_after=0), "", FailureKind.RATE_LIMITED),
    "503": (Script(failure="http_503", retry_after=0), "", FailureKind.LOADING),
    "500": (Script(failure="http_500"), "", FailureKind.UNAVAILABLE),
    "timeout": (Script(failure="headers_timeout"), "", FailureKind.TIMEOUT),
    "stall": (
        Script(text="Partly written and then", rate=20, failure="stall", fail_after=3),
        "Partly written and",
        FailureKind.STALLED,
    ),
    "sse-error": (
        Script(text="Partly written and then", rate=20, failure="sse_error", fail_after=3),
        "Partly written and",
        FailureKind.UNAVAILABLE,
    ),
    "html": (Script(failure="html_200"), "", FailureKind.BAD_RESPONSE),
}
CHANNELS = (*(f"outage-{name}" for name in OUTAGES), "loading", "empty", "blank", "huge", "clean", "pair", "metrics")


@dataclass
class Shared:
    world: DiscordWorld
    channels: dict[str, dict[str, Any]]
    alice: FakeUser
    port: int
    people: dict[str, FakeUser] = field(default_factory=dict)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared() -> AsyncIterator[Shared]:
    async with DiscordWorld.open() as world:
        channels = {name: world.add_channel(name) for name in CHANNELS}
        alice, port = world.add_user("alice"), free_port()
        await world.start_bot(
            METRICS_PORT=str(port),
            MODEL_TIMEOUT_SECONDS="2",
            MODEL_LOADING_RETRIES="1",
            MODEL_LOADING_BACKOFF_SECONDS="0.1",
            MODEL_CIRCUIT_FAILURES="100",
        )
        yield Shared(world, channels, alice, port)
        await world.stop_bot(check=True)


@pytest.fixture
def world(shared: Shared) -> Iterator[DiscordWorld]:
    """The shared world; the bot's log lines written during the test are shown if it fails."""
    with log_shown(shared.world) as world:
        yield world


@pytest.mark.parametrize("name", list(OUTAGES))
async def test_discord_a_failing_model_leaves_the_partial_text_and_a_reason_never_the_typing_indicator(
    shared: Shared, world: DiscordWorld, name: str
) -> None:
    script, partial, kind = OUTAGES[name]
    world.answer(f"o-{name}-", script)
    errors = await metric(shared.port, "bot_model_errors_total", kind=kind.name)
    thread = await world.wait_thread(
        await world.mention(shared.channels[f"outage-{name}"], shared.alice, f"o-{name}-hi")
    )
    expected = f"{partial}\n\n{reason(kind)}" if partial else reason(kind)
    [reply] = await world.wait_bot_text(thread["id"], lambda shown: WARNING in shown, timeout=15)
    assert reply["content"] == expected
    assert "▌" not in reply["content"]
    await wait_turns_logged(world, thread["id"])
    ended_at = world.fake.edit_history(reply["id"])[-1][0]
    assert not [at for at, where in world.fake.typing if where == int(thread["id"]) and at > ended_at]  # no "typing…"
    assert await metric(shared.port, "bot_model_errors_total", kind=kind.name) == errors + 1
    assert await metric(shared.port, "bot_turns_total", platform="discord", outcome=kind.name) >= 1
    if name == "503":  # a model still loading is asked again before the person is told
        assert len(world.model_requests(f"o-{name}-")) == 2


async def test_discord_a_model_that_is_loading_for_a_moment_is_asked_again_and_the_answer_arrives(
    shared: Shared, world: DiscordWorld
) -> None:
    world.answer("load-", Script(text="Loaded and answering.", rate=50))
    world.model.fail_503_times = 1
    thread = await world.wait_thread(await world.mention(shared.channels["loading"], shared.alice, "load-are you up?"))
    await world.wait_bot_text(thread["id"], "Loaded and answering.")
    assert [r.status for r in world.model_requests("load-")] == [503, 200]


@pytest.mark.parametrize(
    ("channel", "text"), [("empty", ""), ("blank", " \u200b\u2060\u200d\t\u200b ")], ids=["empty", "invisible"]
)
async def test_discord_a_mention_with_nothing_visible_gets_a_question_back_without_asking_the_model(
    shared: Shared, world: DiscordWorld, channel: str, text: str
) -> None:
    asked = len(world.model.requests)
    thread = await world.wait_thread(await world.mention(shared.channels[channel], shared.alice, text))
    await world.wait_bot_text(thread["id"], NO_QUESTION)
    assert len(world.model.requests) == asked


async def test_discord_a_text_file_of_100000_characters_is_read_as_far_as_it_fits_and_the_reply_says_so(
    shared: Shared, world: DiscordWorld
) -> None:
    world.answer("h1-", Script(text="Summarised.", rate=50))
    world.answer("h2-", Script(text="Hello again.", rate=50))
    huge = ("word " * 20_000).encode()  # 100,000 characters, in a text file (a message holds 2,000)
    message = await world.fake.send_user_message(
        shared.channels["huge"]["id"],
        shared.alice,
        "h1-summarise this",
        mentions_bot=True,
        files=[("big.txt", "text/plain", huge)],
    )
    thread = await world.wait_thread(message)
    await world.wait_bot_text(
        thread["id"],
        lambda text: (
            text.startswith("Summarised.") and "big.txt: read the first" in text and "the rest was left out" in text
        ),
        timeout=15,
    )
    [request] = world.model_requests("h1-")
    asked = request.last_user_content() or ""
    assert "word word" in asked and len(asked) < 100_000  # what fits, cut before the model is asked
    follow_up = await world.say(thread["id"], shared.alice, "h2-hello")
    await world.wait_bot_text(thread["id"], "Hello again.", after=follow_up["id"])
    turns = user_turns(world, "h2-")
    assert [role for role, _ in turns] == ["user", "assistant", "user"]  # the question as read, kept for follow-ups
    assert turns[0][1] == asked and turns[1][1] == "Summarised."


async def test_discord_control_and_invisible_characters_never_reach_the_model(
    shared: Shared, world: DiscordWorld
) -> None:
    world.answer("k1-", Script(text="Four.", rate=50))
    sneaky = "k1- Wh\u200bat is\x00 2+2?\u202e\x1b\u2066"
    thread = await world.wait_thread(await world.mention(shared.channels["clean"], shared.alice, sneaky))
    await world.wait_bot_text(thread["id"], "Four.")
    assert user_turns(world, "k1-") == [("user", "k1- What is 2+2?")]


async def test_discord_two_messages_at_once_in_a_thread_are_answered_one_after_the_other_the_second_seeing_the_first(
    shared: Shared, world: DiscordWorld
) -> None:
    answers = {"p2-first": words(16, "alpha"), "p3-second": words(16, "beta")}  # 2 s each
    world.answer("p1-", Script(text="Started.", rate=50))
    for question, answer in answers.items():
        world.answer(question, Script(text=answer, rate=8))
    thread = await world.wait_thread(await world.mention(shared.channels["pair"], shared.alice, "p1-start"))
    await world.wait_bot_text(thread["id"], "Started.")
    sent = [await world.say(thread["id"], shared.alice, question) for question in answers]
    await world.wait_bot_text(
        thread["id"], lambda shown: all(a in shown for a in answers.values()), after=sent[0]["id"], timeout=20
    )
    first, second = sorted((world.model_requests(q)[0] for q in answers), key=lambda request: request.received_at)
    first_question, second_question = first.last_user_content(), second.last_user_content()
    assert first.last_token_at is not None and second.received_at >= first.last_token_at  # one after the other
    assert second.body["messages"][-3:] == [  # the history in order: the first answer, then the second question
        {"role": "user", "content": first_question},
        {"role": "assistant", "content": answers[str(first_question)]},
        {"role": "user", "content": second_question},
    ]
    shown = [m["content"] for m in world.bot_messages(thread["id"], after=sent[0]["id"])]
    assert shown == [answers[str(first_question)], answers[str(second_question)]]
    await wait_turns_logged(world, thread["id"], count=3)


async def test_discord_metrics_health_and_logs_show_each_turn_without_what_people_wrote(
    shared: Shared, world: DiscordWorld
) -> None:
    port, mark = shared.port, world.stderr_mark()
    await wait_metric(port, "bot_replies_in_flight", 0, platform="discord")  # earlier tests' replies all ended
    _, exposition = await http_get(port, "/metrics")
    for name in (
        "bot_turns_total",
        "bot_first_text_seconds",
        "bot_final_text_seconds",
        "bot_model_first_token_seconds",
        "bot_tokens_streamed_total",
        "bot_platform_rate_limited_total",
        "bot_model_errors_total",
        "bot_redis_errors_total",
        "bot_replies_in_flight",
        "bot_interrupted_replies_recovered_total",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in exposition, name
    assert await wait_health(port, 200) == '{"status": "ok"}'
    before = {
        name: await metric(port, name, platform="discord")
        for name in (
            "bot_turns_total",
            "bot_first_text_seconds_count",
            "bot_final_text_seconds_count",
            "bot_platform_rate_limited_total",
        )
    }
    tokens, first_tokens = (
        await metric(port, "bot_tokens_streamed_total"),
        await metric(port, "bot_model_first_token_seconds_count"),
    )
    answer = "Periwinkle is a pale blue with a hint of violet, named after the flower of the same name."
    world.answer("m1-", Script(text=answer, rate=8))  # 2 s
    world.fake.inject_ratelimit(MESSAGE_CREATE, count=1, retry_after=0.2)
    thread = await world.wait_thread(await world.mention(shared.channels["metrics"], shared.alice, "m1-periwinkle?"))
    await world.fake.wait_for(lambda: world.bot_messages(thread["id"]), 10)
    assert await metric(port, "bot_replies_in_flight", platform="discord") == 1
    await world.wait_bot_text(thread["id"], answer)
    await wait_turns_logged(world, thread["id"])
    assert await metric(port, "bot_replies_in_flight", platform="discord") == 0
    assert await metric(port, "bot_turns_total", platform="discord", outcome="OK") >= 1
    for name, value in before.items():
        assert await metric(port, name, platform="discord") == value + 1, name
    assert await metric(port, "bot_tokens_streamed_total") == tokens + len(tokenize(answer))
    assert await metric(port, "bot_model_first_token_seconds_count") == first_tokens + 1
    logged = world.stderr_since(mark)
    assert logged.count("turn_finished") == 1
    assert "periwinkle" not in logged.lower()  # neither the question nor the answer


# -- 8. circuit breaker and quotas: a bot with low limits ------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def strict() -> AsyncIterator[Shared]:
    async with DiscordWorld.open() as world:
        channels = {name: world.add_channel(name) for name in ("b0", "b1", "b2", "b3", "b4", "quota")}
        # The breaker's turns come from five people, one each, so that no quota is reached.
        people = {name: world.add_user(name) for name in ("p0", "p1", "p2", "p3", "p4", "quick", "other", "third")}
        await world.start_bot(
            MODEL_CIRCUIT_FAILURES="3",
            MODEL_CIRCUIT_OPEN_SECONDS="6",
            USER_TURNS_PER_MINUTE="3",
            CHANNEL_TURNS_PER_MINUTE="4",
        )
        yield Shared(world, channels, people["quick"], 0, people)
        await world.stop_bot(check=True)


async def test_discord_after_failures_in_a_row_people_are_told_at_once_until_the_model_answers_again(
    strict: Shared,
) -> None:
    world, failing = strict.world, reason(FailureKind.UNAVAILABLE)
    mark = world.stderr_mark()
    people = [strict.people[f"p{i}"] for i in range(5)]
    world.answer("b-fail", Script(failure="http_500"))
    world.answer("b-ok", Script(text="Back again.", rate=50))
    for i in range(3):
        thread = await world.wait_thread(await world.mention(strict.channels[f"b{i}"], people[i], f"b-fail {i}"))
        await world.wait_bot_text(thread["id"], failing)
    asked = len(world.model_requests("b-fail"))
    await world.fake.wait_for(lambda: "model_circuit_open" in world.stderr_since(mark), 5)
    opened = time.monotonic()
    thread = await world.wait_thread(await world.mention(strict.channels["b3"], people[3], "b-fail while open"))
    await world.wait_bot_text(thread["id"], failing)  # the reason, without asking the model
    assert len(world.model_requests("b-fail")) == asked
    await asyncio.sleep(max(0.0, 6.5 - (time.monotonic() - opened)))
    thread = await world.wait_thread(await world.mention(strict.channels["b4"], people[4], "b-ok are you back?"))
    await world.wait_bot_text(thread["id"], "Back again.")
    await world.fake.wait_for(lambda: "model_circuit_closed" in world.stderr_since(mark), 5)
    logged = world.stderr_since(mark)
    assert logged.count("model_circuit_open") == 1 and logged.count("model_circuit_closed") == 1


async def test_discord_people_and_channels_over_their_quota_are_told_how_long_to_wait_and_nothing_is_stored(
    strict: Shared,
) -> None:
    world, channel = strict.world, strict.channels["quota"]
    quick, other, third = (strict.people[name] for name in ("quick", "other", "third"))
    world.answer("quota", Script(text="Answered.", rate=50))
    thread = await world.wait_thread(await world.mention(channel, quick, "quota1"))
    await world.wait_bot_text(thread["id"], "Answered.")
    for text in ("quota2", "quota3"):
        message = await world.say(thread["id"], quick, text)
        await world.wait_bot_text(thread["id"], "Answered.", after=message["id"])
    over = await world.say(thread["id"], quick, "quota4 one too many")
    [told] = await world.wait_bot_text(thread["id"], lambda shown: WARNING in shown, after=over["id"])
    assert told["content"].startswith(
        f"{WARNING} You're sending messages faster than I can answer (3 a minute). Please wait "
    )
    assert world.model_requests("quota4") == []
    message = await world.say(thread["id"], other, "quota5 my turn")
    await world.wait_bot_text(thread["id"], "Answered.", after=message["id"])
    [request] = world.model_requests("quota5")
    assert not [m for m in request.body["messages"] if "quota4" in m["content"]]  # never stored
    message = await world.say(thread["id"], third, "quota6 and mine")
    [told] = await world.wait_bot_text(thread["id"], lambda shown: WARNING in shown, after=message["id"])
    assert told["content"].startswith(
        f"{WARNING} This channel is sending messages faster than I can answer (4 a minute)."
    )
    assert world.model_requests("quota6") == []
