"""Self-tests of the fake Slack's knowledge side (fakes/slack/): edits, deletes and people's reactions, channel
history under both of Slack's history tiers, permalinks, private channels and membership, the "Add to
knowledge" message shortcut, bots' messages, and two workspaces with the same channel ids. Driven with the real
slack_sdk client and slack_bolt apps; no bot process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from fakes.slack import DEFAULT_SCOPES, KNOWLEDGE_SCOPES, FakeSlack
from fakes.slack.oauth import FakeSlackOAuth

BOT_TOKEN = "xoxb-test"
APP_TOKEN = "xapp-test"
SIGNING_SECRET = "s3cr3t"
USER = FakeSlack.DEFAULT_USER
BOB = "U0BOB0001"
CHANNEL = FakeSlack.DEFAULT_CHANNEL
PRIVATE = "G0PRIVATE1"
ADD_TO_KNOWLEDGE = "add_to_knowledge"
WINDOW = 2.0  # the history tiers' window in these tests (a minute at Slack)
LONG_WINDOW = 8.0


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(scopes=DEFAULT_SCOPES | KNOWLEDGE_SCOPES, history_window_seconds=WINDOW) as server:
        server.add_user(BOB, "bob")
        yield server


def web_client(fake: FakeSlack, **kwargs: Any) -> AsyncWebClient:
    return AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url, **kwargs)


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def api_error(call: Awaitable[object]) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value


def recording_app(fake: FakeSlack, seen: list[dict[str, Any]], signing_secret: str | None = None) -> AsyncApp:
    """A real bolt app that records every message, membership event, reaction and "Add to knowledge" shortcut body."""
    app = AsyncApp(client=web_client(fake), signing_secret=signing_secret)

    @app.event("message")
    async def on_message(body: dict[str, Any]) -> None:
        seen.append(body)

    @app.event("member_joined_channel")
    async def on_joined(body: dict[str, Any]) -> None:
        seen.append(body)

    @app.event("member_left_channel")
    async def on_left(body: dict[str, Any]) -> None:
        seen.append(body)

    @app.event("reaction_added")
    async def on_reaction(body: dict[str, Any]) -> None:
        seen.append(body)

    @app.shortcut(ADD_TO_KNOWLEDGE)
    async def on_shortcut(ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        await ack()
        seen.append(body)

    return app


@pytest.fixture
async def socket_app(fake: FakeSlack) -> AsyncIterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    handler = AsyncSocketModeHandler(recording_app(fake, seen), APP_TOKEN)
    await handler.connect_async()
    await fake.wait_socket_connected()
    yield seen
    await handler.close_async()


async def history(client: AsyncWebClient, channel: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every message conversations.history gives, page after page (cursor), newest first."""
    messages: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await client.conversations_history(channel=channel, cursor=cursor, **kwargs)
        messages += page["messages"]
        cursor = page["response_metadata"]["next_cursor"]
        assert bool(cursor) == page["has_more"]
        if not cursor:
            return messages


# ---- edits and deletes ------------------------------------------------------------------------------


async def test_edits_and_deletes_reach_bolt_over_socket_mode(fake: FakeSlack, socket_app: list[dict[str, Any]]) -> None:
    parent = fake.message_event(CHANNEL, USER, "the VPN guide is on the wiki")
    reply = fake.message_event(CHANNEL, BOB, "which page?", thread_ts=parent["ts"])
    changed = fake.message_changed_event(CHANNEL, reply["ts"], "which page of the wiki?")
    deleted = fake.message_deleted_event(CHANNEL, reply["ts"])
    for event in (changed, deleted):
        await fake.wait_ack(await fake.send_event(event))
    await eventually(lambda: len(socket_app) == 2)

    edit, delete = sorted(socket_app, key=lambda body: body["event"]["subtype"])
    assert (edit["type"], edit["team_id"], edit["event_id"][:2]) == ("event_callback", fake.team_id, "Ev")
    event = edit["event"]
    assert (event["type"], event["subtype"], event["hidden"], event["channel"]) == (
        "message",
        "message_changed",
        True,
        CHANNEL,
    )
    assert event["channel_type"] == "channel" and event["ts"] != reply["ts"]
    assert (event["message"]["ts"], event["message"]["text"], event["message"]["user"]) == (
        reply["ts"],
        "which page of the wiki?",
        BOB,
    )
    assert event["message"]["thread_ts"] == parent["ts"] and event["message"]["edited"]["user"] == BOB
    assert event["previous_message"]["text"] == "which page?" and "edited" not in event["previous_message"]

    event = delete["event"]
    assert (event["subtype"], event["deleted_ts"], event["hidden"], event["channel"]) == (
        "message_deleted",
        reply["ts"],
        True,
        CHANNEL,
    )
    assert event["previous_message"]["text"] == "which page of the wiki?"
    assert event["previous_message"]["thread_ts"] == parent["ts"]
    assert fake.find_message(CHANNEL, reply["ts"]) is None
    thread = await web_client(fake).conversations_replies(channel=CHANNEL, ts=parent["ts"])
    assert [m["ts"] for m in thread["messages"]] == [parent["ts"]]


