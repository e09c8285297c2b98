"""The HTTP under huggingface_hub's AsyncInferenceClient: one aiohttp connection pool.

huggingface_hub builds an httpx2 client per AsyncInferenceClient, and the bot uses one
AsyncInferenceClient per stream, because closing it is what ends a streamed response.
httpx2's own transport reads through anyio, which pauses and resumes the socket and arms a
timer on every read: with one SSE event per token that was the larger part of the bot's CPU
(~0.3 ms per token on the benchmark machine). Here each of those httpx2 clients sends through
a shared aiohttp session instead (httpx-aiohttp's transport, httpx2's documented extension
point, installed with huggingface_hub's public `set_async_client_factory`): aiohttp's reader
costs a fraction of that, keeps connections to the model server alive between replies, and
builds the TLS context once.

A streaming reply's socket is read only as often as its text is needed: on this kind of
machine each wake-up costs a tenth of a millisecond or more before any work, so a reply is
read in batches. A reply from a plain-HTTP server has a connection of its own that the server
closes when the reply ends, and is read only when its text is about to be shown and when the
server hangs up (`ReadWhenShown`). Over TLS (and past `own_connections` replies at once)
replies share kept-alive connections and one tick reads them all (`ReadBatching`), over plain
TCP only those whose socket holds more than text nobody needs yet (`UnreadText`). Either way
the text events that arrive in one read are merged (`bot.sse`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json as _json
import math
import socket
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx2
import structlog
from httpx_aiohttp.httpx2 import AiohttpTransport
from httpx_aiohttp.httpx2.transport import AiohttpResponseStream
from huggingface_hub import constants, set_async_client_factory
from huggingface_hub.utils._http import (
    async_hf_request_event_hook,
    async_hf_response_event_hook,
    default_async_client_factory,
)

from bot.burst import BEHIND_FIRST_WRITES_SECONDS, ModelCallsFirst
from bot.sse import DeltaMerger, TextDemand

log = structlog.get_logger(__name__)

KEEPALIVE_SECONDS = 30.0
HF_ROUTER_URL = constants.INFERENCE_PROXY_TEMPLATE.format(provider="")
# Model requests built at once (see ModelConnectionPool.open_stream). Few: on Python 3.11 aiohttp
# writes a request (headers and body together) from a task of its own, which runs on the loop's
# next pass, after everything else that pass holds; the fewer requests built in one pass, the
# sooner each reaches the server (N = 50 mentions at once: ~12 ms p99 less than with 8).
BUILDING_MAX = 2
# The shortest hold worth a timer: when the loop lags that much, reads batch by themselves.
MIN_HOLD_SECONDS = 0.01
# A reply read only when its text is shown (`ReadWhenShown`) is still read at least this often
# (and within half the stall timeout, which aiohttp counts from the last read), and as soon as
# this much waits unread.
MAX_UNREAD_SECONDS = 1.0
MAX_UNREAD_BYTES = 64 * 1024
# How long before the renderer shows text the socket is read, so the text is there in time.
READ_AHEAD_SECONDS = 0.01
# During a burst, an answer is left unread at most this long after its request (its first
# token will hardly come sooner; see `ModelCallsFirst`).
ANSWER_HOLD_LIMIT_SECONDS = 0.1
# Spare connections are opened again this long after the last was taken: not during a burst.
SPARE_REFILL_DELAY_SECONDS = 1.0
# After the server refused a spare connection (or did not answer within the timeout: the bot's
# start waits for the first spares), it is tried again this much later.
SPARE_RETRY_SECONDS = 30.0
SPARE_CONNECT_TIMEOUT_SECONDS = 2.0
# The first byte of Linux's TCP_INFO: the connection's state.
_TCP_ESTABLISHED = b"\x01"


def unread_limit(stall_timeout: float | None) -> float:
    """How long a reply's text may wait unread: aiohttp gives up on a response after
    `stall_timeout` without a read, so text the server did send must be read well before."""
    return min(MAX_UNREAD_SECONDS, stall_timeout / 2) if stall_timeout else MAX_UNREAD_SECONDS


class ReadBatching:
    """Reads of streaming replies, batched on one shared clock.

    A model streams one token per socket write. Read as they come, each token wakes the
    process and is parsed on its own: on a VM such a wake-up costs several times the token's
    own work (caches gone cold while idle), and with hundreds of replies the parsing alone
    saturates the process. Once a stream's first text is out, its socket is left unread until
    the next tick, when every held stream is read at once: several tokens per wake-up, merged
    into one event (`bot.sse`), a third to a half of the CPU. The first words never wait.

    `interval` is what the last words of a reply may wait. A busy loop gets to a read late
    (hundreds of replies read on one tick take tens of milliseconds), and that lateness comes
    out of the next tick's wait: the hold shrinks as the load grows (down to
    `MIN_HOLD_SECONDS`, where the loop is so late that reads find several tokens anyway), so
    the hold and the queueing together stay near `interval`.

    A stream held with a `still_unneeded` check is asked on each tick before it is read: while
    it answers True (only more text waits, and nobody shows text before the next tick; see
    `UnreadText`), it stays paused and costs that tick a syscall instead of a read.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._held: list[tuple[asyncio.Transport, Callable[[], bool] | None]] = []
        self._tick: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticked_at = 0.0
        self._lag = 0.0  # how late the last tick's reads were processed, at the latest
        self._round_lag = 0.0  # the same for the tick in progress

    def read_after_tick(self, now: float) -> None:
        """A held stream was read: how late after its tick counts against the next tick."""
        self._round_lag = max(self._round_lag, now - self._ticked_at)

    def hold(self, transport: asyncio.Transport, still_unneeded: Callable[[], bool] | None = None) -> bool:
        """Leave `transport` unread until the next tick, or beyond while `still_unneeded()`
        (False: it is closing)."""
        if transport.is_closing():
            return False
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a tick pending on another (closed) loop would never come
            self._loop, self._tick, self._held = loop, None, []
            self._lag = self._round_lag = 0.0
        transport.pause_reading()
        self._held.append((transport, still_unneeded))
        self._tick_later(loop)
        return True

    def _tick_later(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._tick is None:
            delay = max(self.interval - self._lag, MIN_HOLD_SECONDS)
            self._tick = loop.call_later(delay, self._read_held)

    def _read_held(self) -> None:
        self._tick = None
        self._lag, self._round_lag = self._round_lag, 0.0
        loop = asyncio.get_running_loop()
        self._ticked_at = loop.time()
        held, self._held = self._held, []
        for transport, still_unneeded in held:
            if transport.is_closing():
                continue
            if still_unneeded is not None and still_unneeded():
                self._held.append((transport, still_unneeded))
            else:
                transport.resume_reading()
        if self._held:
            self._tick_later(loop)


class UnreadText:
    """What a paused stream's socket holds: only more text, or something the reader must see.

    A paused transport leaves what the server sends in the kernel. On each tick the socket is
    peeked at (`MSG_PEEK`: nothing is consumed, aiohttp reads it all later): while everything
    new is more text of the reply's own shape, with the HTTP chunks around it, the stream can
    stay paused, and aiohttp, huggingface_hub and the merger do nothing for it. A finish, an
    error, `[DONE]`, the body's last chunk, a closed or reset connection, a line that does not
    fit, or MAX_UNREAD_BYTES waiting, and it is read. Only for plain TCP: over TLS the bytes
    are encrypted, and those streams are read on every tick.
    """

    def __init__(self, transport: asyncio.Transport, merger: DeltaMerger, max_unread: float) -> None:
        """`max_unread`: how long text may wait unread at most (see `unread_limit`)."""
        sock = transport.get_extra_info("socket")
        self._socket_args = (sock.family, sock.type, sock.proto, sock.fileno())
        self._merger = merger
        self._max_unread = max_unread
        self._checked = 0  # how much of what waits is known to be text
        self._read_at = 0.0

    @staticmethod
    def readable(transport: asyncio.Transport) -> bool:
        return (
            transport.get_extra_info("sslcontext") is None
            and transport.get_extra_info("socket") is not None
            and hasattr(socket, "TCP_INFO")
        )

    def read_since(self) -> None:
        """The transport was read: what waits now starts afresh."""
        self._checked = 0
        self._read_at = time.monotonic()

    def only_more_text(self) -> bool:
        if time.monotonic() - self._read_at >= self._max_unread:
            return False
        # A socket object over the transport's descriptor (no syscall), detached so it never closes it.
        family, kind, proto, fd = self._socket_args
        peeker = socket.socket(family, kind, proto, fileno=fd)
        try:
            waiting = peeker.recv(MAX_UNREAD_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            # Data hides a close behind it from recv; the connection's state shows it.
            still_open = peeker.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1) == _TCP_ESTABLISHED
        except BlockingIOError:
            return True  # nothing new
        except OSError:
            return False  # aiohttp reads the error
        finally:
            peeker.detach()
        if not waiting or not still_open or len(waiting) >= MAX_UNREAD_BYTES:
            return False  # the server closed, or enough waits
        whole = waiting.rfind(b"\n") + 1
        if whole > self._checked:
            if not self._merger.only_text(waiting[self._checked : whole]):
                return False
            self._checked = whole
        return True


class ReadWhenShown:
    """A reply on a connection of its own, read when its text is about to be shown and at its end.

    The request asked the server to close the connection once the reply is complete
    (`Connection: close`), and a closing connection wakes the process at once. Until then the
    socket's low-water mark (SO_RCVLOWAT) keeps the kernel from waking the bot for every token:
    it is lowered, and the socket read, just before the renderer next shows text
    (`TextDemand`), at least every MAX_UNREAD_SECONDS, or when MAX_UNREAD_BYTES wait. A quiet
    reply then costs a couple of wake-ups a second instead of one per batching tick, and its
    last words are read the moment the server has sent them.
    """

    def __init__(self, demand: TextDemand | None, *, min_gap: float, max_unread: float) -> None:
        """`min_gap`: the least time between two reads, unless the server closes.
        `max_unread`: the most (see `unread_limit`)."""
        self._demand = demand
        self._min_gap = min_gap
        self._max_unread = max_unread
        self._transport: asyncio.Transport | None = None
        self._socket: Any = None
        self._earliest = self._latest = 0.0
        self._timer: asyncio.TimerHandle | None = None
        if demand is not None:
            demand.watch(self._schedule)

    def hold(self, transport: asyncio.Transport) -> bool:
        """Leave `transport` unread until its text is needed (False: its socket can't be held)."""
        sock = transport.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, MAX_UNREAD_BYTES)
        except (AttributeError, OSError):
            return False
        now = time.monotonic()
        self._transport, self._socket = transport, sock
        self._latest = now + self._max_unread
        self._earliest = min(now + self._min_gap, self._latest)
        self._schedule()
        return True

    def close(self) -> None:
        self._cancel_timer()
        self._transport = self._socket = None
        if self._demand is not None:
            self._demand.unwatch(self._schedule)

    def _schedule(self) -> None:
        """(Re)arm the read for when the renderer next needs text (it has just said when)."""
        if self._socket is None:
            return
        self._cancel_timer()
        needed = self._demand.next_use_at - READ_AHEAD_SECONDS if self._demand is not None else math.inf
        delay = max(self._earliest, min(needed, self._latest)) - time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(max(delay, 0.0), self._read)

    def _read(self) -> None:
        self._timer = None
        transport, sock = self._transport, self._socket
        self._transport = self._socket = None
        if transport is not None and not transport.is_closing():
            # Lowered, the mark wakes the loop now if anything waits; that read holds it again.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class ModelStream:
    """One model request's response, as its reads are batched.

    Opened by `ModelConnectionPool.open_stream` in the task that then sends the request; the
    pool's transport finds it there (a context variable), since huggingface_hub builds the
    request in between.
    """

    def __init__(
        self,
        batching: ReadBatching,
        *,
        on_sent: Callable[[], None],
        on_closed: Callable[[], None],
        demand: TextDemand | None,
        own_connection: bool,
    ) -> None:
        """`own_connection`: ask the server to close the connection after this reply (see `ReadWhenShown`)."""
        self._batching = batching
        self._on_sent: Callable[[], None] | None = on_sent
        self._on_closed = on_closed
        self._demand = demand
        self.own_connection = own_connection
        self._read_when_shown: ReadWhenShown | None = None
        self._merger: DeltaMerger | None = None
        self._unread: UnreadText | None = None
        self._peek_decided = False
        self._max_unread = MAX_UNREAD_SECONDS
        self._first_text_out = False
        self._last_read: float | None = None
        self._held = False
        self._closed = False
        _current_stream.set(self)

    def sent(self) -> None:
        """The request is built and handed to aiohttp (or will never be)."""
        if self._on_sent is not None:
            self._on_sent, on_sent = None, self._on_sent
            on_sent()
            if self._demand is not None:
                self._demand.asked()

    @property
    def shown_after_burst(self) -> bool:
        return self._demand is not None and self._demand.shown_after_burst

    def merger(self) -> DeltaMerger:
        """How this response's text events are merged, and kept until the reader needs them."""
        self._merger = DeltaMerger(self._demand, lead=self._batching.interval)
        return self._merger

    def first_text_out(self) -> None:
        """Every token was read as it came until now; from here on reads may be batched."""
        self._first_text_out = True

    def answered(self, response: aiohttp.ClientResponse, stall_timeout: float | None) -> None:
        """The response's headers are in: a server that will close the connection after this
        reply lets it be read only when its text is shown; any other is read on the tick."""
        self._max_unread = unread_limit(stall_timeout)
        if self.own_connection and _server_closes(response):
            self._read_when_shown = ReadWhenShown(
                self._demand, min_gap=self._batching.interval, max_unread=self._max_unread
            )

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.sent()
            if self._read_when_shown is not None:
                self._read_when_shown.close()
            self._on_closed()
            _current_stream.set(None)

    def after_read(self, transport: asyncio.Transport | None) -> None:
        now = asyncio.get_running_loop().time()
        # A stream slower than the tick would gain nothing from holding, only an extra wake-up.
        steady = self._last_read is not None and now - self._last_read < 1.25 * self._batching.interval
        self._last_read = now
        if self._held:
            self._batching.read_after_tick(now)
        self._held = False
        if not self._first_text_out or transport is None or self._closed:
            return
        if self._read_when_shown is not None and self._read_when_shown.hold(transport):
            return
        if steady:
            self._held = self._batching.hold(transport, self._unneeded_check(transport))

    def _unneeded_check(self, transport: asyncio.Transport) -> Callable[[], bool] | None:
        """What the tick asks before reading this held stream (None: it just reads it)."""
        if not self._peek_decided:  # the response's connection stays the same: decided once
            self._peek_decided = True
            if self._merger is not None and UnreadText.readable(transport):
                self._unread = UnreadText(transport, self._merger, self._max_unread)
        if self._unread is None:
            return None
        self._unread.read_since()
        return self._still_unneeded

    def _still_unneeded(self) -> bool:
        assert self._merger is not None and self._unread is not None
        return self._merger.may_keep() and self._unread.only_more_text()


