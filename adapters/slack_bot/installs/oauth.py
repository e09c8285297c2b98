"""Installs to any workspace (SLACK_CLIENT_ID): Slack's OAuth flow, run by bolt's AsyncOAuthFlow.

  GET /slack/install          a page with the "Add to Slack" button and the scopes the app asks for
                              (config/slack-app-manifest.yml's bot scopes), and the state cookie
  GET /slack/oauth_redirect   where Slack sends the installer back: the code is exchanged for the
                              workspace's tokens (oauth.v2.access at SLACK_API_URL), kept encrypted in
                              Redis (.installations), and a page says it worked, or why it didn't

Bolt checks the state (the cookie and the one-time state in Redis), exchanges the code and stores
the installation only when everything passed: a replayed or forged state, a used code, a cancelled
install or a failing Slack store nothing. Events are then authorized per workspace from the stored
installation, and a rotating token is refreshed (oauth.v2.access with grant_type=refresh_token) when it
has less than bolt's two hours left.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import structlog
import yaml  # type: ignore[import-untyped, unused-ignore]  # stubs (types-PyYAML) are optional
from aiohttp import web
from slack_bolt.oauth.async_callback_options import AsyncCallbackOptions, AsyncFailureArgs, AsyncSuccessArgs
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.slack_bot.installs.authorize import InstalledBotAuthorize
from adapters.slack_bot.installs.installations import (
    STATE_SECONDS,
    RedisInstallationStore,
    RedisOAuthStateStore,
    TokenCipher,
)
from adapters.slack_bot.installs.rotation import SharedTokenRotator
from adapters.slack_bot.settings import OAuthSettings
from bot.state.redis_client import RedisClient

log = structlog.get_logger(__name__)

MANIFEST = Path(__file__).resolve().parents[3] / "config" / "slack-app-manifest.yml"
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
ROTATION_MINUTES = 120  # a rotating token is refreshed when it has less than this left (bolt's default)

# Why oauth.v2.access refused the code, for the failure page (bolt only says "invalid_code"). Set and
# read in the one task serving the redirect.
_exchange_failure: ContextVar[str | None] = ContextVar("slack_oauth_exchange_failure", default=None)

# What the installer is told, by bolt's failure reason.
EXPIRED_LINK = "This install link was already used or has expired. Start again from {install}."
FAILURES = {
    "invalid_browser": EXPIRED_LINK,  # no state cookie, or another state's
    "invalid_state": EXPIRED_LINK,  # a state Redis doesn't hold (used, expired or made up)
    "missing_code": "Slack's answer had no install code. Start again from {install}.",
    "access_denied": "The install was cancelled in Slack. Nothing was added; start again from {install} any time.",
    "invalid_code": "Slack didn't confirm the install ({detail}). Nothing was added; try again from {install}.",
    "storage_error": "The install couldn't be saved (the bot's storage is out of reach). Try again from {install} "
    "in a minute.",
}
UNKNOWN_FAILURE = "Slack reported a problem with the install ({detail}). Nothing was added; try again from {install}."
EXCHANGE_DETAILS = {
    "invalid_code": "the install code was already used or has expired",
    "code_already_used": "the install code was already used",
    "bad_client_secret": "the app's client secret is wrong: the operator should check SLACK_CLIENT_SECRET",
    "invalid_client_id": "the app's client id is wrong: the operator should check SLACK_CLIENT_ID",
    "bad_redirect_uri": "the redirect URL doesn't match the app's settings",
}


@dataclass(frozen=True)
class OAuthParts:
    flow: InstallFlow
    installations: RedisInstallationStore
    authorize: InstalledBotAuthorize  # each event's workspace token, from its install
    rotator: SharedTokenRotator


def install_flow(settings: OAuthSettings, client: AsyncWebClient, redis: RedisClient, key_prefix: str) -> OAuthParts:
    """Bolt's flow with the stores in Redis; its Web API calls go where `client`'s do (SLACK_API_URL)."""
    installations = RedisInstallationStore(redis, key_prefix, TokenCipher(settings.token_key))
    scopes = manifest_bot_scopes()
    oauth_settings = AsyncOAuthSettings(
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        scopes=list(scopes),
        user_scopes=[],
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        authorization_url=settings.authorize_url,
        installation_store=installations,
        state_store=RedisOAuthStateStore(redis, key_prefix, STATE_SECONDS),
        state_expiration_seconds=STATE_SECONDS,
        token_rotation_expiration_minutes=ROTATION_MINUTES,
        callback_options=AsyncCallbackOptions(success=_succeeded, failure=_failed),
    )
    flow = InstallFlow(client=TokenExchangeClient.like(client), settings=oauth_settings, scopes=scopes)
    rotator = SharedTokenRotator(
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        client=client,
        installations=installations,
        redis=redis,
        key_prefix=key_prefix,
    )
    authorize = InstalledBotAuthorize(rotator, ROTATION_MINUTES)
    return OAuthParts(flow, installations, authorize, rotator)


def manifest_bot_scopes(path: Path = MANIFEST) -> tuple[str, ...]:
    """The bot scopes the app's manifest asks for: what an install asks the workspace to grant."""
    manifest: dict[str, Any] = yaml.safe_load(path.read_text())
    return tuple(str(scope) for scope in manifest["oauth_config"]["scopes"]["bot"])


