"""Web chat: `python -m bot web` serves a chat page; answers stream in over a websocket.

Each browser gets a random 128-bit id in an HttpOnly, SameSite=Strict cookie; its conversation
is the core's thread `web:<id>`, so a reload or a restart shows it again. Each answer streams to
the tab that asked, through the same core and live renderer as Discord and Slack. The page
(`web_static/`) shows all text as text: nothing the model or a person writes is ever run.
Without WEB_PASSWORD it listens on loopback only; with it, every request needs basic auth.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import ipaddress
import json
import re
import secrets
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiohttp import WSMsgType, web
from aiohttp.typedefs import Handler

from adapters.shared import PlatformJobs
from bot.app import Services
from bot.core import Turn
from bot.errors import ReplyFailure
from bot.render import failure_note
from bot.surface import SurfaceLimits, UnlimitedSurface
from config.env import ConfigError
from config.settings import BackendKind, Settings

NAME = "web"
TOKEN_VARIABLES: tuple[str, ...] = ()  # never started by `python -m bot` alone: `python -m bot web`

log = structlog.get_logger(__name__)

STATIC = Path(__file__).with_name("web_static")
COOKIE = "chat_id"
MAX_MESSAGE_CHARS = 100_000
# A JSON frame may spend up to 6 bytes per character (\u escapes); larger frames are refused.
MAX_FRAME_BYTES = 6 * MAX_MESSAGE_CHARS + 4096
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


@dataclass(frozen=True)
class WebSettings:
    host: str
    port: int
    password: str | None
    model_name: str  # shown in the page's header
    cookie_seconds: int

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
        model = settings.model
        local_path = model.local_model_path if model.backend is BackendKind.LOCAL else None
        name = local_path.stem if local_path is not None else model.model_id
        port = env.int("WEB_PORT", 8080, minimum=1, maximum=65535)
        return cls(host, port, password, name, settings.history.ttl_seconds)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebReply(UnlimitedSurface):
    """One answer in one tab. The page draws its own blinking caret while `streaming` is true."""

    limits = SurfaceLimits(max_length=200_000, indicator="", min_edit_interval=0.05)

    def __init__(self, tab: Tab, question: str) -> None:
        self._tab = tab
        self._question = question
        self._posted = 0

    async def post(self, text: str, *, final: bool) -> str:
        self._posted += 1
        handle = f"{self._question}.{self._posted}"
        await self.edit(handle, text, final=final)
        return handle

    async def edit(self, handle: str, text: str, *, final: bool) -> None:
        await self._tab.send(
            {"type": "reply", "question": self._question, "reply": handle, "text": text, "streaming": not final}
        )


class Tab:
    """One open page: its websocket and the conversation it shows."""

    def __init__(self, app: web.Application, ws: web.WebSocketResponse, chat_id: str) -> None:
        self._jobs = app[JOBS]
        self._ws = ws
        self._chat_id = chat_id
        self.thread = f"web:{chat_id}"

    async def send(self, event: dict[str, Any]) -> None:
        if self._ws.closed:
            return  # the page went away; its answer still finishes and is stored
        try:
            await self._ws.send_json(event)
        except ConnectionError:
            log.debug("web_page_gone", thread=self.thread)

    async def greet(self, model_name: str) -> None:
        """The conversation so far, for a page that has just (re)connected."""
        try:
            history = [{"role": m.role, "text": m.content} for m in await self._jobs.core.history(self.thread)]
        except ReplyFailure as failure:
            history = []
            await self.send({"type": "notice", "text": failure_note(failure)})
        await self.send({"type": "hello", "model": model_name, "maxChars": MAX_MESSAGE_CHARS, "history": history})

    async def receive(self, raw: str) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            log.warning("web_unreadable_event", thread=self.thread)
        elif event.get("type") == "reset":
            await self._reset()
        elif event.get("type") == "ask" and isinstance(event.get("text"), str):
            await self._ask(str(event.get("id", ""))[:64], event["text"])

    async def _ask(self, question: str, text: str) -> None:
        if text.strip() == "/reset":
            await self._reset()
            return
        refusal = _refusal(text)
        if refusal is not None:
            await self.send({"type": "refused", "question": question, "reason": refusal})
            return
        # A task of its own: the answer completes (and is stored) even if the page closes now.
        turn = Turn(self.thread, self._chat_id, "web", text, channel="web")  # the page is one channel
        self._jobs.spawn(self._jobs.answer(turn, WebReply(self, question)))

    async def _reset(self) -> None:
        try:
            await self._jobs.core.reset(self.thread)
        except ReplyFailure as failure:
            await self.send({"type": "notice", "text": failure_note(failure)})
            return
        await self.send({"type": "cleared"})


def _refusal(text: str) -> str | None:
    if not text.strip():
        return "Type a message first."
    if len(text) > MAX_MESSAGE_CHARS:
        return (
            f"Your message is {len(text):,} characters long; the limit is {MAX_MESSAGE_CHARS:,}. "
            "Please shorten it or send it in parts."
        )
    return None


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
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_FRAME_BYTES)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    tab = Tab(request.app, ws, chat_id)
    await tab.greet(request.app[SITE].model_name)
    async for message in ws:
        if message.type is WSMsgType.TEXT:
            await tab.receive(message.data)
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
