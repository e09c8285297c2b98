"""Who the bot is in each place: a persona set for a channel or a server, kept in Redis for every process, the
operator's CHANNELS_FILE beneath them, SYSTEM_PROMPT beneath that; placeholders filled per turn; a persona too long
for the model's context refused when it is set."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core import ChatCore, Turn
from bot.reply.surface import SurfaceLimits
from bot.state.personas import PersonaRefused, Personas, Place, filled
from bot.state.redis_client import close, connect
from bot.state.store import HistoryStore
from bot.turn.prompt import MistralTokenCounter
from config.channels_file import load_places
from config.env import ConfigError, Env
from fakes.harness.processes import REDIS_URL
from fakes.memory_surface import MemorySurface
from fakes.model_server import FakeModelServer
from tests.conftest import make_core, remote_model_settings

CHANNEL = Place("discord", "channel", "111", "helpdesk")
SERVER = Place("discord", "server", "999", "Acme")
OTHER_CHANNEL = Place("discord", "channel", "222", "games")


def personas(store: HistoryStore, counter: MistralTokenCounter, tmp_path: Path | None = None) -> Personas:
    places = None
    if tmp_path is not None:
        path = tmp_path / "channels.yml"
        path.write_text('channels:\n  "222":\n    persona: You are a game master in {channel}.\n', encoding="utf-8")
        places = load_places(Env({"CHANNELS_FILE": str(path)}))
    return Personas(
        store.client,
        store.settings.key_prefix,
        "You are a test bot.",
        size=counter.count,
        max_tokens=200,
        file=places,
    )


@pytest.fixture
async def core(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter, tmp_path: Path
) -> AsyncIterator[ChatCore]:
    settings = remote_model_settings(model_server.base_url)
    core = make_core(settings, redis_store, token_counter, personas=personas(redis_store, token_counter, tmp_path))
    yield core
    await core.aclose()


def system_of(model_server: FakeModelServer) -> str:
    return str(model_server.requests[-1].body["messages"][0]["content"])


async def ask(core: ChatCore, thread: str, *places: Place) -> None:
    surface = MemorySurface(SurfaceLimits(max_length=2000))
    result = await core.answer(Turn(thread, "42", "Ada", "hello", places=places), surface)
    assert result.failure is None


async def test_a_channels_persona_wins_over_the_servers_and_the_file_and_applies_from_the_next_turn(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    assert core.personas is not None
    await ask(core, "p:1", CHANNEL, SERVER)
    assert system_of(model_server) == "You are a test bot."

    await core.personas.set(SERVER, "You are Acme's assistant.")
    await ask(core, "p:1", CHANNEL, SERVER)  # the same conversation: the new persona from its next turn
    assert system_of(model_server) == "You are Acme's assistant."

    await core.personas.set(CHANNEL, "You answer {user} in #{channel} of {server}.")
    await ask(core, "p:2", CHANNEL, SERVER)
    assert system_of(model_server) == "You answer Ada in #helpdesk of Acme."
    assert (await core.personas.effective((CHANNEL, SERVER))).source == "this channel"

    await ask(core, "p:3", OTHER_CHANNEL, SERVER)  # the server's beats the operator's file
    assert system_of(model_server) == "You are Acme's assistant."
    await core.personas.clear(SERVER)
    await ask(core, "p:3", OTHER_CHANNEL, SERVER)
    assert system_of(model_server) == "You are a game master in games."


async def test_the_setting_is_in_redis_for_every_process(
    core: ChatCore, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    assert core.personas is not None
    await core.personas.set(CHANNEL, "Set in another process.")
    client = connect(REDIS_URL, cluster=False)
    try:
        other = Personas(client, redis_store.settings.key_prefix, "default", size=token_counter.count, max_tokens=200)
        assert (await other.effective((CHANNEL,))).text == "Set in another process."
    finally:
        await close(client)


async def test_a_persona_too_long_for_the_context_is_refused_when_it_is_set(core: ChatCore) -> None:
    assert core.personas is not None
    with pytest.raises(PersonaRefused, match="tokens long; the model reads 200 at most"):
        await core.personas.set(CHANNEL, "word " * 400)
    with pytest.raises(PersonaRefused, match="4,000 characters at most"):
        await core.personas.set(CHANNEL, "x" * 4001)
    assert (await core.personas.effective((CHANNEL,))).source == "the bot's default"


def test_placeholders_are_filled_and_other_braces_stay() -> None:
    now = datetime.datetime(2026, 11, 27, 9, 5, tzinfo=datetime.UTC)
    text = filled("{date} {time} {user} {channel} {server} {other}", user="Ada", places=(CHANNEL, SERVER), now=now)
    assert text == "2026-11-27 09:05 UTC Ada helpdesk Acme {other}"


def test_a_bad_channels_file_stops_start_up_naming_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "channels.yml"
    path.write_text('channels:\n  "1":\n    persona: ""\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="channels '1': field 'persona'"):
        load_places(Env({"CHANNELS_FILE": str(path)}))


async def test_the_default_prompts_placeholders_are_filled_everywhere(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    placeholders = Personas(
        redis_store.client, redis_store.settings.key_prefix, "You talk to {user}.", size=len, max_tokens=200
    )
    settings = remote_model_settings(model_server.base_url)
    core = make_core(settings, redis_store, token_counter, system_prompt="You talk to {user}.", personas=placeholders)
    try:
        await ask(core, "p:default")  # a place-less turn (the web chat, the terminal)
        assert system_of(model_server) == "You talk to Ada."
    finally:
        await core.aclose()


async def test_a_conversations_own_persona_lives_as_long_as_the_conversation_is_used(
    redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    own = Place("web", "conversation", "browser:0")
    store = Personas(
        redis_store.client, redis_store.settings.key_prefix, "d", size=len, max_tokens=200, conversation_seconds=600
    )
    await store.set(own, "Be brief.")
    await store.set(CHANNEL, "Kept for good.")
    key = f"{redis_store.settings.key_prefix}persona:{{{own.key}}}"
    await redis_store.client.expire(key, 10)
    assert (await store.effective((own,))).text == "Be brief."
    assert 590 < await redis_store.client.ttl(key) <= 600  # used: its time starts again
    assert await redis_store.client.ttl(f"{redis_store.settings.key_prefix}persona:{{{CHANNEL.key}}}") == -1


async def test_a_places_own_persona_is_the_one_set_there_else_the_operators_for_it(core: ChatCore) -> None:
    assert core.personas is not None
    assert await core.personas.own(CHANNEL) is None  # the default is nobody's own
    await core.personas.set(SERVER, "The server's.")
    assert await core.personas.own(CHANNEL) is None  # what it takes from its server isn't its own either
    assert await core.personas.own(SERVER) == "The server's."
    assert await core.personas.own(OTHER_CHANNEL) == "You are a game master in {channel}."  # the operator's file
    await core.personas.set(OTHER_CHANNEL, "Set in the channel.")
    assert await core.personas.own(OTHER_CHANNEL) == "Set in the channel."
