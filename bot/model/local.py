"""A GGUF model run in-process by llama-cpp-python, streamed from a worker thread."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from bot.errors import FailureKind, ReplyFailure
from bot.model.backends import ChatMessage, ToolSpec
from bot.usage.meter import OutputGuard, UsageMeter
from config.settings import ModelSettings, SamplingSettings

if TYPE_CHECKING:
    from llama_cpp import Llama

log = structlog.get_logger(__name__)

_END = object()  # the worker's last item on the queue, after the answer or its failure


class _Used(tuple[int, int]):
    """The worker's count of a generation: (prompt tokens, completion tokens), by the model's own tokenizer."""


class LocalBackend:
    """Loads the model once (off the event loop) and serves one generation at a time: llama.cpp isn't thread-safe."""

    def __init__(self, settings: ModelSettings, *, context_tokens: int = 8192) -> None:
        self._settings = settings
        self._context_tokens = context_tokens
        self._model: Llama | None = None
        self._load_lock = asyncio.Lock()
        self._generation_lock = asyncio.Lock()

    async def aclose(self) -> None:
        model, self._model = self._model, None
        if model is not None:
            await asyncio.to_thread(model.close)

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        model_settings: ModelSettings,
        tools: Sequence[ToolSpec] = (),
        meter: UsageMeter | None = None,
    ) -> AsyncIterator[str]:
        """`tools` are never offered to the in-process model (see config.tools): it answers in text."""
        async with self._load_lock:  # the weights load with the first reply
            if self._model is None:
                self._model = await asyncio.to_thread(self._load)
            model = self._model
        async with self._generation_lock:
            stop = threading.Event()
            queue: asyncio.Queue[object] = asyncio.Queue()
            loop = asyncio.get_running_loop()
            worker = asyncio.create_task(
                asyncio.to_thread(self._generate, model, list(messages), model_settings.sampling, stop, queue, loop)
            )
            guard = OutputGuard(meter)
            try:
                while (item := await queue.get()) is not _END:
                    if isinstance(item, BaseException):
                        raise item
                    if isinstance(item, _Used):
                        if meter is not None:
                            meter.add(model_settings.model_id, *item)
                    elif guard.stops(str(item)):
                        stop.set()
                        raise ReplyFailure(FailureKind.BUDGET_REACHED, "output allowance used")
                    else:
                        yield str(item)
            finally:
                stop.set()  # the worker checks this between tokens, so an abandoned reply frees the model fast
                await worker
                _count_left(queue, meter, model_settings.model_id)

    def _load(self) -> Llama:
        try:
            from llama_cpp import Llama
        except ImportError as error:
            raise ReplyFailure(
                FailureKind.UNAVAILABLE, "llama-cpp-python is not installed: pip install llama-cpp-python"
            ) from error
        path = str(self._settings.local_model_path)
        log.info("local_model_loading", path=path, gpu_layers=self._settings.gpu_layers)
        return Llama(model_path=path, n_ctx=self._context_tokens, n_gpu_layers=self._settings.gpu_layers, verbose=False)

    def _generate(
        self,
        model: Llama,
        messages: list[ChatMessage],
        sampling: SamplingSettings,
        stop: threading.Event,
        queue: asyncio.Queue[object],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        def emit(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        written = 0
        try:
            finish_reason = None
            for chunk in model.create_chat_completion(
                messages=messages,  # type: ignore[arg-type]  # llama-cpp-python wants its TypedDicts: the same keys
                stream=True,
                max_tokens=sampling.max_new_tokens,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                repeat_penalty=sampling.repeat_penalty,
                seed=random.randrange(2**31),  # llama.cpp's fixed default seed repeats its worst answers
            ):
                # llama-cpp-python types a stream's chunks as a union with the whole completion's.
                choice: dict[str, Any] = chunk["choices"][0]  # type: ignore[index,assignment]
                finish_reason = choice.get("finish_reason")
                if stop.is_set():
                    return
                if piece := str(choice["delta"].get("content") or ""):
                    written += 1  # llama-cpp-python streams one token a chunk
                    emit(piece)
            if finish_reason == "length":
                emit(ReplyFailure(FailureKind.LENGTH, "max_tokens reached"))
        except ValueError as error:  # llama.cpp raises ValueError when the prompt exceeds n_ctx
            emit(ReplyFailure(FailureKind.CONTEXT_TOO_LONG, str(error)[:300]))
        except Exception as error:  # noqa: BLE001 - handed to the async side, which tells the person
            emit(ReplyFailure(FailureKind.MODEL_ERROR, f"{type(error).__name__}: {error}"[:300]))
        finally:
            emit(_Used((max(0, model.n_tokens - written), written)))
            emit(_END)


def _count_left(queue: asyncio.Queue[object], meter: UsageMeter | None, model: str) -> None:
    """A generation given up before its end still counts what it read and wrote."""
    while meter is not None and not queue.empty():
        if isinstance(item := queue.get_nowait(), _Used):
            meter.add(model, *item)
