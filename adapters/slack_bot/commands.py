"""Slack's commands and shortcuts: /ask, /reset, /model, /tools, /respond, and "Ask … about this" on a message.
Each is acknowledged first (Slack waits 3 s at most), then does its work."""

from __future__ import annotations

import re
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.shared.helpdesk.helper_settings import helpers_here, set_helpers_here
from adapters.shared.place_settings import (
    model_here,
    respond_here,
    set_model_here,
    set_respond_here,
    set_tools_here,
    tools_here,
)
from adapters.shared.platform_jobs import describe_models, switched_model, unknown_model
from adapters.shared.tool_words import tool_use
from adapters.slack_bot.buttons.helper_calls import bots_among, mentions, named_helpers
from adapters.slack_bot.places.message_places import slack_places
from adapters.slack_bot.ports import Answerer
from adapters.slack_bot.reply.surfaces import Reach
from adapters.slack_bot.reply.text import escape_mrkdwn
from adapters.slack_bot.reply.tool_cards import tools_listing
from bot.errors import ReplyFailure
from bot.reply.render import failure_note
from bot.state.personas import Place

log = structlog.get_logger(__name__)

# The message shortcut's callback id, as in config/slack-app-manifest.yml.
ASK_ABOUT_MESSAGE = "ask_about_message"
_THREAD_LINK = re.compile(
    r"/archives/(?P<channel>[A-Z0-9]+)/p(?P<sec>\d{10})(?P<frac>\d{6})(?:\?.*?thread_ts=(?P<thread>[\d.]+))?"
)


def shown(helpers: tuple[str, ...]) -> str:
    """Helpers as Slack shows them (in a message only the person sees)."""
    return ", ".join(mentions(helpers, ""))


def bold(text: str) -> str:
    return f"*{escape_mrkdwn(text)}*"


def conversation_key(team: str, channel: str, thread_ts: str | None) -> str:
    return f"slack:{team}:dm:{channel}" if thread_ts is None else f"slack:{team}:{channel}:{thread_ts}"


