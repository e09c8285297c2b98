"""Slack: mentions and DMs answered in threads, /ask and /reset, Socket Mode or HTTP.

Conversation keys:
  slack:<team>:<channel>:<thread_ts>  a thread (a mention's thread, a /ask thread, a DM thread)
  slack:<team>:dm:<channel>            a DM's top level
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from markdown_to_mrkdwn import SlackMarkdownConverter
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot import budget
from bot.attachments import Attachment, DownloadFailed, read_attachments, with_files
from bot.budget import Bucket, RateLimits
from bot.core import ChatCore, Turn
from bot.errors import ReplyFailure
from bot.ledger import INTERRUPTED_NOTE, ReplyRecord, interrupted_ending
from bot.loop import cancel_and_wait, freeze_startup_heap
from bot.metrics import Metrics
from bot.render import failure_note
from bot.surface import EditSkipped, SurfaceLimits
from config.env import ConfigError, Env
from config.settings import Settings

NAME = "slack"
TOKEN_VARIABLES = ("SLACK_BOT_TOKEN",)

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 3500  # Slack answers msg_too_long near 4,000 characters
EVENT_CLAIM_SECONDS = 3600  # longer than Slack retries one event (its last retry comes after ~5 min)
API_TIMEOUT_SECONDS = 30  # a Web API call or a file download (slack_sdk's own default)
HTTP_BACKLOG = 2048  # connections waiting to be accepted (gunicorn's default); see _run_http
NAME_CACHE_SECONDS = 3600  # a renamed person keeps the old name in the bot's prompts for up to an hour
STATUS_TEXT = "is thinking…"
WAITING_DELAY = 0.5  # seconds without text before "is thinking…" (or a placeholder) shows
PLACEHOLDER_TEXT = "_thinking…_"
_MARKDOWN = SlackMarkdownConverter()
_SPECIAL_MENTION = re.compile(r"<(?=[!@#])")
_THREAD_LINK = re.compile(r"/archives/(?P<channel>[A-Z0-9]+)/p(?P<sec>\d{10})(?P<frac>\d{6})(?:\?.*?thread_ts=(?P<thread>[\d.]+))?")


@dataclass(frozen=True)
class SlackSettings:
    bot_token: str
    app_token: str | None
    signing_secret: str | None
    api_url: str
    port: int
    allowed_channel_ids: frozenset[str]
    blocked_user_ids: frozenset[str]
    streaming: str  # "auto": native streams while their budget allows; "off": chat.update only

    @classmethod
    def from_env(cls, env: Env) -> SlackSettings:
        token = env.optional_str("SLACK_BOT_TOKEN")
        if token is None or not token.startswith("xoxb-"):
            raise ConfigError("SLACK_BOT_TOKEN is invalid: expected a bot token starting with xoxb-")
        app_token = env.optional_str("SLACK_APP_TOKEN")
        if app_token is not None and not app_token.startswith("xapp-"):
            raise ConfigError("SLACK_APP_TOKEN is invalid: expected an app-level token starting with xapp-")
        secret = env.optional_str("SLACK_SIGNING_SECRET")
        if app_token is None and secret is None:
            raise ConfigError("Set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode on $PORT)")
        api_url = env.url("SLACK_API_URL", "https://slack.com/api/", ("http", "https")) or ""
        return cls(
            bot_token=token,
            app_token=app_token,
            signing_secret=secret,
            api_url=api_url if api_url.endswith("/") else api_url + "/",  # slack_sdk joins method names
            port=env.int("PORT", 3000, minimum=1, maximum=65535),
            allowed_channel_ids=env.id_set("SLACK_ALLOWED_CHANNEL_IDS"),
            blocked_user_ids=env.id_set("SLACK_BLOCKED_USER_IDS"),
            streaming=env.choice("SLACK_STREAMING", "auto", ("auto", "off")),
        )


# -- text ------------------------------------------------------------------------------


def escape_mrkdwn(text: str) -> str:
    """Escape &, < and > so nothing the model writes becomes a mention or a control sequence."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    # The converter turns Markdown links into <url|label>: a link to "!channel" or "@U…" would
    # come out as a live mention, so any such "<" it made is escaped too.
    return _SPECIAL_MENTION.sub("&lt;", _MARKDOWN.convert(escape_mrkdwn(markdown)))


