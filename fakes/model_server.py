"""Loopback fake of an OpenAI-compatible chat-completions server (TGI / vLLM style).

Streams ``data: {chunk}`` SSE events at a scripted rate and can misbehave in the
ways real servers do (HTTP errors, slow headers, stalls, cut connections, ...).

It also serves embeddings, computed for real by WordLlama: ``POST /v1/embeddings`` and the HF Inference API's
feature-extraction route (fakes.embedding_routes; ``server.embeddings`` makes them fail or slow).

Run standalone for benchmarks::

    python -m fakes.model_server --port 8081 --tokens 300 --rate 50 --first-token-delay 0.2

``GET /debug/requests`` lists the recorded requests' timings as JSON, so a benchmark in
another process can see when each first and last token left the server.

Requests are checked like an OpenAI-compatible server checks them, before any answer:

* ``known_models`` (None: any model): a request naming another model gets the error of the
  server ``api_style`` names: ``"hf"`` (the Hugging Face router, 400 ``{"error": {"message": "The
  requested model 'x' is not supported by any provider you have enabled.", "code":
  "model_not_supported"}}``), ``"openai"`` (404 ``model_not_found``, "The model `x` does not exist
  or you do not have access to it.") or ``"vllm"`` (404 ``NotFoundError``).
* content parts: a message's ``content`` may be a list of ``{"type": "text", "text"}`` and
  ``{"type": "image_url", "image_url": {"url": "data:image/(png|jpeg|gif|webp);base64,…" or an
  http(s) URL}}`` parts (images only in user messages); anything else (a string image_url, bad
  base64, bytes that are no PNG/JPEG/GIF/WebP, another MIME type) is a 400 in ``api_style``'s shape.
* tools and tool calls: ``tools`` must be a non-empty list of ``{"type": "function", "function":
  {"name" (letters, digits, _ and -, at most 64), "description"?, "parameters"?}}``; an assistant
  message's ``tool_calls`` need ``id``, ``type: "function"``, ``function.name`` and
  ``function.arguments`` (a string); a ``tool`` message needs a
  ``tool_call_id`` answering a call of the assistant message right before its run of tool messages,
  and string ``content``; every call must be answered before the next other message. With
  ``mistral_tool_ids`` call ids must also be 9 letters or digits (Mistral's chat template).

Which model answered: ``answers_by_model`` maps a model name to its answer text, and
``prefix_model`` starts every answer with ``[<model>] ``.

Tool calls: a `Script` with ``tool_calls`` streams its text (if any), then each call as OpenAI
does (a delta with the call's index, id, type and name, then its arguments in pieces of
``argument_piece_chars``), and ends with ``finish_reason: "tool_calls"``. `ToolAgent` is a ready-made
``responder`` that calls tools for a user message and answers from the tool results.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import random
import re
import socket
import string
import struct
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from aiohttp import web
from uvloop import run as run_loop

from bot.loop import freeze_startup_heap
from fakes.embedding_routes import EmbeddingBehaviour, add_embedding_routes
from fakes.model_requests import (
    ApiStyle,
    ErrorStyle,
    _content_error,
    _context_error_body,
    _image_urls,
    _invalid_request_response,
    _tool_messages_error,
    _tools_error,
    _unknown_model_response,
)

__all__ = ["FAILURES", "FakeModelServer", "RecordedRequest", "Script", "ToolAgent", "ToolCallScript", "tokenize"]

DEFAULT_MODEL = "mistralai/Mistral-7B-Instruct-v0.3"

FAILURES = frozenset(
    {
        "http_401",
        "http_429",
        "http_503",
        "http_400_context",
        "http_500",
        "html_200",
        "headers_timeout",
        "stall",
        "cut",
        "reset",
        "drop",
        "eof_no_done",
        "sse_error",
        "length",
    }
)

# How a thinking model's thought is streamed: in a delta field of its own (vLLM and DeepSeek's
# `reasoning_content`, OpenRouter's `reasoning`), or inline before the answer between tags
# (`<think>…</think>`, Magistral's `[THINK]…[/THINK]`).
ThoughtStyle = Literal["reasoning_content", "reasoning", "think_tags", "mistral_tags"]
# Where a stream's token counts go: "asked" as OpenAI and vLLM (a last chunk of its own when the request asks with
# stream_options.include_usage, else on the finish chunk as TGI); "finish_chunk" always on the finish chunk (a server
# that ignores stream_options); "none": never (a server that reports no usage).
UsageStyle = Literal["asked", "finish_chunk", "none"]
THOUGHT_TAGS = {"think_tags": ("<think>", "</think>"), "mistral_tags": ("[THINK]", "[/THINK]")}

_TOKEN_RE = re.compile(r"\s*\S+(?:\s+$)?")
_ID_ALPHABET = string.ascii_letters + string.digits


def tokenize(text: str) -> list[str]:
    """Split text into word tokens keeping whitespace, so ``"".join(tokens) == text``."""
    tokens = _TOKEN_RE.findall(text)
    return tokens or ([text] if text else [])


def tool_call_id() -> str:
    """A fresh tool call id: 9 letters and digits, the only shape Mistral's chat template accepts."""
    return "".join(random.choices(_ID_ALPHABET, k=9))


