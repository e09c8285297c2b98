"""A forum's help-desk tags on Discord: the forum's tag found by its name (any case), the tags Solved and Needs human
added to a forum that lacks them where the bot may (Manage Channels; Discord keeps at most 20 tags a forum), and a tag
put on or taken off a post (its owner, or Manage Threads; at most 5 tags a post), the post's title left as people
wrote it. What the bot can't do it says once (`Once` claims the saying, `Say` says it), and otherwise does nothing: the
answer goes on as before. For marking a post solved and handing it to people."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence

import discord
import structlog

log = structlog.get_logger(__name__)

SOLVED = "Solved"
NEEDS_HUMAN = "Needs human"
HELP_DESK_TAGS = (SOLVED, NEEDS_HUMAN)
MAX_FORUM_TAGS = 20  # Discord's most available tags a forum
MAX_POST_TAGS = 5  # Discord's most applied tags a post

Once = Callable[[str], Awaitable[bool]]  # True the first time a key is claimed (PlatformJobs.first_to_claim)
Say = Callable[[str], Awaitable[None]]  # tells the people concerned (in the post, or the admin)


class Tagged(enum.StrEnum):
    """What became of a tag on a post."""

    APPLIED = "applied"
    REMOVED = "removed"
    UNCHANGED = "unchanged"  # it was already so
    NO_TAG = "no_tag"  # the forum has no such tag, and the bot couldn't add it
    FULL = "full"  # the post has 5 tags already
    NOT_ALLOWED = "not_allowed"  # the bot may not set the post's tags (Manage Threads)


def find_tag(forum: discord.ForumChannel, name: str) -> discord.ForumTag | None:
    """The forum's tag called `name`, in any case and spacing ("solved", " Solved ")."""
    wanted = " ".join(name.split()).casefold()
    return next((tag for tag in forum.available_tags if " ".join(tag.name.split()).casefold() == wanted), None)


class ForumTags:
    def __init__(self, once: Once) -> None:
        self._once = once

    async def ensure(
        self, forum: discord.ForumChannel, say: Say, names: Sequence[str] = HELP_DESK_TAGS
    ) -> discord.ForumChannel:
        """The forum with the tags `names`, those it lacks added if the bot has Manage Channels there and the forum
        has room; either way said once. Returns the forum as it now is (unchanged if nothing was added)."""
        missing = [name for name in names if find_tag(forum, name) is None]
        if not missing:
            return forum
        listed = " and ".join(f"**{name}**" for name in missing)
        if not forum.permissions_for(forum.guild.me).manage_channels:
            await self._say_once(f"tags-forbidden:{forum.id}", say, f"{_cannot(listed, forum)} Manage Channels there.")
            return forum
        if len(forum.available_tags) + len(missing) > MAX_FORUM_TAGS:
            said = f"#{forum.name} has {MAX_FORUM_TAGS} tags already, Discord's most, so I can't add {listed}."
            await self._say_once(f"tags-full:{forum.id}", say, said)
            return forum
        tags = [*forum.available_tags, *(discord.ForumTag(name=name) for name in missing)]
        try:
            edited = await forum.edit(available_tags=tags)
        except discord.Forbidden:
            await self._say_once(f"tags-forbidden:{forum.id}", say, f"{_cannot(listed, forum)} Manage Channels there.")
            return forum
        except discord.HTTPException as error:  # a race: another process added them meanwhile, say
            log.warning("forum_tags_not_added", forum=forum.id, status=error.status, error=str(error)[:200])
            return forum
        log.info("forum_tags_added", forum=forum.id, tags=missing)
        await self._say_once(f"tags-added:{forum.id}", say, f"I added the tags {listed} to #{forum.name}.")
        return edited if isinstance(edited, discord.ForumChannel) else forum

    async def tag(self, post: discord.Thread, name: str, say: Say, *, on: bool = True) -> Tagged:
        """Put the forum's tag `name` on `post` (or take it off, `on` False), its other tags and its title kept; a
        help-desk tag the forum lacks is added first where the bot may."""
        forum = post.parent
        if not isinstance(forum, discord.ForumChannel):
            return Tagged.NO_TAG
        found = find_tag(forum, name)
        if found is None and on and name in HELP_DESK_TAGS:
            found = find_tag(await self.ensure(forum, say), name)
        if found is None:
            return Tagged.NO_TAG if on else Tagged.UNCHANGED
        applied = list(post.applied_tags)
        if (found in applied) == on:
            return Tagged.UNCHANGED
        if on and len(applied) >= MAX_POST_TAGS:
            return Tagged.FULL
        kept = [*applied, found] if on else [tag for tag in applied if tag.id != found.id]
        try:
            await post.edit(applied_tags=kept)  # applied_tags alone: the title stays as it was written
        except discord.Forbidden:
            await self._say_once(
                f"post-tags-forbidden:{forum.id}", say, f"{_cannot(f'**{found.name}**', forum)} Manage Threads there."
            )
            return Tagged.NOT_ALLOWED
        return Tagged.APPLIED if on else Tagged.REMOVED

    async def _say_once(self, key: str, say: Say, text: str) -> None:
        if await self._once(f"discord:forum:{key}"):
            try:
                await say(text)
            except discord.HTTPException as error:
                log.info("forum_tags_notice_not_sent", key=key, status=error.status)


def _cannot(what: str, forum: discord.ForumChannel) -> str:
    return f"I can't set {what} in #{forum.name}: I need"
