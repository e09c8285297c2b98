"""Web chat: `python -m bot web` serves a chat page; answers stream in over a websocket.

Each browser gets a random 128-bit id in an HttpOnly, SameSite=Strict cookie; its conversation
is the core's thread `web:<id>`, so a reload or a restart shows it again. Each answer streams to
the tab that asked, through the same core and live renderer as Discord and Slack. The page
(`web_static/`) shows all text as text: nothing the model or a person writes is ever run.
Without WEB_PASSWORD it listens on loopback only; with it, every request needs basic auth.

The frames (JSON over the websocket):

- server → page: `hello` {models: [{id, name, vision}], model: {id, name, vision}, maxChars,
  maxImages, maxImageBytes, history: [{role, text, images: count}]} on connecting; `reply`
  {question, reply, text, streaming, model: display name}; `refused` {question, reason}; `model`
  {model: {id, name, vision}} when the conversation's model changes (or a switch failed: the one
  still in use); `notice` {text, level: "info" | "warning"}; `cleared`.
- page → server: `ask` {id, text, images: [{name, type, data: "data:image/…;base64,…"}]};
  `model` {id}; `reset`.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import ipaddress
import re
import secrets
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.typedefs import Handler

from adapters.shared import PlatformJobs
from adapters.web_chat import IMAGE_FRAME_BYTES, MAX_FRAME_BYTES, Tab
from bot.app import Services
from config.env import ConfigError
from config.settings import ImageSettings, Settings

NAME = "web"
TOKEN_VARIABLES: tuple[str, ...] = ()  # never started by `python -m bot` alone: `python -m bot web`

log = structlog.get_logger(__name__)

STATIC = Path(__file__).with_name("web_static")
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
TABS: web.AppKey[set[Tab]] = web.AppKey("tabs")  # the same pages, with the conversation each shows


@dataclass(frozen=True)
class WebSettings:
    host: str
    port: int
    password: str | None
    cookie_seconds: int
    images: ImageSettings

    @classmethod
    def from_settings(cls, settings: Settings) -> WebSettings:
        env = settings.env
        host = env.str("WEB_HOST", "127.0.0.1")
        password = env.optional_str("WEB_PASSWORD")
        if password is None and not is_loopback(host):
            raise ConfigError(
                f"WEB_HOST={host!r} would let anyone who can reach this machine chat with the bot: "
                "set WEB_PASSWORD to require a password, or leave WEB_HOST at 127.0.0.1"
            )
        port = env.int("WEB_PORT", 8080, minimum=1, maximum=65535)
        return cls(host, port, password, settings.history.ttl_seconds, settings.images)

    @property
    def max_frame_bytes(self) -> int:
        """The largest frame a page may send: a question of MAX_MESSAGE_CHARS with its images."""
        return MAX_FRAME_BYTES + self.images.max_images * IMAGE_FRAME_BYTES

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- HTTP -----------------------------------------------------------------------------------


@web.middleware
async def password_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With WEB_PASSWORD set, every request needs basic auth with it (any user name)."""
    password = request.app[SITE].password
    if password is not None and not _authorized(request.headers.get("Authorization", ""), password):
        raise web.HTTPUnauthorized(
            text="This chat needs a password.", headers={"WWW-Authenticate": 'Basic realm="chat", charset="UTF-8"'}
        )
    return await handler(request)


def _authorized(header: str, password: str) -> bool:
    """`header` is "Basic base64(user:password)" with that password (any user name)."""
    scheme, _, encoded = header.partition(" ")
    try:
        credentials = base64.b64decode(encoded.strip(), validate=True)
    except ValueError:
        return False
    _, colon, given = credentials.partition(b":")
    return scheme.lower() == "basic" and bool(colon) and hmac.compare_digest(given, password.encode())


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
    return _static("chat.js", "text/javascript", "no-cache")


def chat_id_of(request: web.Request) -> str | None:
    value = request.cookies.get(COOKIE, "")
    return value if _CHAT_ID.fullmatch(value) else None


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return origin is None or origin.split("://", 1)[-1] == request.host


async def socket(request: web.Request) -> web.StreamResponse:
    chat_id = chat_id_of(request)
    if chat_id is None or not _same_origin(request):
        raise web.HTTPForbidden(text="Open the chat page first.")
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=request.app[SITE].max_frame_bytes)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    tab = Tab(request.app[JOBS], request.app[SITE].images, request.app[TABS], ws, chat_id)
    request.app[TABS].add(tab)
    try:
        await tab.greet()
        async for message in ws:
            if message.type is WSMsgType.TEXT and not await tab.receive(message.data):
                await ws.close(code=WSCloseCode.MESSAGE_TOO_BIG, message=b"message too big")
    finally:
        request.app[TABS].discard(tab)
    return ws


async def _close_pages(app: web.Application) -> None:
    """On shutdown: answers still being written end with a note on their pages, then the pages
    are told the server is going away (they reconnect on their own)."""
    await app[JOBS].close()
    pages: weakref.WeakSet[web.WebSocketResponse] = app[SOCKETS]
    for ws in list(pages):
        await ws.close(code=1001, message=b"server shutting down")


def make_app(services: Services, site: WebSettings) -> web.Application:
    app = web.Application(middlewares=[password_guard], client_max_size=64 * 1024)
    app[JOBS] = PlatformJobs(services, NAME)
    app[SITE] = site
    app[SOCKETS] = weakref.WeakSet()
    app[TABS] = set()
    app.router.add_get("/", page)
    app.router.add_get("/chat.js", script)
    app.router.add_get("/ws", socket)
    app.on_shutdown.append(_close_pages)
    return app


# -- the adapter ----------------------------------------------------------------------------


def command(argv: list[str], settings: Settings) -> int | None:
    """Checks the web settings before anything starts: a bad one exits 2, like any invalid setting."""
    try:
        WebSettings.from_settings(settings)
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2
    return None


async def run(services: Services, settings: Settings) -> None:
    site_settings = WebSettings.from_settings(settings)
    runner = web.AppRunner(make_app(services, site_settings), access_log=None, shutdown_timeout=5)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, site_settings.host, site_settings.port).start()
        except OSError as error:
            raise ConfigError(
                f"WEB_HOST={site_settings.host!r} WEB_PORT={site_settings.port}: cannot listen there ({error.strerror})"
            ) from None
        log.info("web_chat_listening", url=site_settings.url, password=site_settings.password is not None)
        print(f"Web chat on {site_settings.url}", file=sys.stderr, flush=True)
        await asyncio.Event().wait()  # until the bot's main cancels us
    finally:
        await runner.cleanup()
