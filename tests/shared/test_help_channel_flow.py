"""The help channels' shared flow (adapters.shared.help_channels) given the pieces of a made-up third platform: who may
ask is looked at before the message is claimed, a decision to answer takes the quota before the answer starts in time,
a refusal is told once, a late answer is dropped and counted, a question the bot can't answer is noted as a gap, a
message another process claimed is left to it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from adapters.shared.help_channels import HelpChannels
from adapters.shared.platform_jobs import Kept, PlatformJobs
from adapters.shared.ratelimit import Bucket, Budgets, RateLimits, Write
from bot.core import Turn
from bot.errors import FailureKind, ReplyFailure
from bot.knowledge.passages import Access
from bot.respond.decision import ANSWER_ALL, SKIP_LATE, SKIP_NOT_COVERED, SKIP_QUOTA, Decision, RespondMode, Unprompted
from bot.state.personas import Place


@dataclass
class Seen:
    """What the flow did, in order."""

    steps: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    told: list[str] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)
    within: list[float] = field(default_factory=list)  # how long the first write's slot could take
    counted: list[str] = field(default_factory=list)  # the help desk's figures: what became of each question


class Responder:
    max_delay_seconds = 5.0

    def __init__(self, seen: Seen, decision: Decision) -> None:
        self._seen, self._decision = seen, decision

    async def decide(
        self,
        message: Unprompted,
        mode: RespondMode,
        access: Callable[[], Awaitable[Any]],
        helpers: Callable[[], Awaitable[bool]] | None = None,
    ) -> Decision:
        self._seen.steps.append("decide")
        return self._decision

    def dropped(self, platform: str, reason: str) -> None:
        self._seen.dropped.append(reason)


class Personas:
    async def respond_mode(self, places: Any) -> tuple[str, None]:
        return RespondMode.ALL.value, None


class Core:
    def __init__(self, seen: Seen, decision: Decision, over_quota: bool) -> None:
        self._seen, self._over_quota = seen, over_quota
        self.personas = Personas()
        self.responder = Responder(seen, decision)

    async def admit(self, turn: Turn) -> Turn:
        self._seen.steps.append("admit")
        if self._over_quota:
            raise ReplyFailure(FailureKind.QUOTA, "too many questions")
        return turn


class Feedback:
    def __init__(self, seen: Seen) -> None:
        self._seen = seen

    async def note_unanswered(self, scope: str, text: str, *rest: Any) -> None:
        self._seen.gaps.append(text)


class Desk:
    def __init__(self, seen: Seen) -> None:
        self._seen = seen

    async def asked(self, scope: str, channel: str, thread: str, at: float, outcome: str, when: float) -> None:
        self._seen.counted.append(outcome)


class Jobs:
    def __init__(self, seen: Seen, decision: Decision, over_quota: bool) -> None:
        self._seen = seen
        self.core = Core(seen, decision, over_quota)
        self.feedback = Feedback(seen)
        self.desk = Desk(seen)

    async def refuse_once(self, key: str, tell: Callable[[], Awaitable[None]]) -> None:
        if key not in self._seen.refused:
            self._seen.refused.add(key)
            await tell()


@dataclass
class ForumMessage:
    """A message of the made-up platform "forum"."""

    seen: Seen
    may_ask: bool = True
    in_time: bool = True
    claimed_elsewhere: bool = False
    places: tuple[Place, ...] = (Place("forum", "channel", "10", "#help"),)
    text: str = "how do I reset my password?"
    refusal_key: str = "forum:unasked:alice"

    def allowed(self) -> bool:
        self.seen.steps.append("allowed")
        return self.may_ask

    async def first_delivery(self) -> bool:
        self.seen.steps.append("claim")
        return not self.claimed_elsewhere

    def unprompted(self) -> Unprompted:
        return Unprompted("forum", "10", "1", self.text)

    async def access(self) -> Access | None:
        return None

    def asker(self) -> Turn:
        return Turn("forum:conv:1", "alice", "Alice", "", channel="10")

    async def kept(self) -> Kept:
        return Kept("1", "forum:1", "https://forum.example/1", "alice", "10")

    async def tell_privately(self, note: str) -> None:
        self.seen.told.append(note)

    def first_write(self) -> tuple[RateLimits, Budgets]:
        return cast(RateLimits, Limits(self.seen, self.in_time)), (THREADS,)

    async def answer(self, decision: Decision, arrived: float, first: Write) -> None:
        self.seen.steps.append("answer")


THREADS = Bucket("forum", "threads", 5, 5.0)


class Limits:
    """The forum's rate limits: a slot of its threads' bucket comes in time, or not."""

    def __init__(self, seen: Seen, in_time: bool) -> None:
        self._seen, self._in_time = seen, in_time

    async def reserve(self, buckets: Budgets, within: float) -> Write | None:
        self._seen.within.append(within)
        if not self._in_time:
            self._seen.steps.append("too late")
            return None
        return cast(Write, object())


def flow(seen: Seen, decision: Decision, over_quota: bool = False) -> HelpChannels:
    return HelpChannels(cast(PlatformJobs, Jobs(seen, decision, over_quota)), "forum")


ANSWER = Decision(answer=True, reason=ANSWER_ALL)


async def test_a_message_answered_is_claimed_after_who_may_ask_and_admitted_before_its_answer() -> None:
    seen = Seen()
    await flow(seen, ANSWER).consider(ForumMessage(seen), arrived=0.0)
    assert seen.steps == ["allowed", "claim", "decide", "admit", "answer"]
    assert seen.counted == ["answered"]


async def test_someone_who_may_not_ask_spends_no_claim_and_is_told_nothing() -> None:
    seen = Seen()
    await flow(seen, ANSWER).consider(ForumMessage(seen, may_ask=False), arrived=0.0)
    assert seen.steps == ["allowed"]
    assert seen.told == []


async def test_past_the_quota_the_person_is_told_once() -> None:
    seen = Seen()
    help_channels = flow(seen, ANSWER, over_quota=True)
    for _ in range(2):
        await help_channels.consider(ForumMessage(seen), arrived=0.0)
    assert len(seen.told) == 1
    assert seen.dropped == [SKIP_QUOTA, SKIP_QUOTA]
    assert "answer" not in seen.steps


@pytest.mark.parametrize("in_time", [True, False])
async def test_an_answer_that_cant_start_in_time_is_dropped_and_counted(in_time: bool) -> None:
    seen = Seen()
    await flow(seen, ANSWER).consider(ForumMessage(seen, in_time=in_time), arrived=0.0)
    assert seen.dropped == ([] if in_time else [SKIP_LATE])


@pytest.mark.parametrize("in_time", [True, False])
async def test_the_first_writes_slot_may_come_only_as_late_as_the_delay_left(in_time: bool) -> None:
    """A message that arrived 2 s ago, the delay 5 s: its thread's slot may take 3 s at most."""
    seen = Seen()
    await flow(seen, ANSWER).consider(ForumMessage(seen, in_time=in_time), arrived=time.monotonic() - 2.0)
    [within] = seen.within
    assert 2.5 < within <= 3.0
    assert seen.steps[-1] == ("answer" if in_time else "too late")


async def test_a_question_the_knowledge_doesnt_cover_is_noted_as_a_gap_and_not_answered() -> None:
    seen = Seen()
    await flow(seen, Decision(answer=False, reason=SKIP_NOT_COVERED)).consider(ForumMessage(seen), arrived=0.0)
    assert seen.gaps == ["how do I reset my password?"]
    assert seen.steps == ["allowed", "claim", "decide"]
    assert seen.counted == ["unanswered"]


async def test_a_message_another_process_claimed_is_left_to_it() -> None:
    """Neither decided nor answered here; the line this logs (`respond_claimed_elsewhere`) is read by the two-process
    tests of each platform, through the real bot's log."""
    seen = Seen()
    await flow(seen, ANSWER).consider(ForumMessage(seen, claimed_elsewhere=True), arrived=0.0)
    assert seen.steps == ["allowed", "claim"]
    assert seen.dropped == [] and seen.gaps == [] and seen.told == []