@dataclass(frozen=True)
class ToolCallScript:
    """One tool call the model "writes": `arguments` is the raw JSON text (it may be invalid on purpose);
    `id` None: a fresh `tool_call_id()` on every request."""

    name: str
    arguments: str
    id: str | None = None


@dataclass
class Script:
    """What the server does for one chat-completion request."""

    text: str | None = None
    tokens: int = 300
    rate: float = 0.0
    first_token_delay: float = 0.0
    failure: str | None = None
    fail_after: int = 0
    retry_after: float = 1.0
    headers_delay: float = 0.0
    error_style: ErrorStyle = "tgi"  # body shape for http_400_context
    error_type: str = "overloaded"  # TGI error_type for sse_error
    honor_max_tokens: bool = True  # cut at request max_tokens with finish_reason "length"
    keeps_connection_open: bool = False  # ignore a client's "Connection: close" (some proxies do)
    # Send every stream's tokens on one clock of decode steps (1/rate apart), as TGI and vLLM
    # do: one forward pass yields the next token of every answer in the batch at once.
    decode_steps: bool = False
    # Tool calls sent after the text (no text if `text` is None), each as OpenAI streams one: its
    # header (index, id, type, name), then its arguments `argument_piece_chars` characters a chunk.
    # Argument pieces count as tokens (pacing, fail_after, max_tokens); the stream ends with
    # finish_reason "tool_calls".
    tool_calls: tuple[ToolCallScript, ...] = ()
    argument_piece_chars: int = 6
    # A thought streamed before the answer (`thought_tokens` words "t0 t1 …" when `thought` is None), as
    # `thought_style` says, paced like tokens and counted as tokens (fail_after, max_tokens). Inline tags
    # are sent split in two pieces each, as tokenizers often split them.
    thought: str | None = None
    thought_tokens: int = 0
    thought_style: ThoughtStyle = "reasoning_content"
    usage_style: UsageStyle = "asked"

    def __post_init__(self) -> None:
        if self.failure is not None and self.failure not in FAILURES:
            raise ValueError(f"unknown failure {self.failure!r}; expected one of {sorted(FAILURES)}")
        if self.argument_piece_chars < 1:
            raise ValueError("argument_piece_chars must be at least 1")
        self.tool_calls = tuple(self.tool_calls)

    def token_list(self) -> list[str]:
        """Tokens of the whole stream's content: the thought's (see `thought_list`), then the answer's."""
        return self.thought_list() + self.answer_list()

    def thought_list(self) -> list[str]:
        """The thought's tokens, inline tags (split in two) and the blank line after them included."""
        words = tokenize(self.thought) if self.thought is not None else [f" t{i}" for i in range(self.thought_tokens)]
        if not words or self.thought_style not in THOUGHT_TAGS:
            return words
        opening, closing = THOUGHT_TAGS[self.thought_style]
        return [opening[:3], opening[3:], *words, closing[:4], closing[4:], "\n\n"]

    @property
    def reasoning_tokens(self) -> int:
        """How many of the first tokens go out in a reasoning field of the delta (not in its content)."""
        return 0 if self.thought_style in THOUGHT_TAGS else len(self.thought_list())

    def answer_list(self) -> list[str]:
        """Tokens of the answer: ``text`` split into words, else ``w0 w1 ...`` (nothing for tool calls)."""
        if self.text is not None:
            return tokenize(self.text)
        if self.tool_calls:
            return []
        return [f"w{i}" if i == 0 else f" w{i}" for i in range(self.tokens)]

    @property
    def answer(self) -> str:
        """The full answer text (before any truncation), without the thought."""
        return "".join(self.answer_list())


