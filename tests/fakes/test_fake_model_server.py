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

from fakes.model_server import _MARK, FakeModelServer, Script, _sse, _TextEvents, tokenize

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
    kwargs.setdefault("model", MODEL)
    async for chunk in await client.chat_completion(MESSAGES, stream=True, **kwargs):
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
        "fakes.model_server",
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


# models and content parts -------------------------------------------------------


def png_data_url(size: tuple[int, int] = (2, 2)) -> str:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_message(text: str, url: str, role: str = "user") -> dict[str, Any]:
    return {"role": role, "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]}


async def post_chat(srv: FakeModelServer, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.post(srv.base_url + "/v1/chat/completions", json=body) as resp:
            return resp.status, await resp.json()


async def test_unknown_model_gets_the_hf_routers_error() -> None:
    async with FakeModelServer(Script(text="ok"), known_models={MODEL, "other/model"}) as srv:
        async with client_for(srv) as client:
            with pytest.raises(BadRequestError) as info:
                await client.chat_completion(MESSAGES, model="no/such-model", max_tokens=5)
            assert info.value.response.status_code == 400
            assert info.value.response.json() == {
                "error": {
                    "message": "The requested model 'no/such-model' is not supported by any provider you have enabled.",
                    "code": "model_not_supported",
                }
            }
            assert (await stream(client)).text == "ok"
        async with aiohttp.ClientSession() as http, http.get(srv.base_url + "/v1/models") as resp:
            assert [m["id"] for m in (await resp.json())["data"]] == sorted({MODEL, "other/model"})
    rejected, served = srv.requests
    assert (rejected.model, rejected.status, rejected.outcome) == ("no/such-model", 400, "http_error")
    assert (served.model, served.status) == (MODEL, 200)


@pytest.mark.parametrize(
    ("style", "body"),
    [
        (
            "openai",
            {
                "error": {
                    "message": "The model `gpt-x` does not exist or you do not have access to it.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "model_not_found",
                }
            },
        ),
        (
            "vllm",
            {
                "object": "error",
                "message": "The model `gpt-x` does not exist.",
                "type": "NotFoundError",
                "param": None,
                "code": 404,
            },
        ),
    ],
)
async def test_unknown_model_gets_a_404_in_openai_and_vllm_style(style: str, body: dict[str, Any]) -> None:
    async with FakeModelServer(known_models={MODEL}, api_style=style) as srv:  # type: ignore[arg-type]
        async with client_for(srv) as client:
            with pytest.raises(HfHubHTTPError) as info:
                await client.chat_completion(MESSAGES, model="gpt-x", stream=True)
    assert info.value.response.status_code == 404
    assert info.value.response.json() == body
    srv.known_models = None  # any model again
    assert srv.known_models is None


async def test_content_parts_and_images_are_recorded(server: FakeModelServer) -> None:
    server.default = Script(text="A small black square.")
    png, http_url = png_data_url(), "https://example.com/cat.jpg"
    messages = [
        image_message("first picture", http_url),
        {"role": "assistant", "content": "A cat."},
        image_message("what is this?", png),
    ]
    async with client_for(server) as client:
        out = await client.chat_completion(messages, model=MODEL, max_tokens=20)
    assert out.choices[0].message.content == "A small black square."
    [req] = server.requests
    assert req.content_parts == messages[-1]["content"]
    assert req.image_urls == [png] and req.all_image_urls == [http_url, png]
    assert req.last_user_content() == "what is this?"
    assert out.usage.prompt_tokens == (2 + 85 + 4) + (2 + 4) + (3 + 85 + 4)  # images count, roughly

    server.default = Script(text="plain")
    async with client_for(server) as client:
        await stream(client)
    assert server.requests[-1].content_parts is None and server.requests[-1].image_urls == []


def _with_part(part: Any, role: str = "user") -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": role, "content": [{"type": "text", "text": "hi"}, part]}]}


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (_with_part({"type": "image_url", "image_url": "data:image/png;base64,AAAA"}), "invalid_type", ".image_url"),
        (
            _with_part({"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@@"}}),
            "invalid_image_url",
            ".url",
        ),
        (
            _with_part({"type": "image_url", "image_url": {"url": "data:text/plain;base64,aGk="}}),
            "invalid_image_format",
            ".url",
        ),
        (
            _with_part({"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}),
            "invalid_image_format",
            ".url",
        ),
        (_with_part({"type": "image_url", "image_url": {"url": "not a url"}}), "invalid_value", ".url"),
        (
            _with_part({"type": "image_url", "image_url": {"url": png_data_url(), "detail": "max"}}),
            "invalid_value",
            ".detail",
        ),
        (
            _with_part({"type": "image_url", "image_url": {"url": png_data_url()}}, role="assistant"),
            "invalid_value",
            "[1]",
        ),
        (_with_part({"type": "audio", "audio": "x"}), "invalid_value", ".type"),
        (_with_part({"type": "text", "text": 42}), "invalid_type", ".text"),
        (_with_part("just a string"), "invalid_type", "[1]"),
    ],
)
async def test_malformed_content_parts_are_400(
    server: FakeModelServer, body: dict[str, Any], code: str, param: str
) -> None:
    status, error = await post_chat(server, body)
    assert status == 400 and error["error"]["code"] == code
    assert error["error"]["type"] == "invalid_request_error" and error["error"]["param"].endswith(param)
    assert server.requests[-1].outcome == "http_error"


async def test_malformed_content_through_the_hf_client_and_in_vllm_style() -> None:
    bad = [image_message("look", "data:image/jpeg;base64,not base64!")]
    async with FakeModelServer(api_style="vllm") as srv:
        async with client_for(srv) as client:
            with pytest.raises(BadRequestError) as info:
                await client.chat_completion(bad, model=MODEL, stream=True)
    body = info.value.response.json()
    assert (body["object"], body["type"], body["code"]) == ("error", "BadRequestError", 400)
    assert body["message"] == "Invalid base64 image_url."


async def test_answers_tell_which_model_answered() -> None:
    answers = {"mistral-small": "Small here.", "mistral-large": "Large here."}
    async with FakeModelServer(Script(text="Default."), answers_by_model=answers) as srv:
        async with client_for(srv) as client:
            texts = []
            for model in ("mistral-small", "mistral-large", MODEL):
                out = await client.chat_completion(MESSAGES, model=model, max_tokens=20)
                texts.append((out.model, out.choices[0].message.content))
            srv.prefix_model = True
            got = await stream(client, model="mistral-large")
            srv.responder = lambda body: Script(text="From the responder.")
            responded = await stream(client, model="mistral-small")
    assert texts == [("mistral-small", "Small here."), ("mistral-large", "Large here."), (MODEL, "Default.")]
    assert got.text == "[mistral-large] Large here." and got.chunks[0].model == "mistral-large"
    assert responded.text == "[mistral-small] From the responder."
