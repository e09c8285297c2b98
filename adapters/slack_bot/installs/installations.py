"""Where the app's installs are kept, in Redis: bolt's AsyncInstallationStore and AsyncOAuthStateStore
(bolt ships file, SQL and S3 stores, none for Redis).

One install per workspace, or per Enterprise Grid org for an org-wide install (its team id is then
"none", as bolt's own stores key it). Keys (the workspace's share one hash tag, so one Cluster slot):

  <prefix>slack:install:{<enterprise>:<team>}:latest        the latest installation (whoever installed)
  <prefix>slack:install:{<enterprise>:<team>}:user:<user>   each installer's latest installation
  <prefix>slack:install:{<enterprise>:<team>}:users         the installers (a set)
  <prefix>slack:install:{<enterprise>:<team>}:bot           the latest bot (what find_bot answers)
  <prefix>slack:install:{<enterprise>:none}:workspaces      an org-wide install's workspaces that asked (a set)
  <prefix>slack:oauth-state:{<state>}                       an install link's state, for 10 minutes, used once

A record is JSON: the installation's fields in plain text, and its tokens (bot and user tokens and
their refresh tokens) as one Fernet ciphertext made with SLACK_TOKEN_ENCRYPTION_KEY. Tokens are never
logged.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import structlog
from cryptography.fernet import Fernet, InvalidToken
from slack_bolt.error import BoltError
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models import Bot, Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from bot.state.redis_client import REDIS_ERRORS, RedisClient, hash_tag

T = TypeVar("T")
log = structlog.get_logger(__name__)

TOKEN_FIELDS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")
SCOPE_FIELDS = ("bot_scopes", "user_scopes")
STATE_SECONDS = 600  # an install link works this long (bolt's default), once
NONE = "none"  # an absent enterprise or team id in a key, as bolt's own stores write it


class TokenCipher:
    """Seals tokens with Fernet (AES-128-CBC and HMAC-SHA256) under the operator's key."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())  # ValueError for a key that is not 32 url-safe base64 bytes

    def seal(self, tokens: Mapping[str, str | None]) -> str:
        return self._fernet.encrypt(json.dumps(dict(tokens)).encode()).decode()

    def open(self, sealed: str) -> dict[str, str | None]:
        opened: dict[str, str | None] = json.loads(self._fernet.decrypt(sealed.encode()))
        return opened


class StoreUnavailable(BoltError):
    """Redis could not keep an installation (bolt shows the installer its failure page)."""