class SlackCommands:
    def __init__(self, bot: Answerer) -> None:
        self._bot = bot
        self._core = bot.jobs.core

    def register(self, app: AsyncApp) -> None:
        app.command("/ask")(self._on_ask)
        app.command("/reset")(self._on_reset)
        app.command("/model")(self._on_model)
        app.command("/tools")(self._on_tools)
        app.command("/respond")(self._on_respond)
        app.shortcut(ASK_ABOUT_MESSAGE)(self._on_ask_about)

    async def _on_ask(self, ack: Any, command: dict[str, Any], context: AsyncBoltContext) -> None:
        question = command.get("text", "").strip()
        if not question:
            await ack("Usage: `/ask your question` — I'll answer in a thread.")
            return
        user, channel, team = command["user_id"], command["channel_id"], command.get("team_id", "")
        if not self._bot.allowed(user, channel):
            await ack(self._bot.refusal())
            return
        await ack()
        reach = Reach.of(context, team)
        try:
            posted = await reach.client.chat_postMessage(
                channel=channel, text=f"<@{user}> asked: {escape_mrkdwn(question)}", unfurl_links=False
            )
        except SlackApiError as error:  # not in the channel, say: the person is told why no answer comes
            log.warning("slack_ask_not_posted", channel=channel, error=error.response.get("error"))
            await self._bot.tell_privately(reach.client, channel, user, not_posted(error))
            return
        place = reach.place(channel, str(posted["ts"]), user)
        self._bot.jobs.spawn(self._bot.answer(place, question, [], asked=str(posted["ts"])))

    async def _on_reset(self, ack: Any, command: dict[str, Any]) -> None:
        team, channel = command.get("team_id", ""), command["channel_id"]
        link = _THREAD_LINK.search(command.get("text", ""))
        if link:
            thread_ts = link["thread"] or f"{link['sec']}.{link['frac']}"
            key = conversation_key(team, link["channel"], thread_ts)
        elif channel.startswith("D"):
            key = conversation_key(team, channel, None)
        else:
            await ack("Use /reset in a DM with me, or pass a thread's link: `/reset <link to the thread>`.")
            return
        await self._core.reset(key)
        await ack("Done: I've forgotten that conversation. The next message starts fresh.")

    async def _on_model(self, ack: Any, command: dict[str, Any], client: AsyncWebClient) -> None:
        """In a DM, the DM's model; in a channel, the model of its new threads (set by admins)."""
        name = command.get("text", "").strip()
        user, channel, team = command["user_id"], command["channel_id"], command.get("team_id", "")
        try:
            if channel.startswith("D"):
                await ack(await self._dm_model(conversation_key(team, channel, None), name))
            elif not name:
                await ack(await model_here(self._core, slack_places(team, channel), bold))
            elif not await self.is_admin(client, user):
                await ack("Only workspace admins (or the people this bot names) may set a channel's model.")
            else:
                await ack(await set_model_here(self._core, slack_places(team, channel)[0], name, bold, escape_mrkdwn))
        except ReplyFailure as failure:
            await ack(failure_note(failure))

    async def _dm_model(self, key: str, name: str) -> str:
        if not name:
            return describe_models(self._core.models, await self._core.model_for(key), bold)
        if (choice := await self._core.choose_model(key, name)) is None:
            return unknown_model(self._core.models, escape_mrkdwn(name), bold)
        return switched_model(choice, bold)

    async def _on_tools(self, ack: Any, command: dict[str, Any], client: AsyncWebClient) -> None:
        """The tools the bot can use and which ask first, to the person alone; `/tools on|off|default` in a channel
        turns them on or off there (admins)."""
        choice = command.get("text", "").strip().lower()
        user, channel, team = command["user_id"], command["channel_id"], command.get("team_id", "")
        places = slack_places(team, channel)
        try:
            if not choice:
                # In a DM, its conversation's model; in a channel, the model of the threads questions start there.
                thread = conversation_key(team, channel, None) if channel.startswith("D") else None
                use = await tool_use(self._core, thread, places) if self._core.tools else None
                await ack(f"{await tools_here(self._core, places)}\n{tools_listing(self._core.tools, use)}")
            elif channel.startswith("D"):
                await ack("Tools are turned on or off per channel: use /tools on or /tools off in one.")
            elif not await self.is_admin(client, user):
                await ack("Only workspace admins (or the people this bot names) may turn tools on or off here.")
            else:
                await ack(await set_tools_here(self._core, places[0], choice))
        except ReplyFailure as failure:
            await ack(failure_note(failure))

    async def _on_respond(
        self, ack: Any, command: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        """What the bot answers in this channel without a mention, to the person alone; `/respond mentions|questions|
        all|default` sets it, `/respond helpers @a @b|@group|none|default` who its threads are handed to (admins)."""
        choice = command.get("text", "").strip().lower()
        user, channel, team = command["user_id"], command["channel_id"], command.get("team_id", "")
        places = slack_places(team, channel)
        try:
            if channel.startswith("D"):
                await ack("In a DM the bot answers every message. /respond sets what it answers in a channel.")
            elif not choice:
                await ack(
                    f"{await respond_here(self._core, places, bold)}\n{await helpers_here(self._core, places, shown)}"
                )
            elif not await self.is_admin(client, user):
                await ack("Only workspace admins (or the people this bot names) may change what the bot answers here.")
            elif choice.split()[0] == "helpers":
                await ack(await self._set_helpers(client, places[0], command["text"], context.bot_user_id or ""))
            else:
                await ack(await set_respond_here(self._core, places[0], choice, bold))
        except ReplyFailure as failure:
            await ack(failure_note(failure))

    async def _set_helpers(self, client: AsyncWebClient, place: Place, text: str, bot_user_id: str) -> str:
        """`/respond helpers …`: people or a user group; none (nobody) or default (as the workspace or file say)."""
        said = text.strip()[len("helpers") :].strip()
        if said.lower() in ("none", "default"):
            return await set_helpers_here(self._core, place, None if said.lower() == "default" else (), shown)
        helpers = named_helpers(said)
        if not helpers:
            return "Name the helpers: /respond helpers @alice @bob, or a user group (@support); none for nobody."
        if await bots_among(client, helpers, bot_user_id):
            return "Helpers are people: the bot hands a thread to people, never to itself or another bot."
        return await set_helpers_here(self._core, place, helpers, shown)

    async def is_admin(self, client: AsyncWebClient, user: str) -> bool:
        """A workspace admin or owner (asked of the workspace `client` reaches), or named in SLACK_ADMIN_USER_IDS."""
        if user in self._bot.settings.admin_user_ids:
            return True
        try:
            info = (await client.users_info(user=user))["user"]
        except SlackApiError as error:
            log.warning("slack_admin_check_failed", user=user, error=error.response.get("error"))
            return False
        return bool(info.get("is_admin") or info.get("is_owner"))

    async def _on_ask_about(self, ack: Any, shortcut: dict[str, Any], context: AsyncBoltContext) -> None:
        """The message shortcut: answer in the message's thread, about the message."""
        await ack()
        message, user = shortcut.get("message", {}), shortcut["user"]["id"]
        channel = shortcut["channel"]["id"]
        reach = Reach.of(context, shortcut.get("team", {}).get("id", ""))
        if not self._bot.allowed(user, channel):
            await self._bot.tell_privately(reach.client, channel, user, self._bot.refusal())
            return
        place = reach.place(channel, message.get("thread_ts") or message["ts"], user)
        author = await self._bot.display_name_of(reach.client, reach.team, message.get("user", ""))
        files = [self._bot.attachment(reach, file) for file in message.get("files", [])]
        about = (author, message.get("text", ""), files)
        self._bot.jobs.spawn(self._bot.answer(place, "", [], about=about, asked=str(message["ts"])))


def not_posted(error: SlackApiError) -> str:
    """Why /ask got no thread, for the person who asked."""
    if error.response.get("error") in ("not_in_channel", "channel_not_found"):
        return "I can't post in this channel: invite me first (mention me, or add me from the channel's details)."
    return f"I couldn't post your question here (Slack said {error.response.get('error')}). Try again in a moment."
