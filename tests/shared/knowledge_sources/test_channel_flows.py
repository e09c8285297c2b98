"""The knowledge channels' shared flows (adapters.shared.knowledge_sources.channel_feed, channel_history and
channel_pages) given the pieces of a made-up third platform, "forum": what a platform gives is enough to keep its
channels current and to read their history (threads, pace and rate limits included), one process doing each event and
each reading however many run."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import pytest

from adapters.shared.knowledge_sources.added import Added, AddedFollower, AddedMessages, NewText
from adapters.shared.knowledge_sources.channel_feed import ChannelChange, ChannelFeed
from adapters.shared.knowledge_sources.channel_history import ChannelHistory, HistoryLimits, Page, Renew
from adapters.shared.knowledge_sources.channel_pages import Batch, MessagePages, Pacing, RateLimited, Unreadable
from adapters.shared.knowledge_sources.channels import Backfill, KnowledgeChannels
from adapters.shared.knowledge_sources.live import LiveChanges
from bot.knowledge.opener import KnowledgeOpener
from bot.knowledge.passages import Passage
from bot.knowledge.service import Knowledge
from bot.state.redis_client import RedisClient, RedisClients
from fakes.harness.processes import REDIS_URL

SCOPE, CHANNEL, ELSEWHERE = "forum:1", "10", "11"


class Embedder:
    name = "none"


@dataclass
class Recorded:
    """What the flows asked of the knowledge."""

    added: list[str] = field(default_factory=list)  # the passages' texts
    forgotten: list[str] = field(default_factory=list)  # keys, and whole sources
    embedder: Embedder = field(default_factory=Embedder)  # the opener logs its name
    sources_known: set[str] = field(default_factory=set)  # the knowledge's sources

    def add_soon(self, passages: list[Passage]) -> None:
        self.added += [passage.text for passage in passages]

    async def add(self, passages: list[Passage]) -> list[Any]:
        self.add_soon(passages)
        return []

    async def replace_source(self, scope: str, source: str, passages: list[Passage]) -> list[Any]:
        return await self.add(passages)

    def forget_soon(self, scope: str, keys: list[str]) -> None:
        self.forgotten += keys

    async def forget_source(self, scope: str, source: str) -> int:
        self.forgotten.append(source)
        self.sources_known.discard(source)
        return 0

    async def sources(self, scope: str) -> list[SimpleNamespace]:
        return [SimpleNamespace(source=source) for source in sorted(self.sources_known)]

    async def forget_linked(self, scope: str, url_prefix: str) -> int:
        self.forgotten.append(url_prefix)
        return 0


@dataclass
class Forum:
    redis: RedisClient
    channels: KnowledgeChannels
    live: LiveChanges
    knowledge: Recorded
    opener: KnowledgeOpener
    key_prefix: str
    claimed: set[str] = field(default_factory=set)

    async def claim(self, key: str) -> bool:
        """One claim per event, as Redis gives it to the first process."""
        first = key not in self.claimed
        self.claimed.add(key)
        return first


@pytest.fixture
async def forum(key_prefix: str) -> AsyncIterator[Forum]:
    clients = RedisClients.connect(REDIS_URL, cluster=False)
    knowledge = Recorded()

    async def open_knowledge() -> Knowledge:
        return cast(Knowledge, knowledge)

    opener = KnowledgeOpener(open_knowledge, lambda _: None)
    channels = KnowledgeChannels(clients.main, key_prefix)
    live = LiveChanges(clients.main, key_prefix, "forum")
    yield Forum(clients.main, channels, live, knowledge, opener, key_prefix)
    await clients.aclose()


def passage(key: str, text: str) -> Passage:
    return Passage(scope=SCOPE, source=f"channel:{CHANNEL}", key=key, text=text, title="#help", url="", channel=CHANNEL)


def posted(key: str, text: str, claim: str, channel: str = CHANNEL) -> ChannelChange:
    async def read(title: str) -> Passage:
        return passage(key, f"{title}: {text}")

    return ChannelChange("1", SCOPE, channel, claim, (key,), read)


def feed(forum: Forum) -> ChannelFeed:
    return ChannelFeed("forum", forum.channels, forum.live, forum.opener, forum.claim)


async def test_a_knowledge_channels_messages_are_added_edited_and_deleted_once_however_many_processes(
    forum: Forum,
) -> None:
    await forum.channels.opt_in(SCOPE, CHANNEL, "#help")
    one, two = feed(forum), feed(forum)  # two processes that both got every event

    for process in (one, two):
        await process.apply(posted("m1", "the wifi password is on the fridge", "new:m1"))
        await process.apply(posted("m2", "not knowledge", "new:m2", channel=ELSEWHERE))
        await process.apply(ChannelChange("1", SCOPE, CHANNEL, "delete:m1", ("m1",)))

    assert forum.knowledge.added == ["#help: the wifi password is on the fridge"]
    assert forum.knowledge.forgotten == ["m1"]
    assert await forum.live.marked("1", ["m1", "m2"]) == {"m1"}  # a history page read meanwhile leaves it out


async def test_a_deletion_in_a_channel_not_known_here_is_applied_only_where_the_knowledge_runs(forum: Forum) -> None:
    await forum.channels.opt_in(SCOPE, CHANNEL, "#help")
    gone = ChannelChange("1", SCOPE, None, "delete:m9", ("m9",))

    await feed(forum).apply(gone)
    assert forum.knowledge.forgotten == []  # the knowledge isn't started in this process: nothing to forget here

    await forum.opener.get()
    await feed(forum).apply(gone)
    assert forum.knowledge.forgotten == ["m9"]


class ForumPages:
    """The forum's history: 25 messages, newest first, read 10 a page; the twentieth is a bot's, never knowledge."""

    platform = "forum"
    limits = HistoryLimits(messages=20, rescan_seconds=0.05, lock_seconds=5, log_name="forum_history")
    stops: tuple[type[Exception], ...] = ()

    def __init__(self) -> None:
        self.asked: list[str] = []  # the cursors asked for

    def reading_of(self, backfill: Backfill) -> str:
        return backfill.channel

    async def reader(self, reading: str, renew: Renew) -> ForumPages:
        return self

    async def page(self, backfill: Backfill, title: str, room: int) -> Page | None:
        self.asked.append(backfill.cursor)
        start = int(backfill.cursor or 25)  # the newest message not read yet
        numbers = list(range(start, max(start - min(10, room), 0), -1))
        said = [passage(f"m{n}", f"{title}: message {n}") for n in numbers if n != 20]
        return Page(said, len(numbers), str(numbers[-1] - 1) if numbers[-1] > 1 else "")


async def test_a_channels_history_is_read_a_page_at_a_time_up_to_the_platforms_most(forum: Forum) -> None:
    await forum.channels.opt_in(SCOPE, CHANNEL, "#help")
    await forum.channels.start_backfill(SCOPE, CHANNEL)
    await forum.live.mark("1", "m24")  # edited live while its page was read: its newer text is stored already
    pages = ForumPages()
    history = ChannelHistory(pages, forum.channels, forum.live, forum.opener, forum.redis, forum.key_prefix)
    history.start()
    try:
        async with asyncio.timeout(10):
            while await forum.channels.backfills("forum"):
                await asyncio.sleep(0.02)
    finally:
        await history.aclose()

    assert pages.asked == ["", "15"]  # 20 messages at most: the second page is the last
    numbers = [n for n in range(25, 5, -1) if n not in (24, 20)]  # neither the one changed live nor the bot's
    assert forum.knowledge.added == [f"#help: message {n}" for n in numbers]


async def test_a_deleted_knowledge_channel_takes_its_messages_and_a_deleted_thread_its_linked_ones(
    forum: Forum,
) -> None:
    await forum.channels.opt_in(SCOPE, CHANNEL, "#help")
    await forum.channels.opt_in(SCOPE, ELSEWHERE, "#news")
    one, two = feed(forum), feed(forum)  # two processes that both got every event

    for process in (one, two):
        await process.thread_deleted(SCOPE, CHANNEL, "77", "https://forum.example/10/77/")
        await process.thread_deleted(SCOPE, "12", "78", "https://forum.example/12/78/")  # not under a knowledge channel
        await process.channel_deleted(SCOPE, ELSEWHERE)

    assert forum.knowledge.forgotten == ["https://forum.example/10/77/", f"channel:{ELSEWHERE}"]
    assert await forum.channels.channels(SCOPE) == {CHANNEL: "#help"}


async def test_an_added_message_follows_its_edits_and_its_deletion_once_however_many_processes(forum: Forum) -> None:
    added = AddedMessages(forum.redis, forum.key_prefix, "forum")
    url = "https://forum.example/12/m1"
    await added.note(SCOPE, "m1", Added(("message:m1", "file:a.pdf"), title="Alice in #chat", url=url))
    await added.note(SCOPE, "m3", Added(("message:m3",), url="https://forum.example/13/m3"))  # in a thread
    forum.knowledge.sources_known |= {"message:m1", "file:a.pdf"}
    followers = [AddedFollower(added, forum.opener, forum.claim, "forum_knowledge") for _ in range(2)]

    def text(words: str) -> NewText:
        def passages(noted: Added) -> list[Passage]:
            return [passage("message:m1", f"{noted.title}: {words}")] if words else []

        return passages

    for follower in followers:  # two processes that both got every event
        await follower.edited(SCOPE, "m1", "message:m1", "edit:m1:1", text("the new words"))
        await follower.edited(SCOPE, "m2", "message:m2", "edit:m2:1", text("never added"))
    assert forum.knowledge.added == ["Alice in #chat: the new words"]

    for follower in followers:
        await follower.edited(SCOPE, "m1", "message:m1", "edit:m1:2", text(""))  # its words removed, its file kept
    assert forum.knowledge.forgotten == ["message:m1"]

    for follower in followers:
        await follower.edited(SCOPE, "m1", "message:m1", "edit:m1:3", text("back again?"))  # its text gone: stays so
        await follower.deleted(SCOPE, ["m1"])  # deleted: its file goes with it
        await follower.place_deleted(SCOPE, "https://forum.example/13/")  # its thread deleted, naming no message
    assert forum.knowledge.added == ["Alice in #chat: the new words"]
    assert forum.knowledge.forgotten == ["message:m1", "file:a.pdf", "message:m3"]
    assert await added.of(SCOPE, "m1") is None


@dataclass
class ForumApi:
    """The forum's history as its API gives it: messages m6 to m1, newest first, three a request; m5 heads a thread of
    replies r1 to r4, two a request; m2 heads a thread the bot may not read; m4 is a bot's. The first request for the
    second page is refused for the forum's rate, with a Retry-After."""

    retry_after: float
    asked: list[tuple[str, float]] = field(default_factory=list)  # what was asked, and when
    limited: bool = True

    async def history(self, backfill: Backfill, room: int) -> Batch[str]:
        self.asked.append((f"history {backfill.cursor}", time.monotonic()))
        if backfill.cursor and self.limited:
            self.limited = False
            raise RateLimited(self.retry_after)
        start = int(backfill.cursor or 6)
        numbers = list(range(start, max(start - 3, 0), -1))
        return Batch([f"m{n}" for n in numbers], str(numbers[-1] - 1) if numbers[-1] > 1 else "")

    async def replies(self, backfill: Backfill, thread: str, cursor: str) -> Batch[str]:
        self.asked.append((f"replies {thread} {cursor}", time.monotonic()))
        if thread == "m2":
            raise Unreadable("a private thread")
        start = int(cursor or 1)
        return Batch([f"r{start}", f"r{start + 1}"], str(start + 2) if start + 2 <= 4 else "")

    def thread(self, message: str) -> str:
        return message if message in ("m5", "m2") else ""

    def passage(self, backfill: Backfill, title: str, message: str) -> Passage | None:
        return None if message == "m4" else passage(message, f"{title}: {message}")


