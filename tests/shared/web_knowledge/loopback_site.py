"""A web server on the loopback interface for the fetcher's and robots.txt's tests: aiohttp.web on 127.0.0.1 with a
port of its own, remembering every request it gets (when, and with which headers), with pages that redirect, never
end, are huge or inflate to huge, answer conditionally, are busy once, and a robots.txt each test sets."""

from __future__ import annotations

import asyncio
import functools
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import CIMultiDictProxy

MB = 1_000_000
HUGE_BYTES = 50 * MB
BOMB_INFLATED_BYTES = 100 * MB
ETAG = '"v1"'
LAST_MODIFIED = "Wed, 21 Oct 2026 07:28:00 GMT"
PAGE = b"<p>The guide.</p>"


@functools.cache
def gzip_bomb() -> bytes:
    """About 100 KB of gzip that inflates to 100 MB of zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MB)
    parts = [compressor.compress(zeros) for _ in range(BOMB_INFLATED_BYTES // MB)]
    return b"".join([*parts, compressor.flush()])


@dataclass(frozen=True)
class Seen:
    path: str
    headers: CIMultiDictProxy[str]
    at: float  # time.monotonic()


@dataclass
class LoopbackSite:
    requests: list[Seen] = field(default_factory=list)
    robots: tuple[int, str] = (404, "")  # what /robots.txt answers
    port: int = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.origin + path

    def seen(self, path: str) -> list[Seen]:
        return [request for request in self.requests if request.path == path]

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        routes = {
            "/page": self._page,
            "/hop/{left}": self._hop,
            "/to": self._redirect_to,
            "/huge": self._huge,
            "/huge-declared": self._huge_declared,
            "/bomb": self._bomb,
            "/endless": self._endless,
            "/conditional": self._conditional,
            "/busy": self._busy,
            "/busy-long": self._busy_long,
            "/robots.txt": self._robots,
        }
        for path, handler in routes.items():
            app.router.add_get(path, handler)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append(Seen(request.path, request.headers, time.monotonic()))
        return await handler(request)

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=PAGE, content_type="text/html", charset="utf-8")

    async def _hop(self, request: web.Request) -> web.Response:
        left = int(request.match_info["left"])
        if left == 0:
            return await self._page(request)
        raise web.HTTPFound(f"/hop/{left - 1}")

    async def _redirect_to(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["url"])

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        return await _stream(request, web.StreamResponse(), HUGE_BYTES)

    async def _huge_declared(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = HUGE_BYTES
        return await _stream(request, response, HUGE_BYTES)

    async def _bomb(self, request: web.Request) -> web.Response:
        return web.Response(body=gzip_bomb(), content_type="text/html", headers={"Content-Encoding": "gzip"})

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        try:
            while True:
                await response.write(b"x")
                await asyncio.sleep(1.0)
        except ConnectionError:
            return response

    async def _conditional(self, request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == ETAG:
            return web.Response(status=304)
        headers = {"ETag": ETAG, "Last-Modified": LAST_MODIFIED}
        return web.Response(body=b"<p>Version 1.</p>", content_type="text/html", headers=headers)

    async def _busy(self, request: web.Request) -> web.Response:
        if len(self.seen("/busy")) == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return await self._page(request)

    async def _busy_long(self, request: web.Request) -> web.Response:
        return web.Response(status=503, headers={"Retry-After": "3600"})

    async def _robots(self, request: web.Request) -> web.Response:
        status, text = self.robots
        return web.Response(status=status, text=text, content_type="text/plain")


async def _stream(request: web.Request, response: web.StreamResponse, size: int) -> web.StreamResponse:
    """`size` bytes a megabyte at a time, or until the client hangs up."""
    response.content_type = "text/html"
    await response.prepare(request)
    chunk = b"a" * MB
    try:
        for _ in range(size // MB):
            await response.write(chunk)
    except ConnectionError:
        pass
    return response


@asynccontextmanager
async def loopback_site() -> AsyncIterator[LoopbackSite]:
    site = LoopbackSite()
    runner = web.AppRunner(site.app(), shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        site.port = runner.addresses[0][1]
        yield site
    finally:
        await runner.cleanup()
