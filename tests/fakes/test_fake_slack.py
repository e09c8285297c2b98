"""Self-tests of fakes/slack/ against the real slack_sdk and slack_bolt clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from fakes.slack import DEFAULT_SCOPES, FakeSlack, SlackLimits, signature_headers

BOT_TOKEN = "xoxb-test"
APP_TOKEN = "xapp-test"
SIGNING_SECRET = "s3cr3t"
USER = FakeSlack.DEFAULT_USER
CHANNEL = FakeSlack.DEFAULT_CHANNEL
DM = FakeSlack.DEFAULT_DM


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


def web_client(fake: FakeSlack, **kwargs: object) -> AsyncWebClient:
    return AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url, **kwargs)  # type: ignore[arg-type]


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def api_error(call: Awaitable[object]) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value


# ---- Web API -------------------------------------------------------------------------------


async def test_auth_test_and_bad_tokens(fake: FakeSlack) -> None:
    assert fake.api_url.endswith("/api/")
    res = await web_client(fake).auth_test()
    assert (res["user"], res["user_id"], res["bot_id"], res["team_id"]) == (
        "mistralbot",
        fake.bot_user_id,
        fake.bot_id,
        fake.team_id,
    )
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url)
    assert (await api_error(wrong.auth_test())).response["error"] == "invalid_auth"
    assert (await api_error(web_client(fake).apps_connections_open(app_token="xapp-nope"))).response[
        "error"
    ] == "invalid_auth"
    assert fake.calls_to("auth.test")[0].ok


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_post_message_limits_and_errors(fake: FakeSlack) -> None:
    client = web_client(fake)
    res = await client.chat_postMessage(channel=CHANNEL, text="hello")
    assert res["channel"] == CHANNEL and res["message"]["bot_id"] == fake.bot_id
    assert [m.text for m in fake.messages_in(CHANNEL)] == ["hello"]

    too_long = await api_error(client.chat_postMessage(channel=CHANNEL, text="x" * 4001))
    assert too_long.response["error"] == "msg_too_long"
    await client.chat_postMessage(channel=CHANNEL, text="x" * 4000)
    assert (await api_error(client.chat_postMessage(channel=DM))).response["error"] == "no_text"
    assert (await api_error(client.chat_postMessage(channel="C404", text="a"))).response["error"] == "channel_not_found"
    call = fake.calls_to("chat.postMessage")[1]
    assert call.params["text"] == "x" * 4001 and call.error == "msg_too_long"


async def test_update_keeps_edit_history(fake: FakeSlack) -> None:
    client = web_client(fake)
    posted = await client.chat_postMessage(channel=DM, text="thinking…")
    await client.chat_update(channel=DM, ts=posted["ts"], text="the answer")
    message = fake.find_message(DM, posted["ts"])
    assert message is not None and message.text == "the answer"
    assert [text for _, text in message.history] == ["thinking…", "the answer"]
    assert message.first_seen("answer") == message.history[1][0]
    missing = await api_error(client.chat_update(channel=DM, ts="1.000001", text="x"))
    assert missing.response["error"] == "message_not_found"


async def test_threads_users_status_and_ephemeral(fake: FakeSlack) -> None:
    client = web_client(fake)
    event = fake.app_mention_event(CHANNEL, USER, "what is 2+2?")
    await client.chat_postMessage(channel=CHANNEL, thread_ts=event["ts"], text="4")
    replies = await client.conversations_replies(channel=CHANNEL, ts=event["ts"])
    assert [m["text"] for m in replies["messages"]] == [event["text"], "4"]
    assert replies["messages"][0]["reply_count"] == 1
    user = await client.users_info(user=USER)
    assert user["user"]["profile"]["display_name"] == "alice"
    await client.assistant_threads_setStatus(channel_id=CHANNEL, thread_ts=event["ts"], status="is thinking…")
    assert fake.status_of(CHANNEL, event["ts"]) == "is thinking…"
    await client.chat_postEphemeral(channel=CHANNEL, user=USER, text="only you")
    assert fake.ephemerals[0].text == "only you"
    fake.add_user_group("S0SUPPORT", [USER])
    assert (await client.usergroups_users_list(usergroup="S0SUPPORT"))["users"] == [USER]
    gone = await api_error(client.usergroups_users_list(usergroup="S0NOGROUP"))
    assert gone.response["error"] == "no_such_subteam"
    fake.scopes.discard("usergroups:read")
    unscoped = await api_error(client.usergroups_users_list(usergroup="S0SUPPORT"))
    assert unscoped.response["error"] == "missing_scope"


# ---- native streaming ----------------------------------------------------------------------


async def test_chat_stream_helper_appends_and_stops(fake: FakeSlack) -> None:
    client = web_client(fake)
    parent = fake.message_event(DM, USER, "tell me a story")
    stream = await client.chat_stream(channel=DM, thread_ts=parent["ts"], buffer_size=10)
    await stream.append(markdown_text="Once upon ")
    await stream.append(markdown_text="a time")
    await stream.stop(markdown_text=" the end.")
    assert [c.method for c in fake.calls if c.method.startswith("chat.")] == [
        "chat.startStream",
        "chat.stopStream",
    ]
    message = fake.find_message(DM, str(stream.ts))
    assert message is not None and message.text == "Once upon a time the end."
    assert message.stream_state == "stopped" and message.thread_ts == parent["ts"]

    in_channel = await client.chat_stream(channel=CHANNEL, thread_ts=parent["ts"], buffer_size=1)
    refused = await api_error(in_channel.append(markdown_text="hi"))
    assert refused.response["error"] == "missing_recipient_user_id"


async def test_stream_appends_then_expires(fake: FakeSlack) -> None:
    fake.stream_max_age = 0.3
    client = web_client(fake)
    parent = fake.app_mention_event(CHANNEL, USER, "hi")
    stream = await client.chat_stream(
        channel=CHANNEL, thread_ts=parent["ts"], recipient_user_id=USER, recipient_team_id=fake.team_id, buffer_size=1
    )
    await stream.append(markdown_text="part one")
    await stream.append(markdown_text=", part two")
    assert len(fake.calls_to("chat.appendStream")) == 1
    await asyncio.sleep(0.4)
    expired = await api_error(stream.append(markdown_text=" lost"))
    assert expired.response["error"] == "message_not_in_streaming_state"
    await client.chat_update(channel=CHANNEL, ts=str(stream.ts), text="part one, part two (final)")
    message = fake.find_message(CHANNEL, str(stream.ts))
    assert message is not None and message.text.endswith("(final)")
    assert [t for _, t in message.history][:2] == ["part one", "part one, part two"]


async def test_native_streaming_can_be_disabled() -> None:
    async with FakeSlack(native_streaming=False) as fake:
        res = await api_error(web_client(fake).chat_startStream(channel=DM, thread_ts="1.000001", markdown_text="x"))
        assert res.response["error"] == "channel_type_not_supported"


# ---- rate limits ---------------------------------------------------------------------------


async def test_429_is_honoured_by_rate_limit_retry_handler() -> None:
    limits = SlackLimits()
    limits.set("chat.update", per_minute=60, burst=1)
    async with FakeSlack(limits=limits) as fake:
        plain = web_client(fake)
        patient = web_client(fake, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)])
        posted = await plain.chat_postMessage(channel=DM, text="v1")
        await plain.chat_update(channel=DM, ts=posted["ts"], text="v2")
        limited = await api_error(plain.chat_update(channel=DM, ts=posted["ts"], text="v3"))
        assert limited.response.status_code == 429 and limited.response["error"] == "ratelimited"
        assert limited.response.headers["Retry-After"] == "1"
        await patient.chat_update(channel=DM, ts=posted["ts"], text="v3")
        assert fake.ratelimited_count == 2
        assert [c.status for c in fake.calls_to("chat.update")] == [200, 429, 429, 200]
        assert fake.messages_in(DM)[0].text == "v3"


async def test_post_message_is_limited_per_channel() -> None:
    async with FakeSlack() as fake:
        client = web_client(fake)
        for i in range(3):
            await client.chat_postMessage(channel=CHANNEL, text=str(i))
        assert (await api_error(client.chat_postMessage(channel=CHANNEL, text="4"))).response.status_code == 429
        await client.chat_postMessage(channel=DM, text="other channel is fine")
    async with FakeSlack(limits=SlackLimits.off()) as fake:
        client = web_client(fake)
        for i in range(10):
            await client.chat_postMessage(channel=CHANNEL, text=str(i))
        assert fake.ratelimited_count == 0


# ---- Socket Mode with real bolt ------------------------------------------------------------


def bolt_app(fake: FakeSlack, retries_seen: list[str] | None = None, signing_secret: str | None = None) -> AsyncApp:
    """A real bolt app pointed at the fake: echoes mentions in thread, answers /ask."""
    app = AsyncApp(client=web_client(fake), signing_secret=signing_secret)
    seen = retries_seen if retries_seen is not None else []

    @app.event("app_mention")
    async def on_mention(event: dict, say: Callable[..., Awaitable[object]], request: AsyncBoltRequest) -> None:
        seen.append(request.headers.get("x-slack-retry-num", ["0"])[0])
        await say(text=f"echo: {event['text']}", thread_ts=event["ts"])

    @app.command("/ask")
    async def on_ask(
        ack: Callable[..., Awaitable[None]], respond: Callable[..., Awaitable[object]], command: dict
    ) -> None:
        await ack("working on it")
        await respond(f"answer to {command['text']}")

    return app


@pytest.fixture
async def socket_bot(fake: FakeSlack) -> AsyncIterator[AsyncSocketModeHandler]:
    handler = AsyncSocketModeHandler(bolt_app(fake), APP_TOKEN)
    await handler.connect_async()
    await fake.wait_socket_connected()
    yield handler
    await handler.close_async()


async def test_socket_mode_event_and_slash_command(fake: FakeSlack, socket_bot: AsyncSocketModeHandler) -> None:
    assert fake.calls_to("apps.connections.open")[0].token == APP_TOKEN
    event = fake.app_mention_event(CHANNEL, USER, "ping")
    envelope_id = await fake.send_event(event)
    acked_at = await fake.wait_ack(envelope_id)
    assert acked_at - fake.deliveries[0].sent_at < 3.0
    await eventually(lambda: len(fake.messages_in(CHANNEL, event["ts"])) == 2)
    assert fake.messages_in(CHANNEL, event["ts"])[1].text == f"echo: {event['text']}"

    command_envelope = await fake.send_slash_command("/ask", "life", USER, CHANNEL)
    await fake.wait_ack(command_envelope)
    assert fake.ack_payloads[command_envelope] == {"text": "working on it"}
    await eventually(lambda: len(fake.responses) == 1)
    assert fake.responses[0].body["text"] == "answer to life"


async def test_unacked_event_is_redelivered(fake: FakeSlack, socket_bot: AsyncSocketModeHandler) -> None:
    fake.ack_timeout, fake.max_retries = 0.3, 1
    # bolt answers 404 for an event without listener, and the socket adapter then sends no ack
    event = {"type": "reaction_added", "user": USER, "reaction": "eyes", "event_ts": fake.next_ts()}
    await fake.send_event(event, event_id="Ev0REDELIVER")
    await eventually(lambda: len(fake.unacked) == 1, timeout=3.0)
    deliveries = fake.deliveries_of("Ev0REDELIVER")
    assert [(d.retry_attempt, d.retry_reason) for d in deliveries] == [(0, ""), (1, "timeout")]
    assert deliveries[0].envelope_id != deliveries[1].envelope_id
    assert not fake.acks


async def test_disconnect_message_makes_client_reconnect(fake: FakeSlack, socket_bot: AsyncSocketModeHandler) -> None:
    await fake.send_disconnect()
    await fake.wait_socket_connected(connections=2)
    assert len(fake.calls_to("apps.connections.open")) == 2
    event = fake.app_mention_event(DM, USER, "still there?")
    await fake.wait_ack(await fake.send_event(event))


# ---- HTTP mode signing ---------------------------------------------------------------------


def test_signature_headers_match_slack_sdk_verifier() -> None:
    verifier = SignatureVerifier(SIGNING_SECRET)
    body = '{"type":"event_callback"}'
    good = signature_headers(body, SIGNING_SECRET)
    assert verifier.is_valid_request(body, good)
    assert not verifier.is_valid_request(body, signature_headers(body, "other"))
    assert not verifier.is_valid_request(body, signature_headers(body, SIGNING_SECRET, int(time.time()) - 600))


async def test_signed_posts_reach_real_bolt_http_app(fake: FakeSlack) -> None:
    retries_seen: list[str] = []
    runner = web.AppRunner(bolt_app(fake, retries_seen, signing_secret=SIGNING_SECRET).web_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    try:
        payload = fake.event_callback(fake.app_mention_event(CHANNEL, USER, "over http"))
        assert (await fake.post_signed_event(url, payload, signing_secret=SIGNING_SECRET))[0] == 200
        retried = await fake.post_signed_event(
            url, payload, signing_secret=SIGNING_SECRET, retry_num=1, retry_reason="http_timeout"
        )
        assert retried[0] == 200
        await eventually(lambda: len(fake.bot_messages_in(CHANNEL)) == 2)
        assert sorted(retries_seen) == ["0", "1"]

        bad = await fake.post_signed_event(url, payload, signing_secret=SIGNING_SECRET, bad_signature=True)
        stale = await fake.post_signed_event(
            url, payload, signing_secret=SIGNING_SECRET, timestamp=int(time.time()) - 600
        )
        assert (bad[0], stale[0]) == (401, 401)

        command = fake.slash_command("/ask", "http", USER, CHANNEL)
        assert await fake.post_signed_command(url, command, signing_secret=SIGNING_SECRET) == (200, "working on it")
        await eventually(lambda: len(fake.responses) == 1)
        assert fake.responses[0].body["text"] == "answer to http"
    finally:
        await runner.cleanup()


# ---- Block Kit: context blocks and invalid_blocks -----------------------------------------------


async def test_context_blocks_are_stored_and_readable(fake: FakeSlack) -> None:
    client = web_client(fake)
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "The answer is *42*."}},
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": "_mistral-small_"},
                {"type": "plain_text", "text": "3.2 s"},
                {"type": "image", "image_url": "https://example.com/icon.png", "alt_text": "icon"},
            ],
        },
    ]
    posted = await client.chat_postMessage(channel=CHANNEL, text="The answer is 42.", blocks=blocks)
    assert posted["message"]["blocks"] == blocks
    message = fake.find_message(CHANNEL, posted["ts"])
    assert message is not None and message.blocks_of("context") == [blocks[1]]
    assert message.context_texts == ["_mistral-small_ 3.2 s"]

    updated = [blocks[0], {"type": "context", "elements": [{"type": "mrkdwn", "text": "_codestral_"}]}]
    await client.chat_update(channel=CHANNEL, ts=posted["ts"], text="The answer is 42.", blocks=updated)
    assert message.context_texts == ["_codestral_"]
    history = await client.conversations_history(channel=CHANNEL)
    assert history["messages"][0]["blocks"] == updated


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        (
            [{"type": "context", "elements": [{"type": "mrkdwn", "text": str(i)} for i in range(11)]}],
            "/blocks/0/elements",
        ),
        ([{"type": "context", "elements": []}], "/blocks/0/elements"),
        ([{"type": "context", "elements": [{"type": "mrkdwn"}]}], "/blocks/0/elements/0/text"),
        ([{"type": "context", "elements": [{"type": "mrkdwn", "text": ""}]}], "/blocks/0/elements/0/text"),
        ([{"type": "context", "elements": [{"type": "button", "text": "x"}]}], "/blocks/0/elements/0"),
        (
            [{"type": "context", "elements": [{"type": "image", "image_url": "https://x/y.png"}]}],
            "/blocks/0/elements/0/alt_text",
        ),
        ([{"type": "section"}], "/blocks/0"),
        ([{"type": "section", "text": "plain string"}], "/blocks/0/text"),
        ([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}], "/blocks/0/text/text"),
        ([{"type": "header", "text": {"type": "mrkdwn", "text": "Title"}}], "/blocks/0/text/type"),
        ([{"type": "divider"}, {"type": "carousel_of_doom"}], "/blocks/1/type"),
        ([{"type": "divider", "block_id": "a"}, {"type": "divider", "block_id": "a"}], "/blocks/1/block_id"),
        ([{"type": "divider"}] * 51, "/blocks"),
    ],
)
async def test_malformed_blocks_are_invalid_blocks(fake: FakeSlack, blocks: list[dict], pointer: str) -> None:
    client = web_client(fake)
    refused = await api_error(client.chat_postMessage(channel=CHANNEL, text="fallback", blocks=blocks))
    assert refused.response["error"] == "invalid_blocks"
    [error] = refused.response["errors"]
    assert error.endswith(f"[json-pointer:{pointer}]")
    assert refused.response["response_metadata"]["messages"] == [f"[ERROR] {error}"]
    assert fake.messages_in(CHANNEL) == []

    posted = await client.chat_postMessage(channel=CHANNEL, text="fine")
    update = await api_error(client.chat_update(channel=CHANNEL, ts=posted["ts"], text="x", blocks=blocks))
    ephemeral = await api_error(client.chat_postEphemeral(channel=CHANNEL, user=USER, text="x", blocks=blocks))
    assert update.response["error"] == ephemeral.response["error"] == "invalid_blocks"


# ---- files in messages ------------------------------------------------------------------------


def png_bytes(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_shared_files_are_in_the_message_and_downloadable(fake: FakeSlack) -> None:
    png = png_bytes(6, 5)
    event = fake.message_event(DM, USER, "what is in this picture?", files=[("cat.png", "image/png", png)])
    assert event["subtype"] == "file_share" and event["upload"] is False
    [shared] = event["files"]
    assert (shared["name"], shared["mimetype"], shared["filetype"], shared["size"]) == (
        "cat.png",
        "image/png",
        "png",
        len(png),
    )
    assert (shared["original_w"], shared["original_h"]) == (6, 5)
    mention = fake.app_mention_event(CHANNEL, USER, "and this", files=[("notes.txt", "text/plain", b"hi")])
    assert "original_w" not in mention["files"][0]

    history = await web_client(fake).conversations_history(channel=DM)
    assert history["messages"][0]["files"] == [shared]  # the stored message keeps its files
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {BOT_TOKEN}"}
        async with http.get(shared["url_private_download"], headers=headers) as response:
            assert await response.read() == png
    assert fake.file_downloads == [shared["id"]]


# ---- message shortcuts and response_url ---------------------------------------------------------


def shortcut_app(fake: FakeSlack, signing_secret: str | None = None) -> tuple[AsyncApp, list[dict]]:
    """A bolt app answering the message shortcut "explain" through its response_url."""
    app = AsyncApp(client=web_client(fake), signing_secret=signing_secret)
    seen: list[dict] = []

    @app.shortcut("explain")
    async def on_explain(
        ack: Callable[..., Awaitable[None]], shortcut: dict, respond: Callable[..., Awaitable[object]]
    ) -> None:
        await ack()
        seen.append(shortcut)
        files = ", ".join(f["name"] for f in shortcut["message"].get("files", []))
        await respond(f"explaining {shortcut['message']['text']!r} ({files})")
        await respond(text="for everyone", response_type="in_channel")

    return app, seen


async def test_message_shortcut_over_socket_mode(fake: FakeSlack) -> None:
    app, seen = shortcut_app(fake)
    handler = AsyncSocketModeHandler(app, APP_TOKEN)
    await handler.connect_async()
    try:
        await fake.wait_socket_connected()
        event = fake.message_event(CHANNEL, USER, "see attached", files=[("cat.png", "image/png", png_bytes(2, 2))])
        envelope = await fake.send_message_shortcut("explain", USER, CHANNEL, event["ts"])
        await fake.wait_ack(envelope)
        await eventually(lambda: len(fake.responses) == 2)
    finally:
        await handler.close_async()

    [delivery] = [d for d in fake.deliveries if d.envelope_id == envelope]
    assert delivery.type == "interactive"
    payload = delivery.payload
    assert payload["type"] == "message_action" and payload["callback_id"] == "explain"
    assert payload["channel"] == {"id": CHANNEL, "name": "general"}
    assert payload["user"]["id"] == USER and payload["team"]["id"] == fake.team_id
    assert payload["message_ts"] == event["ts"] and payload["trigger_id"] and payload["action_ts"]
    message = payload["message"]
    assert (message["ts"], message["user"], message["text"]) == (event["ts"], USER, "see attached")
    assert [f["name"] for f in message["files"]] == ["cat.png"] and seen[0]["message"] == message

    private, public = fake.responses_to(payload["response_url"])
    assert private.text == "explaining 'see attached' (cat.png)" and private.ephemeral
    assert (private.channel, private.user, private.source, private.status) == (CHANNEL, USER, "message_action", 200)
    assert not public.ephemeral and public.status == 200
    [posted] = fake.bot_messages_in(CHANNEL)  # in_channel: a message everybody sees
    assert posted.text == "for everyone"


async def test_response_url_limits_and_validation(fake: FakeSlack) -> None:
    event = fake.message_event(DM, USER, "hello")
    url = fake.message_shortcut("explain", USER, DM, event["ts"])["response_url"]
    async with aiohttp.ClientSession() as http:

        async def post(body: dict) -> tuple[int, str]:
            async with http.post(url, json=body) as response:
                return response.status, await response.text()

        assert await post({}) == (400, "no_text")
        bad_blocks = {"blocks": [{"type": "context", "elements": []}]}
        assert await post(bad_blocks) == (400, "invalid_blocks")
        for i in range(5):
            assert await post({"text": f"reply {i}"}) == (200, "ok")
        assert await post({"text": "one too many"}) == (404, "used_url")
        async with http.post(fake.base_url + "/response/unknown", json={"text": "x"}) as response:
            assert (response.status, await response.text()) == (404, "expired_url")
    assert [r.status for r in fake.responses_to(url)] == [400, 400, 200, 200, 200, 200, 200, 404]
    assert fake.bot_messages_in(DM) == []  # ephemeral responses are no messages


async def test_message_shortcut_over_signed_http(fake: FakeSlack) -> None:
    app, seen = shortcut_app(fake, signing_secret=SIGNING_SECRET)
    runner = web.AppRunner(app.web_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    try:
        parent = fake.app_mention_event(CHANNEL, USER, "a question")
        reply = fake.message_event(CHANNEL, USER, "in the thread", thread_ts=parent["ts"])
        payload = fake.message_shortcut("explain", USER, CHANNEL, reply["ts"])
        assert payload["message"]["thread_ts"] == parent["ts"]
        assert await fake.post_signed_interactive(url, payload, signing_secret=SIGNING_SECRET) == (200, "")
        await eventually(lambda: len(fake.responses) == 2)
        assert seen[0]["message_ts"] == reply["ts"]
        assert fake.responses[0].text == "explaining 'in the thread' ()"
        [posted] = fake.bot_messages_in(CHANNEL)
        assert posted.thread_ts == parent["ts"]  # an in_channel answer lands in the message's thread

        bad = await fake.post_signed_interactive(url, payload, signing_secret=SIGNING_SECRET, bad_signature=True)
        assert bad[0] == 401
    finally:
        await runner.cleanup()


# ---- the assistant panel, the Home tab and channel history ----------------------------------------


def assistant_app(fake: FakeSlack, seen: list[tuple[str, dict[str, Any]]]) -> AsyncApp:
    """A real bolt app with slack_bolt's AsyncAssistant: greets, sets prompts, titles, answers."""
    app = AsyncApp(client=web_client(fake))
    assistant = AsyncAssistant()

    @assistant.thread_started
    async def started(event: dict[str, Any], say: Any, set_suggested_prompts: Any, save_thread_context: Any) -> None:
        seen.append(("started", event))
        await save_thread_context(event["assistant_thread"]["context"])
        await say("Hi!")
        await set_suggested_prompts(prompts=[{"title": "Sum up", "message": "Summarise this channel"}], title="Try")

    @assistant.thread_context_changed
    async def changed(event: dict[str, Any]) -> None:
        seen.append(("changed", event))

    @assistant.user_message
    async def message(payload: dict[str, Any], say: Any, set_title: Any, set_status: Any) -> None:
        seen.append(("message", payload))
        await set_title(payload["text"])
        await set_status("is thinking…")
        await say(f"you said {payload['text']}")

    app.assistant(assistant)

    @app.event("app_home_opened")
    async def home(event: dict[str, Any], client: AsyncWebClient) -> None:
        seen.append(("home", event))
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"Hello <@{event['user']}>"}}]
        await client.views_publish(user_id=event["user"], view={"type": "home", "blocks": blocks})

    return app


