"""Discord's settings, read from the environment."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import discord

from config.env import ConfigError, Env

INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    read_message_history=True,
)


@dataclass(frozen=True)
class DiscordSettings:
    token: str
    api_base_url: str
    gateway_url: str | None
    command_guild_ids: frozenset[str]
    allowed_guild_ids: frozenset[str]
    allowed_channel_ids: frozenset[str]
    allowed_role_ids: frozenset[str]
    blocked_user_ids: frozenset[str]
    allow_dms: bool
    model_role_ids: frozenset[str]  # who may switch a conversation's model (empty: everyone)
    shard_count: int | None  # None: as many as Discord recommends (GET /gateway/bot)
    shard_ids: list[int] | None  # None: every shard, in this process
    admin_role_ids: frozenset[str] = frozenset()  # who may set personas besides Manage Channels / Manage Server

    @classmethod
    def from_env(cls, env: Env) -> DiscordSettings:
        token = env.optional_str("DISCORD_TOKEN")
        if token is None:
            raise ConfigError("DISCORD_TOKEN is not set: create a bot in the Discord developer portal")
        return cls(
            token=token,
            api_base_url=(
                env.url("DISCORD_API_BASE_URL", "https://discord.com/api/v10", ("http", "https")) or ""
            ).rstrip("/"),
            gateway_url=env.url("DISCORD_GATEWAY_URL", None, ("ws", "wss")),
            command_guild_ids=env.id_set("DISCORD_GUILD_IDS"),
            allowed_guild_ids=env.id_set("DISCORD_ALLOWED_GUILD_IDS"),
            allowed_channel_ids=env.id_set("DISCORD_ALLOWED_CHANNEL_IDS"),
            allowed_role_ids=env.id_set("DISCORD_ALLOWED_ROLE_IDS"),
            blocked_user_ids=env.id_set("DISCORD_BLOCKED_USER_IDS"),
            allow_dms=env.bool("ALLOW_DMS", True),
            model_role_ids=env.id_set("DISCORD_MODEL_ROLE_IDS"),
            admin_role_ids=env.id_set("DISCORD_ADMIN_ROLE_IDS"),
            **_shards(env),
        )


def _shards(env: Env) -> dict[str, Any]:
    count_text = env.str("DISCORD_SHARD_COUNT", "auto").lower()
    count = None if count_text == "auto" else env.int("DISCORD_SHARD_COUNT", 1, minimum=1)
    ids_text = env.optional_str("DISCORD_SHARD_IDS")
    if ids_text is None:
        return {"shard_count": count, "shard_ids": None}
    if count is None:
        raise ConfigError("DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT (the total across every process)")
    try:
        ids = sorted({int(part) for part in ids_text.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(f"DISCORD_SHARD_IDS={ids_text!r} is invalid: expected comma-separated numbers") from None
    if not ids or ids[0] < 0 or ids[-1] >= count:
        raise ConfigError(f"DISCORD_SHARD_IDS={ids_text!r} is invalid: expected numbers from 0 to {count - 1}")
    return {"shard_count": count, "shard_ids": ids}


def application_id_from_token(token: str) -> str:
    """A bot token's first segment is its user id (= the application id), base64-encoded."""
    head = token.split(".", 1)[0]
    try:
        return base64.b64decode(head + "=" * (-len(head) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ConfigError("DISCORD_TOKEN does not look like a bot token") from None


AUTHORIZE_URL = "https://discord.com/oauth2/authorize"


def invite_url(token: str) -> str:
    """Add the bot to a server: the bot user with its permissions, and the commands there."""
    client_id = application_id_from_token(token)
    return (
        f"{AUTHORIZE_URL}?client_id={client_id}&integration_type=0"
        f"&scope=bot%20applications.commands&permissions={INVITE_PERMISSIONS.value}"
    )


def user_install_url(token: str) -> str:
    """Add the commands to one's own account: usable in every server, group DM and DM one is in
    (needs User Install ticked under Installation in the developer portal)."""
    client_id = application_id_from_token(token)
    return f"{AUTHORIZE_URL}?client_id={client_id}&integration_type=1&scope=applications.commands"
