"""/usage and /budget on Slack (adapters.shared.usage_commands.report and .budget_settings, the same as every
platform's).

`/usage`: the person's tokens and cost today, this week and this month, by model, and what is left of the budgets
that apply to them where they ask. `/usage server` (workspace admins and SLACK_ADMIN_USER_IDS): the workspace's last
30 days, its top 10 people (as user mentions, which notify nobody in an ephemeral message) and its models; the chart
(a PNG, when matplotlib is installed) and a CSV go to the admin's DM with the bot.

`/budget`: the budgets that apply here and where each is set; `/budget [server] person_daily <amount> monthly
<amount>` sets the channel's own (or, with `server`, the workspace's) and is for admins.

Each is acknowledged at once and answered to the person alone through the command's response_url."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.shared.usage_commands.budget_settings import budget_here, parse_budget_words, set_budget_here
from adapters.shared.usage_commands.report import (
    chart_png,
    describe_person,
    describe_scope,
    named,
    names_in,
    person_id,
    person_usage,
    scope_usage,
    usage_csv,
)
from adapters.slack_bot.commands import bold
from adapters.slack_bot.places.message_places import slack_places
from adapters.slack_bot.ports import Answerer
from bot.core import ChatCore
from bot.errors import ReplyFailure
from bot.reply.render import failure_note
from bot.state.forget import scope_of
from bot.state.personas import Place
from bot.usage.accounting import Payer, payer_of

NAME = "slack"
log = structlog.get_logger(__name__)

USAGE = (
    "`/usage`: your tokens and cost today, this week and this month, and what's left of your budgets.\n"
    "`/usage server`: this workspace's last 30 days, its top people and models (admins)."
)
NOT_ADMIN_USAGE = "Only workspace admins (or the people this bot names) may see this workspace's usage."
NOT_ADMIN_BUDGET = "Only workspace admins (or the people this bot names) may change the budgets here."
IN_A_CHANNEL = (
    "A DM has no budget of its own: run `/budget person_daily …` or `/budget monthly …` in a channel, or "
    "`/budget server …` for the whole workspace."
)
CSV_FILE = "usage.csv"
CHART_FILE = "usage.png"
WHERE = "this workspace"


def payer_here(team: str, user: str, places: Sequence[Place]) -> Payer:
    """Who pays for `user`'s questions in `places`: the same Payer the core builds for their turns (a turn's
    quota_scope is the workspace's: bot.state.forget.scope_of)."""
    return payer_of(NAME, scope_of(NAME, team), user, places)


def workspace_places(team: str) -> tuple[Place, ...]:
    """The places of a question asked outside any channel (a DM, the Home tab): the workspace alone."""
    return slack_places(team, "D")


class UsageCommands:
    def __init__(self, bot: Answerer, is_admin: Callable[[AsyncWebClient, str], Awaitable[bool]]) -> None:
        self._bot = bot
        self._core: ChatCore = bot.jobs.core
        self._is_admin = is_admin

    def register(self, app: AsyncApp) -> None:
        app.command("/usage")(self._on_usage)
        app.command("/budget")(self._on_budget)

    async def _on_usage(self, ack: Any, command: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        await ack()
        words = command.get("text", "").split()
        team, channel, user = command.get("team_id", ""), command["channel_id"], command["user_id"]
        try:
            if not words:
                places = slack_places(team, channel)
                usage = await person_usage(self._core, payer_here(team, user, places), places)
                said = describe_person(usage, bold)
            elif [word.lower() for word in words] not in (["server"], ["workspace"]):
                said = USAGE
            elif await self._is_admin(client, user):
                said = await self._workspace(client, team, user)
            else:
                said = NOT_ADMIN_USAGE
        except ReplyFailure as failure:
            said = failure_note(failure)
        await respond(text=said, response_type="ephemeral", replace_original=False)

    async def _workspace(self, client: AsyncWebClient, team: str, user: str) -> str:
        """`/usage server`: the text for the admin; the chart and the CSV go to their DM with the bot."""
        usage = await scope_usage(self._core, Place(NAME, "server", team).key)
        said = describe_scope(usage, lambda person: f"<@{person_id(person)}>", bold, where=WHERE)
        if not usage.total.turns and not usage.total.tokens:
            return said
        people = names_in(usage)
        names = dict(zip(people, await asyncio.gather(*(self._name(client, team, p) for p in people)), strict=True))
        uploads: list[dict[str, Any]] = [
            {"file": usage_csv(usage, named(names)), "filename": CSV_FILE, "title": f"Usage of {WHERE} (30 days)"}
        ]
        chart = await chart_png(usage, f"Tokens per day, {WHERE} (last {len(usage.days)} days)")
        if chart is not None:
            alt = f"A bar chart of the tokens {WHERE} used each day of the last {len(usage.days)} days"
            uploads.append({"file": chart, "filename": CHART_FILE, "title": "Tokens per day", "alt_txt": alt})
        try:
            dm = (await client.conversations_open(users=user))["channel"]["id"]
            await client.files_upload_v2(channel=dm, file_uploads=uploads)
        except SlackApiError as error:
            log.warning("slack_usage_files_not_sent", team=team, error=error.response.get("error"))
            return f"{said}\n(I couldn't send you the files: Slack answered `{error.response.get('error')}`.)"
        except SlackRequestError as error:  # the upload itself failed (files.slack.com)
            log.warning("slack_usage_files_not_sent", team=team, error=str(error))
            return f"{said}\n(I couldn't send you the files: the upload failed. Try again in a moment.)"
        sent = f"the chart ({CHART_FILE}) and every day's counts ({CSV_FILE})" if chart else f"{CSV_FILE}"
        return f"{said}\nI've sent {sent} to your DM with me."

    async def _name(self, client: AsyncWebClient, team: str, person: str) -> str:
        """How the CSV names a person: their display name (looked up, and cached, as for their questions) and id."""
        user = person_id(person)
        return f"{await self._bot.display_name_of(client, team, user)} ({user})"

    async def _on_budget(self, ack: Any, command: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        await ack()
        text = command.get("text", "").strip()
        team, channel, user = command.get("team_id", ""), command["channel_id"], command["user_id"]
        places = slack_places(team, channel)
        try:
            if not text:
                said = await budget_here(self._core, places, bold)
            else:
                said = await self._set(client, text, user, places)
        except ReplyFailure as failure:
            said = failure_note(failure)
        await respond(text=said, response_type="ephemeral", replace_original=False)

    async def _set(self, client: AsyncWebClient, text: str, user: str, places: tuple[Place, ...]) -> str:
        if not await self._is_admin(client, user):
            return NOT_ADMIN_BUDGET
        try:
            scope, fields = parse_budget_words(text)
        except ValueError as error:
            return str(error)
        place = places[-1] if scope == "server" else places[0]
        if place.kind != "channel" and scope != "server":
            return IN_A_CHANNEL
        return await set_budget_here(
            self._core, place, bold, person_daily=fields.get("person_daily"), monthly=fields.get("monthly")
        )
