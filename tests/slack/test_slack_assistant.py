"""Slack's AI surfaces: the assistant panel (greeting, suggested prompts, the thread's title, the
answer streamed in its thread, "this channel" read from the channel the person views) and the App
Home tab. The real bot process against the loopback fake Slack and model server, in Socket Mode,
with USER_TURNS_PER_MINUTE=5 (each test has people of its own, so their quotas don't mix)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from adapters.slack_bot.assistant import title_of
from adapters.slack_bot.recent import plain_text
from adapters.slack_bot.settings import DEFAULT_SUGGESTED_PROMPTS, SuggestedPrompt, suggested_prompts
from config.env import ConfigError
from fakes.harness.processes import ROOT, delete_keys
from fakes.harness.slack_world import SlackHarness, eventually, finished, started
from fakes.model_server import FakeModelServer, RecordedRequest, Script
from fakes.slack import FakeSlack

in_module_loop = pytest.mark.asyncio(loop_scope="module")  # the processes are shared by the module

MODEL = "Mistral-7B-Instruct-v0.3"
ANSWER = (
    "The moon pulls the sea towards it, and the earth turns under that bulge of water, "
    "so most coasts see two high tides a day."
)
GENERAL = FakeSlack.DEFAULT_CHANNEL
PROJECT = "C0PROJECT1"  # the bot is a member: the panel may read it
OUTSIDE = "C0OUTSIDE1"  # public, the bot not in it: not_in_channel
PRIVATE = "G0PRIVATE1"  # private, the bot in it: needs groups:history
PROMPTS = "Sum up=Summarise this channel, briefly.|Tides=How do tides work?|Haiku"


def person(fake: FakeSlack, name: str) -> str:
    user = f"U0{name.upper()[:5]}{uuid.uuid4().hex[:4].upper()}"
    fake.add_user(user, name)
    return user


def manifest_scopes() -> frozenset[str]:
    manifest = yaml.safe_load((ROOT / "config" / "slack-app-manifest.yml").read_text())
    return frozenset(manifest["oauth_config"]["scopes"]["bot"])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    # Slow to start, so "is thinking…" shows; several pieces, so the answer streams in appends.
    async with FakeModelServer(Script(text=ANSWER, first_token_delay=0.8, rate=12)) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def harness(model: FakeModelServer) -> AsyncIterator[SlackHarness]:
    prefix = f"test:slack-assistant:{uuid.uuid4().hex[:12]}:"
    fake = FakeSlack(scopes=manifest_scopes())  # what the manifest asks for is what the bot gets
    fake.add_channel(PROJECT, "project")
    fake.add_channel(OUTSIDE, "outside").bot_member = False
    fake.add_channel(PRIVATE, "private", is_private=True)
    harness = SlackHarness(
        fake,
        model.base_url,
        prefix,
        streaming="auto",
        extra_env={"USER_TURNS_PER_MINUTE": "5", "SLACK_SUGGESTED_PROMPTS": PROMPTS},
    )
    yield await started(harness)
    try:
        await finished(harness)
    finally:
        delete_keys(prefix)


async def open_panel(harness: SlackHarness, user: str, viewing: str | None) -> tuple[str, str]:
    """`user` opens the assistant panel while viewing `viewing`; returns (DM, thread_ts) once the
    bot has greeted them."""
    fake = harness.fake
    started = fake.assistant_thread_started_event(user, viewing)
    dm, thread_ts = started["assistant_thread"]["channel_id"], started["assistant_thread"]["thread_ts"]
    await fake.send_event(started)
    await eventually(lambda: fake.prompts_for(dm, thread_ts) is not None, what="suggested prompts")
    return dm, thread_ts


async def ask(harness: SlackHarness, dm: str, thread_ts: str, user: str, text: str, *, count: int = 1) -> None:
    await harness.say(dm, user, text, thread_ts=thread_ts)
    await harness.wait_turn(dm, thread_ts, count=count)


def request_with(model: FakeModelServer, marker: str) -> RecordedRequest:
    return [r for r in model.requests if marker in (r.last_user_content() or "")][-1]


@in_module_loop
async def test_the_panel_greets_suggests_titles_and_streams_the_answer(
    harness: SlackHarness, model: FakeModelServer
) -> None:
    fake, user = harness.fake, person(harness.fake, "dana")
    dm, thread_ts = await open_panel(harness, user, GENERAL)
    assert fake.prompts_for(dm, thread_ts) == [
        {"title": "Sum up", "message": "Summarise this channel, briefly."},
        {"title": "Tides", "message": "How do tides work?"},
        {"title": "Haiku", "message": "Haiku"},
    ]
    assert fake.suggested_prompts[-1].title == "Try asking"
    [greeting] = harness.replies(dm, thread_ts)
    assert f"*{MODEL}*" in greeting.text and "this channel" in greeting.text

    await ask(
        harness, dm, thread_ts, user, "a1-tides   How do tides work, and why twice a day? Please explain it simply"
    )
    assert fake.title_of(dm, thread_ts) == "a1-tides How do tides work, and why twice a day? Please…"
    assert fake.status_of(dm, thread_ts) == "is thinking…"  # until the first words
    [_, reply] = harness.replies(dm, thread_ts)
    assert reply.text == ANSWER and reply.stream_state == "stopped"
    starts = harness.calls_for(["chat.startStream"], channel=dm)
    assert [call.params["thread_ts"] for call in starts] == [thread_ts]
    assert len(harness.calls_for(["chat.appendStream"], channel=dm)) >= 1
    assert request_with(model, "a1-tides").last_user_content() == (
        "a1-tides   How do tides work, and why twice a day? Please explain it simply"
    )

    # A follow-up continues the thread's conversation; the title stays the first question's.
    await ask(harness, dm, thread_ts, user, "a1-more and spring tides?", count=2)
    follow_up = request_with(model, "a1-more")
    assert [m["content"] for m in follow_up.body["messages"][1:]][-3:] == [
        "a1-tides   How do tides work, and why twice a day? Please explain it simply",
        ANSWER,
        "a1-more and spring tides?",
    ]
    assert fake.assistant_threads[(dm, thread_ts)].titles == [fake.title_of(dm, thread_ts)]


@in_module_loop
async def test_this_channel_is_read_from_the_channel_the_person_views(
    harness: SlackHarness, model: FakeModelServer
) -> None:
    fake, user, bob = harness.fake, person(harness.fake, "erin"), person(harness.fake, "bob")
    fake.message_event(PROJECT, user, "We ship the release on Friday.")
    fake.message_event(PROJECT, bob, "joined", subtype="channel_join")  # housekeeping, left out
    fake.message_event(
        PROJECT, bob, f"<@{user}> the docs are not ready &amp; tests are red\nsee <https://ci.example|CI>"
    )
    dm, thread_ts = await open_panel(harness, user, GENERAL)
    [bot] = harness.bots
    await fake.send_event(fake.assistant_thread_context_changed_event(dm, thread_ts, PROJECT))
    await bot.wait_log("slack_assistant_context", viewed=PROJECT)

    await ask(harness, dm, thread_ts, user, "b1-sum Summarise this channel")
    [history] = harness.calls_for(["conversations.history"], channel=PROJECT)
    assert int(history.params["limit"]) == 50
    question = request_with(model, "b1-sum").last_user_content() or ""
    lines = question.splitlines()
    assert lines[0] == "The last 2 messages of the channel I'm looking at, oldest first:"
    assert lines[2].endswith("] erin: We ship the release on Friday.")
    assert lines[3].endswith("] bob: @erin the docs are not ready & tests are red")
    assert lines[4] == "    see CI (https://ci.example)"
    assert lines[-1] == "b1-sum Summarise this channel"
    [_, reply] = harness.replies(dm, thread_ts)
    assert reply.text == ANSWER

    # A question that isn't about the channel reads nothing.
    await ask(harness, dm, thread_ts, user, "b1-other what is a release train?", count=2)
    assert request_with(model, "b1-other").last_user_content() == "b1-other what is a release train?"
    assert len(harness.calls_for(["conversations.history"])) == 1


@in_module_loop
async def test_a_channel_the_bot_may_not_read_is_named_instead_of_an_answer(
    harness: SlackHarness, model: FakeModelServer
) -> None:
    fake, user = harness.fake, person(harness.fake, "fred")
    asked = len(model.requests)

    dm, outside = await open_panel(harness, user, OUTSIDE)
    await harness.say(dm, user, "c1 summarise this channel", thread_ts=outside)
    await eventually(lambda: len(harness.replies(dm, outside)) == 2, what="the bot's reply")
    assert harness.replies(dm, outside)[1].text == (
        f"I can't read <#{OUTSIDE}>: I'm not a member of it. Invite me there (`/invite` and my name), then ask again."
    )
    assert fake.title_of(dm, outside) == "c1 summarise this channel"

    _, private = await open_panel(harness, user, PRIVATE)
    fake.scopes.discard("groups:history")
    try:
        await harness.say(dm, user, "c2 what happened in this channel today?", thread_ts=private)
        await eventually(lambda: len(harness.replies(dm, private)) == 2, what="the bot's reply")
    finally:
        fake.scopes.add("groups:history")
    assert harness.replies(dm, private)[1].text.startswith(
        f"I'm not allowed to read <#{PRIVATE}>: this app lacks the `groups:history` permission"
    )

    _, nowhere = await open_panel(harness, user, None)
    await harness.say(dm, user, "c3 summarise this channel", thread_ts=nowhere)
    await eventually(lambda: len(harness.replies(dm, nowhere)) == 2, what="the bot's reply")
    assert harness.replies(dm, nowhere)[1].text.startswith("I don't know which channel you're looking at.")
    assert len(model.requests) == asked  # the model was never asked to summarise blind


@in_module_loop
async def test_a_dm_thread_outside_the_panel_is_answered_as_before(
    harness: SlackHarness, model: FakeModelServer
) -> None:
    fake, user = harness.fake, person(harness.fake, "gina")
    dm = harness.new_dm(user)
    top, _ = await harness.say(dm, user, "d1-top hello")
    await harness.wait_turn(dm, None)
    await harness.say(dm, user, "d1-thread summarise this channel", thread_ts=top["ts"])
    await harness.wait_turn(dm, top["ts"])
    assert request_with(model, "d1-thread").last_user_content() == "d1-thread summarise this channel"
    assert not [call for call in fake.calls_to("assistant.threads.setTitle") if call.params["channel_id"] == dm]
    assert not [p for p in fake.suggested_prompts if p.channel_id == dm]


@in_module_loop
async def test_the_home_tab_names_the_model_and_the_questions_left(harness: SlackHarness) -> None:
    fake, user = harness.fake, person(harness.fake, "hana")
    dm = harness.new_dm(user)
    for n in range(2):
        await harness.say(dm, user, f"e1-{n} hi")
        await harness.wait_turn(dm, None, count=n + 1)

    await fake.send_event(fake.app_home_opened_event(user, tab="messages"))  # the DM tab: nothing to publish
    await fake.send_event(fake.app_home_opened_event(user))
    await eventually(lambda: user in fake.home_views, what="the published Home tab")
    [published] = [view for view in fake.published_views if view.user_id == user]
    assert published.view["type"] == "home"
    text = published.text
    assert f"I answer with *{MODEL}*." in text  # the only model here (with several: each, and /model)
    assert "You can ask me *3* more questions this minute." in text
    for way in ("Mention me", "DM me", "/ask your question", "/model", "assistant panel", "Ask Mistral about this"):
        assert way in text
    assert f"<@{fake.bot_user_id}>" in text


# -- the pieces, without a process ----------------------------------------------------------------


def test_suggested_prompts_setting() -> None:
    assert suggested_prompts(None) == tuple(SuggestedPrompt(*p) for p in DEFAULT_SUGGESTED_PROMPTS)
    assert "this channel" in DEFAULT_SUGGESTED_PROMPTS[0][1]
    assert suggested_prompts(" Sum up = Summarise this channel | Haiku ") == (
        SuggestedPrompt("Sum up", "Summarise this channel"),
        SuggestedPrompt("Haiku", "Haiku"),
    )
    assert suggested_prompts("Maths=1+1=?") == (SuggestedPrompt("Maths", "1+1=?"),)
    with pytest.raises(ConfigError, match="SLACK_SUGGESTED_PROMPTS: '=no title' is invalid"):
        suggested_prompts("Fine=ok|=no title")
    with pytest.raises(ConfigError, match="at most four"):
        suggested_prompts("a|b|c|d|e")


def test_manifest_declares_the_assistant_and_the_home_tab() -> None:
    manifest: dict[str, Any] = yaml.safe_load((Path(ROOT) / "config" / "slack-app-manifest.yml").read_text())
    features = manifest["features"]
    assert features["app_home"]["home_tab_enabled"] is True
    view = features["assistant_view"]
    assert view["assistant_description"] and 1 <= len(view["suggested_prompts"]) <= 4
    # The panel shows the manifest's prompts until the bot sets its own: the same by default.
    assert [(p["title"], p["message"]) for p in view["suggested_prompts"]] == list(DEFAULT_SUGGESTED_PROMPTS)
    assert "assistant:write" in manifest["oauth_config"]["scopes"]["bot"]
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert {"assistant_thread_started", "assistant_thread_context_changed", "app_home_opened"} <= set(events)


def test_titles_and_slack_markup() -> None:
    assert title_of("  short\nquestion ") == "short question"
    assert title_of("x" * 80) == "x" * 59 + "…"
    names = {"U0ALICE01": "alice"}
    assert plain_text("<@U0ALICE01> see <#C1|general> and <!here> &lt;b&gt;", names) == (
        "@alice see #general and @here <b>"
    )