async def test_assistant_events_reach_bolts_assistant_and_its_utilities_work(fake: FakeSlack) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    handler = AsyncSocketModeHandler(assistant_app(fake, seen), APP_TOKEN)
    await handler.connect_async()
    try:
        await fake.wait_socket_connected()
        started = fake.assistant_thread_started_event(USER, viewing=CHANNEL)
        thread = started["assistant_thread"]
        assert thread == {
            "user_id": USER,
            "context": {"channel_id": CHANNEL, "team_id": fake.team_id, "enterprise_id": None},
            "channel_id": DM,
            "thread_ts": thread["thread_ts"],
        }
        await fake.send_event(started)
        await eventually(lambda: fake.prompts_for(DM, thread["thread_ts"]) is not None)
        assert fake.prompts_for(DM, thread["thread_ts"]) == [{"title": "Sum up", "message": "Summarise this channel"}]
        assert fake.suggested_prompts[0].title == "Try"
        [root, greeting] = fake.messages_in(DM, thread["thread_ts"])
        assert root.subtype == "assistant_app_thread" and greeting.text == "Hi!"

        changed = fake.assistant_thread_context_changed_event(DM, thread["thread_ts"], "C0ELSEWHERE")
        assert changed["assistant_thread"]["context"]["channel_id"] == "C0ELSEWHERE"
        await fake.send_event(changed)
        question = fake.message_event(DM, USER, "what's new?", thread_ts=thread["thread_ts"])
        assert question["channel_type"] == "im" and question["thread_ts"] == thread["thread_ts"]
        await fake.send_event(question)
        await eventually(lambda: fake.title_of(DM, thread["thread_ts"]) == "what's new?")
        await eventually(lambda: len(fake.messages_in(DM, thread["thread_ts"])) == 4)
        assert fake.messages_in(DM, thread["thread_ts"])[-1].text == "you said what's new?"
        assert fake.status_of(DM, thread["thread_ts"]) == "is thinking…"

        await fake.send_event(fake.app_home_opened_event(USER))
        await eventually(lambda: USER in fake.home_views)
        reopened = fake.app_home_opened_event(USER)
        assert reopened["tab"] == "home" and reopened["view"]["id"] == fake.home_views[USER]["id"]
        assert fake.published_views[0].text == f"Hello <@{USER}>"
    finally:
        await handler.close_async()
    assert [kind for kind, _ in seen] == ["started", "changed", "message", "home"]


