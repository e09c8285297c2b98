"""Merging the text deltas of one read: huggingface_hub must read the same answer from the
merged body as from the server's, however the body is cut into reads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from huggingface_hub.inference._common import _format_chat_completion_stream_output

from bot.sse import DeltaMerger, TextDemand


def event(content: str | None = None, *, finish: str | None = None, **extra: Any) -> bytes:
    delta: dict[str, Any] = {"role": "assistant"}
    if content is not None:
        delta["content"] = content
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "mistralai/Mistral-7B-Instruct-v0.3",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


FINISH = event("", finish="stop", usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})
DONE = b"data: [DONE]\n\n"


def read_as_huggingface_hub(body: bytes) -> tuple[str, list[str | None], int]:
    """The text, finish reasons and number of chunks huggingface_hub's own parser gets."""
    text, finishes, chunks = "", [], 0
    for line in body.decode().splitlines():
        try:
            chunk = _format_chat_completion_stream_output(line.strip())
        except StopIteration:
            break
        if chunk is None:
            continue
        chunks += 1
        choice = chunk.choices[0] if chunk.choices else None
        if choice is not None:
            text += choice.delta.content or ""
            finishes.append(choice.finish_reason)
    return text, finishes, chunks


def merged(reads: list[bytes]) -> bytes:
    merger = DeltaMerger()
    return b"".join(merger.feed(read) for read in reads)