_current_stream: contextvars.ContextVar[ModelStream | None] = contextvars.ContextVar("model_stream", default=None)


def _server_closes(response: aiohttp.ClientResponse) -> bool:
    """The server said it closes the connection after this response."""
    tokens = {token.strip().lower() for token in response.headers.get("Connection", "").split(",")}
    return "close" in tokens


class _BatchedResponseStream(AiohttpResponseStream):
    def __init__(self, response: aiohttp.ClientResponse, stream: ModelStream) -> None:
        super().__init__(response)
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        response = self._aiohttp_response
        if response.content_type != "text/event-stream":
            async for chunk in super().__aiter__():
                yield chunk
            return
        merger = self._stream.merger()
        try:
            async for chunk in super().__aiter__():
                # Released to the pool once the body is complete: then it is no longer this stream's.
                connection = response.connection
                self._stream.after_read(connection.transport if connection is not None else None)
                if text := merger.feed(chunk):
                    yield text
        except Exception:
            if kept := merger.flush():  # what came before a cut connection is shown with its reason
                yield kept
            raise
        if kept := merger.flush():
            yield kept


class _BorrowedSessionTransport(AiohttpTransport):
    """A stream's transport over the pool's session: closing the stream's client leaves the pool open.

    The stream's response is closed by huggingface_hub (its exit stack closes the response
    before the client); aiohttp then drops a connection whose body was not read to the end.
    """

    async def aclose(self) -> None:
        return None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        stream = _current_stream.get()
        if stream is not None:
            stream.sent()
            if stream.own_connection:
                request.headers["Connection"] = "close"
        response = await super().handle_async_request(request)
        if stream is not None and isinstance(response.stream, AiohttpResponseStream):
            answer = response.stream._aiohttp_response
            stream.answered(answer, request.extensions.get("timeout", {}).get("read"))
            response.stream = _BatchedResponseStream(answer, stream)
        return response


