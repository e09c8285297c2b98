"""The loopback Slack OAuth side (fakes/slack/oauth.py) behaves as Slack's oauth.v2.access does, and
routes every other call to the workspace whose token it is. Driven with the real slack_sdk client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from fakes.slack import FakeSlack
from fakes.slack.oauth import FakeSlackOAuth

GENERAL = FakeSlack.DEFAULT_CHANNEL


@pytest_asyncio.fixture
async def slack() -> AsyncIterator[FakeSlackOAuth]:
    async with (
        FakeSlackOAuth() as oauth,
        FakeSlack(team_id="T0ALPHA01", bot_user_id="U0BOTA") as alpha,
        FakeSlack(team_id="T0BRAVO01", bot_user_id="U0BOTB", enterprise_id="E0GRID001") as bravo,
    ):
        oauth.add_workspace(alpha, "Alpha")
        oauth.add_workspace(bravo, "Bravo", enterprise_name="Grid")
        yield oauth


def client(slack: FakeSlackOAuth, token: str | None = None) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=slack.api_url)


async def exchange(slack: FakeSlackOAuth, code: str, *, secret: str | None = None) -> dict[str, object]:
    response = await client(slack).oauth_v2_access(
        client_id=slack.client_id, client_secret=secret or slack.client_secret, code=code
    )
    return dict(response.data)  # type: ignore[arg-type]


async def error_of(call: object) -> str:
    with pytest.raises(SlackApiError) as raised:
        await call  # type: ignore[misc]
    return str(raised.value.response["error"])


async def test_a_code_is_exchanged_once_for_the_workspaces_token(slack: FakeSlackOAuth) -> None:
    code = slack.approve_install("state-1", team="T0ALPHA01", user="U0ALICE01")
    answer = await exchange(slack, code)
    assert answer["ok"] and answer["token_type"] == "bot" and str(answer["access_token"]).startswith("xoxb-")
    assert answer["team"] == {"id": "T0ALPHA01", "name": "Alpha"} and answer["enterprise"] is None
    assert answer["bot_user_id"] == "U0BOTA" and answer["is_enterprise_install"] is False
    assert answer["authed_user"] == {"id": "U0ALICE01", "scope": "", "token_type": "user"}
    assert "chat:write" in str(answer["scope"]).split(",")
    assert "refresh_token" not in answer and "expires_in" not in answer
    # auth.test with the workspace's token answers for that workspace.
    identity = await client(slack, str(answer["access_token"])).auth_test()
    assert (identity["team_id"], identity["user_id"]) == ("T0ALPHA01", "U0BOTA")
    # Used: invalid_code, as for a code Slack never gave.
    assert await error_of(exchange(slack, code)) == "invalid_code"
    assert await error_of(exchange(slack, "123.made-up")) == "invalid_code"
    assert [e.error for e in slack.exchanges] == [None, "invalid_code", "invalid_code"]


async def test_client_credentials_are_checked_as_basic_auth_or_form_fields(slack: FakeSlackOAuth) -> None:
    code = slack.approve_install("s", team="T0ALPHA01", user="U0ALICE01")
    assert await error_of(exchange(slack, code, secret="wrong")) == "bad_client_secret"
    with pytest.raises(SlackApiError) as raised:
        await client(slack).oauth_v2_access(client_id="9.9", client_secret=slack.client_secret, code=code)
    assert raised.value.response["error"] == "invalid_client_id"
    # Form fields (Slack takes those too); the refused exchanges left the code unused.
    form = {"client_id": slack.client_id, "client_secret": slack.client_secret, "code": code}
    async with aiohttp.ClientSession() as session, session.post(f"{slack.api_url}oauth.v2.access", data=form) as r:
        assert (await r.json())["ok"] is True


async def test_a_redirect_uri_must_match_the_authorize_steps(slack: FakeSlackOAuth) -> None:
    code = slack.approve_install("s", team="T0ALPHA01", user="U", redirect_uri="https://bot.example.com/r")
    with pytest.raises(SlackApiError) as raised:
        await client(slack).oauth_v2_access(
            client_id=slack.client_id, client_secret=slack.client_secret, code=code, redirect_uri="https://evil/r"
        )
    assert raised.value.response["error"] == "bad_redirect_uri"


async def test_an_org_wide_install_has_no_team(slack: FakeSlackOAuth) -> None:
    answer = await exchange(slack, slack.approve_install("s", team="T0BRAVO01", user="U", org_wide=True))
    assert answer["team"] is None and answer["is_enterprise_install"] is True
    assert answer["enterprise"] == {"id": "E0GRID001", "name": "Grid"}
    identity = await client(slack, str(answer["access_token"])).auth_test()
    assert identity["enterprise_id"] == "E0GRID001" and identity["is_enterprise_install"] is True


async def test_injected_failures_answer_http_500_or_ok_false(slack: FakeSlackOAuth) -> None:
    slack.fail_exchanges(status=500)
    code = slack.approve_install("s", team="T0ALPHA01", user="U")
    with pytest.raises(SlackApiError) as raised:
        await exchange(slack, code)
    assert raised.value.response.status_code == 500 and raised.value.response["error"] == "fatal_error"
    slack.fail_exchanges(status=200, error="service_unavailable")
    assert await error_of(exchange(slack, code)) == "service_unavailable"
    assert (await exchange(slack, code))["ok"], "an injected failure does not use the code"


async def test_rotating_tokens_are_refreshed_once_and_the_old_ones_stop_working(slack: FakeSlackOAuth) -> None:
    slack.token_rotation, slack.expires_in = True, 3600
    answer = await exchange(slack, slack.approve_install("s", team="T0ALPHA01", user="U"))
    old_token, old_refresh = str(answer["access_token"]), str(answer["refresh_token"])
    assert old_token.startswith("xoxe.xoxb-1-") and old_refresh.startswith("xoxe-1-") and answer["expires_in"] == 3600
    assert (await client(slack, old_token).auth_test())["team_id"] == "T0ALPHA01"

    refresh = client(slack).oauth_v2_access(
        client_id=slack.client_id,
        client_secret=slack.client_secret,
        grant_type="refresh_token",
        refresh_token=old_refresh,
    )
    refreshed = (await refresh).data
    assert isinstance(refreshed, dict) and refreshed["token_type"] == "bot" and refreshed["expires_in"] == 3600
    new_token = refreshed["access_token"]
    assert new_token != old_token and refreshed["refresh_token"] != old_refresh
    assert [e.grant_type for e in slack.refreshes] == ["refresh_token"]
    assert await error_of(client(slack, old_token).auth_test()) == "token_expired"
    assert (await client(slack, new_token).auth_test())["team_id"] == "T0ALPHA01"
    again = client(slack).oauth_v2_access(
        client_id=slack.client_id,
        client_secret=slack.client_secret,
        grant_type="refresh_token",
        refresh_token=old_refresh,
    )
    assert await error_of(again) == "invalid_refresh_token"
    # Time passes: the new token expires too.
    slack.expire_tokens("T0ALPHA01")
    assert await error_of(client(slack, new_token).auth_test()) == "token_expired"


async def test_calls_go_to_the_workspace_whose_token_it_is(slack: FakeSlackOAuth) -> None:
    alpha = str((await exchange(slack, slack.approve_install("s", team="T0ALPHA01", user="U")))["access_token"])
    bravo = str((await exchange(slack, slack.approve_install("s", team="T0BRAVO01", user="U")))["access_token"])
    # Both workspaces have C0GENERAL: each message lands in its own.
    await client(slack, alpha).chat_postMessage(channel=GENERAL, text="to alpha")
    await client(slack, bravo).chat_postMessage(channel=GENERAL, text="to bravo")
    fakes = {team: workspace.fake for team, workspace in slack.workspaces.items()}
    assert [m.text for m in fakes["T0ALPHA01"].bot_messages_in(GENERAL)] == ["to alpha"]
    assert [m.text for m in fakes["T0BRAVO01"].bot_messages_in(GENERAL)] == ["to bravo"]
    assert await error_of(client(slack, "xoxb-unknown").auth_test()) == "invalid_auth"
    assert await error_of(client(slack).auth_test()) == "not_authed"
