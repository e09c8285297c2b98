"""The live renderer, seen through a platform-like in-memory surface."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.shared.ratelimit import RateLimits
from bot.errors import FailureKind, ReplyFailure
from bot.reply.render import LiveRenderer
from bot.reply.split import open_fence
from bot.reply.surface import SurfaceLimits
from fakes.memory_surface import MemorySurface

FAST = SurfaceLimits(max_length=2000, indicator=" ▌", min_edit_interval=0.0)


async def pieces(
    text: str, *, every: float = 0.0, chunk: int = 7, fail: ReplyFailure | None = None
) -> AsyncIterator[str]:
    for start in range(0, len(text), chunk):
        if every:
            await asyncio.sleep(every)
        yield text[start : start + chunk]
    if fail is not None:
        raise fail


def rejoin(messages: list[str]) -> str:
    """The reply as one text: fences the renderer closed and reopened at splits are removed."""
    joined = messages[0]
    for message in messages[1:]:
        opener = message.split("\n", 1)[0]
        before_close = joined[: joined.rfind("\n")]
        rest = message
        if opener.startswith("```") and joined.endswith("\n```") and open_fence(before_close) == opener:
            joined, rest = before_close, message[len(opener) + 1 :]
        joined += "\n" + rest  # each message starts on a line of its own
    return joined


def without_fence_lines(text: str) -> str:
    return re.sub(r"(?m)^[ \t]*```[^\n]*$", "", text)


def same_words(a: str, b: str) -> bool:
    return "".join(a.split()) == "".join(b.split())


async def test_first_text_appears_as_soon_as_the_first_tokens_exist() -> None:
    surface = MemorySurface(SurfaceLimits(max_length=2000, min_edit_interval=1.0))
    started = time.time()
    result = await LiveRenderer(surface).render(pieces("Hello world, streaming here.", every=0.05, chunk=6))
    first = surface.writes[0]
    assert first.kind == "post" and first.text.startswith("Hello")
    assert first.text.endswith(" ▌")  # still writing
    assert first.at - started < 0.05 + 0.15  # the first piece comes at 50 ms; no throttle delays it
    assert surface.messages == ["Hello world, streaming here."]  # indicator gone at the end
    assert result.complete and result.failure is None


async def test_final_text_lands_promptly_even_mid_throttle() -> None:
    surface = MemorySurface(SurfaceLimits(max_length=2000, min_edit_interval=5.0))
    stream_done_at = 0.0

    async def timed() -> AsyncIterator[str]:
        nonlocal stream_done_at
        async for piece in pieces("one two three four five six", every=0.02, chunk=4):
            yield piece
        stream_done_at = time.time()

    await LiveRenderer(surface).render(timed())
    assert surface.final_visible_at is not None
    assert surface.final_visible_at - stream_done_at < 0.5  # not held back by the 5 s edit interval
    assert surface.messages == ["one two three four five six"]


async def test_long_replies_split_at_paragraphs_within_the_limit() -> None:
    paragraphs = [f"Paragraph {n}: " + "some words here " * 8 for n in range(12)]
    text = "\n\n".join(paragraphs)
    surface = MemorySurface(SurfaceLimits(max_length=400, min_edit_interval=0.0))
    await LiveRenderer(surface).render(pieces(text, chunk=11))
    assert len(surface.messages) > 3
    assert all(len(message) <= 400 for message in surface.messages)
    assert all(message.startswith("Paragraph") for message in surface.messages)  # cut between paragraphs
    assert same_words(rejoin(surface.messages), text)


async def test_code_fence_across_a_split_is_closed_and_reopened() -> None:
    code = "\n".join(f"    print('line {n}')" for n in range(60))
    text = f"Here is the script:\n\n```python\n{code}\n```\n\nThat is all."
    surface = MemorySurface(SurfaceLimits(max_length=500, min_edit_interval=0.0))
    await LiveRenderer(surface).render(pieces(text, chunk=13))
    assert len(surface.messages) >= 3
    for message in surface.messages:
        assert len(message) <= 500
        assert open_fence(message) is None, message  # every message renders with balanced fences
    assert surface.messages[1].startswith("```python\n")
    assert same_words(rejoin(surface.messages), text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.lists(
        st.sampled_from(["alpha", "beta", "\n```\n", "\n```js\n", "\n", "\n\n", "x" * 30, "éü", "🙂", "word"]),
        min_size=1,
        max_size=400,
    ),
    limit=st.integers(min_value=60, max_value=300),
)
def test_final_text_always_equals_the_model_output(words: list[str], limit: int) -> None:
    text = " ".join(words)
    if not text.strip():
        return
    surface = MemorySurface(SurfaceLimits(max_length=limit, min_edit_interval=0.0))
    result = asyncio.run(LiveRenderer(surface).render(pieces(text, chunk=5)))
    assert result.text == text
    assert all(len(message) <= limit for message in surface.messages)
    assert all(open_fence(message) is None for message in surface.messages[:-1])
    # Fence lines are added at splits, so compare everything else exactly.
    assert same_words(without_fence_lines("\n".join(surface.messages)), without_fence_lines(text))


async def test_edits_stay_within_a_shared_budget(rate_limits: RateLimits) -> None:
    edits = rate_limits.bucket("test", "edits", 4, 1.0)
    surfaces = [
        MemorySurface(SurfaceLimits(2000, min_edit_interval=0.0), rate_limits=rate_limits, edit_budgets=[edits])
        for _ in range(3)
    ]
    text = "token " * 150
    await asyncio.gather(*(LiveRenderer(surface).render(pieces(text, every=0.01, chunk=6)) for surface in surfaces))
    edit_times = sorted(w.at for s in surfaces for w in s.writes if w.kind == "edit")
    for index, at in enumerate(edit_times):
        in_window = [t for t in edit_times[index:] if t - at < 1.0 - 0.01]
        assert len(in_window) <= 4
    for surface in surfaces:
        assert surface.messages == [text]  # every reply still got its final text


async def test_without_budget_for_a_final_edit_the_reply_is_held_and_posted_whole(rate_limits: RateLimits) -> None:
    edits = rate_limits.bucket("test", "edits", 1, 60.0)
    assert await rate_limits.promise((edits,))  # another reply holds the only edit
    surface = MemorySurface(SurfaceLimits(2000, min_edit_interval=0.0), rate_limits=rate_limits, edit_budgets=[edits])
    await LiveRenderer(surface).render(pieces("a held answer arrives whole", every=0.01, chunk=3))
    assert [(w.kind, w.final, w.text) for w in surface.writes] == [("post", True, "a held answer arrives whole")]
    assert surface.waiting_shown_at is not None


async def test_a_failure_keeps_the_partial_text_and_says_why() -> None:
    surface = MemorySurface(FAST)
    failure = ReplyFailure(FailureKind.CUT, "peer closed connection")
    result = await LiveRenderer(surface).render(pieces("The answer starts well", fail=failure))
    assert surface.messages == ["The answer starts well\n\n⚠️ " + FailureKind.CUT.reason]
    assert not result.complete and result.failure is failure
    assert surface.writes[-1].final


async def test_a_failure_inside_a_code_block_closes_it_before_the_reason() -> None:
    surface = MemorySurface(FAST)
    failure = ReplyFailure(FailureKind.STALLED)
    await LiveRenderer(surface).render(pieces("```python\nprint(1)\n", fail=failure))
    assert surface.messages[-1].endswith("```\n\n⚠️ " + FailureKind.STALLED.reason)
    assert open_fence(surface.messages[-1]) is None


async def test_a_failure_before_any_text_is_shown_as_the_reason_alone() -> None:
    surface = MemorySurface(FAST)
    await LiveRenderer(surface).render(pieces("", fail=ReplyFailure(FailureKind.AUTH)))
    assert surface.messages == ["⚠️ " + FailureKind.AUTH.reason]


async def test_an_empty_answer_is_reported() -> None:
    surface = MemorySurface(FAST)
    result = await LiveRenderer(surface).render(pieces(""))
    assert surface.messages == ["⚠️ " + FailureKind.EMPTY.reason]
    assert not result.complete


async def test_a_cancelled_reply_is_not_left_streaming() -> None:
    surface = MemorySurface(FAST)

    async def endless() -> AsyncIterator[str]:
        while True:
            await asyncio.sleep(0.01)
            yield "more "

    task = asyncio.create_task(LiveRenderer(surface).render(endless()))
    await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not surface.messages[-1].endswith(" ▌")
    assert surface.messages[-1].endswith(FailureKind.INTERRUPTED.reason)


async def test_byte_limited_platforms_are_split_by_bytes() -> None:
    def utf8_length(text: str) -> int:
        return len(text.encode("utf-8"))

    surface = MemorySurface(SurfaceLimits(max_length=300, measure=utf8_length, min_edit_interval=0.0))
    text = "ünïcödé " * 120
    await LiveRenderer(surface).render(pieces(text, chunk=9))
    assert all(len(m.encode()) <= 300 for m in surface.messages)
    assert same_words("".join(surface.messages), text)
    assert re.fullmatch(r"(ünïcödé ?)+", surface.messages[0])


async def test_a_stalled_answer_shows_what_it_wrote_once_a_write_is_spare_again(rate_limits: RateLimits) -> None:
    """An interim edit that found no write to spare is tried again even when the model sends
    nothing more: the person sees all that a stalled answer wrote, not only its first words."""
    edits = rate_limits.bucket("test", "edits", 2, 1.0)
    surface = MemorySurface(FAST, rate_limits=rate_limits, edit_budgets=(edits,))
    stalled = asyncio.Event()
    other: list[str | None] = []

    async def stalling() -> AsyncIterator[str]:
        yield "The first"
        while not surface.messages:
            await asyncio.sleep(0.01)
        other.append(await rate_limits.promise((edits,)))  # another reply's final edit: no write to spare now
        assert other[0]
        yield " part of it"
        stalled.set()
        await asyncio.sleep(30)  # the model sends nothing more

    rendering = asyncio.create_task(LiveRenderer(surface).render(stalling()))
    await stalled.wait()
    await asyncio.sleep(0.1)
    assert surface.messages == ["The first ▌"]
    await rate_limits.release((edits,), other[0])  # the other reply is done
    deadline = time.monotonic() + 3.0
    while surface.messages != ["The first part of it ▌"] and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    rendering.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await rendering
    assert "The first part of it ▌" in [write.text for write in surface.writes]


async def test_the_waiting_indicator_ends_even_if_its_cancellation_is_lost() -> None:
    """A library call can swallow the cancellation that stops the waiting indicator (redis-py's
    sends go through asyncio.wait_for, which does on Python 3.11): it is cancelled again."""
    lose_until = float("inf")
    ended = asyncio.Event()

    class Forgetful(MemorySurface):
        async def show_waiting(self) -> None:
            try:
                while True:  # like Discord's typing indicator: until cancelled
                    try:
                        await asyncio.sleep(0.01)
                    except asyncio.CancelledError:
                        if time.monotonic() >= lose_until:
                            raise
            finally:
                ended.set()

    surface = Forgetful(FAST)
    result = await LiveRenderer(surface).render(pieces("Hello there", every=0.05))
    lose_until = time.monotonic() + 0.3  # every cancellation the reply's writing sent is lost
    assert result.complete and surface.messages == ["Hello there"]
    await asyncio.wait_for(ended.wait(), 3.0)


async def test_an_answer_stopped_before_its_reading_started_ends_stopped_instead_of_hanging() -> None:
    """A page deleting the conversation the very moment its answer starts: the stop comes before the model's stream
    is read at all, and the answer still ends (it held the conversation: nothing else could happen there)."""
    surface = MemorySurface(SurfaceLimits(max_length=2000, min_edit_interval=0.05))
    renderer = LiveRenderer(surface)
    rendering = asyncio.ensure_future(renderer.render(pieces("never read", chunk=3)))
    await asyncio.sleep(0)  # render() has created its reader task, which hasn't taken a step yet
    renderer.stop(ReplyFailure(FailureKind.STOPPED))
    result = await asyncio.wait_for(rendering, 5)
    assert result.failure is not None and result.failure.kind is FailureKind.STOPPED
    assert result.text == ""
