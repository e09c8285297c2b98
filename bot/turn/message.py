"""One message addressed to the bot, as an adapter hands it to the core."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bot.knowledge.passages import Access, Hit
from bot.state.forget import scope_of
from bot.state.personas import Place


@dataclass(frozen=True)
class Turn:
    """One message addressed to the bot, as an adapter sees it."""

    thread: str  # the conversation's key, starting with the platform: "discord:conv:123"
    author_id: str
    author_name: str
    text: str
    channel: str = ""  # where CHANNEL_TURNS_PER_MINUTE counts it ("" = no channel limit)
    notices: tuple[str, ...] = ()  # for the end of the reply (say, attachments that were skipped)
    images: tuple[str, ...] = ()  # data URLs of the images sent with it
    again: bool = False  # answer the conversation's last question again (its text is unused)
    places: tuple[Place, ...] = ()  # where settings (persona, model, tools) apply to it, the most specific first
    workspace: str = ""  # the Slack workspace it comes from: its quota counters are that workspace's alone
    view: dict[str, Any] = field(default_factory=dict)  # kept with the person's message (see StoredMessage.view)
    knowledge: Access | None = None  # what it may be answered from (None: KNOWLEDGE_DIR's files only)
    received_at: float = field(default_factory=time.monotonic)
    admitted: bool = False  # its quota was already taken (ChatCore.admit), before its adapter opened a thread
    found: tuple[Hit, ...] | None = None  # the knowledge already searched for it (bot.respond.decision), used as it is

    @property
    def platform(self) -> str:
        return self.thread.split(":", 1)[0]

    @property
    def quota_scope(self) -> str:
        """Where its quota counters live: the platform, or the platform's workspace (whose ids may repeat others')."""
        return scope_of(self.platform, self.workspace)