async def test_suggested_prompts_and_titles_are_checked_like_slack(fake: FakeSlack) -> None:
    client = web_client(fake)
    thread_ts = fake.assistant_thread_started_event(USER)["assistant_thread"]["thread_ts"]
    assert "channel_id" not in fake.assistant_threads[(DM, thread_ts)].context  # no channel in view

    async def prompts_error(prompts: list[dict[str, str]], in_thread: str = thread_ts) -> dict[str, Any]:
        call = client.assistant_threads_setSuggestedPrompts(channel_id=DM, thread_ts=in_thread, prompts=prompts)
        return dict((await api_error(call)).response.data or {})

    five = [{"title": f"t{i}", "message": f"m{i}"} for i in range(5)]
    assert (await prompts_error([]))["response_metadata"]["messages"] == [
        "[ERROR] must provide at least 1 item [json-pointer:/prompts]"
    ]
    assert "no more than 4 items" in (await prompts_error(five))["response_metadata"]["messages"][0]
    missing = await prompts_error([{"title": "t", "message": " "}, {"message": "m"}])
    assert missing["response_metadata"]["messages"] == [
        "[ERROR] missing required field: message [json-pointer:/prompts/0/message]",
        "[ERROR] missing required field: title [json-pointer:/prompts/1/title]",
    ]
    assert (await prompts_error(five[:1], in_thread="1.000001"))["error"] == "invalid_thread_ts"
    await client.assistant_threads_setSuggestedPrompts(channel_id=DM, thread_ts=thread_ts, prompts=five[:4])
    assert fake.prompts_for(DM, thread_ts) == five[:4]

    no_title = await api_error(client.assistant_threads_setTitle(channel_id=DM, thread_ts=thread_ts, title=""))
    assert no_title.response["error"] == "invalid_arguments"
    elsewhere = await api_error(client.assistant_threads_setTitle(channel_id=DM, thread_ts="1.000001", title="x"))
    assert elsewhere.response["error"] == "invalid_thread_ts"
    await client.assistant_threads_setTitle(channel_id=DM, thread_ts=thread_ts, title="Holidays")
    assert fake.title_of(DM, thread_ts) == "Holidays"

    fake.scopes.discard("assistant:write")
    scope = await api_error(client.assistant_threads_setTitle(channel_id=DM, thread_ts=thread_ts, title="x"))
    assert (scope.response["error"], scope.response["needed"]) == ("missing_scope", "assistant:write")