def defuse_mentions(markdown: str) -> str:
    """For Markdown sent as-is (native streams): break `<!channel>`, `<@U…>`, `<!subteam^…>`."""
    return _SPECIAL_MENTION.sub("<\u200b", markdown)


def slack_size(text: str) -> int:
    """An upper bound of the bytes Slack will count once the text is escaped."""
    return len(text.encode("utf-8")) + 4 * (text.count("<") + text.count(">") + text.count("&"))


REPLY_LIMITS = SurfaceLimits(max_length=MAX_MESSAGE_BYTES, measure=slack_size, indicator=" ▌",
                             min_edit_interval=1.0)
STREAM_LIMITS = SurfaceLimits(max_length=MAX_MESSAGE_BYTES, measure=slack_size, indicator="",
                              min_edit_interval=1.0)


# -- rate limits -----------------------------------------------------------------------


class WorkspaceBudgets:
    """Slack's per-method tiers for one workspace, as sliding windows that fit inside them.

    A tier of R per minute with bursts of B fits a window of B requests per B/R minutes.
    chat.startStream/stopStream have no published tier: Tier 2 (20/min) is assumed.
    """

    def __init__(self, limits: RateLimits, team: str) -> None:
        def tier(method: str, limit: int) -> Bucket:
            return limits.bucket(f"slack:{team}", method, limit, 12.0)

        self.updates = tier("chat.update", 10)  # Tier 3 (50/min)
        self.status = tier("assistant.threads.setStatus", 10)  # Tier 3
        self.appends = tier("chat.appendStream", 20)  # Tier 4 (100/min)
        self.stream_starts = tier("chat.startStream", 4)  # Tier 2 (assumed)
        self.stream_stops = tier("chat.stopStream", 4)  # Tier 2 (assumed)
        self.lookups = tier("users.info", 20)  # Tier 4 (100/min)
        self._limits = limits
        self._team = team

    def posts(self, channel: str) -> Bucket:
        """chat.postMessage: about one per second per channel, with short bursts."""
        return self._limits.bucket(f"slack:{self._team}", f"chat.postMessage:{channel}", 3, 3.0)


# -- reply surfaces --------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    client: AsyncWebClient
    team: str
    channel: str
    thread_ts: str | None  # None: a top-level DM reply
    user: str


class _Recoverable:
    """Where a Slack reply is, for finishing it after a crash (see bot.ledger)."""

    _place: Place
    tracker: Any = None  # set by the core's ledger while the reply is recorded

    def recovery_place(self) -> dict[str, Any]:
        place = self._place
        return {"team": place.team, "channel": place.channel, "thread_ts": place.thread_ts, "user": place.user}

    def recovery_handle(self, ts: str) -> dict[str, Any]:
        return {"channel": self._place.channel, "ts": ts, "stream": False}

    async def note_place(self, **fields: Any) -> None:
        if self.tracker is not None:
            await self.tracker.note_place(**fields)


