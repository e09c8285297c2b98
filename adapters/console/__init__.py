"""Terminal chat: `python -m bot console`. Tokens appear as the model writes them."""

from __future__ import annotations

import asyncio
import getpass
import os
import stat
import sys
from typing import TextIO

from adapters.shared.platform_jobs import UnlimitedSurface, describe_models, switched_model, unknown_model
from adapters.shared.tool_words import describe_tools, tool_use
from adapters.shared.usage_commands.report import describe_person, person_usage
from bot.app import Services
from bot.core import ChatCore, Turn
from bot.errors import ReplyFailure
from bot.reply.surface import SurfaceLimits
from bot.reply.thought_view import thought_line
from bot.state.personas import PersonaRefused, Place
from bot.tools.consent import ConfirmRequest
from bot.tools.gate import ConfirmGate, Decision
from bot.usage.accounting import payer_of
from config.settings import Settings

NAME = "console"
TOKEN_VARIABLES: tuple[str, ...] = ()

PROMPT = "you> "
BOT_PROMPT = "bot> "
DIM, PLAIN = "\x1b[2m", "\x1b[0m"
REWRITE_LINE = "\r\x1b[K"  # back to the line's start, and clear it
HELP = (
    "Type a message and press Enter. /reset starts over, /model switches models, /persona sets who the bot is, "
    "/tools lists the tools, /usage shows what your questions used, /quit (or Ctrl-D) leaves."
)


class ConsoleSurface(UnlimitedSurface):
    """A reply printed once, growing in place: each edit prints only what is new. A tool that may change something
    is asked about with y/N (Enter alone, or no answer in time, is no). A one-line status ("Thinking… 3 s") is
    rewritten in place; a thinking model's thought ends as a dimmed "Thought for N s" line."""

    limits = SurfaceLimits(max_length=1_000_000, indicator="", min_edit_interval=0.0)

    def __init__(
        self, out: TextIO, reader: asyncio.StreamReader | None = None, gate: ConfirmGate | None = None
    ) -> None:
        self._out = out
        self._reader = reader
        self._gate = gate
        self._printed = ""

    async def ask_to_run(self, request: ConfirmRequest) -> asyncio.Task[None] | None:
        if self._reader is None or self._gate is None:
            return None
        self._write(f"\n  Run {request.tool} ({request.server}) with {request.arguments}? [y/N] ")
        return asyncio.create_task(self._read_answer(self._reader, self._gate, request))

    async def settle(self, handle: asyncio.Task[None] | None, request: ConfirmRequest, decision: Decision) -> None:
        if handle is not None and not handle.done():
            handle.cancel()
            self._write(f"\n  ({decision.why})\n")

    async def _read_answer(self, reader: asyncio.StreamReader, gate: ConfirmGate, request: ConfirmRequest) -> None:
        answer = (await reader.readline()).decode("utf-8", errors="replace").strip().lower()
        await gate.answer(request.key, request.asker_id, yes=answer in ("y", "yes"))

    def keep_thought(self, thought: str, seconds: int) -> str:
        return f"{DIM}{thought_line(seconds)}{PLAIN}\n"

    async def show_waiting(self) -> None:
        self._write(BOT_PROMPT)
        self._printed = ""

    async def post(self, text: str, *, final: bool) -> None:
        self._show(text, final)

    async def edit(self, handle: None, text: str, *, final: bool) -> None:
        self._show(text, final)

    def _show(self, text: str, final: bool) -> None:
        if text.startswith(self._printed):
            new = text[len(self._printed) :]
        elif "\n" not in self._printed:  # a status line, replaced
            new = REWRITE_LINE + BOT_PROMPT + text
        else:
            new = "\n" + text
        self._printed = text
        self._write(new + ("\n" if final else ""))

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


async def _lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    mode = os.fstat(sys.stdin.fileno()).st_mode
    if sys.stdin.isatty() or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    else:  # a file or /dev/null (a service without input): the event loop can't watch it (uvloop aborts), so read it
        reader.feed_data(await asyncio.to_thread(sys.stdin.buffer.read))
        reader.feed_eof()
    return reader


def _terminal() -> TextIO:
    """The terminal on a file descriptor of the console's own. llama-cpp-python points the process's stdout at
    /dev/null while it loads a model (the in-process chat model, the embedding model's) on another thread: an answer
    printed through fd 1 meanwhile would be lost."""
    encoding = sys.stdout.encoding or "utf-8"
    return open(os.dup(sys.stdout.fileno()), "w", encoding=encoding, errors="replace", closefd=True)


async def run(services: Services, settings: Settings) -> None:
    out = _terminal()
    try:
        await _chat(services, out)
    finally:
        out.close()


async def _chat(services: Services, out: TextIO) -> None:
    core = services.core
    out.write(f"Chatting with {core.models.default.settings.describe()}. {HELP}\n")
    thread = f"console:{getpass.getuser()}"
    place = Place("console", "channel", getpass.getuser(), "the terminal")
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
        if text == "/persona" or text.startswith("/persona "):
            out.write(await _persona(core, place, text.removeprefix("/persona").strip()) + "\n")
            continue
        if text == "/tools":
            out.write(await _tools(core, thread, place) + "\n")
            continue
        if text == "/usage":
            out.write(await _usage(core, _turn(thread, place, "")) + "\n")
            continue
        await core.answer(_turn(thread, place, text), ConsoleSurface(out, reader, core.gate))


def _turn(thread: str, place: Place, text: str) -> Turn:
    """A message typed here, as the core is handed it: the terminal's user asks, in the terminal."""
    return Turn(thread, getpass.getuser(), getpass.getuser(), text, places=(place,))


async def _usage(core: ChatCore, turn: Turn) -> str:
    """/usage: what the terminal's user used today, this week and this month, by model, and what is left of their
    budgets; the payer taken from a turn of theirs as the core takes it, so the counts are those of their turns."""
    payer = payer_of(turn.platform, turn.quota_scope, turn.author_id, turn.places)
    try:
        usage = await person_usage(core, payer, turn.places)
    except ReplyFailure as failure:
        return failure.reason
    return describe_person(usage, str)


async def _tools(core: ChatCore, thread: str, place: Place) -> str:
    """/tools: whether this conversation's model uses the tools (if not, which models do), and the tools."""
    try:
        use = await tool_use(core, thread, (place,)) if core.tools else None
    except ReplyFailure as failure:
        return failure.reason
    return describe_tools(core.tools, use=use)


async def _persona(core: ChatCore, place: Place, text: str) -> str:
    """/persona: who the bot is here and where that comes from; /persona TEXT sets it; /persona clear removes it."""
    personas = core.personas
    if personas is None:
        return "Personas are not available here."
    try:
        if text == "clear":
            await personas.clear(place)
            return "(persona cleared: the bot's default from the next message on)"
        if text:
            await personas.set(place, text)
            return "(persona set: it applies from the next message on)"
        persona = await personas.effective((place,))
    except PersonaRefused as refused:
        return str(refused)
    except ReplyFailure as failure:
        return failure.reason
    return f"The persona here ({persona.source}):\n{persona.text}"


async def _model(core: ChatCore, thread: str, name: str) -> str:
    """/model: the conversation's model and the choices; /model NAME switches to it."""
    if not name:
        return describe_models(core.models, await core.model_for(thread), str)
    choice = await core.choose_model(thread, name)
    if choice is None:
        return unknown_model(core.models, name, str)
    return switched_model(choice, str)