async def test_views_publish_takes_valid_home_views_only(fake: FakeSlack) -> None:
    client = web_client(fake)
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}

    async def publish_error(view: dict[str, Any], user: str = USER) -> dict[str, Any]:
        return dict((await api_error(client.views_publish(user_id=user, view=view))).response.data or {})

    assert (await publish_error({"type": "modal", "blocks": [section]}))["response_metadata"]["messages"] == [
        "[ERROR] must be home [json-pointer:/view/type]"
    ]
    markdown = {"type": "markdown", "text": "messages only"}
    assert (await publish_error({"type": "home", "blocks": [section, markdown]}))["response_metadata"]["messages"] == [
        "[ERROR] unsupported type: markdown [json-pointer:/view/blocks/1/type]"
    ]
    assert "no more than 100 items" in str(await publish_error({"type": "home", "blocks": [section] * 101}))
    assert (await publish_error({"type": "home", "blocks": [section]}, user="U0NOBODY1"))["error"] == (
        "invalid_arguments"
    )
    big = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2_900}}
    assert (await publish_error({"type": "home", "blocks": [big] * 100}))["error"] == "view_too_large"  # 250 kB

    published = await client.views_publish(user_id=USER, view={"type": "home", "blocks": [section] * 100})
    assert published["view"]["type"] == "home" and published["view"]["id"].startswith("V")
    again = await client.views_publish(user_id=USER, view={"type": "home", "blocks": [section]})
    assert again["view"]["id"] == published["view"]["id"] and len(fake.published_views) == 2
    stale = await api_error(
        client.views_publish(user_id=USER, view={"type": "home", "blocks": [section]}, hash=published["view"]["hash"])
    )
    assert stale.response["error"] == "hash_conflict"
    fake.home_tab_enabled = False
    assert (await publish_error({"type": "home", "blocks": [section]}))["error"] == "not_enabled"
    assert fake.app_home_opened_event(USER, tab="messages").get("view") is None


