"""The bot leaving a server (kicked, or its app removed; an outage is not this): the server's settings, its
conversations, its feedback and its knowledge go."""

from __future__ import annotations

import discord
import structlog

from adapters.discord_bot.knowledge.access import DiscordKnowledge, guild_scope
from adapters.shared.platform_jobs import PlatformJobs
from bot.errors import ReplyFailure
from bot.state.personas import Place

log = structlog.get_logger(__name__)


class ServerLeaving:
    def __init__(self, jobs: PlatformJobs, knowledge: DiscordKnowledge, platform: str) -> None:
        self._jobs = jobs
        self._knowledge = knowledge
        self._platform = platform

    async def forget(self, guild: discord.Guild) -> None:
        """Everything the bot kept of `guild`."""
        server = Place(self._platform, "server", str(guild.id))
        channels = [Place(self._platform, "channel", str(channel.id)) for channel in guild.channels]
        try:
            conversations = await self._jobs.core.forget_server(server, channels)
            await self._jobs.feedback.forget_scope(guild_scope(guild.id))
            passages = await self._forget_knowledge(guild_scope(guild.id))
        except ReplyFailure as failure:
            log.warning("guild_data_not_deleted", guild=guild.id, detail=failure.detail)
            return
        await self._jobs.sweep_server(str(guild.id))  # what is left of the server's keys, of every kind
        log.info("guild_data_deleted", guild=guild.id, conversations=conversations, passages=passages)

    async def _forget_knowledge(self, scope: str) -> int:
        """The server's knowledge channels and passages; how many passages went."""
        knowledge = self._knowledge
        opted_in = await knowledge.channels.channels(scope)
        await knowledge.channels.forget_scope(scope)
        engine = knowledge.current or (await knowledge.get() if opted_in else None)
        try:
            return await engine.forget_scope(scope) if engine is not None else 0
        except Exception as error:  # noqa: BLE001 - whatever the engine raised, the rest is deleted and this logged
            log.error("guild_knowledge_not_deleted", scope=scope, error=str(error))
            return 0
