"""/forget-me: a person deletes what the bot keeps about them.

Their conversations are found in their own index (bot.state.conversation_index, noted beside each turn's history read).
Each is then changed in one atomic script, holding the conversation as a turn does: a conversation where every
question is theirs goes whole (history, images, model choice); in a shared one only their questions, the answers
to them and the images that only those carried go, and everyone else's messages stay as they were. Their question
counters (USER_TURNS_PER_MINUTE) go too. A conversation is never left half-changed: if Redis fails midway, the
conversations not reached yet stay listed, and asking again finishes the job. And when the bot leaves a server,
every conversation held there goes (`Forgetting.server`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum

import structlog

from bot.state.conversation_index import ConversationIndex
from bot.state.coordination import TurnQuota
from bot.state.locks import ConversationLocks, fence_key
from bot.state.personas import Place
from bot.state.redis_client import served
from bot.state.store import HistoryStore

log = structlog.get_logger(__name__)

FORGET_BATCH = 50  # conversations changed at once


def scope_of(platform: str, workspace: str = "") -> str:
    """Where a person's counters and conversation list live (Turn.quota_scope): the platform, or its workspace
    (a Slack user id may repeat in another workspace)."""
    return f"{platform}:{workspace}" if workspace else platform


class Outcome(IntEnum):
    UNTOUCHED = 0  # nothing of theirs there (or nothing at all)
    DELETED = 1  # every question was theirs: the conversation is gone
    TRIMMED = 2  # shared: their questions and the answers to them are gone, the rest stays


# Take a person's (ARGV[1]) questions and the answers to them out of a history (KEYS[1]), unless a newer turn has
# taken the conversation (its fence, KEYS[2], no longer holds ARGV[2]). All questions theirs: the history, its
# images (KEYS[3], their order KEYS[4]) and its chosen model (KEYS[5]) go. Shared: the messages kept are written
# back as they were, with the history's expiry, and the images only removed messages carried go.
# Returns {outcome, messages removed}.
_FORGET = """
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[2] then
  return redis.error_reply('FENCED a newer turn has taken this conversation')
end
local raw = redis.call('LRANGE', KEYS[1], 0, -1)
local kept, theirs, others, dropping = {}, 0, 0, false
local dropped_images, kept_images = {}, {}
for _, entry in ipairs(raw) do
  local message = cjson.decode(entry)
  if message.role == 'user' then
    dropping = message.author_id == ARGV[1]
    if dropping then theirs = theirs + 1 else others = others + 1 end
  end
  local images = dropping and dropped_images or kept_images
  if type(message.images) == 'table' then
    for _, id in ipairs(message.images) do images[id] = true end
  end
  if not dropping then kept[#kept + 1] = entry end
end
if theirs == 0 then return {0, 0} end
if others == 0 then
  redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[5])
  return {1, #raw}
end
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
for i = 1, #kept, 100 do
  redis.call('RPUSH', KEYS[1], unpack(kept, i, math.min(i + 99, #kept)))
end
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
local freed = 0
for id in pairs(dropped_images) do
  if not kept_images[id] then
    freed = freed + redis.call('HSTRLEN', KEYS[3], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('LREM', KEYS[4], 0, id)
  end
end
if freed > 0 then redis.call('HINCRBY', KEYS[3], '#bytes', -freed) end
return {2, #raw - #kept}
"""


@dataclass(frozen=True)
class ForgetReport:
    """What /forget-me deleted."""

    conversations: int = 0  # whole conversations: every question in them was theirs
    dms: int = 0  # of those, DMs
    shared: int = 0  # conversations with other people, their questions (and the answers to them) taken out
    messages: int = 0  # messages deleted in all
    counters: bool = False  # their question counters (USER_TURNS_PER_MINUTE) were reset
    usage_days: int = 0  # days of their usage counts deleted (the server's totals keep what they used)

    @property
    def nothing(self) -> bool:
        return not (self.conversations or self.shared or self.counters or self.usage_days)


class Forgetting:
    def __init__(
        self,
        store: HistoryStore,
        locks: ConversationLocks,
        index: ConversationIndex,
        quota: TurnQuota,
        on_error: Callable[[], object] = lambda: None,
    ) -> None:
        self._store = store
        self._locks = locks
        self._index = index
        self._quota = quota
        self._on_error = on_error
        self._script = store.client.register_script(_FORGET)
        self._on_reset: list[Callable[[str], Awaitable[object]]] = []

    def on_reset(self, eraser: Callable[[str], Awaitable[object]]) -> None:
        """`eraser(thread)` deletes what a part beside the history keeps of a conversation (its answers' records):
        run whenever the conversation is reset, which leaving a server does to each of its conversations too."""
        if eraser not in self._on_reset:
            self._on_reset.append(eraser)

    async def kept_elsewhere(self, thread: str) -> None:
        """Run the erasers of `on_reset` on `thread` (each raises STORE_UNAVAILABLE as the history would)."""
        for eraser in self._on_reset:
            await eraser(thread)

    async def server(self, server: Place, reset: Callable[[str], Awaitable[None]]) -> int:
        """The bot left `server`: each conversation held there is `reset` (deleted); how many."""
        threads = await self._index.take(server)
        for start in range(0, len(threads), FORGET_BATCH):
            await asyncio.gather(*(reset(thread) for thread in threads[start : start + FORGET_BATCH]))
        return len(threads)

    async def person(self, scope: str, user: str, threads: Sequence[str] = ()) -> ForgetReport:
        """Delete what is kept about `user` of `scope` (a turn's `quota_scope`): the conversations of their index
        and `threads` (others the platform knows are theirs). Raises STORE_UNAVAILABLE (a ReplyFailure) when Redis
        fails; what was done by then stays done, and the rest is done when asked again."""
        if not user:
            return ForgetReport()
        kinds = await self._index.person_conversations(scope, user)
        listed = sorted({*kinds, *threads})
        done: dict[str, tuple[Outcome, int]] = {}
        for start in range(0, len(listed), FORGET_BATCH):
            batch = listed[start : start + FORGET_BATCH]
            outcomes = await asyncio.gather(*(self._thread(thread, user) for thread in batch), return_exceptions=True)
            for thread, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    raise outcome  # once the batch's others are done: none is left midway
                done[thread] = outcome
        counters = await self._quota.forget(scope, user)
        await self._index.unnote_person(scope, user, list(kinds))
        deleted = [thread for thread, (outcome, _) in done.items() if outcome is Outcome.DELETED]
        report = ForgetReport(
            conversations=len(deleted),
            dms=sum(1 for thread in deleted if kinds.get(thread) == "dm"),
            shared=sum(1 for outcome, _ in done.values() if outcome is Outcome.TRIMMED),
            messages=sum(removed for _, removed in done.values()),
            counters=counters,
        )
        log.info(
            "person_forgotten",
            scope=scope,
            conversations=report.conversations,
            shared=report.shared,
            messages=report.messages,
        )
        return report

    async def _thread(self, thread: str, user: str) -> tuple[Outcome, int]:
        """Take `user`'s messages out of `thread`, once its answer being written (if any) is stored."""
        store = self._store
        async with self._locks.hold(thread) as fence:
            keys = [store.key(thread), fence_key(store.lock_key(thread))]
            keys += [store.key(thread, kind) for kind in ("images", "image-order", "model")]
            changed = self._script(keys=keys, args=[user, fence])
            outcome, removed = await served(changed, "forget_error", self._on_error)
        return Outcome(int(outcome)), int(removed)