async def test_channel_history_needs_the_bot_in_the_channel_and_the_scope(fake: FakeSlack) -> None:
    client = web_client(fake)
    fake.message_event(CHANNEL, USER, "first")
    fake.message_event(CHANNEL, USER, "second")
    history = await client.conversations_history(channel=CHANNEL, limit=50)
    assert [m["text"] for m in history["messages"]] == ["second", "first"]  # newest first

    fake.add_channel("C0OUTSIDE", "outside").bot_member = False
    fake.add_channel("G0HIDDEN1", "hidden", is_private=True).bot_member = False
    outside = await api_error(client.conversations_history(channel="C0OUTSIDE"))
    assert outside.response["error"] == "not_in_channel"
    assert (await client.conversations_info(channel="C0OUTSIDE"))["channel"]["is_member"] is False
    hidden = await api_error(client.conversations_history(channel="G0HIDDEN1"))
    assert hidden.response["error"] == "channel_not_found"
    fake.scopes.discard("channels:history")
    scope = await api_error(client.conversations_history(channel=CHANNEL))
    assert (scope.response["error"], scope.response["needed"]) == ("missing_scope", "channels:history")


# ---- file uploads: files_upload_v2 ---------------------------------------------------------------

CSV = "question,asked\nwhere is the wiki?,3\n"