async def test_a_page_reads_its_threads_at_the_platforms_pace_and_waits_out_a_rate_limit(forum: Forum) -> None:
    api, spacing = ForumApi(retry_after=0.3), 0.1
    pacing = Pacing(forum.redis, forum.key_prefix, "forum", spacing, "forum_history")
    renewed: list[float] = []

    async def renew() -> bool:
        renewed.append(time.monotonic())
        return True

    pages = MessagePages(api, "forum_history", pacing, "1", renew)

    first = await pages.page(Backfill(SCOPE, CHANNEL, "", 0), "#help", room=20)
    assert first is not None
    assert [p.text for p in first.passages] == [f"#help: {m}" for m in ("m6", "m5", "r1", "r2", "r3", "r4")]
    assert (first.read, first.cursor) == (7, "3")  # three messages, and the four replies read

    second = await pages.page(Backfill(SCOPE, CHANNEL, first.cursor, first.read), "#help", room=13)
    assert second is not None
    assert [p.text for p in second.passages] == ["#help: m3", "#help: m2", "#help: m1"]  # m2's thread left out
    assert (second.read, second.cursor) == (3, "")

    asked = [what for what, _ in api.asked]
    assert asked == ["history ", "replies m5 ", "replies m5 3", "history 3", "history 3", "replies m2 "]
    times = [when for _, when in api.asked]
    assert all(later - earlier >= spacing * 0.9 for earlier, later in itertools.pairwise(times))
    assert times[4] - times[3] >= api.retry_after * 0.9  # asked again once the Retry-After had passed
    assert len(renewed) == len(asked)  # the reading kept before every request


async def test_a_thread_is_read_only_as_far_as_the_room_left(forum: Forum) -> None:
    api = ForumApi(retry_after=0.0)
    page = await MessagePages(api, "forum_history").page(Backfill(SCOPE, CHANNEL, "", 0), "#help", room=4)
    assert page is not None
    assert [p.text for p in page.passages] == ["#help: m6", "#help: m5", "#help: r1"]
    assert page.read == 4
    assert [what for what, _ in api.asked] == ["history ", "replies m5 "]


async def test_a_channel_that_cant_be_read_ends_its_reading(forum: Forum) -> None:
    class Closed(ForumApi):
        async def history(self, backfill: Backfill, room: int) -> Batch[str]:
            raise Unreadable("the bot isn't in the channel")

    assert (
        await MessagePages(Closed(retry_after=0.0), "forum_history").page(Backfill(SCOPE, CHANNEL, "", 0), "#help", 9)
        is None
    )
