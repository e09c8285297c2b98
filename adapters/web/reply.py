"""The surface one web answer streams through (`WebReply`): its text, its tool calls and the
questions its tools ask, shown on every page of its conversation (see adapters.web.tools)."""

from __future__ import annotations

from typing import Any

from adapters.shared.platform_jobs import UnlimitedSurface
from adapters.web.conversations import Hub, Live
from adapters.web.redraw import answer_view, quoted
from adapters.web.tools import ToolFrames, stopped
from adapters.web.votes import VIEW_KEY
from bot.core import ChatCore
from bot.knowledge.citing import Citation
from bot.reply.surface import SurfaceLimits
from bot.tools.consent import ConfirmRequest
from bot.tools.events import ToolEvent
from bot.tools.gate import Decision


class WebReply(UnlimitedSurface):
    """One answer, shown on every page of its conversation. The page draws its own blinking
    caret while `streaming` is true, and a label naming the model that answers. The final frame
    is held until the answer is stored (see Hub.finish): a page that reloads then finds it in
    the history. Its tool calls show as chips (a `ToolView`), and a tool that asks first asks
    with Run / Cancel buttons (a `ToolConfirmer`); both go out at once, kept with the answer
    (`Live.tools`) for the pages that (re)connect while it is written. A thinking model's thought goes with the
    answer's frames (a `ThoughtView`), shown closed under "Thought for N s" above it. Its sources and thought are
    kept with the stored answer, for the pages that draw it again (see adapters.web.redraw)."""

    limits = SurfaceLimits(max_length=200_000, indicator="", min_edit_interval=0.05)

    def __init__(self, hub: Hub, core: ChatCore, live: Live) -> None:
        self._hub = hub
        self._core = core
        self._live = live
        self._posted = 0
        self._model = ""  # the answering model's display name, once the core says which
        self._tools = ToolFrames(live.question)
        self._thought: dict[str, Any] | None = None

    def keep_thought(self, thought: str, seconds: int) -> str:
        self._thought = {"text": thought, "seconds": seconds}
        return ""  # the page shows it above the answer, as a closed <details>

    def kept_view(self, before: str) -> dict[str, Any]:
        sources = self._live.tools.get("sources", {})
        view = answer_view(sources.get("urls", []), self._thought, before, sources.get("cited", []))
        if self._live.answer:
            view[VIEW_KEY] = self._live.answer  # the same id, and the same votes, after a reload
        return view

    def model_line(self, model: str, *, first_reply: bool) -> str:
        self._model = model
        return ""  # shown as the reply's label, not in its text

    async def show_waiting(self) -> None:
        self._show()

    async def begin(self) -> bool:
        self._show()
        return True

    async def post(self, text: str, *, final: bool) -> str:
        self._show()
        self._posted += 1
        handle = f"{self._live.question}.{self._posted}"
        await self.edit(handle, text, final=final)
        return handle

    async def edit(self, handle: str, text: str, *, final: bool) -> None:
        event = {
            "type": "reply",
            "question": self._live.question,
            "reply": handle,
            "text": text,
            "streaming": not final,
        }
        if self._model:
            event["model"] = self._model
        if self._thought is not None:
            event["thought"] = self._thought
        if final:
            self._hub.finishing(self._live, event)
        else:
            self._hub.stream(self._live, event)

    async def end(self) -> None:
        """The answer is over (written, failed or stopped): a call still running was stopped with it."""
        for key, frame in list(self._live.tools.items()):
            if (ended := stopped(frame)) is not None:
                self._send_tool(key, ended)

    async def show_tool(self, event: ToolEvent) -> None:
        self._send_tool(*self._tools.event(event))

    def quote(self, citation: Citation, text: str) -> None:
        """The passage (`text`) an [n] mark of the answer cites, as it is written: the `sources` frame's `cited`
        grows by it, so the page shows it when the mark is pointed at; kept with the answer (`kept_view`)."""
        frame = self._live.tools.get("sources") or {"type": "sources", "question": self._live.question, "urls": []}
        passage = quoted(citation.number, citation.label, citation.url, text)
        self._send_tool("sources", {**frame, "cited": [*frame.get("cited", []), passage]})

    async def ask_to_run(self, request: ConfirmRequest) -> str:
        self._send_tool(*self._tools.asked(request))
        return request.key

    async def settle(self, handle: str, request: ConfirmRequest, decision: Decision) -> None:
        self._send_tool(*self._tools.settled(request, decision))

    def _send_tool(self, key: str, frame: dict[str, Any]) -> None:
        self._show()
        if key == "sources" and "cited" not in frame and (cited := self._live.tools.get(key, {}).get("cited")):
            frame = {**frame, "cited": cited}  # the tools' links, once the answer is written: its passages stay
        self._live.tools[key] = frame
        self._hub.send(self._hub.pages(self._live.thread), frame)

    def _show(self) -> None:
        """The question is stored and its answer under way (or refused): every page shows it."""
        if not self._live.shown:
            self._hub.show(self._live)
            if self._live.stop_requested:
                self._core.stop(self._live.thread)