async def test_files_upload_v2_sends_a_csv_to_a_dm(fake: FakeSlack) -> None:
    client = web_client(fake)
    dm = (await client.conversations_open(users=USER))["channel"]["id"]
    res = await client.files_upload_v2(
        channel=dm, content=CSV, filename="gaps.csv", title="Knowledge gaps", initial_comment="Here you go"
    )
    assert [c.method for c in fake.calls] == [
        "conversations.open",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    assert fake.calls_to("files.getUploadURLExternal")[0].params["length"] == str(len(CSV.encode()))
    [uploaded] = fake.uploaded_files
    assert (uploaded.channel, uploaded.thread_ts, uploaded.name, uploaded.title) == (
        dm,
        None,
        "gaps.csv",
        "Knowledge gaps",
    )
    assert (uploaded.data, uploaded.text, uploaded.mimetype, uploaded.user) == (
        CSV.encode(),
        CSV,
        "text/csv",
        fake.bot_user_id,
    )
    assert res["file"]["id"] == uploaded.id and res["file"]["ims"] == [dm] and res["file"]["filetype"] == "csv"
    [message] = fake.messages_in(dm)
    assert (message.subtype, message.text, message.is_bot, message.ts) == (
        "file_share",
        "Here you go",
        True,
        uploaded.message_ts[dm],
    )
    assert [f["id"] for f in message.files] == [uploaded.id]
    history = await client.conversations_history(channel=dm)
    assert history["messages"][0]["files"][0]["title"] == "Knowledge gaps"
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {BOT_TOKEN}"}
        async with http.get(message.files[0]["url_private_download"], headers=headers) as response:
            assert await response.read() == CSV.encode()


async def test_files_upload_v2_into_a_channel_thread(fake: FakeSlack) -> None:
    client = web_client(fake)
    parent = await client.chat_postMessage(channel=CHANNEL, text="the report follows")
    await client.files_upload_v2(channel=CHANNEL, file=b"a,b\n1,2\n", filename="r.csv", thread_ts=parent["ts"])
    [uploaded] = fake.uploads_to(CHANNEL, parent["ts"])
    assert (uploaded.title, uploaded.data, uploaded.initial_comment) == ("r.csv", b"a,b\n1,2\n", None)
    thread = fake.messages_in(CHANNEL, parent["ts"])
    assert [m.subtype for m in thread] == [None, "file_share"] and thread[1].thread_ts == parent["ts"]
    replies = await client.conversations_replies(channel=CHANNEL, ts=parent["ts"])
    assert replies["messages"][1]["files"][0]["name"] == "r.csv"
    assert fake.messages_in(DM) == []


async def test_files_upload_v2_needs_files_write() -> None:
    async with FakeSlack(scopes=DEFAULT_SCOPES - {"files:write"}) as fake:
        error = await api_error(web_client(fake).files_upload_v2(channel=DM, content="x", filename="x.csv"))
        assert (error.response["error"], error.response["needed"]) == ("missing_scope", "files:write")
        assert fake.uploaded_files == [] and fake.messages_in(DM) == []


async def test_completing_an_upload_is_checked_like_slack(fake: FakeSlack) -> None:
    client = web_client(fake)
    unknown = await api_error(client.files_completeUploadExternal(files=[{"id": "F0NOSUCH01"}], channel_id=DM))
    assert unknown.response["error"] == "file_not_found"

    ticket = await client.files_getUploadURLExternal(filename="short.csv", length=3)
    assert ticket["upload_url"].startswith(fake.base_url + "/upload/")
    never_uploaded = await api_error(client.files_completeUploadExternal(files=[{"id": ticket["file_id"]}]))
    assert never_uploaded.response["error"] == "file_not_found"
    async with aiohttp.ClientSession() as http:  # the upload URL takes the bytes without a token
        async with http.post(ticket["upload_url"], data=b"12345") as response:
            assert (response.status, await response.text()) == (200, "OK - 5")
    mismatch = await api_error(client.files_completeUploadExternal(files=[{"id": ticket["file_id"]}], channel_id=DM))
    assert mismatch.response["error"] == "invalid_arguments"
    empty = await api_error(client.files_getUploadURLExternal(filename="empty.csv", length=0))
    assert empty.response["error"] == "missing_argument"

    fake.add_channel("C0OUTSIDE", "outside").bot_member = False
    fake.add_channel("G0HIDDEN1", "hidden", is_private=True).bot_member = False
    for channel, expected in [
        ("C0OUTSIDE", "not_in_channel"),
        ("G0HIDDEN1", "channel_not_found"),
        ("C0NOPE", "channel_not_found"),
    ]:
        refused = await api_error(client.files_upload_v2(channel=channel, content="x", filename="x.csv"))
        assert refused.response["error"] == expected
    assert fake.uploaded_files == [] and fake.messages_in("C0OUTSIDE") == []

    await client.files_upload_v2(channel=DM, content="x", filename="x.csv")
    done = fake.uploaded_files[0].id
    twice = await api_error(client.files_completeUploadExternal(files=[{"id": done}], channel_id=DM))
    assert twice.response["error"] == "file_not_found"  # a completed upload's ticket is used up


# ---- modals: views.open and view_submission ---------------------------------------------------------

VOTE_BLOCKS = [
    {
        "type": "actions",
        "block_id": "votes",
        "elements": [{"type": "button", "action_id": "vote_down", "text": {"type": "plain_text", "text": "👎"}}],
    }
]


def reason_modal(**changes: Any) -> dict[str, Any]:
    """The form the bot opens on 👎: one optional multiline input (block and action id "reason")."""
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": "why",
        "title": {"type": "plain_text", "text": "Why 👎?"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Skip"},
        "private_metadata": '{"answer": "A1"}',
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "optional": True,
                "label": {"type": "plain_text", "text": "What was missing or wrong?"},
                "element": {"type": "plain_text_input", "action_id": "reason", "multiline": True, "max_length": 500},
            }
        ],
    }
    return {**view, **changes}


