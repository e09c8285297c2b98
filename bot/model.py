"""Model backends: a stream of text pieces for a list of chat messages.

Every backend turns its own failures into `ReplyFailure` with a human reason, so the
renderer and the adapters never see library exceptions.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Protocol

# Read by huggingface_hub when it is imported. Its telemetry builds the User-Agent of every
# request and, on the first one, fetches a registry from the Hub with a blocking request (up
# to 3 s) on the event loop, stalling every reply, or failing where only the model server is
# reachable. Operators may still set it to 0 in the environment.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import aiohttp  # noqa: E402 - after the setting above, like every import below
import httpx2  # noqa: E402
import structlog  # noqa: E402
from huggingface_hub import AsyncInferenceClient  # noqa: E402
from huggingface_hub.inference._providers._common import _fetch_inference_provider_mapping  # noqa: E402
from huggingface_hub.inference._providers.hf_inference import _check_supported_task  # noqa: E402
from huggingface_hub.errors import (
    HfHubHTTPError,
    InferenceTimeoutError,
    OverloadedError,
    TextGenerationError,
    ValidationError,
)

from bot.burst import ModelCallsFirst
from bot.errors import FailureKind, ReplyFailure
from bot.model_http import ModelConnectionPool
from bot.sse import TextDemand
from config.settings import BackendKind, ModelSettings

log = structlog.get_logger(__name__)

ChatMessage = dict[str, str]

_UNSENT_TOKEN = "unsent"
_CONTEXT_ERROR = re.compile(
    r"context|too long|maximum.*tokens|tokens.*must be|input validation|max_new_tokens|prompt is too long",
    re.IGNORECASE,
)


class ModelBackend(Protocol):
    """Anything that streams a chat completion as text pieces."""

    def describe(self) -> str: ...

    def stream(self, messages: Sequence[ChatMessage], demand: TextDemand | None = None) -> AsyncIterator[str]:
        """Yield text pieces; raise ReplyFailure. Closing the iterator early frees its resources.

        `demand` tells when the reader will next show new text: pieces may be larger until then.
        """
        ...

    async def warm(self) -> None:
        """Get ready for the first replies (e.g. open connections); never raises."""
        ...

    async def aclose(self) -> None: ...


class InferenceBackend:
    """huggingface_hub's AsyncInferenceClient: the HF router or any OpenAI-compatible server."""

    def __init__(self, settings: ModelSettings, model_calls: ModelCallsFirst | None = None) -> None:
        """`model_calls`: during a burst of turns, the answers are read once it has asked the model."""
        self._settings = settings
        # A server of the operator's own gets only the token configured for it (HF_TOKEN), if any.
        own_server = settings.backend is BackendKind.OPENAI_COMPATIBLE
        send_saved_token = not own_server or bool(settings.hf_token)
        self._connections = ModelConnectionPool(
            settings.base_url,
            send_saved_token=send_saved_token,
            read_batch_seconds=settings.read_batch_seconds,
            own_connections=settings.own_connections,
            spare_connections=settings.spare_connections,
            model_calls=model_calls,
        )
        self._connections.install()
        self._provider_lookup: asyncio.Future[None] | None = None

    def describe(self) -> str:
        return self._settings.describe()

    async def warm(self) -> None:
        await self._connections.warm()

    async def aclose(self) -> None:
        await self._connections.aclose()

    async def stream(self, messages: Sequence[ChatMessage], demand: TextDemand | None = None) -> AsyncIterator[str]:
        attempt = 0
        reconnected = False
        while True:
            started = False
            try:
                async for piece in self._stream_once(messages, demand):
                    started = True
                    yield piece
                return
            except ReplyFailure as failure:
                if started:
                    raise
                if failure.kind is FailureKind.CUT and not reconnected:
                    # Most likely a kept-alive connection the server closed as we sent on it.
                    reconnected = True
                    log.info("model_connection_retry", detail=failure.detail)
                    continue
                if failure.kind is not FailureKind.LOADING or attempt >= self._settings.loading_retries:
                    raise
                delay = self._settings.loading_backoff_seconds * (2**attempt)
                attempt += 1
                log.info("model_loading_retry", attempt=attempt, delay_seconds=delay)
                await asyncio.sleep(delay)

    async def _look_up_provider(self) -> None:
        """Which model id the chosen provider knows this model by: asked of the Hub once.

        huggingface_hub asks with a blocking request from inside `chat_completion`, which would
        freeze every reply in progress for a round trip to the Hub (or until its timeout). Here
        it is asked in a worker thread, once for all replies waiting on it; huggingface_hub
        keeps the answer, and a failure is asked again by the next reply.
        """
        provider = self._settings.provider
        if self._settings.backend is not BackendKind.HF_ROUTER or provider in (None, "auto"):
            return
        if self._provider_lookup is None or self._provider_lookup.cancelled() or (
            self._provider_lookup.done() and self._provider_lookup.exception() is not None
        ):
            model = self._settings.model_id
            # Both are cached by huggingface_hub once they succeed.
            lookup = (
                (lambda: _check_supported_task(model, "conversational"))
                if provider == "hf-inference"
                else (lambda: _fetch_inference_provider_mapping(model))
            )
            self._provider_lookup = asyncio.ensure_future(asyncio.to_thread(lookup))
        try:
            await asyncio.shield(self._provider_lookup)
        except Exception as error:  # noqa: BLE001 - translated for the person, logged for the operator
            log.warning("provider_lookup_failed", provider=provider, error=f"{type(error).__name__}: {error}")
            raise classify_inference_error(error, started=False) from error

    async def _stream_once(self, messages: Sequence[ChatMessage], demand: TextDemand | None) -> AsyncIterator[str]:
        await self._look_up_provider()
        # One client per stream: a streamed response stays open until its client closes,
        # so closing it here is what frees the connection on cancel, error or early exit.
        async with self._new_client() as client:
            sent_any = False
            finish_reason: str | None = None
            request = await self._connections.open_stream(demand)
            try:
                chunks = await client.chat_completion(
                    list(messages),
                    model=self._settings.model_id,
                    stream=True,
                    max_tokens=self._settings.sampling.max_new_tokens,
                    temperature=self._settings.sampling.temperature,
                    top_p=self._settings.sampling.top_p,
                )
                async for chunk in chunks:
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    if choice.delta is not None and choice.delta.content:
                        sent_any = True
                        yield choice.delta.content
                        request.first_text_out()
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
            except ReplyFailure:
                raise
            except Exception as error:  # noqa: BLE001 - translated for the person, logged for the operator
                raise classify_inference_error(error, started=sent_any) from error
            finally:
                request.close()
            if finish_reason is None:
                raise ReplyFailure(FailureKind.CUT, "stream ended without a finish_reason")
            if finish_reason == "length":
                raise ReplyFailure(FailureKind.LENGTH, "max_tokens reached")

    def _new_client(self) -> AsyncInferenceClient:
        settings = self._settings
        if settings.backend is BackendKind.OPENAI_COMPATIBLE:
            # Without HF_TOKEN, a stand-in that the pool's request hook removes: a token saved by
            # `hf auth login` never goes to another server, and huggingface_hub does not look
            # for one on disk (twice per request) either.
            return AsyncInferenceClient(
                base_url=settings.base_url, token=settings.hf_token or _UNSENT_TOKEN, timeout=settings.timeout_seconds
            )
        return AsyncInferenceClient(
            model=settings.model_id,
            provider=settings.provider,  # type: ignore[arg-type]
            token=settings.hf_token,
            timeout=settings.timeout_seconds,
        )


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
    if any(isinstance(cause, aiohttp.ClientConnectorError) for cause in _causes(error)):
        # Refused or not found: httpx-aiohttp reports it as a ConnectTimeout, but nothing timed out.
        return ReplyFailure(FailureKind.UNAVAILABLE, detail)
    if any(isinstance(cause, aiohttp.ServerDisconnectedError) for cause in _causes(error)):
        # httpx-aiohttp reports a server that hung up as a ConnectTimeout; it was a cut.
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


def _causes(error: BaseException) -> Iterator[BaseException]:
    cause = error.__cause__
    while cause is not None:
        yield cause
        cause = cause.__cause__


def _body_text(error: HfHubHTTPError) -> str:
    try:
        return error.response.text[:2000]
    except Exception:  # noqa: BLE001 - a streamed body may be unread; the status still classifies it
        return ""


def _kind_for_status(status: int, message: str) -> FailureKind:
    if status in (401, 403):
        return FailureKind.AUTH
    if status == 429:
        return FailureKind.RATE_LIMITED
    if status == 503:
        return FailureKind.LOADING
    if status in (400, 413, 422):
        return FailureKind.CONTEXT_TOO_LONG if _CONTEXT_ERROR.search(message) else FailureKind.BAD_REQUEST
    if status == 404:
        return FailureKind.BAD_REQUEST
    return FailureKind.UNAVAILABLE


def create_backend(
    settings: ModelSettings, *, context_tokens: int, model_calls: ModelCallsFirst | None = None
) -> ModelBackend:
    if settings.backend is BackendKind.LOCAL:
        from bot.local_model import LocalBackend  # llama-cpp is only needed for local models

        return LocalBackend(settings, context_tokens=context_tokens)
    return InferenceBackend(settings, model_calls)
