"""FakeSlack's delivery to the app: response_url posts, the Socket Mode websocket (acks and
redelivery) and signed HTTP requests."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from fakes.slack.blocks import block_errors
from fakes.slack.helpers import _as_blocks, signature_headers
from fakes.slack.models import Delivery, ResponseUrlPost, StoredMessage, _ResponseTarget
from fakes.slack.protocol import ApiError, JsonDict


class DeliveryArea:
    """FakeSlack's delivery: a part of the class, its state FakeSlack's (set in its __init__)."""

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        """A ``response_url``: takes 5 messages within 30 minutes (then 404 used_url /
        expired_url); each needs ``text`` or valid ``blocks`` (400 no_text / invalid_blocks) unless
        it deletes the original. ``response_type: "in_channel"`` posts a message in the channel for
        everyone (stored like chat.postMessage); otherwise only the user sees it (recorded only)."""
        try:
            body = await request.json()
        except ValueError:
            body = dict(await request.post())
        if not isinstance(body, dict):
            body = {}
        now = time.time()
        response_id = request.match_info["response_id"]
        target = self._response_targets.get(response_id)
        status, error = self._response_url_outcome(target, body, now)
        self.responses.append(
            ResponseUrlPost(
                response_id,
                body,
                now,
                channel=target.channel if target else None,
                user=target.user if target else None,
                source=target.source if target else None,
                status=status,
                error=error,
            )
        )
        if error is not None:
            return web.Response(status=status, text=error)
        assert target is not None
        target.uses += 1
        if body.get("response_type") == "in_channel" and not body.get("delete_original"):
            thread_ts = body.get("thread_ts") or target.thread_ts
            message = StoredMessage(
                channel=target.channel,
                ts=self.next_ts(),
                text=str(body.get("text") or ""),
                user=self.bot_user_id,
                bot_id=self.bot_id,
                thread_ts=str(thread_ts) if thread_ts else None,
                blocks=_as_blocks(body.get("blocks")),
            )
            self._store(message, now)
        return web.Response(text="ok")

    def _response_url_outcome(
        self, target: _ResponseTarget | None, body: JsonDict, now: float
    ) -> tuple[int, str | None]:
        if target is None or now - target.created > self.response_url_max_age:
            return 404, "expired_url"
        if target.uses >= self.response_url_max_uses:
            return 404, "used_url"
        if body.get("delete_original"):
            return 200, None
        try:
            blocks = _as_blocks(body.get("blocks"))
        except ApiError:
            return 400, "invalid_blocks"
        if not body.get("text") and not blocks:
            return 400, "no_text"
        if blocks and block_errors(blocks):
            return 400, "invalid_blocks"
        return 200, None

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket") not in self._tickets:
            return web.Response(status=401, text="invalid ticket")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connect_count += 1
        await ws.send_json(self._hello())
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._on_socket_text(msg.data)
        finally:
            if ws in self._sockets:
                self._sockets.remove(ws)
        return ws

    def _hello(self) -> JsonDict:
        return {
            "type": "hello",
            "num_connections": len(self._sockets),
            "debug_info": {"host": "applink-fake-1", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }

    def _on_socket_text(self, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        if envelope_id and envelope_id not in self.acks:
            self.acks[envelope_id] = time.time()
            self.ack_payloads[envelope_id] = message.get("payload")
            if envelope_id in self._submission_envelopes:
                self.apply_view_ack(self._submission_envelopes[envelope_id], message.get("payload"))

    @property
    def socket_connected(self) -> bool:
        return any(not ws.closed for ws in self._sockets)

    async def wait_socket_connected(self, timeout: float = 5.0, *, connections: int = 1) -> None:
        """Wait for an open socket, after at least ``connections`` connections in total."""
        deadline = time.monotonic() + timeout
        while not (self.socket_connected and self.socket_connect_count >= connections):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no Socket Mode connection within {timeout} s")
            await asyncio.sleep(0.01)

    async def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> float:
        deadline = time.monotonic() + timeout
        while envelope_id not in self.acks:
            if time.monotonic() > deadline:
                raise TimeoutError(f"envelope {envelope_id} not acked within {timeout} s")
            await asyncio.sleep(0.01)
        return self.acks[envelope_id]

    def deliveries_of(self, event_id: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.payload.get("event_id") == event_id]

    async def send_event(self, event: JsonDict, *, event_id: str | None = None) -> str:
        """Deliver an Events API event over Socket Mode; returns the envelope_id."""
        return await self.send_envelope(
            "events_api", self.event_callback(event, event_id), accepts_response_payload=False
        )

    async def send_slash_command(self, command: str, text: str, user: str, channel: str) -> str:
        payload = self.slash_command(command, text, user, channel)
        return await self.send_envelope("slash_commands", payload, accepts_response_payload=True)

    async def send_interactive(self, payload: JsonDict) -> str:
        return await self.send_envelope("interactive", payload, accepts_response_payload=True)

    async def send_message_shortcut(self, callback_id: str, user: str, channel: str, message_ts: str) -> str:
        """A person uses the message shortcut `callback_id` on a stored message: delivers the
        ``message_action`` payload (see message_shortcut) over Socket Mode in an ``interactive``
        envelope; returns the envelope_id. Not redelivered when unacked (listed in ``unacked``)."""
        return await self.send_interactive(self.message_shortcut(callback_id, user, channel, message_ts))

    async def send_block_action(
        self, user: str, channel: str, message_ts: str, action_id: str, *, payload: JsonDict | None = None
    ) -> str:
        """`user` clicks the button `action_id` of a stored message: delivers its ``block_actions`` payload
        (see block_actions; or `payload`, one built before, to deliver the same click again) over Socket
        Mode in an ``interactive`` envelope; returns the envelope_id."""
        return await self.send_interactive(payload or self.block_actions(user, channel, message_ts, action_id))

    async def send_view_submission(self, user: str, view_id: str, values: dict[str, str | None]) -> str:
        """`user` submits the modal `view_id` having typed `values` (see view_submission): delivers the
        ``view_submission`` payload over Socket Mode in an ``interactive`` envelope; returns the envelope_id.
        The app's ack payload (``response_action`` ...) lands in ``ack_payloads`` and the view's ``acks``."""
        return await self.send_interactive(self.view_submission(user, view_id, values))

    async def send_envelope(
        self,
        type: str,
        payload: JsonDict,
        *,
        accepts_response_payload: bool,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> str:
        ws = await self._open_socket()
        delivery = Delivery(
            envelope_id=str(uuid.uuid4()),
            type=type,
            payload=payload,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
            accepts_response_payload=accepts_response_payload,
            sent_at=time.time(),
        )
        self.deliveries.append(delivery)
        if payload.get("type") == "view_submission":  # before sending: the ack may come back at once
            self._submission_envelopes[delivery.envelope_id] = payload["view"]["id"]
        await ws.send_json(delivery.to_wire())
        self._spawn(self._watch_ack(delivery))
        return delivery.envelope_id

    async def broadcast_event(self, event: JsonDict, *, event_id: str | None = None) -> list[str]:
        """Deliver one event (one ``event_id``) on every open connection at once, each in its own
        envelope: what an app with several processes sees when Slack redelivers to another
        connection while the first is still working. Returns the envelope ids."""
        await self.wait_socket_connected()
        payload = self.event_callback(event, event_id)
        sockets = [ws for ws in self._sockets if not ws.closed]
        deliveries = [Delivery(str(uuid.uuid4()), "events_api", payload, 0, "", False, time.time()) for _ in sockets]
        self.deliveries.extend(deliveries)
        await asyncio.gather(*(ws.send_json(d.to_wire()) for ws, d in zip(sockets, deliveries, strict=False)))
        for delivery in deliveries:
            self._spawn(self._watch_ack(delivery))
        return [d.envelope_id for d in deliveries]

    async def _open_socket(self, timeout: float = 5.0) -> web.WebSocketResponse:
        await self.wait_socket_connected(timeout)
        return [ws for ws in self._sockets if not ws.closed][-1]

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch_ack(self, delivery: Delivery) -> None:
        await asyncio.sleep(self.ack_timeout)
        if delivery.envelope_id in self.acks:
            return
        if delivery.type != "events_api" or delivery.retry_attempt >= self.max_retries:
            self.unacked.append(delivery)
            if delivery.envelope_id in self._submission_envelopes:  # Slack shows an error in the open modal
                self._views[self._submission_envelopes[delivery.envelope_id]].closed = False
            return
        try:
            await self.send_envelope(
                delivery.type,
                delivery.payload,
                accepts_response_payload=delivery.accepts_response_payload,
                retry_attempt=delivery.retry_attempt + 1,
                retry_reason="timeout",
            )
        except (TimeoutError, ConnectionError):
            self.unacked.append(delivery)

    async def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask connected clients to reconnect (they call apps.connections.open again)."""
        for ws in [w for w in self._sockets if not w.closed]:
            await ws.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake-1"}})

    async def close_sockets(self) -> None:
        """Close every socket from the server side (clients with auto-reconnect come back)."""
        for ws in list(self._sockets):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)
        self._sockets.clear()

    async def _post_signed(
        self,
        url: str,
        body: str,
        content_type: str,
        *,
        signing_secret: str,
        timestamp: int | str | None,
        bad_signature: bool,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        secret = signing_secret + "-wrong" if bad_signature else signing_secret
        headers = {"Content-Type": content_type, **signature_headers(body, secret, timestamp)}
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        assert self._session is not None, "start() the fake first"
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with self._session.post(url, data=body.encode(), headers=headers, timeout=client_timeout) as resp:
            return resp.status, await resp.text()

    async def post_signed_event(
        self,
        bot_url: str,
        payload: JsonDict,
        *,
        signing_secret: str,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        timestamp: int | str | None = None,
        bad_signature: bool = False,
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        """POST an Events API payload (JSON) signed like Slack; returns (status, body)."""
        return await self._post_signed(
            bot_url,
            json.dumps(payload),
            "application/json",
            signing_secret=signing_secret,
            timestamp=timestamp,
            bad_signature=bad_signature,
            retry_num=retry_num,
            retry_reason=retry_reason,
            timeout=timeout,
        )

    async def post_signed_command(
        self,
        bot_url: str,
        payload: JsonDict,
        *,
        signing_secret: str,
        timestamp: int | str | None = None,
        bad_signature: bool = False,
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        """POST a slash command (form-encoded, as Slack does) signed like Slack."""
        return await self._post_signed(
            bot_url,
            urlencode(payload),
            "application/x-www-form-urlencoded",
            signing_secret=signing_secret,
            timestamp=timestamp,
            bad_signature=bad_signature,
            timeout=timeout,
        )

    async def post_signed_interactive(
        self,
        bot_url: str,
        payload: JsonDict,
        *,
        signing_secret: str,
        timestamp: int | str | None = None,
        bad_signature: bool = False,
        timeout: float = 10.0,
    ) -> tuple[int, str]:
        """POST an interactive payload (a message shortcut, ...) as Slack's HTTP mode does: a form
        with one field, ``payload=<JSON>``, signed like Slack; returns (status, body)."""
        return await self._post_signed(
            bot_url,
            urlencode({"payload": json.dumps(payload)}),
            "application/x-www-form-urlencoded",
            signing_secret=signing_secret,
            timestamp=timestamp,
            bad_signature=bad_signature,
            timeout=timeout,
        )

    async def deliver_event_http(
        self, bot_url: str, payload: JsonDict, *, signing_secret: str, ack_timeout: float | None = None
    ) -> list[tuple[int | None, str]]:
        """Deliver like Slack's HTTP mode: on a timeout or a non-2xx answer, retry at once (Slack
        waits ~1 min / 5 min) with ``X-Slack-Retry-Num`` / ``-Reason``, up to ``max_retries``
        times. Returns every attempt's (status, or None after a timeout; body)."""
        attempts: list[tuple[int | None, str]] = []
        wait = self.ack_timeout if ack_timeout is None else ack_timeout
        reason: str | None = None
        for attempt in range(self.max_retries + 1):
            try:
                status, body = await self.post_signed_event(
                    bot_url,
                    payload,
                    signing_secret=signing_secret,
                    retry_num=attempt or None,
                    retry_reason=reason,
                    timeout=wait,
                )
            except TimeoutError:
                attempts.append((None, ""))
                reason = "http_timeout"
                continue
            attempts.append((status, body))
            if 200 <= status < 300:
                break
            reason = "http_error"
        return attempts