async def test_a_persons_reaction_reaches_bolt_and_a_reply_finds_its_thread(
    fake: FakeSlack, socket_app: list[dict[str, Any]]
) -> None:
    parent = fake.message_event(CHANNEL, USER, "how do I reset my badge?")
    reply = fake.message_event(CHANNEL, BOB, "hold it to the reader for ten seconds", thread_ts=parent["ts"])
    later = fake.message_event(CHANNEL, USER, "thanks, it worked", thread_ts=parent["ts"])
    event = fake.reaction_added_event(CHANNEL, reply["ts"], USER)
    assert event is not None
    await fake.wait_ack(await fake.send_event(event))
    await eventually(lambda: len(socket_app) == 1)
    [body] = socket_app
    assert body["event"]["type"] == "reaction_added" and body["team_id"] == fake.team_id
    assert (body["event"]["user"], body["event"]["reaction"], body["event"]["item_user"]) == (
        USER,
        "white_check_mark",
        BOB,
    )
    assert body["event"]["item"] == {"type": "message", "channel": CHANNEL, "ts": reply["ts"]}
    assert fake.reaction_added_event(CHANNEL, reply["ts"], USER) is not None  # the same again: counted once

    client = web_client(fake)
    thread = await client.conversations_replies(channel=CHANNEL, ts=reply["ts"], latest=reply["ts"], inclusive=True)
    assert [m["ts"] for m in thread["messages"]] == [parent["ts"], reply["ts"]]  # the parent first, up to the reply
    assert thread["messages"][1]["reactions"] == [{"name": "white_check_mark", "users": [USER], "count": 1}]
    whole = await client.conversations_replies(channel=CHANNEL, ts=later["ts"])
    assert [m["ts"] for m in whole["messages"]] == [parent["ts"], reply["ts"], later["ts"]]

    fake.add_channel("C0NOBOT01", "elsewhere", bot_member=False)
    outside = fake.seed_message("C0NOBOT01", "not the app's to see", user=BOB)
    assert fake.reaction_added_event("C0NOBOT01", outside.ts, USER) is None  # no event of a channel it isn't in
    fake.scopes.discard("reactions:read")
    assert fake.reaction_added_event(CHANNEL, parent["ts"], BOB, "eyes") is None  # nor without reactions:read
    assert fake.find_message(CHANNEL, parent["ts"]).reactions == {"eyes": [BOB]}  # people see it all the same


