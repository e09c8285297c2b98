"""Votes on answers and the knowledge gaps an admin sees (adapters.shared.feedback.records,
adapters.shared.feedback.gaps), against the real Redis (and a Redis Cluster): one vote per person that can be changed,
a 👎 and its reason listed until taken back, skipped questions and unsourced answers listed for 30 days, /forget-me and
a server's removal deleting what they must and nothing else, concurrent votes all counted; then paraphrased questions
grouped, the CSV safe to open in a spreadsheet, and the chat summary pinging no one and fitting its message."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator

import pytest

from adapters.shared.feedback.gaps import GapGroup, describe_gaps, gaps_csv, group_questions
from adapters.shared.feedback.records import AnswerInfo, Feedback, GapEntry, GapKind
from bot.errors import FailureKind, ReplyFailure
from bot.knowledge.embeddings import LocalEmbedder
from bot.state.redis_client import RedisClient, close, connect
from fakes.harness.processes import REDIS_URL, free_port
from tests.system.cluster import OwnCluster

SCOPE = "discord:guild:1"
OTHER_SCOPE = "discord:guild:2"
DAY = 86_400.0
SOURCES = (("Handbook", "https://docs.example/handbook"),)


def answer_info(
    question: str = "How do I reset my password?",
    *,
    asker: str = "discord:100",
    scope: str = SCOPE,
    sources: tuple[tuple[str, str], ...] = SOURCES,
    link: str = "https://discord.com/channels/1/2/3",
    at: float | None = None,
) -> AnswerInfo:
    return AnswerInfo(
        platform=scope.split(":", 1)[0],
        scope=scope,
        link=link,
        question=question,
        model="Mistral 7B",
        sources=sources,
        asker=asker,
        channel="2",
        at=time.time() if at is None else at,
    )


@pytest.fixture
async def redis() -> AsyncIterator[RedisClient]:
    client = connect(REDIS_URL, cluster=False)
    yield client
    await close(client)


@pytest.fixture
def feedback(redis: RedisClient, key_prefix: str) -> Feedback:
    return Feedback(redis, key_prefix, answer_seconds=3600)


async def test_one_vote_per_person_which_they_can_change(feedback: Feedback) -> None:
    info = answer_info()
    await feedback.record_answer("a1", info)
    assert await feedback.answer("a1") == info

    first = await feedback.vote("a1", "discord:200", up=True)
    assert (first.status, first.ups, first.downs) == ("new", 1, 0)
    again = await feedback.vote("a1", "discord:200", up=True)
    assert (again.status, again.ups, again.downs) == ("unchanged", 1, 0)
    changed = await feedback.vote("a1", "discord:200", up=False)
    assert (changed.status, changed.ups, changed.downs) == ("changed", 0, 1)
    other = await feedback.vote("a1", "discord:300", up=True)
    assert (other.status, other.ups, other.downs) == ("new", 1, 1)


async def test_a_vote_on_an_unknown_or_expired_answer_is_missing(redis: RedisClient, key_prefix: str) -> None:
    feedback = Feedback(redis, key_prefix, answer_seconds=1)
    assert (await feedback.vote("never-recorded", "discord:200", up=True)).missing

    await feedback.record_answer("a1", answer_info())
    assert (await feedback.vote("a1", "discord:200", up=False)).status == "new"
    await asyncio.sleep(1.3)
    outcome = await feedback.vote("a1", "discord:300", up=True)
    assert (outcome.status, outcome.ups, outcome.downs) == ("missing", 0, 0)
    assert await feedback.answer("a1") is None
    assert not await feedback.give_reason("a1", "discord:200", "too late")


async def test_a_downvote_and_its_reason_are_listed_until_it_becomes_an_upvote(feedback: Feedback) -> None:
    info = answer_info(link="https://discord.com/channels/1/2/42")
    await feedback.record_answer("a1", info)
    await feedback.vote("a1", "discord:200", up=False)
    assert not await feedback.give_reason("a1", "discord:300", "I never voted")  # no 👎 of theirs
    assert await feedback.give_reason("a1", "discord:200", "  The page it cites moved 🙂 " + "x" * 2_000)

    [entry] = await feedback.gaps(SCOPE)
    assert (entry.kind, entry.question, entry.link, entry.model, entry.person) == (
        "downvoted",
        info.question,
        "https://discord.com/channels/1/2/42",
        "Mistral 7B",
        "discord:200",
    )
    assert entry.reason.startswith("The page it cites moved 🙂 xxx")
    assert len(entry.reason) == 1_000
    assert await feedback.gaps(OTHER_SCOPE) == []

    assert (await feedback.vote("a1", "discord:200", up=True)).status == "changed"
    assert await feedback.gaps(SCOPE) == []
    assert not await feedback.give_reason("a1", "discord:200", "changed my mind")


async def test_skipped_questions_and_answers_without_sources_are_listed(feedback: Feedback) -> None:
    now = time.time()
    await feedback.note_unanswered(SCOPE, "Who owns the build server?", "https://l/1", "discord:100", "2", now - 60)
    await feedback.note_unanswered(SCOPE, "Who owns the build server?", "https://l/1", "discord:100", "2", now - 60)
    await feedback.record_answer("a1", answer_info("Is there a VPN?", asker="discord:101", sources=(), at=now - 30))
    await feedback.record_answer("a2", answer_info("Sourced answer", at=now))  # cites a source: no gap

    listed = await feedback.gaps(SCOPE)
    assert [(entry.kind, entry.question, entry.person) for entry in listed] == [
        ("no_source", "Is there a VPN?", "discord:101"),  # newest first
        ("unanswered", "Who owns the build server?", "discord:100"),
    ]
    assert listed[0].model == "Mistral 7B"
    assert listed[1].link == "https://l/1"


async def test_entries_older_than_30_days_are_not_listed_and_every_key_expires(
    feedback: Feedback, redis: RedisClient, key_prefix: str
) -> None:
    now = time.time()
    await feedback.note_unanswered(SCOPE, "31 days old", "https://l/31", "discord:100", "2", now - 31 * DAY)
    await feedback.note_unanswered(SCOPE, "29 days old", "https://l/29", "discord:100", "2", now - 29 * DAY)
    await feedback.note_unanswered(SCOPE, "today", "https://l/0", "discord:100", "2", now)
    await feedback.record_answer("a1", answer_info())
    await feedback.vote("a1", "discord:200", up=False)

    assert [entry.question for entry in await feedback.gaps(SCOPE, now=now)][1:] == ["today", "29 days old"]
    assert [entry.question for entry in await feedback.gaps(SCOPE, now=now + 2 * DAY)][-1] == "today"
    keys = [key async for key in redis.scan_iter(match=f"{key_prefix}*")]
    assert keys
    for key in keys:
        assert 0 < await redis.ttl(key) <= 30 * DAY, key


async def test_forget_person_deletes_their_votes_questions_and_gaps_and_keeps_others(feedback: Feedback) -> None:
    alice, bob, carol, dave = "discord:1", "discord:2", "discord:3", "discord:4"
    await feedback.record_answer("x", answer_info("Alice's question", asker=alice, sources=()))  # no_source gap
    await feedback.vote("x", bob, up=False)  # a gap about Alice's question
    await feedback.give_reason("x", bob, "wrong")
    await feedback.record_answer("y", answer_info("Carol's question", asker=carol))
    await feedback.vote("y", alice, up=False)
    await feedback.vote("y", bob, up=True)
    await feedback.vote("y", dave, up=False)
    await feedback.note_unanswered(SCOPE, "Dave's question", "https://l/d", dave, "2", time.time())
    await feedback.note_unanswered("slack:T1", "Alice on Slack", "https://l/s", alice, "C1", time.time())

    assert await feedback.forget_person(alice, scopes_prefix="discord:") == 4  # her vote, 3 gap entries

    assert await feedback.answer("x") is None
    assert (await feedback.vote("x", carol, up=True)).missing
    counts = await feedback.vote("y", bob, up=True)
    assert (counts.ups, counts.downs) == (1, 1)  # Alice's 👎 is gone, Dave's stays
    left = {(entry.kind, entry.question, entry.person) for entry in await feedback.gaps(SCOPE)}
    assert left == {("downvoted", "Carol's question", dave), ("unanswered", "Dave's question", dave)}
    assert [entry.question for entry in await feedback.gaps("slack:T1")] == ["Alice on Slack"]  # another prefix

    assert await feedback.forget_person(alice) == 1
    assert await feedback.gaps("slack:T1") == []
    assert await feedback.forget_person(alice) == 0


async def test_forget_scope_deletes_that_scopes_gaps_only(feedback: Feedback) -> None:
    await feedback.note_unanswered(SCOPE, "Here", "https://l/1", "discord:1", "2", time.time())
    await feedback.record_answer("a1", answer_info("Unsourced", sources=()))
    await feedback.vote("a1", "discord:5", up=False)
    await feedback.note_unanswered(OTHER_SCOPE, "Elsewhere", "https://l/2", "discord:1", "3", time.time())

    assert await feedback.forget_scope(SCOPE) == 3
    assert await feedback.gaps(SCOPE) == []
    assert [entry.question for entry in await feedback.gaps(OTHER_SCOPE)] == ["Elsewhere"]
    assert await feedback.forget_scope(SCOPE) == 0


async def test_votes_at_the_same_time_from_two_processes_all_count(redis: RedisClient, key_prefix: str) -> None:
    other = connect(REDIS_URL, cluster=False)  # a second process's connections
    try:
        processes = [Feedback(redis, key_prefix, answer_seconds=3600), Feedback(other, key_prefix, answer_seconds=3600)]
        await processes[0].record_answer("a1", answer_info())
        outcomes = await asyncio.gather(
            *(processes[n % 2].vote("a1", f"discord:{n}", up=n < 14) for n in range(20)),
            *(processes[n % 2].vote("a1", f"discord:{n}", up=n < 14) for n in range(20)),  # each vote twice
        )
        assert sorted(outcome.status for outcome in outcomes) == ["new"] * 20 + ["unchanged"] * 20
        final = await processes[1].vote("a1", "discord:0", up=True)
        assert (final.ups, final.downs) == (14, 6)
        assert len(await processes[0].gaps(SCOPE)) == 6
    finally:
        await close(other)


async def test_on_a_redis_cluster_votes_gaps_and_forgetting_work(redis_cluster: OwnCluster, key_prefix: str) -> None:
    client = connect(redis_cluster.url, cluster=True)
    try:
        feedback = Feedback(client, key_prefix, answer_seconds=3600)
        await feedback.record_answer("a1", answer_info(sources=()))
        votes = await asyncio.gather(*(feedback.vote("a1", f"slack:T1:U{n}", up=n % 2 == 0) for n in range(10)))
        assert {outcome.status for outcome in votes} == {"new"}
        assert await feedback.give_reason("a1", "slack:T1:U1", "outdated")
        await feedback.note_unanswered(SCOPE, "Skipped", "https://l/1", "slack:T1:U9", "C1", time.time())
        listed = await feedback.gaps(SCOPE)
        assert sorted(entry.kind for entry in listed) == ["downvoted"] * 5 + ["no_source", "unanswered"]

        assert await feedback.forget_person("slack:T1:U1") == 2  # the vote and its gap entry
        outcome = await feedback.vote("a1", "slack:T1:U0", up=True)
        assert (outcome.ups, outcome.downs) == (5, 4)
        assert await feedback.forget_scope(SCOPE) == 6
        assert await feedback.gaps(SCOPE) == []
    finally:
        await close(client)  # the cluster, keys and all, is removed at the end of the run


def entry(question: str, at: float, kind: GapKind = "unanswered", reason: str = "") -> GapEntry:
    return GapEntry(kind, question, f"https://l/{int(at)}", reason, "Mistral 7B", "discord:1", at)


async def test_paraphrased_questions_are_grouped_the_biggest_group_first() -> None:
    embedder = LocalEmbedder()
    try:
        entries = [
            entry("How do I reset my password?", 10),
            entry("What time does the office open?", 9),
            entry("I forgot my password, how can I reset it?", 8),
            entry("", 7, kind="no_source"),
            entry("When does the office open in the morning?", 6),
            entry("Password reset: how do I do it?", 5),
            entry("Which printer driver do I install for the third floor?", 4),
        ]
        groups = await group_questions(entries, embedder.embed, threshold=0.6)
    finally:
        await embedder.aclose()

    assert [[item.at for item in group.entries] for group in groups] == [[10, 8, 5], [9, 6], [4], [7]]
    assert groups[0].title == "How do I reset my password?"
    assert groups[-1].title == ""


def test_the_csv_lists_every_entry_and_no_cell_starts_a_formula() -> None:
    groups = [
        GapGroup((entry('=HYPERLINK("http://evil","click")', 1_700_000_000), entry("+1 works?", 1_699_999_000))),
        GapGroup((entry("Plain, with a comma", 1_600_000_000, kind="downvoted", reason="@here wrong"),)),
    ]
    rows = list(csv.reader(io.StringIO(gaps_csv(groups).decode("utf-8"))))

    assert rows[0] == ["group", "kind", "question", "reason", "link", "model", "person", "when"]
    assert rows[1][:3] == ["1", "unanswered", '\'=HYPERLINK("http://evil","click")']
    assert rows[1][7] == "2023-11-14T22:13:20Z"
    assert rows[2][2] == "'+1 works?"
    assert rows[3][:4] == ["2", "downvoted", "Plain, with a comma", "'@here wrong"]
    assert len(rows) == 4


def test_the_summary_counts_kinds_pings_no_one_and_fits_its_message() -> None:
    groups = [
        GapGroup((entry("@everyone how do I <!channel> reset?", 3), entry("reset?", 2, "downvoted", "@here bad"))),
        *(GapGroup((entry(f"Question number {n}", 1),)) for n in range(40)),
    ]
    text = describe_gaps(groups, limit_chars=600, bold=lambda s: f"**{s}**", link=lambda t, u: f"[{t}]({u})")

    assert len(text) <= 600
    assert text.startswith("**Knowledge gaps**: 41 unanswered, 1 👎 (41 groups)")
    assert "**2×** @\u200beveryone how do I <\u200b!channel> reset?" in text
    assert "👎 — “@\u200bhere bad” — [answer](https://l/2)" in text
    assert "@everyone" not in text and "@here" not in text and "<!" not in text
    assert text.endswith("more groups (see the CSV)")


async def test_without_redis_the_person_is_told_the_store_is_unavailable() -> None:
    errors: list[str] = []
    client = connect(f"redis://127.0.0.1:{free_port()}/0", cluster=False, retries=0)  # nothing listens there
    try:
        feedback = Feedback(client, "test:", answer_seconds=3600, on_error=lambda: errors.append("redis"))
        with pytest.raises(ReplyFailure) as raised:
            await feedback.vote("a1", "discord:1", up=True)
        assert raised.value.kind is FailureKind.STORE_UNAVAILABLE
        assert errors == ["redis"]
    finally:
        await close(client)