class _SpareProtocol(asyncio.Protocol):
    """Holds an opened connection until a request takes it; a server that hangs up drops it."""

    def __init__(self, on_lost: Callable[[asyncio.Transport], None]) -> None:
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.close()  # a server speaking before any request (e.g. a 408) is not reused

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._on_lost(self._transport)


class SpareConnections:
    """Connections to a plain-HTTP model server opened before the requests that take them.

    Every reply from such a server has a connection of its own (see `ReadWhenShown`), and
    opening one costs the event loop about as much as building the request itself (~0.5 ms on
    a small VM: a non-blocking connect, a wake-up for it, the transport). Fifty mentions at
    once would pay that fifty times before the last request leaves. Spares are opened at
    start and again a moment after a burst has taken them; one the server closed meanwhile
    is dropped, and a request that finds none connects as usual.
    """

    def __init__(self, host: str, port: int, count: int) -> None:
        self.host, self.port, self.count = host, port, count
        self._ready: list[asyncio.Transport] = []
        self._refill: asyncio.TimerHandle | asyncio.Task[None] | None = None

    def serves(self, host: str | None, port: int | None) -> bool:
        return host == self.host and port == self.port

    @property
    def ready(self) -> int:
        return len(self._ready)

    def take(self) -> asyncio.Transport | None:
        while self._ready:
            transport = self._ready.pop()
            if not transport.is_closing():
                self._refill_later(SPARE_REFILL_DELAY_SECONDS)
                return transport
        self._refill_later(SPARE_REFILL_DELAY_SECONDS)
        return None

    async def fill(self) -> None:
        """Open connections until `count` are ready; stop (and try later) if the server refuses."""
        loop = asyncio.get_running_loop()
        while len(self._ready) < self.count:
            try:
                transport, _ = await asyncio.wait_for(
                    loop.create_connection(lambda: _SpareProtocol(self._lost), self.host, self.port),
                    SPARE_CONNECT_TIMEOUT_SECONDS,
                )
            except (OSError, TimeoutError) as error:
                detail = f"{type(error).__name__}: {error}"[:200]
                log.info("spare_model_connections_failed", ready=len(self._ready), error=detail)
                self._refill_later(SPARE_RETRY_SECONDS)
                return
            self._ready.append(transport)

    def close(self) -> None:
        if self._refill is not None:
            self._refill.cancel()
            self._refill = None
        ready, self._ready = self._ready, []
        for transport in ready:
            transport.close()

    def _lost(self, transport: asyncio.Transport) -> None:
        with contextlib.suppress(ValueError):
            self._ready.remove(transport)

    def _refill_later(self, delay: float) -> None:
        """(Re)start the wait: a burst still taking connections pushes the refill back."""
        if isinstance(self._refill, asyncio.Task) and not self._refill.done():
            return
        if isinstance(self._refill, asyncio.TimerHandle):
            self._refill.cancel()
        self._refill = asyncio.get_running_loop().call_later(delay, self._start_refill)

    def _start_refill(self) -> None:
        self._refill = asyncio.ensure_future(self.fill())