async def test_edits_and_deletes_reach_bolt_over_signed_http(fake: FakeSlack) -> None:
    seen: list[dict[str, Any]] = []
    runner = web.AppRunner(recording_app(fake, seen, signing_secret=SIGNING_SECRET).web_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    try:
        posted = fake.message_event(CHANNEL, USER, "release is on Friday")
        events = [
            fake.message_changed_event(CHANNEL, posted["ts"], "release is on Monday"),
            fake.message_deleted_event(CHANNEL, posted["ts"]),
        ]
        for event in events:
            status, _ = await fake.post_signed_event(url, fake.event_callback(event), signing_secret=SIGNING_SECRET)
            assert status == 200
        await eventually(lambda: len(seen) == 2)
    finally:
        await runner.cleanup()
    assert [(b["team_id"], b["event"]["subtype"]) for b in seen] == [
        (fake.team_id, "message_changed"),
        (fake.team_id, "message_deleted"),
    ]
    assert seen[0]["event"]["message"]["text"] == "release is on Monday"
    assert seen[1]["event"]["deleted_ts"] == posted["ts"]
    assert seen[0]["event_id"] != seen[1]["event_id"]


async def test_a_deleted_thread_parent_with_replies_becomes_a_tombstone(fake: FakeSlack) -> None:
    parent = fake.message_event(CHANNEL, USER, "who owns the build?")
    fake.message_event(CHANNEL, BOB, "I do", thread_ts=parent["ts"])
    event = fake.message_deleted_event(CHANNEL, parent["ts"])
    assert event["subtype"] == "message_changed"
    tombstone = event["message"]
    assert (tombstone["subtype"], tombstone["text"], tombstone["user"], tombstone["hidden"]) == (
        "tombstone",
        "This message was deleted.",
        "USLACKBOT",
        True,
    )
    assert event["previous_message"]["text"] == "who owns the build?"
    [listed] = (await web_client(fake).conversations_history(channel=CHANNEL))["messages"]
    assert (listed["subtype"], listed["reply_count"]) == ("tombstone", 1)


# ---- history, its two tiers, and seeding ------------------------------------------------------------


async def test_seeded_history_pages_newest_first_with_threads_and_bots(fake: FakeSlack) -> None:
    seeded = fake.seed_history(CHANNEL, 1_000, other_bot_every=10, own_bot_every=7, thread_every=5, replies=2)
    assert len(seeded) == 1_000 + 200 * 2
    client = web_client(fake)
    messages = await history(client, CHANNEL, limit=200)
    assert [m["text"] for m in messages] == [f"message {i}" for i in reversed(range(1_000))]

    other = next(m for m in messages if m["text"] == "message 9")
    assert (other["subtype"], other["bot_id"], other["username"]) == ("bot_message", "B0OTHERBOT", "otherbot")
    assert "user" not in other
    own = next(m for m in messages if m["text"] == "message 6")
    assert (own["user"], own["bot_id"], own["app_id"], own["bot_profile"]["id"]) == (
        fake.bot_user_id,
        fake.bot_id,
        fake.app_id,
        fake.bot_id,
    )
    assert "subtype" not in own
    parent = next(m for m in messages if m["text"] == "message 4")
    assert (parent["reply_count"], parent["reply_users"]) == (2, sorted([USER, fake.bot_user_id]))

    first = await client.conversations_replies(channel=CHANNEL, ts=parent["ts"], limit=2)
    rest = await client.conversations_replies(
        channel=CHANNEL, ts=parent["ts"], cursor=first["response_metadata"]["next_cursor"]
    )
    thread = first["messages"] + rest["messages"]
    assert [m["text"] for m in thread] == ["message 4", "reply 0 to message 4", "reply 1 to message 4"]
    assert (first["has_more"], rest["has_more"]) == (True, False)
    assert thread[2]["bot_id"] == fake.bot_id and thread[1]["thread_ts"] == parent["ts"]

    window = await client.conversations_history(channel=CHANNEL, oldest=seeded[0].ts, latest=messages[997]["ts"])
    assert [m["text"] for m in window["messages"]] == ["message 1"]  # both ends exclusive
    inclusive = await client.conversations_history(
        channel=CHANNEL, oldest=seeded[0].ts, latest=messages[997]["ts"], inclusive=True
    )
    assert [m["text"] for m in inclusive["messages"]] == ["message 2", "message 1", "message 0"]
    posted = fake.message_event(CHANNEL, USER, "new since")
    assert (await client.conversations_history(channel=CHANNEL, limit=1))["messages"][0]["ts"] == posted["ts"]


async def test_seeding_a_hundred_thousand_messages_is_fast(fake: FakeSlack) -> None:
    started = time.monotonic()
    fake.seed_history(CHANNEL, 100_000, thread_every=10, replies=1)
    assert time.monotonic() - started < 10.0
    page = await web_client(fake).conversations_history(channel=CHANNEL, limit=999)
    assert len(page["messages"]) == 999 and page["messages"][0]["text"] == "message 99999"


async def test_internal_apps_get_fifty_history_calls_a_window() -> None:
    # A window of its own, long enough that the fifty calls (a 999-message page among them) fit in it on a busy
    # machine: with the module's 2 s the first calls could leave the window before the fifty-first was made.
    async with FakeSlack(scopes=DEFAULT_SCOPES | KNOWLEDGE_SCOPES, history_window_seconds=LONG_WINDOW) as fake:
        await fifty_history_calls_a_window(fake)


async def fifty_history_calls_a_window(fake: FakeSlack) -> None:
    fake.seed_history(CHANNEL, 1_200)
    client = web_client(fake)
    page = await client.conversations_history(channel=CHANNEL, limit=1_000)
    assert len(page["messages"]) == 999  # the largest limit
    assert len((await client.conversations_history(channel=CHANNEL))["messages"]) == 100  # the default
    for _ in range(48):
        await client.conversations_history(channel=CHANNEL, limit=1)
    limited = await api_error(client.conversations_history(channel=CHANNEL, limit=1))
    assert (limited.response.status_code, limited.response.data) == (429, {"ok": False, "error": "ratelimited"})
    retry_after = int(limited.response.headers["Retry-After"])
    assert 1 <= retry_after <= LONG_WINDOW
    parent = fake.message_event(CHANNEL, USER, "a thread")
    await client.conversations_replies(channel=CHANNEL, ts=parent["ts"])  # another method: its own window
    await asyncio.sleep(retry_after)
    assert (await client.conversations_history(channel=CHANNEL, limit=1))["ok"]


async def test_apps_outside_the_marketplace_get_one_call_and_fifteen_messages(fake: FakeSlack) -> None:
    fake.history_tier = "outside_marketplace"
    fake.seed_history(CHANNEL, 40, thread_every=1, replies=20)
    client = web_client(fake)
    page = await client.conversations_history(channel=CHANNEL, limit=200)
    assert len(page["messages"]) == 15 and page["has_more"]
    limited = await api_error(
        client.conversations_history(channel=CHANNEL, cursor=page["response_metadata"]["next_cursor"])
    )
    assert limited.response.status_code == 429 and 1 <= int(limited.response.headers["Retry-After"]) <= WINDOW
    assert len((await client.conversations_replies(channel=CHANNEL, ts=page["messages"][0]["ts"]))["messages"]) == 15

    patient = web_client(fake, retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)])
    started = time.monotonic()
    rest = await patient.conversations_history(channel=CHANNEL, cursor=page["response_metadata"]["next_cursor"])
    assert time.monotonic() - started >= 0.5  # it waited for Retry-After
    assert [m["text"] for m in rest["messages"]] == [f"message {i}" for i in range(24, 9, -1)]
    assert fake.ratelimited_count == 2


