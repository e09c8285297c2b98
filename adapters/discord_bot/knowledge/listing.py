"""/knowledge list: a server's sources (each with its passages, size and when it was last updated), its docs sites and
GitHub repositories (pages read, failed and skipped, when they were and will be read), its knowledge channels (and
how far reading their history has come), and how many files the whole deployment shares; to each admin, only the
channels they can view."""

from __future__ import annotations

import discord
from discord import app_commands

from adapters.discord_bot.knowledge.access import PLATFORM, DiscordKnowledge, readable_channels
from adapters.discord_bot.knowledge.adding import plural
from adapters.discord_bot.knowledge.history import HISTORY_MESSAGES
from adapters.shared.web_knowledge.commands import Shown, WebCommands, is_web_source
from bot.knowledge.passages import DEPLOYMENT_SCOPE, SourceInfo
from bot.knowledge.service import Knowledge

AUTOCOMPLETE_CHOICES = 25
SHOWN_CHARS = 1_850  # of Discord's 2,000, leaving room for the "…and N more" line
SHOWN = Shown(bold=lambda text: f"**{text}**", escape=discord.utils.escape_markdown, when=lambda at: f"<t:{int(at)}:R>")


async def listing(
    knowledge: Knowledge, discord_knowledge: DiscordKnowledge, scope: str, guild: discord.Guild, admin: object
) -> str:
    """The server's knowledge as `admin` may see it: of the channels, only those they can view."""
    everything = [info for info in await knowledge.sources(scope) if not is_web_source(info.source)]
    channels = await discord_knowledge.channels.channels(scope)
    said_in = {info.source.removeprefix("channel:") for info in everything if info.source.startswith("channel:")}
    readable = readable_channels(guild, admin, {*channels, *said_in})
    channels = {channel: title for channel, title in channels.items() if channel in readable}
    sources = sorted(
        (info for info in everything if _said_in(info) in readable | {""}),
        key=lambda info: info.updated_at,
        reverse=True,
    )
    reading = {b.channel: b.read for b in await discord_knowledge.channels.backfills(PLATFORM) if b.scope == scope}
    shared = len([info for info in await knowledge.sources(DEPLOYMENT_SCOPE) if not is_web_source(info.source)])
    sites = await discord_knowledge.web.lines(scope, SHOWN)
    lines = ["**This server's knowledge**" if sources or sites else "This server's knowledge has no sources yet."]
    lines += sites
    lines += [_source_line(info) for info in sources]
    if channels:
        lines.append(
            "**Channels** (new messages are knowledge within seconds): "
            + ", ".join(
                _channel_text(channel, title, reading)
                for channel, title in sorted(channels.items(), key=lambda c: c[1])
            )
        )
    if shared:
        lines.append(f"Every server also shares {plural(shared, 'file', 'files')} of the bot's own (KNOWLEDGE_DIR).")
    return _fitted(lines)


def _said_in(info: SourceInfo) -> str:
    """The channel whose messages the source is ("": a document or a message added, readable by all)."""
    return info.source.removeprefix("channel:") if info.source.startswith("channel:") else ""


def _source_line(info: SourceInfo) -> str:
    title = discord.utils.escape_markdown(info.title)
    size = f"{plural(info.passages, 'passage', 'passages')}, {_size(info.characters)}"
    line = f"• **{title}**: {size}, updated <t:{int(info.updated_at)}:R>"
    if info.skipped:
        refused = discord.utils.escape_markdown(info.skipped_reason)
        line += f"; {plural(info.skipped, 'passage', 'passages')} left out ({refused})"
    return line


def _channel_text(channel: str, title: str, reading: dict[str, int]) -> str:
    name = discord.utils.escape_markdown(title)
    if channel in reading:
        return f"{name} (reading its history: {reading[channel]:,} of {HISTORY_MESSAGES:,})"
    return name


def _size(characters: int) -> str:
    if characters < 1_000:
        return plural(characters, "character", "characters")
    return f"{characters / 1_000:,.1f}k characters"


def _fitted(lines: list[str]) -> str:
    shown: list[str] = []
    for index, line in enumerate(lines):
        if sum(len(kept) + 1 for kept in shown) + len(line) > SHOWN_CHARS:
            shown.append(f"…and {len(lines) - index:,} more.")
            break
        shown.append(line)
    return "\n".join(shown)


async def source_choices(
    knowledge: Knowledge, web: WebCommands, scope: str, typed: str, guild: discord.Guild, admin: object
) -> list[app_commands.Choice[str]]:
    """/knowledge remove's suggestions: the sources whose title has what was typed, the newest first; of the
    channels', only those `admin` can view."""
    wanted = typed.strip().casefold()
    everything = [info for info in await knowledge.sources(scope) if not is_web_source(info.source)]
    readable = readable_channels(guild, admin, {_said_in(info) for info in everything} - {""})
    sources = sorted(
        (info for info in everything if _said_in(info) in readable | {""}),
        key=lambda info: info.updated_at,
        reverse=True,
    )
    sites = [app_commands.Choice(name=url[:100], value=url[:100]) for url in await web.names(scope)]
    return [
        *(site for site in sites if wanted in site.name.casefold()),
        *(
            app_commands.Choice(name=info.title[:100] or info.source, value=info.source[:100])
            for info in sources
            if wanted in info.title.casefold()
        ),
    ][:AUTOCOMPLETE_CHOICES]