@dataclass
class RecordedRequest:
    """One chat-completion request as seen by the server, with timings (``time.time()``)."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float
    first_token_at: float | None = None
    last_token_at: float | None = None
    finished_at: float | None = None  # response fully sent; None if never completed
    status: int | None = None
    tokens_sent: int = 0
    client_port: int | None = None  # the same port on two requests: a kept-alive connection
    outcome: str = "pending"  # completed | http_error | stalled | cut | reset | dropped | disconnected | server_stopped
    usage: dict[str, int] | None = None  # the token counts it reported, if it did

    @property
    def model(self) -> str | None:
        """The model the request named (None if it named none)."""
        model = self.body.get("model")
        return model if isinstance(model, str) else None

    def _last_user_message(self) -> dict[str, Any] | None:
        messages = self.body.get("messages")
        if not isinstance(messages, list):
            return None
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return message
        return None

    def last_user_content(self) -> str | None:
        """The text of the request's last user message (how a benchmark tells requests apart):
        its content, or the text parts of a list of content parts joined with newlines."""
        message = self._last_user_message()
        content = message.get("content") if message else None
        return _message_text(message) if message and isinstance(content, (str, list)) else None

    def prompt_chars(self) -> int:
        """The length of the text of every message of the request (what a benchmark tells a prompt's size by)."""
        messages = self.body.get("messages")
        return sum(
            len(_message_text(message))
            for message in (messages if isinstance(messages, list) else [])
            if isinstance(message, dict) and isinstance(message.get("content"), (str, list))
        )

    @property
    def tools(self) -> list[str]:
        """The names of the tools the request offered, in order."""
        return _tool_names(self.body)

    @property
    def tool_results(self) -> list[tuple[str, str]]:
        """(tool_call_id, content) of the tool messages after the last user message, in order."""
        return [
            (str(m.get("tool_call_id")), str(m.get("content")))
            for m in _current_turn(self.body.get("messages"))
            if m.get("role") == "tool"
        ]

    @property
    def content_parts(self) -> list[dict[str, Any]] | None:
        """The last user message's content when it is a list of OpenAI content parts (``text`` and
        ``image_url`` parts), else None (a plain string content)."""
        message = self._last_user_message()
        content = message.get("content") if message else None
        return content if isinstance(content, list) else None

    @property
    def image_urls(self) -> list[str]:
        """The ``image_url`` URLs of the last user message, in order (data: URLs or http ones)."""
        return _image_urls(self.content_parts or [])

    @property
    def all_image_urls(self) -> list[str]:
        """The ``image_url`` URLs of every message of the request, oldest first."""
        messages = self.body.get("messages")
        urls: list[str] = []
        for message in messages if isinstance(messages, list) else []:
            content = message.get("content") if isinstance(message, dict) else None
            urls.extend(_image_urls(content if isinstance(content, list) else []))
        return urls

    def timing(self) -> dict[str, Any]:
        """What ``GET /debug/requests`` shows for this request (times are ``time.time()``)."""
        return {
            "path": self.path,
            "received_at": self.received_at,
            "first_token_at": self.first_token_at,
            "last_token_at": self.last_token_at,
            "finished_at": self.finished_at,
            "status": self.status,
            "tokens_sent": self.tokens_sent,
            "outcome": self.outcome,
            "last_user_message": self.last_user_content(),
            "prompt_chars": self.prompt_chars(),
        }


@dataclass
class _Call:
    """A tool call as sent: its arguments in pieces (after any max_tokens truncation)."""

    index: int
    id: str
    name: str
    pieces: list[str]

    @property
    def arguments(self) -> str:
        return "".join(self.pieces)


@dataclass
class _Plan:
    tokens: list[str]
    finish_reason: str | None  # None: end without a finish chunk
    calls: list[_Call] = field(default_factory=list)
    reasoning_key: str = ""  # the delta field the first `reasoning_count` tokens go out in ("": content)
    reasoning_count: int = 0

    @property
    def size(self) -> int:
        """Tokens in the answer: text tokens and argument pieces."""
        return len(self.tokens) + sum(len(call.pieces) for call in self.calls)


class FakeModelServer:
    """aiohttp server on 127.0.0.1 speaking the chat-completions (streaming) protocol."""

    def __init__(
        self,
        default: Script | None = None,
        *,
        model: str = DEFAULT_MODEL,
        host: str = "127.0.0.1",
        port: int = 0,
        known_models: Collection[str] | None = None,
        api_style: ApiStyle = "hf",
        answers_by_model: dict[str, str] | None = None,
        prefix_model: bool = False,
        mistral_tool_ids: bool = False,
    ) -> None:
        """`known_models`: the models the server serves (None: any); `api_style`: whose errors it
        sends for an unknown model or malformed content parts; `answers_by_model`: the answer text
        per model (over `default`'s; a `responder`'s script wins); `prefix_model`: every answer
        starts with ``[<model>] ``; `mistral_tool_ids`: refuse tool call ids that are not 9 letters
        or digits, as Mistral's chat template does. All may be changed while the server runs."""
        self.default: Script = default or Script()
        self.model = model
        self.host = host
        self.port = port
        self.known_models: set[str] | None = set(known_models) if known_models is not None else None
        self.api_style: ApiStyle = api_style
        self.answers_by_model: dict[str, str] = dict(answers_by_model or {})
        self.prefix_model = prefix_model
        self.mistral_tool_ids = mistral_tool_ids
        self.responder: Callable[[dict[str, Any]], Script | None] | None = None
        self.requests: list[RecordedRequest] = []
        self.fail_503_times: int = 0
        self.loading_estimate: float = 1.0  # Retry-After / estimated_time for fail_503_times
        self.embeddings = EmbeddingBehaviour()  # the embedding routes' failure and delay (fakes.embedding_routes)
        self._runner: web.AppRunner | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._stopping = False

    # lifecycle ----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no ``/v1``)."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> str:
        """Bind and serve; return the base URL."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/debug/requests", self._debug_requests)
        add_embedding_routes(app, self.embeddings, lambda: _loading_response(self.loading_estimate))
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self._stopping = False
        self.port = int(runner.addresses[0][1])
        return self.base_url

    async def stop(self) -> None:
        """Cancel in-flight responses (stalled ones included) and close the server."""
        if self._runner is None:
            return
        self._stopping = True
        tasks = [t for t in self._handlers if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        await self._runner.cleanup()
        self._runner = None

    def open_connection_ports(self) -> set[int]:
        """The client ports of every connection open to the server now, asked on or not."""
        assert self._runner is not None and self._runner.server is not None
        ports = set()
        for handler in self._runner.server.connections:
            peer = handler.transport.get_extra_info("peername") if handler.transport else None
            if peer:
                ports.add(peer[1])
        return ports

    def close_connections(self) -> None:
        """Hang up on every open connection, as a server's idle timeout would."""
        assert self._runner is not None and self._runner.server is not None
        for handler in self._runner.server.connections:
            if handler.transport is not None:
                handler.transport.close()

    async def __aenter__(self) -> FakeModelServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # routes -------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _debug_requests(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": [rec.timing() for rec in self.requests]})

    async def _models(self, request: web.Request) -> web.Response:
        names = sorted(self.known_models) if self.known_models is not None else [self.model]
        created = int(time.time())
        entries = [{"id": name, "object": "model", "created": created, "owned_by": "fake"} for name in names]
        return web.json_response({"object": "list", "data": entries})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
            body={},
            received_at=time.time(),
        )
        peer = request.transport.get_extra_info("peername") if request.transport else None
        rec.client_port = peer[1] if peer else None
        self.requests.append(rec)
        try:
            return await self._serve_chat(request, rec)
        except asyncio.CancelledError:
            rec.outcome = "server_stopped" if self._stopping else "disconnected"
            raise
        except ConnectionError:
            # Client went away while we were writing: end quietly.
            rec.outcome = "disconnected"
            return web.Response(status=499)
        finally:
            self._handlers.discard(task)

    # chat-completion logic ----------------------------------------------------

    async def _serve_chat(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("body is not a JSON object")
        except ValueError as exc:
            rec.status, rec.outcome, rec.finished_at = 400, "http_error", time.time()
            return web.json_response({"error": f"Invalid JSON body: {exc}", "error_type": "validation"}, status=400)
        rec.body = body
        model = str(body.get("model") or self.model)

        if self.known_models is not None and model not in self.known_models:
            return self._finish_error(rec, _unknown_model_response(self.api_style, model))
        invalid = (
            _content_error(body.get("messages"))
            or _tools_error(body.get("tools"))
            or _tool_messages_error(body.get("messages"), mistral_ids=self.mistral_tool_ids)
        )
        if invalid is not None:
            return self._finish_error(rec, _invalid_request_response(self.api_style, *invalid))

        if self.fail_503_times > 0:
            self.fail_503_times -= 1
            return self._finish_error(rec, _loading_response(self.loading_estimate))

        script = (self.responder(body) if self.responder else None) or self._script_for(model)
        if self.prefix_model and (script.text is not None or not script.tool_calls):
            script = replace(script, text=f"[{model}] {script.answer}")

        if script.failure == "headers_timeout" and script.headers_delay <= 0:
            await asyncio.Future()  # never answer; ends on disconnect or stop()
        if script.headers_delay > 0:
            await asyncio.sleep(script.headers_delay)

        if script.failure == "drop":
            # What a server closing an idle kept-alive connection looks like to the client.
            _kill_connection(request, reset=False)
            rec.outcome = "dropped"
            return web.Response(status=499)

        error = _http_failure(script)
        if error is not None:
            return self._finish_error(rec, error)

        plan = _plan(script, body)
        if body.get("stream"):
            return await self._stream(request, rec, script, plan)
        return await self._complete(request, rec, script, plan)

    def _script_for(self, model: str) -> Script:
        answer = self.answers_by_model.get(model)
        return self.default if answer is None else replace(self.default, text=answer)

    def _finish_error(self, rec: RecordedRequest, resp: web.Response) -> web.Response:
        rec.status, rec.outcome, rec.finished_at = resp.status, "http_error", time.time()
        return resp

    async def _complete(
        self, request: web.Request, rec: RecordedRequest, script: Script, plan: _Plan
    ) -> web.StreamResponse:
        """Non-streaming answer: wait as long as generation would take, then one JSON body."""
        model = str(rec.body.get("model") or self.model)
        if script.failure == "sse_error":
            # TGI maps "overloaded" to 429 outside of streaming.
            msg = "Model is overloaded"
            return self._finish_error(
                rec, web.json_response({"error": msg, "error_type": script.error_type}, status=429)
            )
        n = plan.size
        await asyncio.sleep(script.first_token_delay + (n / script.rate if script.rate > 0 and n else 0.0))
        if script.failure == "stall":
            await asyncio.Future()
        if script.failure in ("cut", "reset"):
            _kill_connection(request, reset=script.failure == "reset")
            rec.outcome = script.failure
            return web.Response(status=499)
        now = time.time()
        rec.first_token_at = rec.last_token_at = now if n else None
        rec.tokens_sent = n
        message: dict[str, Any] = {"role": "assistant", "content": "".join(plan.tokens)}
        if plan.calls:
            message["content"] = message["content"] or None
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in plan.calls
            ]
        payload = {
            "id": _completion_id(),
            "object": "chat.completion",
            "created": int(now),
            "model": model,
            "system_fingerprint": "fake-model-server",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": plan.finish_reason or "stop",
                }
            ],
            "usage": _usage(rec.body, n),
        }
        rec.usage = payload["usage"]
        rec.status, rec.outcome, rec.finished_at = 200, "completed", time.time()
        return web.json_response(payload)

    async def _stream(
        self, request: web.Request, rec: RecordedRequest, script: Script, plan: _Plan
    ) -> web.StreamResponse:
        """SSE answer, one write per token."""
        resp = web.StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        rec.status = 200
        if script.keeps_connection_open:
            resp._keep_alive = True  # aiohttp has no public way to refuse a client's close
        await resp.prepare(request)  # StreamResponse flushes headers immediately
        if script.first_token_delay > 0:
            await asyncio.sleep(script.first_token_delay)

        cid, created = _completion_id(), int(time.time())
        model = str(rec.body.get("model") or self.model)

        def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            obj = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fake-model-server",
                "choices": [choice],
                **extra,
            }
            return _sse(obj)

        # Every text event is the same envelope around its token: encoded once, so that a
        # benchmark's hundreds of streams cost the server little of the CPU the bot also needs.
        text_event = _TextEvents(chunk({"role": "assistant", "content": _MARK}, None))

        limit = script.fail_after if script.failure in ("stall", "cut", "reset", "eof_no_done", "sse_error") else None
        events: Iterator[bytes] = _events(plan, text_event, chunk)
        if limit is not None:
            events = itertools.islice(events, limit)
        start = time.monotonic()
        if script.decode_steps and script.rate > 0:
            start = math.ceil(start * script.rate) / script.rate
        for i, event in enumerate(events):
            if script.rate > 0 and (i > 0 or script.decode_steps):
                delay = start + i / script.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await resp.write(event)
            rec.last_token_at = time.time()
            if rec.first_token_at is None:
                rec.first_token_at = rec.last_token_at
            rec.tokens_sent = i + 1

        if script.failure == "stall":
            rec.outcome = "stalled"
            await asyncio.Future()  # hold the connection open; ends on disconnect or stop()
        if script.failure in ("cut", "reset"):
            _kill_connection(request, reset=script.failure == "reset")
            rec.outcome = script.failure
            return resp
        if script.failure == "sse_error":
            msg = "Model is overloaded" if script.error_type == "overloaded" else "Request failed during generation"
            await resp.write(_sse({"error": msg, "error_type": script.error_type}))
        elif script.failure != "eof_no_done":
            assert plan.finish_reason is not None
            opts = rec.body.get("stream_options") or {}
            asked = isinstance(opts, dict) and opts.get("include_usage") and script.usage_style == "asked"
            if script.usage_style == "none":
                await resp.write(chunk({"role": "assistant", "content": ""}, plan.finish_reason))
            elif asked:
                # OpenAI/vLLM: finish chunk, then a usage chunk with empty choices.
                await resp.write(chunk({"role": "assistant", "content": ""}, plan.finish_reason))
                usage_chunk = json.loads(chunk({}, None)[len(b"data: ") :])
                usage_chunk["choices"] = []
                usage_chunk["usage"] = rec.usage = _usage(rec.body, rec.tokens_sent)
                await resp.write(_sse(usage_chunk))
            else:
                # TGI: usage rides on the finish chunk.
                rec.usage = _usage(rec.body, rec.tokens_sent)
                await resp.write(chunk({"role": "assistant", "content": ""}, plan.finish_reason, usage=rec.usage))
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        rec.finished_at = time.time()
        rec.outcome = "completed"
        return resp


