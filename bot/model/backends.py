"""Model backends: each streams text pieces for a list of chat messages, and turns its own failures into a
`ReplyFailure` with a human reason, so the renderer and the adapters never see library exceptions."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import aiohttp
import httpx2
import structlog
from httpx_aiohttp.httpx2 import AiohttpTransport
from huggingface_hub import (
    AsyncInferenceClient,
    ChatCompletionInputStreamOptions,
    InferenceTimeoutError,
    set_async_client_factory,
)
from huggingface_hub.errors import HfHubHTTPError, OverloadedError, TextGenerationError, ValidationError

from bot.errors import FailureKind, ReplyFailure
from bot.model.stream_read import StreamRead
from bot.model.thinking import Thought, ThoughtSplitter, delta_thought
from bot.model.tool_calls import ToolCalls
from bot.usage.meter import UsageMeter
from config.settings import BackendKind, ModelSettings

log = structlog.get_logger(__name__)

ChatMessage = dict[str, Any]  # content: text, or OpenAI-style parts (text and image_url)
ToolSpec = dict[str, Any]  # an OpenAI-style {"type": "function", "function": {name, description, parameters}}
# What a model's stream yields: text pieces (its thought apart), and at its end the tools it asks for, if any.
ModelPiece = str | Thought | ToolCalls

# Sent as the bearer key to a server of the operator's own when HF_TOKEN is not set (as OpenAI
# clients do for vLLM): without a key huggingface_hub would send a token saved by `hf auth login`.
NO_KEY = "no-key"
# A refused request whose message matches is told as "too long, use /reset" instead of "refused".
_CONTEXT_ERROR = re.compile(
    r"context|too long|maximum.*tokens|tokens.*must be|input validation|max_new_tokens|prompt is too long",
    re.IGNORECASE,
)
# A refused request whose message matches is told as "this model isn't available, pick another with /model".
_UNKNOWN_MODEL = re.compile(
    r"model.{0,80}(not (supported|found)|does not exist|unknown)|model_not_found|unknown model", re.IGNORECASE
)


class ModelBackend(Protocol):
    def stream(
        self,
        messages: Sequence[ChatMessage],
        model: ModelSettings,
        tools: Sequence[ToolSpec] = (),
        meter: UsageMeter | None = None,
    ) -> AsyncIterator[ModelPiece]:
        """Yield text pieces of `model`'s answer, then the `tools` it calls, if any; raise ReplyFailure. Closing the
        iterator early frees its resources. The call's tokens are added to `meter`, whose allowance, when it has
        one, ends the answer (BUDGET_REACHED) at a word's end."""

    async def aclose(self) -> None: ...


class RoutedBackend:
    """Each model asked through the backend that reaches it: in-process, or over HTTP."""

    def __init__(self, remote: ModelBackend, local: ModelBackend | None = None) -> None:
        self._remote = remote
        self._local = local

    def stream(
        self,
        messages: Sequence[ChatMessage],
        model: ModelSettings,
        tools: Sequence[ToolSpec] = (),
        meter: UsageMeter | None = None,
    ) -> AsyncIterator[ModelPiece]:
        backend = self._local if model.backend is BackendKind.LOCAL and self._local else self._remote
        return backend.stream(messages, model, tools, meter)

    async def aclose(self) -> None:
        await self._remote.aclose()
        if self._local is not None:
            await self._local.aclose()


class SharedTransport(httpx2.AsyncBaseTransport):
    """One aiohttp connection pool lent to the short-lived httpx2 clients (one per reply: closing it ends a stream).
    Otherwise each would open its own connections (a TLS handshake per reply) and read through httpx2's own transport,
    at twice the CPU per token (0.23 against 0.13 s per 1,000 tokens with 50 replies streaming). Closing a client
    leaves the pool open; the backend closes it."""

    def __init__(self) -> None:
        connector = aiohttp.TCPConnector(limit=0)  # no cap: every reply streaming at once needs a connection of its own
        self._inner = AiohttpTransport(client=aiohttp.ClientSession(connector=connector, trust_env=True))

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None  # the pool outlives each client

    async def close_pool(self) -> None:
        await self._inner.aclose()


