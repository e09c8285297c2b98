"""The fake model server's tool calls: streamed as OpenAI streams them, checked as real servers check them,
and the ready-made `ToolAgent`; driven by huggingface_hub's AsyncInferenceClient (as the bot is) and raw aiohttp."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from huggingface_hub import AsyncInferenceClient
from huggingface_hub.errors import HfHubHTTPError

from fakes.model_server import FakeModelServer, Script, ToolAgent, ToolCallScript

MODEL = "mistralai/Mistral-7B-Instruct-v0.3"
WEATHER_ARGS = '{"city": "Paris", "unit": "celsius"}'
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city now.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {"type": "function", "function": {"name": "get_time"}},
]
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]
ID_RE = re.compile(r"[a-zA-Z0-9]{9}")


@pytest.fixture
async def server() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text="Default answer.")) as srv:
        yield srv


def client_for(srv: FakeModelServer) -> AsyncInferenceClient:
    return AsyncInferenceClient(
        base_url=srv.base_url + "/v1", token="x", timeout=5
    )  # as bot/model/backends.py builds it


@dataclass
class Streamed:
    """What a client pieced together from one stream."""

    text: str = ""
    finish_reason: str | None = None
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)  # index -> {"id", "name", "arguments"}
    deltas: list[Any] = field(default_factory=list)  # the huggingface_hub delta objects carrying tool_calls


async def stream(srv: FakeModelServer, messages: list[dict[str, Any]], **kwargs: Any) -> Streamed:
    out = Streamed()
    async with client_for(srv) as client:
        async for chunk in await client.chat_completion(messages, model=MODEL, stream=True, **kwargs):
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            out.text += choice.delta.content or ""
            out.finish_reason = choice.finish_reason or out.finish_reason
            for call in choice.delta.tool_calls or []:
                out.deltas.append(call)
                entry = out.calls.setdefault(call.index, {"id": None, "name": None, "arguments": ""})
                entry["id"] = call.id or entry["id"]
                entry["name"] = call.function.name or entry["name"]
                entry["arguments"] += call.function.arguments or ""
    return out


async def raw_events(srv: FakeModelServer, body: dict[str, Any]) -> list[Any]:
    """The parsed ``data:`` events of a streamed answer, "[DONE]" as is."""
    body = {"model": MODEL, "stream": True, **body}
    async with aiohttp.ClientSession() as http:
        async with http.post(srv.base_url + "/v1/chat/completions", json=body) as resp:
            assert resp.status == 200
            text = await resp.text()
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e.startswith("data: ")]
    return [e if e == "[DONE]" else json.loads(e) for e in events]


async def read_lines(resp: aiohttp.ClientResponse, into: list[bytes]) -> None:
    """Read a response's lines into `into` (kept when the read fails)."""
    async for line in resp.content:
        into.append(line)  # noqa: PERF401  (one at a time: the lines read before a failure are kept)


async def post(srv: FakeModelServer, body: dict[str, Any]) -> tuple[int, Any]:
    body = {"model": MODEL, **body}
    async with aiohttp.ClientSession() as http:
        async with http.post(srv.base_url + "/v1/chat/completions", json=body) as resp:
            return resp.status, await resp.json()


def weather_call(call_id: str | None = None, arguments: str = WEATHER_ARGS) -> ToolCallScript:
    return ToolCallScript("get_weather", arguments, call_id)


# streaming --------------------------------------------------------------------


