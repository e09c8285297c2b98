"""/usage and /budget on Discord (adapters.shared.usage_commands.report,
adapters.shared.usage_commands.budget_settings).

`/usage` shows whoever asks their own tokens and cost today, this week and this month, by model, and what is left of
the budgets that apply to them where they ask (in a server, a DM, through a user install too). `/usage of: server`
shows a server's last 30 days, its top 10 people (as mentions that ping nobody) and its split by model, with a chart
(PNG) and a CSV attached, to members with Manage Server or a role in DISCORD_ADMIN_ROLE_IDS. `/budget` shows the
budgets that apply in a server's channel; with `person_daily` and/or `monthly` (and `scope`) a member with Manage
Channels (Manage Server for the server's) or an admin role changes that channel's or the server's own. Every answer
is ephemeral; anyone else is told why, privately, and nothing changes."""

from __future__ import annotations

import io
from typing import Literal

import discord
from discord import app_commands

from adapters.discord_bot.places.permissions import PlacesOf, Scope, may_change, place_for, refusal
from adapters.discord_bot.settings import DiscordSettings
from adapters.shared.platform_jobs import PlatformJobs
from adapters.shared.usage_commands.budget_settings import budget_here, set_budget_here
from adapters.shared.usage_commands.report import (
    chart_png,
    describe_person,
    describe_scope,
    person_id,
    person_usage,
    scope_usage,
    usage_csv,
)
from bot.errors import ReplyFailure
from bot.reply.render import failure_note
from bot.state.forget import scope_of
from bot.state.personas import Place
from bot.usage.accounting import payer_of

NAME = "discord"
Of = Literal["me", "server"]
MESSAGE_LIMIT = 2_000
CHART_FILE = "usage.png"
CSV_FILE = "usage.csv"
SERVERS_ONLY = "A server's usage is shown in that server: use /usage of: server there."
NOT_ADMIN = (
    "Only members with Manage Server (or an admin role of the bot's) can see this server's usage. "
    "/usage shows your own."
)
BUDGETS_IN_SERVERS = "Budgets are set for a server's channels: use /budget in one."
NO_PINGS = discord.AllowedMentions.none()


def bold(text: str) -> str:
    return f"**{text}**"


def mention(person: str) -> str:
    """A person of the usage ledger ("discord:42") as a mention: Discord shows their name, and NO_PINGS pings nobody."""
    return f"<@{person_id(person)}>"


class UsageCommands:
    def __init__(self, jobs: PlatformJobs, settings: DiscordSettings, places_of: PlacesOf) -> None:
        self._jobs = jobs
        self._settings = settings
        self._places_of = places_of

    def register(self, tree: app_commands.CommandTree[discord.Client]) -> None:
        @tree.command(name="usage", description="Your tokens and cost today, this week, this month (or the server's)")
        @app_commands.describe(of="me: your own usage (the default); server: this server's last 30 days, for admins")
        async def usage(interaction: discord.Interaction, of: Of = "me") -> None:
            if of == "server":
                await self._server_usage(interaction)
            else:
                await self._own_usage(interaction)

        # A server's channels, where the bot was added: budgets are a server's and its channels'.
        @tree.command(name="budget", description="The usage budgets here, or (admins) change them")
        @app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
        @app_commands.allowed_installs(guilds=True, users=False)
        @app_commands.describe(
            person_daily="Each person's budget per day: tokens (20000) or USD ($5); default: remove this place's own",
            monthly="The budget per month of the whole channel or server: tokens or USD; default: remove it",
            scope="This channel, or the server",
        )
        async def budget(
            interaction: discord.Interaction,
            person_daily: str | None = None,
            monthly: str | None = None,
            scope: Scope = "channel",
        ) -> None:
            text = await self._budget(interaction, person_daily, monthly, scope)
            await interaction.response.send_message(text[:MESSAGE_LIMIT], ephemeral=True)

    def _places(self, interaction: discord.Interaction) -> tuple[Place, ...]:
        """Where the person's questions here count and which budgets apply: as for their turns
        (.places.message_places)."""
        return self._places_of(interaction.channel, interaction.guild)

    async def _own_usage(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        places = self._places(interaction)
        # Whose usage it is, exactly as the core counts their turns (ChatCore._answer).
        payer = payer_of(NAME, scope_of(NAME), str(interaction.user.id), places)
        try:
            text = describe_person(await person_usage(self._jobs.core, payer, places), bold)
        except ReplyFailure as failure:
            text = failure_note(failure)
        await interaction.edit_original_response(content=text[:MESSAGE_LIMIT], allowed_mentions=NO_PINGS)

    async def _server_usage(self, interaction: discord.Interaction) -> None:
        """The server's last 30 days, to an admin alone, with its chart and every day's counts in a CSV."""
        server = place_for(self._places(interaction), "server")
        if server is None:
            await interaction.response.send_message(SERVERS_ONLY, ephemeral=True)
            return
        if not may_change(interaction, "server", self._settings):
            await interaction.response.send_message(NOT_ADMIN, ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            usage = await scope_usage(self._jobs.core, server.key)
        except ReplyFailure as failure:
            await interaction.edit_original_response(content=failure_note(failure))
            return
        where = discord.utils.escape_markdown(server.name) if server.name else "this server"
        text = describe_scope(usage, mention, bold, where=where)
        files = [discord.File(io.BytesIO(usage_csv(usage, person_id)), filename=CSV_FILE)]
        chart = await chart_png(usage, f"Tokens per day, {server.name or 'this server'}")
        if chart is not None:
            files.insert(0, discord.File(io.BytesIO(chart), filename=CHART_FILE))
        await interaction.edit_original_response(
            content=text[:MESSAGE_LIMIT], attachments=files, allowed_mentions=NO_PINGS
        )

    async def _budget(
        self, interaction: discord.Interaction, person_daily: str | None, monthly: str | None, scope: Scope
    ) -> str:
        core = self._jobs.core
        places = self._places(interaction)
        try:
            if (place := place_for(places, scope)) is None or place_for(places, "server") is None:
                return BUDGETS_IN_SERVERS
            if person_daily is None and monthly is None:
                return await budget_here(core, places, bold)
            if not may_change(interaction, scope, self._settings):
                return refusal(scope, "the budgets")
            return await set_budget_here(core, place, bold, person_daily=person_daily, monthly=monthly)
        except ReplyFailure as failure:
            return failure_note(failure)
