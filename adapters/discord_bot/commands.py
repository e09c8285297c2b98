"""Discord's application commands: /ask, /reset, /model, and "Ask <bot>" in a message's Apps menu (and, registered
from here, /persona, /tools, /respond, /usage and /budget).

They can be installed to a server (with the bot) and to a person's account: then they work in
any server, group DM or DM that person is in, where the bot itself is not. There the bot can
neither read nor post in the channel, so it answers in the interaction's response only.
"""

from __future__ import annotations

from typing import Any, Protocol

import discord
import structlog
from discord import app_commands

from adapters.discord_bot.knowledge.access import DiscordKnowledge, guild_scope
from adapters.discord_bot.places.message_places import places_of, quota_channel
from adapters.discord_bot.places.permissions import Scope
from adapters.discord_bot.places.persona_commands import PersonaCommands
from adapters.discord_bot.places.place_commands import PlaceCommands, bold
from adapters.discord_bot.reply.surfaces import (
    REPLY_LIMITS,
    ChannelReply,
    Destination,
    DiscordRateLimits,
    InteractionReply,
    OnPosted,
)
from adapters.discord_bot.reply.vote_buttons import answer_id, person
from adapters.discord_bot.settings import DiscordSettings
from adapters.discord_bot.turns import turn_about
from adapters.discord_bot.usage_commands import UsageCommands
from adapters.shared.files.attachments import Attachment
from adapters.shared.platform_jobs import Kept, PlatformJobs, describe_models, switched_model, unknown_model
from bot.core import Turn
from bot.errors import ReplyFailure
from bot.reply.render import failure_note

log = structlog.get_logger(__name__)

# Discord shows at most this many autocomplete choices.
AUTOCOMPLETE_CHOICES = 25
MENU_NAME_LENGTH = 32


class CommandHost(Protocol):
    """What the commands use of the client that registers them (client.py), which they never import."""

    @property
    def jobs(self) -> PlatformJobs: ...

    @property
    def settings(self) -> DiscordSettings: ...

    @property
    def rate_limits(self) -> DiscordRateLimits: ...

    def allowed(self, user: discord.abc.User, guild: discord.Guild | None, channel: Any) -> bool: ...

    def refusal(self, guild: discord.Guild | None) -> str: ...

    def attachments_of(self, message: discord.Message) -> list[Attachment]: ...

    async def open_thread(self, message: discord.Message) -> Destination: ...

    def linker(self, key: str) -> OnPosted: ...

    @property
    def knowledge(self) -> DiscordKnowledge: ...