async def test_huggingface_hub_pieces_together_a_streamed_call(server: FakeModelServer) -> None:
    server.default = Script(tool_calls=(weather_call(),), argument_piece_chars=5)
    out = await stream(server, ASK, tools=TOOLS)
    assert out.text == ""
    assert out.finish_reason == "tool_calls"
    assert list(out.calls) == [0]
    assert out.calls[0]["name"] == "get_weather"
    assert ID_RE.fullmatch(out.calls[0]["id"])
    assert out.calls[0]["arguments"] == WEATHER_ARGS
    # One delta opens the call, then one per piece of 5 characters.
    assert len(out.deltas) == 1 + -(-len(WEATHER_ARGS) // 5)
    # What the bot relies on: huggingface_hub's stream deltas keep index, id, type and the arguments string.
    opening, piece = out.deltas[0], out.deltas[1]
    assert (opening.index, opening.type, opening.function.name, opening.function.arguments) == (
        0,
        "function",
        "get_weather",
        "",
    )
    assert isinstance(opening.id, str)
    assert (piece.index, piece.id, piece.type, piece.function.name) == (0, None, None, None)
    assert piece.function.arguments == WEATHER_ARGS[:5]
    rec = server.requests[-1]
    assert rec.tools == ["get_weather", "get_time"]
    assert rec.tokens_sent == len(out.deltas) - 1 and rec.outcome == "completed"


async def test_two_calls_stream_one_after_the_other(server: FakeModelServer) -> None:
    time_args = '{"timezone": "Europe/Paris"}'
    calls = (weather_call("abcDEF123"), ToolCallScript("get_time", time_args, "ghiJKL456"))
    server.default = Script(text="Let me check.", tool_calls=calls)
    out = await stream(server, ASK, tools=TOOLS)
    assert out.text == "Let me check."
    assert out.finish_reason == "tool_calls"
    assert out.calls == {
        0: {"id": "abcDEF123", "name": "get_weather", "arguments": WEATHER_ARGS},
        1: {"id": "ghiJKL456", "name": "get_time", "arguments": time_args},
    }
    indexes = [d.index for d in out.deltas]
    assert indexes == sorted(indexes) and indexes[0] == 0 and indexes[-1] == 1  # call 0 fully, then call 1


async def test_wire_format_is_openais(server: FakeModelServer) -> None:
    server.default = Script(text="Hm.", tool_calls=(weather_call("abcDEF123", '{"a": 1}'),), argument_piece_chars=4)
    events = await raw_events(server, {"messages": ASK, "tools": TOOLS})
    deltas = [e["choices"][0]["delta"] for e in events[:-1]]
    assert deltas[0]["content"] == "Hm."
    assert deltas[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"index": 0, "id": "abcDEF123", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
        ],
    }
    assert deltas[2:4] == [
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]},
    ]
    assert [e["choices"][0]["finish_reason"] for e in events[:-1]] == [None, None, None, None, "tool_calls"]
    assert events[-1] == "[DONE]"


async def test_arguments_are_sent_verbatim_even_when_not_json(server: FakeModelServer) -> None:
    broken = '{"city": "Par'
    server.default = Script(tool_calls=(weather_call(arguments=broken),))
    out = await stream(server, ASK, tools=TOOLS)
    assert out.calls[0]["arguments"] == broken


async def test_max_tokens_cuts_arguments_with_length(server: FakeModelServer) -> None:
    server.default = Script(tool_calls=(weather_call(),), argument_piece_chars=5)
    out = await stream(server, ASK, tools=TOOLS, max_tokens=2)
    assert out.finish_reason == "length"
    assert out.calls[0]["arguments"] == WEATHER_ARGS[:10]


async def test_cut_mid_arguments(server: FakeModelServer) -> None:
    server.default = Script(text="One two", tool_calls=(weather_call(),), failure="cut", fail_after=3)
    lines: list[bytes] = []
    body = {"model": MODEL, "stream": True, "messages": ASK, "tools": TOOLS}
    async with aiohttp.ClientSession() as http:
        async with http.post(server.base_url + "/v1/chat/completions", json=body) as resp:
            with pytest.raises(aiohttp.ClientPayloadError):
                await read_lines(resp, lines)
    events = [json.loads(line[6:]) for line in lines if line.startswith(b"data: ")]
    # Two text tokens, then the call's header and its first piece of arguments.
    assert [e["choices"][0]["delta"].get("content") for e in events] == ["One", " two", None, None]
    assert events[-1]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == WEATHER_ARGS[:6]
    rec = server.requests[-1]
    assert (rec.outcome, rec.tokens_sent) == ("cut", 3)