class MessageReply(_Recoverable):
    """Messages posted with chat.postMessage and edited with chat.update."""

    limits = REPLY_LIMITS

    def __init__(self, place: Place, budgets: WorkspaceBudgets) -> None:
        self._place = place
        self._budgets = budgets
        self._waiting = Waiting(place, budgets, self.note_place)
        self.post_budgets = (budgets.posts(place.channel),)
        self.edit_budgets = (budgets.updates,)

    async def show_waiting(self) -> None:
        await self._waiting.show()

    async def post(self, text: str, *, final: bool) -> str:
        place = self._place
        placeholder = await self._waiting.take_placeholder()
        if placeholder is not None:
            await place.client.chat_update(channel=place.channel, ts=placeholder, text=to_mrkdwn(text))
            return placeholder
        response = await place.client.chat_postMessage(
            channel=place.channel, thread_ts=place.thread_ts, text=to_mrkdwn(text),
            unfurl_links=False, unfurl_media=False,
        )
        return str(response["ts"])

    async def edit(self, handle: str, text: str, *, final: bool) -> None:
        await self._place.client.chat_update(channel=self._place.channel, ts=handle, text=to_mrkdwn(text))


class StreamReply(_Recoverable):
    """Slack's native streaming (chat.startStream/appendStream/stopStream).

    Stream methods have their own tiers, so this surface spends them itself: appends only
    from spare budget (skipped text goes out with the next one), the first message's start
    and stop from the reservation made when this surface was chosen.

    The methods are called directly rather than through slack_sdk's `chat_stream` helper:
    the helper keeps text whose append failed in its buffer and sends it again with the
    next call, which would show it twice.
    """

    limits = STREAM_LIMITS
    post_budgets: tuple[Bucket, ...] = ()
    edit_budgets: tuple[Bucket, ...] = ()

    def __init__(self, place: Place, budgets: WorkspaceBudgets, promise: str) -> None:
        """`promise`: the first message's start and stop, promised by choose_reply."""
        self._place = place
        self._budgets = budgets
        self._waiting = Waiting(place, budgets, self.note_place)
        self._promise = promise
        self._first: str | None = None
        self._sent: dict[str, str] = {}  # per message: the text Slack has, before defusing
        self._not_streaming: set[str] = set()  # expired streams and plain fallback messages
        # Messages whose last append was cut short (the bot stopping): Slack may or may not
        # have that text, so the stream ends empty and the message is rewritten whole.
        self._unsure: set[str] = set()

    async def show_waiting(self) -> None:
        await self._waiting.show()

    async def post(self, text: str, *, final: bool) -> str:
        place = self._place
        assert place.thread_ts is not None, "streams are only chosen for threads"
        placeholder = await self._waiting.take_placeholder()
        if placeholder is not None:  # a stream is a new message: the placeholder goes
            try:
                await place.client.chat_delete(channel=place.channel, ts=placeholder)
            except SlackApiError as error:
                log.warning("slack_placeholder_not_removed", error=error.response.get("error"))
        promised = self._promise if self._first is None else None  # the first message's start and stop
        try:
            async with budget.spend((self._budgets.stream_starts,)):
                response = await place.client.chat_startStream(
                    channel=place.channel, thread_ts=place.thread_ts, markdown_text=defuse_mentions(text),
                    recipient_team_id=place.team, recipient_user_id=place.user,
                )
        except SlackApiError as error:
            await budget.release((self._budgets.stream_stops,), promised)
            return await self._post_plain(text, error)
        finally:
            await budget.release((self._budgets.stream_starts,), promised)
        ts = str(response["ts"])
        self._sent[ts] = text
        if self._first is None:
            self._first = ts
        if final:
            await self._stop(ts, text)
        return ts

    async def _post_plain(self, text: str, error: SlackApiError) -> str:
        """No native stream here (channel type, app or workspace settings): post a plain message
        instead, which later edits change with chat.update."""
        place = self._place
        log.warning("slack_stream_unavailable", channel=place.channel, error=error.response.get("error"))
        async with budget.spend((self._budgets.posts(place.channel),)):
            response = await place.client.chat_postMessage(
                channel=place.channel, thread_ts=place.thread_ts, text=to_mrkdwn(text),
                unfurl_links=False, unfurl_media=False,
            )
        ts = str(response["ts"])
        self._sent[ts] = text
        self._not_streaming.add(ts)
        return ts

    async def edit(self, handle: str, text: str, *, final: bool) -> None:
        if handle in self._not_streaming or not text.startswith(self._sent.get(handle, "")):
            await self._update(handle, text, final)
            return
        if final:
            await self._stop(handle, text)
            return
        delta = self._delta(handle, text)
        if not delta:
            return
        if (charge := await budget.try_spare((self._budgets.appends,))) is None:
            raise EditSkipped("no chat.appendStream to spare")
        async with charge:
            request = self._place.client.chat_appendStream(channel=self._place.channel, ts=handle, markdown_text=delta)
            await self._call(handle, text, final, request)

    async def _stop(self, handle: str, text: str) -> None:
        unsure = handle in self._unsure
        try:
            async with budget.spend((self._budgets.stream_stops,)):
                delta = "" if unsure else self._delta(handle, text)
                stop = self._place.client.chat_stopStream(channel=self._place.channel, ts=handle, markdown_text=delta or None)
                await self._call(handle, text, True, stop)
        finally:
            if handle == self._first:
                await budget.release((self._budgets.stream_stops,), self._promise)
        if unsure:
            await self._update(handle, text, True)

    async def _call(self, handle: str, text: str, final: bool, request: Awaitable[Any]) -> None:
        try:
            await request
            self._sent[handle] = text
        except asyncio.CancelledError:
            self._unsure.add(handle)
            raise
        except SlackApiError as error:
            if error.response.get("error") != "message_not_in_streaming_state":
                raise
            # Streams expire after about five minutes: finish the message with chat.update.
            log.info("slack_stream_expired", channel=self._place.channel, ts=handle)
            self._not_streaming.add(handle)
            await self._update(handle, text, final)

    async def _update(self, handle: str, text: str, final: bool) -> None:
        charge = budget.spend((self._budgets.updates,)) if final else await budget.try_spare((self._budgets.updates,))
        if charge is None:
            raise EditSkipped("no chat.update to spare")
        async with charge:
            await self._place.client.chat_update(channel=self._place.channel, ts=handle, text=to_mrkdwn(text))
        self._sent[handle] = text

    def recovery_handle(self, ts: str) -> dict[str, Any]:
        return {"channel": self._place.channel, "ts": ts, "stream": ts not in self._not_streaming}

    def _delta(self, handle: str, text: str) -> str:
        """The defused text Slack doesn't have yet. Defusing the whole text, not the delta, catches
        a mention split between two appends ("<" at the end of one, "!channel>" in the next)."""
        return defuse_mentions(text)[len(defuse_mentions(self._sent.get(handle, ""))) :]


