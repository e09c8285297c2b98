"""What each place sets for its conversations: who the bot is there (a persona: the system prompt), the model of its
new conversations, whether tools are offered there, and what it answers without a mention (bot.respond.decision). A
place is a channel or a server (a Discord guild, a Slack workspace); settings are kept in Redis with no expiry,
strongest first the channel's, the server's, then the operator's CHANNELS_FILE, then the environment (SYSTEM_PROMPT,
MODEL_ID). A thread takes its channel's. Placeholders ({date}, {time}, {user}, {channel}, {server}) are filled per
turn."""

from __future__ import annotations

import datetime
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bot.state.redis_client import RedisClient, hash_tag, served
from config.channels_file import PERSONA_MAX_CHARS, PlaceFile
from config.usage import PlaceBudget

T = TypeVar("T")


@dataclass(frozen=True)
class Place:
    """Where a persona may be set: `kind` "channel" or "server", `key` unique across platforms."""

    platform: str
    kind: str
    id: str
    name: str = ""  # what {channel} / {server} say
    server: str = ""  # a channel's server's id, where the platform can't list a server's channels when it leaves

    def within(self) -> Place | None:
        """The server a channel is listed under, so that its settings can go when the bot leaves the server."""
        return Place(self.platform, "server", self.server) if self.server and self.kind == "channel" else None

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.kind}:{self.id}"


@dataclass(frozen=True)
class Persona:
    text: str  # with its placeholders
    source: str  # where it comes from, as people are told: "this channel", "this server", …


@dataclass(frozen=True)
class PlaceSettings:
    """What a turn's places set, each from the most specific place that sets it."""

    persona: Persona
    model: str = ""  # a model's id or name ("": none set; the conversation's own or the default applies)
    model_source: str = ""
    tools: bool | None = None  # None: not said (the model's own rule applies)
    budgets: tuple[PlaceBudget, ...] = ()  # what each of the turn's places sets (bot.usage.limits), in their order


# What a place may set besides its persona, by the key it is kept under.
_MODEL, _TOOLS, _RESPOND, _BUDGET, _HELPERS = "model", "tools", "respond", "budget", "helpers"
# What a channel answers unasked is looked up for every message in it: each process keeps the answer this long, so a
# change reaches every process within it.
RESPOND_CACHE_SECONDS = 2.0
RESPOND_CACHE_SIZE = 10_000


class PersonaRefused(ValueError):
    """A persona that can't be set; the message says why."""


