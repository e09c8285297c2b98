"""Votes on the bot's answers (👍/👎) and its "knowledge gaps", kept in Redis for `/knowledge gaps`.

Every answer the bot gives is recorded for `answer_seconds` (the history's TTL) with its question, model and sources,
and gets one vote per person. A gap is what an admin should look at: a question the bot skipped (unanswered), an
answer that cited no source (no_source), and each 👎 (downvoted, with the voter's reason if they gave one). Gaps are
kept per scope (a server or workspace) for `gap_days`, the older ones pruned whenever the scope's list is written or
read, and the list's keys expire `gap_days` after their last write.

Keys (on a Cluster, the keys one script touches share a hash tag; others are written by separate commands):
  {prefix}feedback:answer:{<answer id>}          hash: info (AnswerInfo as JSON), up, down (the counts)
  {prefix}feedback:answer:{<answer id>}:votes    hash: person → "up" | "down"
  {prefix}feedback:gaps:{<scope>}                sorted set: entry id → when (unix time)
  {prefix}feedback:gaps:{<scope>}:entries        hash: entry id → the entry as JSON
  {prefix}feedback:person:{<person>}             set: what the person touched (their votes, the answers they asked,
                                                 the gap entries they are the asker or voter of), for /forget-me
  {prefix}feedback:scope:{<scope>}:answers       set: the scope's answer ids, for the bot leaving it
  {prefix}feedback:thread:{<thread>}:answers     set: the conversation's answer ids, for /reset
Raises STORE_UNAVAILABLE (a ReplyFailure) without Redis.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeVar

from adapters.shared.feedback import scripts as lua
from bot.state.redis_client import RedisClient, hash_tag, served

T = TypeVar("T")
GapKind = Literal["unanswered", "downvoted", "no_source", "handed_off"]
VoteStatus = Literal["missing", "new", "changed", "unchanged"]
GAP_KINDS: tuple[GapKind, ...] = ("unanswered", "downvoted", "no_source", "handed_off")
MAX_REASON_CHARS = 1_000
DAY_SECONDS = 86_400
UP, DOWN = "up", "down"


@dataclass(frozen=True)
class AnswerInfo:
    """An answer the bot gave, as recorded: where (platform, scope: the server or workspace, channel, link to the
    answer or its question), to whom (asker) and what (question, model's display name, cited sources)."""

    platform: str  # "discord", "slack" or "web"
    scope: str  # e.g. "discord:guild:123", "slack:T123": whatever the caller keys its servers with
    link: str
    question: str
    model: str
    sources: tuple[tuple[str, str], ...]  # (title, url)
    asker: str  # the person's id, platform-prefixed ("discord:1234")
    channel: str
    at: float  # unix time

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> AnswerInfo:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            platform=str(data["platform"]),
            scope=str(data["scope"]),
            link=str(data["link"]),
            question=str(data["question"]),
            model=str(data["model"]),
            sources=tuple((str(title), str(url)) for title, url in data["sources"]),
            asker=str(data["asker"]),
            channel=str(data["channel"]),
            at=float(data["at"]),
        )


@dataclass(frozen=True)
class VoteOutcome:
    """What a vote did: `missing` (no such answer: never recorded, deleted, or older than the history), `new`,
    `changed` (the person had voted the other way) or `unchanged` (the same vote again); and the answer's counts."""

    status: VoteStatus
    ups: int
    downs: int

    @property
    def missing(self) -> bool:
        return self.status == "missing"


@dataclass(frozen=True)
class GapEntry:
    """Something the bot could not answer well. `person` is the asker for unanswered and no_source, the voter for
    downvoted; `reason` is the voter's ("" if none or another kind); `at` is when it happened (unix time); `channel`
    is where it was asked ("" in an entry kept before that was), so an admin is shown only what they may read."""

    kind: GapKind
    question: str
    link: str
    reason: str
    model: str
    person: str
    at: float
    channel: str = ""