async def test_history_needs_the_bot_in_the_channel(fake: FakeSlack) -> None:
    fake.add_channel(PRIVATE, "secret", is_private=True, members=[USER], bot_member=False)
    fake.add_channel("C0OUTSIDE", "outside", bot_member=False)
    client = web_client(fake)
    assert (await api_error(client.conversations_history(channel=PRIVATE))).response["error"] == "channel_not_found"
    outside = await api_error(client.conversations_history(channel="C0OUTSIDE"))
    assert outside.response["error"] == "not_in_channel"
    parent = fake.seed_message("C0OUTSIDE", "a question")
    replies = await api_error(client.conversations_replies(channel="C0OUTSIDE", ts=parent.ts))
    assert replies.response["error"] == "not_in_channel"
    bad = await api_error(client.conversations_history(channel=CHANNEL, cursor="bm9wZQ=="))
    assert bad.response["error"] == "invalid_cursor"


# ---- permalinks -------------------------------------------------------------------------------------


async def test_permalinks_of_messages_and_thread_replies(fake: FakeSlack) -> None:
    parent = fake.message_event(CHANNEL, USER, "the wiki has it")
    reply = fake.message_event(CHANNEL, BOB, "thanks", thread_ts=parent["ts"])
    client = web_client(fake)
    link = await client.chat_getPermalink(channel=CHANNEL, message_ts=parent["ts"])
    assert (link["channel"], link["permalink"]) == (
        CHANNEL,
        f"https://fake-workspace.slack.com/archives/{CHANNEL}/p{parent['ts'].replace('.', '')}",
    )
    in_thread = (await client.chat_getPermalink(channel=CHANNEL, message_ts=reply["ts"]))["permalink"]
    assert in_thread == (
        f"https://fake-workspace.slack.com/archives/{CHANNEL}/p{reply['ts'].replace('.', '')}"
        f"?thread_ts={parent['ts']}&cid={CHANNEL}"
    )
    assert fake.permalink(CHANNEL, reply["ts"]) == in_thread
    missing = await api_error(client.chat_getPermalink(channel=CHANNEL, message_ts="1.000001"))
    assert missing.response["error"] == "message_not_found"
    fake.add_channel(PRIVATE, "secret", is_private=True, bot_member=False)
    hidden = fake.seed_message(PRIVATE, "hidden")
    assert (await api_error(client.chat_getPermalink(channel=PRIVATE, message_ts=hidden.ts))).response[
        "error"
    ] == "channel_not_found"