class ToolAgent:
    """A `responder` that calls tools, then answers from their results::

        server.responder = ToolAgent({"weather": [ToolCallScript("get_weather", '{"city": "Paris"}')]})

    For a request offering ``tools`` whose messages end with a user message: the calls for its text
    (`calls` maps a substring of the text to calls, the first key found wins; or a callable gets the
    text), as a script with `before_calls` as its text; no calls: None (the server's default answer).
    Messages ending with tool messages: the same calls again, with new ids, until this turn has
    `rounds` assistant messages with tool calls; then the text `answer(results)`, results being the
    contents of this turn's tool messages in order (default: ``"Using " + " | ".join(results)``).
    A request without tools, or ending otherwise: None. Rate and the like come from `base`."""

    def __init__(
        self,
        calls: Callable[[str], Sequence[ToolCallScript]] | Mapping[str, Sequence[ToolCallScript]],
        *,
        answer: Callable[[list[str]], str] | None = None,
        before_calls: str | None = None,
        rounds: int = 1,
        base: Script | None = None,
    ) -> None:
        self.calls = calls
        self.answer = answer or (lambda results: "Using " + " | ".join(results))
        self.before_calls = before_calls
        self.rounds = rounds
        self.base = base or Script(rate=0)

    def calls_for(self, text: str) -> tuple[ToolCallScript, ...]:
        """The calls the agent makes for a user message's text."""
        if isinstance(self.calls, Mapping):
            return next((tuple(calls) for key, calls in self.calls.items() if key in text), ())
        return tuple(self.calls(text))

    def __call__(self, body: dict[str, Any]) -> Script | None:
        messages = body.get("messages")
        if not body.get("tools") or not isinstance(messages, list) or not messages:
            return None
        last = messages[-1] if isinstance(messages[-1], dict) else {}
        if last.get("role") == "user":
            calls = self.calls_for(_message_text(last))
            return replace(self.base, text=self.before_calls, tool_calls=calls) if calls else None
        if last.get("role") != "tool":
            return None
        turn = _current_turn(messages)
        rounds = sum(1 for m in turn if m.get("role") == "assistant" and m.get("tool_calls"))
        if rounds < self.rounds:
            user = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), None)
            calls = self.calls_for(_message_text(user) if user else "")
            if calls:
                again = tuple(replace(call, id=None) for call in calls)
                return replace(self.base, text=self.before_calls, tool_calls=again)
        results = [str(m.get("content")) for m in turn if m.get("role") == "tool"]
        return replace(self.base, text=self.answer(results), tool_calls=())


