"""Web chat: `python -m bot web` serves a chat page; answers stream in over a websocket.

Each browser gets a random 128-bit id in an HttpOnly, SameSite=Strict cookie; its conversations
are the core's threads `web:<id>` (the first) and `web:<id>:<conversation id>`, listed per browser
(conversations.py), so a reload or a restart shows them again. Each answer streams
to every tab of this process showing its conversation, through the same core and live renderer
as Discord and Slack; its last frame goes out once it is stored. The page
(`static/`) shows all text as text: nothing the model or a person writes is ever run.
Without WEB_PASSWORD it listens on loopback only; with it, every request needs basic auth.
guard.py checks each request (password, Host, Origin, trusted proxies) and loads WEB_TLS_*.

The frames (JSON over the websocket) are described in docs/web-protocol.md.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from adapters.shared.platform_jobs import PlatformJobs
from adapters.web import guard as web_guard
from adapters.web.chat import Tab
from adapters.web.conversations import Hub, conversations_for
from adapters.web.guard import Guard
from adapters.web.uploads import UploadLimits
from adapters.web.votes import Ballots
from bot.app import Services
from config.env import ConfigError
from config.settings import ImageSettings, Settings

NAME = "web"
TOKEN_VARIABLES: tuple[str, ...] = ()  # never started by `python -m bot` alone: `python -m bot web`

log = structlog.get_logger(__name__)

STATIC = Path(__file__).with_name("static")
# The page's ES modules (index.html loads chat.js, which imports the others), served by name:
# a plain name of a file there, never a path.
_MODULE = r"[a-z_]+\.js"
MODULES = frozenset(path.name for path in STATIC.iterdir() if re.fullmatch(_MODULE, path.name) and path.is_file())
COOKIE = "chat_id"
_CHAT_ID = re.compile(r"[0-9a-f]{32}")
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
JOBS: web.AppKey[PlatformJobs] = web.AppKey("jobs")
SITE: web.AppKey[WebSettings] = web.AppKey("site")
SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("sockets")  # open pages
HUB: web.AppKey[Hub] = web.AppKey("hub")  # the same pages by conversation and browser, and their answers
BALLOTS: web.AppKey[Ballots] = web.AppKey("ballots")  # the browsers' votes on answers, read to draw them again


@dataclass(frozen=True)
class WebSettings:
    host: str
    port: int
    password: str | None
    cookie_seconds: int
    guard: Guard  # who may use the chat, and over what (guard.py)

    @classmethod
    def from_settings(cls, settings: Settings) -> WebSettings:
        env = settings.env
        host = env.str("WEB_HOST", "127.0.0.1")
        guard = Guard.from_env(env, host)  # WEB_PASSWORD, WEB_ALLOWED_HOSTS, WEB_TRUSTED_PROXIES, WEB_TLS_*
        port = env.int("WEB_PORT", 8080, minimum=1, maximum=65535)
        return cls(host, port, guard.password, settings.history.ttl_seconds, guard)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.guard.tls else 'http'}://{host}:{self.port}/"


# -- HTTP -----------------------------------------------------------------------------------


def _static(name: str, content_type: str, cache: str) -> web.FileResponse:
    headers = {**_SECURITY_HEADERS, "Content-Type": f"{content_type}; charset=utf-8", "Cache-Control": cache}
    return web.FileResponse(STATIC / name, headers=headers)


async def page(request: web.Request) -> web.StreamResponse:
    response = _static("index.html", "text/html", "no-store")  # it sets the cookie
    chat_id = chat_id_of(request) or secrets.token_hex(16)  # 128 random bits
    response.set_cookie(
        COOKIE,
        chat_id,
        max_age=request.app[SITE].cookie_seconds,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def script(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in MODULES:
        raise web.HTTPNotFound
    return _static(name, "text/javascript", "no-cache")


def chat_id_of(request: web.Request) -> str | None:
    value = request.cookies.get(COOKIE, "")
    return value if _CHAT_ID.fullmatch(value) else None


async def socket(request: web.Request) -> web.StreamResponse:
    chat_id = chat_id_of(request)
    if chat_id is None or not web_guard.same_origin(request):
        raise web.HTTPForbidden(text="Open the chat page first.")
    jobs = request.app[JOBS]
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=UploadLimits.of(jobs).largest_frame)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    conversation = request.query.get("conversation", "")  # the one this page showed last
    address = web_guard.counted_address(request.remote or "unknown")
    tab = Tab(jobs, request.app[HUB], ws, chat_id, address, conversation, request.app[BALLOTS])
    try:
        await tab.greet()
        async for message in ws:
            if message.type is WSMsgType.TEXT and not await tab.receive(message.data):
                await ws.close(code=WSCloseCode.MESSAGE_TOO_BIG, message=b"message too big")
    finally:
        tab.close()
    return ws


async def _close_pages(app: web.Application) -> None:
    """On shutdown: answers still being written end with a note on their pages, then the pages
    are told the server is going away (they reconnect on their own)."""
    await app[JOBS].close()
    pages: weakref.WeakSet[web.WebSocketResponse] = app[SOCKETS]
    for ws in list(pages):
        await ws.close(code=1001, message=b"server shutting down")


def make_app(services: Services, site: WebSettings, images: ImageSettings) -> web.Application:
    """`images`: the limits for images people attach (none are taken without a model that sees them)."""
    app = web.Application(middlewares=[web_guard.middleware(site.guard)], client_max_size=64 * 1024)
    app[JOBS] = PlatformJobs(services, NAME, images)
    app[SITE] = site
    app[SOCKETS] = weakref.WeakSet()
    app[HUB] = Hub(conversations_for(services, site.cookie_seconds))
    app[BALLOTS] = Ballots(app[JOBS].feedback)
    app.router.add_get("/", page)
    app.router.add_get(f"/{{name:{_MODULE}}}", script)
    app.router.add_get("/ws", socket)
    app.on_shutdown.append(_close_pages)
    return app


# -- the adapter ----------------------------------------------------------------------------


def check(settings: Settings) -> None:
    """The web settings, checked before anything starts (raises ConfigError)."""
    WebSettings.from_settings(settings)


async def run(services: Services, settings: Settings) -> None:
    site_settings = WebSettings.from_settings(settings)
    guard = site_settings.guard
    app = make_app(services, site_settings, settings.images)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, site_settings.host, site_settings.port, ssl_context=guard.tls).start()
        except OSError as error:
            raise ConfigError(
                f"WEB_HOST={site_settings.host!r} WEB_PORT={site_settings.port}: cannot listen there ({error.strerror})"
            ) from None
        log.info("web_chat_listening", url=site_settings.url, password=guard.password is not None)
        if guard.password and not (guard.tls or guard.trusted_proxies or web_guard.is_loopback(site_settings.host)):
            log.warning("web_password_sent_in_clear", hint="set WEB_TLS_CERT and WEB_TLS_KEY, or serve behind HTTPS")
        print(f"Web chat on {site_settings.url}", file=sys.stderr, flush=True)
        await asyncio.Event().wait()  # until the bot's main cancels us
    finally:
        await runner.cleanup()
