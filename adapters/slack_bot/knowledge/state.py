"""A workspace's knowledge as the Slack app's parts reach it: the knowledge itself (started when first needed), the
channels that are knowledge, and who may read the private ones; what a question may be answered from, and what is
deleted when a person or the workspace asks."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from adapters.shared.knowledge_sources.channels import KnowledgeChannels
from adapters.shared.knowledge_sources.live import LiveChanges
from adapters.shared.web_knowledge.commands import WebCommands
from adapters.slack_bot.knowledge.members import PrivateMembers
from adapters.slack_bot.knowledge.messages import scope_of
from bot.errors import ReplyFailure
from bot.knowledge.opener import KnowledgeOpener
from bot.knowledge.passages import DEPLOYMENT_SCOPE, Access
from bot.knowledge.service import Knowledge

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SlackKnowledge:
    opener: KnowledgeOpener | None  # None: this deployment has no knowledge
    channels: KnowledgeChannels
    members: PrivateMembers
    live: LiveChanges
    web: WebCommands  # the workspace's docs sites and GitHub repositories

    @property
    def privacy(self) -> tuple[PrivateMembers, KnowledgeChannels]:
        """Who reads the private knowledge channels, and which channels are knowledge."""
        return self.members, self.channels

    @property
    def current(self) -> Knowledge | None:
        """The knowledge if it has started in this process (it starts at start-up once it has been used)."""
        return None if self.opener is None else self.opener.current

    async def access(self, team: str, user: str, place: str, *, full_member: bool) -> Access | None:
        """What `user`'s question may be answered from: the workspace's and the deployment's knowledge, of the
        channels only those they can read now (a full member: every public one that is knowledge; anyone: the
        private ones they are in). A guest, or someone Slack didn't say is a full member, gets no public channel's
        knowledge: a guest reads only the channels they were invited to. Answered in `place`, a channel others see,
        only the channels all of them may read too: the public ones and `place` itself (in a DM, all the asker
        may read). None when knowledge hasn't started. Two to four Redis round trips; never a call to Slack."""
        if self.current is None:
            return None
        scopes = (scope_of(team), DEPLOYMENT_SCOPE)
        try:
            channels = await self.channels.channels(scope_of(team))
            readable = await self.members.readable(team, user, channels, public=full_member)
            if not place.startswith("D"):
                readable &= await self.members.public(team, channels) | {place}
            return Access(scopes, readable)
        except ReplyFailure as failure:  # without Redis, no channel's passages: documents only
            log.warning("slack_knowledge_channels_unknown", team=team, detail=failure.detail)
            return Access(scopes)

    async def forget_team(self, team: str) -> int:
        """Everything the workspace made knowledge, its channels' list and their members (raises ReplyFailure)."""
        await self.channels.forget_scope(scope_of(team))
        await self.members.forget_team(team)
        knowledge = self.current
        return 0 if knowledge is None else await knowledge.forget_scope(scope_of(team))

    async def forget_author(self, team: str, user: str) -> int:
        """`user`'s indexed messages in the workspace."""
        knowledge = self.current
        return 0 if knowledge is None else await knowledge.forget_author(scope_of(team), user)
