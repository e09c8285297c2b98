"""/knowledge: what the bot knows of this server. `add file:` reads a document into it, `add url:` a docs site or a
GitHub repository (read now and every KNOWLEDGE_SYNC_HOURS; `sync` reads them again now), `channel on|off` (run in the
channel) makes a channel's messages knowledge or not, `list` shows the sources, `remove source:` removes one, `gaps`
lists what it couldn't answer well (questions it stayed silent on, answers voted 👎, answers without a source), and
"Add to knowledge" in a message's Apps menu adds that message and its files. For members with Discord's Manage
Server (Manage Channels for `channel`) or a role in DISCORD_ADMIN_ROLE_IDS; anyone else is told why. Every answer is
ephemeral, and sent without mentions (the client's default)."""

from __future__ import annotations

import io
from typing import Literal, Protocol

import discord
import structlog
from discord import app_commands

from adapters.discord_bot.files import attachment
from adapters.discord_bot.knowledge.access import DiscordKnowledge, guild_scope, knowledge_channel, readable_gaps
from adapters.discord_bot.knowledge.adding import KnowledgeAdding, plural
from adapters.discord_bot.knowledge.history import HistoryReader
from adapters.discord_bot.knowledge.listing import listing, source_choices
from adapters.discord_bot.places.permissions import Scope, may_change, refusal
from adapters.discord_bot.settings import DiscordSettings
from adapters.shared.feedback.gaps import gaps_report
from adapters.shared.knowledge_sources.channels import Backfill
from adapters.shared.platform_jobs import PlatformJobs
from adapters.shared.web_knowledge.commands import is_web_source
from bot.errors import ReplyFailure
from bot.knowledge.opener import KnowledgeUnavailable
from bot.knowledge.service import Knowledge
from bot.reply.render import failure_note

log = structlog.get_logger(__name__)

MENU_NAME = "Add to knowledge"
GAPS_FILE = "knowledge-gaps.csv"
MESSAGE_LIMIT = 2_000
State = Literal["on", "off"]
NO_KNOWLEDGE = "Knowledge is not available on this bot."
# Where the bot was added to a server: knowledge is a server's, and the bot reads its channels.
SERVERS = app_commands.AppCommandContext(guild=True, dm_channel=False, private_channel=False)
SERVER_INSTALL = app_commands.AppInstallationType(guild=True, user=False)
UNREACHABLE = "I couldn't reach the knowledge just now: try again in a moment."
SERVERS_ONLY = "Knowledge belongs to a server the bot is in: use /knowledge there."
ADD_ONE = "Give `/knowledge add` a `file:` or a `url:` (a docs site, or github.com/owner/repo), one of them."


class KnowledgeHost(Protocol):
    @property
    def jobs(self) -> PlatformJobs: ...

    @property
    def settings(self) -> DiscordSettings: ...

    @property
    def knowledge(self) -> DiscordKnowledge: ...

    @property
    def history(self) -> HistoryReader: ...


