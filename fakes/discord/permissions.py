"""FakeDiscord's permissions: roles, overwrites, private channels, and what the bot and each person
may see and do in a channel."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from fakes.discord.errors import missing_access, missing_permissions, unknown_channel, unknown_user
from fakes.discord.models import FakeGuild, FakeMember, FakeUser, _put_overwrite
from fakes.discord.protocol import ChannelType, OverwriteType, Perm, _copied


class PermissionsArea:
    """FakeDiscord's permissions: a part of the class, its state FakeDiscord's (set in its __init__)."""

    async def create_role(self, guild: FakeGuild, name: str, *, permissions: int = 0) -> int:
        """``add_role`` announced to a connected bot (GUILD_ROLE_CREATE); returns the role id."""
        role_id = self.add_role(guild, name, permissions=permissions)
        await self.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": guild.roles[role_id].payload()})
        return role_id

    async def delete_role(self, guild: FakeGuild, role_id: int) -> None:
        """A role is deleted: its members lose it, and a connected bot hears GUILD_ROLE_DELETE."""
        if int(role_id) == guild.id or int(role_id) not in guild.roles:
            raise LookupError(f"no role {role_id} to delete in {guild.name!r} (@everyone can't be)")
        del guild.roles[int(role_id)]
        for member in guild.members.values():
            member.role_ids = [r for r in member.role_ids if r != int(role_id)]
        await self.dispatch("GUILD_ROLE_DELETE", {"guild_id": str(guild.id), "role_id": str(role_id)})

    async def set_role_permissions(self, guild: FakeGuild, role_id: int, permissions: int) -> None:
        """A role's guild-wide permissions change (@everyone's id is the guild's): GUILD_ROLE_UPDATE."""
        role = guild.roles[int(role_id)]
        role.permissions = permissions
        await self.dispatch("GUILD_ROLE_UPDATE", {"guild_id": str(guild.id), "role": role.payload()})

    async def set_member_roles(self, guild: FakeGuild, user: FakeUser, role_ids: Iterable[int]) -> None:
        """`user`'s roles in `guild` become `role_ids`: GUILD_MEMBER_UPDATE (sent with the Members intent
        only; without it the bot learns the roles from the member object of their next message or
        interaction)."""
        member = guild.members[user.id]
        roles = [int(r) for r in role_ids]
        unknown = [r for r in roles if r not in guild.roles or r == guild.id]
        if unknown:
            raise LookupError(f"no roles {unknown} to give in {guild.name!r} (@everyone is implicit)")
        member.role_ids = roles
        await self.dispatch("GUILD_MEMBER_UPDATE", {"guild_id": str(guild.id), **member.payload()})

    async def create_text_channel(
        self, guild: FakeGuild, name: str, *, overwrites: Iterable[Mapping[str, Any]] = ()
    ) -> dict[str, Any]:
        """A text channel made while the bot is connected (CHANNEL_CREATE), with `overwrites` (as
        ``overwrite(...)`` makes them)."""
        channel = self.add_text_channel(guild, name)
        channel["permission_overwrites"] = [dict(o) for o in overwrites]
        await self.dispatch("CHANNEL_CREATE", _copied(channel))
        return channel

    async def set_overwrite(
        self, channel: Mapping[str, Any], target: FakeUser | int, *, allow: int = 0, deny: int = 0
    ) -> dict[str, Any]:
        """Set a channel's permission overwrite for a role (its id; @everyone's is the guild's id) or a
        member (a FakeUser); nothing allowed or denied removes it. Announced with CHANNEL_UPDATE (the
        whole channel, ``permission_overwrites`` included); returns the channel."""
        stored = self.channels[int(channel["id"])]
        if stored["type"] in ChannelType.THREADS:
            raise ValueError("threads have no overwrites of their own: set them on the parent channel")
        if isinstance(target, FakeUser):
            _put_overwrite(stored, target.id, OverwriteType.MEMBER, allow, deny)
        else:
            _put_overwrite(stored, int(target), OverwriteType.ROLE, allow, deny)
        await self.dispatch("CHANNEL_UPDATE", _copied(stored))
        return stored

    async def make_private_channel(
        self,
        channel: Mapping[str, Any],
        *,
        roles: Iterable[int] = (),
        users: Iterable[FakeUser] = (),
        bot_can_read: bool = True,
    ) -> dict[str, Any]:
        """Make a channel private as Discord's "Private Channel" switch does: @everyone denied View
        Channel, `roles` and `users` allowed View Channel and Read Message History, and the bot too
        unless `bot_can_read` is False. One CHANNEL_UPDATE; returns the channel."""
        stored = self.channels[int(channel["id"])]
        guild = self._guild_of(stored)
        if guild is None or stored["type"] in ChannelType.THREADS:
            raise ValueError("only a guild channel (not a thread) can be made private")
        _put_overwrite(stored, guild.id, OverwriteType.ROLE, 0, Perm.VIEW_CHANNEL)
        for role_id in roles:
            _put_overwrite(stored, int(role_id), OverwriteType.ROLE, Perm.READ, 0)
        for user in users:
            _put_overwrite(stored, user.id, OverwriteType.MEMBER, Perm.READ, 0)
        bot = next((o for o in stored["permission_overwrites"] if o["id"] == str(self.bot_user.id)), None)
        allow, deny = (int(bot["allow"]), int(bot["deny"])) if bot else (0, 0)
        if bot_can_read:
            allow, deny = allow | Perm.READ, deny & ~Perm.READ
        else:
            allow, deny = allow & ~Perm.READ, deny | Perm.VIEW_CHANNEL
        _put_overwrite(stored, self.bot_user.id, OverwriteType.MEMBER, allow, deny)
        await self.dispatch("CHANNEL_UPDATE", _copied(stored))
        return stored

    def can_view(self, channel: Mapping[str, Any], user: FakeUser) -> bool:
        """Whether `user` can see `channel` (a guild channel or thread: View Channel from roles and
        overwrites; a private thread: a member of it, or may Manage Threads; a DM: a recipient)."""
        return self._user_sees(self.channels[int(channel["id"])], self._guild_of(channel), user)

    def _user_sees(self, channel: Mapping[str, Any], guild: FakeGuild | None, user: FakeUser) -> bool:
        """Whether `user` can see `channel`: a member of its guild with VIEW_CHANNEL there, the
        person of the bot's DM, or a recipient of a (group) DM."""
        if guild is not None:
            return user.id in guild.members and bool(self.permissions_for(channel, user.id) & Perm.VIEW_CHANNEL)
        if int(channel["id"]) in self._dm_by_user.values():
            return self._dm_by_user.get(user.id) == int(channel["id"])
        return any(r.get("id") == str(user.id) for r in channel.get("recipients") or [])

    def _require_channel(self, channel_id: int) -> dict[str, Any]:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise unknown_channel()
        return channel

    def _channel_for_bot(self, channel_id: int) -> dict[str, Any]:
        """A channel the bot's own REST call is about: one of a guild it is not in is refused
        (403 Missing Access), a (group) DM it is not in does not exist for it (404)."""
        channel = self._require_channel(channel_id)
        guild = self._guild_of(channel)
        if guild is not None and not (guild.has_bot and self.permissions_for(channel, self.bot_user.id)):
            raise missing_access()  # not in the guild, or no View Channel there
        if channel_id in self._private_without_bot:
            raise unknown_channel()
        return channel

    def bot_sees(self, channel: Mapping[str, Any]) -> bool:
        """Whether the bot is in `channel`: its guild has the bot, or it is the bot's own DM."""
        guild = self._guild_of(channel)
        if guild is not None:
            return guild.has_bot
        return int(channel["id"]) not in self._private_without_bot

    def bot_receives(self, event: str, data: Mapping[str, Any]) -> bool:
        """Whether Discord sends the bot this gateway event: not from a guild it is not in, nor
        from a (group) DM it is not in. Interactions reach it from anywhere its commands do."""
        if event == "INTERACTION_CREATE":
            return True
        guild_id = data.get("guild_id")
        if guild_id is not None:
            guild = self.guilds.get(int(guild_id))
            return guild is None or (guild.has_bot and self._bot_views_channel_of(event, data))
        channel_id = data.get("channel_id") or (data.get("id") if event.startswith("CHANNEL_") else None)
        return channel_id is None or int(channel_id) not in self._private_without_bot

    def _bot_views_channel_of(self, event: str, data: Mapping[str, Any]) -> bool:
        """Messages, typing and reactions of a channel the bot cannot view, and threads it cannot see,
        are not sent to it (channels themselves are: a bot gets every channel of its guilds)."""
        if event.startswith(("MESSAGE_", "TYPING_")):
            channel = self.channels.get(int(data.get("channel_id") or 0))
        elif event.startswith("THREAD_") and "type" in data:
            channel = self.channels.get(int(data.get("id") or 0))
        else:
            return True
        return channel is None or bool(self.permissions_for(channel, self.bot_user.id) & Perm.VIEW_CHANNEL)

    def _require_user(self, user_id: int) -> FakeUser:
        user = self.users.get(user_id)
        if user is None:
            raise unknown_user()
        return user

    def _guild_of(self, channel: Mapping[str, Any]) -> FakeGuild | None:
        guild_id = channel.get("guild_id")
        return self.guilds.get(int(guild_id)) if guild_id is not None else None

    def _parent_id(self, channel: Mapping[str, Any]) -> int:
        """The channel whose permissions apply (a thread's parent)."""
        if channel["type"] in ChannelType.THREADS:
            return int(channel["parent_id"])
        return int(channel["id"])

    def _check_can_send(self, channel: Mapping[str, Any]) -> None:
        needed = Perm.SEND_MESSAGES_IN_THREADS if channel["type"] in ChannelType.THREADS else Perm.SEND_MESSAGES
        self._require_permission(channel, needed)

    def _check_can_create_threads(self, channel: Mapping[str, Any], thread_type: int) -> None:
        private = thread_type == ChannelType.PRIVATE_THREAD
        self._require_permission(channel, Perm.CREATE_PRIVATE_THREADS if private else Perm.CREATE_PUBLIC_THREADS)

    def _require_permission(self, channel: Mapping[str, Any], needed: int) -> None:
        if self._guild_of(channel) is not None and not self.permissions_for(channel, self.bot_user.id) & needed:
            raise missing_permissions()

    def permissions_for(self, channel: Mapping[str, Any], user_id: int) -> int:
        """`user_id`'s permissions in a guild channel or thread (a thread has its parent's overwrites; a
        private thread is seen by its members and those who may Manage Threads only); 0 for a non-member."""
        guild = self._guild_of(channel)
        if guild is None or user_id not in guild.members:
            return 0
        parent = self.channels[self._parent_id(channel)]
        permissions = guild.permissions_in(parent.get("permission_overwrites") or [], user_id)
        if channel["type"] == ChannelType.PRIVATE_THREAD and not permissions & Perm.MANAGE_THREADS:
            if user_id not in self.thread_members.get(int(channel["id"]), set()):
                return 0
        return permissions

    def _add_member(self, guild: FakeGuild, user: FakeUser, role_ids: list[int]) -> None:
        guild.members[user.id] = FakeMember(user, role_ids, joined_at=time.time())
