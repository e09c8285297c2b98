"""Loopback fake of a reranking server, speaking both shapes the bot's reranker sends (bot.knowledge.rerank):

* Text Embeddings Inference: ``POST /rerank`` with ``{"query", "texts": [...], "raw_scores"?, "truncate"?}`` →
  ``[{"index", "score"}, ...]``, best first (422 without ``query`` or ``texts``; 413 past ``max_batch`` texts, as
  TEI's ``--max-client-batch-size`` of 32 refuses them).
* Cohere's and Jina's: ``POST /v1/rerank``, ``/v2/rerank`` (or ``/rerank``) with ``{"model", "query", "documents":
  [str | {"text"}], "top_n"?}`` → ``{"id", "results": [{"index", "relevance_score"}, ...], "meta"}``, best first,
  ``top_n`` of them (400 without a ``model``).

A text's score is `scorer(query, text)`: by default the share of the query's words the text holds (0…1), which a
test replaces to say which passage a cross-encoder would put first. ``api_key`` set: a request without ``Authorization:
Bearer <api_key>`` gets 401. `failure` makes it misbehave: "http_500", "http_503", "html_200" (a proxy's page),
"missing" (one text unscored), "bad_index" (an index past the texts); ``delay_seconds`` before any answer (a slow or
hung server). ``requests`` records each request's path, body and headers.

Run standalone for benchmarks (bench.retrieval --rerank-url)::

    python -m fakes.rerank_server --port 8082
"""

from __future__ import annotations

import argparse
import asyncio
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from uvloop import run as run_loop

RERANK_FAILURES = frozenset({"http_500", "http_503", "html_200", "missing", "bad_index"})
TEI_MAX_BATCH = 32
_WORD = re.compile(r"\w+")


def shared_words(query: str, text: str) -> float:
    """The share of the query's words that the text holds: a stand-in for a cross-encoder's relevance, 0…1."""
    asked = {word.lower() for word in _WORD.findall(query)}
    held = {word.lower() for word in _WORD.findall(text)}
    return len(asked & held) / len(asked) if asked else 0.0


@dataclass
class RerankRequest:
    path: str
    body: Any
    headers: dict[str, str]


class FakeRerankServer:
    """aiohttp server on 127.0.0.1 answering rerank requests in TEI's shape or Cohere's and Jina's."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        scorer: Callable[[str, str], float] = shared_words,
        api_key: str | None = None,
        max_batch: int = TEI_MAX_BATCH,
    ) -> None:
        self.host = host
        self.port = port
        self.scorer = scorer
        self.api_key = api_key
        self.max_batch = max_batch
        self.failure: str | None = None
        self.delay_seconds = 0.0
        self.requests: list[RerankRequest] = []
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> str:
        """Bind and serve (on the same port again after `stop`); return the base URL."""
        app = web.Application()
        app.router.add_post("/rerank", self._rerank)
        app.router.add_post("/v1/rerank", self._rerank)
        app.router.add_post("/v2/rerank", self._rerank)
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port, reuse_address=True).start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _rerank(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.requests.append(RerankRequest(request.path, body, dict(request.headers)))
        if self.delay_seconds > 0:
            await asyncio.sleep(self.delay_seconds)
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"message": "invalid api token"}, status=401)
        if self.failure == "http_500":
            return web.json_response({"error": "Internal server error", "error_type": "backend"}, status=500)
        if self.failure == "http_503":
            return web.json_response({"error": "Model is overloaded", "error_type": "overloaded"}, status=503)
        if self.failure == "html_200":
            return web.Response(text="<html><body><h1>Welcome to nginx!</h1></body></html>", content_type="text/html")
        if isinstance(body, dict) and "documents" in body:
            return self._cohere(body)
        return self._tei(body)

    def _tei(self, body: Any) -> web.Response:
        texts = body.get("texts") if isinstance(body, dict) else None
        query = body.get("query") if isinstance(body, dict) else None
        if not isinstance(query, str) or not _strings(texts):
            missing = {"error": "missing field `query` or `texts`", "error_type": "validation"}
            return web.json_response(missing, status=422)
        if len(texts) > self.max_batch:
            error = f"batch size {len(texts)} > maximum allowed batch size {self.max_batch}"
            return web.json_response({"error": error, "error_type": "validation"}, status=413)
        ranked = self._ranked(query, texts)
        return web.json_response([{"index": index, "score": score} for index, score in ranked])

    def _cohere(self, body: dict[str, Any]) -> web.Response:
        query, model, documents = body.get("query"), body.get("model"), body.get("documents")
        texts = [item.get("text") if isinstance(item, dict) else item for item in documents or []]
        if not isinstance(model, str) or not model:
            return web.json_response({"message": "invalid request: model must be specified"}, status=400)
        if not isinstance(query, str) or not _strings(texts):
            return web.json_response({"message": "invalid request: query and documents are required"}, status=400)
        top_n = body.get("top_n")
        ranked = self._ranked(query, texts)[: top_n if isinstance(top_n, int) and top_n > 0 else None]
        results = [{"index": index, "relevance_score": score} for index, score in ranked]
        usage = {"billed_units": {"search_units": 1}}
        return web.json_response({"id": str(uuid.uuid4()), "results": results, "meta": usage})

    def _ranked(self, query: str, texts: list[str]) -> list[tuple[int, float]]:
        scored = sorted(
            ((index, float(self.scorer(query, text))) for index, text in enumerate(texts)), key=lambda item: -item[1]
        )
        if self.failure == "missing":
            scored = scored[1:]
        if self.failure == "bad_index":
            scored = [(index + len(texts), score) for index, score in scored]
        return scored


def _strings(texts: Any) -> bool:
    return isinstance(texts, list) and bool(texts) and all(isinstance(text, str) for text in texts)


async def _serve_forever(server: FakeRerankServer) -> None:
    await server.start()
    print(f"fake rerank server on {server.base_url} (POST /rerank, /v1/rerank)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point for ``python -m fakes.rerank_server``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    found = parser.parse_args(argv)
    server = FakeRerankServer(host=found.host, port=found.port)
    server.delay_seconds = found.delay
    try:
        run_loop(_serve_forever(server))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
