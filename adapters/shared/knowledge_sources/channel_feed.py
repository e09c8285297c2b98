"""A knowledge channel kept current, one flow for every platform: a message posted in it becomes a passage within
moments, an edit replaces it, a deletion (or an edit to nothing) removes it. The platform gives each event as a
`ChannelChange`: which server or workspace, which knowledge channel, its claim, the passages' keys, and how to read
the message's new text (its passage none when it says nothing any more: an edit to nothing is a deletion). Every process
that gets the event marks the messages changed live, so a page of history read before it doesn't put the old text
back; then one process, the first to claim the event, changes the knowledge. A knowledge channel deleted takes its
messages with it, as does a thread under one (its messages by their links, where the platform names none of them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from adapters.shared.knowledge_sources.channels import KnowledgeChannels
from adapters.shared.knowledge_sources.live import LiveChanges
from bot.errors import ReplyFailure
from bot.knowledge.opener import KnowledgeOpener
from bot.knowledge.passages import Passage
from bot.knowledge.service import Knowledge

log = structlog.get_logger(__name__)

Claim = Callable[[str], Awaitable[bool]]
ReadPassage = Callable[[str], Awaitable[Passage | None]]  # the channel's title → the message's passage, None if empty


@dataclass(frozen=True)
class ChannelChange:
    """One message event of a channel, as its platform gives it."""

    space: str  # the server or workspace, where its live marks are kept
    scope: str  # whose knowledge it is
    channel: str | None  # the channel whose opt-in makes it knowledge (a thread's parent); None: not known here
    claim: str  # the key one process claims to handle the event; "": an event that can't be claimed
    keys: tuple[str, ...]  # the passages it changes
    passage: ReadPassage | None = None  # how to read its new text; None: the messages are deleted


class ChannelFeed:
    def __init__(
        self,
        platform: str,
        channels: KnowledgeChannels,
        live: LiveChanges,
        opener: KnowledgeOpener | None,
        claim: Claim,
        *,
        scopes_listed: bool = False,
    ) -> None:
        """`scopes_listed`: every scope of the platform with channels is in `channels.scopes` (those opted in before
        that set existed may not be), so one cached look at it comes before a scope's own."""
        self._platform = platform
        self._channels = channels
        self._live = live
        self._opener = opener
        self._claim = claim
        self._scopes_listed = scopes_listed

    async def apply(self, change: ChannelChange) -> None:
        """Add, replace or remove the passages of `change` if its channel is knowledge. A channel not known here (an
        old thread out of the platform's cache) has its deletions applied if the knowledge runs in this process."""
        if self._opener is None:
            return
        title = ""
        if change.channel is not None:
            found = await self.title(change.scope, change.channel)
            if found is None:
                return
            title = found
        elif change.passage is not None or self._opener.current is None:
            return
        for key in change.keys:
            await self._live.mark(change.space, key)
        if change.claim and not await self._claim(change.claim):
            return  # another process has it
        knowledge = await self._knowledge()
        if knowledge is None:
            return
        passage = await change.passage(title) if change.passage is not None else None
        if passage is None:
            knowledge.forget_soon(change.scope, list(change.keys))
        else:
            knowledge.add_soon([passage])

    async def title(self, scope: str, channel: str) -> str | None:
        """The knowledge channel's title if `channel` of `scope` is one."""
        try:
            if self._scopes_listed and scope not in await self._channels.scopes(self._platform):
                return None  # most servers: one cached look for them all
            return (await self._channels.channels(scope)).get(channel)
        except ReplyFailure as failure:
            log.warning("knowledge_channels_unreachable", platform=self._platform, detail=failure.detail)
            return None

    async def channel_deleted(self, scope: str, channel: str) -> None:
        """A knowledge channel deleted: its messages go, by the one process whose opt-out removed it."""
        if self._opener is None:
            return
        try:
            if not await self._channels.opt_out(scope, channel):
                return
        except ReplyFailure as failure:
            log.warning("knowledge_channels_unreachable", platform=self._platform, detail=failure.detail)
            return
        knowledge = await self._knowledge()
        removed = await knowledge.forget_source(scope, f"channel:{channel}") if knowledge is not None else 0
        log.info("knowledge_channel_deleted", scope=scope, channel=channel, removed=removed)

    async def thread_deleted(self, scope: str, channel: str, thread: str, links: str) -> None:
        """A thread under knowledge channel `channel` deleted, where the platform names none of its messages: they go
        by their links, which start with `links`; one process does it."""
        if self._opener is None or await self.title(scope, channel) is None:
            return
        if not await self._claim(f"{self._platform}:knowledge:thread-delete:{thread}"):
            return
        knowledge = await self._knowledge()
        removed = await knowledge.forget_linked(scope, links) if knowledge is not None else 0
        log.info("knowledge_thread_deleted", scope=scope, thread=thread, removed=removed)

    async def _knowledge(self) -> Knowledge | None:
        assert self._opener is not None
        return await self._opener.get_or_none()
