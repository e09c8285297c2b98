"""Several models chosen per conversation, and images: a whole turn through the core, with the
real AsyncInferenceClient against the loopback model server and real Redis."""

from __future__ import annotations

import base64
import io
import random
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from PIL import Image

from adapters.shared.files.images import prepare_image
from bot.core import ChatCore, Turn
from bot.reply.surface import SurfaceLimits
from bot.state.store import HistoryStore
from bot.turn.prompt import MistralTokenCounter
from config.env import Env
from config.models import ModelCatalog
from config.settings import HistorySettings, load_settings
from fakes.harness.processes import REDIS_URL
from fakes.memory_surface import MemorySurface
from fakes.model_server import FakeModelServer, Script
from tests.conftest import close_store, make_core, open_store

TEXT_MODEL = "mistralai/Mistral-7B-Instruct-v0.3"
VISION_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"


def catalog(base_url: str) -> ModelCatalog:
    env = Env(
        {
            "INFERENCE_BASE_URL": f"{base_url}/v1",
            "MODELS": VISION_MODEL,
            "VISION_MODELS": VISION_MODEL,
            "MODEL_TIMEOUT_SECONDS": "5",
        }
    )
    return load_settings(env).models


def surface() -> MemorySurface:
    return MemorySurface(SurfaceLimits(max_length=2000, min_edit_interval=0.05))


def photo(width: int = 3000, height: int = 2000) -> str:
    """A data URL of a photo-sized PNG, scaled down as the adapters scale what people attach."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, "PNG")
    return prepare_image("photo.png", buffer.getvalue()).data_url()


def noisy_photo(seed: int) -> str:
    """A photo that compresses like one (noise), scaled down as the adapters do."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (800, 600), random.Random(seed).randbytes(800 * 600 * 3)).save(buffer, "PNG")
    return prepare_image("noise.png", buffer.getvalue()).data_url()


def turn(text: str, thread: str = "models:t1", **fields: object) -> Turn:
    return Turn(thread=thread, author_id="42", author_name="Ada", text=text, **fields)  # type: ignore[arg-type]


def decoded(url: str) -> Image.Image:
    header, data = url.split(",", 1)
    assert header.startswith("data:image/") and header.endswith(";base64")
    return Image.open(io.BytesIO(base64.b64decode(data)))


