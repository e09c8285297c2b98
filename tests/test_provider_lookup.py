"""INFERENCE_PROVIDER: the Hub is asked which id the provider knows the model by, without
freezing the replies already streaming (huggingface_hub asks with a blocking request)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web
from huggingface_hub import constants

from bot.errors import ReplyFailure
from bot.model import InferenceBackend
from bot.prompt import MistralTokenCounter
from bot.render import SurfaceLimits
from bot.store import RedisHistoryStore
from config.env import Env
from config.settings import load_settings
from tests.conftest import make_core, remote_model_settings
from tests.fakes.memory_surface import MemorySurface
from tests.fakes.model_server import FakeModelServer, Script
from tests.test_model_replies import turn

MODEL = "mistralai/Mistral-7B-Instruct-v0.3"
HUB_DELAY = 1.0


class FakeHub:
    """The Hub's model-info endpoint, answering slowly, on a thread and event loop of its own
    (a blocking request from the bot's loop must still get its answer)."""

    def __init__(self) -> None:
        self.lookups: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def __enter__(self) -> FakeHub:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/models/{repo:.+}", self.model_info)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def model_info(self, request: web.Request) -> web.Response:
        self.lookups.append(request.match_info["repo"])
        await asyncio.sleep(HUB_DELAY)
        mapping = {"together": {"status": "live", "providerId": "mistralai/Mistral-7B-Instruct-v0.3", "task": "conversational"}}
        return web.json_response(
            {"id": request.match_info["repo"], "pipeline_tag": "text-generation", "inferenceProviderMapping": mapping}
        )


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub() as hub:
        # What HF_ENDPOINT sets when huggingface_hub is imported.
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{hub.port}")
        yield hub


@pytest.mark.parametrize("provider", ["together", "hf-inference"])
async def test_a_provider_lookup_on_the_hub_does_not_freeze_replies_already_streaming(
    provider: str, fake_hub: FakeHub, model_server: FakeModelServer, redis_store: RedisHistoryStore,
    token_counter: MistralTokenCounter,
) -> None:  # fmt: skip
    streaming = make_core(remote_model_settings(model_server.base_url), redis_store, token_counter)
    provider_settings = load_settings(
        Env({"HF_TOKEN": "hf_test", "INFERENCE_PROVIDER": provider, "MODEL_ID": MODEL, "MODEL_TIMEOUT_SECONDS": "3"})
    ).model
    provider_backend = InferenceBackend(provider_settings)
    model_server.default = Script(tokens=100, rate=50)  # 2 s of words
    shown = MemorySurface(SurfaceLimits(max_length=2000, min_edit_interval=0.05))

    async def ask_through_provider() -> ReplyFailure | None:
        try:
            async for _ in provider_backend.stream([{"role": "user", "content": "hi"}]):
                pass
        except ReplyFailure as failure:
            return failure  # the router itself is out of reach here, or refuses the test token
        return None

    try:
        reply = asyncio.create_task(streaming.answer(turn(), shown))
        await asyncio.sleep(0.3)
        outcomes = await asyncio.gather(ask_through_provider(), ask_through_provider())
        await reply
    finally:
        await provider_backend.aclose()
        await streaming.backend.aclose()

    assert fake_hub.lookups == [MODEL]  # asked once for both replies
    assert all(isinstance(outcome, ReplyFailure) for outcome in outcomes)
    gaps = [later.at - earlier.at for earlier, later in zip(shown.writes, shown.writes[1:])]
    assert max(gaps) < HUB_DELAY / 2  # the streaming reply kept moving during the lookup
    assert shown.messages == ["".join(Script(tokens=100).token_list())]