class Feedback:
    def __init__(
        self,
        redis: RedisClient,
        key_prefix: str,
        *,
        answer_seconds: int,
        gap_days: int = 30,
        on_error: Callable[[], object] = lambda: None,
    ) -> None:
        """`answer_seconds`: how long an answer can be voted on (the history's TTL). `gap_days`: how long gaps are
        listed. `on_error` is called (to count it) whenever Redis can't serve a command."""
        self._redis = redis
        self._prefix = f"{key_prefix}feedback:"
        self._answer_seconds = max(1, int(answer_seconds))
        self._gap_seconds = max(1, int(gap_days)) * DAY_SECONDS
        self._on_error = on_error
        self._record = redis.register_script(lua.RECORD)
        self._vote = redis.register_script(lua.VOTE)
        self._unvote = redis.register_script(lua.UNVOTE)
        self._add_gap = redis.register_script(lua.ADD_GAP)
        self._remove_gaps = redis.register_script(lua.REMOVE_GAPS)
        self._set_reason = redis.register_script(lua.SET_REASON)
        self._read_gaps = redis.register_script(lua.READ_GAPS)
        self._drop_gaps = redis.register_script(lua.DROP_GAPS)

    async def record_answer(
        self, answer_id: str, info: AnswerInfo, *, could_cite: bool = True, thread: str = ""
    ) -> None:
        """Keep the answer for votes; one that cited no source though it `could_cite` (knowledge was searched for
        it) is also a gap (no_source). Recording it again (a retry) keeps its votes. Listed under its scope and its
        conversation (`thread`), so that the bot leaving the scope and /reset find it."""
        await self._index(info.asker, _member("asked", info.scope, answer_id))
        await self._list(
            answer_id,
            self._answers_key("scope", info.scope),
            *([self._answers_key("thread", thread)] if thread else []),
        )
        await self._run(self._record(keys=self._answer_keys(answer_id), args=[info.to_json(), self._answer_seconds]))
        if not info.sources and could_cite:
            entry_id = _entry_id("no_source", answer_id)
            await self._index(info.asker, _member("gap", info.scope, entry_id))
            entry = GapEntry("no_source", info.question, info.link, "", info.model, info.asker, info.at, info.channel)
            await self._add(info.scope, entry_id, entry, asker=info.asker)

    async def answer(self, answer_id: str) -> AnswerInfo | None:
        """The recorded answer, None if there is none (never recorded, deleted, or expired)."""
        raw = await self._run(self._redis.hget(self._answer_key(answer_id), "info"))
        return None if raw is None else AnswerInfo.from_json(_text(raw))

    async def vote(self, answer_id: str, person: str, up: bool) -> VoteOutcome:
        """`person`'s 👍 (`up`) or 👎 on the answer, one per person: the other way changes it, the same way again
        changes nothing. A 👎 is a gap (downvoted) until it is taken back by a 👍."""
        info = await self.answer(answer_id)
        if info is None:
            return VoteOutcome("missing", 0, 0)
        # Indexed before written: what /forget-me can't find must not exist.
        await self._index(person, _member("vote", info.scope, answer_id))
        if not up:
            gap = _member("gap", info.scope, _downvote_id(answer_id, person))
            await self._index(person, gap)
            if info.asker != person:
                await self._index(info.asker, gap)
        status, ups, downs = await self._run(self._vote(keys=self._answer_keys(answer_id), args=[person, _vote(up)]))
        outcome = VoteOutcome(_STATUSES[int(status)], int(ups), int(downs))
        if not outcome.missing:
            await self._follow_vote(answer_id, info, person)
        return outcome

    async def votes_of(self, answer_ids: Sequence[str], person: str) -> dict[str, str]:
        """`person`'s vote ("up" | "down") on each of `answer_ids` they voted on, in one round trip."""
        if not answer_ids:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:  # one key each: their Cluster slots differ
            for answer_id in answer_ids:
                pipe.hget(self._votes_key(answer_id), person)
            found: list[Any] = await self._run(pipe.execute())
        return {answer: _text(vote) for answer, vote in zip(answer_ids, found, strict=True) if vote is not None}

    async def give_reason(self, answer_id: str, person: str, reason: str) -> bool:
        """Attach `reason` (trimmed, at most MAX_REASON_CHARS) to `person`'s 👎 on the answer; False if the answer is
        missing, the person's vote on it is not a 👎, or its gap entry is no longer listed."""
        info = await self.answer(answer_id)
        if info is None or await self._current_vote(answer_id, person) != DOWN:
            return False
        keys = self._gap_keys(info.scope)
        text = reason.strip()[:MAX_REASON_CHARS]
        return bool(await self._run(self._set_reason(keys=keys, args=[_downvote_id(answer_id, person), text])))

    async def note_unanswered(self, scope: str, question: str, link: str, asker: str, channel: str, at: float) -> None:
        """A question the bot skipped because it could not answer it. Noting the same question again (a platform's
        retried event) keeps one entry."""
        entry_id = _entry_id("unanswered", scope, channel, link, asker, question)
        await self._index(asker, _member("gap", scope, entry_id))
        entry = GapEntry("unanswered", question, link, "", "", asker, at, channel)
        await self._add(scope, entry_id, entry, asker=asker)

    async def note_handed_off(self, scope: str, question: str, link: str, asker: str, channel: str, at: float) -> None:
        """A question handed to people (Still need help?, or one the knowledge covered only weakly), listed with the
        gaps. Noting it again keeps one entry."""
        entry_id = _entry_id("handed_off", scope, channel, link, asker, question)
        await self._index(asker, _member("gap", scope, entry_id))
        entry = GapEntry("handed_off", question, link, "", "", asker, at, channel)
        await self._add(scope, entry_id, entry, asker=asker)

    async def gaps(self, scope: str, now: float | None = None) -> list[GapEntry]:
        """The scope's gaps of the last `gap_days` before `now` (default: the current time), newest first. Older
        ones are deleted on the way."""
        cutoff = (time.time() if now is None else now) - self._gap_seconds
        found = await self._run(self._read_gaps(keys=self._gap_keys(scope), args=[repr(cutoff)]))
        entries = [_entry(_text(raw)) for raw in found if raw is not None]
        return sorted(entries, key=lambda entry: entry.at, reverse=True)

    async def forget_person(self, person: str, scopes_prefix: str = "") -> int:
        """/forget-me: delete `person`'s votes (taken out of the counts), the answers they asked, and every gap
        entry they are the asker or voter of, in the scopes starting with `scopes_prefix` (all by default). How
        many votes and gap entries went (the answers' records go with their conversations, uncounted)."""
        index = self._person_key(person)
        members = [_text(raw) for raw in await self._run(self._redis.smembers(index))]
        chosen = [member for member in members if _parse_member(member)[1].startswith(scopes_prefix)]
        removed = 0
        gaps_by_scope: dict[str, list[str]] = {}
        asked: list[str] = []
        # Votes first: an answer of theirs they voted on goes with its votes after.
        for kind, scope, target in sorted((_parse_member(member) for member in chosen), key=_votes_first):
            if kind == "vote":
                removed += int(await self._run(self._unvote(keys=self._answer_keys(target), args=[person])))
            elif kind == "asked":
                asked.append(target)
            else:
                gaps_by_scope.setdefault(scope, []).append(target)
        for target in asked:
            await self._forget_answer(target, person)
        for scope, entry_ids in gaps_by_scope.items():
            removed += int(await self._run(self._remove_gaps(keys=self._gap_keys(scope), args=entry_ids)))
        if chosen:
            await self._run(self._redis.srem(index, *chosen))
        return removed

    async def forget_scope(self, scope: str) -> int:
        """The bot left the server or workspace: its answers (their questions) with their votes and all its gap
        entries go, and the people's indexes forget them. How many gap entries were still listed."""
        await self._forget_answers(self._answers_key("scope", scope))
        entries = await self._run(self._redis.hgetall(self._gap_keys(scope)[1]))
        listed: list[tuple[str, str]] = []
        for entry_id, raw in entries.items():
            data: dict[str, Any] = json.loads(_text(raw))
            people = {str(data.get("asker") or ""), str(data.get("person") or "")} - {""}
            listed += [(person, _member("gap", scope, _text(entry_id))) for person in people]
        await self._unindex(listed)
        cutoff = time.time() - self._gap_seconds
        return int(await self._run(self._drop_gaps(keys=self._gap_keys(scope), args=[repr(cutoff)])))

    async def forget_thread(self, thread: str) -> int:
        """/reset: the conversation's answers go with their votes and the gap entries they made (no source, 👎);
        how many answers were still kept."""
        return await self._forget_answers(self._answers_key("thread", thread), with_gaps=True)

    async def _forget_answers(self, listing: str, *, with_gaps: bool = False) -> int:
        """Delete the answers listed at `listing` (`with_gaps`: their gap entries too), then the list; the people's
        indexes forget them."""
        answer_ids = sorted(_text(raw) for raw in await self._run(self._redis.smembers(listing)))
        kept = 0
        for answer_id in answer_ids:
            info = await self.answer(answer_id)
            if info is not None:
                voters = [_text(raw) for raw in await self._run(self._redis.hkeys(self._votes_key(answer_id)))]
                await self._run(self._redis.srem(self._answers_key("scope", info.scope), answer_id))
                touched = [(info.asker, _member("asked", info.scope, answer_id))]
                touched += [(voter, _member("vote", info.scope, answer_id)) for voter in voters]
                if with_gaps:
                    entries = [_entry_id("no_source", answer_id), *(_downvote_id(answer_id, v) for v in voters)]
                    await self._run(self._remove_gaps(keys=self._gap_keys(info.scope), args=entries))
                    people = {info.asker, *voters}
                    touched += [(person, _member("gap", info.scope, entry)) for entry in entries for person in people]
                await self._unindex(touched)
            kept += int(await self._run(self._redis.delete(*self._answer_keys(answer_id))) > 0)
        await self._run(self._redis.delete(listing))
        return kept

    async def _unindex(self, touched: Sequence[tuple[str, str]]) -> None:
        """Take (person, member) pairs out of the people's indexes, in one round trip."""
        if not touched:
            return
        async with self._redis.pipeline(transaction=False) as pipe:  # one key each: their Cluster slots differ
            for person, member in touched:
                pipe.srem(self._person_key(person), member)
            await self._run(pipe.execute())

    async def _forget_answer(self, answer_id: str, asker: str) -> int:
        """Delete an answer `asker` asked (their question is in it), votes and all → 1 if it was still kept. Only
        if the record says they asked it: an answer id of theirs from an older record is left alone."""
        info = await self.answer(answer_id)
        if info is None or info.asker != asker:
            return 0
        await self._run(self._redis.srem(self._answers_key("scope", info.scope), answer_id))
        await self._run(self._redis.delete(*self._answer_keys(answer_id)))
        return 1

    async def _follow_vote(self, answer_id: str, info: AnswerInfo, person: str) -> None:
        """Make the person's downvoted gap entry follow their vote: there while it is a 👎, gone otherwise. The vote
        is read again after the write: two processes handling the same person's quick 👎 then 👍 end as the vote."""
        entry_id = _downvote_id(answer_id, person)
        vote = await self._current_vote(answer_id, person)
        for _ in range(3):
            if vote == DOWN:
                entry = GapEntry(
                    "downvoted", info.question, info.link, "", info.model, person, time.time(), info.channel
                )
                await self._add(info.scope, entry_id, entry, asker=info.asker)
            else:
                await self._run(self._remove_gaps(keys=self._gap_keys(info.scope), args=[entry_id]))
            again = await self._current_vote(answer_id, person)
            if again == vote:
                return
            vote = again

    async def _current_vote(self, answer_id: str, person: str) -> str | None:
        raw = await self._run(self._redis.hget(self._votes_key(answer_id), person))
        return None if raw is None else _text(raw)

    async def _add(self, scope: str, entry_id: str, entry: GapEntry, *, asker: str) -> None:
        cutoff = time.time() - self._gap_seconds
        args: list[str | int] = [entry_id, _entry_json(entry, asker), repr(entry.at), repr(cutoff), self._gap_seconds]
        await self._run(self._add_gap(keys=self._gap_keys(scope), args=args))

    async def _index(self, person: str, member: str) -> None:
        """Note what `person` touched, kept as long as anything it points to may be."""
        key = self._person_key(person)
        await self._run(self._redis.sadd(key, member))
        await self._run(self._redis.expire(key, max(self._answer_seconds, self._gap_seconds)))

    async def _list(self, answer_id: str, *lists: str) -> None:
        """List the answer in `lists` (its scope's, its conversation's), kept as long as it, in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:  # one key each: their Cluster slots differ
            for key in lists:
                pipe.sadd(key, answer_id)
                pipe.expire(key, self._answer_seconds)
            await self._run(pipe.execute())

    def _answers_key(self, kind: Literal["scope", "thread"], owner: str) -> str:
        return f"{self._prefix}{kind}:{hash_tag(owner)}:answers"

    def _answer_key(self, answer_id: str) -> str:
        return f"{self._prefix}answer:{hash_tag(answer_id)}"

    def _votes_key(self, answer_id: str) -> str:
        return f"{self._answer_key(answer_id)}:votes"

    def _answer_keys(self, answer_id: str) -> list[str]:
        return [self._answer_key(answer_id), self._votes_key(answer_id)]

    def _gap_keys(self, scope: str) -> list[str]:
        key = f"{self._prefix}gaps:{hash_tag(scope)}"
        return [key, f"{key}:entries"]

    def _person_key(self, person: str) -> str:
        return f"{self._prefix}person:{hash_tag(person)}"

    async def _run(self, command: Awaitable[T]) -> T:
        return await served(command, "feedback_store_unavailable", self._on_error)


_STATUSES: dict[int, VoteStatus] = {-1: "missing", 0: "unchanged", 1: "new", 2: "changed"}


def _vote(up: bool) -> str:
    return UP if up else DOWN


def _member(kind: Literal["vote", "asked", "gap"], scope: str, target: str) -> str:
    """A person index's member: what they touched (a vote or an answer: its id; a gap: its entry id) and where."""
    return json.dumps([kind, scope, target], ensure_ascii=False)


