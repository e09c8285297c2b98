"""The fake gateway: the websocket, IDENTIFY and RESUME, heartbeats, dispatch filtered by intents."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from fakes.discord.protocol import Intent, Op

if TYPE_CHECKING:
    from fakes.discord.server import FakeDiscord

log = logging.getLogger(__name__)


@dataclass
class GatewayConnection:
    ws: web.WebSocketResponse
    request: web.Request
    query: dict[str, str]
    opened_at: float
    compressor: Any | None = None  # zlib compressobj when zlib-stream was requested
    session: GatewaySession | None = None
    closed_at: float | None = None
    close_code: int | None = None
    closed_by_server: bool = False
    heartbeats: int = 0
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def live(self) -> bool:
        return self.closed_at is None and not self.ws.closed

    async def send_text(self, text: str) -> None:
        async with self.send_lock:
            if self.ws.closed:
                return
            try:
                if self.compressor is not None:
                    data = self.compressor.compress(text.encode()) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError) as exc:
                log.debug("gateway send failed: %s", exc)

    async def send_json(self, payload: Mapping[str, Any]) -> None:
        await self.send_text(json.dumps(payload))


@dataclass
class GatewaySession:
    session_id: str
    identify: dict[str, Any]
    intents: int
    seq: int = 0
    backlog: list[tuple[int, str]] = field(default_factory=list)
    connection: GatewayConnection | None = None
    invalidated: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def connected(self) -> bool:
        return self.connection is not None and self.connection.live


def on_shard(session: GatewaySession, guild_id: int | None) -> bool:
    """Discord's routing: a guild's events go to shard (guild_id >> 22) % count, DMs to shard 0."""
    shard = session.identify.get("shard")
    if not shard:
        return True
    shard_id, count = shard
    return shard_id == (0 if guild_id is None else (guild_id >> 22) % count)


class _Gateway:
    """The websocket side: HELLO / IDENTIFY / READY / RESUME / heartbeats and dispatch fan-out."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: list[GatewayConnection] = []
        self.dispatched: list[tuple[float, str, dict[str, Any]]] = []
        self.identify_payload: dict[str, Any] | None = None
        self.identify_count = 0
        self.identified_shards: list[tuple[int, int] | None] = []  # (shard id, count) per IDENTIFY
        self.resume_count = 0
        self.replayed_count = 0  # frames re-sent on RESUME
        self.withheld: list[tuple[float, str, dict[str, Any]]] = []  # events of places the bot is not in

    # -- websocket handler -------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = GatewayConnection(ws=ws, request=request, query=dict(request.query), opened_at=time.time())
        if request.query.get("compress") == "zlib-stream" and self.fake.gateway_compression:
            conn.compressor = zlib.compressobj()
        self.connections.append(conn)
        try:
            await conn.send_json({"op": Op.HELLO, "d": {"heartbeat_interval": self.fake.heartbeat_interval_ms}})
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_text(conn, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
        finally:
            self._on_closed(conn)
        return ws

    @staticmethod
    def _on_closed(conn: GatewayConnection) -> None:
        conn.closed_at = time.time()
        conn.close_code = conn.ws.close_code
        session = conn.session
        if session is None or session.connection is not conn:
            return
        session.connection = None
        if not conn.closed_by_server and conn.close_code in (1000, 1001):
            session.invalidated = True  # a clean client close ends the session, like Discord

    async def _on_text(self, conn: GatewayConnection, text: str) -> None:
        try:
            payload = json.loads(text)
            op, data = payload["op"], payload.get("d")
        except (ValueError, KeyError, TypeError):
            await conn.ws.close(code=4002, message=b"Error while decoding payload.")
            return
        if op == Op.HEARTBEAT:
            conn.heartbeats += 1
            await conn.send_json({"op": Op.HEARTBEAT_ACK})
        elif op == Op.IDENTIFY:
            await self._identify(conn, data)
        elif op == Op.RESUME:
            await self._resume(conn, data)
        elif conn.session is None:
            await conn.ws.close(code=4003, message=b"Not authenticated.")
        elif op == Op.REQUEST_GUILD_MEMBERS:
            await self._send_member_chunk(conn.session, data)
        elif op not in (Op.PRESENCE_UPDATE, Op.VOICE_STATE_UPDATE):
            await conn.ws.close(code=4001, message=b"Unknown opcode.")

    # -- identify / resume -------------------------------------------------------------------------

    async def _identify(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        if conn.session is not None:
            await conn.ws.close(code=4005, message=b"Already authenticated.")
            return
        if data.get("token") != self.fake.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        intents = data.get("intents")
        if not isinstance(intents, int):
            await conn.ws.close(code=4013, message=b"Invalid intent(s).")
            return
        if intents & self.fake.disallowed_intents:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        shard = data.get("shard")
        if shard is not None and not (isinstance(shard, list) and len(shard) == 2 and 0 <= shard[0] < shard[1]):
            await conn.ws.close(code=4010, message=b"Invalid shard.")
            return
        self.identify_payload = data
        self.identify_count += 1
        self.identified_shards.append(tuple(shard) if shard else None)
        session = GatewaySession(session_id=secrets.token_hex(16), identify=data, intents=intents)
        self.sessions[session.session_id] = session
        async with session.lock:
            session.connection = conn
            conn.session = session
            await self._dispatch_locked(session, "READY", self.fake._ready_payload(session))
            for guild in self.fake.guilds.values():
                if guild.has_bot and on_shard(session, guild.id):
                    await self._dispatch_locked(session, "GUILD_CREATE", self.fake._guild_create_payload(guild))

    async def _resume(self, conn: GatewayConnection, data: dict[str, Any]) -> None:
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or session.invalidated or data.get("token") != self.fake.token:
            await conn.send_json({"op": Op.INVALID_SESSION, "d": False})
            return
        client_seq = data.get("seq") or 0
        async with session.lock:
            previous = session.connection
            session.connection = conn
            conn.session = session
            if previous is not None and previous is not conn and previous.live:
                await previous.ws.close(code=4000, message=b"Session resumed elsewhere.")
            for seq, frame in session.backlog:
                if seq > client_seq:
                    self.replayed_count += 1
                    await conn.send_text(frame)
            await self._dispatch_locked(session, "RESUMED", {"_trace": ["fake-discord"]})
        self.resume_count += 1

    async def _send_member_chunk(self, session: GatewaySession, data: dict[str, Any]) -> None:
        guild = self.fake.guilds.get(int(data.get("guild_id", 0)))
        if guild is None or not guild.has_bot:
            return
        chunk = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in guild.members.values()],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        async with session.lock:
            await self._dispatch_locked(session, "GUILD_MEMBERS_CHUNK", chunk)

    # -- dispatch ----------------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send an event to every session; `dispatched` records when it went out (to the last one).
        Events of a guild without the bot or of a (group) DM it is not in are only recorded in
        `withheld`: Discord sends the bot nothing from there (interactions excepted)."""
        if not self.fake.bot_receives(event, data):
            self.withheld.append((time.time(), event, data))
            return
        guild_id = data.get("guild_id")
        for session in list(self.sessions.values()):
            if session.invalidated or not on_shard(session, int(guild_id) if guild_id else None):
                continue
            filtered = filter_event_for_intents(event, data, session.intents, self.fake.bot_user.id)
            if filtered is None:
                continue
            async with session.lock:
                await self._dispatch_locked(session, event, filtered)
        self.dispatched.append((time.time(), event, data))

    @staticmethod
    async def _dispatch_locked(session: GatewaySession, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        frame = json.dumps({"op": Op.DISPATCH, "t": event, "s": session.seq, "d": data})
        session.backlog.append((session.seq, frame))
        if session.connected:
            assert session.connection is not None
            await session.connection.send_text(frame)

    # -- test controls -----------------------------------------------------------------------------

    def live_connections(self) -> list[GatewayConnection]:
        return [c for c in self.connections if c.live]

    async def disconnect(self, code: int | None, timeout: float) -> None:
        for conn in self.live_connections():
            conn.closed_by_server = True
            if code is None:
                transport = conn.request.transport
                if transport is not None:
                    transport.abort()
                    continue
                code = 1011
            try:
                await asyncio.wait_for(conn.ws.close(code=code, message=b"fake disconnect"), timeout)
            except TimeoutError:
                log.warning("gateway close handshake timed out")

    async def send_op(self, op: int, data: Any) -> None:
        for conn in self.live_connections():
            await conn.send_json({"op": op, "d": data})

    async def invalidate(self, *, resumable: bool) -> None:
        for conn in self.live_connections():
            if conn.session is not None and not resumable:
                conn.session.invalidated = True
            await conn.send_json({"op": Op.INVALID_SESSION, "d": resumable})


def _event_intent(event: str, data: Mapping[str, Any]) -> int | None:
    """The intent Discord requires for an event (None: always delivered)."""
    in_guild = data.get("guild_id") is not None
    if event.startswith("MESSAGE_REACTION"):
        return Intent.GUILD_MESSAGE_REACTIONS if in_guild else Intent.DIRECT_MESSAGE_REACTIONS
    if event.startswith("MESSAGE_"):
        return Intent.GUILD_MESSAGES if in_guild else Intent.DIRECT_MESSAGES
    if event == "TYPING_START":
        return Intent.GUILD_MESSAGE_TYPING if in_guild else Intent.DIRECT_MESSAGE_TYPING
    if event in ("GUILD_MEMBER_ADD", "GUILD_MEMBER_UPDATE", "GUILD_MEMBER_REMOVE"):
        return Intent.GUILD_MEMBERS
    if event.startswith(("GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE", "CHANNEL_", "THREAD_", "GUILD_ROLE")):
        return Intent.GUILDS
    return None


def filter_event_for_intents(event: str, data: dict[str, Any], intents: int, bot_id: int) -> dict[str, Any] | None:
    """What a session with ``intents`` receives for an event, or None when it receives nothing."""
    required = _event_intent(event, data)
    if required is not None and not intents & required:
        return None
    if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE") and not intents & Intent.MESSAGE_CONTENT:
        return _without_message_content(data, bot_id)
    return data


def _without_message_content(data: dict[str, Any], bot_id: int) -> dict[str, Any]:
    """Discord blanks content for guild messages unless they are the bot's own or mention it."""
    if data.get("guild_id") is None or data.get("author", {}).get("id") == str(bot_id):
        return data
    if any(u.get("id") == str(bot_id) for u in data.get("mentions", [])):
        return data
    stripped = dict(data)
    stripped.update(content="", embeds=[], attachments=[], components=[])
    stripped.pop("poll", None)
    return stripped