def _client(transport: httpx2.AsyncBaseTransport | None = None) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        transport=transport, event_hooks={"response": [_check_response]}, follow_redirects=True, timeout=None
    )


class NotAnAnswer(Exception):
    """The server answered with a web page (say, a proxy's, in front of a model server that is down)."""


async def _check_response(response: httpx2.Response) -> None:
    """An error's body is read before huggingface_hub raises, so its message can be classified;
    a page is refused (the event-stream parser would find no text in it and report a cut)."""
    if response.status_code >= 400:
        await response.aread()
    elif response.headers.get("content-type", "").startswith("text/html"):
        body = (await response.aread())[:200]
        raise NotAnAnswer(f"{response.status_code} text/html: {body!r}")


class InferenceBackend:
    """huggingface_hub's AsyncInferenceClient: the HF router or any OpenAI-compatible server."""

    def __init__(self) -> None:
        self._transport = SharedTransport()
        # AsyncInferenceClient takes no HTTP client: huggingface_hub builds each through this process-wide factory
        # (its public hook for pooling), so the bot runs one inference backend per process, and only this sets it.
        set_async_client_factory(lambda: _client(self._transport))

    async def aclose(self) -> None:
        set_async_client_factory(_client)  # clients made from now on no longer use the closed pool
        await self._transport.close_pool()

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        model: ModelSettings,
        tools: Sequence[ToolSpec] = (),
        meter: UsageMeter | None = None,
    ) -> AsyncIterator[ModelPiece]:
        """Retries a model still loading (503), or a connection the server closed, as long as nothing was shown yet."""
        attempt, reconnected = 0, False
        while True:
            started = False
            try:
                async for piece in self._stream_once(messages, model, tools, meter):
                    started = True
                    yield piece
                return
            except ReplyFailure as failure:
                if failure.kind is FailureKind.CUT and not started and not reconnected:
                    reconnected = True
                    log.info("model_connection_retry", detail=failure.detail)
                    continue
                if started or failure.kind is not FailureKind.LOADING or attempt >= model.loading_retries:
                    raise
                delay = model.loading_backoff_seconds * (2**attempt)
                attempt += 1
                log.info("model_loading_retry", attempt=attempt, delay_seconds=delay)
                await asyncio.sleep(delay)

    async def _stream_once(
        self,
        messages: Sequence[ChatMessage],
        settings: ModelSettings,
        tools: Sequence[ToolSpec],
        meter: UsageMeter | None,
    ) -> AsyncIterator[ModelPiece]:
        # One client per stream: closing it is what frees the connection on cancel or error.
        async with AsyncInferenceClient(
            base_url=settings.inference_url, token=settings.hf_token or NO_KEY, timeout=settings.timeout_seconds
        ) as client:
            read = StreamRead(meter)
            splitter = ThoughtSplitter()
            try:
                async for chunk in await client.chat_completion(
                    list(messages),
                    model=settings.request_model,
                    stream=True,
                    max_tokens=settings.sampling.max_new_tokens,
                    temperature=settings.sampling.temperature,
                    top_p=settings.sampling.top_p,
                    tools=list(tools) or None,  # OpenAI-style dicts, sent as they are
                    stream_options=ChatCompletionInputStreamOptions(include_usage=True),
                ):
                    read.usage(chunk.usage)
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    delta = choice.delta
                    if delta is not None and (thought := delta_thought(delta)):
                        read.wrote(thought)
                        yield Thought(thought)
                    if delta is not None and delta.content:
                        if read.over_budget(delta.content):
                            break
                        read.wrote(delta.content)
                        if splitter.passing:  # the answer has started: no more scanning
                            yield delta.content
                        else:
                            for piece in splitter.feed(delta.content):
                                yield piece
                    if delta is not None and delta.tool_calls:
                        read.wrote_calls(delta.tool_calls)
                        read.calls.add(delta.tool_calls)
                    read.finish_reason = choice.finish_reason or read.finish_reason
            except Exception as error:
                read.count(settings.model_id, messages)
                raise _named(classify_inference_error(error, started=read.sent_any), settings.model_id) from error
            read.count(settings.model_id, messages)
            for piece in splitter.flush():
                yield piece
            if read.stopped:
                raise ReplyFailure(FailureKind.BUDGET_REACHED, "output allowance used")
            if read.finish_reason is None:
                raise ReplyFailure(FailureKind.CUT, "stream ended without a finish_reason")
            if read.finish_reason == "length":
                raise ReplyFailure(FailureKind.LENGTH, "max_tokens reached")
            if read.calls:  # some servers end a tool-calling message with "stop"
                yield ToolCalls(read.calls.calls())


