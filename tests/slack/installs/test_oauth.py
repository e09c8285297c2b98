"""Installs to any workspace: the real `python -m bot slack` in OAuth mode (SLACK_CLIENT_ID, HTTP) against
the loopback Slack OAuth side (fakes/slack/oauth.py) in front of fake workspaces, and real Redis.

The install flow is driven over HTTP as a browser would: GET /slack/install (the page, its "Add to Slack"
link and the state cookie), the person allows (or cancels) in the fake, GET /slack/oauth_redirect with
the code, the state and the cookie. What is asserted: the page the installer sees, and what Redis holds.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import uuid
from typing import Any
from urllib.parse import urlparse

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_bot.installs.installations import RedisInstallationStore
from adapters.slack_bot.installs.oauth import manifest_bot_scopes
from fakes.harness.slack_world import SIGNING_SECRET, BotProcess, SlackHarness, eventually
from fakes.slack.oauth import FakeSlackOAuth
from tests.slack.installs.conftest import (
    ALICE,
    COOKIE,
    EXPIRED,
    GENERAL,
    TURN_ENDS,
    Installer,
    WorkspaceMaker,
    find,
    oauth_env,
    raw_values,
    refused,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


# -- the install ------------------------------------------------------------------------------


async def test_install_page_has_the_add_to_slack_link_with_the_manifests_scopes(installer: Installer) -> None:
    page, state, query = await installer.open_install_page()
    assert "Add to Slack" in page.text
    scopes = manifest_bot_scopes()
    assert set(query["scope"][0].split(",")) == set(scopes) and "chat:write" in scopes
    for scope in scopes:
        assert f"<code>{scope}</code>" in page.text  # the installer sees what the app will be allowed to do
    assert query["client_id"] == [installer.slack.client_id]
    link = urlparse(html.unescape(re.search(r'class="button" href="([^"]+)"', page.text)[1]))  # type: ignore[index]
    assert (link.netloc, link.path) == (urlparse(installer.slack.api_url).netloc, "/oauth/v2/authorize")
    [cookie] = page.cookies
    assert cookie.startswith(f"{COOKIE}={state};") and "HttpOnly" in cookie and "Secure" in cookie


async def test_install_pages_forbid_scripts_and_framing(installer: Installer, workspaces: WorkspaceMaker) -> None:
    """The install page, the added page and the refused page carry a Content-Security-Policy: nothing on them can
    run a script, load from elsewhere or be framed, even if an escape were ever missed."""
    install_page, state, _ = await installer.open_install_page()
    added = await installer.install(await workspaces.new("Policed"))
    refused_page = await installer.get("/slack/oauth_redirect", installer.slack.deny_install(state), cookie=state)
    for page in (install_page, added, refused_page):
        policy = {part.split()[0]: part.split()[1:] for part in page.content_security_policy.split("; ") if part}
        assert policy.get("default-src") == ["'none'"], page.content_security_policy
        assert "script-src" not in policy and policy.get("frame-ancestors") == ["'none'"]


async def test_install_stores_the_workspace_with_its_token_encrypted(
    installer: Installer, workspaces: WorkspaceMaker, store: RedisInstallationStore, prefix: str
) -> None:
    team = await workspaces.new("Alpha")
    page = await installer.install(team)
    assert page.status == 200, page.text
    assert "Mistral was added to Alpha" in page.text
    assert any(cookie.startswith(f"{COOKIE}=deleted") for cookie in page.cookies)

    installation = await find(store, team)
    assert installation is not None
    token = installer.slack.token_of(team.team_id)
    assert installation.bot_token == token and token.startswith("xoxb-")
    assert (installation.team_id, installation.team_name, installation.user_id) == (team.team_id, "Alpha", ALICE)
    assert (installation.bot_user_id, installation.bot_id) == (team.bot_user_id, team.bot_id)
    assert set(installation.bot_scopes or ()) == set(manifest_bot_scopes())
    assert not installation.is_enterprise_install and installation.bot_refresh_token is None
    bot = await store.async_find_bot(enterprise_id=None, team_id=team.team_id)
    assert bot is not None and bot.bot_token == token

    stored = {key: value for key, value in (await raw_values(prefix)).items() if team.team_id in key}
    assert stored and all(token not in value and token.split("-")[-1] not in value for value in stored.values())
    for value in stored.values():
        assert json.loads(value)["data"]["team_id"] == team.team_id  # the rest is plain JSON
    for bot_process in installer.harness.bots:
        assert token not in bot_process.stderr, "a token was logged"


async def test_org_wide_install_is_stored_and_found_by_bolt(
    installer: Installer, workspaces: WorkspaceMaker, store: RedisInstallationStore
) -> None:
    enterprise = (f"E{uuid.uuid4().hex[:6].upper()}", "Grid Org")
    team = await workspaces.new("Grid workspace", enterprise=enterprise)
    page = await installer.install(team, org_wide=True)
    assert page.status == 200 and "Grid Org" in page.text, page.text

    # Bolt looks an org-wide install up by the org, whatever workspace an event comes from.
    installation = await store.async_find_installation(
        enterprise_id=enterprise[0], team_id=team.team_id, is_enterprise_install=True
    )
    assert installation is not None and installation.is_enterprise_install
    assert (installation.enterprise_id, installation.enterprise_name, installation.team_id) == (
        enterprise[0],
        "Grid Org",
        None,
    )
    assert installation.bot_token == installer.slack.token_of(team.team_id)
    assert await store.async_find_installation(enterprise_id=enterprise[0], team_id=team.team_id) is None

    # An event from the org is answered with the org's token, in the workspace it comes from.
    event = team.app_mention_event(GENERAL, ALICE, f"<@{team.bot_user_id}> hello from the org")
    status, _ = await team.post_signed_event(
        installer.harness.events_url, team.event_callback(event), signing_secret=SIGNING_SECRET
    )
    assert status == 200
    await eventually(lambda: bool(team.calls_to("chat.postMessage")), 10, "the answer")
    assert {call.token for call in team.calls_to("chat.postMessage")} == {installation.bot_token}


# -- refused installs: a clear page, and nothing stored ------------------------------------------


async def test_a_replayed_state_is_refused(
    installer: Installer, workspaces: WorkspaceMaker, store: RedisInstallationStore
) -> None:
    first, second = await workspaces.new("First"), await workspaces.new("Second")
    _, state, _ = await installer.open_install_page()
    code = installer.slack.approve_install(state, team=first.team_id, user=ALICE)
    assert (await installer.get("/slack/oauth_redirect", {"code": code, "state": state}, cookie=state)).status == 200
    exchanges = len(installer.slack.exchanges)

    # The same state again, with a fresh code (for another workspace): the state was used.
    code = installer.slack.approve_install(state, team=second.team_id, user=ALICE)
    page = await installer.get("/slack/oauth_redirect", {"code": code, "state": state}, cookie=state)
    refused(page, EXPIRED)
    assert await find(store, second) is None
    assert len(installer.slack.exchanges) == exchanges, "the code was never exchanged"


async def test_a_forged_state_is_refused(
    installer: Installer, workspaces: WorkspaceMaker, store: RedisInstallationStore
) -> None:
    team = await workspaces.new("Forged")
    exchanges = len(installer.slack.exchanges)
    made_up = "forged-state-never-issued"
    code = installer.slack.approve_install(made_up, team=team.team_id, user=ALICE)
    # A state the bot never issued, even with a matching cookie.
    refused(await installer.get("/slack/oauth_redirect", {"code": code, "state": made_up}, cookie=made_up), EXPIRED)
    # A real state, but not this browser's (another person's link: no cookie, or another state's).
    _, state, _ = await installer.open_install_page()
    refused(await installer.get("/slack/oauth_redirect", {"code": code, "state": state}), EXPIRED)
    refused(await installer.get("/slack/oauth_redirect", {"code": code, "state": state}, cookie=made_up), EXPIRED)
    assert await find(store, team) is None
    assert len(installer.slack.exchanges) == exchanges


async def test_a_reused_code_is_refused(
    installer: Installer, workspaces: WorkspaceMaker, store: RedisInstallationStore
) -> None:
    team = await workspaces.new("Reused")
    _, state, _ = await installer.open_install_page()
    code = installer.slack.approve_install(state, team=team.team_id, user=ALICE)
    # Someone else exchanged the code first.
    other = AsyncWebClient(base_url=installer.slack.api_url)
    await other.oauth_v2_access(
        client_id=installer.slack.client_id, client_secret=installer.slack.client_secret, code=code
    )
    page = await installer.get("/slack/oauth_redirect", {"code": code, "state": state}, cookie=state)
    refused(page, "Slack didn't confirm the install (the install code was already used or has expired)")
    assert installer.slack.exchanges[-1].error == "invalid_code"
    assert await find(store, team) is None


async def test_a_cancelled_install_is_refused(
    installer: Installer, workspaces: WorkspaceMaker, store: RedisInstallationStore
) -> None:
    team = await workspaces.new("Cancelled")
    exchanges = len(installer.slack.exchanges)
    _, state, _ = await installer.open_install_page()
    page = await installer.get("/slack/oauth_redirect", installer.slack.deny_install(state), cookie=state)
    refused(page, "The install was cancelled in Slack")
    assert await find(store, team) is None
    assert len(installer.slack.exchanges) == exchanges


@pytest.mark.parametrize(
    ("status", "error", "words"), [(500, "fatal_error", "HTTP 500"), (200, "fatal_error", "fatal_error")]
)
async def test_a_failing_token_endpoint_is_refused(
    installer: Installer,
    workspaces: WorkspaceMaker,
    store: RedisInstallationStore,
    status: int,
    error: str,
    words: str,
) -> None:
    team = await workspaces.new("Failing")
    installer.slack.fail_exchanges(status=status, error=error)
    page = await installer.install(team)
    refused(page, "Slack didn't confirm the install (")
    assert words in page.text
    assert await find(store, team) is None


# -- token rotation ---------------------------------------------------------------------------


async def test_an_expired_rotating_token_is_refreshed_before_use(
    installer: Installer, workspaces: WorkspaceMaker, store: RedisInstallationStore, prefix: str
) -> None:
    slack = installer.slack
    team = await workspaces.new("Rotating")
    slack.token_rotation, slack.expires_in = True, 60
    try:
        assert (await installer.install(team)).status == 200
    finally:
        slack.token_rotation, slack.expires_in = False, 43_200
    installed = await find(store, team)
    assert installed is not None and installed.bot_refresh_token and installed.bot_token_expires_at
    first_token, first_refresh = installed.bot_token, installed.bot_refresh_token
    assert first_token is not None and first_token.startswith("xoxe.xoxb-1-") and first_refresh.startswith("xoxe-1-")
    assert all(first_refresh not in value for value in (await raw_values(prefix)).values())

    slack.expire_tokens(team.team_id)  # its hour has passed: Slack answers token_expired now
    refreshes, asked = len(slack.refreshes), len(team.calls_to("auth.test"))  # bolt's install flow asked once
    event = team.app_mention_event(GENERAL, ALICE, f"<@{team.bot_user_id}> after expiry")
    status, _ = await team.post_signed_event(
        installer.harness.events_url, team.event_callback(event), signing_secret=SIGNING_SECRET
    )
    assert status == 200
    await eventually(lambda: len(slack.refreshes) > refreshes, 10, "a refresh")
    [refresh] = slack.refreshes[refreshes:]
    assert refresh.ok and refresh.params["refresh_token"] == first_refresh
    new_token = slack.token_of(team.team_id)
    assert new_token != first_token
    # The event was answered with the new token, kept (with the new refresh token) for the next events.
    await eventually(lambda: bool(team.calls_to("chat.postMessage")), 10, "the answer")
    assert {call.token for call in team.calls_to("chat.postMessage")} == {new_token}
    assert len(team.calls_to("auth.test")) == asked, "the install says who the bot is: Slack isn't asked"
    refreshed = await find(store, team)
    assert refreshed is not None and refreshed.bot_token == new_token
    assert refreshed.bot_refresh_token not in (None, first_refresh)
    # Slack's side: the old token and the old refresh token no longer work.
    with pytest.raises(SlackApiError) as old:
        await AsyncWebClient(token=first_token, base_url=slack.api_url).auth_test()
    assert old.value.response["error"] == "token_expired"
    with pytest.raises(SlackApiError) as reused:
        await AsyncWebClient(base_url=slack.api_url).oauth_v2_access(
            client_id=slack.client_id,
            client_secret=slack.client_secret,
            grant_type="refresh_token",
            refresh_token=first_refresh,
        )
    assert reused.value.response["error"] == "invalid_refresh_token"


# -- several workspaces -----------------------------------------------------------------------


async def test_two_workspaces_are_each_answered_in_their_own(
    installer: Installer, workspaces: WorkspaceMaker, store: RedisInstallationStore
) -> None:
    alpha, bravo = await workspaces.new("Alpha"), await workspaces.new("Bravo")
    assert (await installer.install(alpha)).status == 200
    assert (await installer.install(bravo)).status == 200
    stored_alpha, stored_bravo = await find(store, alpha), await find(store, bravo)
    assert stored_alpha is not None and stored_bravo is not None
    assert stored_alpha.bot_token != stored_bravo.bot_token

    events: dict[str, dict[str, Any]] = {}
    for team in (alpha, bravo):  # both have C0GENERAL
        events[team.team_id] = team.app_mention_event(GENERAL, ALICE, f"hello from {team.team_id}")
        status, _ = await team.post_signed_event(
            installer.harness.events_url, team.event_callback(events[team.team_id]), signing_secret=SIGNING_SECRET
        )
        assert status == 200
    bot = installer.harness.bots[0]
    for team in (alpha, bravo):
        ts = events[team.team_id]["ts"]
        thread = f"slack:{team.team_id}:{GENERAL}:{ts}"
        await eventually(lambda thread=thread: any(bot.logs(e, thread=thread) for e in TURN_ENDS), 15, "the turn's end")
        assert not bot.logs("reply_failed", thread=thread)
        [reply] = [m for m in team.bot_messages_in(GENERAL, ts) if m.ts != ts]
        assert reply.bot_id == team.bot_id


# -- start-up ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "message"),
    [(None, "SLACK_TOKEN_ENCRYPTION_KEY is missing"), ("0" * 44, "SLACK_TOKEN_ENCRYPTION_KEY is invalid")],
)
async def test_a_missing_or_invalid_key_stops_start_up_with_the_reason(
    harness: SlackHarness, slack: FakeSlackOAuth, key: str | None, message: str
) -> None:
    bot = await BotProcess.start("bad-key", harness.env() | oauth_env(slack, key=key))
    code = await asyncio.wait_for(bot.process.wait(), 60)
    await bot.stop()
    assert code != 0
    assert message in bot.stderr and "Fernet.generate_key()" in bot.stderr, bot.stderr
    assert "0" * 44 not in bot.stderr
