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

# A process whose core a thousand mentions at once saturate reads each answer late, so a command
# holds its connection that much longer: with 64 connections and 10 s of waiting for one, one
# Slack worker told 129 of 1,000 people its memory was out of reach; with 256, none.
MAX_CONNECTIONS = 256
POOL_WAIT_SECONDS = 30
# A Cluster client keeps a pool per node that never waits: a command finding every connection
# of its node busy fails at once. So each node gets room for a burst rather than a queue.
CLUSTER_CONNECTIONS_PER_NODE = 256
# The steps of the platforms' rate limits (bot.budget): a write's slot, its landing, a promise.
# An answer this late means Redis is out of reach, and a final then goes without its slot; the
# wait for a free connection, which a burst on a busy core makes long, does not count in it
# (counted with it, a thousand posts at once in one worker went out unbudgeted).
CONTROL_CONNECTIONS = 256
CONTROL_ANSWER_SECONDS = 5.0
# The reply ledger's records, one per write of every reply (16 dropped 637 records of 1,000
# replies at once in one worker; they only say where a reply is, should the process die).
RECORD_CONNECTIONS = 64
# The heartbeat alone: queued behind records or renewals on a busy core, it came more than the
# process's lease late, and 49 of 200 live Slack replies were finished as "interrupted" by
# another process.
HEARTBEAT_CONNECTIONS = 2


def connect(url: str, *, cluster: bool, connections: int | None = None, answer_seconds: float = 10.0,
            retries: int = 3) -> RedisClient:  # fmt: skip
    """A client for `url` (a node of the cluster with `cluster`), with at most `connections` to
    a single server (a Cluster client keeps its own per node); it connects on first use. A
    command fails when its answer takes more than `answer_seconds`, after `retries` more tries."""
    options = {
        "decode_responses": True,
        "socket_connect_timeout": 3,
        "socket_timeout": answer_seconds,
        "health_check_interval": 30,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=retries),
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


def connect_control(url: str, *, cluster: bool) -> RedisClient:
    """The client for the rate limits' steps: a slow answer is not tried again (a script that ran
    would take a slot twice); Redis out of reach is known within CONTROL_ANSWER_SECONDS."""
    return connect(url, cluster=cluster, connections=CONTROL_CONNECTIONS, answer_seconds=CONTROL_ANSWER_SECONDS,
                   retries=0)  # fmt: skip


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
