"""`/respond helpers`, the same on every platform: who a help channel's threads are handed to (a Discord role, Slack
people or a user group), shown and set by those who may set `/respond`; `helpers:` in CHANNELS_FILE beneath. Each
function answers with the sentence the person sees and raises STORE_UNAVAILABLE (a ReplyFailure) without Redis."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from adapters.shared.helpdesk.calling import NOBODY, helpers_of
from adapters.shared.place_settings import NO_SETTINGS, where_of
from bot.core import ChatCore
from bot.state.personas import Place

Shown = Callable[[tuple[str, ...]], str]  # how the platform writes helpers' ids (without pinging them)


async def helpers_here(core: ChatCore, places: Sequence[Place], shown: Shown) -> str:
    """Who this channel's threads are handed to, in one line."""
    helpers = await helpers_of(core, places)
    if not helpers:
        return "Helpers: nobody, so 👎 and weakly covered questions call no person (set them with /respond helpers)."
    return f"Helpers: {shown(helpers)}: a 👎, Still need help? or a question it can't answer well is handed to them."


async def set_helpers_here(core: ChatCore, place: Place, helpers: tuple[str, ...] | None, shown: Shown) -> str:
    """`helpers` from now on (None: as its server or the operator's file say; (): nobody)."""
    settings = core.personas
    if settings is None:
        return NO_SETTINGS
    where = where_of(place)
    if helpers is None:
        await settings.set_helpers(place, None)
        return f"Done: {where}'s helpers are as its server or the bot's settings say again."
    await settings.set_helpers(place, " ".join(helpers) or NOBODY)
    if not helpers:
        return f"Done: nobody is called in {where} any more; the bot no longer offers to call a person."
    return (
        f"Done: in {where}, a 👎 or Still need help? on an answer mentions {shown(helpers)} once per thread, and the "
        "bot stays out of a thread once one of them writes there."
    )