class Waiting:
    """What a person sees until the first text: Slack's "is thinking…" status under the thread
    where the app may set it, else a placeholder message that the reply then takes over.

    Cosmetic, so it spends spare budget only. The placeholder is posted in a task of its own:
    the renderer cancels the waiting indicator when text arrives, and a post cut off mid-way
    would leave a placeholder nobody can replace.
    """

    def __init__(self, place: Place, budgets: WorkspaceBudgets, shown: Callable[..., Awaitable[None]]) -> None:
        """`shown` is told what was shown (status=True, placeholder_ts=…), for crash recovery."""
        self._place = place
        self._budgets = budgets
        self._shown = shown
        self._placeholder: asyncio.Task[str | None] | None = None

    async def show(self) -> None:
        await asyncio.sleep(WAITING_DELAY)  # a quick answer needs no indicator
        if self._place.thread_ts is not None and await self._status_shown():
            return
        self._placeholder = asyncio.create_task(self._post_placeholder())
        await asyncio.shield(self._placeholder)

    async def take_placeholder(self) -> str | None:
        """The placeholder's ts, once; None when there is none."""
        task, self._placeholder = self._placeholder, None
        return await task if task is not None else None

    async def _status_shown(self) -> bool:
        charge = await budget.try_spare((self._budgets.status,))
        if charge is None:
            return True  # no spare budget: show nothing rather than spend a post on it
        try:
            async with charge:
                await self._place.client.assistant_threads_setStatus(
                    channel_id=self._place.channel, thread_ts=self._place.thread_ts, status=STATUS_TEXT
                )
            await self._shown(status=True)
            return True
        except SlackApiError as error:
            log.debug("slack_status_unavailable", error=error.response.get("error"))
            return False

    async def _post_placeholder(self) -> str | None:
        place = self._place
        charge = await budget.try_spare((self._budgets.posts(place.channel),))
        if charge is None:
            return None
        try:
            async with charge:
                response = await place.client.chat_postMessage(
                    channel=place.channel, thread_ts=place.thread_ts, text=PLACEHOLDER_TEXT
                )
            await self._shown(placeholder_ts=str(response["ts"]))
            return str(response["ts"])
        except SlackApiError as error:
            log.warning("slack_placeholder_failed", error=error.response.get("error"))
            return None


