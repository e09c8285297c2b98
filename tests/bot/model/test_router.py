"""HF_TOKEN without INFERENCE_BASE_URL: the Hugging Face router answers, and INFERENCE_PROVIDER
picks its provider by the model's name ("model:provider"), with no Hub lookup before a reply.
The router is stood in for by the loopback model server (HF_ROUTER_URL points at it)."""

from __future__ import annotations

import pytest

from bot.model.backends import InferenceBackend
from config.env import Env
from config.settings import BackendKind, load_settings
from fakes.model_server import FakeModelServer, Script

MODEL = "mistralai/Mistral-7B-Instruct-v0.3"


@pytest.mark.parametrize(("provider", "requested"), [(None, MODEL), ("auto", MODEL), ("together", f"{MODEL}:together")])
async def test_the_router_is_asked_for_the_model_through_the_chosen_provider(
    provider: str | None, requested: str, model_server: FakeModelServer
) -> None:
    values = {"HF_TOKEN": "hf_router_token", "HF_ROUTER_URL": f"{model_server.base_url}/v1"}
    if provider:
        values["INFERENCE_PROVIDER"] = provider
    settings = load_settings(Env(values)).model
    assert settings.backend is BackendKind.HF_ROUTER
    backend = InferenceBackend()
    model_server.default = Script(text="Routed.")
    try:
        pieces = [piece async for piece in backend.stream([{"role": "user", "content": "hi"}], settings)]
    finally:
        await backend.aclose()
    request = model_server.requests[-1]
    assert "".join(pieces) == "Routed."
    assert request.body["model"] == requested
    assert request.headers["Authorization"] == "Bearer hf_router_token"
