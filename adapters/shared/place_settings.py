"""What a channel's (or server's) admins set besides its persona, the same on every platform: the model of its new
conversations, whether tools are offered there, and what it answers without a mention (`/respond`). Each function
answers with the sentence the person sees; each raises STORE_UNAVAILABLE (a ReplyFailure) without Redis."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from adapters.shared.platform_jobs import Bold, unknown_model
from bot.core import ChatCore
from bot.respond.decision import RespondMode
from bot.state.personas import Place, PlaceSettings

# What /model takes in a channel to remove the channel's (or server's) own model.
DEFAULT_MODEL = "default"
TOOLS_CHOICES = ("on", "off", "default")


NO_SETTINGS = "Settings are not available here."


async def _here(core: ChatCore, places: Sequence[Place]) -> PlaceSettings | None:
    return await core.personas.settings(places) if core.personas is not None else None


async def model_here(core: ChatCore, places: Sequence[Place], bold: Bold) -> str:
    """/model without a name in a channel: the model of new conversations there, where that comes from, and the
    models there are."""
    here = await _here(core, places)
    choice = core.models.find(here.model) if here is not None else None
    source = here.model_source if here is not None and choice is not None else "the bot's default"
    lines = [f"New conversations here answer with {bold((choice or core.models.default).display_name)} ({source})."]
    lines += [f"• {option.display_name}" for option in core.models.choices]
    if len(core.models.choices) > 1:
        lines.append(f"Set another with /model and a name, or /model {DEFAULT_MODEL} to go back to the default.")
    return "\n".join(lines)


async def set_model_here(core: ChatCore, place: Place, name: str, bold: Bold, shown: Callable[[str], str] = str) -> str:
    """/model with a name in a channel (or for a server): the model of its new conversations from now on; existing
    ones keep theirs. `DEFAULT_MODEL` removes the place's own."""
    settings = core.personas
    if settings is None:
        return NO_SETTINGS
    where = where_of(place)
    if (choice := core.models.find(name)) is None and name.strip().casefold() == DEFAULT_MODEL:
        removed = await settings.set_model(place, None)
        if not removed:
            return f"{where.capitalize()} had no model of its own."
        return f"Done: new conversations in {where} follow the default model again."
    if choice is None:
        return unknown_model(core.models, shown(name), bold)
    await settings.set_model(place, choice.id)
    return f"New conversations in {where} will answer with {bold(choice.display_name)}. Existing ones keep theirs."


async def tools_here(core: ChatCore, places: Sequence[Place]) -> str:
    """Whether tools are offered here."""
    here = await _here(core, places)
    if here is None or here.tools is None:
        return "Tools are offered here to the models that can use them."
    return "Tools are offered here." if here.tools else "Tools are turned off here."


async def set_tools_here(core: ChatCore, place: Place, choice: str) -> str:
    """Turn tools on or off for `place` ("default": as the bot's settings say)."""
    settings = core.personas
    if settings is None:
        return NO_SETTINGS
    if choice not in TOOLS_CHOICES:
        return f"Say on, off or {TOOLS_CHOICES[-1]}: /tools on, /tools off or /tools {TOOLS_CHOICES[-1]}."
    await settings.set_tools(place, None if choice == "default" else choice == "on")
    where = where_of(place)
    if choice == "default":
        return f"Done: tools in {where} follow the bot's settings again, from the next message on."
    return f"Done: tools are {'offered' if choice == 'on' else 'turned off'} in {where}, from the next message on."


def where_of(place: Place) -> str:
    """How people call `place`: "this channel", "this server", "this workspace" (Slack's)."""
    if place.kind == "server":
        return "this workspace" if place.platform == "slack" else "this server"
    return f"this {place.kind}"


RESPOND_CHOICES = (*(mode.value for mode in RespondMode), "default")
RESPOND_MEANING = {
    RespondMode.MENTIONS: "answers only when mentioned, in a DM, or in its threads",
    RespondMode.QUESTIONS: "answers, without a mention, the questions it can help with; it stays out of chatter",
    RespondMode.ALL: "answers every message, without a mention",
}


async def respond_mode(core: ChatCore, places: Sequence[Place]) -> RespondMode:
    """What a channel answers without a mention (raises STORE_UNAVAILABLE without Redis)."""
    if core.personas is None or not places:
        return RespondMode.MENTIONS
    mode, _ = await core.personas.respond_mode(places)
    return RespondMode(mode) if mode in RESPOND_CHOICES[:-1] else RespondMode.MENTIONS


async def respond_here(core: ChatCore, places: Sequence[Place], bold: Bold) -> str:
    """/respond without a mode: what this channel answers, where that is set, and the modes."""
    mode, source = await core.personas.respond_mode(places) if core.personas is not None else ("", "")
    current = RespondMode(mode) if mode in RESPOND_CHOICES[:-1] else RespondMode.MENTIONS
    lines = [f"Here the bot {RESPOND_MEANING[current]}: {bold(current.value)} ({source or 'the default'})."]
    lines += [f"• {bold(choice.value)}: {meaning}" for choice, meaning in RESPOND_MEANING.items()]
    return "\n".join(lines)


async def set_respond_here(core: ChatCore, place: Place, choice: str, bold: Bold) -> str:
    """Set what `place` answers without a mention ("default": as its server or the operator's file says)."""
    settings = core.personas
    if settings is None:
        return NO_SETTINGS
    choice = choice.strip().casefold()
    if choice not in RESPOND_CHOICES:
        return f"Say one of {', '.join(RESPOND_CHOICES)}: /respond questions, say."
    where = where_of(place)
    if choice == "default":
        await settings.set_respond(place, None)
        return f"Done: {where} answers as its server or the bot's settings say again, from the next message on."
    await settings.set_respond(place, choice)
    mode = RespondMode(choice)
    return f"Done: from the next message on, in {where} the bot {RESPOND_MEANING[mode]} ({bold(mode.value)})."