# -- the bot ---------------------------------------------------------------------------


class SlackBot:
    def __init__(self, core: ChatCore, settings: SlackSettings) -> None:
        core.budgets.require()
        self.core = core
        self.settings = settings
        # One connection pool for every Web API call and file download. Without one, slack_sdk
        # opens a connection per call: each edit of a live reply would wait for a TCP and TLS
        # handshake with Slack first, two round trips more before the person sees it. Not
        # trust_env: slack_sdk reads HTTPS_PROXY itself (`client.proxy`) and passes it with each
        # call, and trust_env would look up ~/.netrc and the proxy variables in a worker thread
        # for every call as well.
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                           timeout=aiohttp.ClientTimeout(total=API_TIMEOUT_SECONDS))  # fmt: skip
        self.client = AsyncWebClient(
            token=settings.bot_token,
            base_url=settings.api_url,
            session=self._http,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(max_retry_count=2),
                CountedRateLimitRetryHandler(core.metrics, max_retry_count=5),
            ],
        )
        self._identity: AuthorizeResult | None = None

        async def authorize() -> AuthorizeResult | None:
            # Bolt's default authorization calls auth.test for every event, before acking it,
            # until one call has answered: a burst of events after start-up would send a burst
            # of auth.test calls and be acked late. run() learns the identity once, up front.
            return self._identity

        self.app = AsyncApp(
            client=self.client,
            authorize=authorize,
            signing_secret=settings.signing_secret or "socket-mode",
            request_verification_enabled=settings.app_token is None,
        )
        self.bot_user_id = ""
        self._names: dict[str, tuple[float, str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._register()

    def _register(self) -> None:
        self.app.event("app_mention")(self._on_mention)
        self.app.event("message")(self._on_message)
        self.app.command("/ask")(self._on_ask)
        self.app.command("/reset")(self._on_reset)

    # -- events ----------------------------------------------------------------------

    async def _on_mention(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        thread_ts = event.get("thread_ts") or event["ts"]
        team = body.get("team_id") or event.get("team", "")
        if await self._first_delivery(body, event, thread_ts):
            await self._start_turn(event, team, thread_ts)

    async def _on_message(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        if event.get("subtype", "file_share") != "file_share" or event.get("bot_id") or event.get("user") in (None, self.bot_user_id):
            return  # edits, deletions, joins, bots and our own messages never get a reply
        team = body.get("team_id") or event.get("team", "")
        if event.get("channel_type") == "im":
            if await self._first_delivery(body, event, event.get("thread_ts")):
                await self._start_turn(event, team, event.get("thread_ts"))
            return
        thread_ts = event.get("thread_ts")
        if thread_ts is None or f"<@{self.bot_user_id}>" in event.get("text", ""):
            return  # top-level channel chatter, or a mention (handled as app_mention)
        try:
            ours = await self.core.store.resolve(thread_link(team, event["channel"], thread_ts)) is not None
        except ReplyFailure as failure:
            # Without Redis, Slack's copy of the thread tells whether the bot is part of it: if so,
            # the person learns why no answer comes.
            log.warning("slack_thread_unknown_while_redis_is_down", channel=event["channel"])
            if await self._wrote_in(event["channel"], thread_ts):
                await self._tell(event["channel"], thread_ts, failure_note(failure))
            return
        if ours and await self._first_delivery(body, event, thread_ts):
            await self._start_turn(event, team, thread_ts)

    async def _first_delivery(self, body: dict[str, Any], event: dict[str, Any], thread_ts: str | None) -> bool:
        """Slack redelivers events (retries, several processes): only the first gets a reply.
        Without Redis to tell, the person is told why no answer comes."""
        event_id = body.get("event_id")
        try:
            return event_id is None or await self.core.store.claim(f"slack:event:{event_id}", EVENT_CLAIM_SECONDS)
        except ReplyFailure as failure:
            await self._tell(event["channel"], thread_ts, failure_note(failure))
            return False

    async def _wrote_in(self, channel: str, thread_ts: str) -> bool:
        """Whether the bot has a message in the thread (asked of Slack, for when Redis can't say)."""
        try:
            response = await self.client.conversations_replies(channel=channel, ts=thread_ts, limit=200)
        except SlackApiError as error:
            log.warning("slack_thread_not_read", error=error.response.get("error"))
            return False
        return any(message.get("user") == self.bot_user_id for message in response.get("messages", []))

    async def _tell(self, channel: str, thread_ts: str | None, text: str) -> None:
        try:
            await self.client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text)
        except SlackApiError as error:
            log.warning("slack_notice_not_sent", error=error.response.get("error"))

    async def _start_turn(self, event: dict[str, Any], team: str, thread_ts: str | None) -> None:
        channel, user = event["channel"], event["user"]
        place = Place(self.client, team, channel, thread_ts, user)
        if not self._allowed(user, channel):
            await self._refuse(place)
            return
        text = re.sub(rf"<@{self.bot_user_id}>", "", event.get("text", ""))
        self._spawn(self._answer(place, text, [self._attachment(file) for file in event.get("files", [])]))

    def _attachment(self, file: dict[str, Any]) -> Attachment:
        url = file.get("url_private_download") or file.get("url_private") or ""

        async def download() -> bytes:
            # Slack answers a request it won't serve with its sign-in page, not an error status.
            try:
                headers = {"Authorization": f"Bearer {self.settings.bot_token}"}
                async with self._http.get(url, headers=headers, proxy=self.client.proxy or None) as response:
                    if response.status != 200 or response.content_type == "text/html":
                        raise DownloadFailed(f"HTTP {response.status} {response.content_type} (files:read scope?)")
                    return await response.read()
            except aiohttp.ClientError as error:
                raise DownloadFailed(f"{type(error).__name__}: {error}") from error

        return Attachment(str(file.get("name") or "file"), str(file.get("mimetype") or ""), int(file.get("size") or 0), download)

    async def _answer(self, place: Place, text: str, attachments: list[Attachment]) -> None:
        key = conversation_key(place.team, place.channel, place.thread_ts)
        try:
            files = await read_attachments(attachments)
            text = with_files(text, files)
            budgets = WorkspaceBudgets(self.core.budgets, place.team)
            name = await self._display_name(place.user, budgets)
            surface = await self._choose_reply(place, budgets)
            if place.thread_ts is not None:
                with contextlib.suppress(ReplyFailure):  # Redis down: the answer itself says so
                    await self.core.store.link(thread_link(place.team, place.channel, place.thread_ts), key)
            channel = "" if place.channel.startswith("D") else place.channel
            await self.core.answer(Turn(key, place.user, name, text, channel=channel, notices=files.notices), surface)
        except Exception:  # noqa: BLE001 - one failed reply must not stop the others
            log.exception("slack_reply_failed", thread=key)

    async def _choose_reply(self, place: Place, budgets: WorkspaceBudgets) -> MessageReply | StreamReply:
        can_stream = self.settings.streaming == "auto" and place.thread_ts is not None
        if can_stream and (promise := await budget.promise((budgets.stream_starts, budgets.stream_stops))):
            return StreamReply(place, budgets, promise)
        return MessageReply(place, budgets)

    # -- commands --------------------------------------------------------------------

    async def _on_ask(self, ack: Any, command: dict[str, Any]) -> None:
        question = command.get("text", "").strip()
        if not question:
            await ack("Usage: `/ask your question` — I'll answer in a thread.")
            return
        user, channel, team = command["user_id"], command["channel_id"], command.get("team_id", "")
        if not self._allowed(user, channel):
            await ack(self._refusal())
            return
        await ack()
        posted = await self.client.chat_postMessage(
            channel=channel, text=f"<@{user}> asked: {escape_mrkdwn(question)}", unfurl_links=False
        )
        place = Place(self.client, team, channel, str(posted["ts"]), user)
        self._spawn(self._answer(place, question, []))

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
        await self.core.reset(key)
        await ack("Done: I've forgotten that conversation. The next message starts fresh.")

    # -- people ----------------------------------------------------------------------

    def _allowed(self, user: str, channel: str) -> bool:
        if user in self.settings.blocked_user_ids:
            return False
        allowed = self.settings.allowed_channel_ids
        return not allowed or channel in allowed or channel.startswith("D")

    @staticmethod
    def _refusal() -> str:
        return "Sorry, I'm not available to you here (this workspace limits who can use me, or where)."

    async def _refuse(self, place: Place) -> None:
        try:
            await self.client.chat_postEphemeral(
                channel=place.channel, user=place.user, text=self._refusal(), thread_ts=place.thread_ts
            )
        except SlackApiError as error:
            log.warning("slack_refusal_not_sent", error=error.response.get("error"))

    async def _display_name(self, user: str, budgets: WorkspaceBudgets) -> str:
        cached = self._names.get(user)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        charge = await budget.try_spare((budgets.lookups,))
        if charge is None:
            # Many new people at once: answer now under the user id rather than wait (or trip
            # users.info's limit) for a name; it is not cached, so a later message looks it up.
            log.info("slack_user_lookup_deferred", user=user)
            return user
        try:
            async with charge:
                response = await self.client.users_info(user=user)
            info = response["user"]
            profile = info.get("profile", {})
            name = profile.get("display_name") or profile.get("real_name") or info.get("name") or user
        except SlackApiError as error:
            log.warning("slack_user_lookup_failed", user=user, error=error.response.get("error"))
            name = user
        self._names[user] = (time.monotonic() + NAME_CACHE_SECONDS, name)
        return name

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def shutdown(self) -> None:
        await cancel_and_wait(self._tasks)
        await self._http.close()

    # -- running ---------------------------------------------------------------------

    async def run(self) -> None:
        try:
            identity = await self.client.auth_test()
        except SlackApiError as error:
            raise ConfigError(f"SLACK_BOT_TOKEN was rejected by Slack ({error.response.get('error')})") from None
        self.bot_user_id = str(identity["user_id"])
        self._identity = AuthorizeResult.from_auth_test_response(
            auth_test_response=identity, bot_token=self.settings.bot_token
        )
        log.info("slack_ready", user=identity.get("user"), team=identity.get("team"),
                 mode="socket" if self.settings.app_token else "http")
        try:
            if self.settings.app_token:
                await self._run_socket_mode(self.settings.app_token)
            else:
                await self._run_http()
        finally:
            await self.shutdown()

    async def _run_socket_mode(self, app_token: str) -> None:
        handler = AsyncSocketModeHandler(self.app, app_token)
        await handler.connect_async()
        freeze_startup_heap()  # what connecting built stays, like the core's start-up heap
        try:
            await self._keep_watch(handler.client.is_connected)
        finally:
            await handler.close_async()

    async def _run_http(self) -> None:
        runner = web.AppRunner(self.app.web_app(path="/slack/events", port=self.settings.port))
        await runner.setup()
        # aiohttp's default backlog (128) would drop part of a burst of Slack deliveries at the
        # socket; each dropped one waits a second for the retry before it is even read.
        site = web.TCPSite(runner, host="0.0.0.0", port=self.settings.port, backlog=HTTP_BACKLOG)
        await site.start()
        freeze_startup_heap()
        log.info("slack_http_listening", port=self.settings.port, path="/slack/events")
        try:
            await self._keep_watch(_always_connected)
        finally:
            await runner.cleanup()

    async def _keep_watch(self, connected: Callable[[], Awaitable[bool]]) -> None:
        """While running: report the connection's health, and finish replies a dead process left."""
        while True:
            up = await connected()
            self.core.metrics.set_health(NAME, None if up else "Socket Mode disconnected")
            await self.core.ledger.finish_orphans(NAME, self._finish_interrupted)
            await asyncio.sleep(self.core.ledger.sweep_seconds)

    async def _finish_interrupted(self, record: ReplyRecord) -> None:
        """End the reply with a note saying it was interrupted (its stream stopped, its status
        cleared); post the note if nothing was shown."""
        place, note = record.place, INTERRUPTED_NOTE
        try:
            if record.messages:
                last = record.messages[-1]
                await self._end_message(last, interrupted_ending(last["text"], REPLY_LIMITS), note)
            elif place.get("placeholder_ts"):
                await self.client.chat_update(channel=place["channel"], ts=place["placeholder_ts"], text=note)
            else:
                await self.client.chat_postMessage(channel=place["channel"], thread_ts=place["thread_ts"], text=note)
            if place.get("status"):
                await self.client.assistant_threads_setStatus(
                    channel_id=place["channel"], thread_ts=place["thread_ts"], status=""
                )
        except SlackApiError as error:
            log.warning("interrupted_reply_not_finished", thread=record.thread, error=error.response.get("error"))
            return
        self.core.metrics.recovered.labels(NAME).inc()
        log.info("interrupted_reply_finished", thread=record.thread, messages=len(record.messages))

    async def _end_message(self, message: dict[str, Any], text: str, note: str) -> None:
        handle = message["handle"]
        if handle["stream"]:
            try:
                await self.client.chat_stopStream(channel=handle["channel"], ts=handle["ts"], markdown_text=f"\n\n{note}")
                return
            except SlackApiError as error:  # the stream expired meanwhile: an ordinary edit then
                log.info("slack_stream_not_stopped", error=error.response.get("error"))
        await self.client.chat_update(channel=handle["channel"], ts=handle["ts"], text=to_mrkdwn(text))


class CountedRateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's own 429 handling (wait Retry-After, try again), with each 429 counted."""

    def __init__(self, metrics: Metrics, *, max_retry_count: int) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._metrics = metrics

    async def can_retry_async(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        if response is not None and response.status_code == 429:
            self._metrics.platform_rate_limited.labels(NAME).inc()
            log.warning("slack_rate_limited", retry_after=response.headers.get("retry-after"))
        return await super().can_retry_async(state=state, request=request, response=response, error=error)


async def _always_connected() -> bool:
    return True


def conversation_key(team: str, channel: str, thread_ts: str | None) -> str:
    return f"slack:{team}:dm:{channel}" if thread_ts is None else f"slack:{team}:{channel}:{thread_ts}"


def thread_link(team: str, channel: str, thread_ts: str) -> str:
    return f"slack:thread:{team}:{channel}:{thread_ts}"


async def run(core: ChatCore, settings: Settings) -> None:
    await SlackBot(core, SlackSettings.from_env(settings.env)).run()
