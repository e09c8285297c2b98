"""Marking help threads solved, the shared flow (adapters.shared.helpdesk.solving) against the real Redis, with a
knowledge that records its passages by source: a solved thread is one passage of its question and accepted answer;
two marks of one thread at once (two processes, two people) leave one passage, the thread's accepted answer's; an
unmark racing a mark leaves none or the mark's, as the record says; an edit re-reads it, a deletion takes it out."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from adapters.shared.helpdesk.solving import Marked, Solving
from adapters.shared.solved_threads import Answer, HelpThread, Solutions
from bot.knowledge.opener import KnowledgeOpener
from bot.knowledge.passages import Passage
from bot.knowledge.service import Knowledge
from bot.state.redis_client import RedisClient, close, connect
from fakes.harness.processes import REDIS_URL

THREAD = HelpThread("forum:1", "help", "t1", "alice", "How do I reset the badge reader?", "#help > badge", "u", "help")


class Embedder:
    name = "none"


class Stored:
    """The knowledge's passages by source; each write yields, as a database round trip does."""

    def __init__(self) -> None:
        self.sources: dict[str, list[str]] = {}
        self.embedder = Embedder()

    async def replace_source(self, scope: str, source: str, passages: list[Passage]) -> list[Any]:
        await asyncio.sleep(random.uniform(0, 0.01))
        self.sources[source] = [passage.text for passage in passages]
        return []

    async def forget_source(self, scope: str, source: str) -> int:
        await asyncio.sleep(random.uniform(0, 0.01))
        return len(self.sources.pop(source, []))

    def passages(self) -> list[str]:
        return [text for texts in self.sources.values() for text in texts]


@pytest.fixture
async def redis() -> AsyncIterator[RedisClient]:
    client = connect(REDIS_URL, cluster=False)
    yield client
    await close(client)


def solving(redis: RedisClient, key_prefix: str, stored: Stored) -> Solving:
    async def open_knowledge() -> Knowledge:
        return cast(Knowledge, stored)

    return Solving(Solutions(redis, key_prefix, "forum"), KnowledgeOpener(open_knowledge, lambda _: None), "forum")


def answer(message: str, author: str, text: str, *, helper: bool) -> Answer:
    return Answer(message, author, author or "the bot", text, helper)


async def test_a_solved_thread_is_one_passage_followed_through_edits_and_deletion(
    redis: RedisClient, key_prefix: str
) -> None:
    stored = Stored()
    one = solving(redis, key_prefix, stored)
    fix = answer("m2", "helen", "Hold the red button for ten seconds.", helper=True)
    assert (await one.mark(THREAD, fix, "alice"))[0] is Marked.MARKED
    [passage] = stored.passages()
    assert passage.startswith("Question: How do I reset the badge reader?")
    assert passage.endswith("Accepted answer (helen): Hold the red button for ten seconds.")
    assert list(stored.sources) == ["solved:helper:t1"]  # ranked as a helper's
    assert (await one.mark(THREAD, fix, "alice"))[0] is Marked.ALREADY
    await one.answer_edited("forum:1", "m2", "Unplug it for a minute.")
    assert stored.passages()[0].endswith("Accepted answer (helen): Unplug it for a minute.")
    await one.answer_edited("forum:1", "m9", "another message's edit")  # not an accepted answer: nothing
    await one.answers_gone("forum:1", ["m2"], "deleted")
    assert stored.passages() == []
    assert await one.solution("forum:1", "t1") is None


async def test_two_marks_at_once_leave_one_passage_the_accepted_answers(redis: RedisClient, key_prefix: str) -> None:
    other = connect(REDIS_URL, cluster=False)  # a second process's connections
    try:
        for round_ in range(10):
            stored = Stored()
            mine, theirs = (
                solving(redis, f"{key_prefix}{round_}:", stored),
                solving(other, f"{key_prefix}{round_}:", stored),
            )
            bot_answer = answer("m1", "", "Install WireGuard.", helper=True)
            persons = answer("m3", "bob", "Ask IT for a badge.", helper=False)
            await asyncio.gather(mine.mark(THREAD, bot_answer, "alice"), theirs.mark(THREAD, persons, "alice"))
            accepted = await mine.solution("forum:1", "t1")
            assert accepted is not None
            [passage] = stored.passages()
            assert passage.endswith(accepted.answer.text), round_
            assert list(stored.sources) == [accepted.source]
    finally:
        await close(other)


async def test_an_unmark_racing_a_mark_leaves_what_the_record_says(redis: RedisClient, key_prefix: str) -> None:
    stored = Stored()
    one = solving(redis, key_prefix, stored)
    first = answer("m1", "", "Install WireGuard.", helper=True)
    await one.mark(THREAD, first, "alice")
    second = answer("m3", "bob", "Ask IT for a badge.", helper=False)
    await asyncio.gather(one.mark(THREAD, second, "alice"), one.unmark("forum:1", "t1"))
    accepted = await one.solution("forum:1", "t1")
    expected = [] if accepted is None else [accepted.source]
    assert list(stored.sources) == expected