async def test_non_streaming_answer_carries_whole_calls(server: FakeModelServer) -> None:
    server.default = Script(tool_calls=(weather_call("abcDEF123"), ToolCallScript("get_time", "{}")))
    status, body = await post(server, {"messages": ASK, "tools": TOOLS})
    assert status == 200
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert calls[0] == {
        "id": "abcDEF123",
        "type": "function",
        "function": {"name": "get_weather", "arguments": WEATHER_ARGS},
    }
    assert calls[1]["function"] == {"name": "get_time", "arguments": "{}"} and ID_RE.fullmatch(calls[1]["id"])
    async with client_for(server) as client:
        out = await client.chat_completion(ASK, model=MODEL, tools=TOOLS)
    assert out.choices[0].finish_reason == "tool_calls"
    assert out.choices[0].message.tool_calls is not None
    assert out.choices[0].message.tool_calls[0].function.arguments == WEATHER_ARGS


# the agent ------------------------------------------------------------------------


def answered(messages: list[dict[str, Any]], out: Streamed, results: list[str]) -> list[dict[str, Any]]:
    """`messages` followed by the assistant's calls from `out` and a tool message per call."""
    calls = [out.calls[i] for i in sorted(out.calls)]
    assistant = {
        "role": "assistant",
        "content": out.text or None,
        "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls
        ],
    }
    tool_messages = [
        {"role": "tool", "tool_call_id": c["id"], "content": r} for c, r in zip(calls, results, strict=True)
    ]
    return [*messages, assistant, *tool_messages]


async def test_agent_calls_then_answers_from_the_results(server: FakeModelServer) -> None:
    server.mistral_tool_ids = True
    server.responder = ToolAgent({"weather": [weather_call()]}, before_calls="Checking.")
    first = await stream(server, ASK, tools=TOOLS)
    assert (first.text, first.finish_reason) == ("Checking.", "tool_calls")
    messages = answered(ASK, first, ["18°C, sunny"])
    second = await stream(server, messages, tools=TOOLS)
    assert (second.text, second.finish_reason, second.calls) == ("Using 18°C, sunny", "stop", {})
    assert server.requests[-1].tool_results == [(first.calls[0]["id"], "18°C, sunny")]
    # The next turn starts afresh: a question no key matches gets the default answer.
    messages = [*messages, {"role": "assistant", "content": second.text}, {"role": "user", "content": "Thanks!"}]
    third = await stream(server, messages, tools=TOOLS)
    assert third.text == "Default answer."
    assert server.requests[-1].tool_results == []


async def test_agent_rounds_and_custom_answer(server: FakeModelServer) -> None:
    def calls(text: str) -> list[ToolCallScript]:
        return [weather_call(), ToolCallScript("get_time", "{}")] if "Paris" in text else []

    server.responder = ToolAgent(calls, answer=";".join, rounds=2)
    first = await stream(server, ASK, tools=TOOLS)
    assert [c["name"] for c in first.calls.values()] == ["get_weather", "get_time"]
    messages = answered(ASK, first, ["sunny", "noon"])
    second = await stream(server, messages, tools=TOOLS)  # a second round, new ids
    assert second.finish_reason == "tool_calls" and len(second.calls) == 2
    assert {c["id"] for c in second.calls.values()}.isdisjoint(c["id"] for c in first.calls.values())
    third = await stream(server, answered(messages, second, ["rainy", "one"]), tools=TOOLS)
    assert third.text == "sunny;noon;rainy;one"


async def test_agent_leaves_other_requests_to_the_default(server: FakeModelServer) -> None:
    server.responder = ToolAgent({"weather": [weather_call()]})
    assert (await stream(server, ASK)).text == "Default answer."  # no tools offered
    other = [{"role": "user", "content": "Tell me a joke"}]
    assert (await stream(server, other, tools=TOOLS)).text == "Default answer."


# validation -----------------------------------------------------------------------


def with_calls(*tool_messages: dict[str, Any], ids: tuple[str, ...] = ("abcDEF123",)) -> list[dict[str, Any]]:
    calls = [{"id": i, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}} for i in ids]
    return [*ASK, {"role": "assistant", "content": None, "tool_calls": calls}, *tool_messages]


def tool_message(call_id: str = "abcDEF123", content: Any = "sunny") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


