"""Terminal chat: `python -m bot console`. Tokens appear as the model writes them."""

from __future__ import annotations

import asyncio
import getpass
import sys
from typing import TextIO

from adapters.jobs.platform_jobs import UnlimitedSurface, describe_models, switched_model, unknown_model
from bot.app import Services
from bot.core import ChatCore, Turn
from bot.surface import SurfaceLimits
from config.settings import Settings

NAME = "console"
TOKEN_VARIABLES: tuple[str, ...] = ()

PROMPT = "you> "
HELP = "Type a message and press Enter. /reset starts over, /model switches models, /quit (or Ctrl-D) leaves."


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
    out.write(f"Chatting with {core.models.default.settings.describe()}. {HELP}\n")
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
        if text == "/model" or text.startswith("/model "):
            out.write(await _model(core, thread, text.removeprefix("/model").strip()) + "\n")
            continue
        await core.answer(Turn(thread, getpass.getuser(), getpass.getuser(), text), ConsoleSurface(out))


async def _model(core: ChatCore, thread: str, name: str) -> str:
    """/model: the conversation's model and the choices; /model NAME switches to it."""
    if not name:
        return describe_models(core.models, await core.model_for(thread), str)
    choice = await core.choose_model(thread, name)
    if choice is None:
        return unknown_model(core.models, name, str)
    return switched_model(choice, str)