class Commands:
    """The bot's commands, each answered by the one process that claims the interaction."""

    def __init__(self, bot: CommandHost) -> None:
        self._bot = bot
        self._jobs = bot.jobs
        self._places = PlaceCommands(bot.jobs, bot.settings)

    def register(self, tree: app_commands.CommandTree[discord.Client]) -> None:
        @tree.command(name="ask", description="Ask the model a question")
        @app_commands.describe(prompt="Your question")
        async def ask(interaction: discord.Interaction, prompt: str) -> None:
            await self._ask(interaction, prompt)

        @tree.command(name="reset", description="Forget this thread's or DM's conversation")
        async def reset(interaction: discord.Interaction) -> None:
            await self._reset(interaction)

        @tree.command(name="model", description="Show or switch the model of this conversation (or channel)")
        @app_commands.describe(
            name="The model to switch to", scope="Set the model of this channel's (or server's) new threads"
        )
        async def model(interaction: discord.Interaction, name: str | None = None, scope: Scope | None = None) -> None:
            await self._model(interaction, name, scope)

        @model.autocomplete("name")
        async def model_names(_: discord.Interaction, typed: str) -> list[app_commands.Choice[str]]:
            return self._model_choices(typed)

        PersonaCommands(self._bot, places_of).register(tree)
        self._places.register_tools(tree, places_of, conversation_key)
        self._places.register_respond(tree, places_of)
        UsageCommands(self._jobs, self._bot.settings, places_of).register(tree)

    def register_menu(self, tree: app_commands.CommandTree[discord.Client], bot_name: str) -> None:
        """ "Ask <bot>" in a message's Apps menu (named once the bot's own name is known)."""
        name = f"Ask {bot_name}"[:MENU_NAME_LENGTH]
        tree.add_command(app_commands.ContextMenu(name=name, callback=self._ask_about))

    @staticmethod
    def install_everywhere(tree: app_commands.CommandTree[discord.Client], app: discord.AppInfo | None) -> None:
        """Every command: in servers and the bot's DM through the server install, and, when the
        application allows user installs (developer portal → Installation), on people's accounts
        too, so it also works in group DMs and DMs of people and in servers without the bot.
        Discord refuses commands with an install type the application does not allow."""
        users = app is not None and app.user_integration_config is not None
        tree.allowed_installs = app_commands.AppInstallationType(guild=True, user=users)
        tree.allowed_contexts = app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=users)
        if not users:
            log.warning(
                "discord_user_install_off",
                effect="the commands work only where the bot was added",
                fix="developer portal → Installation → Installation Contexts: tick User Install, then restart",
            )

    # -- /ask and /reset ------------------------------------------------------------------

    async def _ask(self, interaction: discord.Interaction, prompt: str) -> None:
        if not await self._allowed(interaction):
            return
        if not prompt.strip():
            await interaction.response.send_message("Usage: `/ask prompt: your question`", ephemeral=True)
            return
        await interaction.response.defer(thinking=True)
        key = conversation_key(interaction.channel) or f"discord:ask:{interaction.id}"
        turn = Turn(
            key,
            str(interaction.user.id),
            interaction.user.display_name,
            prompt.strip(),
            channel=quota_channel(interaction.channel),
            places=places_of(interaction.channel, interaction.guild),
            knowledge=await self._bot.knowledge.access(interaction.guild, interaction.user, interaction.channel),
        )
        surface = self._response_surface(interaction, key, votes=str(interaction.id))
        await self._jobs.answer(turn, surface, kept=self._kept(interaction, ""))

    def _response_surface(
        self, interaction: discord.Interaction, key: str, votes: str | None = None
    ) -> InteractionReply:
        """The interaction's response; where the bot is in the channel, replying to the answer
        continues the conversation (elsewhere the bot never sees the reply)."""
        linker = self._bot.linker(key) if reaches_channel(interaction) else _unlinked
        return InteractionReply(interaction, self._bot.rate_limits, linker, votes)

    async def _reset(self, interaction: discord.Interaction) -> None:
        key = conversation_key(interaction.channel)
        if key is None:
            text = "Conversations live in threads and DMs: use /reset inside one of them."
        else:
            await self._jobs.core.reset(key)
            text = "Done: I've forgotten this conversation. The next message starts fresh."
        await interaction.response.send_message(text, ephemeral=True)

    # -- /model ---------------------------------------------------------------------------

    async def _model(self, interaction: discord.Interaction, name: str | None, scope: Scope | None) -> None:
        """In a thread or DM, its conversation's model; in a channel (or with a scope), its new threads'."""
        key = conversation_key(interaction.channel)
        if key is None or scope is not None:
            places = places_of(interaction.channel, interaction.guild)
            text = await self._places.channel_model(interaction, places, name, scope or "channel")
            await interaction.response.send_message(text, ephemeral=True)
            return
        core = self._jobs.core
        choice = core.models.find(name) if name else None
        try:
            if not name:
                text = describe_models(core.models, await core.model_for(key), bold)
            elif choice is None:
                text = unknown_model(core.models, name, bold)
            elif refusal := self._switch_refusal(interaction):
                text = refusal
            else:
                await core.choose_model(key, choice.id)
                await interaction.response.send_message(switched_model(choice, bold))  # for everyone there
                return
        except ReplyFailure as failure:
            text = failure_note(failure)
        await interaction.response.send_message(text, ephemeral=True)

    def _model_choices(self, typed: str) -> list[app_commands.Choice[str]]:
        wanted = typed.strip().casefold()
        return [
            app_commands.Choice(name=choice.display_name[:100], value=choice.id[:100])
            for choice in self._jobs.core.models.choices
            if wanted in choice.display_name.casefold() or wanted in choice.id.casefold()
        ][:AUTOCOMPLETE_CHOICES]

    def _switch_refusal(self, interaction: discord.Interaction) -> str | None:
        """Why this person may not switch models (DISCORD_MODEL_ROLE_IDS), or None."""
        allowed = self._bot.settings.model_role_ids
        if not allowed:
            return None
        if interaction.guild is None:
            return "Only members with certain server roles may switch models, so it can't be done in a DM."
        if {str(role.id) for role in getattr(interaction.user, "roles", [])} & allowed:
            return None
        return "Only some roles on this server may switch models, and you don't have one of them."

    # -- "Ask <bot>" on a message -----------------------------------------------------------

    async def _ask_about(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Answer about `message`: in a thread from it, in its thread or DM, or as a reply to it;
        where the bot is not in the channel, in the interaction's response (the message comes
        with the interaction)."""
        if not await self._allowed(interaction):
            return
        if not reaches_channel(interaction):
            await interaction.response.defer(thinking=True)
            key = conversation_key(interaction.channel) or f"discord:ask:{interaction.id}"
            turn = await self._turn_about(key, interaction, message)
            response = self._response_surface(interaction, key, votes=str(interaction.id))
            await self._jobs.answer(turn, response, kept=self._kept(interaction, message.jump_url))
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        key, destination = await self._destination_for(message)
        place = {"channel_id": message.channel.id, "message_id": message.id, "thread_id": destination.channel.id}
        recording = self._jobs.record(key, place, REPLY_LIMITS)
        linker, votes = self._bot.linker(key), str(interaction.id)
        surface = ChannelReply(
            destination, destination.channel.id, self._bot.rate_limits, linker, recording, votes=votes
        )
        turn = await self._turn_about(key, interaction, message)
        await interaction.edit_original_response(content=f"Answering in {destination.channel.jump_url}")
        await self._jobs.answer(turn, surface, recording, self._kept(interaction, message.jump_url))

    @staticmethod
    def _kept(interaction: discord.Interaction, link: str) -> Kept:
        """Where the votes on the answer to `interaction` (its id on the buttons) are kept."""
        scope = guild_scope(interaction.guild.id) if interaction.guild else "discord:dm"
        channel = str(interaction.channel.id) if interaction.channel else ""
        return Kept(answer_id(interaction.id), scope, link, person(interaction.user), channel)

    async def _turn_about(self, key: str, interaction: discord.Interaction, message: discord.Message) -> Turn:
        about = (message.author.display_name, message.content, self._bot.attachments_of(message))
        question = await self._jobs.question("", (), about, asker=str(interaction.user.id))
        return await turn_about(key, interaction.user, question, message, self._bot.knowledge)

    async def _destination_for(self, message: discord.Message) -> tuple[str, Destination]:
        channel = message.channel
        if isinstance(channel, discord.DMChannel):
            return f"discord:dm:{channel.id}", Destination(channel)
        if isinstance(channel, discord.Thread):
            return f"discord:conv:{channel.id}", Destination(channel, reply_to=message)
        if message.thread is not None:  # a thread already started from it continues there
            return f"discord:conv:{message.id}", Destination(message.thread)
        return f"discord:conv:{message.id}", await self._bot.open_thread(message)

    async def _allowed(self, interaction: discord.Interaction) -> bool:
        if self._bot.allowed(interaction.user, interaction.guild, interaction.channel):
            return True
        await interaction.response.send_message(self._bot.refusal(interaction.guild), ephemeral=True)
        return False


def reaches_channel(interaction: discord.Interaction) -> bool:
    """Whether the bot itself can read and post where `interaction` was used: a server it was
    added to, or its own DM. Not so for a user install used in a server without the bot, a
    group DM or a DM between people: there only the interaction's response is the bot's."""
    context = interaction.context
    if context.private_channel:
        return False
    if context.guild:
        return interaction.is_guild_integration()
    return True  # the bot's DM (or an interaction from before Discord sent its context)


async def _unlinked(_: discord.Message) -> None:
    return None


def conversation_key(channel: object) -> str | None:
    """The conversation a command used in `channel` is about (None outside threads and DMs):
    a thread, or a DM or group DM (the bot's own or, through a user install, people's)."""
    if isinstance(channel, discord.DMChannel | discord.GroupChannel):
        return f"discord:dm:{channel.id}"
    if isinstance(channel, discord.Thread):
        return f"discord:conv:{channel.id}"
    return None