class KnowledgeCommands:
    def __init__(self, host: KnowledgeHost) -> None:
        self._host = host
        self._knowledge = host.knowledge
        self._adding = KnowledgeAdding(host.jobs.documents, host.jobs.added)

    def register(self, tree: app_commands.CommandTree[discord.Client]) -> None:
        group = app_commands.Group(
            name="knowledge",
            description="What the bot knows of this server",
            allowed_contexts=SERVERS,
            allowed_installs=SERVER_INSTALL,
        )

        @group.command(name="add", description="Add a document, a docs site or a GitHub repository to the knowledge")
        @app_commands.describe(
            file="A PDF, Word, PowerPoint, Excel, HTML, text or Markdown file",
            url="A docs site (https://docs.example.com/) or a GitHub repository (github.com/owner/repo)",
        )
        async def add(
            interaction: discord.Interaction, file: discord.Attachment | None = None, url: str | None = None
        ) -> None:
            if (file is None) == (url is None):
                await interaction.response.send_message(ADD_ONE, ephemeral=True)
                return
            user = str(interaction.user.id)
            await self._run(
                interaction,
                "server",
                lambda knowledge, scope: (
                    self._add(knowledge, scope, file)
                    if file is not None
                    else self._knowledge.web.add(scope, url or "", user)
                ),
            )

        @group.command(name="sync", description="Read this server's docs sites and GitHub repositories again now")
        async def sync(interaction: discord.Interaction) -> None:
            await self._run(interaction, "server", lambda knowledge, scope: self._knowledge.web.sync(scope))

        @group.command(name="channel", description="Make this channel's messages knowledge (on), or stop (off)")
        @app_commands.describe(state="on: this channel's messages are knowledge; off: they are removed")
        async def channel(interaction: discord.Interaction, state: State) -> None:
            await self._run(interaction, "channel", lambda knowledge, scope: self._channel(interaction, scope, state))

        @group.command(name="list", description="The sources of this server's knowledge")
        async def list_(interaction: discord.Interaction) -> None:
            await self._run(
                interaction, "server", lambda knowledge, scope: self._listing(interaction, knowledge, scope)
            )

        @group.command(name="remove", description="Remove a source from this server's knowledge")
        @app_commands.describe(source="The document or channel to remove")
        async def remove(interaction: discord.Interaction, source: str) -> None:
            await self._run(interaction, "server", lambda knowledge, scope: self._remove(knowledge, scope, source))

        @group.command(name="gaps", description="What the bot couldn't answer well here in 30 days (with a CSV)")
        async def gaps(interaction: discord.Interaction) -> None:
            await self._gaps(interaction)

        @remove.autocomplete("source")
        async def sources(interaction: discord.Interaction, typed: str) -> list[app_commands.Choice[str]]:
            knowledge = self._knowledge.current
            if knowledge is None or interaction.guild is None or not self._may(interaction, "server"):
                return []
            scope = guild_scope(interaction.guild.id)
            web = self._knowledge.web
            return await source_choices(knowledge, web, scope, typed, interaction.guild, interaction.user)

        tree.add_command(group)
        menu = app_commands.ContextMenu(
            name=MENU_NAME, callback=self._add_message, allowed_contexts=SERVERS, allowed_installs=SERVER_INSTALL
        )
        tree.add_command(menu)

    async def _add_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        async def add(knowledge: Knowledge, scope: str) -> str:
            return "\n".join(await self._adding.add_message(knowledge, scope, message))

        await self._run(interaction, "server", add)

    async def _run(self, interaction: discord.Interaction, scope: Scope, work: _Work) -> None:
        """Check who asks and where, start the knowledge if needed, do `work`, and tell the admin privately."""
        if refused := self._refusal(interaction, scope):
            await interaction.response.send_message(refused, ephemeral=True)
            return
        assert interaction.guild is not None  # refused elsewhere
        assert self._knowledge.opener is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            knowledge = await self._knowledge.opener.get()
            said = await work(knowledge, guild_scope(interaction.guild.id))
        except KnowledgeUnavailable as error:
            said = str(error)
        except ReplyFailure as failure:
            said = failure_note(failure)
        except Exception as error:  # noqa: BLE001 - whatever the engine raised, the admin is told rather than left waiting
            log.error("knowledge_command_failed", error=f"{type(error).__name__}: {error}")
            said = UNREACHABLE
        await interaction.edit_original_response(content=said[:MESSAGE_LIMIT])

    async def _gaps(self, interaction: discord.Interaction) -> None:
        """The server's knowledge gaps, to the admin alone, with every entry in a CSV file."""
        if interaction.guild is None or not interaction.is_guild_integration():
            await interaction.response.send_message(SERVERS_ONLY, ephemeral=True)
            return
        if not self._may(interaction, "server"):
            await interaction.response.send_message(refusal("server", "the knowledge gaps", verb="see"), ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild = interaction.guild
        try:
            report = await gaps_report(
                self._host.jobs.feedback,
                self._knowledge.current,
                guild_scope(interaction.guild.id),
                limit_chars=MESSAGE_LIMIT,
                bold=lambda text: f"**{text}**",
                link=lambda text, url: f"[{text}](<{url}>)",
                escape=discord.utils.escape_markdown,
                readable=lambda entries: readable_gaps(guild, interaction.user, entries),
                desk=self._host.jobs.desk,
            )
        except ReplyFailure as failure:
            await interaction.edit_original_response(content=failure_note(failure))
            return
        files = [discord.File(io.BytesIO(report.csv), filename=GAPS_FILE)] if report.entries else []
        await interaction.edit_original_response(content=report.text, attachments=files)

    def _refusal(self, interaction: discord.Interaction, scope: Scope) -> str | None:
        if self._knowledge.opener is None:
            return NO_KNOWLEDGE
        if interaction.guild is None or not interaction.is_guild_integration():
            return SERVERS_ONLY
        if not self._may(interaction, scope):
            return refusal(scope, "the knowledge")
        return None

    def _may(self, interaction: discord.Interaction, scope: Scope) -> bool:
        return may_change(interaction, scope, self._host.settings)

    async def _listing(self, interaction: discord.Interaction, knowledge: Knowledge, scope: str) -> str:
        assert interaction.guild is not None  # refused elsewhere
        return await listing(knowledge, self._knowledge, scope, interaction.guild, interaction.user)

    async def _add(self, knowledge: Knowledge, scope: str, file: discord.Attachment) -> str:
        return await self._adding.add_file(knowledge, scope, attachment(file))

    async def _channel(self, interaction: discord.Interaction, scope: str, state: State) -> str:
        channel_id = knowledge_channel(interaction.channel)
        channel = interaction.guild.get_channel(channel_id) if interaction.guild and channel_id else None
        if channel is None:
            return "Use `/knowledge channel` in a server's text or forum channel (or a public thread or post of one)."
        channels = self._knowledge.channels
        if state == "off":
            return await self._channel_off(scope, str(channel.id), channel.name)
        mine = channel.permissions_for(channel.guild.me)
        if not mine.view_channel:
            return (
                f"I can't see #{channel.name}: give me View Channel there (and Read Message History), then try again."
            )
        if not await channels.opt_in(scope, str(channel.id), f"#{channel.name}"):
            return f"#{channel.name} is already knowledge."
        # The messages said before this command (its id is its time); the feed has those after it.
        await channels.save_backfill(Backfill(scope, str(channel.id), cursor=str(interaction.id), read=0))
        self._host.history.start()
        log.info("knowledge_channel_on", scope=scope, channel=channel.id)
        threads = "posts" if isinstance(channel, discord.ForumChannel) else "public threads"
        said = f"Done: messages in #{channel.name} and its {threads} are knowledge from now on. "
        if not mine.read_message_history:
            return said + "I can't read its history (I need Read Message History here), so only new messages count."
        return said + "I'm reading its last 1,000 messages in the background."

    async def _channel_off(self, scope: str, channel_id: str, name: str) -> str:
        if not await self._knowledge.channels.opt_out(scope, channel_id):
            return f"#{name} isn't knowledge."
        knowledge = self._knowledge.current
        removed = await knowledge.forget_source(scope, f"channel:{channel_id}") if knowledge else 0
        log.info("knowledge_channel_off", scope=scope, channel=channel_id, removed=removed)
        return f"Done: #{name}'s messages are no longer knowledge ({removed:,} removed)."

    async def _remove(self, knowledge: Knowledge, scope: str, source: str) -> str:
        if (removed_site := await self._knowledge.web.remove(scope, knowledge, source)) is not None:
            return removed_site
        found = {info.source: info for info in await knowledge.sources(scope) if not is_web_source(info.source)}
        info = found.get(source) or next((i for i in found.values() if i.title == source), None)
        if info is None:
            return "There's no such source in this server's knowledge: pick one from the list."
        if info.source.startswith("channel:"):
            await self._knowledge.channels.opt_out(scope, info.source.removeprefix("channel:"))
        removed = await knowledge.forget_source(scope, info.source)
        log.info("knowledge_source_removed", scope=scope, source=info.source, passages=removed)
        return f'Removed "{info.title}" from this server\'s knowledge ({plural(removed, "passage", "passages")}).'


class _Work(Protocol):
    async def __call__(self, knowledge: Knowledge, scope: str, /) -> str: ...