FOLLOW_UP = {"role": "user", "content": "And tomorrow?"}
BAD_REQUESTS = {
    "unknown tool_call_id": ({"messages": with_calls(tool_message("zzzzzzzzz"))}, "messages.[2].tool_call_id"),
    "unanswered call": (
        {"messages": with_calls(tool_message(), FOLLOW_UP, ids=("abcDEF123", "ghiJKL456"))},
        "messages.[1].role",
    ),
    "unanswered at the end": ({"messages": with_calls()}, "messages.[1].role"),
    "tool message without calls": ({"messages": [*ASK, tool_message()]}, "messages.[1].role"),
    "tool message after another message": (
        {"messages": with_calls(tool_message(), FOLLOW_UP, tool_message())},
        "messages.[4].role",
    ),
    "no tool_call_id": ({"messages": with_calls({"role": "tool", "content": "x"})}, "messages.[2].tool_call_id"),
    "tool content not a string": ({"messages": with_calls(tool_message(content={"t": 1}))}, "messages[2].content"),
    "call arguments not a string": (
        {
            "messages": [
                *ASK,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "abcDEF123", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
                    ],
                },
                tool_message(),
            ]
        },
        "messages[1].tool_calls[0].function.arguments",
    ),
    "call without id": (
        {"messages": [*ASK, {"role": "assistant", "tool_calls": [{"type": "function", "function": {}}]}]},
        "messages[1].tool_calls[0].id",
    ),
    "tools not a list": ({"messages": ASK, "tools": {"type": "function"}}, "tools"),
    "no tools": ({"messages": ASK, "tools": []}, "tools"),
    "tool of another type": ({"messages": ASK, "tools": [{"type": "retrieval"}]}, "tools[0].type"),
    "tool without name": ({"messages": ASK, "tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
    "tool name with spaces": (
        {"messages": ASK, "tools": [{"type": "function", "function": {"name": "get weather"}}]},
        "tools[0].function.name",
    ),
    "parameters not an object": (
        {"messages": ASK, "tools": [TOOLS[1], {"type": "function", "function": {"name": "f", "parameters": "{}"}}]},
        "tools[1].function.parameters",
    ),
}


@pytest.mark.parametrize(("body", "param"), BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
async def test_malformed_tool_requests_get_a_400(server: FakeModelServer, body: dict[str, Any], param: str) -> None:
    status, error = await post(server, body)
    assert status == 400
    assert error["error"]["type"] == "invalid_request_error" and error["error"]["param"] == param
    assert server.requests[-1].outcome == "http_error"


async def test_a_valid_conversation_with_calls_is_answered(server: FakeModelServer) -> None:
    messages = [*with_calls(tool_message()), {"role": "assistant", "content": "Sunny."}, FOLLOW_UP]
    status, body = await post(server, {"messages": messages, "tools": TOOLS})
    assert status == 200 and body["choices"][0]["message"]["content"] == "Default answer."


async def test_vllm_shape_and_huggingface_hub_error(server: FakeModelServer) -> None:
    server.api_style = "vllm"
    status, body = await post(server, {"messages": with_calls(tool_message("zzzzzzzzz"))})
    assert status == 400 and body["type"] == "BadRequestError" and "zzzzzzzzz" in body["message"]
    with pytest.raises(HfHubHTTPError) as caught:
        await stream(server, with_calls(tool_message("zzzzzzzzz")), tools=TOOLS)
    assert caught.value.response is not None and caught.value.response.status_code == 400


async def test_mistral_tool_ids(server: FakeModelServer) -> None:
    long_id = "call_0123456789"
    body = {"messages": with_calls(tool_message(long_id), ids=(long_id,)), "tools": TOOLS}
    assert (await post(server, body))[0] == 200
    server.mistral_tool_ids = True
    status, error = await post(server, body)
    assert status == 400
    assert error["error"]["message"] == "Tool call IDs should be alphanumeric strings with length 9!"
    assert error["error"]["param"] == "messages[1].tool_calls[0].id"
    assert (await post(server, {"messages": with_calls(tool_message()), "tools": TOOLS}))[0] == 200
