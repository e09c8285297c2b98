"""A process's Redis clients (see bot.store): a single server, or a Redis Cluster
(REDIS_CLUSTER) reached through any node.

Both clients take the same commands and scripts. On a Cluster, a script or a command with
several keys needs them all in one hash slot: keys that go together carry the same hash tag,
e.g. `chat:{<thread>}:history` and `chat:{<thread>}:lock`.
"""

from __future__ import annotations

from typing import TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.driver_info import DriverInfo
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

RedisClient: TypeAlias = aioredis.Redis | RedisCluster

# What a command raises when Redis can't serve it. A Cluster client that reaches no node (or
# finds no cluster there) raises RedisClusterException, which is not a RedisError.
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException)

# Waiting for a free connection beats failing a turn when many arrive at once: a process whose
# core a thousand mentions at once saturate reads each answer late, and its turns' commands
# queued past 10 s, so a fifth of the people were told the bot's memory was out of reach.
MAX_CONNECTIONS = 64
POOL_WAIT_SECONDS = 30
# A Cluster client keeps a pool per node that never waits: a command finding every connection
# of its node busy fails at once. So each node gets room for a burst rather than a queue.
CLUSTER_CONNECTIONS_PER_NODE = 256
# The steps of the platforms' rate limits (bot.budget): a write's slot, its landing, a promise.
CONTROL_CONNECTIONS = 64
# The reply ledger's records, one per write of every reply.
RECORD_CONNECTIONS = 16
# The heartbeat alone: queued behind records or renewals on a busy core, it came more than the
# process's lease late, and 49 of 200 live Slack replies were finished as "interrupted" by
# another process.
HEARTBEAT_CONNECTIONS = 2


def connect(url: str, *, cluster: bool, connections: int | None = None) -> RedisClient:
    """A client for `url` (a node of the cluster with `cluster`), with at most `connections` to
    a single server (a Cluster client keeps its own per node); it connects on first use."""
    options = {
        "decode_responses": True,
        "socket_connect_timeout": 3,
        "socket_timeout": 10,
        "health_check_interval": 30,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        # Named once: by default every new connection reads redis-py's package metadata to
        # name itself to the server (~1 ms each, 50 of them when 50 questions come at once).
        "driver_info": DriverInfo(),
    }
    if cluster:
        return RedisCluster.from_url(url, max_connections=CLUSTER_CONNECTIONS_PER_NODE, **options)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=connections or MAX_CONNECTIONS, timeout=POOL_WAIT_SECONDS, **options
    )
    return aioredis.Redis(connection_pool=pool)


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
