"""FakeDiscord's threads: created by people or the bot, auto-archived and unarchived like Discord's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

from fakes.discord.errors import thread_archived
from fakes.discord.models import FakeUser
from fakes.discord.protocol import ChannelType, MessageFlag, _copied, iso_timestamp


class ThreadsArea:
    """FakeDiscord's threads: a part of the class, its state FakeDiscord's (set in its __init__)."""

    async def delete_thread(self, thread: Mapping[str, Any]) -> None:
        """A moderator deletes a thread: it and its messages are gone (404), and Discord says so with one
        THREAD_DELETE (``id``, ``guild_id``, ``parent_id``, ``type``), no MESSAGE_DELETE for its messages."""
        stored = self.channels.pop(int(thread["id"]))
        for message in self._messages.values():
            if message.channel_id == int(thread["id"]):
                message.deleted = True
        self.thread_members.pop(int(thread["id"]), None)
        keys = ("id", "guild_id", "parent_id", "type")
        await self.dispatch("THREAD_DELETE", {key: stored[key] for key in keys})

    async def create_user_thread(
        self,
        parent: Mapping[str, Any],
        owner: FakeUser,
        name: str,
        *,
        private: bool = False,
        members: Iterable[FakeUser] = (),
        from_message_id: int | str | None = None,
    ) -> dict[str, Any]:
        """A person starts a thread in a text channel: public (type 11; from one of the channel's
        messages with `from_message_id`, then the thread's id is that message's) or private (type 12,
        seen by its `owner`, `members` and whoever may Manage Threads; include ``fake.bot_user`` in
        `members` for the bot to get its events). THREAD_CREATE with ``newly_created``; returns it."""
        stored_parent = self.channels[int(parent["id"])]
        thread_type = ChannelType.PRIVATE_THREAD if private else ChannelType.PUBLIC_THREAD
        starter = self._messages.get(int(from_message_id)) if from_message_id is not None else None
        if from_message_id is not None and (starter is None or starter.channel_id != int(parent["id"]) or private):
            raise LookupError(f"a public thread can start from a message of channel {parent['id']} only")
        thread_id = starter.id if starter is not None else self._ids.next()
        thread = self._create_thread(stored_parent, name, thread_id=thread_id, thread_type=thread_type)
        thread["owner_id"] = str(owner.id)
        self.thread_members[thread_id] = {owner.id, *(m.id for m in members)}
        if starter is not None:
            self._threads_by_message[starter.id] = thread_id
            starter.payload["thread"] = _copied(thread)
            starter.payload["flags"] |= MessageFlag.HAS_THREAD
        await self._announce_thread(thread)
        return thread

    def _create_thread(
        self,
        parent: Mapping[str, Any],
        name: str,
        *,
        thread_id: int,
        thread_type: int,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = body or {}
        now = iso_timestamp(time.time())
        thread = {
            "id": str(thread_id),
            "type": thread_type,
            "guild_id": parent["guild_id"],
            "parent_id": parent["id"],
            "owner_id": str(self.bot_user.id),
            "name": name,
            "last_message_id": None,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "rate_limit_per_user": body.get("rate_limit_per_user") or 0,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": body.get("auto_archive_duration") or 1440,
                "archive_timestamp": now,
                "locked": False,
                "invitable": body.get("invitable", True),
                "create_timestamp": now,
            },
        }
        self.channels[thread_id] = thread
        self.thread_members[thread_id] = {self.bot_user.id}
        self._schedule_archive(thread)
        return thread

    async def _announce_thread(self, thread: dict[str, Any]) -> None:
        await self.dispatch("THREAD_CREATE", {**_copied(thread), "newly_created": True})

    def archive_after(self, thread: Mapping[str, Any]) -> float:
        """Seconds without a new message after which `thread` is archived."""
        if self.thread_archive_seconds is not None:
            return self.thread_archive_seconds
        return float(thread["thread_metadata"]["auto_archive_duration"]) * 60.0

    def _schedule_archive(self, thread: dict[str, Any]) -> None:
        """(Re)start an active thread's idle time; without a running loop, start() does it."""
        thread_id = int(thread["id"])
        timer = self._archive_timers.pop(thread_id, None)
        if timer is not None:
            timer.cancel()
        if thread["thread_metadata"]["archived"]:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._archive_timers[thread_id] = loop.call_later(self.archive_after(thread), self._archive_due, thread_id)

    def _archive_due(self, thread_id: int) -> None:
        self._archive_timers.pop(thread_id, None)
        task = asyncio.ensure_future(self.archive_thread(thread_id, automatic=True))
        self._archiving.add(task)
        task.add_done_callback(self._archiving.discard)

    async def archive_thread(self, thread_id: int | str, *, automatic: bool = False) -> dict[str, Any]:
        """Archive a thread now (as its idle time running out does) and announce it with
        THREAD_UPDATE; returns the thread."""
        thread = self.channels[int(thread_id)]
        metadata = thread["thread_metadata"]
        timer = self._archive_timers.pop(int(thread_id), None)
        if timer is not None:
            timer.cancel()
        if not metadata["archived"]:
            metadata["archived"] = True
            metadata["archive_timestamp"] = iso_timestamp(time.time())
            if automatic:
                self.archived.append((time.time(), int(thread_id)))
            await self.dispatch("THREAD_UPDATE", _copied(thread))
        return thread

    async def _unarchive_for_message(self, channel: dict[str, Any]) -> None:
        """A new message in an archived thread unarchives it first, announced with THREAD_UPDATE."""
        if channel["type"] not in ChannelType.THREADS or not channel["thread_metadata"]["archived"]:
            return
        metadata = channel["thread_metadata"]
        metadata["archived"] = False
        metadata["archive_timestamp"] = iso_timestamp(time.time())
        self._schedule_archive(channel)
        await self.dispatch("THREAD_UPDATE", _copied(channel))

    def _check_active(self, channel: Mapping[str, Any]) -> None:
        """Editing messages, reacting or joining: refused in an archived thread."""
        if channel["type"] in ChannelType.THREADS and channel["thread_metadata"]["archived"]:
            raise thread_archived()