async def clicked_trigger(fake: FakeSlack, client: AsyncWebClient) -> str:
    """A person clicks 👎 under a bot message: the trigger_id of that block_actions payload."""
    posted = await client.chat_postMessage(channel=CHANNEL, text="an answer", blocks=VOTE_BLOCKS)
    return str(fake.block_actions(USER, CHANNEL, posted["ts"], "vote_down")["trigger_id"])


async def test_views_open_exchanges_a_fresh_trigger_id_once(fake: FakeSlack) -> None:
    client = web_client(fake)
    trigger_id = await clicked_trigger(fake, client)
    opened = await client.views_open(trigger_id=trigger_id, view=reason_modal())
    view = opened["view"]
    assert view["id"].startswith("V") and view["team_id"] == fake.team_id and view["hash"]
    assert view["state"] == {"values": {}} and view["callback_id"] == "why" and view["type"] == "modal"
    [record] = fake.views_opened
    assert (record.view_id, record.user, record.trigger_id, record.callback_id) == (view["id"], USER, trigger_id, "why")
    assert record.private_metadata == '{"answer": "A1"}' and record.time > 0

    again = await api_error(client.views_open(trigger_id=trigger_id, view=reason_modal()))
    assert again.response["error"] == "exchanged_trigger_id"
    unknown = await api_error(client.views_open(trigger_id="1.2.not-issued", view=reason_modal()))
    assert unknown.response["error"] == "invalid_trigger_id"

    fake.trigger_id_lifetime = 0.05  # Slack's 3 s, shortened
    late = await clicked_trigger(fake, client)
    await asyncio.sleep(0.1)
    assert (await api_error(client.views_open(trigger_id=late, view=reason_modal()))).response["error"] == (
        "expired_trigger_id"
    )
    fake.trigger_id_lifetime = 3.0
    as_string = await client.views_open(trigger_id=await clicked_trigger(fake, client), view=json.dumps(reason_modal()))
    assert as_string["view"]["title"]["text"] == "Why 👎?" and len(fake.views_opened) == 2
    assert fake.calls_to("views.open")[-1].ok and "views.open" in fake.limits.methods


