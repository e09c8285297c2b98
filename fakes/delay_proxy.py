"""A loopback TCP proxy that delays every byte a fixed time each way, so that a benchmark runs
as if the platform and the model server were across a network.

    python -m fakes.delay_proxy --route 40001:50 --route 40002:20

Each route `<target port>:<delay ms>` listens on a port of 127.0.0.1 chosen by the system and
forwards every connection to 127.0.0.1:<target port>; what either side sends reaches the other
`delay` later, in the order it was sent (latency only: no bandwidth limit, no loss). The proxy
prints `listening <port> …` (one port per route, in order) once it accepts connections. It
connects to 127.0.0.1 only. A new connection costs a round trip before its first bytes arrive,
as TCP's handshake does (TLS, which this loopback does not speak, would add another), so a
client that opens a connection per request pays for it as it would across a network; a close
reaches the other side after the delay, like the data before it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit, urlunsplit

from uvloop import run as run_loop

LOOPBACK = "127.0.0.1"
_CLOSE = b""  # in an outbox: the sending side has closed


@dataclass(frozen=True)
class Route:
    target: int  # a port on 127.0.0.1
    delay: float  # seconds, each way

    @classmethod
    def parse(cls, text: str) -> Route:
        port, _, delay_ms = text.partition(":")
        return cls(int(port), float(delay_ms or 0) / 1000)

    def option(self) -> str:
        return f"{self.target}:{self.delay * 1000:g}"


class Leg(asyncio.Protocol):
    """One end of a proxied connection: what arrives on it leaves on its peer `delay` later."""

    def __init__(self, delay: float, opens_in: float = 0.0) -> None:
        """`opens_in`: nothing sent on this leg reaches its peer sooner than this from now."""
        self.delay = delay
        self.transport: asyncio.Transport | None = None
        self.peer: Leg | None = None
        self._loop = asyncio.get_running_loop()
        self._outbox: deque[tuple[float, bytes]] = deque()  # (when it may leave, bytes) for the peer
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._opens_at = self._loop.time() + opens_in

    def join(self, peer: Leg) -> None:
        self.peer, peer.peer = peer, self
        self._schedule()
        peer._schedule()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        self._post(data)

    def eof_received(self) -> bool:
        self._post(_CLOSE)
        return True  # the transport stays open until the close has reached the peer

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.peer is not None and self.peer.transport is not None:
            self.peer.transport.abort()  # a reset is passed on at once
        self._post(_CLOSE)

    # Flow control: while the peer can't take more, stop reading what would be sent to it.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def _post(self, data: bytes) -> None:
        if self._closed:
            return
        self._closed = data == _CLOSE
        self._outbox.append((max(self._loop.time() + self.delay, self._opens_at), data))
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is None and self._outbox and self.peer is not None:
            self._timer = self._loop.call_at(self._outbox[0][0], self._flush)

    def _flush(self) -> None:
        """Send the peer everything due by now, in one write; then wait for the next."""
        self._timer = None
        assert self.peer is not None and self.peer.transport is not None
        now, due = self._loop.time(), []
        while self._outbox and self._outbox[0][0] <= now:
            due.append(self._outbox.popleft()[1])
        target = self.peer.transport
        if due and not target.is_closing():
            target.write(b"".join(due))
        if due and due[-1] == _CLOSE:
            target.close()  # after what was written before it
            if self.transport is not None:
                self.transport.close()
            return
        self._schedule()


async def _accept(route: Route, server_side: Leg) -> None:
    """Connect the accepted leg to the target; refuse it if the target does not answer."""
    loop = asyncio.get_running_loop()
    try:
        _, upstream = await loop.create_connection(lambda: Leg(route.delay), LOOPBACK, route.target)
    except OSError:
        if server_side.transport is not None:
            server_side.transport.abort()
        return
    server_side.join(upstream)


async def serve(routes: Sequence[Route]) -> list[asyncio.Server]:
    loop = asyncio.get_running_loop()
    servers = []
    for route in routes:

        def accepted(route: Route = route) -> Leg:
            # The client's first bytes would go once its SYN had come back, a round trip after
            # it connected, and take the delay again to arrive.
            leg = Leg(route.delay, opens_in=3 * route.delay)
            connecting = loop.create_task(_accept(route, leg))
            connecting.add_done_callback(_CONNECTING.discard)
            _CONNECTING.add(connecting)
            return leg

        servers.append(await loop.create_server(accepted, LOOPBACK, 0, backlog=4096))
    return servers


_CONNECTING: set[asyncio.Task[None]] = set()


async def _main(routes: Sequence[Route]) -> None:
    servers = await serve(routes)
    ports = [str(server.sockets[0].getsockname()[1]) for server in servers]
    print("listening", *ports, flush=True)
    await asyncio.Event().wait()  # until terminated


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakes.delay_proxy", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--route",
        action="append",
        type=Route.parse,
        required=True,
        help="<target port>:<delay ms each way>; repeatable",
    )
    routes = parser.parse_args(argv).route
    with contextlib.suppress(KeyboardInterrupt):
        run_loop(_main(routes))
    return 0


# -- used by the benchmarks ------------------------------------------------------------------


class DelayProxy:
    """The proxy in a process of its own (its CPU is neither the bot's nor the fakes'), one route
    per target port. `via(url)` is the same loopback URL through the proxy."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = list(routes)
        self.ports: dict[int, int] = {}  # target port → the proxy's port for it
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> DelayProxy:
        options = [part for route in self.routes for part in ("--route", route.option())]
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fakes.delay_proxy", *options, stdout=asyncio.subprocess.PIPE
        )
        assert self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), 20)
        words = line.decode().split()
        if words[:1] != ["listening"] or len(words) != len(self.routes) + 1:
            raise RuntimeError(f"the delay proxy did not start: {line!r}")
        self.ports = {route.target: int(port) for route, port in zip(self.routes, words[1:], strict=True)}
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()

    def via(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.hostname != LOOPBACK or parts.port not in self.ports:
            raise ValueError(f"no route to {url}")
        return urlunsplit(parts._replace(netloc=f"{LOOPBACK}:{self.ports[parts.port]}"))


@contextlib.asynccontextmanager
async def optional_proxy(routes: Sequence[Route]) -> AsyncIterator[DelayProxy | None]:
    """A proxy for `routes`, or None (no delay) when there are none."""
    if not routes:
        yield None
        return
    async with DelayProxy(routes) as proxy:
        yield proxy


if __name__ == "__main__":
    sys.exit(main())
