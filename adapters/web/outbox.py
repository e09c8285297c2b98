"""One web page's frames, written in order by a task of their own (`Outbox`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

MAX_QUEUED_FRAMES = 500  # a page this far behind is disconnected (it reconnects and catches up)
FLUSH_SECONDS = 2.0  # how long an answer's last frames wait to reach its pages on shutdown


class Outbox:
    """The frames for one page, written in order by a task of its own, so that a slow page holds
    up no answer; of a streaming reply only the newest text waits to be written."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws
        self._frames: deque[tuple[str | None, str]] = deque()  # (streaming reply's handle, JSON)
        self._writer: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[bool] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def put(self, data: str, replaces: str | None = None) -> None:
        """Queue `data`; a streaming reply's frame (`replaces`: its handle) takes the place of an
        earlier one of the same reply still waiting."""
        if self._ws.closed:
            return
        if replaces is not None:
            for index, (handle, _) in enumerate(self._frames):
                if handle == replaces:
                    self._frames[index] = (replaces, data)
                    return
        if len(self._frames) >= MAX_QUEUED_FRAMES:
            log.warning("web_page_too_slow")
            self._frames.clear()
            self._closing = asyncio.get_running_loop().create_task(self._ws.close(code=1013, message=b"too far behind"))
            return
        self._frames.append((replaces, data))
        self._idle.clear()
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def flushed(self) -> None:
        """Wait (up to FLUSH_SECONDS) until every frame queued so far is written."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), FLUSH_SECONDS)

    def close(self) -> None:
        self._frames.clear()
        if self._writer is not None:
            self._writer.cancel()

    async def _write(self) -> None:
        try:
            while self._frames:
                _, data = self._frames.popleft()
                await self._ws.send_str(data)
        except (ConnectionError, RuntimeError):
            self._frames.clear()  # the page went away; its answers still finish and are stored
        finally:
            self._writer = None
            self._idle.set()
