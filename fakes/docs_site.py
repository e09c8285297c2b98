"""Loopback fake of a docs site, for the crawl's tests and benchmark (adapters.shared.web_knowledge.sites.crawl).

Under /docs/: pages whose article sits among a header, a navigation, a sidebar, a cookie banner and a footer, with
headings carrying ids; a page a test rewrites (`change`) and one it makes disappear (`remove`: 404 or 410); a redirect
chain (/docs/old-install.html → … → /docs/upgrade.html); a redirect to a canary server on another port that records
whether anything ever reached it; a 50 MB page, a page that never ends (a chunk every 0.2 s, for ever), endless
calendar pages (/docs/calendar?month=N links to N+1), an image, and a private page robots.txt disallows. Outside:
/blog/news.html. Every page has an ETag and a Last-Modified and answers conditional requests with 304.

robots.txt disallows /docs/private/, has a Crawl-delay (`crawl_delay`, None: none) and names the sitemap index,
/sitemap_index.xml, which lists /sitemaps/guide.xml and /sitemaps/reference.xml with their pages' lastmod (`lastmod`
False: none). `sitemap=False`: no sitemap at all, the crawl follows links. `generated=N` adds N pages,
/docs/gen/<i>.html, each linking to ten more (a tree from /docs/gen/0.html), listed by /sitemaps/generated.xml.

`requests` counts the requests per path (with its query); `responses` lists (path, status) in order.

Run standalone for the benchmark::

    python -m fakes.docs_site --port 8090 --generated 2000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import time
from collections import Counter
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime

from aiohttp import web
from uvloop import run as run_loop

from fakes.docs_site_pages import CALENDAR, article_page, calendar_page, generated_page, sitemap_xml

HUGE_BYTES = 50 * 1024 * 1024
PRIVATE = "/docs/private/keys.html"
GUIDE = ("/docs/", "/docs/install.html", "/docs/configure.html", "/docs/changing.html", "/docs/leaving.html")
REFERENCE = ("/docs/old-install.html", "/docs/away.html", "/docs/huge.html", "/docs/endless.html", "/docs/logo.png")
# What a test of the bot as a whole leaves out (`hostile=False`): pages that only cost the crawl its time limits.
HOSTILE = ("/docs/away.html", "/docs/huge.html", "/docs/endless.html")
REDIRECTS = {"/docs/old-install.html": "/docs/older/install.html", "/docs/older/install.html": "/docs/upgrade.html"}


@dataclass
class _Page:
    body: bytes
    modified: int  # unix seconds
    content_type: str = "text/html"

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


class Canary:
    """A server nothing should ever reach: `requests` lists the paths that did."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._record)
        self._runner = await _serve(app, 0)
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _record(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        return web.Response(text="<html><body><p>The canary's secret.</p></body></html>", content_type="text/html")


class FakeDocsSite:
    def __init__(
        self,
        *,
        sitemap: bool = True,
        lastmod: bool = True,
        crawl_delay: float | None = 0.01,
        generated: int = 0,
        port: int = 0,
        hostile: bool = True,
    ) -> None:
        self.sitemap = sitemap
        self.lastmod = lastmod
        self.crawl_delay = crawl_delay
        self.generated = generated
        self.port = port
        self.hostile = hostile
        self.canary = Canary()
        self.requests: Counter[str] = Counter()
        self.responses: list[tuple[str, int]] = []
        self.gone: dict[str, int] = {}  # path → 404 or 410
        self.started = started = int(time.time()) - 86_400
        self.pages: dict[str, _Page] = {path: _Page(article_page(path, generated).encode(), started) for path in GUIDE}
        self.pages[PRIVATE] = _Page(article_page(PRIVATE).encode(), started)
        self.pages["/docs/upgrade.html"] = _Page(article_page("/docs/upgrade.html").encode(), started)
        self.pages["/blog/news.html"] = _Page(article_page("/blog/news.html").encode(), started)
        self.pages["/docs/logo.png"] = _Page(b"\x89PNG\r\n\x1a\n" + bytes(64), started, "image/png")
        for number in range(generated):
            self.pages[f"/docs/gen/{number}.html"] = _Page(generated_page(number, generated).encode(), started)
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def docs_url(self) -> str:
        return self.base_url + "/docs/"

    @property
    def allowance(self) -> str:
        """PrivateAllowance's text letting a fetcher reach this site (and not its canary)."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> str:
        await self.canary.start()
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._serve)
        self._runner = await _serve(app, self.port)
        self.port = int(self._runner.addresses[0][1])
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.canary.stop()

    def change(self, path: str, html: str) -> None:
        """The page's new text, with a new ETag and a later Last-Modified (and sitemap lastmod)."""
        old = self.pages[path]
        self.pages[path] = _Page(html.encode(), max(int(time.time()), old.modified + 1), old.content_type)

    def remove(self, path: str, status: int = 404) -> None:
        """The page answers `status` (404 or 410) and leaves the sitemap."""
        self.gone[path] = status

    def page_requests(self) -> Counter[str]:
        """The requests for pages (robots.txt and sitemaps left out)."""
        return Counter({path: count for path, count in self.requests.items() if path.startswith(("/docs", "/blog"))})

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.requests[request.path_qs] += 1
        response = await self._answer(request)
        self.responses.append((request.path_qs, response.status))
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in self.gone:
            return web.Response(status=self.gone[path], text="gone")
        if path == "/robots.txt":
            return web.Response(text=self._robots())
        if path.startswith("/sitemap") and self.sitemap:
            return self._sitemap(path)
        if path in REDIRECTS:
            moved = web.HTTPMovedPermanently if path.startswith("/docs/old-") else web.HTTPTemporaryRedirect
            raise moved(REDIRECTS[path])
        if path == "/docs/away.html":
            raise web.HTTPFound(f"http://127.0.0.1:{self.canary.port}/stolen")
        if path == "/docs/huge.html":
            return await _streamed(request, HUGE_BYTES, pause=0.0)
        if path == "/docs/endless.html":
            return await _streamed(request, None, pause=0.2)
        if path == CALENDAR:
            month = int(request.query.get("month", "1") or 1)
            return _conditional(request, _Page(calendar_page(month).encode(), self.started))
        page = self.pages.get(path)
        if page is None:
            return web.Response(status=404, text="not found")
        return _conditional(request, page)

    def _robots(self) -> str:
        lines = ["User-agent: *", "Disallow: /docs/private/"]
        if self.crawl_delay is not None:
            lines.append(f"Crawl-delay: {self.crawl_delay}")
        if self.sitemap:
            lines.append(f"Sitemap: {self.base_url}/sitemap_index.xml")
        return "\n".join(lines) + "\n"

    def _sitemap(self, path: str) -> web.Response:
        sitemaps = {
            "/sitemaps/guide.xml": (*GUIDE, PRIVATE),
            "/sitemaps/reference.xml": (
                *(page for page in REFERENCE if self.hostile or page not in HOSTILE),
                "/blog/news.html",
            ),
            "/sitemaps/generated.xml": tuple(f"/docs/gen/{number}.html" for number in range(self.generated)),
        }
        if path == "/sitemap_index.xml":
            children = [name for name in sitemaps if name != "/sitemaps/generated.xml" or self.generated]
            entries = [(self.base_url + name, self._newest(sitemaps[name])) for name in children]
            return web.Response(text=sitemap_xml(entries, index=True), content_type="application/xml")
        if path not in sitemaps:
            return web.Response(status=404, text="not found")
        listed = [(self.base_url + page, self._newest((page,))) for page in sitemaps[path] if page not in self.gone]
        return web.Response(text=sitemap_xml(listed, index=False), content_type="application/xml")

    def _newest(self, paths: tuple[str, ...]) -> float | None:
        times = [self.pages[path].modified for path in paths if path in self.pages]
        return max(times) if self.lastmod and times else None


def _conditional(request: web.Request, page: _Page) -> web.Response:
    headers = {"ETag": page.etag, "Last-Modified": formatdate(page.modified, usegmt=True)}
    if (tags := request.headers.get("If-None-Match")) is not None:
        if page.etag in [tag.strip() for tag in tags.split(",")]:
            return web.Response(status=304, headers=headers)
    elif (since := request.headers.get("If-Modified-Since")) is not None:
        with contextlib.suppress(TypeError, ValueError):
            if page.modified <= parsedate_to_datetime(since).timestamp():
                return web.Response(status=304, headers=headers)
    return web.Response(body=page.body, headers=headers, content_type=page.content_type, charset="utf-8")


async def _streamed(request: web.Request, size: int | None, pause: float) -> web.StreamResponse:
    """An HTML page of `size` bytes (None: for ever) sent a chunk at a time, with no Content-Length."""
    response = web.StreamResponse(headers={"Content-Type": "text/html; charset=utf-8"})
    await response.prepare(request)
    chunk = b"<p>" + b"all work and no play " * 3_000 + b"</p>\n"
    sent = 0
    with contextlib.suppress(ConnectionError):
        await response.write(b"<html><head><title>Long</title></head><body>")
        while size is None or sent < size:
            await response.write(chunk)
            sent += len(chunk)
            if pause:
                await asyncio.sleep(pause)
        await response.write_eof()
    return response


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()
    return runner


async def _main(port: int, generated: int, sitemap: bool) -> None:
    site = FakeDocsSite(port=port, generated=generated, sitemap=sitemap, crawl_delay=None)
    await site.start()
    print(f"docs site on {site.docs_url} (PRIVATE_FETCH_ALLOWED={site.allowance})", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--generated", type=int, default=0, help="pages generated under /docs/gen/")
    parser.add_argument("--no-sitemap", action="store_true", help="no sitemap: the crawl follows links")
    arguments = parser.parse_args()
    run_loop(_main(arguments.port, arguments.generated, not arguments.no_sitemap))
