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

While few replies stream, their reads are batched (`ReadBatching`), and the text events that
arrive in one read are merged (`bot.sse`): see there why.
"""

from __future__ import annotations

import asyncio
import contextvars
import urllib.request
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import httpx2
from httpx_aiohttp.httpx2 import AiohttpTransport
from httpx_aiohttp.httpx2.transport import AiohttpResponseStream
from huggingface_hub import constants, set_async_client_factory
from huggingface_hub.utils._http import (
    async_hf_request_event_hook,
    async_hf_response_event_hook,
    default_async_client_factory,
)

from bot.sse import DeltaMerger

KEEPALIVE_SECONDS = 30.0
HF_ROUTER_URL = constants.INFERENCE_PROXY_TEMPLATE.format(provider="")
# Above this many concurrent streams reads batch by themselves (each wake-up finds many ready);
# below it, holding them is what lets a wake-up find several tokens of each.
BATCHED_STREAMS_MAX = 64


class ReadBatching:
    """Reads of few streams, batched on one shared clock.

    A model streams one token per socket write. When only a few replies stream, each token
    wakes the process on its own, and on a VM that wake-up costs several times the token's
    own work (caches gone cold while idle). Once a stream's first text is out, its socket is
    left unread until the next tick (`interval`), when every held stream is read at once:
    several tokens per wake-up, merged into one event (`bot.sse`), a third of the CPU. The
    price is that a reply's last words land up to `interval` later; the first words never
    wait. Beyond `max_streams` each read finds several tokens anyway (merged all the same),
    and holding would only add its wait to the queueing: at 200 replies the final text came
    30-50 ms after the model's last token unheld, ~100 ms held.
    """

    def __init__(self, interval: float, max_streams: int = BATCHED_STREAMS_MAX) -> None:
        self.interval = interval
        self._max_streams = max_streams
        self._streams = 0
        self._held: list[asyncio.Transport] = []
        self._tick: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def track(self) -> None:
        self._streams += 1

    def untrack(self) -> None:
        self._streams -= 1

    def hold(self, transport: asyncio.Transport) -> None:
        """Leave `transport` unread until the next tick."""
        if self._streams > self._max_streams or transport.is_closing():
            return
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a tick pending on another (closed) loop would never come
            self._loop, self._tick, self._held = loop, None, []
        transport.pause_reading()
        self._held.append(transport)
        if self._tick is None:
            self._tick = loop.call_later(self.interval, self._read_held)

    def _read_held(self) -> None:
        self._tick = None
        held, self._held = self._held, []
        for transport in held:
            if not transport.is_closing():
                transport.resume_reading()


class ModelStream:
    """One model request's response, as its reads are batched.

    Opened by `ModelConnectionPool.open_stream` in the task that then sends the request; the
    pool's transport finds it there (a context variable), since huggingface_hub builds the
    request in between.
    """

    def __init__(self, batching: ReadBatching) -> None:
        self._batching = batching
        self._first_text_out = False
        self._last_read: float | None = None
        self._closed = False
        batching.track()
        _current_stream.set(self)

    def first_text_out(self) -> None:
        """Every token was read as it came until now; from here on reads may be batched."""
        self._first_text_out = True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._batching.untrack()
            _current_stream.set(None)

    def after_read(self, transport: asyncio.Transport | None) -> None:
        now = asyncio.get_running_loop().time()
        # A stream slower than the tick would gain nothing from holding, only an extra wake-up.
        steady = self._last_read is not None and now - self._last_read < 1.25 * self._batching.interval
        self._last_read = now
        if steady and self._first_text_out and transport is not None and not self._closed:
            self._batching.hold(transport)


_current_stream: contextvars.ContextVar[ModelStream | None] = contextvars.ContextVar("model_stream", default=None)


class _BatchedResponseStream(AiohttpResponseStream):
    def __init__(self, response: aiohttp.ClientResponse, stream: ModelStream) -> None:
        super().__init__(response)
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        response = self._aiohttp_response
        merger = DeltaMerger() if response.content_type == "text/event-stream" else None
        async for chunk in super().__aiter__():
            # Released to the pool once the body is complete: then it is no longer this stream's.
            connection = response.connection
            self._stream.after_read(connection.transport if connection is not None else None)
            yield merger.feed(chunk) if merger is not None else chunk


class _BorrowedSessionTransport(AiohttpTransport):
    """A stream's transport over the pool's session: closing the stream's client leaves the pool open.

    The stream's response is closed by huggingface_hub (its exit stack closes the response
    before the client); aiohttp then drops a connection whose body was not read to the end.
    """

    async def aclose(self) -> None:
        return None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        stream = _current_stream.get()
        response = await super().handle_async_request(request)
        if stream is not None and isinstance(response.stream, AiohttpResponseStream):
            response.stream = _BatchedResponseStream(response.stream._aiohttp_response, stream)
        return response


class ModelConnectionPool:
    """Every model request's connections, for the event loop that runs the bot."""

    def __init__(
        self, server_url: str | None = None, *, send_saved_token: bool = True, read_batch_seconds: float = 0.0
    ) -> None:
        """`send_saved_token=False`: requests carry no Authorization unless one was configured.

        huggingface_hub sends the token saved by `hf auth login` (or found in HF_TOKEN) to any
        server it is pointed at; a self-hosted or third-party server must not receive it.
        """
        self._tls = httpx2.create_ssl_context()
        self._proxy = proxy_from_environment(server_url or HF_ROUTER_URL)
        self._request_hooks = [async_hf_request_event_hook]
        if not send_saved_token:
            self._request_hooks.insert(0, _drop_authorization)
        self._reads = ReadBatching(read_batch_seconds)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        """Make huggingface_hub's async clients (process-wide) send through this pool."""
        set_async_client_factory(self.new_client)

    def new_client(self) -> httpx2.AsyncClient:
        """What huggingface_hub's default factory builds, over the shared session."""
        return httpx2.AsyncClient(
            transport=_BorrowedSessionTransport(client=self._current_session(), verify=self._tls, proxy=self._proxy),
            event_hooks={"request": self._request_hooks, "response": [async_hf_response_event_hook]},
            follow_redirects=True,
            timeout=None,
        )

    def open_stream(self) -> ModelStream:
        """The response of the request this task sends next; close it when done with it."""
        return ModelStream(self._reads)

    async def aclose(self) -> None:
        """Close the connections and give huggingface_hub its own clients back."""
        set_async_client_factory(default_async_client_factory)
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _current_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            # No connection limit: every concurrent reply is its own long-lived stream, and
            # a cap here would queue replies behind each other.
            connector = aiohttp.TCPConnector(limit=0, ssl=self._tls, keepalive_timeout=KEEPALIVE_SECONDS)
            # trust_env would look proxies and .netrc up again in a worker thread for every request.
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
            self._loop = loop
        return self._session


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