# ---- private channels and membership --------------------------------------------------------------


async def test_membership_is_kept_and_announced(fake: FakeSlack, socket_app: list[dict[str, Any]]) -> None:
    fake.add_channel(PRIVATE, "secret", is_private=True, bot_member=False)
    client = web_client(fake)
    for hidden in (client.conversations_info(channel=PRIVATE), client.conversations_members(channel=PRIVATE)):
        assert (await api_error(hidden)).response["error"] == "channel_not_found"  # the bot can't see it

    events = [
        fake.member_joined_event(PRIVATE, fake.bot_user_id, inviter=USER),
        fake.member_joined_event(PRIVATE, USER),
        fake.member_joined_event(PRIVATE, BOB, inviter=USER),
        fake.member_left_event(PRIVATE, USER),
    ]
    for event in events:
        await fake.wait_ack(await fake.send_event(event))
    await eventually(lambda: len(socket_app) == 4)
    assert sorted((b["event"]["type"], b["event"]["user"], b["event"]["channel_type"]) for b in socket_app) == [
        ("member_joined_channel", USER, "G"),
        ("member_joined_channel", BOB, "G"),
        ("member_joined_channel", fake.bot_user_id, "G"),
        ("member_left_channel", USER, "G"),
    ]
    [bob_joined] = [b["event"] for b in socket_app if b["event"]["user"] == BOB]
    assert bob_joined["inviter"] == USER and bob_joined["team"] == fake.team_id

    info = (await client.conversations_info(channel=PRIVATE, include_num_members=True))["channel"]
    assert (info["is_private"], info["is_member"], info["num_members"]) == (True, True, 2)
    outside = await client.conversations_info(channel=fake.add_channel("C0OUTSIDE", "o", bot_member=False).id)
    assert (outside["channel"]["is_private"], outside["channel"]["is_member"]) == (False, False)
    first = await client.conversations_members(channel=PRIVATE, limit=1)
    rest = await client.conversations_members(channel=PRIVATE, cursor=first["response_metadata"]["next_cursor"])
    assert first["members"] + rest["members"] == sorted([BOB, fake.bot_user_id])
    assert rest["response_metadata"]["next_cursor"] == ""
    assert fake.is_member(PRIVATE, BOB) and not fake.is_member(PRIVATE, USER)
    assert fake.is_member(CHANNEL, BOB)  # a new person is in #general, like Slack's default channel

    fake.scopes -= KNOWLEDGE_SCOPES
    scope = await api_error(client.conversations_members(channel=PRIVATE))
    assert (scope.response["error"], scope.response["needed"]) == ("missing_scope", "groups:read")


# ---- the "Add to knowledge" message shortcut and bots' messages -----------------------------------------


async def test_add_to_knowledge_shortcut_carries_the_message_and_its_files(
    fake: FakeSlack, socket_app: list[dict[str, Any]]
) -> None:
    fake.add_channel(PRIVATE, "secret", is_private=True, members=[USER])
    parent = fake.message_event(PRIVATE, USER, "the runbook")
    reply = fake.message_event(
        PRIVATE, USER, "attached", thread_ts=parent["ts"], files=[("runbook.txt", "text/plain", b"restart it")]
    )
    await fake.wait_ack(await fake.send_message_shortcut(ADD_TO_KNOWLEDGE, USER, PRIVATE, reply["ts"]))
    await eventually(lambda: len(socket_app) == 1)
    [payload] = socket_app
    assert (payload["type"], payload["callback_id"], payload["team"], payload["channel"]["id"]) == (
        "message_action",
        ADD_TO_KNOWLEDGE,
        {"id": fake.team_id, "domain": "fake-workspace"},
        PRIVATE,
    )
    assert payload["user"]["id"] == USER and payload["trigger_id"] and payload["response_url"]
    message = payload["message"]
    assert (message["ts"], message["thread_ts"], message["text"]) == (reply["ts"], parent["ts"], "attached")
    [shared] = message["files"]
    async with aiohttp.ClientSession() as http:
        async with http.get(shared["url_private"], headers={"Authorization": f"Bearer {BOT_TOKEN}"}) as response:
            assert await response.read() == b"restart it"


