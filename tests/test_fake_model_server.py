"""The fake model server, driven by the real huggingface_hub AsyncInferenceClient."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx2
import pytest
from huggingface_hub import AsyncInferenceClient
from huggingface_hub.errors import (
    BadRequestError,
    HfHubHTTPError,
    InferenceTimeoutError,
    OverloadedError,
    ValidationError,
)
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes.model_server import _MARK, FakeModelServer, Script, _sse, _TextEvents, tokenize

MODEL = "mistralai/Mistral-7B-Instruct-v0.3"
MESSAGES = [{"role": "user", "content": "Say something"}]


@dataclass
class Streamed:
    text: str = ""
    finish_reason: str | None = None
    chunks: list[Any] = field(default_factory=list)


@pytest.fixture
async def server() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer() as srv:
        yield srv


def client_for(srv: FakeModelServer, timeout: float = 5.0) -> AsyncInferenceClient:
    return AsyncInferenceClient(base_url=srv.base_url + "/v1", token="x", timeout=timeout)


async def stream(client: AsyncInferenceClient, out: Streamed | None = None, **kwargs: Any) -> Streamed:
    """Stream one chat completion, accumulating into ``out`` (so partial text survives an exception)."""
    out = out if out is not None else Streamed()
    kwargs.setdefault("max_tokens", 1000)
    async for chunk in await client.chat_completion(MESSAGES, stream=True, model=MODEL, **kwargs):
        out.chunks.append(chunk)
        if chunk.choices:
            out.text += chunk.choices[0].delta.content or ""
            out.finish_reason = chunk.choices[0].finish_reason or out.finish_reason
    return out


# happy path -------------------------------------------------------------------


@given(st.text())
def test_text_events_are_the_json_encoding_of_their_chunk(token: str) -> None:
    def chunk(content: str) -> bytes:
        delta = {"role": "assistant", "content": content}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        return _sse({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL, "choices": [choice]})

    assert _TextEvents(chunk(_MARK))(token) == chunk(token)


def test_tokenize_round_trips() -> None:
    for text in ["Hello, world!", "  lead\nand trail  ", "one", "", "   ", "a\n\n- b\n"]:
        assert "".join(tokenize(text)) == text
    assert tokenize("Hello big world") == ["Hello", " big", " world"]
    assert Script(tokens=3).answer == "w0 w1 w2"


async def test_streams_script_text_and_records_request(server: FakeModelServer) -> None:
    text = "Hello there!\nThis is a *streamed* answer.  "
    server.default = Script(text=text)
    async with client_for(server) as client:
        got = await stream(client, max_tokens=200, temperature=0.3)
    assert got.text == text
    assert got.finish_reason == "stop"
    assert got.chunks[-1].usage.completion_tokens == len(tokenize(text))

    [req] = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.body["model"] == MODEL
    assert req.body["max_tokens"] == 200
    assert req.body["stream"] is True
    assert req.body["messages"] == MESSAGES
    assert req.headers["Authorization"] == "Bearer x"
    assert req.outcome == "completed" and req.status == 200
    assert req.received_at <= req.first_token_at <= req.last_token_at <= req.finished_at  # type: ignore[operator]


async def test_default_tokens_and_chunk_shape(server: FakeModelServer) -> None:
    server.default = Script(tokens=5)
    async with client_for(server) as client:
        got = await stream(client)
    assert got.text == "w0 w1 w2 w3 w4"
    first = got.chunks[0]
    assert first.object == "chat.completion.chunk"
    assert first.model == MODEL
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].finish_reason is None


async def test_rate_and_first_token_delay(server: FakeModelServer) -> None:
    server.default = Script(tokens=20, rate=100, first_token_delay=0.1)
    async with client_for(server) as client:
        t0 = time.monotonic()
        got = await stream(client)
        elapsed = time.monotonic() - t0
    assert got.text == Script(tokens=20).answer
    assert elapsed >= 0.25  # 0.1 s first-token delay + 19 gaps at 10 ms
    req = server.requests[0]
    assert req.first_token_at is not None and req.last_token_at is not None
    assert req.first_token_at - req.received_at >= 0.09
    assert req.last_token_at - req.first_token_at >= 0.15


async def test_max_tokens_truncates_with_length(server: FakeModelServer) -> None:
    server.default = Script(tokens=50)
    async with client_for(server) as client:
        got = await stream(client, max_tokens=5)
    assert got.text == "w0 w1 w2 w3 w4"
    assert got.finish_reason == "length"


async def test_include_usage_sends_openai_usage_chunk(server: FakeModelServer) -> None:
    server.default = Script(tokens=4)
    async with client_for(server) as client:
        got = await stream(client, stream_options={"include_usage": True})
    assert got.text == "w0 w1 w2 w3"
    assert got.finish_reason == "stop"
    last = got.chunks[-1]
    assert last.choices == []
    assert last.usage.completion_tokens == 4


async def test_non_streaming_completion(server: FakeModelServer) -> None:
    server.default = Script(text="Full answer.")
    async with client_for(server) as client:
        out = await client.chat_completion(MESSAGES, model=MODEL, max_tokens=50)
    assert out.choices[0].message.content == "Full answer."
    assert out.choices[0].finish_reason == "stop"
    assert out.usage.completion_tokens == 2
    assert server.requests[0].body["stream"] is False


async def test_responder_picks_script_per_request(server: FakeModelServer) -> None:
    server.responder = lambda body: Script(text=f"echo: {body['messages'][-1]['content']}")
    async with client_for(server) as client:
        got = await stream(client)
    assert got.text == "echo: Say something"


async def test_url_without_v1_and_aux_routes(server: FakeModelServer) -> None:
    server.default = Script(text="ok")
    async with AsyncInferenceClient(base_url=server.base_url + "/chat/completions", token="x") as client:
        got = await stream(client)
    assert got.text == "ok"
    assert server.requests[0].path == "/chat/completions"

    async with aiohttp.ClientSession() as http:
        async with http.get(server.base_url + "/health") as resp:
            assert resp.status == 200
        async with http.get(server.base_url + "/v1/models") as resp:
            assert (await resp.json())["data"][0]["id"] == MODEL
    assert len(server.requests) == 1  # only chat completions are recorded


# HTTP errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "status", "retry_after"),
    [("http_401", 401, None), ("http_429", 429, "2"), ("http_503", 503, "2")],
)
async def test_http_errors_raise_hf_hub_http_error(
    server: FakeModelServer, failure: str, status: int, retry_after: str | None
) -> None:
    server.default = Script(failure=failure, retry_after=1.5)
    async with client_for(server) as client:
        with pytest.raises(HfHubHTTPError) as info:
            await stream(client)
    err = info.value
    assert type(err) is HfHubHTTPError  # not a subclass (401 is not RepositoryNotFoundError)
    assert err.response.status_code == status
    assert err.response.headers.get("Retry-After") == retry_after
    assert "error" in err.response.json()
    assert server.requests[0].outcome == "http_error"


async def test_fail_503_times_then_serves(server: FakeModelServer) -> None:
    server.default = Script(text="ready")
    server.fail_503_times = 2
    async with client_for(server) as client:
        for _ in range(2):
            with pytest.raises(HfHubHTTPError) as info:
                await stream(client)
            assert info.value.response.status_code == 503
            assert info.value.response.json() == {"error": "Model is currently loading", "estimated_time": 1.0}
        assert (await stream(client)).text == "ready"
    assert [r.status for r in server.requests] == [503, 503, 200]


@pytest.mark.parametrize("style", ["tgi", "vllm", "openai"])
async def test_context_overflow_is_bad_request(server: FakeModelServer, style: str) -> None:
    server.default = Script(failure="http_400_context", error_style=style)  # type: ignore[arg-type]
    async with client_for(server) as client:
        with pytest.raises(BadRequestError) as info:
            await stream(client)
    assert info.value.response.status_code == 400
    body = info.value.response.json()
    if style == "tgi":
        assert body["error_type"] == "validation"
        assert "must be <= 4096" in str(info.value)
    elif style == "vllm":
        assert body["code"] == "context_length_exceeded"
        assert "maximum context length" not in str(info.value)  # hf only reads "error"/"errors"
    else:
        assert body["error"]["code"] == "context_length_exceeded"


# timeouts and broken streams ----------------------------------------------------


async def test_headers_timeout_is_inference_timeout(server: FakeModelServer) -> None:
    server.default = Script(failure="headers_timeout")  # headers_delay 0: never answers
    async with client_for(server, timeout=0.3) as client:
        with pytest.raises(InferenceTimeoutError) as info:
            await stream(client)
    assert isinstance(info.value.__cause__, httpx2.ReadTimeout)
    await _wait_for(lambda: server.requests[0].outcome == "disconnected")


async def test_slow_headers_then_normal_answer(server: FakeModelServer) -> None:
    server.default = Script(failure="headers_timeout", headers_delay=0.2, text="late")
    async with client_for(server, timeout=2.0) as client:
        assert (await stream(client)).text == "late"


async def test_slow_first_token_is_raw_read_timeout(server: FakeModelServer) -> None:
    server.default = Script(first_token_delay=1.0)
    async with client_for(server, timeout=0.3) as client:
        with pytest.raises(httpx2.ReadTimeout):
            await stream(client)


async def test_stall_is_raw_read_timeout(server: FakeModelServer) -> None:
    server.default = Script(text="one two three four five", failure="stall", fail_after=3)
    got = Streamed()
    async with client_for(server, timeout=0.3) as client:
        with pytest.raises(httpx2.ReadTimeout):
            await stream(client, got)
    assert got.text == "one two three"
    await _wait_for(lambda: server.requests[0].outcome == "disconnected")
    assert server.requests[0].finished_at is None


async def test_cut_is_remote_protocol_error(server: FakeModelServer) -> None:
    server.default = Script(tokens=10, failure="cut", fail_after=4)
    got = Streamed()
    async with client_for(server) as client:
        with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"):
            await stream(client, got)
    assert got.text == "w0 w1 w2 w3"
    assert server.requests[0].outcome == "cut"


async def test_reset_is_read_error(server: FakeModelServer) -> None:
    server.default = Script(tokens=10, failure="reset", fail_after=2)
    got = Streamed()
    async with client_for(server) as client:
        with pytest.raises(httpx2.ReadError):
            await stream(client, got)
    assert got.text == "w0 w1"


async def test_eof_without_done_is_silent_truncation(server: FakeModelServer) -> None:
    server.default = Script(tokens=10, failure="eof_no_done", fail_after=3)
    async with client_for(server) as client:
        got = await stream(client)  # no exception
    assert got.text == "w0 w1 w2"
    assert got.finish_reason is None


async def test_sse_error_raises_typed_generation_error(server: FakeModelServer) -> None:
    server.default = Script(tokens=10, failure="sse_error", fail_after=2)
    got = Streamed()
    async with client_for(server) as client:
        with pytest.raises(OverloadedError, match="overloaded"):
            await stream(client, got)
        assert got.text == "w0 w1"
        server.default = Script(failure="sse_error", error_type="validation")
        with pytest.raises(ValidationError):
            await stream(client)


async def test_length_failure(server: FakeModelServer) -> None:
    server.default = Script(tokens=10, failure="length", fail_after=3)
    async with client_for(server) as client:
        got = await stream(client)
    assert (got.text, got.finish_reason) == ("w0 w1 w2", "length")


# lifecycle ----------------------------------------------------------------------


async def test_stop_does_not_hang_on_open_stalled_stream() -> None:
    srv = FakeModelServer(Script(tokens=5, failure="stall", fail_after=2))
    await srv.start()
    got = Streamed()
    async with client_for(srv, timeout=30) as client:
        consumer = asyncio.create_task(stream(client, got))
        await _wait_for(lambda: bool(srv.requests) and srv.requests[0].tokens_sent == 2)
        t0 = time.monotonic()
        await asyncio.wait_for(srv.stop(), 3)
        assert time.monotonic() - t0 < 2
        with pytest.raises(httpx2.RemoteProtocolError):
            await consumer
    assert got.text == "w0 w1"
    assert srv.requests[0].outcome == "server_stopped"


async def test_cli_serves_default_script() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.model_server",
        "--port",
        "0",
        "--tokens",
        "3",
        "--rate",
        "200",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        base_url = line.split(" on ")[1].split()[0]
        async with AsyncInferenceClient(base_url=base_url + "/v1", token="x", timeout=5) as client:
            got = await stream(client)
        assert got.text == "w0 w1 w2"
    finally:
        proc.terminate()
        await proc.wait()


async def _wait_for(cond: Any, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)
