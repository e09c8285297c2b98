"""One bot process serving two workspaces installed through OAuth, whose channel, DM and user ids are the
same (C0GENERAL, Alice and her DM): each is answered with its own token, and nothing one workspace says or
sets reaches the other's prompt, /reset, settings or Home tab. Uninstalling one deletes its tokens and its
data, and leaves the other as it was (unless SLACK_KEEP_DATA_ON_UNINSTALL keeps the data)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from adapters.shared.reply_records import INTERRUPTED_NOTE
from adapters.slack_bot.installs.installations import RedisInstallationStore
from fakes.harness.processes import REDIS_URL, delete_keys
from fakes.harness.slack_world import SIGNING_SECRET, SlackHarness, eventually
from fakes.model_server import FakeModelServer, RecordedRequest, Script, tokenize
from fakes.slack import FakeSlack
from fakes.slack.oauth import FakeSlackOAuth
from tests.slack.installs.conftest import ALICE, GENERAL, TURN_ENDS, Installer, WorkspaceMaker, find, oauth_env

pytestmark = pytest.mark.asyncio(loop_scope="module")

ADMIN = "U0ADMIN01"
DM = "D" + ALICE[1:]  # Alice's DM with the app: the same id in both fake workspaces


# -- talking to a workspace ----------------------------------------------------------------


async def deliver(installer: Installer, team: FakeSlack, payload: dict[str, Any]) -> None:
    status, _ = await team.post_signed_event(installer.harness.events_url, payload, signing_secret=SIGNING_SECRET)
    assert status == 200


async def command(installer: Installer, team: FakeSlack, name: str, text: str, user: str, channel: str) -> str:
    payload = team.slash_command(name, text, user, channel)
    status, body = await team.post_signed_command(installer.harness.events_url, payload, signing_secret=SIGNING_SECRET)
    assert status == 200, body
    return str(json.loads(body).get("text", "")) if body.startswith("{") else body  # bolt acks text as it is


async def ask(
    installer: Installer, model: FakeModelServer, team: FakeSlack, channel: str, text: str
) -> RecordedRequest:
    """`text` from Alice in `channel` of `team` (a DM, or a mention in a channel): the model's request for it,
    once the reply is in `team`'s own fake, posted by `team`'s own bot."""
    if channel == DM:
        event = team.message_event(DM, ALICE, text)
        thread = f"slack:{team.team_id}:dm:{DM}"
    else:
        event = team.app_mention_event(channel, ALICE, f"<@{team.bot_user_id}> {text}")
        thread = f"slack:{team.team_id}:{channel}:{event['ts']}"
    bot = installer.harness.bots[0]

    def ended() -> int:
        return sum(len(bot.logs(end, thread=thread)) for end in TURN_ENDS)

    before, replies = ended(), len(team.bot_messages_in(channel))
    await deliver(installer, team, team.event_callback(event))
    await eventually(lambda: ended() > before, 20, f"the answer to {text!r}")
    assert not bot.logs("reply_failed", thread=thread), installer.harness.report()
    await eventually(lambda: len(team.bot_messages_in(channel)) > replies, 10, "the reply in its own workspace")
    assert all(message.bot_id == team.bot_id for message in team.bot_messages_in(channel))
    return [request for request in model.requests if text in (request.last_user_content() or "")][-1]


def prompt_text(request: RecordedRequest) -> str:
    return json.dumps(request.body["messages"])


@pytest_asyncio.fixture(loop_scope="module")
async def pair(installer: Installer, workspaces: WorkspaceMaker) -> tuple[FakeSlack, FakeSlack]:
    """Two installed workspaces with the same ids: each has Alice, her DM, C0GENERAL, and an admin."""
    alpha, bravo = await workspaces.new("Alpha"), await workspaces.new("Bravo")
    for team in (alpha, bravo):
        team.add_user(ADMIN, "admin").is_admin = True
        if DM not in team.channels:
            team.add_channel(DM, ALICE, is_im=True, user=ALICE)
        assert (await installer.install(team)).status == 200
    return alpha, bravo


async def keys_with(prefix: str, needle: str) -> list[str]:
    """The keys holding what the bot keeps about `needle` (not a lock's fencing counter: a number, kept a minute)."""
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        found = [key async for key in client.scan_iter(match=f"{prefix}*{needle}*", count=1000)]
        return [key for key in found if not key.endswith(":lock:fence")]
    finally:
        await client.aclose()


# -- nothing shared ---------------------------------------------------------------------------


async def test_a_dm_and_its_reset_stay_in_their_workspace(
    installer: Installer, model: FakeModelServer, pair: tuple[FakeSlack, FakeSlack]
) -> None:
    alpha, bravo = pair
    secret = f"zebra-{uuid.uuid4().hex[:8]}"
    await ask(installer, model, alpha, DM, f"remember the word {secret}")
    in_bravo = await ask(installer, model, bravo, DM, "which word did I ask you to remember?")
    assert secret not in prompt_text(in_bravo)

    said = await command(installer, bravo, "/reset", "", ALICE, DM)
    assert said.startswith("Done: I've forgotten that conversation.")
    in_alpha = await ask(installer, model, alpha, DM, "and which word was it?")
    assert secret in prompt_text(in_alpha), "Bravo's /reset must not touch Alpha's DM"


async def test_a_channels_persona_stays_in_its_workspace(
    installer: Installer, model: FakeModelServer, pair: tuple[FakeSlack, FakeSlack]
) -> None:
    alpha, bravo = pair
    said = await command(installer, alpha, "/persona", "You are a pirate in Alpha.", ADMIN, GENERAL)
    assert said.startswith("Done: this channel's persona is set."), said
    in_alpha = await ask(installer, model, alpha, GENERAL, f"who are you? {uuid.uuid4().hex[:6]}")
    in_bravo = await ask(installer, model, bravo, GENERAL, f"who are you? {uuid.uuid4().hex[:6]}")
    assert in_alpha.body["messages"][0]["content"].startswith("You are a pirate in Alpha.")
    assert "pirate" not in prompt_text(in_bravo)
    shown = await command(installer, bravo, "/persona", "", ALICE, GENERAL)
    assert "pirate" not in shown and "the bot's default" in shown, shown


async def test_the_home_tab_is_published_to_its_own_workspace(
    installer: Installer, pair: tuple[FakeSlack, FakeSlack]
) -> None:
    alpha, bravo = pair
    await deliver(installer, alpha, alpha.event_callback(alpha.app_home_opened_event(ALICE)))
    await eventually(lambda: bool(alpha.published_views), 10, "Alpha's Home tab")
    assert not bravo.published_views
    home = json.dumps(alpha.home_views[ALICE])
    assert f"<@{alpha.bot_user_id}>" in home and bravo.bot_user_id not in home


async def test_the_assistant_panel_reads_the_channel_of_its_own_workspace(
    installer: Installer, model: FakeModelServer, pair: tuple[FakeSlack, FakeSlack]
) -> None:
    for team in pair:  # the same channel id in both, each with its own news
        team.message_event(GENERAL, ALICE, f"{team.team_id} ships on Friday.")
    for team in pair:
        started = team.assistant_thread_started_event(ALICE, GENERAL)
        dm, thread_ts = started["assistant_thread"]["channel_id"], started["assistant_thread"]["thread_ts"]
        await deliver(installer, team, team.event_callback(started))
        await eventually(lambda team=team, dm=dm, ts=thread_ts: team.prompts_for(dm, ts) is not None, 10, "prompts")
        marker = f"sum-{uuid.uuid4().hex[:6]}"
        await deliver(
            installer,
            team,
            team.event_callback(team.message_event(dm, ALICE, f"{marker} summarise this channel", thread_ts=thread_ts)),
        )
        await eventually(
            lambda marker=marker: any(marker in (r.last_user_content() or "") for r in model.requests),
            15,
            "the question",
        )
        [question] = [r.last_user_content() or "" for r in model.requests if marker in (r.last_user_content() or "")]
        other = next(t for t in pair if t is not team)
        assert f"{team.team_id} ships on Friday." in question and other.team_id not in question, question


# -- leaving ----------------------------------------------------------------------------------


async def test_uninstalling_deletes_the_workspaces_tokens_and_data_and_nothing_else(
    installer: Installer,
    model: FakeModelServer,
    pair: tuple[FakeSlack, FakeSlack],
    slack: FakeSlackOAuth,
    store: RedisInstallationStore,
    prefix: str,
) -> None:
    alpha, bravo = pair
    for team in pair:
        said = await command(installer, team, "/persona", f"You are the {team.team_id} bot.", ADMIN, GENERAL)
        assert said.startswith("Done"), said
        await ask(installer, model, team, DM, f"hello from {team.team_id}")
    for team in pair:
        assert await keys_with(prefix, f"slack:{team.team_id}:dm:{DM}"), "the DM's history is kept"
        assert await keys_with(prefix, f"slack:channel:{team.team_id}:{GENERAL}")

    for payload in slack.uninstall(alpha.team_id, installers=(ALICE,)):
        await deliver(installer, alpha, payload)
    bot = installer.harness.bots[0]
    await bot.wait_log("slack_workspace_data_deleted", team=alpha.team_id)
    assert await find(store, alpha) is None
    assert await store.async_find_bot(enterprise_id=None, team_id=alpha.team_id) is None
    assert not await keys_with(prefix, f"slack:{alpha.team_id}:dm:{DM}")
    assert not await keys_with(prefix, f"slack:channel:{alpha.team_id}:{GENERAL}")
    assert not await keys_with(prefix, f"slack:install:{{none:{alpha.team_id}}}")

    # Bravo keeps its install, its DM and its persona, and is answered as before.
    assert await find(store, bravo) is not None
    assert await keys_with(prefix, f"slack:{bravo.team_id}:dm:{DM}")
    again = await ask(installer, model, bravo, GENERAL, f"still there? {uuid.uuid4().hex[:6]}")
    assert again.body["messages"][0]["content"].startswith(f"You are the {bravo.team_id} bot.")


async def test_a_revoked_bot_token_deletes_the_workspaces_tokens_and_data(
    installer: Installer,
    model: FakeModelServer,
    workspaces: WorkspaceMaker,
    slack: FakeSlackOAuth,
    store: RedisInstallationStore,
    prefix: str,
) -> None:
    team = await workspaces.new("Revoked")
    team.add_user(ADMIN, "admin").is_admin = True
    team.add_channel(DM, ALICE, is_im=True, user=ALICE)
    assert (await installer.install(team)).status == 200
    said = await command(installer, team, "/persona", "You are revoked soon.", ADMIN, GENERAL)
    assert said.startswith("Done"), said
    await ask(installer, model, team, DM, f"before the revoke {uuid.uuid4().hex[:6]}")

    revoked, _ = slack.uninstall(team.team_id)  # only tokens_revoked arrives (an admin revoked the bot's token)
    assert revoked["event"]["type"] == "tokens_revoked"
    await deliver(installer, team, revoked)
    await installer.harness.bots[0].wait_log("slack_workspace_data_deleted", team=team.team_id)
    assert await find(store, team) is None
    assert not await keys_with(prefix, f"slack:{team.team_id}:dm:{DM}")
    assert not await keys_with(prefix, f"slack:channel:{team.team_id}:{GENERAL}")


async def test_removing_an_org_wide_install_deletes_the_data_of_the_workspaces_it_answered_in(
    installer: Installer, model: FakeModelServer, workspaces: WorkspaceMaker, slack: FakeSlackOAuth, prefix: str
) -> None:
    enterprise = f"E{uuid.uuid4().hex[:6].upper()}"
    grid = await workspaces.new("Grid workspace", enterprise=(enterprise, "Grid Org"))
    grid.add_channel(DM, ALICE, is_im=True, user=ALICE)
    assert (await installer.install(grid, org_wide=True)).status == 200
    await ask(installer, model, grid, DM, f"hello from the org {uuid.uuid4().hex[:6]}")
    assert await keys_with(prefix, f"slack:{grid.team_id}:dm:{DM}")

    for payload in slack.uninstall(grid.team_id):
        await deliver(installer, grid, payload)
    await installer.harness.bots[0].wait_log("slack_workspace_data_deleted", team=grid.team_id)
    assert not await keys_with(prefix, f"slack:{grid.team_id}:dm:{DM}")
    assert not await keys_with(prefix, f"slack:install:{{{enterprise}:")


@pytest_asyncio.fixture(loop_scope="module")
async def keeping(
    model: FakeModelServer, slack: FakeSlackOAuth, browser: aiohttp.ClientSession
) -> AsyncIterator[tuple[Installer, str]]:
    """A second deployment (its own Redis prefix) with SLACK_KEEP_DATA_ON_UNINSTALL=true."""
    key_prefix = f"test:slack-keep:{uuid.uuid4().hex[:12]}:"
    async with FakeSlack() as unused:
        env = oauth_env(slack) | {"SLACK_KEEP_DATA_ON_UNINSTALL": "true"}
        harness = SlackHarness(unused, model.base_url, key_prefix, mode="http", extra_env=env)
        await harness.start_bot()
        try:
            yield Installer(browser, harness, slack), key_prefix
        finally:
            print(harness.report())
            await harness.close()
            delete_keys(key_prefix)


async def test_with_keep_data_an_uninstall_deletes_the_tokens_but_keeps_the_conversations(
    keeping: tuple[Installer, str], model: FakeModelServer, workspaces: WorkspaceMaker, slack: FakeSlackOAuth
) -> None:
    installer, key_prefix = keeping
    team = await workspaces.new("Keeping")
    team.add_channel(DM, ALICE, is_im=True, user=ALICE)
    assert (await installer.install(team)).status == 200
    await ask(installer, model, team, DM, f"keep this {uuid.uuid4().hex[:6]}")

    for payload in slack.uninstall(team.team_id):
        await deliver(installer, team, payload)
    await installer.harness.bots[0].wait_log("slack_workspace_data_kept", team=team.team_id)
    assert not await keys_with(key_prefix, f"slack:install:{{none:{team.team_id}}}")
    assert await keys_with(key_prefix, f"slack:{team.team_id}:dm:{DM}")


async def test_a_reply_cut_by_a_crash_is_finished_with_its_workspaces_own_token(
    workspaces: WorkspaceMaker, slack: FakeSlackOAuth, browser: aiohttp.ClientSession
) -> None:
    key_prefix = f"test:slack-oauth-crash:{uuid.uuid4().hex[:12]}:"
    answer = "The first part of the answer, and then"
    async with (
        FakeModelServer(Script(text=answer, rate=20, failure="stall", fail_after=6)) as stalling,
        FakeSlack() as unused,
    ):
        env = oauth_env(slack) | {"REPLY_LEASE_SECONDS": "2", "REPLY_SWEEP_SECONDS": "0.5"}
        harness = SlackHarness(unused, stalling.base_url, key_prefix, mode="http", extra_env=env, model_timeout=120.0)
        try:
            crashed = await harness.start_bot()
            installer = Installer(browser, harness, slack)
            alpha, bravo = await workspaces.new("Alpha"), await workspaces.new("Bravo")
            for team in (alpha, bravo):
                assert (await installer.install(team)).status == 200
            event = alpha.app_mention_event(GENERAL, ALICE, f"<@{alpha.bot_user_id}> tell me everything")
            await deliver(installer, alpha, alpha.event_callback(event))
            partial = "".join(tokenize(answer)[:6])
            await eventually(
                lambda: any(partial in m.visible_text for m in alpha.bot_messages_in(GENERAL, event["ts"])), 15, "text"
            )
            await asyncio.sleep(0.5)  # the reply's record in Redis follows each write within milliseconds
            crashed.process.kill()
            await crashed.stop()

            restarted = await harness.start_bot()
            await restarted.wait_log("interrupted_reply_finished", timeout=20)
            [reply] = [m for m in alpha.bot_messages_in(GENERAL, event["ts"]) if m.ts != event["ts"]]
            assert reply.visible_text.endswith(INTERRUPTED_NOTE) and reply.bot_id == alpha.bot_id
            assert not bravo.bot_messages_in(GENERAL)
        finally:
            print(harness.report())
            await harness.close()
            delete_keys(key_prefix)


async def test_two_processes_refresh_an_expiring_token_once_and_both_answer(
    installer: Installer,
    model: FakeModelServer,
    workspaces: WorkspaceMaker,
    slack: FakeSlackOAuth,
    store: RedisInstallationStore,
    prefix: str,
) -> None:
    team = await workspaces.new("Rotating twice")
    slack.token_rotation, slack.expires_in = True, 60  # within bolt's two hours: the next event refreshes it
    try:
        assert (await installer.install(team)).status == 200
    finally:
        slack.expires_in = 43_200  # the refreshed token lasts 12 hours
    async with FakeSlack() as unused:
        second = SlackHarness(unused, model.base_url, prefix, mode="http", extra_env=oauth_env(slack))
        await second.start_bot()
        try:
            refreshes = len(slack.refreshes)
            events = [team.app_mention_event(GENERAL, ALICE, f"<@{team.bot_user_id}> at once {n}") for n in (1, 2)]
            await asyncio.gather(
                *(
                    team.post_signed_event(
                        harness.events_url, team.event_callback(event), signing_secret=SIGNING_SECRET
                    )
                    for harness, event in zip((installer.harness, second), events, strict=True)
                )
            )
            for bot, event in zip((installer.harness.bots[0], second.bots[0]), events, strict=True):
                thread = f"slack:{team.team_id}:{GENERAL}:{event['ts']}"
                await bot.wait_log("turn_finished", thread=thread, timeout=20)
            assert [r.ok for r in slack.refreshes[refreshes:]] == [True], "one refresh, by one process"
            stored = await find(store, team)
            assert stored is not None and stored.bot_token == slack.token_of(team.team_id)
        finally:
            print(second.report())
            await second.close()
            slack.token_rotation = False
