"""What a kind of record is (bot.keeping.kinds lists them): whose it is, the ways out of what the bot keeps, and how
each removes it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Way(StrEnum):
    """The ways out of what the bot keeps."""

    SERVER = "the bot leaves a server (Discord) or is uninstalled from a workspace (Slack)"
    PERSON = "/forget-me: a person's own records"
    THREAD = "/reset: a conversation's records"
    EXPIRY = "the time to live"


class Owner(StrEnum):
    SERVER = "a server or workspace"
    PERSON = "a person"
    THREAD = "a conversation"
    DEPLOYMENT = "the deployment"


@dataclass(frozen=True)
class Kind:
    """A kind of record. `removed` says, for each way out that applies to it, how it is removed; a way left out
    doesn't apply (`kept` says why). `expires`: each of its keys carries a TTL."""

    name: str
    owners: tuple[Owner, ...]
    keys: tuple[str, ...]  # globs matching every key of the kind
    removed: dict[Way, str]
    lasts: str
    expires: bool = True
    server_keys: tuple[str, ...] = ()  # globs of one server's keys, swept when the bot leaves it
    kept: str = ""  # why a way out doesn't apply
    table: str = ""  # a PostgreSQL table, for knowledge