# helpers ------------------------------------------------------------------------


def _message_text(message: dict[str, Any]) -> str:
    """A message's text: its string content, or its text parts joined with newlines."""
    content = message.get("content")
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content if isinstance(content, str) else ""


def _current_turn(messages: Any) -> list[dict[str, Any]]:
    """The messages after the last user message (all of them if there is none)."""
    turn: list[dict[str, Any]] = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "user":
            turn = []
        else:
            turn.append(message)
    return turn


def _tool_names(body: dict[str, Any]) -> list[str]:
    tools = body.get("tools")
    return [
        str(tool["function"].get("name"))
        for tool in (tools if isinstance(tools, list) else [])
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
    ]


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


_MARK = "\x00token\x00"


class _TextEvents:
    """`chunk(delta with content=token)` for any token, from one encoded template: the same bytes."""

    def __init__(self, template: bytes) -> None:
        mark = json.dumps(_MARK).encode()
        self._head, self._tail = template.split(mark)

    def __call__(self, token: str) -> bytes:
        return self._head + json.dumps(token).encode() + self._tail


def _events(plan: _Plan, text_event: _TextEvents, chunk: Callable[..., bytes]) -> Iterator[bytes]:
    """One write per token: the text tokens, then each call's argument pieces (its first piece
    preceded by the call's header event, as OpenAI opens a call: index, id, type, name)."""
    reasoning_event = None
    if plan.reasoning_count:
        reasoning_event = _TextEvents(chunk({"role": "assistant", "content": None, plan.reasoning_key: _MARK}, None))
    for i, token in enumerate(plan.tokens):
        yield reasoning_event(token) if reasoning_event is not None and i < plan.reasoning_count else text_event(token)
    for call in plan.calls:
        for j, piece in enumerate(call.pieces):
            head = b""
            if j == 0:
                function = {"name": call.name, "arguments": ""}
                opened = {"index": call.index, "id": call.id, "type": "function", "function": function}
                head = chunk({"role": "assistant", "content": None, "tool_calls": [opened]}, None)
            delta = {"tool_calls": [{"index": call.index, "function": {"arguments": piece}}]}
            yield head + chunk(delta, None)


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def _retry_after(seconds: float) -> str:
    """Retry-After is integer seconds on the wire."""
    return str(max(0, math.ceil(seconds)))