class _ModelServerConnector(aiohttp.TCPConnector):
    """aiohttp's connector, handing out a spare connection to the model server when one is
    ready. During a burst of turns, an answer whose text can't be shown before the burst has
    asked the model (a new Discord thread is opened then) is left unread until that moment."""

    def __init__(self, spares: SpareConnections | None, model_calls: ModelCallsFirst | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._spares = spares
        self._model_calls = model_calls

    async def connect(self, req: aiohttp.ClientRequest, traces: Any, timeout: aiohttp.ClientTimeout) -> Any:
        connection = await super().connect(req, traces, timeout)
        model_calls, transport, stream = self._model_calls, connection.transport, _current_stream.get()
        if (
            model_calls is not None
            and model_calls.in_burst
            and transport is not None
            and stream is not None
            and stream.shown_after_burst
        ):
            held = _HeldAnswer(transport)  # writing does not wait for reading: the request still goes out now
            model_calls.after_burst(held.release, then=BEHIND_FIRST_WRITES_SECONDS)
            asyncio.get_running_loop().call_later(ANSWER_HOLD_LIMIT_SECONDS, held.release)
        return connection

    async def _create_connection(self, req: aiohttp.ClientRequest, traces: Any, timeout: aiohttp.ClientTimeout) -> Any:
        spares = self._spares
        if spares is not None and req.proxy is None and not req.is_ssl() and spares.serves(req.url.raw_host, req.port):
            transport = spares.take()
            if transport is not None:
                protocol = self._factory()
                transport.set_protocol(protocol)
                protocol.connection_made(transport)
                return protocol
        return await super()._create_connection(req, traces, timeout)


class _HeldAnswer:
    """A response left unread for a while; released once (later releases change nothing)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        transport.pause_reading()
        self._transport: asyncio.Transport | None = transport

    def release(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None and not transport.is_closing():
            transport.resume_reading()


class _SharedClient(httpx2.AsyncClient):
    """An httpx2 client lent to many AsyncInferenceClients at once.

    Each enters it as a context and exits it when its stream ends; the streamed responses
    are closed one by one (huggingface_hub's exit stack), the client stays open for the rest.

    Requests are built for less: httpx2 parses a URL string in Python on every request (the
    few URLs given here, the model server's endpoints, are parsed once), and a JSON request
    (every model request) builds and merges its headers through four `Headers` objects; here
    the same headers, in the same order, go into one. Anything else is built by httpx2.
    """

    _PARSED_URLS_MAX = 64

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._parsed_urls: dict[str, httpx2.URL] = {}

    def build_request(
        self,
        method: str,
        url: httpx2.URL | str,
        *,
        json: Any | None = None,
        headers: Any = None,
        timeout: Any = httpx2.USE_CLIENT_DEFAULT,
        **kwargs: Any,
    ) -> httpx2.Request:
        url = self._parsed(url)
        merged = self._json_headers(headers) if json is not None and not any(kwargs.values()) else None
        if merged is None or not url.is_absolute_url:
            return super().build_request(method, url, json=json, headers=headers, timeout=timeout, **kwargs)
        body = _json.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        merged["content-length"] = ("Content-Length", str(len(body)))
        merged.setdefault("content-type", ("Content-Type", "application/json"))
        if "host" not in merged:
            merged = {"host": ("Host", url.netloc.decode("ascii")), **merged}
        timeouts = self.timeout if timeout is httpx2.USE_CLIENT_DEFAULT else httpx2.Timeout(timeout)
        request = httpx2.Request(
            method, url, headers=list(merged.values()), stream=httpx2.ByteStream(body),
            extensions={"timeout": timeouts.as_dict()},
        )  # fmt: skip
        request.read()
        return request

    def _json_headers(self, headers: Any) -> dict[str, tuple[str | bytes, str | bytes]] | None:
        """The client's headers updated with `headers` as httpx2 merges them, by lowercase name;
        None where httpx2 must build the request (cookies, query parameters, a length given, a
        name given twice in different cases)."""
        if not isinstance(headers, dict | None) or self.params or self.cookies:
            return None
        if headers and len({key.lower() for key in headers}) != len(headers):
            return None
        merged: dict[str, tuple[str | bytes, str | bytes]] = {
            key.decode("latin-1").lower(): (key, value) for key, value in self.headers.raw
        }
        for key, value in (headers or {}).items():
            merged.pop(key.lower(), None)  # httpx2 moves a header given again to the end
            merged[key.lower()] = (key, value)
        return None if "content-length" in merged or "transfer-encoding" in merged else merged

    def _parsed(self, url: httpx2.URL | str) -> httpx2.URL:
        if isinstance(url, httpx2.URL):
            return url
        parsed = self._parsed_urls.get(url)
        if parsed is None:
            if len(self._parsed_urls) >= self._PARSED_URLS_MAX:
                self._parsed_urls.clear()
            parsed = self._parsed_urls[url] = httpx2.URL(url)
        return parsed

    async def __aenter__(self) -> _SharedClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


class ModelConnectionPool:
    """Every model request's connections, for the event loop that runs the bot."""

    def __init__(
        self,
        server_url: str | None = None,
        *,
        send_saved_token: bool = True,
        read_batch_seconds: float = 0.0,
        own_connections: int = 0,
        spare_connections: int = 0,
        model_calls: ModelCallsFirst | None = None,
    ) -> None:
        """`send_saved_token=False`: requests carry no Authorization unless one was configured.

        huggingface_hub sends the token saved by `hf auth login` (or found in HF_TOKEN) to any
        server it is pointed at; a self-hosted or third-party server must not receive it.

        huggingface_hub's own request hook (a trace id for the Hub's logs, HF_HUB_OFFLINE
        refusing the request) runs only for the Hugging Face router: a server of the operator's
        own (`server_url`) has no use for the id, and offline mode is about not reaching the Hub.

        `own_connections`: while fewer replies than this stream, a reply from a plain-HTTP
        server gets a connection of its own (`ReadWhenShown`). Opening one costs a connect
        (see `spare_connections`); over TLS a handshake costs round trips as well, so those
        connections are kept alive and read on the tick. Each streaming reply holds a socket
        either way; the own connection also tells the bot the moment the reply ends (the server
        hangs up), which no tick can.

        `spare_connections`: for those replies, how many connections are kept open ahead of
        them: opened by `warm`, and again a moment after requests took them (`SpareConnections`).

        `model_calls`: during a burst, answers not shown before it settles are read only then.
        """
        self._tls = httpx2.create_ssl_context()
        self._proxy = proxy_from_environment(server_url or HF_ROUTER_URL)
        parts = urlsplit(server_url or HF_ROUTER_URL)
        plain_http = parts.scheme == "http"
        self._own_connections = own_connections if plain_http and read_batch_seconds > 0 else 0
        self._spare_address = (
            (parts.hostname, parts.port or 80)
            if self._own_connections and spare_connections and self._proxy is None and parts.hostname
            else None
        )
        self._spare_count = spare_connections
        self._model_calls = model_calls
        self._request_hooks: list[Callable[[httpx2.Request], Awaitable[Any]]] = (
            [] if server_url else [async_hf_request_event_hook]
        )
        if not send_saved_token:
            self._request_hooks.insert(0, _drop_authorization)
        self._reads = ReadBatching(read_batch_seconds)
        self._loop_state: _LoopState | None = None

    def install(self) -> None:
        """Make huggingface_hub's async clients (process-wide) send through this pool."""
        set_async_client_factory(self.new_client)

    def new_client(self) -> httpx2.AsyncClient:
        """What huggingface_hub's default factory builds, over the shared session: one client
        per event loop, lent to every AsyncInferenceClient (building one costs more than the
        rest of a request's preparation)."""
        state = self._this_loop()
        if state.client is None:
            state.client = _SharedClient(
                transport=_BorrowedSessionTransport(client=state.session, verify=self._tls, proxy=self._proxy),
                event_hooks={"request": self._request_hooks, "response": [async_hf_response_event_hook]},
                follow_redirects=True,
                timeout=None,
            )
        return state.client

    async def open_stream(self, demand: TextDemand | None = None) -> ModelStream:
        """The response of the request this task sends next; close it when done with it.

        `demand`: when the reader will next show new text (see `bot.sse`).

        Requests are built a few at a time (`BUILDING_MAX`): huggingface_hub and httpx2 take
        ~0.5 ms of the event loop per request, and hundreds built in one go would hold back
        the first words of the replies already answered. Waiting for the answer is not part
        of it: the slot is freed once the request is handed to aiohttp.
        """
        state = self._this_loop()
        await state.building.acquire()
        own_connection = state.streams < self._own_connections
        state.streams += 1
        return ModelStream(
            self._reads,
            on_sent=state.building.release,
            on_closed=state.stream_closed,
            demand=demand,
            own_connection=own_connection,
        )

    async def warm(self) -> None:
        """Open the spare connections now, before the first requests (see `SpareConnections`)."""
        spares = self._this_loop().spares
        if spares is not None:
            await spares.fill()
            log.info("spare_model_connections", ready=spares.ready)

    async def aclose(self) -> None:
        """Close the connections and give huggingface_hub its own clients back."""
        set_async_client_factory(default_async_client_factory)
        if self._loop_state is not None:
            if self._loop_state.spares is not None:
                self._loop_state.spares.close()
            if not self._loop_state.session.closed:
                await self._loop_state.session.close()
        self._loop_state = None

    def _this_loop(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._loop_state
        if state is None or state.loop is not loop or state.session.closed:
            spares = SpareConnections(*self._spare_address, self._spare_count) if self._spare_address else None
            state = self._loop_state = _LoopState.open(loop, self._tls, spares, self._model_calls)
        return state


@dataclass
class _LoopState:
    """What the pool keeps per event loop: the aiohttp session, the request-building slots and
    how many replies are streaming."""

    loop: asyncio.AbstractEventLoop
    session: aiohttp.ClientSession
    building: asyncio.Semaphore
    spares: SpareConnections | None
    streams: int = 0
    client: httpx2.AsyncClient | None = None

    def stream_closed(self) -> None:
        self.streams -= 1

    @classmethod
    def open(
        cls,
        loop: asyncio.AbstractEventLoop,
        tls: ssl.SSLContext,
        spares: SpareConnections | None,
        model_calls: ModelCallsFirst | None,
    ) -> _LoopState:
        # No connection limit: every concurrent reply is its own long-lived stream, and
        # a cap here would queue replies behind each other.
        connector = _ModelServerConnector(spares, model_calls, limit=0, ssl=tls, keepalive_timeout=KEEPALIVE_SECONDS)
        # trust_env would look proxies and .netrc up again in a worker thread for every request;
        # a model server sets no cookies, and matching them costs ~0.1 ms per request.
        session = aiohttp.ClientSession(connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar())
        return cls(loop, session, asyncio.Semaphore(BUILDING_MAX), spares)


async def _drop_authorization(request: httpx2.Request) -> None:
    request.headers.pop("authorization", None)


def proxy_from_environment(url: str) -> httpx2.Proxy | None:
    """HTTPS_PROXY / HTTP_PROXY / ALL_PROXY for `url` unless NO_PROXY covers it, read once
    (httpx2 would read them per request; aiohttp would in a worker thread per request)."""
    parts = urlsplit(url)
    if urllib.request.proxy_bypass_environment(parts.hostname or ""):
        return None
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    return httpx2.Proxy(proxy) if proxy else None
