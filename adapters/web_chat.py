"""The web chat's conversation side: one open page (`Tab`), the frames it exchanges with the
server (see adapters.web), and the answer streaming into it (`WebReply`)."""

from __future__ import annotations

import base64
import json
import re
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from adapters.attachments import Attachment, read_attachments, with_files
from adapters.shared import PlatformJobs, switched_model
from bot.core import Turn
from bot.errors import ReplyFailure
from bot.render import failure_note
from bot.surface import SurfaceLimits, UnlimitedSurface
from config.models import ModelChoice
from config.settings import ImageSettings

log = structlog.get_logger(__name__)

MAX_MESSAGE_CHARS = 100_000
# A JSON frame may spend up to 6 bytes per character (\u escapes); larger frames are refused.
MAX_FRAME_BYTES = 6 * MAX_MESSAGE_CHARS + 4096
# The page refuses a larger image before sending it (the server too, should one arrive).
MAX_IMAGE_BYTES = 10_000_000
MAX_FILE_NAME_CHARS = 120
# What one image adds to a frame at most: its base64 (4 characters per 3 bytes), the data URL's
# header, and its name and type (up to 6 bytes per character escaped).
IMAGE_FRAME_BYTES = 4 * -(-MAX_IMAGE_BYTES // 3) + 6 * MAX_FILE_NAME_CHARS + 1024
_DATA_URL = re.compile(r"data:([^,;]*)((?:;[^,;]*)*);base64,(.*)", re.DOTALL)


class WebReply(UnlimitedSurface):
    """One answer in one tab. The page draws its own blinking caret while `streaming` is true,
    and a label naming the model that answers."""

    limits = SurfaceLimits(max_length=200_000, indicator="", min_edit_interval=0.05)

    def __init__(self, tab: Tab, question: str) -> None:
        self._tab = tab
        self._question = question
        self._posted = 0
        self._model = ""  # the answering model's display name, once the core says which

    def model_line(self, model: str, *, first_reply: bool) -> str:
        self._model = model
        return ""  # shown as the reply's label, not in its text

    async def post(self, text: str, *, final: bool) -> str:
        self._posted += 1
        handle = f"{self._question}.{self._posted}"
        await self.edit(handle, text, final=final)
        return handle

    async def edit(self, handle: str, text: str, *, final: bool) -> None:
        event = {"type": "reply", "question": self._question, "reply": handle, "text": text, "streaming": not final}
        if self._model:
            event["model"] = self._model
        await self._tab.send(event)


def model_info(choice: ModelChoice) -> dict[str, Any]:
    """A model as the page's picker shows it."""
    return {"id": choice.id, "name": choice.display_name, "vision": choice.vision}


class Tab:
    """One open page: its websocket and the conversation it shows."""

    def __init__(
        self, jobs: PlatformJobs, images: ImageSettings, tabs: set[Tab], ws: web.WebSocketResponse, chat_id: str
    ) -> None:
        """`tabs`: every open page (those of the same conversation see its model change)."""
        self._jobs = jobs
        self._images = images
        self._tabs = tabs
        self._ws = ws
        self._chat_id = chat_id
        self.thread = f"web:{chat_id}"
        self.model = self._jobs.core.models.default  # the conversation's model, as this page shows it

    async def send(self, event: dict[str, Any]) -> None:
        if self._ws.closed:
            return  # the page went away; its answer still finishes and is stored
        try:
            await self._ws.send_json(event)
        except ConnectionError:
            log.debug("web_page_gone", thread=self.thread)

    async def notice(self, text: str, *, level: str = "warning") -> None:
        await self.send({"type": "notice", "text": text, "level": level})

    async def greet(self) -> None:
        """The models and the conversation so far, for a page that has just (re)connected."""
        core = self._jobs.core
        try:
            stored = await core.history(self.thread)
            self.model = await core.model_for(self.thread)
        except ReplyFailure as failure:
            stored = []
            await self.notice(failure_note(failure))
        await self.send(
            {
                "type": "hello",
                "models": [model_info(choice) for choice in core.models.choices],
                "model": model_info(self.model),
                "maxChars": MAX_MESSAGE_CHARS,
                "maxImages": self._images.max_images,
                "maxImageBytes": MAX_IMAGE_BYTES,
                "history": [{"role": m.role, "text": m.content, "images": len(m.images)} for m in stored],
            }
        )

    async def receive(self, raw: str) -> bool:
        """Act on one frame from the page; False for a frame larger than what it carries needs
        (a question without images is held to the limit there always was)."""
        if len(raw) > MAX_FRAME_BYTES and '"images"' not in raw:
            return False
        try:
            event = json.loads(raw)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            log.warning("web_unreadable_event", thread=self.thread)
            return True
        kind = event.get("type")
        images = event.get("images")
        uploads: list[object] = images if kind == "ask" and isinstance(images, list) else []
        if _frame_bytes(raw) > MAX_FRAME_BYTES + min(len(uploads), self._images.max_images) * IMAGE_FRAME_BYTES:
            return False
        if kind == "reset":
            await self._reset()
        elif kind == "model" and isinstance(event.get("id"), str):
            await self._choose(event["id"][:200])
        elif kind == "ask" and isinstance(event.get("text"), str):
            await self._ask(str(event.get("id", ""))[:64], event["text"], uploads)
        return True

    async def _ask(self, question: str, text: str, uploads: list[object]) -> None:
        if text.strip() == "/reset" and not uploads:
            await self._reset()
            return
        refusal = _refusal(text, with_images=bool(uploads))
        if refusal is not None:
            await self.send({"type": "refused", "question": question, "reason": refusal})
            return
        # A task of its own: the answer completes (and is stored) even if the page closes now.
        self._jobs.spawn(self._answer(question, text, uploads))

    async def _answer(self, question: str, text: str, uploads: list[object]) -> None:
        """Read the question's images (checked and scaled down as on every platform), then answer."""
        attachments, notices = self._attachments(uploads)
        files = await read_attachments(attachments, self._images)
        notices += files.notices
        if not text.strip() and not files.images and not files.text:
            reason = " ".join(notices) or "Type a message first."  # every image it had was unusable
            await self.send({"type": "refused", "question": question, "reason": reason})
            return
        asked = with_files(text if text.strip() else _about(files.images), files)
        turn = Turn(
            self.thread,
            self._chat_id,
            "web",
            asked,
            channel="web",  # the page is one channel
            notices=tuple(notices),
            images=files.images,
        )
        await self._jobs.answer(turn, WebReply(self, question))

    def _attachments(self, uploads: list[object]) -> tuple[list[Attachment], list[str]]:
        """The files a page sent, decoded; a notice naming each one that can't be used."""
        if uploads and not self._images.max_images:
            names = ", ".join(_file_name(upload, number) for number, upload in enumerate(uploads, start=1))
            return [], [f"This chat doesn't take images, so I skipped {names}."]
        attachments: list[Attachment] = []
        notices: list[str] = []
        for number, upload in enumerate(uploads, start=1):
            name = _file_name(upload, number)
            try:
                content_type, data = _decoded(upload)
            except ValueError:
                notices.append(f"{name} arrived damaged, so I couldn't look at it.")
                continue
            if len(data) > MAX_IMAGE_BYTES:
                notices.append(f"{name} is too large (over {MAX_IMAGE_BYTES // 1_000_000} MB).")
                continue
            attachments.append(Attachment(name, content_type, len(data), _returning(data)))
        return attachments, notices

    async def _choose(self, name: str) -> None:
        """Answer this conversation with the model called `name` from now on; every page showing
        the conversation is told, and this one also with a notice. A failed switch puts the
        picker back."""
        core = self._jobs.core
        try:
            choice = await core.choose_model(self.thread, name)
        except ReplyFailure as failure:
            await self.send({"type": "model", "model": model_info(self.model)})
            await self.notice(failure_note(failure))
            return
        if choice is None:
            await self.send({"type": "model", "model": model_info(self.model)})
            names = ", ".join(option.display_name for option in core.models.choices)
            await self.notice(f"There is no model called “{name.strip()}” here. The models: {names}.")
            return
        for tab in [tab for tab in self._tabs if tab.thread == self.thread]:
            tab.model = choice
            await tab.send({"type": "model", "model": model_info(choice)})
        await self.notice(switched_model(choice, str), level="info")

    async def _reset(self) -> None:
        try:
            await self._jobs.core.reset(self.thread)
        except ReplyFailure as failure:
            await self.notice(failure_note(failure))
            return
        await self.send({"type": "cleared"})


def _refusal(text: str, *, with_images: bool = False) -> str | None:
    if not text.strip() and not with_images:
        return "Type a message first."
    if len(text) > MAX_MESSAGE_CHARS:
        return (
            f"Your message is {len(text):,} characters long; the limit is {MAX_MESSAGE_CHARS:,}. "
            "Please shorten it or send it in parts."
        )
    return None


def _about(images: tuple[str, ...]) -> str:
    """What a question of images alone asks the model."""
    if not images:
        return "What is in this file?"
    return "What's in this image?" if len(images) == 1 else "What's in these images?"


def _frame_bytes(raw: str) -> int:
    return len(raw) if raw.isascii() else len(raw.encode())


def _file_name(upload: object, number: int) -> str:
    """The name a page gave a file, as it can be shown in a sentence."""
    given = upload.get("name") if isinstance(upload, dict) else None
    text = given if isinstance(given, str) else ""
    name = " ".join("".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf")).split())
    if len(name) > MAX_FILE_NAME_CHARS:
        name = name[: MAX_FILE_NAME_CHARS - 1] + "…"
    return name or f"image {number}"


def _decoded(upload: object) -> tuple[str, bytes]:
    """The file's declared type (else its data URL's) and bytes; ValueError if they are not
    a base64 data URL."""
    if not isinstance(upload, dict) or not isinstance(upload.get("data"), str):
        raise ValueError("no data URL")
    match = _DATA_URL.fullmatch(upload["data"])
    if match is None:
        raise ValueError("not a base64 data URL")
    data = base64.b64decode(match[3], validate=True)  # binascii.Error is a ValueError
    declared = upload.get("type")
    return (declared if isinstance(declared, str) and declared else match[1])[:100], data


def _returning(data: bytes) -> Callable[[], Awaitable[bytes]]:
    async def download() -> bytes:
        return data

    return download
