"""/persona in a Slack channel: without text it shows the persona that applies there and where it comes from;
`/persona instructions` sets the channel's, `/persona clear` removes it; setting is for workspace admins and
SLACK_ADMIN_USER_IDS. Answered to the person alone (the command's ack)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_bot.places.message_places import slack_places
from adapters.slack_bot.ports import Answerer
from bot.errors import ReplyFailure
from bot.reply.render import failure_note
from bot.state.personas import PersonaRefused, Place

SHOWN_CHARS = 2_000


class PersonaCommand:
    def __init__(self, bot: Answerer, is_admin: Callable[[AsyncWebClient, str], Awaitable[bool]]) -> None:
        self._personas = bot.jobs.core.personas
        self._is_admin = is_admin

    def register(self, app: AsyncApp) -> None:
        app.command("/persona")(self._on_persona)

    async def _on_persona(self, ack: Any, command: dict[str, Any], client: AsyncWebClient) -> None:
        text, user = command.get("text", "").strip(), command["user_id"]
        places = slack_places(command.get("team_id", ""), command["channel_id"])
        try:
            await ack(await self._answer(client, text, user, places))
        except ReplyFailure as failure:
            await ack(failure_note(failure))

    async def _answer(self, client: AsyncWebClient, text: str, user: str, places: tuple[Place, ...]) -> str:
        personas = self._personas
        if personas is None:
            return "Personas are not available here."
        if not text:
            persona = await personas.effective(places)
            shown = persona.text if len(persona.text) <= SHOWN_CHARS else persona.text[:SHOWN_CHARS] + "…"
            return f"The persona here comes from {persona.source}:\n>>> {shown}"
        if places[0].kind != "channel":
            return "Personas are set per channel: use /persona in one."
        if not await self._is_admin(client, user):
            return "Only workspace admins (or the people this bot names) may set a channel's persona."
        try:
            if text == "clear":
                await personas.clear(places[0])
                return "Done: this channel's persona is removed. It applies from the next message on."
            await personas.set(places[0], text)
        except PersonaRefused as refused:
            return str(refused)
        return "Done: this channel's persona is set. It applies from the next message on, in every conversation."
