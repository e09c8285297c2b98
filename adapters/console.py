"""Terminal chat: `python -m bot console`. Tokens appear as the model writes them."""

from __future__ import annotations

import asyncio
import getpass
import sys
from typing import TextIO

from bot.app import Services
from bot.core import Turn
from bot.surface import SurfaceLimits, UnlimitedSurface
from config.settings import Settings

NAME = "console"
TOKEN_VARIABLES: tuple[str, ...] = ()

PROMPT = "you> "
HELP = "Type a message and press Enter. /reset starts over, /quit (or Ctrl-D) leaves."


class ConsoleSurface(UnlimitedSurface):
    """A reply printed once, growing in place: each edit prints only what is new."""

    limits = SurfaceLimits(max_length=1_000_000, indicator="", min_edit_interval=0.0)

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._printed = ""

    async def show_waiting(self) -> None:
        self._write("bot> ")
        self._printed = ""

    async def post(self, text: str, *, final: bool) -> None:
        self._show(text, final)

    async def edit(self, handle: None, text: str, *, final: bool) -> None:
        self._show(text, final)

    def _show(self, text: str, final: bool) -> None:
        new = text[len(self._printed) :] if text.startswith(self._printed) else "\n" + text
        self._printed = text
        self._write(new + ("\n" if final else ""))

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


async def _lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def run(services: Services, settings: Settings) -> None:
    core, out = services.core, sys.stdout
    out.write(f"Chatting with {core.describe()}. {HELP}\n")
    thread = f"console:{getpass.getuser()}"
    reader = await _lines()
    while True:
        out.write(PROMPT)
        out.flush()
        raw = await reader.readline()
        if not raw:
            out.write("\n")
            return
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            return
        if text == "/reset":
            await core.reset(thread)
            out.write("(conversation cleared)\n")
            continue
        await core.answer(Turn(thread, getpass.getuser(), getpass.getuser(), text), ConsoleSurface(out))
