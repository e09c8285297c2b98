"""End to end: the real `python -m bot slack` process against the loopback Slack and model fakes.

What is asserted is what a Slack user would see: the fake's stored messages and their edit
history, ephemerals, statuses and acks, plus the calls the bot made and the model requests.

Bot processes are shared where isolation allows (one per streaming mode in Socket Mode, one
in HTTP mode); each test gets a fresh workspace id on the fake, so Slack's per-workspace rate
limits and the bot's per-workspace write budgets start afresh, and its own threads.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from slack_sdk.web.async_client import AsyncWebClient

from adapters.shared.ratelimit import RateLimits
from adapters.slack_bot.reply.stream import StreamReply
from adapters.slack_bot.reply.surfaces import Place, WorkspaceBudgets
from adapters.slack_bot.reply.text import to_mrkdwn
from bot.state.redis_client import close, connect
from fakes import documents
from fakes.harness.processes import REDIS_URL
from fakes.harness.slack_world import (
    INDICATOR,
    SIGNING_SECRET,
    SlackHarness,
    eventually,
    finished,
    started,
    user_contents,
)
from fakes.model_server import FakeModelServer, RecordedRequest, Script
from fakes.slack import FakeSlack, StoredMessage

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE = FakeSlack.DEFAULT_USER  # display name "alice"
GENERAL = FakeSlack.DEFAULT_CHANNEL
OTHER = "C0OTHER01"  # allowed too
SECRET = "C0SECRET1"  # not in SLACK_ALLOWED_CHANNEL_IDS
NO_STREAMS = "C0NOSTRM1"  # chat.startStream answers channel_type_not_supported
BLOCKED = "U0BLOCKED"
BLOCKED_DM = "D0BLOCKED"
ALLOWED = (GENERAL, OTHER, NO_STREAMS)
ACK_LIMIT = 1.0  # "well within" Slack's 3 s
LIVE_MENTION = re.compile(r"<[!@#]")
FENCE_LINE = re.compile(r"^\s*```", re.MULTILINE)


def sentence(words: int, tag: str = "word") -> str:
    """Plain words whose mrkdwn is the same text (no Markdown, no escapes)."""
    return " ".join(f"{tag}{i}" for i in range(words)) + "."


def always(script: Script) -> Callable[[dict[str, Any]], Script]:
    return lambda body: script


# -- shared processes ---------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text="Hello from the fake model.")) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def prefix() -> AsyncIterator[str]:
    """This module's own Redis key prefix; its keys (and only they) are deleted afterwards."""
    key_prefix = f"test:slack:{uuid.uuid4().hex[:12]}:"
    yield key_prefix
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{key_prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def new_fake() -> FakeSlack:
    fake = FakeSlack()
    fake.add_channel(OTHER, "other")
    fake.add_channel(SECRET, "secret")
    fake.add_channel(NO_STREAMS, "no-streams", can_stream=False)
    fake.add_user(BLOCKED, "mallory")
    fake.add_channel(BLOCKED_DM, BLOCKED, is_im=True, user=BLOCKED)
    return fake


def shared_harness(model: FakeModelServer, prefix: str, **options: Any) -> SlackHarness:
    return SlackHarness(
        new_fake(), model.base_url, prefix, allowed_channels=ALLOWED, blocked_users=(BLOCKED,), **options
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def off_harness(model: FakeModelServer, prefix: str) -> AsyncIterator[SlackHarness]:
    harness = await started(shared_harness(model, prefix, streaming="off"))
    yield harness
    await finished(harness)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def auto_harness(model: FakeModelServer, prefix: str) -> AsyncIterator[SlackHarness]:
    harness = await started(shared_harness(model, prefix, streaming="auto"))
    yield harness
    await finished(harness)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http_harness(model: FakeModelServer, prefix: str) -> AsyncIterator[SlackHarness]:
    harness = await started(shared_harness(model, prefix, mode="http", streaming="off"))
    yield harness
    await finished(harness)


# -- one test's view ----------------------------------------------------------------------


@dataclass
class Scene:
    """A test's slice of a shared harness: a fresh workspace and marks of what came before."""

    harness: SlackHarness
    model: FakeModelServer
    calls_at: int = 0
    requests_at: int = 0
    deliveries_at: int = 0
    lines_at: dict[str, int] = field(default_factory=dict)

    def begin(self) -> Scene:
        self.harness.new_workspace()
        self.calls_at = len(self.harness.fake.calls)
        self.requests_at = len(self.model.requests)
        self.deliveries_at = len(self.harness.fake.deliveries)
        self.lines_at = {bot.name: len(bot.lines) for bot in self.harness.bots}
        return self

    @property
    def fake(self) -> FakeSlack:
        return self.harness.fake

    @property
    def streaming(self) -> str:
        return self.harness.streaming

    def answer_with(self, script: Script | Callable[[dict[str, Any]], Script]) -> None:
        self.model.responder = always(script) if isinstance(script, Script) else script

    def requests(self) -> list[RecordedRequest]:
        return self.model.requests[self.requests_at :]

    def calls(self, *methods: str) -> list[Any]:
        return [c for c in self.fake.calls[self.calls_at :] if not methods or c.method in methods]

    def report(self) -> str:
        parts = []
        for bot in self.harness.bots:
            lines = bot.lines[self.lines_at.get(bot.name, 0) :]
            parts.append(f"===== {bot.name} (pid {bot.pid}) stderr during this test =====\n{''.join(lines)}")
        return "\n".join(parts)

    async def turn(self, channel: str, thread_ts: str | None, count: int = 1, timeout: float = 15.0) -> dict[str, Any]:
        return await self.harness.wait_turn(channel, thread_ts, count=count, timeout=timeout)

    async def settle(self) -> None:
        """Wait for every model request of this test to finish (so none leaks into the next)."""
        await eventually(lambda: all(r.outcome != "pending" for r in self.requests()), 15, "model requests to end")

    def check_acks(self) -> None:
        """Every envelope delivered during the test was acked well within Slack's 3 s."""
        for delivery, delay in self.harness.ack_delays(self.deliveries_at):
            assert delay is not None, f"{delivery.type} envelope {delivery.envelope_id} never acked"
            assert delay <= ACK_LIMIT, f"{delivery.type} envelope acked after {delay:.3f} s"


async def scene_for(harness: SlackHarness, model: FakeModelServer) -> AsyncIterator[Scene]:
    scene = Scene(harness, model).begin()
    model.responder = None
    try:
        yield scene
        await scene.settle()
        scene.check_acks()
        for bot in harness.bots:
            assert bot.running or bot.returncode == 0, f"{bot.name} died\n{scene.report()}"
    finally:
        model.responder = None
        print(scene.report())  # pytest shows it only when the test failed


@pytest.fixture(params=["off", "auto"])
def either_harness(request: pytest.FixtureRequest) -> SlackHarness:
    """Once per streaming mode: chat.update ("off") and native streams ("auto")."""
    harness: SlackHarness = request.getfixturevalue(f"{request.param}_harness")
    return harness


@pytest_asyncio.fixture(loop_scope="module")
async def scene(either_harness: SlackHarness, model: FakeModelServer) -> AsyncIterator[Scene]:
    async for value in scene_for(either_harness, model):
        yield value


@pytest_asyncio.fixture(loop_scope="module")
async def off(off_harness: SlackHarness, model: FakeModelServer) -> AsyncIterator[Scene]:
    async for value in scene_for(off_harness, model):
        yield value


@pytest_asyncio.fixture(loop_scope="module")
async def auto(auto_harness: SlackHarness, model: FakeModelServer) -> AsyncIterator[Scene]:
    async for value in scene_for(auto_harness, model):
        yield value


@pytest_asyncio.fixture(loop_scope="module")
async def http(http_harness: SlackHarness, model: FakeModelServer) -> AsyncIterator[Scene]:
    async for value in scene_for(http_harness, model):
        yield value


@pytest_asyncio.fixture(loop_scope="module")
async def own_fake() -> AsyncIterator[FakeSlack]:
    async with new_fake() as fake:
        yield fake


@pytest_asyncio.fixture(loop_scope="module")
async def own(own_fake: FakeSlack, model: FakeModelServer, prefix: str) -> AsyncIterator[SlackHarness]:
    """A fake Slack of the test's own, for tests that start (and stop) bot processes themselves."""
    harness = SlackHarness(own_fake, model.base_url, prefix, streaming="off")
    model.responder = None
    try:
        yield harness
        await harness.close()  # asserts a clean exit of every bot still running
    finally:
        model.responder = None
        print(harness.report())  # pytest shows it only when the test failed
        for bot in harness.bots:
            if bot.running:
                await bot.stop()


# -- assertions about what people see ---------------------------------------------------


def final_of(message: StoredMessage) -> str:
    return message.history[-1][1]


def shown_as(scene: Scene, markdown: str) -> str:
    """The text a reply of `markdown` ends with in this mode."""
    return to_mrkdwn(markdown) if scene.streaming == "off" else markdown


def assert_progressive(scene: Scene, reply: StoredMessage, expected: str, request: RecordedRequest) -> None:
    states = [text for _, text in reply.history]
    assert len(states) >= 2, f"the reply appeared in one piece: {states}"
    assert states[-1] == expected
    assert INDICATOR not in states[-1]
    interim = states[0]
    assert interim != expected and len(interim.removesuffix(INDICATOR)) < len(expected)
    if scene.streaming == "off":
        assert interim.endswith(INDICATOR), interim
        assert expected.startswith(interim.removesuffix(INDICATOR).rstrip())
    else:
        assert expected.startswith(interim)
    # Shown while the model was still writing, not after it ended.
    assert request.last_token_at is not None and reply.history[0][0] < request.last_token_at


# -- 1, 2: mentions, threads, progressive display, acks -----------------------------------


async def test_mention_is_answered_progressively_in_its_thread_and_the_thread_continues(scene: Scene) -> None:
    first, second = sentence(30, "alpha"), sentence(12, "beta")
    scene.answer_with(lambda body: Script(text=second if len(body["messages"]) > 2 else first, rate=15))

    mention, _envelope = await scene.harness.mention(GENERAL, ALICE, "hello there, explain things")
    await scene.turn(GENERAL, mention["ts"])
    [reply] = scene.harness.replies(GENERAL, mention["ts"])
    assert reply.thread_ts == mention["ts"] and reply.is_bot
    assert_progressive(scene, reply, shown_as(scene, first), scene.requests()[0])
    if scene.streaming == "auto":
        assert scene.calls("chat.startStream") and not scene.calls("chat.postMessage")
    else:
        assert scene.calls("chat.postMessage") and scene.calls("chat.update") and not scene.calls("chat.startStream")
    # The reply's writes reuse one connection: over a network each new one would first wait for
    # a TCP and TLS handshake with Slack, and the text would show that much later.
    writes = scene.calls("chat.postMessage", "chat.update", "chat.startStream", "chat.appendStream", "chat.stopStream")
    assert len(writes) >= 3 and len({call.connection for call in writes}) == 1, [c.connection for c in writes]

    # A follow-up in the thread, without a mention, continues the same conversation.
    await scene.harness.say(GENERAL, ALICE, "and then?", thread_ts=mention["ts"])
    await scene.turn(GENERAL, mention["ts"], count=2)
    replies = scene.harness.replies(GENERAL, mention["ts"])
    assert [final_of(m) for m in replies] == [shown_as(scene, first), shown_as(scene, second)]
    assert all(m.thread_ts == mention["ts"] for m in replies)
    assert user_contents(scene.requests()[1]) == ["hello there, explain things", first, "and then?"]
    # Top-level chatter without a mention is not answered; a mention after it is (so the chatter reached the bot).
    chatter, _ = await scene.harness.say(GENERAL, ALICE, "lunch anyone?")
    later, _ = await scene.harness.mention(GENERAL, ALICE, "one more thing")
    await scene.turn(GENERAL, later["ts"])
    assert [r.last_user_content() for r in scene.requests()[2:]] == ["one more thing"]
    assert scene.harness.replies(GENERAL, chatter["ts"]) == []


async def test_every_envelope_is_acked_quickly_and_before_the_model_is_called(off: Scene) -> None:
    off.answer_with(Script(text=sentence(5), rate=20, first_token_delay=0.2))
    mentions = [await off.harness.mention(GENERAL, ALICE, f"question {i}") for i in range(3)]
    for event, _ in mentions:
        await off.turn(GENERAL, event["ts"])
    requests = {r.last_user_content(): r for r in off.requests()}
    for i, (_event, envelope) in enumerate(mentions):
        [delivery] = [d for d in off.fake.deliveries if d.envelope_id == envelope]
        acked = off.fake.acks[envelope]
        assert acked - delivery.sent_at < ACK_LIMIT
        assert acked <= requests[f"question {i}"].received_at, "acked only after the model was called"


# -- 3: direct messages --------------------------------------------------------------------


async def test_direct_messages_form_one_conversation_with_threads_of_their_own_and_reset(scene: Scene) -> None:
    scene.answer_with(lambda body: Script(text=f"Reply {len(body['messages'])}.", rate=20))
    harness = scene.harness
    dm = harness.new_dm(ALICE)

    first, _ = await harness.say(dm, ALICE, "hi in a dm")
    await scene.turn(dm, None)
    _second, _ = await harness.say(dm, ALICE, "second dm")
    await scene.turn(dm, None, count=2)
    top = harness.replies(dm)
    assert len(top) == 2 and all(m.thread_ts is None for m in top), "dm replies go to the top level"
    assert user_contents(scene.requests()[1]) == ["hi in a dm", "Reply 2.", "second dm"]

    # A reply in a dm thread is answered in that thread, and the thread goes on.
    await harness.say(dm, ALICE, "thread question", thread_ts=first["ts"])
    await scene.turn(dm, first["ts"])
    await harness.say(dm, ALICE, "thread follow-up", thread_ts=first["ts"])
    await scene.turn(dm, first["ts"], count=2)
    in_thread = harness.replies(dm, first["ts"])
    assert len(in_thread) == 2 and all(m.thread_ts == first["ts"] for m in in_thread)
    assert user_contents(scene.requests()[3]) == ["thread question", "Reply 2.", "thread follow-up"]
    assert len(harness.replies(dm)) == 2, "thread replies stay out of the top level"

    envelope = await scene.fake.send_slash_command("/reset", "", ALICE, dm)
    await scene.fake.wait_ack(envelope)
    ack = scene.fake.ack_payloads[envelope] or {}
    assert "forgotten" in ack.get("text", "") and ack.get("response_type") != "in_channel"
    await harness.say(dm, ALICE, "fresh start")
    await scene.turn(dm, None, count=3)
    assert user_contents(scene.requests()[-1]) == ["fresh start"]


# -- 4: slash commands ---------------------------------------------------------------------


async def test_ask_posts_the_question_and_streams_the_answer_in_its_thread(scene: Scene) -> None:
    answer = sentence(20, "gamma")
    scene.answer_with(Script(text=answer, rate=15))
    envelope = await scene.fake.send_slash_command("/ask", "What is <b>2+2</b> & why?", ALICE, OTHER)
    await scene.fake.wait_ack(envelope)
    assert not (scene.fake.ack_payloads[envelope] or {}).get("text")
    await eventually(lambda: bool(scene.harness.replies(OTHER)), 5, "the question to be posted")
    [question] = scene.harness.replies(OTHER)
    assert question.text == f"<@{ALICE}> asked: What is &lt;b&gt;2+2&lt;/b&gt; &amp; why?"
    await scene.turn(OTHER, question.ts)
    [reply] = scene.harness.replies(OTHER, question.ts)
    assert_progressive(scene, reply, shown_as(scene, answer), scene.requests()[0])
    assert user_contents(scene.requests()[0]) == ["What is <b>2+2</b> & why?"]


async def test_empty_ask_gets_a_usage_hint_and_reset_takes_a_thread_link(off: Scene) -> None:
    envelope = await off.fake.send_slash_command("/ask", "   ", ALICE, GENERAL)
    await off.fake.wait_ack(envelope)
    assert "Usage: `/ask" in (off.fake.ack_payloads[envelope] or {}).get("text", "")

    off.answer_with(Script(text="Sure.", rate=20))
    mention, _ = await off.harness.mention(GENERAL, ALICE, "remember 42")
    await off.turn(GENERAL, mention["ts"])
    assert off.requests() and len(off.requests()) == 1, "an empty /ask must not call the model"
    links = [
        f"https://fake-workspace.slack.com/archives/{GENERAL}/p{mention['ts'].replace('.', '')}",
        (
            f"<https://fake-workspace.slack.com/archives/{GENERAL}/p{int(float(mention['ts'])) + 5!s}000100"
            f"?thread_ts={mention['ts']}&cid={GENERAL}>"
        ),  # a reply's link, as Slack sends it
    ]
    for count, link in enumerate(links, start=2):
        envelope = await off.fake.send_slash_command("/reset", link, ALICE, GENERAL)
        await off.fake.wait_ack(envelope)
        assert "forgotten" in (off.fake.ack_payloads[envelope] or {}).get("text", "")
        await off.harness.say(GENERAL, ALICE, f"what did I say? {count}", thread_ts=mention["ts"])
        await off.turn(GENERAL, mention["ts"], count=count)
        assert user_contents(off.requests()[-1]) == [f"what did I say? {count}"]

    envelope = await off.fake.send_slash_command("/reset", "", ALICE, GENERAL)
    await off.fake.wait_ack(envelope)
    assert "pass a thread's link" in (off.fake.ack_payloads[envelope] or {}).get("text", "")


# -- 5: exactly one reply per message -------------------------------------------------------


async def test_a_redelivered_event_gets_one_reply(off: Scene) -> None:
    off.answer_with(Script(text=sentence(10), rate=20))
    event = off.fake.app_mention_event(GENERAL, ALICE, "only once please")
    event_id = f"Ev{uuid.uuid4().hex[:10].upper()}"
    payload = off.fake.event_callback(event, event_id)
    await off.fake.send_event(event, event_id=event_id)
    # Slack's retry while the first reply is still being written, and another one after it.
    await off.fake.send_envelope(
        "events_api", payload, accepts_response_payload=False, retry_attempt=1, retry_reason="timeout"
    )
    await off.turn(GENERAL, event["ts"])
    retried = await off.fake.send_envelope(
        "events_api", payload, accepts_response_payload=False, retry_attempt=2, retry_reason="timeout"
    )
    await off.fake.wait_ack(retried)
    # A mention after the retries, answered: they reached the bot before it.
    later = off.fake.app_mention_event(GENERAL, ALICE, "and another question")
    await off.fake.send_event(later)
    await off.turn(GENERAL, later["ts"])
    assert len(off.fake.deliveries_of(event_id)) == 3
    assert len(off.harness.replies(GENERAL, event["ts"])) == 1
    assert [r.last_user_content() for r in off.requests()] == ["only once please", "and another question"]


def claimed_elsewhere(harness: SlackHarness, event_id: str) -> list[str]:
    """The bots that received the event and left it to another process that had claimed it."""
    return [
        bot.name
        for bot in harness.bots
        for record in bot.logs("event_claimed_elsewhere")
        if str(record.get("key", "")).endswith(f":{event_id}")
    ]


async def test_two_bot_processes_sharing_redis_reply_once(own: SlackHarness, model: FakeModelServer) -> None:
    model.responder = always(Script(text=sentence(8), rate=20))
    own.extra_env = {**own.extra_env, "LOG_LEVEL": "debug"}  # a process logs the events it found claimed
    before = len(model.requests)
    await own.start_bot()
    await own.start_bot()
    for n in range(3):
        event = own.fake.app_mention_event(GENERAL, ALICE, f"both of you, {n}")
        event_id = f"Ev{uuid.uuid4().hex[:10].upper()}"
        envelopes = await own.broadcast_event(event, event_id=event_id)
        assert len(envelopes) == 2, "both bots must be connected"
        await own.wait_turn(GENERAL, event["ts"])
        # Both processes got it: one answered, the other found it claimed (a dead second bot leaves one answer too).
        await eventually(lambda e=event_id: len(claimed_elsewhere(own, e)) == 1, 10, f"the loser of {event_id}")
        await asyncio.sleep(0.3)
        assert len(own.replies(GENERAL, event["ts"])) == 1
        assert len(claimed_elsewhere(own, event_id)) == 1
    assert len(model.requests) - before == 3
    for delivery, delay in own.ack_delays():
        assert delay is not None and delay <= ACK_LIMIT, f"{delivery.envelope_id} acked after {delay} s"
    await eventually(lambda: all(r.outcome != "pending" for r in model.requests[before:]), 10)


# -- 6: HTTP mode ----------------------------------------------------------------------------


async def test_http_mode_checks_signatures_dedupes_retries_and_runs_commands(http: Scene) -> None:
    fake, harness = http.fake, http.harness
    answer = sentence(8)
    http.answer_with(Script(text=answer, rate=20))

    event = fake.app_mention_event(GENERAL, ALICE, "over http")
    payload = fake.event_callback(event)
    started_at = time.time()
    status, _ = await fake.post_signed_event(harness.events_url, payload, signing_secret=SIGNING_SECRET)
    assert status == 200 and time.time() - started_at < ACK_LIMIT
    # Slack retries with X-Slack-Retry-Num (it thought the first delivery failed).
    status, _ = await fake.post_signed_event(
        harness.events_url, payload, signing_secret=SIGNING_SECRET, retry_num=1, retry_reason="http_timeout"
    )
    assert status == 200
    await http.turn(GENERAL, event["ts"])
    [reply] = harness.replies(GENERAL, event["ts"])
    assert final_of(reply) == answer

    forged = fake.app_mention_event(GENERAL, ALICE, "forged")
    status, _ = await fake.post_signed_event(
        harness.events_url, fake.event_callback(forged), signing_secret=SIGNING_SECRET, bad_signature=True
    )
    assert status == 401
    stale = fake.app_mention_event(GENERAL, ALICE, "replayed")
    status, _ = await fake.post_signed_event(
        harness.events_url, fake.event_callback(stale), signing_secret=SIGNING_SECRET, timestamp=int(time.time()) - 301
    )
    assert status == 401

    command = fake.slash_command("/ask", "asked over http", ALICE, OTHER)
    status, body = await fake.post_signed_command(harness.events_url, command, signing_secret=SIGNING_SECRET)
    assert status == 200 and "Usage" not in body
    await eventually(lambda: bool(harness.replies(OTHER)), 5, "the /ask question to be posted")
    [question] = harness.replies(OTHER)
    await http.turn(OTHER, question.ts)
    assert final_of(harness.replies(OTHER, question.ts)[0]) == answer
    status, body = await fake.post_signed_command(
        harness.events_url, fake.slash_command("/ask", "", ALICE, OTHER), signing_secret=SIGNING_SECRET
    )
    assert status == 200 and "Usage: `/ask" in body

    await asyncio.sleep(0.3)
    assert not harness.replies(GENERAL, forged["ts"]) and not harness.replies(GENERAL, stale["ts"])
    assert [r.last_user_content() for r in http.requests()] == ["over http", "asked over http"]


# -- 7, 8: long answers and mentions in model output ------------------------------------------


def long_answer_with_code() -> str:
    intro = " ".join(f"Intro{i:03d} sentence words." for i in range(60))  # ~1,600 chars
    code = "\n".join(f"result_{i:03d}=compute_something_long(alpha_{i},beta_{i},gamma_{i})" for i in range(70))
    outro = " ".join(f"Outro{i:03d}." for i in range(40))
    return f"{intro}\n\n```python\n{code}\n```\n\n{outro}"  # ~6,000 chars, the fence across 3,500


async def test_a_long_answer_continues_in_new_messages_with_balanced_fences(scene: Scene) -> None:
    answer = long_answer_with_code()
    scene.answer_with(Script(text=answer, rate=400))
    mention, _ = await scene.harness.mention(GENERAL, ALICE, "write a lot of code")
    await scene.turn(GENERAL, mention["ts"], timeout=30)
    replies = scene.harness.replies(GENERAL, mention["ts"])
    assert len(replies) >= 2
    texts = [final_of(m) for m in replies]
    for text in texts:
        assert len(text) < 4000 and INDICATOR not in text
        assert len(FENCE_LINE.findall(text)) % 2 == 0, f"unbalanced fences in {text[-200:]!r}"
    assert all(len(text) < 4000 for m in replies for _, text in m.history)
    continued = next(i for i, text in enumerate(texts) if "result_069" in text)
    assert continued > 0 and texts[continued].lstrip().startswith("```python"), (
        "the code block reopens with its language"
    )
    assert not [c for c in scene.calls() if c.error == "msg_too_long"]
    squashed = "".join("".join(texts).replace("```python", "").replace("```", "").split())
    assert squashed == "".join(answer.replace("```python", "").replace("```", "").split())


async def test_mentions_written_by_the_model_never_notify_anyone(scene: Scene) -> None:
    answer = (
        "Attention <!channel> and <!here> and <!everyone>: ask <@U123> or <!subteam^S1> "
        "or see <#C0GENERAL>. Also [click](!channel) ![x](!everyone) [u](@U123) [t](!subteam^S1)."
    )
    scene.answer_with(Script(text=answer, rate=20))
    mention, _ = await scene.harness.mention(GENERAL, ALICE, "ping everybody")
    await scene.turn(GENERAL, mention["ts"])
    [reply] = scene.harness.replies(GENERAL, mention["ts"])
    for _, text in reply.history:
        assert not LIVE_MENTION.search(text), f"a live mention reached Slack: {text!r}"
    final = final_of(reply)
    if scene.streaming == "off":
        assert "&lt;!channel&gt;" in final and "&lt;@U123&gt;" in final and "&lt;!subteam^S1&gt;" in final
    else:
        assert "!channel>" in final and "@U123>" in final and "!subteam^S1>" in final


async def test_a_mention_split_across_stream_appends_is_still_defused(own_fake: FakeSlack, prefix: str) -> None:
    """Native streams get the text in pieces: `<` may end one append and `!channel>` start the next."""
    client = AsyncWebClient(token=own_fake.bot_token, base_url=own_fake.api_url)
    parent = own_fake.app_mention_event(GENERAL, ALICE, "hi")
    redis = connect(REDIS_URL, cluster=False, retries=0)
    try:
        budgets = WorkspaceBudgets(RateLimits(redis, prefix), own_fake.team_id)
        promise = await budgets.limits.promise((budgets.stream_starts, budgets.stream_stops))
        assert promise is not None
        reply = StreamReply(Place(client, own_fake.team_id, GENERAL, parent["ts"], ALICE), budgets, promise)
        handle = await reply.post("Hey <", final=False)
        await reply.edit(handle, "Hey <!channel> and <", final=False)
        await reply.edit(handle, "Hey <!channel> and <@U123> bye", final=True)
    finally:
        await close(redis)
    message = own_fake.find_message(GENERAL, handle)
    assert message is not None and message.stream_state == "stopped"
    assert not LIVE_MENTION.search(message.text), message.text
    assert message.text.replace("\u200b", "") == "Hey <!channel> and <@U123> bye"


# -- 9, 10: streams that expire, rate limits ----------------------------------------------------


async def test_an_expired_native_stream_is_finished_with_chat_update(auto: Scene) -> None:
    answer = sentence(45, "delta")
    auto.answer_with(Script(text=answer, rate=15))  # ~3 s
    auto.fake.stream_max_age = 1.0
    try:
        mention, _ = await auto.harness.mention(GENERAL, ALICE, "slow answer please")
        await auto.turn(GENERAL, mention["ts"])
    finally:
        auto.fake.stream_max_age = 300.0
    [reply] = auto.harness.replies(GENERAL, mention["ts"])
    assert reply.stream_state == "expired"
    assert any(c.error == "message_not_in_streaming_state" for c in auto.calls("chat.appendStream", "chat.stopStream"))
    updates = [c for c in auto.calls("chat.update") if c.params.get("ts") == reply.ts]
    assert updates and updates[-1].ok
    assert final_of(reply) == to_mrkdwn(answer)


async def test_a_429_is_retried_after_retry_after_and_the_final_text_lands(scene: Scene) -> None:
    answer = sentence(6, "eps")
    scene.answer_with(Script(text=answer, rate=10))  # first text, then the final ~0.5 s later
    method = "chat.update" if scene.streaming == "off" else "chat.stopStream"
    scene.fake.inject_error(method, "ratelimited", status=429, retry_after=1, times=1)
    mention, _ = await scene.harness.mention(GENERAL, ALICE, "under pressure")
    await scene.turn(GENERAL, mention["ts"], timeout=20)
    [reply] = scene.harness.replies(GENERAL, mention["ts"])
    calls = [c for c in scene.calls(method) if c.params.get("ts") == reply.ts]
    assert [c.status for c in calls] == [429, 200], [(c.status, c.error) for c in calls]
    assert calls[1].time - calls[0].time >= 1.0, "Retry-After was not honoured"
    assert final_of(reply) == shown_as(scene, answer)
    said = [record for bot in scene.harness.bots for record in bot.logs("slack_rate_limited")]
    assert said and said[-1]["retry_after"] == "1", "the operator sees how long Slack asked to wait"


async def test_where_native_streams_are_unavailable_the_reply_falls_back_to_chat_update(auto: Scene) -> None:
    answer = sentence(30, "theta")
    auto.answer_with(Script(text=answer, rate=15))
    mention, _ = await auto.harness.mention(NO_STREAMS, ALICE, "stream here?")
    await auto.turn(NO_STREAMS, mention["ts"])
    assert [c.error for c in auto.calls("chat.startStream")] == ["channel_type_not_supported"]
    [reply] = auto.harness.replies(NO_STREAMS, mention["ts"])
    assert len(reply.history) >= 2 and final_of(reply) == to_mrkdwn(answer)
    assert auto.calls("chat.postMessage") and auto.calls("chat.update")


async def test_a_failed_append_is_not_sent_twice(auto: Scene) -> None:
    answer = sentence(40, "eta")
    auto.answer_with(Script(text=answer, rate=15))  # ~2.7 s: appends at about 1 s and 2 s
    auto.fake.inject_error("chat.appendStream", "internal_error", times=1)
    mention, _ = await auto.harness.mention(GENERAL, ALICE, "stream with a hiccup")
    await auto.turn(GENERAL, mention["ts"])
    assert [c.error for c in auto.calls("chat.appendStream")][:1] == ["internal_error"]
    [reply] = auto.harness.replies(GENERAL, mention["ts"])
    assert final_of(reply) == answer


# -- 11, 12: restarts and model failures ----------------------------------------------------------


async def test_a_restarted_bot_keeps_the_conversation(own: SlackHarness, model: FakeModelServer) -> None:
    model.responder = always(Script(text="The answer is 42.", rate=20))
    before = len(model.requests)
    first = await own.start_bot()
    mention, _ = await own.mention(GENERAL, ALICE, "remember the number")
    await own.wait_turn(GENERAL, mention["ts"])
    await own.stop_bot(first)  # SIGTERM, clean exit asserted
    await own.start_bot()
    await own.say(GENERAL, ALICE, "which number?", thread_ts=mention["ts"])  # no mention: a known thread
    await own.wait_turn(GENERAL, mention["ts"], count=2)
    assert len(own.replies(GENERAL, mention["ts"])) == 2
    assert user_contents(model.requests[before + 1]) == ["remember the number", "The answer is 42.", "which number?"]


async def test_a_model_error_mid_stream_keeps_the_partial_text_and_says_why(scene: Scene) -> None:
    text = sentence(40, "zeta")
    scene.answer_with(Script(text=text, rate=20, failure="cut", fail_after=25))
    mention, _ = await scene.harness.mention(GENERAL, ALICE, "this will break")
    record = await scene.turn(GENERAL, mention["ts"])
    assert record["outcome"] == "CUT"
    [reply] = scene.harness.replies(GENERAL, mention["ts"])
    partial = " ".join(text.split()[:25])
    final = final_of(reply)
    assert final == f"{partial}\n\n⚠️ The connection to the model was cut before the answer finished."
    assert INDICATOR not in final and "▌" not in final
    assert len(reply.history) >= 2, "the partial text was shown while it streamed"


# -- 13: what must not be answered ------------------------------------------------------------------


async def test_bot_messages_edits_and_deletions_are_never_answered(off: Scene) -> None:
    off.answer_with(Script(text="Okay.", rate=20))
    fake, harness = off.fake, off.harness
    mention, _ = await harness.mention(GENERAL, ALICE, "start a thread")
    await off.turn(GENERAL, mention["ts"])
    thread, dm = mention["ts"], harness.new_dm(ALICE)
    await harness.say(GENERAL, "U0OTHERBOT", "beep", thread_ts=thread, subtype="bot_message", bot_id="B0OTHER")
    await harness.say(GENERAL, "U0OTHERBOT", "boop", thread_ts=thread, bot_id="B0OTHER")
    await harness.say(GENERAL, ALICE, "edited", thread_ts=thread, subtype="message_changed")
    await harness.say(GENERAL, ALICE, "gone", thread_ts=thread, subtype="message_deleted")
    await harness.say(dm, "U0OTHERBOT", "bot in a DM", bot_id="B0OTHER")
    await harness.say(dm, ALICE, "edited DM", subtype="message_changed")
    await harness.say(dm, ALICE, "deleted DM", subtype="message_deleted")
    await harness.say(dm, fake.bot_user_id, "my own DM message")
    # A person's message after them in the thread and in the DM, each answered: the ones before reached the bot.
    await harness.say(GENERAL, ALICE, "still there?", thread_ts=thread)
    await harness.say(dm, ALICE, "and here?")
    await off.turn(GENERAL, thread, count=2)
    await off.turn(dm, None)
    assert sorted(r.last_user_content() or "" for r in off.requests()) == [
        "and here?",
        "start a thread",
        "still there?",
    ]
    assert len(harness.replies(GENERAL, thread)) == 2
    assert len([r for bot in harness.bots for r in bot.logs("turn_finished", thread=harness.thread_key(dm, None))]) == 1


async def test_blocked_people_and_other_channels_get_an_ephemeral_refusal(off: Scene) -> None:
    fake, harness = off.fake, off.harness
    blocked, _ = await harness.mention(GENERAL, BLOCKED, "let me in")
    await harness.say(BLOCKED_DM, BLOCKED, "DM from a blocked person")
    elsewhere, _ = await harness.mention(SECRET, ALICE, "wrong channel")
    await eventually(lambda: len(fake.ephemerals) >= 3, 5, "three refusals")
    refusals = {(e.channel, e.user, e.thread_ts) for e in fake.ephemerals}
    assert refusals == {
        (GENERAL, BLOCKED, blocked["ts"]),
        (BLOCKED_DM, BLOCKED, None),
        (SECRET, ALICE, elsewhere["ts"]),
    }
    assert all("not available to you here" in e.text for e in fake.ephemerals)
    envelope = await fake.send_slash_command("/ask", "sneaky", ALICE, SECRET)
    await fake.wait_ack(envelope)
    assert "not available to you here" in (fake.ack_payloads[envelope] or {}).get("text", "")
    await asyncio.sleep(0.3)
    assert off.requests() == []
    assert not [m for m in fake.messages_in(SECRET) if m.is_bot] and not harness.replies(GENERAL, blocked["ts"])


# -- 14, 15: names and the thinking status ----------------------------------------------------------


async def test_people_are_named_in_a_shared_thread_and_looked_up_once(off: Scene) -> None:
    fake, harness = off.fake, off.harness
    carol, dave = f"U0C{uuid.uuid4().hex[:6].upper()}", f"U0D{uuid.uuid4().hex[:6].upper()}"
    fake.add_user(carol, "carol")
    fake.add_user(dave, "dave")
    off.answer_with(lambda body: Script(text=f"Answer {len(body['messages'])}.", rate=20))
    mention, _ = await harness.mention(GENERAL, carol, "first from carol")
    await off.turn(GENERAL, mention["ts"])
    await harness.say(GENERAL, dave, "dave chimes in", thread_ts=mention["ts"])
    await off.turn(GENERAL, mention["ts"], count=2)
    await harness.say(GENERAL, carol, "carol again", thread_ts=mention["ts"])
    await off.turn(GENERAL, mention["ts"], count=3)
    lookups = [c.params.get("user") for c in off.calls("users.info")]
    assert lookups.count(carol) == 1 and lookups.count(dave) == 1, lookups
    assert user_contents(off.requests()[-1]) == [
        "carol: first from carol",
        "Answer 2.",
        "dave: dave chimes in",
        "Answer 4.",
        "carol: carol again",
    ]


async def test_a_crowd_right_after_start_up_is_acked_at_once_and_trips_no_limit(
    own: SlackHarness, model: FakeModelServer
) -> None:
    """26 new people write at once to a bot that has just connected (Slack redelivering what came
    in during a restart). Every envelope is acked within 1 s (no per-event auth.test before the
    ack), users.info (Tier 4, the fake: burst 20) is never rate-limited: the people over its
    budget are answered under their user id rather than kept waiting."""
    model.responder = always(Script(text="Hi there.", rate=20))
    await own.start_bot()
    people = [f"U0P{uuid.uuid4().hex[:6].upper()}" for _ in range(26)]
    dms = []
    for person in people:
        own.fake.add_user(person, f"person-{person[-4:]}")
        dms.append(own.new_dm(person))
    calls_at = len(own.fake.calls)
    await asyncio.gather(*(own.say(dm, person, "hello") for dm, person in zip(dms, people, strict=True)))
    for dm in dms:
        await own.wait_turn(dm, None)
    assert all(len(own.replies(dm)) == 1 for dm in dms)
    for delivery, delay in own.ack_delays():
        assert delay is not None and delay <= ACK_LIMIT, f"{delivery.envelope_id} acked after {delay} s"
    calls = own.fake.calls[calls_at:]
    assert not [c for c in calls if c.status == 429], [(c.method, c.status) for c in calls if c.status == 429]
    assert not [c for c in calls if c.method == "auth.test"]
    assert 0 < len([c for c in calls if c.method == "users.info"]) <= 20


async def test_a_slow_first_token_shows_the_thinking_status_first(scene: Scene) -> None:
    scene.answer_with(Script(text=sentence(5), rate=20, first_token_delay=1.5))
    mention, _ = await scene.harness.mention(GENERAL, ALICE, "think hard")
    await scene.turn(GENERAL, mention["ts"])
    [reply] = scene.harness.replies(GENERAL, mention["ts"])
    statuses = [s for s in scene.fake.statuses if s.thread_ts == mention["ts"] and s.channel_id == GENERAL]
    assert statuses and statuses[0].status == "is thinking…"
    assert statuses[0].time < reply.created_at


async def test_where_the_status_is_not_allowed_a_placeholder_is_replaced_by_the_answer(scene: Scene) -> None:
    scene.fake.inject_error("assistant.threads.setStatus", "not_allowed_token_type", times=5)
    answer = sentence(5)
    scene.answer_with(Script(text=answer, rate=20, first_token_delay=1.5))
    mention, _ = await scene.harness.mention(GENERAL, ALICE, "think hard, no status")
    await scene.turn(GENERAL, mention["ts"])
    [reply] = scene.harness.replies(GENERAL, mention["ts"])  # one visible reply, no placeholder left
    assert reply.visible_text.startswith(answer.split()[0]) and "thinking" not in reply.visible_text
    shown = [m for m in scene.fake.messages_in(GENERAL, mention["ts"], include_deleted=True) if m.is_bot]
    placeholder_at = shown[0].history[0][0]
    assert shown[0].history[0][1] == "_thinking…_"
    if scene.streaming == "off":
        assert shown == [reply]  # the placeholder itself became the answer
    else:
        assert len(shown) == 2  # a native stream is a new message; the placeholder was deleted
    assert reply.first_seen(answer.split()[0]) > placeholder_at


async def test_a_slow_answer_to_a_top_level_dm_shows_a_placeholder_first(scene: Scene) -> None:
    dm = scene.harness.new_dm(ALICE)
    answer = sentence(4)
    scene.answer_with(Script(text=answer, rate=20, first_token_delay=1.5))
    await scene.harness.say(dm, ALICE, "take your time")
    await scene.turn(dm, None)
    [reply] = scene.harness.replies(dm)
    assert reply.history[0][1] == "_thinking…_"
    assert "thinking" not in reply.visible_text and reply.visible_text.split()[0] == answer.split()[0]


async def test_a_pdf_shared_with_a_mention_is_read_and_a_zip_bomb_gets_its_notice(off: Scene) -> None:
    answer = "The memo approves the budget."
    off.answer_with(Script(text=answer))
    memo = documents.pdf(["Memo: the budget is approved.", "Signed, the board."])
    mention, _ = await off.harness.mention(
        GENERAL,
        ALICE,
        "what does the memo say?",
        files=[
            ("memo.pdf", "application/pdf", memo),
            ("bomb.docx", "application/octet-stream", documents.zip_bomb_word()),
        ],
    )
    await off.turn(GENERAL, mention["ts"])
    [reply] = off.harness.replies(GENERAL, mention["ts"])
    notice = "bomb.docx unpacks to far more than its size, so I didn't open it."
    assert final_of(reply) == to_mrkdwn(f"{answer}\n\nℹ️ {notice}")
    [request] = off.requests()
    asked = request.last_user_content() or ""
    assert asked.startswith("what does the memo say?\n\nmemo.pdf:\n```\n[page 1]\nMemo: the budget is approved.")
    assert "Signed, the board." in asked and "innocent" not in asked


async def test_a_text_file_shared_with_a_mention_is_read_and_an_image_is_skipped_with_a_notice(off: Scene) -> None:
    answer = "It lists two cities."
    off.answer_with(Script(text=answer))
    table = "city,country\nParis,France\nLyon,France\n"
    downloads = len(off.fake.file_downloads)
    mention, _ = await off.harness.mention(
        GENERAL,
        ALICE,
        "what is in this file?",
        files=[("cities.csv", "text/csv", table.encode()), ("photo.jpg", "image/jpeg", b"\xff\xd8\xff")],
    )
    await off.turn(GENERAL, mention["ts"])
    [reply] = off.harness.replies(GENERAL, mention["ts"])
    assert final_of(reply) == to_mrkdwn(
        f"{answer}\n\nℹ️ I can only read text files and documents, so I skipped photo.jpg."
    )
    [request] = off.requests()
    asked = request.last_user_content() or ""
    assert asked.startswith("what is in this file?") and "cities.csv:" in asked and table.rstrip() in asked
    assert len(off.fake.file_downloads) == downloads + 1  # the photo was never downloaded