async def test_bots_messages_carry_bot_id_and_bolt_ignores_its_own(
    fake: FakeSlack, socket_app: list[dict[str, Any]]
) -> None:
    client = web_client(fake)
    own = await client.chat_postMessage(channel=CHANNEL, text="my answer")
    own_event = fake.message_event_of(CHANNEL, own["ts"])
    assert (own_event["user"], own_event["bot_id"], own_event["app_id"], own_event["channel_type"]) == (
        fake.bot_user_id,
        fake.bot_id,
        fake.app_id,
        "channel",
    )
    assert "subtype" not in own_event and "client_msg_id" not in own_event
    app_bot = fake.bot_message_event(CHANNEL, "deploy finished")
    assert (app_bot["bot_id"], app_bot["user"], app_bot["bot_profile"]["name"]) == (
        "B0OTHERBOT",
        "U0OTHERBOT",
        "otherbot",
    )
    assert "subtype" not in app_bot
    legacy = fake.bot_message_event(CHANNEL, "build red", bot_id="B0WEBHOOK", name="ci", legacy=True)
    assert (legacy["subtype"], legacy["username"], "user" in legacy) == ("bot_message", "ci", False)

    for event in (own_event, app_bot, legacy):
        await fake.wait_ack(await fake.send_event(event))
    await eventually(lambda: len(socket_app) == 2)
    assert sorted(b["event"]["text"] for b in socket_app) == ["build red", "deploy finished"]  # its own: ignored
    listed = {m["text"]: m for m in (await client.conversations_history(channel=CHANNEL))["messages"]}
    assert listed["build red"]["subtype"] == "bot_message" and listed["my answer"]["bot_id"] == fake.bot_id


# ---- two workspaces with the same channel ids ---------------------------------------------------------


async def test_two_workspaces_with_the_same_channel_ids_stay_apart() -> None:
    async with (
        FakeSlackOAuth() as oauth,
        FakeSlack(
            team_id="T0ALPHA01", scopes=DEFAULT_SCOPES | KNOWLEDGE_SCOPES, history_window_seconds=WINDOW
        ) as alpha,
        FakeSlack(
            team_id="T0BRAVO01",
            scopes=DEFAULT_SCOPES | KNOWLEDGE_SCOPES,
            history_window_seconds=WINDOW,
            history_tier="outside_marketplace",
        ) as bravo,
    ):
        oauth.add_workspace(alpha, "Alpha")
        oauth.add_workspace(bravo, "Bravo")
        clients = {}
        for team in ("T0ALPHA01", "T0BRAVO01"):
            code = oauth.approve_install("state", team=team, user=USER)
            token = await AsyncWebClient(base_url=oauth.api_url).oauth_v2_access(
                client_id=oauth.client_id, client_secret=oauth.client_secret, code=code
            )
            clients[team] = AsyncWebClient(token=str(token["access_token"]), base_url=oauth.api_url)
        for fake, name in ((alpha, "alpha"), (bravo, "bravo")):
            fake.add_channel(PRIVATE, "secret", is_private=True, members=[USER] if name == "alpha" else [BOB])
            fake.seed_message(PRIVATE, f"{name} secret")

        for team, fake, name in (("T0ALPHA01", alpha, "alpha"), ("T0BRAVO01", bravo, "bravo")):
            client = clients[team]
            [message] = (await client.conversations_history(channel=PRIVATE))["messages"]
            assert message["text"] == f"{name} secret" and message["team"] == team
            link = (await client.chat_getPermalink(channel=PRIVATE, message_ts=message["ts"]))["permalink"]
            assert link.startswith(f"https://fake-{team.lower()}.slack.com/archives/{PRIVATE}/")
            members = (await client.conversations_members(channel=PRIVATE))["members"]
            assert members == sorted([USER if name == "alpha" else BOB, fake.bot_user_id])
            event = fake.event_callback(fake.member_left_event(PRIVATE, USER))
            assert (event["team_id"], event["event"]["team"]) == (team, team)

        # bravo's one history call a window is spent; alpha's are its own
        limited = await api_error(clients["T0BRAVO01"].conversations_history(channel=PRIVATE))
        assert limited.response.status_code == 429 and limited.response.headers["Retry-After"]
        assert (await clients["T0ALPHA01"].conversations_history(channel=PRIVATE))["ok"]
        assert not alpha.is_member(PRIVATE, BOB) and not bravo.is_member(PRIVATE, USER)