class RedisInstallationStore(AsyncInstallationStore):
    def __init__(self, client: RedisClient, key_prefix: str, cipher: TokenCipher) -> None:
        self._redis = client
        self._prefix = key_prefix
        self._cipher = cipher

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger(__name__)

    # -- saving ------------------------------------------------------------------------

    async def async_save(self, installation: Installation) -> None:
        """The installation becomes the workspace's latest and its installer's; its bot the latest bot."""
        keys = self._keys(installation.enterprise_id, installation.team_id, installation.is_enterprise_install)
        record = self._dump(installation.to_dict_for_copying())
        user = installation.user_id or NONE
        async with self._redis.pipeline(transaction=True) as pipe:
            if installation.bot_token is not None:
                pipe.set(keys.bot, self._dump(installation.to_bot().to_dict_for_copying()))
            pipe.set(keys.latest, record)
            pipe.set(keys.user(user), record)
            pipe.sadd(keys.users, user)
            await self._stored(pipe.execute())
        log.info(
            "slack_installation_saved",
            enterprise=installation.enterprise_id,
            team=installation.team_id,
            org_wide=installation.is_enterprise_install,
        )

    async def async_save_bot(self, bot: Bot) -> None:
        if not bot.bot_token:  # as bolt's stores: a bot without a token is not one to answer with
            return
        keys = self._keys(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        await self._stored(self._redis.set(keys.bot, self._dump(bot.to_dict_for_copying())))

    # -- finding -----------------------------------------------------------------------

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        stored = _text(await self._redis.get(self._keys(enterprise_id, team_id, is_enterprise_install).bot))
        return Bot(**self._load(stored)) if stored else None

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        """The workspace's latest installation, or `user_id`'s; either with the latest bot's token (a
        later install, or a refresh, may have replaced the one it was saved with)."""
        keys = self._keys(enterprise_id, team_id, is_enterprise_install)
        wanted = keys.latest if user_id is None else keys.user(user_id)
        stored, bot_stored = (_text(value) for value in await self._redis.mget([wanted, keys.bot]))
        if not stored:
            return None
        installation = Installation(**self._load(stored))
        if bot_stored:
            bot = Bot(**self._load(bot_stored))
            installation.bot_id, installation.bot_user_id = bot.bot_id, bot.bot_user_id
            installation.bot_token, installation.bot_scopes = bot.bot_token, bot.bot_scopes
            installation.bot_refresh_token = bot.bot_refresh_token
            installation.bot_token_expires_at = bot.bot_token_expires_at
        return installation

    # -- deleting ----------------------------------------------------------------------

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self._redis.delete(self._keys(enterprise_id, team_id).bot)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        """Every installation of the workspace, or only `user_id`'s (the latest then falls back to the
        most recent other installer's, as a table of installs would answer)."""
        keys = self._keys(enterprise_id, team_id)
        users = [str(user) for user in await self._redis.smembers(keys.users)]
        if user_id is None:
            await self._redis.delete(keys.latest, keys.users, *(keys.user(user) for user in users))
            return
        latest = _text(await self._redis.get(keys.latest))
        replaced = latest is not None and json.loads(latest)["data"].get("user_id") == user_id
        successor: str | None = None
        if replaced and (others := [keys.user(user) for user in users if user != user_id]):
            records = [record for value in await self._redis.mget(others) if (record := _text(value))]
            successor = max(records, key=_installed_at, default=None)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.user(user_id))
            pipe.srem(keys.users, user_id)
            if successor is not None:
                pipe.set(keys.latest, successor)
            elif replaced:
                pipe.delete(keys.latest)
            await pipe.execute()

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)
        await self.async_delete_installation(enterprise_id=enterprise_id, team_id=team_id)

    # -- an org-wide install's workspaces ------------------------------------------------

    async def note_workspace(self, enterprise_id: str, team_id: str) -> None:
        """`team_id` is a workspace the org-wide install of `enterprise_id` answered in (so that its data can be
        found when the org removes the app)."""
        await self._redis.sadd(self._keys(enterprise_id, None, org_wide=True).workspaces, team_id)

    async def take_workspaces(self, enterprise_id: str) -> list[str]:
        """The org-wide install's workspaces, no longer listed (the org removed the app)."""
        key = self._keys(enterprise_id, None).workspaces
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.smembers(key)
            pipe.delete(key)
            teams, _ = await pipe.execute()
        return sorted(str(team) for team in teams)

    # -- records -----------------------------------------------------------------------

    def _keys(self, enterprise_id: str | None, team_id: str | None, org_wide: bool | None = False) -> _Keys:
        team = NONE if org_wide else (team_id or NONE)
        return _Keys(f"{self._prefix}slack:install:{hash_tag(f'{enterprise_id or NONE}:{team}')}")

    def _dump(self, fields: Mapping[str, Any]) -> str:
        """`fields` (a to_dict_for_copying()) as JSON, with the tokens sealed."""
        tokens = {name: fields.get(name) for name in TOKEN_FIELDS if fields.get(name) is not None}
        data = {name: _plain(value) for name, value in fields.items() if name not in TOKEN_FIELDS}
        return json.dumps({"data": data, "sealed": self._cipher.seal(tokens)})

    def _load(self, stored: str) -> dict[str, Any]:
        """The constructor arguments of the Installation or Bot `stored` holds, tokens opened."""
        record = json.loads(stored)
        fields: dict[str, Any] = record["data"]
        for name in SCOPE_FIELDS:
            if name in fields and fields[name] is None:
                fields[name] = ""  # how the constructors take "no scopes"
        try:
            fields.update(self._cipher.open(record["sealed"]))
        except InvalidToken:
            # Sealed with another key: the install can't be used until the workspace installs again.
            log.error("slack_installation_key_mismatch", team=fields.get("team_id"))
            raise
        return fields

    async def _stored(self, command: Awaitable[T]) -> T:
        try:
            return await command
        except REDIS_ERRORS as error:
            log.error("slack_installation_not_saved", error=f"{type(error).__name__}: {error}")
            raise StoreUnavailable("Redis could not store the installation") from error


class _Keys:
    def __init__(self, base: str) -> None:
        self.latest = f"{base}:latest"
        self.users = f"{base}:users"
        self.bot = f"{base}:bot"
        self.workspaces = f"{base}:workspaces"
        self._base = base

    def user(self, user_id: str) -> str:
        return f"{self._base}:user:{user_id}"


def _text(value: bytes | str | None) -> str | None:
    """A stored value (the clients decode answers: str already)."""
    return value.decode() if isinstance(value, bytes) else value


def _installed_at(record: str) -> str:
    """When a record's installation was made (ISO text in UTC: it sorts as the time does)."""
    return str(json.loads(record)["data"]["installed_at"])


def _plain(value: Any) -> Any:
    """A datetime (installed_at, *_expires_at) as ISO text: the models' constructors read it back."""
    return value.isoformat() if isinstance(value, datetime) else value


class RedisOAuthStateStore(AsyncOAuthStateStore):
    """An install link's `state`: issued with the install page, consumed once by the redirect (GETDEL,
    so two redirects with one state can't both pass), gone after `expiration_seconds`."""

    def __init__(self, client: RedisClient, key_prefix: str, expiration_seconds: int = STATE_SECONDS) -> None:
        self._redis = client
        self._prefix = key_prefix
        self.expiration_seconds = expiration_seconds

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger(__name__)

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(32)
        await self._redis.set(self._key(state), "1", ex=self.expiration_seconds)
        return state

    async def async_consume(self, state: str) -> bool:
        return await self._redis.getdel(self._key(state)) is not None

    def _key(self, state: str) -> str:
        return f"{self._prefix}slack:oauth-state:{hash_tag(state)}"
