"""The last step of the bot leaving a server or workspace: once each part has deleted what it keeps there, every key
the record kinds (bot.keeping.kinds) name for that server is deleted, so that a record a part didn't reach (written
while it was deleting, or of a kind whose part forgot it) still goes. Keys are found with SCAN (on a Cluster, every
primary's), a page at a time: the bot leaving a server is rare, and nothing waits for it."""

from __future__ import annotations

import structlog

from bot.keeping.kinds import server_patterns
from bot.state.redis_client import REDIS_ERRORS, RedisClient

log = structlog.get_logger(__name__)

PAGE = 1_000


async def sweep_server(redis: RedisClient, key_prefix: str, platform: str, server_id: str) -> int:
    """Delete the keys of `server_id` (a Discord guild's or a Slack team's id) that every kind names; how many went.
    Never raises: a key Redis couldn't delete is logged for the operator, and left for its expiry."""
    if not server_id:
        return 0
    deleted = 0
    for pattern in server_patterns(platform, server_id):
        try:
            found = [key async for key in redis.scan_iter(match=f"{_escaped(key_prefix)}{pattern}", count=PAGE)]
            for key in found:  # one at a time: a Cluster's keys are in different slots
                deleted += int(await redis.delete(key))
        except REDIS_ERRORS as error:
            log.error("server_keys_not_swept", platform=platform, server=server_id, pattern=pattern, error=str(error))
    if deleted:
        log.info("server_keys_swept", platform=platform, server=server_id, keys=deleted)
    return deleted


def _escaped(prefix: str) -> str:
    """The prefix as a literal in a glob."""
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in prefix)
