"""What a channel or server sets besides its persona: the model of its new conversations, whether tools are
offered there, and what it answers without a mention. Kept in Redis with no expiry; strongest first the
conversation's own /model, the channel's, the server's, the operator's CHANNELS_FILE, the environment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core import ChatCore, Turn
from bot.reply.surface import SurfaceLimits
from bot.state.personas import RESPOND_CACHE_SECONDS, Personas, Place
from bot.state.store import HistoryStore
from bot.turn.prompt import MistralTokenCounter
from config.channels_file import load_places
from config.env import ConfigError, Env
from config.models import ModelCatalog
from config.settings import load_settings
from fakes.memory_surface import MemorySurface
from fakes.model_server import FakeModelServer, Script
from tests.conftest import make_core

DEFAULT_MODEL = "mistralai/Mistral-7B-Instruct-v0.3"
SMALL = "mistralai/Mistral-Small-24B-Instruct-2501"
LARGE = "mistralai/Mistral-Large-Instruct-2411"
CHANNEL = Place("discord", "channel", "111", "helpdesk")
FILED_CHANNEL = Place("discord", "channel", "222", "games")
SERVER = Place("discord", "server", "999", "Acme")


def catalog(base_url: str, **extra: str) -> ModelCatalog:
    env = {"INFERENCE_BASE_URL": f"{base_url}/v1", "MODELS": f"{SMALL},{LARGE}", "MODEL_TIMEOUT_SECONDS": "5"}
    return load_settings(Env(env | extra)).models


@pytest.fixture
async def core(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter, tmp_path: Path
) -> AsyncIterator[ChatCore]:
    path = tmp_path / "channels.yml"
    path.write_text(f'channels:\n  "222":\n    model: {LARGE}\n', encoding="utf-8")
    settings = Personas(
        redis_store.client,
        redis_store.settings.key_prefix,
        "You are a test bot.",
        size=token_counter.count,
        max_tokens=200,
        file=load_places(Env({"CHANNELS_FILE": str(path)})),
    )
    models = catalog(model_server.base_url)
    core = make_core(models.default.settings, redis_store, token_counter, models=models, personas=settings)
    model_server.default = Script(text="Hi.")
    yield core
    await core.aclose()


async def model_asked(core: ChatCore, model_server: FakeModelServer, thread: str, *places: Place) -> str:
    surface = MemorySurface(SurfaceLimits(max_length=2000))
    result = await core.answer(Turn(thread, "42", "Ada", "hello", places=places), surface)
    assert result.failure is None
    return str(model_server.requests[-1].body["model"])


async def test_the_conversations_choice_beats_the_channels_which_beats_the_servers_file_and_default(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    assert core.personas is not None
    assert await model_asked(core, model_server, "m:1", CHANNEL, SERVER) == DEFAULT_MODEL
    assert await model_asked(core, model_server, "m:2", FILED_CHANNEL, SERVER) == LARGE  # the operator's file

    await core.personas.set_model(SERVER, SMALL)
    assert await model_asked(core, model_server, "m:3", CHANNEL, SERVER) == SMALL
    assert await model_asked(core, model_server, "m:4", FILED_CHANNEL, SERVER) == SMALL  # the server's beats the file

    await core.personas.set_model(CHANNEL, LARGE)
    assert await model_asked(core, model_server, "m:5", CHANNEL, SERVER) == LARGE

    await core.choose_model("m:6", SMALL)  # the conversation's own /model
    assert await model_asked(core, model_server, "m:6", CHANNEL, SERVER) == SMALL


async def test_a_conversation_keeps_the_model_it_started_with_when_its_channels_changes(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    assert core.personas is not None
    await core.personas.set_model(CHANNEL, LARGE)
    assert await model_asked(core, model_server, "m:kept", CHANNEL, SERVER) == LARGE
    await core.personas.set_model(CHANNEL, SMALL)
    assert await model_asked(core, model_server, "m:kept", CHANNEL, SERVER) == LARGE
    assert await model_asked(core, model_server, "m:new", CHANNEL, SERVER) == SMALL
    await core.personas.set_model(CHANNEL, None)
    assert await model_asked(core, model_server, "m:newer", CHANNEL, SERVER) == DEFAULT_MODEL


async def test_a_channels_settings_never_expire(core: ChatCore, redis_store: HistoryStore) -> None:
    assert core.personas is not None
    await core.personas.set_model(CHANNEL, LARGE)
    await core.personas.set_tools(CHANNEL, False)
    prefix = redis_store.settings.key_prefix
    for setting in ("model", "tools"):
        assert await redis_store.client.ttl(f"{prefix}place-{setting}:{{{CHANNEL.key}}}") == -1
    here = await core.personas.settings((CHANNEL, SERVER))
    assert (here.model, here.model_source, here.tools) == (LARGE, "this channel", False)
    await core.personas.forget((CHANNEL,))  # the bot left the server
    here = await core.personas.settings((CHANNEL, SERVER))
    assert (here.model, here.tools) == ("", None)


def test_a_channels_file_naming_a_model_not_offered_stops_start_up(
    tmp_path: Path, model_server: FakeModelServer
) -> None:
    path = tmp_path / "channels.yml"
    path.write_text('servers:\n  "9":\n    model: gpt-5\n    tools: false\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="servers '9': field 'model': no model 'gpt-5' is offered"):
        catalog(model_server.base_url, CHANNELS_FILE=str(path))
    path.write_text('servers:\n  "9":\n    tools: "no"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="servers '9': field 'tools': expected true or false"):
        catalog(model_server.base_url, CHANNELS_FILE=str(path))


async def test_what_a_channel_answers_unasked_comes_from_it_its_server_or_the_file(
    redis_store: HistoryStore, token_counter: MistralTokenCounter, tmp_path: Path
) -> None:
    path = tmp_path / "channels.yml"
    path.write_text('channels:\n  "222":\n    respond: questions\n', encoding="utf-8")
    first, second = (
        Personas(
            redis_store.client,
            redis_store.settings.key_prefix,
            "You are a test bot.",
            size=token_counter.count,
            max_tokens=200,
            file=load_places(Env({"CHANNELS_FILE": str(path)})),
        )
        for _ in range(2)
    )  # two processes
    assert await first.respond_mode((CHANNEL, SERVER)) == ("", "")  # mentions only
    assert await first.respond_mode((FILED_CHANNEL, SERVER)) == (
        "questions",
        "the operator's settings for this channel",
    )
    await first.set_respond(SERVER, "all")
    assert await first.respond_mode((CHANNEL, SERVER)) == ("all", "this server")
    await first.set_respond(FILED_CHANNEL, "mentions")
    assert await first.respond_mode((FILED_CHANNEL, SERVER)) == ("mentions", "this channel")
    await asyncio.sleep(RESPOND_CACHE_SECONDS)  # the other process sees it within this
    assert await second.respond_mode((FILED_CHANNEL, SERVER)) == ("mentions", "this channel")
    await first.forget_server(SERVER, (FILED_CHANNEL,))
    assert await first.respond_mode((CHANNEL, SERVER)) == ("", "")


def test_a_respond_mode_that_is_not_one_stops_start_up(tmp_path: Path, model_server: FakeModelServer) -> None:
    path = tmp_path / "channels.yml"
    path.write_text('channels:\n  "9":\n    respond: always\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="channels '9': field 'respond': expected one of mentions, questions, all"):
        catalog(model_server.base_url, CHANNELS_FILE=str(path))


async def test_a_read_racing_this_processs_change_doesnt_keep_the_old_mode(
    redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    """A message read its channel's mode while an admin's /respond was being written in the same process: the old
    mode it read is not cached, so the next message there sees the new one at once (a forum post right after
    `/respond questions` in it was ignored for 2 s)."""
    personas = Personas(
        redis_store.client, redis_store.settings.key_prefix, "You are a test bot.", size=token_counter.count,
        max_tokens=200,
    )  # fmt: skip
    for _ in range(20):
        await personas.set_respond(CHANNEL, None)  # mentions, nothing cached
        reads = [asyncio.create_task(personas.respond_mode((CHANNEL, SERVER))) for _ in range(5)]
        await asyncio.sleep(0)  # the reads are under way, in Redis's queue before the change
        await personas.set_respond(CHANNEL, "questions")
        await asyncio.gather(*reads)
        assert await personas.respond_mode((CHANNEL, SERVER)) == ("questions", "this channel")