def _loading_response(estimate: float) -> web.Response:
    return web.json_response(
        {"error": "Model is currently loading", "estimated_time": estimate},
        status=503,
        headers={"Retry-After": _retry_after(estimate)},
    )


def _http_failure(script: Script) -> web.Response | None:
    """The error response for the http_* failure modes, else None."""
    if script.failure == "http_401":
        return web.json_response({"error": "Invalid credentials in Authorization header"}, status=401)
    if script.failure == "http_429":
        return web.json_response(
            {"error": "Rate limit reached. Please retry later."},
            status=429,
            headers={"Retry-After": _retry_after(script.retry_after)},
        )
    if script.failure == "http_503":
        return _loading_response(script.retry_after)
    if script.failure == "http_400_context":
        return web.json_response(_context_error_body(script.error_style), status=400)
    if script.failure == "http_500":
        return web.json_response({"error": "Internal server error"}, status=500)
    if script.failure == "html_200":  # a proxy's page in front of a model server that is down
        return web.Response(text="<html><body><h1>Welcome to nginx!</h1></body></html>", content_type="text/html")
    return None


def _plan(script: Script, body: dict[str, Any]) -> _Plan:
    """Tokens and tool calls to send and the finish reason, after length / max_tokens truncation."""
    full = _Plan(script.token_list(), "tool_calls" if script.tool_calls else "stop", _planned_calls(script))
    full.reasoning_key, full.reasoning_count = script.thought_style, script.reasoning_tokens
    if script.failure == "length":
        return _truncated(full, script.fail_after) if script.fail_after > 0 else replace(full, finish_reason="length")
    max_tokens = body.get("max_tokens")
    if script.honor_max_tokens and isinstance(max_tokens, int) and 0 <= max_tokens < full.size:
        return _truncated(full, max_tokens)
    return full