async def test_views_open_refuses_invalid_modals_without_using_the_trigger_id(fake: FakeSlack) -> None:
    client = web_client(fake)
    trigger_id = await clicked_trigger(fake, client)

    async def refused(view: dict[str, Any]) -> dict[str, Any]:
        return dict((await api_error(client.views_open(trigger_id=trigger_id, view=view))).response.data or {})

    long_title = await refused(reason_modal(title={"type": "plain_text", "text": "x" * 25}))
    assert long_title["error"] == "invalid_arguments"
    assert long_title["response_metadata"]["messages"] == [
        "[ERROR] must be less than 25 characters [json-pointer:/view/title/text]"
    ]
    unlabelled = reason_modal()
    del unlabelled["blocks"][0]["label"]
    assert (await refused(unlabelled))["response_metadata"]["messages"] == [
        "[ERROR] missing required field: label [json-pointer:/view/blocks/0/label]"
    ]
    no_submit = reason_modal()
    del no_submit["submit"]
    assert "[json-pointer:/view/submit]" in (await refused(no_submit))["response_metadata"]["messages"][0]
    too_long = reason_modal()
    too_long["blocks"][0]["element"]["max_length"] = 3001
    assert (await refused(too_long))["response_metadata"]["messages"] == [
        "[ERROR] must be between 1 and 3000 [json-pointer:/view/blocks/0/element/max_length]"
    ]
    assert (await refused(reason_modal(type="home")))["error"] == "invalid_arguments"
    assert "no more than 100 items" in str(await refused(reason_modal(blocks=[{"type": "divider"}] * 101)))
    assert "[json-pointer:/view/private_metadata]" in str(await refused(reason_modal(private_metadata="x" * 3001)))
    assert fake.views_opened == []
    await client.views_open(trigger_id=trigger_id, view=reason_modal())  # refusals left the trigger_id usable


def modal_app(fake: FakeSlack, submitted: list[dict[str, Any]]) -> AsyncApp:
    """A bolt app opening the reason form on 👎 and reading it back; a one-letter reason is refused."""
    app = AsyncApp(client=web_client(fake))

    @app.action("vote_down")
    async def on_vote(ack: Callable[..., Awaitable[None]], body: dict, client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=reason_modal())

    @app.view("why")
    async def on_why(ack: Callable[..., Awaitable[None]], body: dict, view: dict) -> None:
        submitted.append(body)
        typed = view["state"]["values"]["reason"]["reason"]["value"]
        if typed is not None and len(typed) < 2:
            await ack(response_action="errors", errors={"reason": "Say a little more"})
        else:
            await ack()

    return app


async def test_view_submission_over_socket_mode_reaches_bolts_view_handler(fake: FakeSlack) -> None:
    submitted: list[dict[str, Any]] = []
    handler = AsyncSocketModeHandler(modal_app(fake, submitted), APP_TOKEN)
    await handler.connect_async()
    try:
        await fake.wait_socket_connected()
        posted = await web_client(fake).chat_postMessage(channel=CHANNEL, text="an answer", blocks=VOTE_BLOCKS)
        await fake.send_block_action(USER, CHANNEL, posted["ts"], "vote_down")
        await eventually(lambda: len(fake.views_opened) == 1)
        view_id = fake.views_opened[0].view_id

        refused = await fake.send_view_submission(USER, view_id, {"reason": "x"})
        await fake.wait_ack(refused)
        assert fake.ack_payloads[refused] == {"response_action": "errors", "errors": {"reason": "Say a little more"}}
        assert not fake.views_opened[0].closed  # Slack keeps the modal open, showing the error

        envelope = await fake.send_view_submission(USER, view_id, {"reason": "the numbers are from 2019"})
        await fake.wait_ack(envelope)
    finally:
        await handler.close_async()

    body = submitted[-1]
    assert body["type"] == "view_submission" and body["api_app_id"] == fake.app_id and body["trigger_id"]
    assert body["user"] == {"id": USER, "username": "alice", "name": "alice", "team_id": fake.team_id}
    assert body["team"]["id"] == fake.team_id
    view = body["view"]
    assert (view["id"], view["callback_id"], view["private_metadata"]) == (view_id, "why", '{"answer": "A1"}')
    assert view["state"]["values"] == {
        "reason": {"reason": {"type": "plain_text_input", "value": "the numbers are from 2019"}}
    }
    [delivery] = [d for d in fake.deliveries if d.envelope_id == envelope]
    assert delivery.type == "interactive" and delivery.accepts_response_payload
    record = fake.views_opened[0]
    assert record.closed and record.response_actions == ["errors", None] and len(record.submissions) == 2
    with pytest.raises(AssertionError, match="already submitted"):
        fake.view_submission(USER, view_id, {"reason": "once more"})
    with pytest.raises(AssertionError, match="was opened"):
        fake.view_submission(USER, "V0NEVER000", {})


async def test_view_submission_state_values(fake: FakeSlack) -> None:
    client = web_client(fake)
    blocks = [
        reason_modal()["blocks"][0],
        {  # no ids given: Slack makes them up, and so does the fake
            "type": "input",
            "label": {"type": "plain_text", "text": "Anything else?"},
            "optional": True,
            "element": {"type": "plain_text_input"},
        },
    ]
    opened = await client.views_open(trigger_id=await clicked_trigger(fake, client), view=reason_modal(blocks=blocks))
    second = opened["view"]["blocks"][1]
    block_id, action_id = second["block_id"], second["element"]["action_id"]
    assert block_id and action_id and second["optional"] is True
    payload = fake.view_submission(USER, opened["view"]["id"], {action_id: "by action_id"})
    assert payload["view"]["state"]["values"] == {
        "reason": {"reason": {"type": "plain_text_input", "value": None}},  # left out
        block_id: {action_id: {"type": "plain_text_input", "value": "by action_id"}},
    }
    with pytest.raises(AssertionError, match="already submitted"):
        fake.view_submission(USER, opened["view"]["id"], {})

    again = await client.views_open(trigger_id=await clicked_trigger(fake, client), view=reason_modal())
    view_id = again["view"]["id"]
    with pytest.raises(AssertionError, match="no text input"):
        fake.view_submission(USER, view_id, {"elsewhere": "typed"})
    with pytest.raises(AssertionError, match="max_length"):
        fake.view_submission(USER, view_id, {"reason": "x" * 501})
    with pytest.raises(AssertionError, match="cannot submit"):
        fake.view_submission("U0SOMEONE", view_id, {"reason": "not mine"})
