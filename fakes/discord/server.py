"""FakeDiscord: one Discord in memory for one bot, REST and gateway in one aiohttp app; its setup,
inspection and request pipeline. Messages, threads, permissions and interactions are areas of their own."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from aiohttp import web

from fakes.discord.control import _add_control_routes
from fakes.discord.errors import DiscordHTTPError, not_found_route, unauthorized
from fakes.discord.forums import ForumsArea
from fakes.discord.gateway import GatewaySession, _Gateway, on_shard
from fakes.discord.interactions import InteractionsArea
from fakes.discord.messages import MessagesArea
from fakes.discord.models import (
    FakeGuild,
    FakeInteraction,
    FakeRole,
    FakeUser,
    Limits,
    RateLimit,
    RateLimitHit,
    RecordedRequest,
    StoredMessage,
    _put_overwrite,
)
from fakes.discord.permissions import PermissionsArea
from fakes.discord.protocol import (
    API_PREFIX,
    INTERACTION_ACK_TIMEOUT,
    ChannelType,
    IntegrationType,
    MessageFlag,
    Op,
    OverwriteType,
    Perm,
    _copied,
    _Snowflakes,
    iso_timestamp,
)
from fakes.discord.rate_limits import RateLimiter, RateLimitExceeded
from fakes.discord.rest import NO_CONTENT, RestCall, RouteSpec, _RestApi, json_response, read_body
from fakes.discord.threads import ThreadsArea
from fakes.discord.validation import buttons_in

T = TypeVar("T")


class FakeDiscord(MessagesArea, ThreadsArea, ForumsArea, PermissionsArea, InteractionsArea):
    """In-memory Discord for one bot: REST under ``api_base_url``, gateway at ``gateway_url``."""

    def __init__(
        self,
        *,
        token: str = "fake-token",
        limits: Limits | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_name: str = "mistralbot",
        heartbeat_interval_ms: int = 41_250,
        gateway_compression: bool = True,
        disallowed_intents: int = 0,
        interaction_ack_timeout: float = INTERACTION_ACK_TIMEOUT,
        echo_bot_messages: bool = True,
        thread_archive_seconds: float | None = None,
        installation_contexts: Iterable[int] = (IntegrationType.GUILD_INSTALL,),
    ) -> None:
        """`thread_archive_seconds`: archive any thread after this many seconds without a new
        message (None: after its `auto_archive_duration` minutes, as Discord does).
        `installation_contexts`: where the application may be installed (the developer portal's
        Installation Contexts; a new application's default is servers only, add
        ``IntegrationType.USER_INSTALL`` for user installs; changeable until commands sync)."""
        self.token = token
        self.limits = limits if limits is not None else Limits()
        self.host = host
        self.port = port
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.gateway_compression = gateway_compression  # honour ?compress=zlib-stream
        self.disallowed_intents = disallowed_intents  # e.g. Intent.MESSAGE_CONTENT → close 4014
        self.interaction_ack_timeout = interaction_ack_timeout
        self.echo_bot_messages = echo_bot_messages  # Discord sends the bot its own MESSAGE_CREATE/UPDATE
        self.thread_archive_seconds = thread_archive_seconds
        self.installation_contexts: set[int] = set(installation_contexts)
        self.user_installs: set[int] = set()  # users who added the app to their account

        self._ids = _Snowflakes()
        self.recommended_shards = 1  # what GET /gateway/bot answers
        self._attachment_data: dict[int, tuple[bytes, str | None]] = {}  # CDN: (bytes, type) by attachment id
        self.attachment_downloads: list[int] = []
        self.bot_user = FakeUser(self._ids.next(), bot_name, bot=True)
        self.application_id = self.bot_user.id  # like every modern bot: application id == bot user id
        self.owner = FakeUser(self._ids.next(), "owner")

        self.users: dict[int, FakeUser] = {self.bot_user.id: self.bot_user, self.owner.id: self.owner}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, dict[str, Any]] = {}
        self.commands: dict[int | None, list[dict[str, Any]]] = {}  # None → global
        self.requests: list[RecordedRequest] = []
        self.ratelimited: list[RateLimitHit] = []
        self.typing: list[tuple[float, int]] = []
        self.reactions: list[tuple[float, int, str]] = []  # the bot's: (when, message, emoji as in the route)
        self.reactions_removed: list[tuple[float, int, str]] = []
        self.interactions: list[FakeInteraction] = []

        self._messages: dict[int, StoredMessage] = {}
        self._messages_by_channel: dict[int, list[StoredMessage]] = {}
        self._threads_by_message: dict[int, int] = {}
        self._dm_by_user: dict[int, int] = {}
        self._private_without_bot: set[int] = set()  # group DMs and DMs between people
        self.thread_members: dict[int, set[int]] = {}  # thread id → ids of the users in it (private threads)
        self._interactions: dict[int, FakeInteraction] = {}
        self._interactions_by_token: dict[str, FakeInteraction] = {}
        self._ephemeral_for: dict[int, int] = {}  # ephemeral message id → the one user who sees it
        self._archive_timers: dict[int, asyncio.TimerHandle] = {}  # active threads' auto-archive
        self._archiving: set[asyncio.Task[None]] = set()
        self.archived: list[tuple[float, int]] = []  # (time.time(), thread id) per automatic archive

        self.ratelimiter = RateLimiter(self.limits)
        self.gateway = _Gateway(self)
        self._rest = _RestApi(self)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self._add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        for channel in self.channels.values():  # threads added before the loop ran
            if channel["type"] in ChannelType.THREADS:
                self._schedule_archive(channel)

    async def stop(self) -> None:
        for timer in self._archive_timers.values():
            timer.cancel()
        self._archive_timers.clear()
        for task in list(self._archiving):
            task.cancel()
        for conn in self.gateway.live_connections():
            conn.closed_by_server = True
            try:
                await asyncio.wait_for(conn.ws.close(code=1001, message=b"server stopping"), 1.0)
            except (TimeoutError, ConnectionError):
                pass
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base_url(self) -> str:
        return f"{self.base_url}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/", self.gateway.handle)
        app.router.add_get("/attachments/{attachment_id}/{filename}", self._serve_attachment)
        for spec in self._rest.routes():
            app.router.add_route(spec.method, API_PREFIX + spec.path, self._route_handler(spec))
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._route_handler(None))
        _add_control_routes(self, app)

    def _route_handler(self, spec: RouteSpec | None) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return await self._serve(spec, request)

        return handle

    def add_user(
        self, name: str, *, bot: bool = False, roles: Iterable[int] = (), global_name: str | None = None
    ) -> FakeUser:
        """A user who is a member of every guild added so far (and of guilds added later)."""
        user = FakeUser(self._ids.next(), name, bot=bot, global_name=global_name)
        self.users[user.id] = user
        role_ids = list(roles)
        for guild in self.guilds.values():
            self._add_member(guild, user, [r for r in role_ids if r in guild.roles])
        return user

    def add_guild(
        self, name: str = "Test Guild", *, shard: tuple[int, int] | None = None, with_bot: bool = True
    ) -> FakeGuild:
        """A guild with @everyone, a managed bot role, the bot and all known users as members.
        `shard` (id, count): its id is chosen so that Discord routes it to that shard.
        `with_bot=False`: a guild the bot was never added to (no bot member or role, not in READY,
        no gateway events, its channels refused to the bot's REST calls with 403), where only
        users who installed the app to their account (``install_for_user``) can use its commands."""
        guild_id = self._ids.next()
        if shard is not None:
            shard_id, count = shard
            guild_id = (((guild_id >> 22) // count + 1) * count + shard_id) << 22  # a later millisecond
            self._ids.skip_to(guild_id)
        guild = FakeGuild(guild_id, name, owner_id=self.owner.id, created=time.time(), has_bot=with_bot)
        guild.roles[guild.id] = FakeRole(guild.id, "@everyone", Perm.MEMBER_DEFAULT)
        bot_role = FakeRole(self._ids.next(), self.bot_user.username, Perm.MEMBER_DEFAULT, 1, bot_id=self.bot_user.id)
        if with_bot:
            guild.roles[bot_role.id] = bot_role
        self.guilds[guild.id] = guild
        for user in self.users.values():
            if user is not self.bot_user:
                self._add_member(guild, user, [])
            elif with_bot:
                self._add_member(guild, user, [bot_role.id])
        return guild

    def add_role(self, guild: FakeGuild, name: str, *, permissions: int = 0) -> int:
        role = FakeRole(self._ids.next(), name, permissions, position=len(guild.roles))
        guild.roles[role.id] = role
        return role.id

    def add_text_channel(
        self, guild: FakeGuild, name: str, *, allow_threads: bool = True, allow_send: bool = True
    ) -> dict[str, Any]:
        channel_id = self._ids.next()
        channel = {
            "id": str(channel_id),
            "type": ChannelType.GUILD_TEXT,
            "guild_id": str(guild.id),
            "name": name,
            "position": len(guild.channel_ids),
            "parent_id": None,
            "topic": None,
            "nsfw": False,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "default_auto_archive_duration": 1440,
            "permission_overwrites": [],
            "flags": 0,
        }
        self.channels[channel_id] = channel
        guild.channel_ids.append(channel_id)
        self.set_channel_permissions(channel_id, allow_threads=allow_threads, allow_send=allow_send)
        return channel

    def add_thread(
        self, parent: Mapping[str, Any], name: str, *, private: bool = False, owner: FakeUser | None = None
    ) -> dict[str, Any]:
        """A pre-existing active thread (sent in GUILD_CREATE.threads), started by `owner` (the bot)."""
        thread_type = ChannelType.PRIVATE_THREAD if private else ChannelType.PUBLIC_THREAD
        parent_channel = self.channels[int(parent["id"])]
        thread = self._create_thread(parent_channel, name, thread_id=self._ids.next(), thread_type=thread_type)
        thread["owner_id"] = str((owner or self.bot_user).id)
        self.thread_members[int(thread["id"])] = {(owner or self.bot_user).id}
        return thread

    def set_channel_permissions(self, channel_id: int, *, allow_threads: bool = True, allow_send: bool = True) -> None:
        """Deny the bot thread creation (403 50013) and/or sending in a channel: the bot's member overwrite
        (other overwrites are kept). Nothing is dispatched; ``set_overwrite`` announces a change."""
        deny = 0
        if not allow_threads:
            deny |= Perm.CREATE_PUBLIC_THREADS | Perm.CREATE_PRIVATE_THREADS
        if not allow_send:
            deny |= Perm.SEND_MESSAGES | Perm.SEND_MESSAGES_IN_THREADS
        _put_overwrite(self.channels[int(channel_id)], self.bot_user.id, OverwriteType.MEMBER, 0, deny)

    def dm_channel_for(self, user: FakeUser) -> dict[str, Any]:
        channel_id = self._dm_by_user.get(user.id)
        if channel_id is None:
            channel_id = self._ids.next()
            self.channels[channel_id] = {
                "id": str(channel_id),
                "type": ChannelType.DM,
                "last_message_id": None,
                "recipients": [user.payload()],
                "flags": 0,
            }
            self._dm_by_user[user.id] = channel_id
        return self.channels[channel_id]

    def add_group_dm(self, owner: FakeUser, *others: FakeUser, name: str | None = None) -> dict[str, Any]:
        """A group DM of people (type 3) the bot is not in: no gateway events from it, 404 to the
        bot's REST calls; commands reach it only through user installs (context PRIVATE_CHANNEL)."""
        return self._private_channel(ChannelType.GROUP_DM, [owner, *others], owner=owner, name=name)

    def add_dm_between(self, user: FakeUser, other: FakeUser) -> dict[str, Any]:
        """A DM between two people (not the bot's): like a group DM for the bot."""
        return self._private_channel(ChannelType.DM, [user, other])

    def _private_channel(
        self, channel_type: int, members: Sequence[FakeUser], *, owner: FakeUser | None = None, name: str | None = None
    ) -> dict[str, Any]:
        channel_id = self._ids.next()
        channel: dict[str, Any] = {
            "id": str(channel_id),
            "type": channel_type,
            "last_message_id": None,
            "recipients": [member.payload() for member in members],
            "flags": 0,
        }
        if channel_type == ChannelType.GROUP_DM:
            channel.update(name=name, icon=None, owner_id=str((owner or members[0]).id))
        self.channels[channel_id] = channel
        self._private_without_bot.add(channel_id)
        return channel

    def install_for_user(self, user: FakeUser) -> None:
        """`user` adds the app to their account (the user install link): its global commands that
        allow USER_INSTALL follow them into every guild, group DM and DM."""
        if IntegrationType.USER_INSTALL not in self.installation_contexts:
            raise ValueError("the application does not support user installs (installation_contexts)")
        self.user_installs.add(user.id)

    @property
    def ratelimited_count(self) -> int:
        return len(self.ratelimited)

    @property
    def identify_payload(self) -> dict[str, Any] | None:
        return self.gateway.identify_payload

    @property
    def connected(self) -> bool:
        return any(s.connected for s in self.gateway.sessions.values())

    def messages_in(self, channel_id: int | str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Messages of a channel or thread, oldest first (copies of the REST payloads).

        Ephemeral interaction replies are included (``flags & 64``); GET history omits them.
        """
        stored = self._messages_by_channel.get(int(channel_id), [])
        return [_copied(m.payload) for m in stored if include_deleted or not m.deleted]

    def stored_messages_in(self, channel_id: int | str) -> list[StoredMessage]:
        """The channel's or thread's live messages as stored, oldest first: no copies, for
        a caller polling many channels often (a benchmark) and changing nothing."""
        return [m for m in self._messages_by_channel.get(int(channel_id), []) if not m.deleted]

    def message(self, message_id: int | str) -> StoredMessage:
        return self._messages[int(message_id)]

    def components_of(self, message_id: int | str) -> list[dict[str, Any]]:
        """A message's ``components`` as stored (copies): its action rows, each with its buttons,
        every component numbered with an ``id`` as Discord does. ``[]`` when it has none."""
        return _copied(self._messages[int(message_id)].payload["components"])

    def buttons_of(self, message_id: int | str) -> list[dict[str, Any]]:
        """The buttons of a message (copies), row by row: ``[b["custom_id"] for b in ...]``."""
        return buttons_in(self.components_of(message_id))

    def messages_with_buttons(self, channel_id: int | str) -> list[dict[str, Any]]:
        """The live messages of a channel or thread that have at least one button, oldest first
        (copies of the REST payloads; ephemeral ones included, like ``messages_in``)."""
        return [m for m in self.messages_in(channel_id) if buttons_in(m["components"])]

    def messages_seen_by(self, channel_id: int | str, user: FakeUser) -> list[dict[str, Any]]:
        """``messages_in`` as `user` sees the channel: ephemeral replies only when they are theirs."""
        return [
            m
            for m in self.messages_in(channel_id)
            if not m["flags"] & MessageFlag.EPHEMERAL or self._ephemeral_for.get(int(m["id"])) == user.id
        ]

    def edit_history(self, message_id: int | str) -> list[tuple[float, str]]:
        """(time.time(), content) for the creation and every later content change."""
        return list(self._messages[int(message_id)].history)

    def thread_for_message(self, message_id: int | str) -> dict[str, Any] | None:
        thread_id = self._threads_by_message.get(int(message_id))
        return self.channels.get(thread_id) if thread_id is not None else None

    def requests_for(self, route: str) -> list[RecordedRequest]:
        """Recorded requests whose route key (e.g. ``"PATCH /channels/{channel_id}/messages/{message_id}"``) matches."""
        return [r for r in self.requests if r.route == route]

    def original_response(self, interaction: FakeInteraction) -> dict[str, Any] | None:
        if interaction.original_message_id is None:
            return None
        return _copied(self._messages[interaction.original_message_id].payload)

    async def wait_for(
        self, predicate: Callable[[], T | Awaitable[T]], timeout: float = 5.0, *, interval: float = 0.01
    ) -> T:
        """Poll ``predicate`` (sync or async) until it returns something truthy; return that value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value  # type: ignore[return-value]
            if loop.time() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            await asyncio.sleep(interval)

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Until a gateway session is identified (or resumed) and its connection is open."""
        await self.wait_for(lambda: self.connected, timeout)

    async def dispatch(self, event_name: str, data: dict[str, Any]) -> None:
        """Send a raw DISPATCH to every session (intent filtering applies)."""
        await self.gateway.dispatch(event_name, data)

    async def remove_bot_from_guild(self, guild: FakeGuild) -> None:
        """The bot is kicked or its app removed from `guild`: GUILD_DELETE without `unavailable`; it is
        no member any more and its managed role is gone (its REST calls there get 403 50001)."""
        await self.gateway.dispatch("GUILD_DELETE", {"id": str(guild.id)})
        guild.has_bot = False
        guild.members.pop(self.bot_user.id, None)
        for role in [r for r in guild.roles.values() if r.bot_id == self.bot_user.id]:
            del guild.roles[role.id]

    async def add_bot_to_guild(self, guild: FakeGuild) -> None:
        """The bot is (re-)invited to `guild`: a member again with a new managed role, and GUILD_CREATE
        with everything there (channels, overwrites, threads, members)."""
        bot_role = FakeRole(self._ids.next(), self.bot_user.username, Perm.MEMBER_DEFAULT, 1, bot_id=self.bot_user.id)
        guild.roles[bot_role.id] = bot_role
        self._add_member(guild, self.bot_user, [bot_role.id])
        guild.has_bot = True
        payload = self._guild_create_payload(guild)
        del payload["unavailable"]  # a join, not a guild coming back after an outage (discord.py: guild_join)
        await self.gateway.dispatch("GUILD_CREATE", payload)

    async def guild_outage(self, guild: FakeGuild) -> None:
        """`guild` becomes unavailable (a Discord outage): GUILD_DELETE with `unavailable: true`."""
        await self.gateway.dispatch("GUILD_DELETE", {"id": str(guild.id), "unavailable": True})

    async def disconnect_gateway(self, code: int | None = 4000, *, timeout: float = 5.0) -> None:
        """Close every live gateway connection with ``code``; ``None`` drops TCP (abnormal, 1006).

        Codes discord.py resumes after: anything but 1000, 4004 and 4010-4014.  Events dispatched
        while the client is away are buffered and replayed on RESUME.
        """
        await self.gateway.disconnect(code, timeout)

    async def send_reconnect(self) -> None:
        """Op 7 RECONNECT: discord.py closes and resumes."""
        await self.gateway.send_op(Op.RECONNECT, None)

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """Op 9 INVALID_SESSION: discord.py re-identifies (or resumes when ``resumable``)."""
        await self.gateway.invalidate(resumable=resumable)

    def inject_ratelimit(
        self, route: str | None = None, *, count: int = 1, retry_after: float = 0.25, is_global: bool = False
    ) -> None:
        """Answer the next ``count`` requests to ``route`` (a route key; None = any) with 429."""
        self.ratelimiter.inject(route, count=count, retry_after=retry_after, is_global=is_global)

    async def _serve(self, spec: RouteSpec | None, request: web.Request) -> web.Response:
        record = RecordedRequest(
            method=request.method,
            path=request.path[len(API_PREFIX) :],
            route=spec.key if spec else f"{request.method} {request.path[len(API_PREFIX) :]}",
            query=dict(request.query),
            json=None,
            files=[],
            headers=dict(request.headers),
            time=time.time(),
            connection=request.transport.get_extra_info("peername") if request.transport else None,
        )
        self.requests.append(record)
        headers: dict[str, str] = {"Via": "1.1 google"}
        try:
            record.json, record.files = await read_body(request)
            if spec is None:
                raise not_found_route()
            if spec.auth:
                self._check_auth(request)
            call = RestCall(request, dict(request.match_info), request.query, record.json, record.files)
            headers.update(self._check_rate_limits(spec, call))
            result = await spec.handler(call)
            status, payload = (204, None) if result is NO_CONTENT else (200, result)
        except DiscordHTTPError as error:
            status, payload = error.status, error.body()
        except RateLimitExceeded as limited:
            status, payload = 429, limited.body()
            headers.update(limited.headers())
        record.status, record.response, record.finished = status, payload, time.time()
        return json_response(status, payload, headers)

    def _check_auth(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bot {self.token}":
            raise unauthorized()

    def _check_rate_limits(self, spec: RouteSpec, call: RestCall) -> dict[str, str]:
        """Injected 429s, then the global limit, then the route bucket; returns the bucket headers."""
        self._raise_injected(spec)
        bucket_name, rate = self._bucket_for(spec)
        major = _major_parameter(call.params)
        try:
            if spec.global_limit:
                self.ratelimiter.check_global(self.token)
            if rate is None:
                return {}
            return self.ratelimiter.check_bucket(bucket_name, rate, major).headers()
        except RateLimitExceeded as limited:
            self.ratelimited.append(
                RateLimitHit(time.time(), spec.key, bucket_name, major, limited.retry_after, limited.is_global)
            )
            raise

    def _raise_injected(self, spec: RouteSpec) -> None:
        injected = self.ratelimiter.take_injected(spec.key)
        if injected is None:
            return
        self.ratelimited.append(
            RateLimitHit(time.time(), spec.key, "injected", "", injected.retry_after, injected.is_global, True)
        )
        raise RateLimitExceeded(injected.retry_after, is_global=injected.is_global, status=None)

    def _bucket_for(self, spec: RouteSpec) -> tuple[str, RateLimit | None]:
        if spec.bucket is not None:
            return spec.bucket, getattr(self.limits, spec.bucket)
        return spec.key, self.limits.default

    def _client_user_payload(self) -> dict[str, Any]:
        return {**self.bot_user.payload(), "verified": True, "mfa_enabled": False, "email": None, "locale": "en-US"}

    def _application_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.application_id),
            "name": self.bot_user.username,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "hook": True,
            "rpc_origins": [],
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": self.owner.payload(),
            "team": None,
            "flags": 0,
            "bot": self.bot_user.payload(),
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": sum(1 for guild in self.guilds.values() if guild.has_bot),
            "approximate_user_install_count": len(self.user_installs),
            "tags": [],
            # One key per supported installation context (no default install link configured).
            "integration_types_config": {str(kind): {} for kind in sorted(self.installation_contexts)},
        }

    def _ready_payload(self, session: GatewaySession) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "v": 10,
            "user": self._client_user_payload(),
            "guilds": [
                {"id": str(g.id), "unavailable": True}
                for g in self.guilds.values()
                if g.has_bot and on_shard(session, g.id)
            ],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "auth": {},
            "_trace": ["fake-discord"],
        }
        if "shard" in session.identify:
            payload["shard"] = session.identify["shard"]
        return payload

    def _guild_create_payload(self, guild: FakeGuild) -> dict[str, Any]:
        channels = [_copied(self.channels[c]) for c in guild.channel_ids]
        threads = [
            _copied(c)
            for c in self.channels.values()
            if c["type"] in ChannelType.THREADS
            and c.get("guild_id") == str(guild.id)
            and not c["thread_metadata"]["archived"]
            and self.permissions_for(c, self.bot_user.id) & Perm.VIEW_CHANNEL
        ]
        for channel in channels:
            channel.pop("guild_id", None)  # Discord omits it inside GUILD_CREATE
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "application_id": None,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500_000,
            "features": [],
            "roles": [r.payload() for r in guild.roles.values()],
            "emojis": [],
            "stickers": [],
            "joined_at": iso_timestamp(guild.created),
            "large": False,
            "unavailable": False,
            "lazy": True,
            "member_count": len(guild.members),
            "members": [m.payload() for m in guild.members.values()],
            "channels": channels,
            "threads": threads,
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "incidents_data": None,
        }


def _major_parameter(params: Mapping[str, str]) -> str:
    parts = [params[k] for k in ("channel_id", "guild_id", "webhook_id", "webhook_token") if k in params]
    return "+".join(parts)