class InstallFlow(AsyncOAuthFlow):
    """Bolt's flow, with an install page that says what the app will be allowed to do."""

    def __init__(self, *, client: AsyncWebClient, settings: AsyncOAuthSettings, scopes: Sequence[str]) -> None:
        super().__init__(client=client, settings=settings)
        self._scopes = tuple(scopes)

    async def build_install_page_html(self, url: str, request: AsyncBoltRequest) -> str:
        scopes = "".join(f"<li><code>{html.escape(scope)}</code></li>" for scope in self._scopes)
        return _page(
            "Add Mistral to Slack",
            f'<p><a class="button" href="{html.escape(url)}">Add to Slack</a></p>'
            f"<p>Slack will ask you to allow the app to:</p><ul>{scopes}</ul>",
        )


class TokenExchangeClient(AsyncWebClient):
    """The flow's Web API client: the same as the bot's, remembering why Slack refused a code."""

    @classmethod
    def like(cls, client: AsyncWebClient) -> TokenExchangeClient:
        return cls(
            base_url=client.base_url,
            timeout=client.timeout,
            proxy=client.proxy,
            session=client.session,
            retry_handlers=list(client.retry_handlers),
        )

    async def oauth_v2_access(
        self,
        *,
        client_id: str,
        client_secret: str,
        code: str | None = None,
        redirect_uri: str | None = None,
        grant_type: str | None = None,
        refresh_token: str | None = None,
        **kwargs: Any,
    ) -> AsyncSlackResponse:
        try:
            return await super().oauth_v2_access(
                client_id=client_id,
                client_secret=client_secret,
                code=code,
                redirect_uri=redirect_uri,
                grant_type=grant_type,
                refresh_token=refresh_token,
                **kwargs,
            )
        except SlackApiError as error:
            _exchange_failure.set(_described(error))
            log.warning("slack_oauth_exchange_refused", error=_described(error))
            raise
        except (aiohttp.ClientError, TimeoutError) as error:
            detail = f"Slack could not be reached: {type(error).__name__}"
            _exchange_failure.set(detail)
            log.warning("slack_oauth_exchange_failed", error=detail)
            # What bolt's flow catches (and then shows the failure page); slack_sdk leaves it unannotated.
            raise SlackApiError(detail, {"ok": False, "error": "unreachable"}) from error  # type: ignore[no-untyped-call]


def _described(error: SlackApiError) -> str:
    response = error.response
    code = str(response.get("error") or "") if hasattr(response, "get") else ""
    status = getattr(response, "status_code", None) or getattr(response, "status", 200)  # or aiohttp's answer
    if code in EXCHANGE_DETAILS:
        return EXCHANGE_DETAILS[code]
    if status != 200:
        return f"its server answered HTTP {status}"
    return f"Slack said {code or 'no'}"


async def _succeeded(args: AsyncSuccessArgs) -> BoltResponse:
    installation = args.installation
    where = installation.team_name or installation.enterprise_name or "your workspace"
    if installation.is_enterprise_install:
        where = f"{installation.enterprise_name or 'your organisation'} (every workspace of the organisation)"
    log.info(
        "slack_installed",
        enterprise=installation.enterprise_id,
        team=installation.team_id,
        org_wide=installation.is_enterprise_install,
    )
    body = _page(
        "Mistral was added to Slack",
        f"<p>Mistral was added to {html.escape(where)}. Mention <b>@Mistral</b> in a channel, or send it a "
        "direct message.</p>",
    )
    return _html(200, body, args.settings.state_utils.build_set_cookie_for_deletion())


async def _failed(args: AsyncFailureArgs) -> BoltResponse:
    detail = _exchange_failure.get() or "it refused the install code"
    reason = str(args.reason)
    text = FAILURES.get(reason, UNKNOWN_FAILURE).format(
        install=f'<a href="{html.escape(args.settings.install_path)}">{html.escape(args.settings.install_path)}</a>',
        detail=html.escape(detail if reason == "invalid_code" else reason),
    )
    log.info("slack_install_failed", reason=reason)
    body = _page("Mistral was not added to Slack", f"<p>{text}</p>")
    return _html(args.suggested_status_code, body, args.settings.state_utils.build_set_cookie_for_deletion())


# The install pages hold no script, image or form: only their inline style and links.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def secure_pages(_: web.Request, response: web.StreamResponse) -> None:
    """Every HTML page served over HTTP (the install pages) gets PAGE_HEADERS (aiohttp's on_response_prepare)."""
    if response.content_type == "text/html":
        response.headers.update(PAGE_HEADERS)


def _html(status: int, body: str, cookie: str) -> BoltResponse:
    return BoltResponse(
        status=status, body=body, headers={"Content-Type": "text/html; charset=utf-8", "Set-Cookie": cookie}
    )


def _page(title: str, content: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 36rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5; }}
.button {{ display: inline-block; padding: .6rem 1.2rem; border-radius: .4rem; background: #4a154b; color: #fff;
  text-decoration: none; font-weight: 600; }}
</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
{content}
</body>
</html>
"""