class Personas:
    def __init__(
        self,
        client: RedisClient,
        key_prefix: str,
        default: str,
        *,
        size: Callable[[str], int],
        max_tokens: int,
        file: PlaceFile | None = None,
        on_error: Callable[[], object] = lambda: None,
        conversation_seconds: int | None = None,
    ) -> None:
        """`size`: a system prompt's tokens; `max_tokens`: the most a persona may take of the context, so that a
        conversation still fits beside it; `conversation_seconds`: how long a conversation's own persona (a place of
        kind "conversation", the web chat's Instructions) outlives its last use, as its history does."""
        self._redis = client
        self._prefix = key_prefix
        self.default = default
        self._size = size
        self._max_tokens = max_tokens
        self._file = file or PlaceFile()
        self._on_error = on_error
        self._conversation_seconds = conversation_seconds
        self._respond: dict[tuple[str, ...], tuple[float, tuple[str, str]]] = {}
        self._respond_writes = 0  # modes set by this process: a read begun before one isn't cached

    async def effective(self, places: Sequence[Place]) -> Persona:
        """The persona of the most specific of `places` (most specific first) that has one (raises
        STORE_UNAVAILABLE without Redis)."""
        return (await self.settings(places)).persona

    async def settings(self, places: Sequence[Place]) -> PlaceSettings:
        """Everything `places` (most specific first) set, in one round trip (raises STORE_UNAVAILABLE)."""
        if not places:
            return PlaceSettings(Persona(self.default, "the bot's default"))
        async with self._redis.pipeline(transaction=False) as pipe:
            for place in places:
                if (seconds := self._lifetime(place)) is not None:
                    pipe.getex(self._key(place), ex=seconds)  # kept as long as the conversation is used
                else:
                    pipe.get(self._key(place))
                pipe.get(self._key(place, _MODEL))
                pipe.get(self._key(place, _TOOLS))
                pipe.get(self._key(place, _BUDGET))
            stored = await self._run(pipe.execute())
        personas, models, tools, budgets = stored[0::4], stored[1::4], stored[2::4], stored[3::4]
        model, model_source = self._first(places, models, _MODEL)
        offered, _ = self._first(places, tools, _TOOLS)
        return PlaceSettings(
            self._persona(places, personas),
            model,
            model_source,
            None if not offered else offered == "on",
            tuple(self._budget(place, stored) for place, stored in zip(places, budgets, strict=True)),
        )

    def _budget(self, place: Place, stored: object) -> PlaceBudget:
        """What `place` sets: its own (`/budget`), else the operator's file's for it."""
        if stored:
            return PlaceBudget.from_json(stored)
        return PlaceBudget.from_json(self._file.setting(place.kind, place.id, _BUDGET))

    async def budget(self, place: Place) -> PlaceBudget:
        """What `place` sets for budgets (raises STORE_UNAVAILABLE)."""
        return self._budget(place, await self._run(self._redis.get(self._key(place, _BUDGET))))

    async def set_budget(self, place: Place, budget: PlaceBudget | None) -> bool:
        """`place`'s budgets (None or empty: as its server, the operator's file or the environment say)."""
        return await self._put(place, _BUDGET, None if budget is None or budget.empty else budget.to_json())

    def _persona(self, places: Sequence[Place], stored: Sequence[object]) -> Persona:
        for place, text in zip(places, stored, strict=True):
            if text:
                return Persona(str(text), f"this {place.kind}")
        for place in places:
            if (text := self._file.persona(place.kind, place.id)) is not None:
                return Persona(text, f"the operator's settings for this {place.kind}")
        return Persona(self.default, "the bot's default")

    def _first(self, places: Sequence[Place], stored: Sequence[object], setting: str) -> tuple[str, str]:
        """The value of `setting` from the most specific place that sets it, and where it comes from."""
        for place, value in zip(places, stored, strict=True):
            if value:
                return str(value), f"this {place.kind}"
        for place in places:
            if (value := self._file.setting(place.kind, place.id, setting)) is not None:
                return value, f"the operator's settings for this {place.kind}"
        return "", ""

    async def respond_mode(self, places: Sequence[Place]) -> tuple[str, str]:
        """What `places` (most specific first) answer without a mention ("mentions", "questions", "all"; "" when
        none says) and where that is set, cached for RESPOND_CACHE_SECONDS (raises STORE_UNAVAILABLE)."""
        cache_key = tuple(place.key for place in places)
        cached = self._respond.get(cache_key)
        if cached is not None and time.monotonic() - cached[0] < RESPOND_CACHE_SECONDS:
            return cached[1]
        writes = self._respond_writes
        async with self._redis.pipeline(transaction=False) as pipe:
            for place in places:
                pipe.get(self._key(place, _RESPOND))
            stored = await self._run(pipe.execute())
        found = self._first(places, stored, _RESPOND)
        if len(self._respond) >= RESPOND_CACHE_SIZE:
            self._respond.clear()
        if writes == self._respond_writes:  # else it may have read the mode from before this process's change
            self._respond[cache_key] = (time.monotonic(), found)
        return found

    async def set_respond(self, place: Place, mode: str | None) -> bool:
        """What `place` answers without a mention (None: as its server or the operator's file says)."""
        self._respond_writes += 1
        self._respond.clear()
        changed = await self._put(place, _RESPOND, mode)
        self._respond_writes += 1  # a read that began during the write isn't cached either
        self._respond.clear()
        return changed

    async def helpers(self, places: Sequence[Place]) -> tuple[str, str]:
        """Who `places`' threads are handed to (ids separated by spaces; "none" or "" when nobody), and where that is
        set."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for place in places:
                pipe.get(self._key(place, _HELPERS))
            return self._first(places, await self._run(pipe.execute()), _HELPERS)

    async def set_helpers(self, place: Place, ids: str | None) -> bool:
        """Who `place`'s threads are handed to (None: as its server or the operator's file says; "none": nobody)."""
        return await self._put(place, _HELPERS, ids)

    async def own(self, place: Place) -> str | None:
        """`place`'s own persona (set there, else in the operator's file for it), None when it has none of its own
        (raises STORE_UNAVAILABLE without Redis)."""
        stored = await self._run(self._redis.get(self._key(place)))
        return str(stored) if stored else self._file.persona(place.kind, place.id)

    async def set(self, place: Place, text: str) -> None:
        """`place`'s persona from its next turn on; PersonaRefused (with the reason) for one that can't be."""
        text = text.strip()
        if not text:
            raise PersonaRefused("A persona needs some text: say who the bot is here.")
        if len(text) > PERSONA_MAX_CHARS:
            raise PersonaRefused(
                f"A persona holds {PERSONA_MAX_CHARS:,} characters at most; this one has {len(text):,}."
            )
        if (tokens := self._size(text)) > self._max_tokens:
            raise PersonaRefused(
                f"That persona is {tokens:,} tokens long; the model reads {self._max_tokens:,} at most for it, so that "
                "the conversation still fits. Shorten it."
            )
        await self._run(self._redis.set(self._key(place), text, ex=self._lifetime(place)))
        await self._list(place)

    async def clear(self, place: Place) -> bool:
        return bool(await self._run(self._redis.delete(self._key(place))))

    async def set_model(self, place: Place, model: str | None) -> bool:
        """`place`'s model for new conversations (None: remove it); False if there was none to remove."""
        return await self._put(place, _MODEL, model)

    async def set_tools(self, place: Place, offered: bool | None) -> bool:
        """Whether tools are offered in `place` (None: as the model's own rule says); False if nothing changed."""
        return await self._put(place, _TOOLS, None if offered is None else "on" if offered else "off")

    async def _put(self, place: Place, setting: str, value: str | None) -> bool:
        key = self._key(place, setting)
        if value is None:
            return bool(await self._run(self._redis.delete(key)))
        await self._run(self._redis.set(key, value))
        await self._list(place)
        return True

    async def _list(self, place: Place) -> None:
        if (server := place.within()) is not None:
            await self._run(self._redis.sadd(self._channels_key(server), place.id))

    async def forget_server(self, server: Place, channels: Sequence[Place] = ()) -> None:
        """Delete what `server` set, and its channels: `channels`, and those listed as they set something (the
        channels whose Place names their server)."""
        listed = await self._run(self._redis.smembers(self._channels_key(server)))
        await self.forget([server, *channels, *(Place(server.platform, "channel", str(id_)) for id_ in listed)])

    async def forget(self, places: Sequence[Place]) -> None:
        """Delete everything `places` set (the bot left a server: its channels' and its own)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for place in places:
                settings = ("persona", _MODEL, _TOOLS, _RESPOND, _BUDGET, _HELPERS)
                pipe.delete(*(self._key(place, setting) for setting in settings))
                if place.kind == "server":
                    pipe.delete(self._channels_key(place))
            await self._run(pipe.execute())

    def _channels_key(self, server: Place) -> str:
        return f"{self._prefix}server-places:{hash_tag(server.key)}"

    def _lifetime(self, place: Place) -> int | None:
        return self._conversation_seconds if place.kind == "conversation" else None

    def _key(self, place: Place, setting: str = "persona") -> str:
        """The place's settings share a hash tag: on a cluster, one slot holds them all."""
        return f"{self._prefix}{'persona' if setting == 'persona' else 'place-' + setting}:{hash_tag(place.key)}"

    async def _run(self, command: Awaitable[T]) -> T:
        return await served(command, "persona_store_error", self._on_error)


def filled(text: str, *, user: str, places: Sequence[Place], now: datetime.datetime | None = None) -> str:
    """`text` with its placeholders filled; anything else in braces stays as it is."""
    moment = now or datetime.datetime.now(datetime.UTC)
    names = {place.kind: place.name for place in reversed(places)}
    values = {
        "{date}": moment.strftime("%Y-%m-%d"),
        "{time}": moment.strftime("%H:%M UTC"),
        "{user}": user,
        "{channel}": names.get("channel", ""),
        "{server}": names.get("server", ""),
    }
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text
