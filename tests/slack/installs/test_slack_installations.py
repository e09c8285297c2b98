"""The Redis installation and OAuth state stores (adapters/slack_bot/installs/installations.py) against real Redis:
what bolt saves comes back as it was, tokens sealed at rest, a state works once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from cryptography.fernet import Fernet, InvalidToken
from slack_sdk.oauth.installation_store.models import Installation

from adapters.slack_bot.installs.installations import RedisInstallationStore, RedisOAuthStateStore, TokenCipher
from bot.state.redis_client import RedisClient, close, connect
from fakes.harness.processes import REDIS_URL

KEY = Fernet.generate_key().decode()


@pytest_asyncio.fixture
async def redis(key_prefix: str) -> AsyncIterator[RedisClient]:
    client = connect(REDIS_URL, cluster=False)
    yield client
    await close(client)


@pytest.fixture
def store(redis: RedisClient, key_prefix: str) -> RedisInstallationStore:
    return RedisInstallationStore(redis, key_prefix, TokenCipher(KEY))


def installation(user: str = "U0ALICE01", token: str = "xoxb-1-secret", **extra: object) -> Installation:
    fields: dict[str, object] = {
        "app_id": "A0MISTRAL",
        "team_id": "T0ALPHA01",
        "team_name": "Alpha",
        "bot_token": token,
        "bot_id": "B0BOT",
        "bot_user_id": "U0BOT",
        "bot_scopes": "chat:write,commands",
        "user_id": user,
        "token_type": "bot",
    }
    return Installation(**(fields | extra))  # type: ignore[arg-type]


async def test_an_installation_round_trips_with_its_tokens_sealed(
    store: RedisInstallationStore, redis: RedisClient, key_prefix: str
) -> None:
    saved = installation(
        bot_refresh_token="xoxe-1-refresh",
        bot_token_expires_in=3600,
        user_token="xoxp-user-secret",
        user_scopes="search:read",
        user_refresh_token="xoxe-1-user-refresh",
        user_token_expires_in=7200,
        custom_values={"plan": "pro"},
    )
    await store.async_save(saved)
    found = await store.async_find_installation(enterprise_id=None, team_id="T0ALPHA01")
    assert found is not None
    assert found.to_dict_for_copying() == saved.to_dict_for_copying()
    assert found.bot_token_expires_at == saved.bot_token_expires_at and found.installed_at == saved.installed_at
    by_user = await store.async_find_installation(enterprise_id=None, team_id="T0ALPHA01", user_id="U0ALICE01")
    assert by_user is not None and by_user.user_token == "xoxp-user-secret"
    bot = await store.async_find_bot(enterprise_id=None, team_id="T0ALPHA01")
    assert bot is not None and (bot.bot_token, bot.bot_refresh_token) == ("xoxb-1-secret", "xoxe-1-refresh")
    assert bot.bot_token_expires_at == saved.bot_token_expires_at

    raw = [str(await redis.get(key)) async for key in redis.scan_iter(match=f"{key_prefix}*") if "users" not in key]
    assert len(raw) == 3  # latest, the installer's, the bot
    for secret in ("xoxb-1-secret", "xoxe-1-refresh", "xoxp-user-secret", "xoxe-1-user-refresh"):
        assert all(secret not in value for value in raw)
    assert all('"team_name": "Alpha"' in value for value in raw)

    # Another key can't open them.
    other = RedisInstallationStore(redis, key_prefix, TokenCipher(Fernet.generate_key().decode()))
    with pytest.raises(InvalidToken):
        await other.async_find_installation(enterprise_id=None, team_id="T0ALPHA01")


async def test_the_latest_install_wins_and_each_installer_keeps_theirs(store: RedisInstallationStore) -> None:
    await store.async_save(installation("U0ALICE01", "xoxb-first", user_token="xoxp-alice"))
    await asyncio.sleep(0.01)
    await store.async_save(installation("U0BOB0001", "xoxb-second", user_token="xoxp-bob"))
    latest = await store.async_find_installation(enterprise_id=None, team_id="T0ALPHA01")
    assert latest is not None and (latest.user_id, latest.bot_token) == ("U0BOB0001", "xoxb-second")
    # Alice's own installation, with the latest bot token (hers was replaced by Bob's install).
    alice = await store.async_find_installation(enterprise_id=None, team_id="T0ALPHA01", user_id="U0ALICE01")
    assert alice is not None and (alice.user_token, alice.bot_token) == ("xoxp-alice", "xoxb-second")
    assert await store.async_find_installation(enterprise_id=None, team_id="T0ALPHA01", user_id="U0NOBODY") is None

    # Bob's installation deleted: the latest is Alice's again.
    await store.async_delete_installation(enterprise_id=None, team_id="T0ALPHA01", user_id="U0BOB0001")
    latest = await store.async_find_installation(enterprise_id=None, team_id="T0ALPHA01")
    assert latest is not None and latest.user_id == "U0ALICE01"
    assert await store.async_find_installation(enterprise_id=None, team_id="T0ALPHA01", user_id="U0BOB0001") is None

    await store.async_delete_all(enterprise_id=None, team_id="T0ALPHA01")
    assert await store.async_find_installation(enterprise_id=None, team_id="T0ALPHA01") is None
    assert await store.async_find_bot(enterprise_id=None, team_id="T0ALPHA01") is None


async def test_workspaces_and_orgs_are_kept_apart(store: RedisInstallationStore) -> None:
    await store.async_save(installation(token="xoxb-alpha"))
    await store.async_save(installation(token="xoxb-bravo", team_id="T0BRAVO01"))
    org = installation(token="xoxb-org", team_id=None, enterprise_id="E0GRID001", is_enterprise_install=True)
    await store.async_save(org)
    alpha = await store.async_find_installation(enterprise_id=None, team_id="T0ALPHA01")
    bravo = await store.async_find_installation(enterprise_id=None, team_id="T0BRAVO01")
    assert (
        alpha is not None and bravo is not None and (alpha.bot_token, bravo.bot_token) == ("xoxb-alpha", "xoxb-bravo")
    )
    # An org-wide install answers for any of the org's workspaces, when bolt asks for the org's.
    found = await store.async_find_installation(
        enterprise_id="E0GRID001", team_id="T0ANYWS01", is_enterprise_install=True
    )
    assert found is not None and found.bot_token == "xoxb-org" and found.is_enterprise_install
    bot = await store.async_find_bot(enterprise_id="E0GRID001", team_id="T0ANYWS01", is_enterprise_install=True)
    assert bot is not None and bot.bot_token == "xoxb-org"
    assert await store.async_find_installation(enterprise_id="E0GRID001", team_id="T0ANYWS01") is None


async def test_a_state_is_consumed_once(redis: RedisClient, key_prefix: str) -> None:
    states = RedisOAuthStateStore(redis, key_prefix)
    state = await states.async_issue()
    assert len(state) >= 40 and state != await states.async_issue()
    # Two redirects with the same state at once: only one passes.
    assert sorted(await asyncio.gather(*(states.async_consume(state) for _ in range(5)))) == [False] * 4 + [True]
    assert not await states.async_consume("never-issued")


async def test_a_state_expires(redis: RedisClient, key_prefix: str) -> None:
    states = RedisOAuthStateStore(redis, key_prefix, expiration_seconds=1)
    state = await states.async_issue()
    started = time.monotonic()
    while await redis.exists(f"{key_prefix}slack:oauth-state:{{{state}}}"):
        assert time.monotonic() - started < 5
        await asyncio.sleep(0.1)
    assert not await states.async_consume(state)
