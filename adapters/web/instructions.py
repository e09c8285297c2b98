"""A web conversation's Instructions: its own persona (see bot.state.personas), the place
`Place("web", "conversation", "<chat_id>:<conversation id>")` (a browser's first conversation is "0" in every
browser, so the place names the browser too). Its questions are answered with them from the next one on;
a conversation without them has the bot's default. Deleting the conversation deletes them.

The frames (besides those in adapters.web):

- server → page: in `hello`, `instructions`: the conversation's own text ("" when it has none: the bot's
  default applies; null when personas are not available here) and `maxInstructions`; `instructions`
  {conversation, text} to every page of this process showing the conversation once they are saved or cleared.
- page → server: `instructions` {id: the conversation's id, text: up to maxInstructions characters; ""
  clears them}. A text that can't be kept is refused with a `notice` to that page alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import structlog

from adapters.web.conversations import Hub, Page, is_conversation_id, thread_of
from bot.errors import ReplyFailure
from bot.reply.render import failure_note
from bot.state.personas import PersonaRefused, Personas, Place
from config.channels_file import PERSONA_MAX_CHARS

log = structlog.get_logger(__name__)

MAX_INSTRUCTIONS_CHARS = PERSONA_MAX_CHARS
KIND = "conversation"
OWN = f"this {KIND}"  # Persona.source of a conversation's own instructions
UNAVAILABLE = "Instructions are not available here."
SAVED = "Instructions saved: they apply from the next message on."
CLEARED = "Instructions cleared: the bot's default applies from the next message on."


class InstructionsPage(Page, Protocol):
    def notice(self, text: str, *, level: str = "warning") -> None: ...


def place_of(chat_id: str, conversation: str) -> Place:
    return Place("web", KIND, f"{chat_id}:{conversation}")


def places_of(chat_id: str, conversation: str) -> tuple[Place, ...]:
    """A question's places (Turn.places): its conversation alone (the web has no channel or server)."""
    return (place_of(chat_id, conversation),)


async def own_text(personas: Personas | None, chat_id: str, conversation: str) -> str | None:
    """The conversation's instructions ("" if it has none; None without personas); raises STORE_UNAVAILABLE."""
    if personas is None:
        return None
    persona = await personas.effective(places_of(chat_id, conversation))
    return persona.text if persona.source == OWN else ""


def hello_fields(text: str | None) -> dict[str, Any]:
    return {"instructions": text, "maxInstructions": MAX_INSTRUCTIONS_CHARS}


async def change(page: InstructionsPage, hub: Hub, personas: Personas | None, event: Mapping[str, Any]) -> None:
    """An `instructions` frame: save (or, empty, clear) the conversation's instructions; every page of this
    process showing it is sent them, and `page` a notice saying so (or why they were not kept)."""
    conversation, text = event.get("id"), event.get("text")
    if not is_conversation_id(conversation) or not isinstance(text, str):
        log.warning("web_unreadable_event", kind="instructions")
        return
    assert isinstance(conversation, str)
    if personas is None:
        page.notice(UNAVAILABLE)
        return
    if len(text) > MAX_INSTRUCTIONS_CHARS:
        page.notice(f"Instructions hold {MAX_INSTRUCTIONS_CHARS:,} characters at most; these have {len(text):,}.")
        return
    place = place_of(page.chat_id, conversation)
    try:
        if not any(entry.id == conversation for entry in await hub.conversations.entries(page.chat_id)):
            page.notice("This conversation was deleted.")
            return
        await (personas.set(place, text) if text.strip() else personas.clear(place))
        if await hub.conversations.deleted(page.chat_id, conversation):  # deleted meanwhile: not kept
            await personas.clear(place)
            page.notice("This conversation was deleted.")
            return
    except PersonaRefused as refused:
        page.notice(str(refused))
        return
    except ReplyFailure as failure:
        page.notice(failure_note(failure))
        return
    kept = text.strip()
    frame = {"type": "instructions", "conversation": conversation, "text": kept}
    hub.send(hub.pages(thread_of(page.chat_id, conversation)), frame)
    page.notice(SAVED if kept else CLEARED, level="info")


async def forget(personas: Personas | None, chat_id: str, conversation: str) -> None:
    """A deleted conversation's instructions go with it (raises STORE_UNAVAILABLE)."""
    if personas is not None:
        await personas.clear(place_of(chat_id, conversation))
