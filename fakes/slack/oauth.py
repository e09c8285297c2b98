"""Slack's OAuth side, in front of several fake workspaces: one API URL for an app installed to many.

``FakeSlackOAuth`` serves ``/api/<method>`` on 127.0.0.1 (random port):

* ``oauth.v2.access`` itself: the client id and secret as HTTP Basic auth (what slack_sdk sends) or as
  form fields; ``code`` (+ ``redirect_uri`` when the authorize step had one) exchanges an approved
  install for its tokens, once; ``grant_type=refresh_token`` + ``refresh_token`` refreshes a rotating
  token. The answer has Slack's shape: ``access_token`` (``xoxb-…``, or ``xoxe.xoxb-1-…`` when rotating),
  ``token_type: "bot"``, ``scope``, ``bot_user_id``, ``app_id``, ``team {id, name}`` (``null`` for an
  org-wide install), ``enterprise {id, name} | null``, ``is_enterprise_install``, ``authed_user {id,
  scope}`` and, with rotation, ``refresh_token`` (``xoxe-1-…``) and ``expires_in``. Errors, as the method
  reference names them: ``invalid_code`` (unknown, used or older than 10 minutes), ``bad_client_secret``,
  ``invalid_client_id``, ``bad_redirect_uri``, ``invalid_refresh_token`` (unknown or already used),
  ``invalid_grant_type``; ``fail_exchanges()`` injects an HTTP 500 (or an ``ok: false``).
* every other method, forwarded to the workspace whose token the bearer is (each workspace is a
  ``FakeSlack`` with its own server, so two workspaces may both have ``C0GENERAL``). An access token that
  was refreshed, or whose ``expires_in`` has passed, answers ``token_expired``; an unknown one
  ``invalid_auth``.

The authorize page itself is not served: a test reads the "Add to Slack" link's ``state``, then
``approve_install(state, team=…, user=…)`` is the person clicking Allow (it returns the one-time
``code`` for the redirect) and ``deny_install(state)`` clicking Cancel (``error=access_denied``).
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from fakes.slack.protocol import DEFAULT_SCOPES
from fakes.slack.server import FakeSlack

JsonDict = dict[str, Any]
CODE_SECONDS = 600  # Slack: an install code must be exchanged within 10 minutes


@dataclass
class Workspace:
    fake: FakeSlack
    name: str
    enterprise_name: str | None = None

    @property
    def team_id(self) -> str:
        return self.fake.team_id

    @property
    def enterprise_id(self) -> str | None:
        return self.fake.enterprise_id


@dataclass
class Grant:
    """An install a person allowed, waiting for its code to be exchanged."""

    workspace: Workspace
    user: str
    state: str
    org_wide: bool
    scopes: tuple[str, ...]
    redirect_uri: str | None
    made_at: float = field(default_factory=time.monotonic)


@dataclass
class Token:
    workspace: Workspace
    expires_at: float | None  # time.time(); None: never (no rotation)
    replaced: bool = False  # refreshed: the new token took over
    revoked: bool = False  # the app was uninstalled


@dataclass
class Exchange:
    """One oauth.v2.access call, as the fake saw it."""

    grant_type: str  # "authorization_code" or "refresh_token"
    params: JsonDict
    status: int
    body: JsonDict

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.body.get("ok"))

    @property
    def error(self) -> str | None:
        return None if self.ok else str(self.body.get("error"))


class FakeSlackOAuth:
    def __init__(
        self,
        *,
        client_id: str = "1111.2222",
        client_secret: str = "fake-client-secret",
        token_rotation: bool = False,
        expires_in: int = 43_200,  # Slack's rotating tokens last 12 hours
        scopes: frozenset[str] = DEFAULT_SCOPES,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_rotation = token_rotation
        self.expires_in = expires_in
        self.scopes = scopes
        self.workspaces: dict[str, Workspace] = {}  # by team id
        self.exchanges: list[Exchange] = []
        self._grants: dict[str, Grant] = {}  # by code
        self._used_codes: set[str] = set()
        self._tokens: dict[str, Token] = {}  # access tokens, current and replaced
        self._refresh_tokens: dict[str, Workspace] = {}  # refresh tokens not used yet
        self._failures: list[tuple[int, str]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self) -> FakeSlackOAuth:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])
        self._session = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlackOAuth:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def api_url(self) -> str:
        """SLACK_API_URL for the bot (the authorize URL is then this host's /oauth/v2/authorize)."""
        return f"http://127.0.0.1:{self.port}/api/"

    # ---- workspaces and people ------------------------------------------------------------

    def add_workspace(self, fake: FakeSlack, name: str, *, enterprise_name: str | None = None) -> Workspace:
        """A started ``FakeSlack`` that the app can be installed to (its team_id, enterprise_id, bot user)."""
        workspace = Workspace(fake, name, enterprise_name)
        self.workspaces[fake.team_id] = workspace
        fake.bot_token = f"xoxb-not-installed-{secrets.token_hex(4)}"  # no token works before the install
        return workspace

    def approve_install(
        self, state: str, *, team: str, user: str, org_wide: bool = False, redirect_uri: str | None = None
    ) -> str:
        """The person allowed the install in `team` (its whole org with `org_wide`): the code Slack sends
        back to the redirect URL with `state`."""
        workspace = self.workspaces[team]
        assert not org_wide or workspace.enterprise_id, "an org-wide install needs an Enterprise Grid workspace"
        code = f"{int(time.time())}.{secrets.token_hex(16)}"
        self._grants[code] = Grant(workspace, user, state, org_wide, tuple(sorted(self.scopes)), redirect_uri)
        return code

    @staticmethod
    def deny_install(state: str) -> dict[str, str]:
        """The person clicked Cancel: the redirect's query."""
        return {"error": "access_denied", "state": state}

    def fail_exchanges(self, *, status: int = 500, error: str = "fatal_error", times: int = 1) -> None:
        """The next `times` oauth.v2.access calls answer HTTP `status` with ``{"ok": false, "error"}``."""
        self._failures.extend([(status, error)] * times)

    def expire_tokens(self, team: str) -> None:
        """Every access token of `team` expires now (as if its ``expires_in`` had passed)."""
        for token in self._tokens.values():
            if token.workspace.team_id == team:
                token.expires_at = time.time() - 1

    def uninstall(self, team: str, installers: tuple[str, ...] = ()) -> list[JsonDict]:
        """Someone removes the app from `team`: its tokens stop working (``token_revoked``), and Slack sends
        ``tokens_revoked`` (the bot's and `installers`' user tokens) then ``app_uninstalled``. Returns the
        two Events API payloads, to be delivered to the app."""
        fake = self.workspaces[team].fake
        for token in self._tokens.values():
            if token.workspace.team_id == team:
                token.revoked = True
        now = f"{time.time():.6f}"
        revoked = {"type": "tokens_revoked", "tokens": {"oauth": list(installers), "bot": [fake.bot_user_id]}}
        return [
            fake.event_callback(revoked | {"event_ts": now}),
            fake.event_callback({"type": "app_uninstalled", "event_ts": now}),
        ]

    def token_of(self, team: str) -> str:
        """The workspace's current bot token."""
        return self.workspaces[team].fake.bot_token

    @property
    def refreshes(self) -> list[Exchange]:
        return [exchange for exchange in self.exchanges if exchange.grant_type == "refresh_token"]

    # ---- the API --------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if method == "oauth.v2.access":
            params = dict(request.query) | {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
            status, body = self._oauth_v2_access(params, request.headers.get("Authorization"))
            grant_type = str(params.get("grant_type") or "authorization_code")
            self.exchanges.append(Exchange(grant_type, params, status, body))
            return web.json_response(body, status=status)
        return await self._forward(method, request)

    def _oauth_v2_access(self, params: JsonDict, authorization: str | None) -> tuple[int, JsonDict]:
        if self._failures:
            status, error = self._failures.pop(0)
            return status, {"ok": False, "error": error}
        client_id, client_secret = _client_credentials(params, authorization)
        if client_id != self.client_id:
            return 200, {"ok": False, "error": "invalid_client_id"}
        if client_secret != self.client_secret:
            return 200, {"ok": False, "error": "bad_client_secret"}
        grant_type = params.get("grant_type") or "authorization_code"
        if grant_type == "refresh_token":
            return 200, self._refresh(str(params.get("refresh_token") or ""))
        if grant_type != "authorization_code":
            return 200, {"ok": False, "error": "invalid_grant_type"}
        return 200, self._exchange(str(params.get("code") or ""), params.get("redirect_uri"))

    def _exchange(self, code: str, redirect_uri: str | None) -> JsonDict:
        grant = self._grants.pop(code, None)
        if grant is None or code in self._used_codes or time.monotonic() - grant.made_at > CODE_SECONDS:
            return {"ok": False, "error": "invalid_code"}
        self._used_codes.add(code)
        if grant.redirect_uri is not None and redirect_uri != grant.redirect_uri:
            return {"ok": False, "error": "bad_redirect_uri"}
        workspace = grant.workspace
        workspace.fake.is_enterprise_install = grant.org_wide
        enterprise = (
            {"id": workspace.enterprise_id, "name": workspace.enterprise_name or workspace.enterprise_id}
            if workspace.enterprise_id
            else None
        )
        return {
            "ok": True,
            **self._issue(workspace, rotating=self.token_rotation),
            "scope": ",".join(grant.scopes),
            "bot_user_id": workspace.fake.bot_user_id,
            "app_id": workspace.fake.app_id,
            "team": None if grant.org_wide else {"id": workspace.team_id, "name": workspace.name},
            "enterprise": enterprise,
            "is_enterprise_install": grant.org_wide,
            "authed_user": {"id": grant.user, "scope": "", "token_type": "user"},
        }

    def _refresh(self, refresh_token: str) -> JsonDict:
        workspace = self._refresh_tokens.pop(refresh_token, None)
        if workspace is None:
            return {"ok": False, "error": "invalid_refresh_token"}
        for token in self._tokens.values():
            if token.workspace is workspace:
                token.replaced = True  # the old access token stops working
        return {
            "ok": True,
            **self._issue(workspace, rotating=True),  # a rotating token stays one
            "scope": ",".join(sorted(self.scopes)),
            "bot_user_id": workspace.fake.bot_user_id,
            "app_id": workspace.fake.app_id,
            "team": {"id": workspace.team_id, "name": workspace.name},
            "enterprise": {"id": workspace.enterprise_id, "name": workspace.enterprise_name}
            if workspace.enterprise_id
            else None,
            "is_enterprise_install": workspace.fake.is_enterprise_install,
        }

    def _issue(self, workspace: Workspace, *, rotating: bool) -> JsonDict:
        """A new bot token for `workspace` (its fake then accepts only this one), with its refresh token
        when rotating."""
        if not rotating:
            access = f"xoxb-{workspace.team_id}-{secrets.token_hex(12)}"
            self._tokens[access] = Token(workspace, None)
            workspace.fake.bot_token = access
            return {"access_token": access, "token_type": "bot"}
        access = f"xoxe.xoxb-1-{secrets.token_hex(16)}"
        refresh = f"xoxe-1-{secrets.token_hex(16)}"
        self._tokens[access] = Token(workspace, time.time() + self.expires_in)
        self._refresh_tokens[refresh] = workspace
        workspace.fake.bot_token = access
        return {"access_token": access, "token_type": "bot", "refresh_token": refresh, "expires_in": self.expires_in}

    async def _forward(self, method: str, request: web.Request) -> web.Response:
        """Another method: to the workspace the token belongs to (its own fake records the call)."""
        body = await request.read()
        token = _bearer(request.headers.get("Authorization"))
        if token is None and request.content_type == "application/x-www-form-urlencoded":
            token = str((await request.post()).get("token") or "") or None
        issued = self._tokens.get(token or "")
        if issued is None:
            return web.json_response({"ok": False, "error": "not_authed" if token is None else "invalid_auth"})
        if issued.revoked:
            return web.json_response({"ok": False, "error": "token_revoked"})
        if issued.replaced or (issued.expires_at is not None and issued.expires_at <= time.time()):
            return web.json_response({"ok": False, "error": "token_expired"})
        assert self._session is not None, "start() the fake first"
        headers = {name: value for name, value in request.headers.items() if name.lower() in _FORWARDED_HEADERS}
        url = issued.workspace.fake.api_url + method
        async with self._session.request(
            request.method, url, params=request.query, data=body, headers=headers
        ) as answer:
            forwarded_headers = {k: v for k, v in answer.headers.items() if k.lower() == "retry-after"}
            return web.Response(
                body=await answer.read(),
                status=answer.status,
                content_type=answer.content_type,
                headers=forwarded_headers,
            )


_FORWARDED_HEADERS = frozenset({"authorization", "content-type"})


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def _client_credentials(params: JsonDict, authorization: str | None) -> tuple[str | None, str | None]:
    """HTTP Basic auth (slack_sdk's way), else the form's client_id / client_secret."""
    if authorization and authorization.lower().startswith("basic "):
        decoded = base64.b64decode(authorization[6:].strip()).decode()
        client_id, _, client_secret = decoded.partition(":")
        return client_id, client_secret
    return params.get("client_id"), params.get("client_secret")
