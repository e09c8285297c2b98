"""Self-tests of what fakes/slack/ does for tools, against the real slack_sdk and slack_bolt:
task_update chunks checked and kept like Slack's, buttons in actions blocks checked, and block_actions
payloads delivered over Socket Mode and signed HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.models.messages.chunk import TaskUpdateChunk
from slack_sdk.web.async_client import AsyncWebClient

from fakes.slack import FakeSlack

USER = FakeSlack.DEFAULT_USER
CHANNEL = FakeSlack.DEFAULT_CHANNEL
SIGNING_SECRET = "s3cr3t"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


def client_of(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def error_of(call: Awaitable[object]) -> dict[str, Any]:
    with pytest.raises(SlackApiError) as info:
        await call
    return dict(info.value.response.data)  # type: ignore[arg-type]


def task(**fields: Any) -> dict[str, Any]:
    return {"type": "task_update", "id": "call1", "title": "lookup", "status": "in_progress", **fields}


async def test_task_updates_are_checked_and_kept_in_order(fake: FakeSlack) -> None:
    client = client_of(fake)
    parent = fake.app_mention_event(CHANNEL, USER, "hi")
    start = {"channel": CHANNEL, "thread_ts": parent["ts"], "recipient_team_id": fake.team_id}
    started = await client.chat_startStream(
        **start, recipient_user_id=USER, chunks=[TaskUpdateChunk(id="call1", title="lookup", status="in_progress")]
    )
    ts = started["ts"]
    source = {"type": "url", "url": "https://example.org/a", "text": "example.org/a"}
    await client.chat_appendStream(
        channel=CHANNEL,
        ts=ts,
        chunks=[{"type": "markdown_text", "text": "Found it."}, task(status="complete", output="ok", sources=[source])],
    )
    await client.chat_stopStream(channel=CHANNEL, ts=ts, chunks=[task(id="call2", title="hang", status="error")])
    message = fake.find_message(CHANNEL, ts)
    assert message is not None and message.text == "Found it."
    assert message.task_statuses("call1") == ["in_progress", "complete"] and message.task_statuses("call2") == ["error"]
    assert message.tasks["call1"]["sources"] == [source] and message.tasks["call1"]["output"] == "ok"

    stream = await client.chat_startStream(**start, recipient_user_id=USER, markdown_text="x")
    bad = [
        task(id=""),
        task(title=None),
        task(status="done"),
        task(output=3),
        task(sources=[{"type": "url", "url": "https://example.org/a"}]),  # no text
        task(sources=[{"type": "url", "url": "https://example.org/a", "text": ""}]),
        task(sources=[{"type": "link", "url": "https://example.org/a", "text": "a"}]),
        {"type": "plan_update"},
        {"type": "table"},
    ]
    for chunk in bad:
        error = await error_of(client.chat_appendStream(channel=CHANNEL, ts=stream["ts"], chunks=[chunk]))
        assert error["error"] == "invalid_chunks", chunk
        assert "[json-pointer:/chunks/0" in error["response_metadata"]["messages"][0]


def button(**fields: Any) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": "Run"}, "action_id": "go", "value": "k", **fields}


@pytest.mark.parametrize(
    ("elements", "pointer"),
    [
        ([button(text={"type": "plain_text", "text": "x" * 76})], "/blocks/0/elements/0/text/text"),
        ([button(text={"type": "mrkdwn", "text": "*Run*"})], "/blocks/0/elements/0/text/type"),
        ([button(action_id="a" * 256)], "/blocks/0/elements/0/action_id"),
        ([button(value="v" * 2001)], "/blocks/0/elements/0/value"),
        ([button(style="secondary")], "/blocks/0/elements/0/style"),
        ([button(), button()], "/blocks/0/elements/1/action_id"),
        ([button(action_id=f"a{i}") for i in range(26)], "/blocks/0/elements"),
        ([{"type": "link", "text": "x"}], "/blocks/0/elements/0"),
    ],
)
async def test_buttons_are_checked_like_slack(fake: FakeSlack, elements: list[dict[str, Any]], pointer: str) -> None:
    blocks = [{"type": "actions", "elements": elements}]
    error = await error_of(client_of(fake).chat_postMessage(channel=CHANNEL, text="x", blocks=blocks))
    assert error["error"] == "invalid_blocks"
    assert any(f"[json-pointer:{pointer}]" in message for message in error["response_metadata"]["messages"]), error


async def test_a_long_section_text_is_refused(fake: FakeSlack) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    error = await error_of(client_of(fake).chat_postMessage(channel=CHANNEL, text="x", blocks=blocks))
    assert error["error"] == "invalid_blocks"


def clicks_app(fake: FakeSlack, signing_secret: str | None = None) -> tuple[AsyncApp, list[dict[str, Any]]]:
    """A bolt app that takes clicks on "go" and answers the clicker through the response_url."""
    app = AsyncApp(client=client_of(fake), signing_secret=signing_secret)
    seen: list[dict[str, Any]] = []

    @app.action("go")
    async def on_go(ack: Callable[..., Awaitable[None]], body: dict[str, Any], respond: Any) -> None:
        await ack()
        seen.append(body)
        await respond(text="only you see this", response_type="ephemeral", replace_original=False)

    return app, seen


async def posted_buttons(fake: FakeSlack) -> str:
    parent = fake.app_mention_event(CHANNEL, USER, "hi")
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Run it?"}},
        {"type": "actions", "block_id": "ask:1", "elements": [button(value="key1")]},
    ]
    client = client_of(fake)
    posted = await client.chat_postMessage(channel=CHANNEL, thread_ts=parent["ts"], text="Run it?", blocks=blocks)
    return str(posted["ts"])


async def test_a_click_over_socket_mode(fake: FakeSlack) -> None:
    app, seen = clicks_app(fake)
    ts = await posted_buttons(fake)
    handler = AsyncSocketModeHandler(app, "xapp-test")
    await handler.connect_async()
    try:
        await fake.wait_socket_connected()
        envelope = await fake.send_block_action(USER, CHANNEL, ts, "go")
        await fake.wait_ack(envelope)
        await eventually(lambda: len(fake.responses) == 1)
    finally:
        await handler.close_async()
    [body] = seen
    assert body["type"] == "block_actions" and body["api_app_id"] == fake.app_id and body["trigger_id"]
    assert body["user"] == {"id": USER, "username": "alice", "name": "alice", "team_id": fake.team_id}
    assert body["team"]["id"] == fake.team_id and body["channel"]["id"] == CHANNEL
    assert body["container"] == {"type": "message", "message_ts": ts, "channel_id": CHANNEL, "is_ephemeral": False}
    assert body["message"]["ts"] == ts and body["message"]["blocks"][1]["block_id"] == "ask:1"
    [action] = body["actions"]
    shown = (action["type"], action["action_id"], action["block_id"], action["value"])
    assert shown == ("button", "go", "ask:1", "key1")
    assert action["action_ts"]
    [response] = fake.responses
    assert (response.user, response.source, response.ephemeral, response.text) == (
        USER,
        "block_actions",
        True,
        "only you see this",
    )
    with pytest.raises(LookupError):
        fake.block_actions(USER, CHANNEL, ts, "no-such-button")


async def test_a_click_over_signed_http(fake: FakeSlack) -> None:
    app, seen = clicks_app(fake, signing_secret=SIGNING_SECRET)
    ts = await posted_buttons(fake)
    runner = web.AppRunner(app.web_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    try:
        payload = fake.block_actions(USER, CHANNEL, ts, "go")
        assert await fake.post_signed_interactive(url, payload, signing_secret=SIGNING_SECRET) == (200, "")
        await eventually(lambda: len(fake.responses) == 1)
        assert seen[0]["actions"][0]["value"] == "key1"
    finally:
        await runner.cleanup()
