"""An MCP server over HTTP that refuses everyone (401 Unauthorized), at a URL whose path holds its key, as some hosted
servers have it (`/api/mcp/s/<key>/mcp`): what the bot shows of it must never include the key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

SECRET = "k3y-0f-th3-h0st3d-s3rv3r-9f8e7d6c"


@asynccontextmanager
async def refusing_server() -> AsyncIterator[str]:
    """The server's URL while it runs (on a free loopback port)."""

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"error": "invalid key"}, status=401)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/api/mcp/s/{SECRET}/mcp"
    finally:
        await runner.cleanup()