def _parse_member(member: str) -> tuple[str, str, str]:
    kind, scope, target = json.loads(member)
    return str(kind), str(scope), str(target)


def _entry_id(kind: GapKind, *parts: str) -> str:
    """A gap entry's id, the same for the same thing: writing it again (a retry) finds it."""
    if kind in ("unanswered", "handed_off"):
        digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
        return json.dumps([kind, digest])
    return json.dumps([kind, *parts], ensure_ascii=False)


def _downvote_id(answer_id: str, person: str) -> str:
    return _entry_id("downvoted", answer_id, person)


def _entry_json(entry: GapEntry, asker: str) -> str:
    """As stored: with the asker, for whom the entry is kept, whoever its `person` is."""
    return json.dumps({**asdict(entry), "asker": asker}, ensure_ascii=False)


def _entry(raw: str) -> GapEntry:
    data: dict[str, Any] = json.loads(raw)
    kind = str(data.get("kind", ""))
    return GapEntry(
        kind=_kind(kind),
        question=str(data.get("question", "")),
        link=str(data.get("link", "")),
        reason=str(data.get("reason", "")),
        model=str(data.get("model", "")),
        person=str(data.get("person", "")),
        at=float(data.get("at", 0.0)),
        channel=str(data.get("channel", "")),
    )


def _kind(name: str) -> GapKind:
    for kind in GAP_KINDS:
        if kind == name:
            return kind
    raise ValueError(f"unknown gap kind {name!r}")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _votes_first(member: tuple[str, str, str]) -> bool:
    return member[0] != "vote"