@pytest.fixture
async def core(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> AsyncIterator[ChatCore]:
    models = catalog(model_server.base_url)
    core = make_core(models.default.settings, redis_store, token_counter, models=models)
    yield core
    await core.aclose()


async def test_a_switched_conversation_asks_the_other_model_with_its_earlier_turns(
    core: ChatCore,
    model_server: FakeModelServer,
    history_settings: HistorySettings,
    token_counter: MistralTokenCounter,
) -> None:
    model_server.default = Script(text="First answer.")
    await core.answer(turn("First question"), surface())
    assert model_server.requests[-1].body["model"] == TEXT_MODEL

    switched = await core.choose_model("models:t1", "qwen2.5-vl-7b-instruct")
    assert switched is not None and switched.id == VISION_MODEL
    await core.answer(turn("Follow-up"), surface())
    body = model_server.requests[-1].body
    assert body["model"] == VISION_MODEL
    assert [m["content"] for m in body["messages"][1:]] == ["First question", "First answer.", "Follow-up"]

    # Another process of the bot (its own core and Redis client) answers with the same choice.
    other_store = open_store(REDIS_URL, history_settings)
    models = catalog(model_server.base_url)
    other = make_core(models.default.settings, other_store, token_counter, models=models)
    try:
        await other.answer(turn("Third"), surface())
    finally:
        await other.aclose()
        await close_store(other_store)
    assert model_server.requests[-1].body["model"] == VISION_MODEL
    assert (await core.model_for("models:other-thread")).id == TEXT_MODEL  # other conversations keep the default


async def test_an_unknown_model_name_switches_nothing(core: ChatCore) -> None:
    assert await core.choose_model("models:t1", "gpt-17") is None
    assert (await core.model_for("models:t1")).id == TEXT_MODEL


async def test_the_first_reply_names_its_model_where_the_surface_has_room(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    class Labelled(MemorySurface):
        def model_line(self, model: str, *, first_reply: bool) -> str:
            return f"-# {model}" if first_reply else ""

    model_server.default = Script(text="Hello.")
    first, second = Labelled(SurfaceLimits(max_length=2000)), Labelled(SurfaceLimits(max_length=2000))
    await core.answer(turn("Hi"), first)
    await core.answer(turn("Again"), second)
    assert first.messages == ["Hello.\n\n-# Mistral-7B-Instruct-v0.3"]
    assert second.messages == ["Hello."]


async def test_an_image_reaches_a_vision_model_and_stays_for_the_next_question(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    await core.choose_model("models:t1", VISION_MODEL)
    model_server.default = Script(text="A red square.")
    await core.answer(turn("What is this?", images=(photo(),)), surface())
    parts = model_server.requests[-1].body["messages"][-1]["content"]
    assert parts[0] == {"type": "text", "text": "What is this?"}
    image = decoded(parts[1]["image_url"]["url"])
    assert image.size == (1568, 1045)
    assert image.getpixel((10, 10))[:3] == pytest.approx((200, 40, 40), abs=3)

    await core.answer(turn("And its colour in French?"), surface())
    messages = model_server.requests[-1].body["messages"]
    assert messages[1]["content"][1]["type"] == "image_url"  # the earlier image, still in the prompt
    assert messages[-1]["content"] == "And its colour in French?"


async def test_a_text_only_model_is_not_sent_the_image_and_the_reply_says_so(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    model_server.default = Script(text="I see text only.")
    shown = surface()
    await core.answer(turn("What is this?", images=(photo(),)), shown)
    assert model_server.requests[-1].body["messages"][-1]["content"] == "What is this?"
    assert shown.messages[-1].endswith(
        "ℹ️ Mistral-7B-Instruct-v0.3 can't see images, so I didn't look at the image. /model Qwen2.5-VL-7B-Instruct can."
    )

    # Switching to a model that sees images: the image sent before the switch is seen now.
    await core.choose_model("models:t1", VISION_MODEL)
    await core.answer(turn("Now?"), surface())
    assert model_server.requests[-1].body["messages"][1]["content"][1]["type"] == "image_url"


async def test_images_past_the_conversations_budget_drop_out_and_the_reply_says_so(
    model_server: FakeModelServer, history_settings: HistorySettings, token_counter: MistralTokenCounter
) -> None:
    photos = [noisy_photo(seed) for seed in range(3)]
    budget = len(photos[0]) * 5 // 2  # room for two
    store = open_store(REDIS_URL, replace(history_settings, image_bytes=budget))
    models = catalog(model_server.base_url)
    core = make_core(models.default.settings, store, token_counter, models=models)
    try:
        await core.choose_model("models:t1", VISION_MODEL)
        model_server.default = Script(text="Noted.")
        for number, url in enumerate(photos):
            await core.answer(turn(f"Photo {number}", images=(url,)), surface())
        shown = surface()
        await core.answer(turn("Compare them all"), shown)
    finally:
        await core.aclose()
        await close_store(store)
    messages = model_server.requests[-1].body["messages"]
    sent = [
        part["image_url"]["url"]
        for message in messages
        if isinstance(message["content"], list)
        for part in message["content"]
        if part["type"] == "image_url"
    ]
    assert sent == photos[1:]  # the oldest is no longer kept
    assert "An earlier image in this conversation is no longer kept" in shown.messages[-1]


async def test_a_model_its_server_does_not_know_is_named_in_the_reason(
    core: ChatCore, model_server: FakeModelServer
) -> None:
    model_server.known_models = {TEXT_MODEL}
    await core.choose_model("models:t1", VISION_MODEL)
    shown = surface()
    result = await core.answer(turn("Hello?"), shown)
    assert result.failure is not None
    assert shown.messages == [
        f"⚠️ {VISION_MODEL} isn't available: its server doesn't know it or doesn't serve it. Pick another with /model."
    ]