def cut(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    return [body[a:b] for a, b in zip(points, points[1:])]


def test_text_deltas_that_arrive_together_reach_the_client_as_one_chunk() -> None:
    body = event("Hello") + event(",") + event(" world") + FINISH + DONE
    text, finishes, chunks = read_as_huggingface_hub(merged([body]))
    assert text == "Hello, world"
    assert finishes == [None, "stop"]
    assert chunks == 2  # the three pieces of text, then the finish


def test_each_read_is_merged_on_its_own_and_nothing_waits_for_a_later_read() -> None:
    merger = DeltaMerger()
    first = merger.feed(event("a") + event("b"))
    assert read_as_huggingface_hub(first) == ("ab", [None], 1)
    second = merger.feed(event("c"))
    assert read_as_huggingface_hub(second) == ("c", [None], 1)


def test_finish_error_and_done_lines_pass_through_in_order() -> None:
    error = b'data: {"error":"Model is overloaded","error_type":"overloaded"}\n\n'
    body = event("a") + event("b") + b": keep-alive\n\n" + event("c") + error + DONE
    out = merged([body])
    assert error in out and b": keep-alive" in out
    assert out.index(b'"content":"ab"') < out.index(b": keep-alive") < out.index(b'"content":"c"') < out.index(error)


def test_chunks_that_carry_more_than_text_are_left_alone() -> None:
    with_logprobs = event("b").replace(b'"logprobs":null', b'"logprobs":{"content":[]}')
    two_choices = event("c").replace(b'"choices":[{', b'"choices":[{"index":1,"delta":{"content":"x"}},{')
    # Same start and end as a text chunk; its "text" would be `e","tool":"x`.
    field_after_text = event("e").replace(b'"content":"e"}', b'"content":"e","tool":"x"}')
    body = event("a") + with_logprobs + two_choices + event("d") + field_after_text + event("f") + FINISH
    out = merged([body])
    assert with_logprobs in out and two_choices in out and field_after_text in out


def test_a_different_chunk_shape_starts_a_new_merged_chunk() -> None:
    other_id = event("c").replace(b"chatcmpl-1", b"chatcmpl-2")
    body = event("a") + event("b") + other_id + event("d") + FINISH
    text, _, chunks = read_as_huggingface_hub(merged([body]))
    assert text == "abcd"
    assert chunks == 4  # "ab", "c", "d" and the finish


texts = st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(pieces=texts, cuts=st.lists(st.integers(min_value=0, max_value=100_000), max_size=12), crlf=st.booleans())
def test_whatever_the_reads_the_client_gets_the_same_text_and_finish(
    pieces: list[str], cuts: list[int], crlf: bool
) -> None:
    body = b"".join(event(piece) for piece in pieces) + FINISH + DONE
    if crlf:
        body = body.replace(b"\n", b"\r\n")
    expected_text, expected_finishes, expected_chunks = read_as_huggingface_hub(body)
    text, finishes, chunks = read_as_huggingface_hub(merged(cut(body, cuts)))
    assert text == expected_text == "".join(pieces)
    assert [f for f in finishes if f] == [f for f in expected_finishes if f] == ["stop"]
    assert chunks <= expected_chunks


def demand_in(seconds: float) -> TextDemand:
    demand = TextDemand()
    demand.use_in(seconds)
    return demand


def test_text_waits_unparsed_until_the_reader_will_show_it_then_comes_as_one_chunk() -> None:
    demand = demand_in(60)
    merger = DeltaMerger(demand, lead=0.075)
    assert merger.feed(event("Hello")) == b""
    assert merger.feed(event(",") + event(" world")) == b""
    demand.use_now()
    assert read_as_huggingface_hub(merger.feed(event("!"))) == ("Hello, world!", [None], 1)


def test_kept_text_comes_out_before_the_finish_and_nothing_after_it_waits() -> None:
    merger = DeltaMerger(demand_in(60), lead=0.075)
    merger.feed(event("Hello") + event(" there"))
    out = merger.feed(event(".") + FINISH + DONE)
    assert read_as_huggingface_hub(out) == ("Hello there.", [None, "stop"], 2)


def test_a_line_the_read_cut_in_two_is_merged_once_it_is_whole() -> None:
    demand = demand_in(60)
    merger = DeltaMerger(demand, lead=0.075)
    second = event(" there")
    assert merger.feed(event("Hello") + second[:20]) == b""
    assert merger.feed(second[20:]) == b""
    demand.use_now()
    assert read_as_huggingface_hub(merger.feed(event("."))) == ("Hello there.", [None], 1)


def test_what_is_kept_when_the_body_ends_or_breaks_is_handed_over() -> None:
    merger = DeltaMerger(demand_in(60), lead=0.075)
    merger.feed(event("Partial") + event(" answer"))
    assert read_as_huggingface_hub(merger.flush()) == ("Partial answer", [None], 1)
    assert merger.flush() == b""


@settings(max_examples=200, deadline=None)
@given(pieces=texts, cuts=st.lists(st.integers(min_value=0, max_value=100_000), max_size=12))
def test_text_kept_for_the_end_still_reaches_the_client_whole(pieces: list[str], cuts: list[int]) -> None:
    demand = TextDemand()
    demand.use_at_end()  # a reply posted whole once the model is done
    merger = DeltaMerger(demand, lead=0.075)
    body = b"".join(event(piece) for piece in pieces) + FINISH + DONE
    out = b"".join(merger.feed(read) for read in cut(body, cuts)) + merger.flush()
    text, finishes, chunks = read_as_huggingface_hub(out)
    assert text == "".join(pieces)
    assert [f for f in finishes if f] == ["stop"]
    assert chunks <= 2  # all the text at once, then the finish


def chunked(*events: bytes) -> bytes:
    """Events as an HTTP/1.1 chunked body carries them: one chunk each."""
    return b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)


def primed() -> DeltaMerger:
    merger = DeltaMerger()
    merger.feed(event("Hello") + event(","))  # merging them, it learns what its text events look like
    return merger


def test_unread_bytes_that_are_only_more_text_may_wait_in_the_socket() -> None:
    assert primed().only_text(chunked(event(" there"), event("!"), event(" friend\n")))


@pytest.mark.parametrize(
    "last",
    [
        chunked(FINISH),
        chunked(DONE),
        chunked(b'data: {"error":"Model is overloaded","error_type":"overloaded"}\n\n'),
        b"0\r\n\r\n",  # the body's last chunk: the reply ended without a finish
        chunked(event(" a")[:30]) + chunked(event(" a")[30:]),  # an event split across chunks
    ],
    ids=["finish", "done", "error", "end-of-body", "split-event"],
)
def test_anything_but_more_text_must_be_read(last: bytes) -> None:
    assert not primed().only_text(chunked(event(" there")) + last)


def test_nothing_may_wait_before_the_stream_shows_what_its_text_looks_like() -> None:
    assert not DeltaMerger().only_text(chunked(event("Hello")))

