"""The embedding routes of the fake model server, with real vectors: WordLlama's shipped model computes them, so the
fake stands in for the remote server only, and the meaning is real.

* ``POST /v1/embeddings`` (and ``/embeddings``): OpenAI's shape, as TEI, vLLM and Ollama serve it:
  ``{"model"?, "input": str | [str], "encoding_format"?}`` → ``{"object": "list", "data": [{"object": "embedding",
  "index", "embedding"}], "model", "usage"}``. The data is sent in reverse order: clients must order by ``index``.
* ``POST /hf-inference/models/{model}/pipeline/feature-extraction``: the Hugging Face Inference API's shape, as
  huggingface_hub's ``feature_extraction`` posts it (to this URL itself when its ``model`` is a URL):
  ``{"inputs": str | [str], "normalize"?, …}`` → a vector ``[D floats]`` for one text, ``[[D floats], …]`` for a list;
  with ``token_level`` each text's token vectors instead (``[[T × D]]``, ragged across texts), as models without a
  sentence-transformers pooling answer.

`EmbeddingBehaviour` (the server's ``embeddings``) makes them misbehave: ``failure`` "http_503" (a loading model,
``Retry-After``), "http_500", "http_401", "html_200" (a proxy's page) or "wrong_count" (one vector fewer than
asked); ``delay_seconds`` before any answer. ``requests`` records each request's path and body.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.knowledge.embeddings import load_wordllama

if TYPE_CHECKING:
    from wordllama import WordLlamaInference

EMBEDDING_FAILURES = frozenset({"http_503", "http_500", "http_401", "html_200", "wrong_count"})
HF_FEATURE_EXTRACTION = "/hf-inference/models/{model:.+}/pipeline/feature-extraction"


@dataclass
class EmbeddingBehaviour:
    failure: str | None = None
    delay_seconds: float = 0.0
    token_level: bool = False  # the feature-extraction route answers token vectors
    requests: list[tuple[str, Any]] = field(default_factory=list)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "failure" and value is not None and value not in EMBEDDING_FAILURES:
            raise ValueError(f"unknown failure {value!r}; expected one of {sorted(EMBEDDING_FAILURES)}")
        super().__setattr__(name, value)


def add_embedding_routes(
    app: web.Application, behaviour: EmbeddingBehaviour, loading_response: Callable[[], web.Response]
) -> None:
    async def openai(request: web.Request) -> web.Response:
        body = await _recorded(request, behaviour)
        texts = body.get("input") if isinstance(body, dict) else None
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(text, str) for text in texts):
            return _invalid("'input' must be a string or a non-empty list of strings", "input")
        if (failed := _failure(behaviour, loading_response)) is not None:
            return failed
        vectors = await _embedded(texts, token_level=False)
        data = [{"object": "embedding", "index": index, "embedding": vector} for index, vector in enumerate(vectors)]
        if behaviour.failure == "wrong_count":
            data = data[1:]
        tokens = sum(len(text.split()) for text in texts)
        return web.json_response(
            {
                "object": "list",
                "data": data[::-1],
                "model": body.get("model", "fake-embedder"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def feature_extraction(request: web.Request) -> web.Response:
        body = await _recorded(request, behaviour)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not texts or not all(isinstance(text, str) for text in texts):
            return web.json_response({"error": "Input should be a valid string or list of strings"}, status=422)
        if (failed := _failure(behaviour, loading_response)) is not None:
            return failed
        vectors = await _embedded(texts, token_level=behaviour.token_level)
        if behaviour.failure == "wrong_count":
            vectors = vectors[1:]
        return web.json_response(vectors[0] if isinstance(inputs, str) and not behaviour.token_level else vectors)

    app.router.add_post("/v1/embeddings", openai)
    app.router.add_post("/embeddings", openai)
    app.router.add_post(HF_FEATURE_EXTRACTION, feature_extraction)


async def _recorded(request: web.Request, behaviour: EmbeddingBehaviour) -> Any:
    try:
        body = await request.json()
    except ValueError:
        body = None
    behaviour.requests.append((request.path, body))
    if behaviour.delay_seconds > 0:
        await asyncio.sleep(behaviour.delay_seconds)
    return body


def _failure(behaviour: EmbeddingBehaviour, loading_response: Callable[[], web.Response]) -> web.Response | None:
    if behaviour.failure == "http_503":
        return loading_response()
    if behaviour.failure == "http_500":
        return web.json_response({"error": "Internal server error"}, status=500)
    if behaviour.failure == "http_401":
        return web.json_response({"error": "Invalid credentials in Authorization header"}, status=401)
    if behaviour.failure == "html_200":
        return web.Response(text="<html><body><h1>Welcome to nginx!</h1></body></html>", content_type="text/html")
    return None


def _invalid(message: str, param: str) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return web.json_response({"error": error}, status=400)


async def _embedded(texts: list[str], *, token_level: bool) -> list[Any]:
    model = await asyncio.to_thread(_model)
    if token_level:
        # Each text alone: no padding, so each keeps its own number of tokens.
        return [await asyncio.to_thread(_token_vectors, model, text) for text in texts]
    matrix = await asyncio.to_thread(model.embed, texts, norm=True)
    return matrix.tolist()  # type: ignore[no-any-return]


def _token_vectors(model: WordLlamaInference, text: str) -> list[list[float]]:
    # WordLlama's embed(pool_embeddings=False) can't hold token vectors (it allocates one row per text), so: by hand.
    [encoding] = model.tokenize([text])
    return model.embedding[encoding.ids].tolist()  # type: ignore[no-any-return]


@functools.cache
def _model() -> WordLlamaInference:
    return load_wordllama()
