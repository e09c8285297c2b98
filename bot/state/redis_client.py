"""The process's Redis clients, built here and handed to whoever needs them: a single server, a
Redis Cluster (REDIS_CLUSTER) reached through any node, or, with memory://, a Redis inside the
process (fakeredis, running the same scripts) whose data is lost on exit.

On a Cluster, a script or a command with several keys needs them in one hash slot: keys that go
together carry the same hash tag, e.g. `chat:{<thread>}:history` and `chat:{<thread>}:lock`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import redis.asyncio as aioredis
import structlog
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.driver_info import DriverInfo
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.errors import FailureKind, ReplyFailure

RedisClient: TypeAlias = aioredis.Redis | RedisCluster
T = TypeVar("T")
log = structlog.get_logger(__name__)

# What a command raises when Redis can't serve it. A Cluster client that reaches no node (or
# finds no cluster there) raises RedisClusterException, which is not a RedisError.
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException)

# Connections per client (per node on a Cluster, whose pools never wait). Each reply being written
# may hold one for a moment: with fewer than a burst's replies, a turn waits up to POOL_WAIT_SECONDS
# for one, and then the person is told their memory is out of reach.
CONNECTIONS = 256
POOL_WAIT_SECONDS = 30
# The rate limits' answers: later than this, Redis is taken to be out of reach and a final text
# goes without its slot rather than keep a person waiting.
CONTROL_ANSWER_SECONDS = 5.0
# The heartbeat has connections of its own: queued behind a burst's commands it came more than a
# lease late, and other processes finished live replies as "interrupted".
HEARTBEAT_CONNECTIONS = 2


def connect(
    url: str, *, cluster: bool, connections: int = CONNECTIONS, answer_seconds: float = 10.0, retries: int = 3
) -> RedisClient:
    """A client for `url` (a node of the cluster with `cluster`) that connects on first use. A
    command fails when its answer takes more than `answer_seconds`, after `retries` more tries."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": 3,
        "socket_timeout": answer_seconds,
        "health_check_interval": 30,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=retries),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        # Named once: else each new connection reads redis-py's package metadata (~1 ms each).
        "driver_info": DriverInfo(),
    }
    if cluster:
        return RedisCluster.from_url(url, max_connections=connections, **options)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=connections, timeout=POOL_WAIT_SECONDS, **options
    )
    return aioredis.Redis(connection_pool=pool)


@dataclass(frozen=True)
class RedisClients:
    """One process's clients, each with connections of its own so none queues behind another:
    `main` for history, locks, claims and the reply records; `control` for the rate limits, whose
    slow answer is not tried again (a script that ran would take a slot twice); `heartbeat` for
    the process's lease."""

    main: RedisClient
    control: RedisClient
    heartbeat: RedisClient

    @classmethod
    def connect(cls, url: str, *, cluster: bool) -> RedisClients:
        return cls(
            main=connect(url, cluster=cluster),
            control=connect(url, cluster=cluster, answer_seconds=CONTROL_ANSWER_SECONDS, retries=0),
            heartbeat=connect(url, cluster=cluster, connections=HEARTBEAT_CONNECTIONS),
        )

    @classmethod
    def in_memory(cls) -> RedisClients:
        from fakeredis import FakeAsyncRedis, FakeServer  # 4 MB more per process: only where it serves

        server = FakeServer()
        main, control, heartbeat = (FakeAsyncRedis(server=server, decode_responses=True) for _ in range(3))
        return cls(main=main, control=control, heartbeat=heartbeat)

    async def ping(self) -> None:
        """Every client answers. A Cluster client learns the nodes here, not many times over at
        once in a burst of commands (redis-py then loses connections under them)."""
        for client in (self.main, self.control, self.heartbeat):
            await ping(client)

    async def aclose(self) -> None:
        for client in (self.main, self.control, self.heartbeat):
            await close(client)


def hash_tag(key: str) -> str:
    """`key` as a hash tag: every Redis key with the same tag is in one Cluster slot."""
    return "{" + key.replace("{", "(").replace("}", ")") + "}"


async def ping(client: RedisClient) -> None:
    """Every server holding keys answers (a Cluster's replicas are not needed to serve)."""
    if isinstance(client, RedisCluster):
        await client.ping(target_nodes=RedisCluster.PRIMARIES)
    else:
        await client.ping()


async def close(client: RedisClient) -> None:
    await client.aclose()
    if isinstance(client, aioredis.Redis):
        await client.connection_pool.disconnect()  # a pool handed to a client outlives it


async def served(command: Awaitable[T], event: str, on_error: Callable[[], object] = lambda: None) -> T:
    """`command`'s answer; when Redis can't serve it, logged as `event`, counted with `on_error`,
    and raised as STORE_UNAVAILABLE (the person is told their memory is out of reach)."""
    try:
        return await command
    except REDIS_ERRORS as error:
        log.error(event, error=f"{type(error).__name__}: {error}")
        on_error()
        raise ReplyFailure(FailureKind.STORE_UNAVAILABLE, str(error)) from error