def _planned_calls(script: Script) -> list[_Call]:
    step = script.argument_piece_chars
    calls = []
    for index, call in enumerate(script.tool_calls):
        # An empty arguments string still goes out as one (empty) piece, so that every call takes a token.
        pieces = [call.arguments[i : i + step] for i in range(0, len(call.arguments), step)] or [""]
        calls.append(_Call(index, call.id or tool_call_id(), call.name, pieces))
    return calls


def _truncated(plan: _Plan, n: int) -> _Plan:
    """The first `n` tokens of the answer (text, then argument pieces), ending with finish_reason "length"."""
    tokens = plan.tokens[:n]
    left = n - len(tokens)
    calls = []
    for call in plan.calls:
        if left <= 0:
            break
        calls.append(replace(call, pieces=call.pieces[:left]))
        left -= len(calls[-1].pieces)
    return _Plan(tokens, "length", calls, plan.reasoning_key, plan.reasoning_count)


def _usage(body: dict[str, Any], completion_tokens: int) -> dict[str, int]:
    prompt = 0
    for msg in body.get("messages") or []:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, str):
            prompt += len(content.split()) + 4
        elif isinstance(content, list):  # content parts: words of the text, a flat 85 per image
            texts = [str(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
            prompt += sum(len(t.split()) for t in texts) + 85 * len(_image_urls(content)) + 4
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def _kill_connection(request: web.Request, *, reset: bool) -> None:
    """Drop the TCP connection mid-body: FIN after flushing (cut) or RST (reset)."""
    transport = request.transport
    if transport is None:
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


# CLI ----------------------------------------------------------------------------


async def _serve_forever(server: FakeModelServer) -> None:
    await server.start()
    freeze_startup_heap()  # like the bot: collections during a benchmark's burst would delay its requests' stamps
    print(f"fake model server on {server.base_url} (POST /v1/chat/completions)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point for ``python -m fakes.model_server``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--text", default=None)
    p.add_argument("--tokens", type=int, default=300)
    p.add_argument("--rate", type=float, default=0.0, help="tokens/s, 0 = unthrottled")
    p.add_argument("--first-token-delay", type=float, default=0.0)
    p.add_argument("--headers-delay", type=float, default=0.0)
    p.add_argument("--failure", choices=sorted(FAILURES), default=None)
    p.add_argument("--fail-after", type=int, default=0)
    p.add_argument("--retry-after", type=float, default=1.0)
    p.add_argument("--known-models", default=None, help="comma-separated models served (default: any)")
    p.add_argument("--api-style", choices=["hf", "openai", "vllm"], default="hf")
    p.add_argument("--prefix-model", action="store_true", help="start every answer with [<model>]")
    p.add_argument(
        "--decode-steps",
        action="store_true",
        help="send every answer's tokens together, one per decode step, as TGI and vLLM batch them",
    )
    p.add_argument("--thought-tokens", type=int, default=0, help="a thought of this many tokens before each answer")
    p.add_argument("--thought-style", choices=["reasoning_content", "reasoning", "think_tags", "mistral_tags"])
    a = p.parse_args(argv)
    script = Script(
        thought_tokens=a.thought_tokens,
        thought_style=a.thought_style or "reasoning_content",
        text=a.text,
        tokens=a.tokens,
        rate=a.rate,
        first_token_delay=a.first_token_delay,
        failure=a.failure,
        fail_after=a.fail_after,
        retry_after=a.retry_after,
        headers_delay=a.headers_delay,
        decode_steps=a.decode_steps,
    )
    known = [m.strip() for m in a.known_models.split(",") if m.strip()] if a.known_models else None
    server = FakeModelServer(
        script,
        model=a.model,
        host=a.host,
        port=a.port,
        known_models=known,
        api_style=a.api_style,
        prefix_model=a.prefix_model,
    )
    try:
        # The bot's own event loop (uvloop), so that a benchmark's server shares less of the machine.
        run_loop(_serve_forever(server))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
