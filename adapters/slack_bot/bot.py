"""The Slack app: mentions and DMs answered in threads (their events: .messages; commands: .commands,
.places.persona_command, .forget_command, /usage and /budget: .usage_command; the assistant panel: .assistant; the
Home tab: .home; votes' and tools' buttons: .buttons, help threads marked solved: .buttons.solved; knowledge:
.knowledge.command, .knowledge.shortcut, .knowledge.feed, .knowledge.history; leaving a workspace: .uninstall; people's
names: .people; the reply's surface: .reply.choice),
Socket Mode or HTTP, for one workspace (SLACK_BOT_TOKEN) or any that installs it (.installs.oauth). Each request brings
its workspace's Web API client (.reply.surfaces.Reach); work no request brings one for uses .installs.workspaces.

Conversation keys:
  slack:<team>:<channel>:<thread_ts>  a thread (a mention's thread, a /ask thread, a DM thread, an
                                       assistant panel thread: a DM thread too)
  slack:<team>:dm:<channel>            a DM's top level
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.shared.files.attachments import Attachment, DownloadFailed
from adapters.shared.files.documents import document_kind
from adapters.shared.helpdesk.solving import Solving
from adapters.shared.knowledge_sources.channels import KnowledgeChannels
from adapters.shared.knowledge_sources.live import LiveChanges
from adapters.shared.platform_jobs import Kept, PlatformJobs, Pointed
from adapters.shared.ratelimit import Write
from adapters.shared.web_knowledge.commands import WebCommands
from adapters.shared.web_knowledge.registry import WebSources
from adapters.slack_bot.assistant import SlackAssistant
from adapters.slack_bot.buttons.helper_calls import help_votes
from adapters.slack_bot.buttons.solved import SolvedThreads
from adapters.slack_bot.buttons.tools import ToolButtons
from adapters.slack_bot.buttons.votes import VoteButtons, answer_id, person
from adapters.slack_bot.commands import SlackCommands, conversation_key
from adapters.slack_bot.forget_command import ForgetCommand
from adapters.slack_bot.home import HomeTab
from adapters.slack_bot.installs.installations import RedisInstallationStore
from adapters.slack_bot.installs.oauth import INSTALL_PATH, REDIRECT_PATH, install_flow, secure_pages
from adapters.slack_bot.installs.rotation import SharedTokenRotator
from adapters.slack_bot.installs.workspaces import BotClients, base_client
from adapters.slack_bot.knowledge.command import KnowledgeCommand
from adapters.slack_bot.knowledge.feed import KnowledgeFeed
from adapters.slack_bot.knowledge.history import HistoryReader
from adapters.slack_bot.knowledge.members import PrivateMembers, follow_renames
from adapters.slack_bot.knowledge.messages import Permalinks, message_link
from adapters.slack_bot.knowledge.shortcut import KnowledgeShortcut
from adapters.slack_bot.knowledge.state import SlackKnowledge
from adapters.slack_bot.messages import MessageEvents, thread_link
from adapters.slack_bot.own_events import OwnEventsButDeletions
from adapters.slack_bot.people import People
from adapters.slack_bot.places.message_places import slack_places
from adapters.slack_bot.places.persona_command import PersonaCommand
from adapters.slack_bot.reply.choice import ReplyChoice
from adapters.slack_bot.reply.interrupted import InterruptedReplies
from adapters.slack_bot.reply.surfaces import Place, Reach, WorkspaceBudgets
from adapters.slack_bot.reply.text import REPLY_LIMITS
from adapters.slack_bot.settings import SlackSettings
from adapters.slack_bot.unasked import UnaskedAnswers
from adapters.slack_bot.uninstall import Uninstalls
from adapters.slack_bot.usage_command import UsageCommands
from bot.app import Services
from bot.core import Turn
from bot.errors import ReplyFailure
from bot.knowledge.passages import Access, Hit
from bot.loop import freeze_startup_heap
from bot.respond.decision import Decision
from bot.state.redis_client import REDIS_ERRORS
from config.env import ConfigError
from config.settings import ImageSettings

NAME = "slack"
log = structlog.get_logger(__name__)

API_TIMEOUT_SECONDS = 30  # a Web API call or a file download (slack_sdk's own default)
HTTP_BACKLOG = 2048  # connections waiting to be accepted (gunicorn's default); see _run_http
HEALTH_CHECK_SECONDS = 5.0  # how soon /healthz reports a dropped Socket Mode connection


# -- the bot ---------------------------------------------------------------------------


class SlackBot:
    def __init__(self, services: Services, settings: SlackSettings, images: ImageSettings) -> None:
        self.jobs = PlatformJobs(services, NAME, images)
        self._limits = self.jobs.rate_limits
        self.settings = settings
        # One connection pool for every Web API call and file download. Without one, slack_sdk
        # opens a connection per call: each edit of a live reply would wait for a TCP and TLS
        # handshake with Slack first, two round trips more before the person sees it. Not
        # trust_env: slack_sdk reads HTTPS_PROXY itself (`client.proxy`) and passes it with each
        # call, and trust_env would look up ~/.netrc and the proxy variables in a worker thread
        # for every call as well.
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=API_TIMEOUT_SECONDS)
        )
        # no token with installs to many workspaces: each has its own
        self.client = base_client(settings.bot_token or None, settings.api_url, self._http, services.metrics)
        self._identity: AuthorizeResult | None = None

        async def authorize() -> AuthorizeResult:
            # Bolt's default authorization calls auth.test for every event, before acking it,
            # until one call has answered: a burst of events after start-up would send a burst
            # of auth.test calls and be acked late. run() learns the identity once, before it
            # connects, so no event comes without it.
            assert self._identity is not None
            return self._identity

        if settings.oauth is not None:  # installs to any workspace: bolt authorizes each event from its install
            oauth = install_flow(settings.oauth, self.client, services.redis.main, services.settings.history.key_prefix)
            self.installations: RedisInstallationStore | None = oauth.installations
            rotator: SharedTokenRotator | None = oauth.rotator
            self.app = AsyncApp(
                client=self.client,
                authorize=oauth.authorize,  # type: ignore[arg-type]  # bolt takes an AsyncAuthorize too
                oauth_flow=oauth.flow,
                oauth_settings=oauth.flow.settings,  # else bolt builds default ones from SLACK_CLIENT_ID, unused
                installation_store=oauth.installations,  # bolt's token refresh then goes to SLACK_API_URL too
                signing_secret=settings.signing_secret or "",
                ignoring_self_events_enabled=False,  # OwnEventsButDeletions instead
            )
        else:
            self.installations, rotator = None, None
            self.app = AsyncApp(
                client=self.client,
                authorize=authorize,
                signing_secret=settings.signing_secret or "socket-mode",
                request_verification_enabled=settings.app_token is None,
                ignoring_self_events_enabled=False,  # OwnEventsButDeletions instead
            )
        self.app.use(OwnEventsButDeletions())
        self.clients = BotClients(self.client, rotator)
        self._interrupted = InterruptedReplies(self.clients, services.metrics, NAME)
        self._people = People(self._limits)
        self._org_workspaces: set[str] = set()  # an org-wide install's workspaces this process listed
        self._replies = ReplyChoice(self._limits, streaming=settings.streaming == "auto")
        prefix, redis = services.settings.history.key_prefix, services.redis.main
        self.knowledge = SlackKnowledge(
            services.knowledge,
            KnowledgeChannels(redis, prefix, services.metrics.redis_errors.inc),
            PrivateMembers(redis, prefix),
            LiveChanges(redis, prefix, "slack"),
            WebCommands(WebSources(redis, prefix), services.settings.knowledge.web),
        )
        self._history = HistoryReader(self.knowledge, self.clients, redis, prefix, settings.history)
        self._history_task: asyncio.Task[None] | None = None
        self._feed = KnowledgeFeed(self.knowledge, self.jobs.first_to_claim, self.jobs.added)
        knowledge = self.knowledge
        self.solving = Solving(self.jobs.solutions, knowledge.opener, NAME, knowledge.channels, self.jobs.desk)
        self._unasked = UnaskedAnswers(self)
        self._permalinks = Permalinks()  # before the commands that use it
        self._register()

    def _register(self) -> None:
        MessageEvents(self, self._feed, self._unasked, self.solving).register(self.app)
        commands = SlackCommands(self)
        commands.register(self.app)
        PersonaCommand(self, commands.is_admin).register(self.app)
        UsageCommands(self, commands.is_admin).register(self.app)
        KnowledgeCommand(
            self.knowledge, commands.is_admin, self._history, self.jobs.feedback, self._permalinks, self.jobs.desk
        ).register(self.app)
        KnowledgeShortcut(self, self.knowledge, commands.is_admin).register(self.app)
        self._feed.register(self.app)
        follow_renames(self.app, self.knowledge.channels)
        SlackAssistant(self).register(self.app)  # DM threads' messages go to it first (see .assistant)
        HomeTab(self, self.jobs.core).register(self.app)
        ToolButtons(self).register(self.app)
        VoteButtons(self, self.solving).register(self.app)
        SolvedThreads(self, self.knowledge, self.solving).register(self.app)
        keep_data = self.settings.keep_data_on_uninstall
        Uninstalls(
            self.jobs.core,
            self.installations,
            keep_data=keep_data,
            knowledge=self.knowledge,
            feedback=self.jobs.feedback,
            sweep=self.jobs.sweep_server,
        ).register(self.app)
        ForgetCommand(self.jobs.core, self.knowledge, self.jobs.feedback, self.solving).register(self.app)

    def budgets(self, team: str) -> WorkspaceBudgets:
        """The workspace's rate limits, for a write to Slack outside a reply's surface."""
        return WorkspaceBudgets(self._limits, team)

    # -- events ----------------------------------------------------------------------

    async def first_delivery(self, body: dict[str, Any]) -> bool:
        """Slack redelivers events (retries, several processes): only the first gets a reply."""
        event_id, team = body.get("event_id"), body.get("team_id", "")
        return event_id is None or await self.jobs.first_to_claim(f"slack:event:{team}:{event_id}")

    async def start_turn(self, reach: Reach, event: dict[str, Any], thread_ts: str | None) -> None:
        channel, user = event["channel"], event["user"]
        place = reach.place(channel, thread_ts, user)
        if not self.allowed(user, channel):
            await self.refuse(place)
            return
        text = reach.question_text(event)
        files = [self.attachment(reach, file) for file in event.get("files", [])]
        self.jobs.spawn(self.answer(place, text, files, asked=str(event["ts"])))

    def attachment(self, reach: Reach, file: dict[str, Any]) -> Attachment:
        url = file.get("url_private_download") or file.get("url_private") or ""
        name, mimetype = str(file.get("name") or "file"), str(file.get("mimetype") or "")

        async def download() -> bytes:
            # Slack answers a request it won't serve with its sign-in page, not an error status.
            try:
                headers = {"Authorization": f"Bearer {reach.token}"}
                async with self._http.get(url, headers=headers, proxy=reach.client.proxy or None) as response:
                    signing_in = response.content_type == "text/html" and document_kind(name, mimetype) != "html"
                    if response.status != 200 or signing_in:
                        raise DownloadFailed(f"HTTP {response.status} {response.content_type} (files:read scope?)")
                    return await response.read()
            except aiohttp.ClientError as error:
                raise DownloadFailed(f"{type(error).__name__}: {error}") from error

        return Attachment(name, mimetype, int(file.get("size") or 0), download)

    async def access_of(self, reach: Reach, user: str, place: str) -> Access | None:
        """What `user`'s question, answered in the channel `place`, may be answered from (their name is looked up,
        and kept, to know if they are a full member)."""
        person = await self._people.person(reach.client, reach.team, user, WorkspaceBudgets(self._limits, reach.team))
        return await self.knowledge.access(reach.team, user, place, full_member=person.full_member)

    async def answer_unasked(
        self, reach: Reach, event: dict[str, Any], decision: Decision, arrived: float, first_post: Write
    ) -> None:
        """A top-level message the core decided to answer unasked, answered in its thread (its quota taken, its
        first message's slot of the channel's posts reserved)."""
        place = reach.place(event["channel"], event["ts"], event["user"])
        files = [self.attachment(reach, file) for file in event.get("files", [])]
        unasked = Unasked(decision.found, arrived, first_post)
        self.jobs.spawn(self.answer(place, reach.question_text(event), files, unasked=unasked, asked=str(event["ts"])))

    async def answer(
        self,
        place: Place,
        text: str,
        attachments: list[Attachment],
        *,
        about: Pointed | None = None,
        unasked: Unasked | None = None,
        asked: str | None = None,
    ) -> None:
        """Answer in `place`: the question with its files, after the message it is `about`; `unasked`: a message
        nobody addressed to the bot (its quota already taken); `asked`: the question's message, whose answer then
        takes votes."""
        key = conversation_key(place.team, place.channel, place.thread_ts)
        question = await self.jobs.question(text, attachments, about, asker=f"{place.team}:{place.user}")
        budgets = WorkspaceBudgets(self._limits, place.team)
        person = await self._people.person(place.client, place.team, place.user, budgets)
        where: dict[str, Any] = {
            "team": place.team,
            "channel": place.channel,
            "thread_ts": place.thread_ts,
            "user": place.user,
        }
        if place.enterprise:  # where the install is found, should another process finish the reply
            where |= {"enterprise": place.enterprise, "org_wide": place.org_wide}
        await self._note_org_workspace(place)
        recording = self.jobs.record(key, where, REPLY_LIMITS)
        votes = answer_id(place.team, place.channel, asked) if asked else None
        if votes and place.thread_ts:
            votes = await help_votes(self, votes, slack_places(place.team, place.channel))
        first_post = unasked.first_post if unasked is not None else None
        surface = await self._replies.surface(place, budgets, recording, votes, first_post)
        if place.thread_ts is not None:
            try:
                await self.jobs.link(thread_link(place.team, place.channel, place.thread_ts), key)
            except ReplyFailure:
                pass  # Redis is down: the answer itself says so
        in_dm = place.channel.startswith("D")
        turn = Turn(
            key,
            place.user,
            person.name,
            question.text,
            channel="" if in_dm else f"{place.team}:{place.channel}",
            notices=question.notices,
            images=question.images,
            places=slack_places(place.team, place.channel),
            workspace=place.team,
            knowledge=await self.knowledge.access(
                place.team, place.user, place.channel, full_member=person.full_member
            ),
        )
        if unasked is not None:
            turn = replace(turn, admitted=True, found=unasked.found, received_at=unasked.arrived)
        kept = await self.kept(place, asked) if asked else None
        await self.jobs.answer(turn, surface, recording, kept)

    async def kept(self, place: Place, asked: str) -> Kept:
        """Where the votes on the answer to message `asked` are kept, with a link to that message (made a permalink
        when `/knowledge gaps` shows it: no call to Slack here)."""
        link = message_link(place.channel, asked, place.thread_ts)
        answer = answer_id(place.team, place.channel, asked)
        return Kept(answer, f"slack:{place.team}", link, person(place.team, place.user), place.channel)

    async def _note_org_workspace(self, place: Place) -> None:
        """An org-wide install's workspace, listed once per process, so that its data goes when the org removes
        the app."""
        if not place.org_wide or self.installations is None or place.team in self._org_workspaces:
            return
        try:
            await self.installations.note_workspace(place.enterprise, place.team)
        except REDIS_ERRORS as error:
            log.warning("slack_org_workspace_not_noted", team=place.team, error=type(error).__name__)
            return
        self._org_workspaces.add(place.team)

    # -- people ----------------------------------------------------------------------

    def allowed(self, user: str, channel: str) -> bool:
        if user in self.settings.blocked_user_ids:
            return False
        allowed = self.settings.allowed_channel_ids
        return not allowed or channel in allowed or channel.startswith("D")

    @staticmethod
    def refusal() -> str:
        return "Sorry, I'm not available to you here (this workspace limits who can use me, or where)."

    async def refuse(self, place: Place) -> None:
        await self.tell_privately(place.client, place.channel, place.user, self.refusal(), place.thread_ts)

    async def tell_privately(
        self, client: AsyncWebClient, channel: str, user: str, text: str, thread_ts: str | None = None
    ) -> None:
        try:
            await client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
        except SlackApiError as error:
            log.warning("slack_ephemeral_not_sent", error=error.response.get("error"))

    async def display_name_of(self, client: AsyncWebClient, team: str, user: str) -> str:
        return await self._people.display_name_of(client, team, user)

    async def shutdown(self) -> None:
        if self._history_task is not None:
            self._history_task.cancel()
            await asyncio.gather(self._history_task, return_exceptions=True)
        await self._history.aclose()
        await self.jobs.close()
        await self._http.close()

    # -- running ---------------------------------------------------------------------

    async def run(self) -> None:
        if self.settings.oauth is None:
            await self._learn_identity()
        await self.jobs.keep_replies(self._interrupted.finish)
        self._history_task = asyncio.create_task(self._history.run(), name="slack-history")
        mode = "socket" if self.settings.app_token else "http"
        log.info("slack_ready", mode=mode, installs=self.settings.oauth is not None)
        try:
            if self.settings.app_token:
                await self._run_socket_mode(self.settings.app_token)
            else:
                await self._run_http()
        finally:
            await self.shutdown()

    async def _learn_identity(self) -> None:
        """The one workspace's bot (SLACK_BOT_TOKEN), asked of Slack once before any event."""
        try:
            identity = await self.client.auth_test()
        except SlackApiError as error:
            raise ConfigError(f"SLACK_BOT_TOKEN was rejected by Slack ({error.response.get('error')})") from None
        self._identity = AuthorizeResult.from_auth_test_response(
            auth_test_response=identity, bot_token=self.settings.bot_token
        )
        self._permalinks.know(str(identity.get("team_id") or ""), str(identity.get("url") or ""))
        log.info("slack_identity", user=identity.get("user"), team=identity.get("team"))

    async def _run_socket_mode(self, app_token: str) -> None:
        handler = AsyncSocketModeHandler(self.app, app_token)
        await handler.connect_async()  # type: ignore[no-untyped-call]  # slack_bolt leaves it unannotated
        freeze_startup_heap()  # what connecting built stays, like the core's start-up heap
        try:
            await self._keep_watch(handler.client.is_connected)
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]  # slack_bolt leaves it unannotated

    async def _run_http(self) -> None:
        app = self.app.web_app(path="/slack/events", port=self.settings.port)
        app.on_response_prepare.append(secure_pages)
        runner = web.AppRunner(app)
        await runner.setup()
        # aiohttp's default backlog (128) would drop part of a burst of Slack deliveries at the
        # socket; each dropped one waits a second for the retry before it is even read.
        site = web.TCPSite(runner, host="0.0.0.0", port=self.settings.port, backlog=HTTP_BACKLOG)
        await site.start()
        freeze_startup_heap()
        paths = "/slack/events" + (f" {INSTALL_PATH} {REDIRECT_PATH}" if self.settings.oauth else "")
        log.info("slack_http_listening", port=self.settings.port, path=paths)
        try:
            await self._keep_watch(_always_connected)
        finally:
            await runner.cleanup()

    async def _keep_watch(self, connected: Callable[[], Awaitable[bool]]) -> None:
        """While running, report the connection's health."""
        while True:
            up = await connected()
            self.jobs.metrics.set_health(NAME, None if up else "Socket Mode disconnected")
            await asyncio.sleep(HEALTH_CHECK_SECONDS)


@dataclass(frozen=True)
class Unasked:
    found: tuple[Hit, ...] | None  # the knowledge the decision searched
    arrived: float  # when the message came (time.monotonic())
    first_post: Write | None = None  # the slot its first message takes


async def _always_connected() -> bool:
    return True