def classify_inference_error(error: BaseException, *, started: bool) -> ReplyFailure:
    """Map a huggingface_hub / httpx2 exception to what the person is told."""
    detail = f"{type(error).__name__}: {error}"[:500]
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        message = f"{error} {getattr(error, 'server_message', '') or ''} {_body_text(error)}"
        return ReplyFailure(_kind_for_status(error.response.status_code, message), detail)
    if isinstance(error, ValidationError):
        kind = FailureKind.CONTEXT_TOO_LONG if _CONTEXT_ERROR.search(str(error)) else FailureKind.BAD_REQUEST
        return ReplyFailure(kind, detail)
    if isinstance(error, OverloadedError):
        return ReplyFailure(FailureKind.UNAVAILABLE, detail)
    if isinstance(error, TextGenerationError):
        return ReplyFailure(FailureKind.MODEL_ERROR, detail)
    if isinstance(error, NotAnAnswer):
        return ReplyFailure(FailureKind.BAD_RESPONSE, detail)
    # httpx-aiohttp reports both as a ConnectTimeout; a refused or unknown host didn't time out.
    if _caused_by(error, aiohttp.ClientConnectorError):
        return ReplyFailure(FailureKind.UNAVAILABLE, detail)
    if _caused_by(error, aiohttp.ServerDisconnectedError):
        return ReplyFailure(FailureKind.CUT, detail)
    if isinstance(error, (InferenceTimeoutError, httpx2.TimeoutException)):
        return ReplyFailure(FailureKind.STALLED if started else FailureKind.TIMEOUT, detail)
    if isinstance(error, httpx2.ConnectError):
        return ReplyFailure(FailureKind.UNAVAILABLE, detail)
    if isinstance(error, (httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.NetworkError)):
        return ReplyFailure(FailureKind.CUT, detail)
    if isinstance(error, ValueError) and "token" in str(error).lower():
        return ReplyFailure(FailureKind.AUTH, detail)
    return ReplyFailure(FailureKind.INTERNAL, detail)


def _named(failure: ReplyFailure, model: str) -> ReplyFailure:
    if failure.kind is not FailureKind.MODEL_NOT_FOUND:
        return failure
    reason = f"{model} isn't available: its server doesn't know it or doesn't serve it. Pick another with /model."
    return ReplyFailure(failure.kind, failure.detail, reason=reason)


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    cause = error.__cause__
    while cause is not None and not isinstance(cause, kind):
        cause = cause.__cause__
    return cause is not None


def _body_text(error: HfHubHTTPError) -> str:
    try:
        return error.response.text[:2000]
    except httpx2.ResponseNotRead:
        return ""


def _kind_for_status(status: int, message: str) -> FailureKind:
    by_status = {401: FailureKind.AUTH, 403: FailureKind.AUTH, 429: FailureKind.RATE_LIMITED, 503: FailureKind.LOADING}
    if status in by_status:
        return by_status[status]
    if status in (400, 404, 422) and _UNKNOWN_MODEL.search(message):
        return FailureKind.MODEL_NOT_FOUND
    if status in (400, 413, 422) and _CONTEXT_ERROR.search(message):
        return FailureKind.CONTEXT_TOO_LONG
    return FailureKind.BAD_REQUEST if status in (400, 404, 413, 422) else FailureKind.UNAVAILABLE
