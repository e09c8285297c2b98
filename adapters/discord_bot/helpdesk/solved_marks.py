"""Discord's piece of marking a help thread solved (adapters.shared.helpdesk.solving). In a help channel's thread (or
a forum's post) the asker or a member with the helpers' role marks the answer: **Solved** under the bot's answer
(a second click unmarks), **Mark as answer** in any message's Apps menu, `/solved` for the last answer (`undo: True`
unmarks), or a ✅ reaction; a post's **Solved** tag set by hand counts too. The accepted answer wears the bot's ✅,
and a forum post the forum's Solved tag (added to the forum where the bot may), its title left as people wrote it;
unmarking takes both off. Anyone else is told why, privately. The answer's edit is read again, its deletion or a 👎
on it takes the thread out of the knowledge."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any, Protocol

import discord
import structlog
from discord import app_commands

from adapters.discord_bot.knowledge.access import DiscordKnowledge, guild_scope
from adapters.discord_bot.knowledge.messages import place_link
from adapters.discord_bot.places.forum_posts import forum_post
from adapters.discord_bot.places.forum_tags import SOLVED, ForumTags, find_tag
from adapters.discord_bot.places.message_places import places_of
from adapters.shared.helpdesk.calling import helpers_of
from adapters.shared.helpdesk.solving import (
    NO_ANSWER,
    NOT_ALLOWED,
    NOT_HELP_THREAD,
    Marked,
    Solving,
    may_mark,
    told,
)
from adapters.shared.place_settings import respond_mode
from adapters.shared.platform_jobs import PlatformJobs
from adapters.shared.solved_threads import Answer, HelpThread
from bot.errors import ReplyFailure
from bot.reply.render import failure_note
from bot.respond.decision import RespondMode

log = structlog.get_logger(__name__)

MENU_NAME = "Mark as answer"
CHECK = "✅"
CHECKS = frozenset({CHECK, "☑️", "✔️"})
MAX_QUESTION_CHARS = 2_000
FOLLOW_UPS_READ = 20  # the thread's first messages searched for the asker's follow-ups
ANSWERS_READ = 50  # the thread's last messages searched for the last answer
SERVERS = app_commands.AppCommandContext(guild=True, dm_channel=False, private_channel=False)
SERVER_INSTALL = app_commands.AppInstallationType(guild=True, user=False)


class MarksHost(Protocol):
    """What this uses of the client (client.py), which it never imports."""

    @property
    def jobs(self) -> PlatformJobs: ...

    @property
    def knowledge(self) -> DiscordKnowledge: ...

    @property
    def user(self) -> discord.ClientUser | None: ...

    def get_guild(self, guild_id: int, /) -> discord.Guild | None: ...


class Found:
    """A help thread, as the shared flow sees it, with its helpers' role ids."""

    def __init__(self, thread: HelpThread, helpers: tuple[str, ...]) -> None:
        self.thread, self.helpers = thread, helpers


class DiscordSolvedMarks:
    def __init__(self, host: MarksHost) -> None:
        self._host = host
        knowledge = host.knowledge
        self._solving = Solving(host.jobs.solutions, knowledge.opener, "discord", knowledge.channels, host.jobs.desk)

    @property
    def solving(self) -> Solving:
        return self._solving

    def register(self, tree: app_commands.CommandTree[discord.Client]) -> None:
        @tree.command(name="solved", description="Mark this help thread solved by its last answer (or unmark it)")
        @app_commands.describe(undo="True: this thread is no longer solved")
        @app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
        @app_commands.allowed_installs(guilds=True, users=False)
        async def solved(interaction: discord.Interaction, undo: bool = False) -> None:
            await self._privately(interaction, self._command(interaction, undo))

        async def mark_answer(interaction: discord.Interaction, message: discord.Message) -> None:
            await self._privately(interaction, self._marked(interaction.channel, interaction.user, message))

        menu = app_commands.ContextMenu(
            name=MENU_NAME, callback=mark_answer, allowed_contexts=SERVERS, allowed_installs=SERVER_INSTALL
        )
        tree.add_command(menu)

    # -- the ways in ------------------------------------------------------------------------------

    async def clicked(self, interaction: discord.Interaction[Any]) -> None:
        """Solved under the bot's answer: marked with it, or unmarked if it was the accepted one."""
        assert interaction.message is not None  # a button's click comes from its message
        answer = interaction.message
        await self._privately(interaction, self._marked(interaction.channel, interaction.user, answer, toggle=True))

    async def downvoted(self, interaction: discord.Interaction[Any]) -> None:
        """A 👎 on an answer that solved its thread: the thread is unmarked, and its answer leaves the knowledge."""
        thread, message = interaction.channel, interaction.message
        if not isinstance(thread, discord.Thread) or message is None:
            return
        try:
            solution = await self._solving.solution(guild_scope(thread.guild.id), str(thread.id))
            if solution is not None and solution.answer.message == str(message.id):
                await self._unmark(thread, int(solution.answer.message))
                log.info("discord_solved_answer_downvoted", thread=thread.id)
        except ReplyFailure:
            log.warning("discord_solved_downvote_lost", thread=thread.id)

    async def reacted(self, event: discord.RawReactionActionEvent) -> None:
        """A ✅ on a message of a help thread, by its asker or a helper: that message is the accepted answer."""
        me, guild = self._host.user, self._host.get_guild(event.guild_id) if event.guild_id else None
        if str(event.emoji) not in CHECKS or guild is None or me is None or event.user_id == me.id:
            return
        thread = guild.get_channel_or_thread(event.channel_id)
        if not isinstance(thread, discord.Thread):
            return
        if not await self._host.jobs.first_to_claim(f"discord:solved-reaction:{event.message_id}:{event.user_id}"):
            return
        try:
            message = await thread.fetch_message(event.message_id)
        except discord.HTTPException as error:
            log.info("discord_solved_reaction_unread", thread=thread.id, status=error.status)
            return
        person = event.member or await guild.fetch_member(event.user_id)
        said = await self._marked(thread, person, message)
        log.info("discord_solved_reaction", thread=thread.id, person=event.user_id, outcome=said[:60])

    async def tags_changed(self, before: discord.Thread, after: discord.Thread) -> None:
        """A forum post's Solved tag set by hand: marked solved by its last answer; taken off: unmarked."""
        post = forum_post(after)
        tag = (
            find_tag(post.parent, SOLVED)
            if post is not None and isinstance(post.parent, discord.ForumChannel)
            else None
        )
        if post is None or tag is None or (tag in before.applied_tags) == (tag in after.applied_tags):
            return
        on = tag in after.applied_tags
        tags = ",".join(sorted(str(applied.id) for applied in after.applied_tags))
        if not await self._host.jobs.first_to_claim(f"discord:solved-tag:{post.id}:{tags}"):
            return
        try:
            found = await self._help_thread(post)
            if found is None:
                return
            current = await self._solving.solution(found.thread.scope, found.thread.thread)
            if on and current is None and (answer := await self._last_answer(post, found.thread.asker)) is not None:
                await self._mark(post, found, answer, "")
            elif not on and current is not None:
                await self._unmark(post, int(current.answer.message), tagged=False)
        except ReplyFailure:
            log.warning("discord_solved_tag_lost", post=post.id)

    async def edited(self, event: discord.RawMessageUpdateEvent) -> None:
        if event.guild_id is not None and event.data.get("edited_timestamp") and "content" in event.data:
            await self._solving.answer_edited(guild_scope(event.guild_id), str(event.message_id), event.message.content)

    async def deleted(self, guild_id: int | None, message_ids: Collection[int]) -> None:
        if guild_id is not None:
            await self._solving.answers_gone(guild_scope(guild_id), [str(one) for one in message_ids], "deleted")

    # -- marking ----------------------------------------------------------------------------------

    async def _command(self, interaction: discord.Interaction[Any], undo: bool) -> str:
        thread = interaction.channel
        found = await self._help_thread(thread)
        if found is None or not isinstance(thread, discord.Thread):
            return NOT_HELP_THREAD
        if not may_mark(str(interaction.user.id), found.thread, _is_helper(interaction.user, found.helpers)):
            return NOT_ALLOWED
        if undo:
            current = await self._solving.solution(found.thread.scope, found.thread.thread)
            return told(
                Marked.NOT_SOLVED if current is None else await self._unmark(thread, int(current.answer.message))
            )
        answer = await self._last_answer(thread, found.thread.asker)
        if answer is None:
            return NO_ANSWER
        return await self._mark(thread, found, answer, str(interaction.user.id))

    async def _marked(
        self, thread: Any, person: discord.abc.User, message: discord.Message, toggle: bool = False
    ) -> str:
        found = await self._help_thread(thread)
        if found is None or not isinstance(thread, discord.Thread):
            return NOT_HELP_THREAD
        if not may_mark(str(person.id), found.thread, _is_helper(person, found.helpers)):
            return NOT_ALLOWED
        current = await self._solving.solution(found.thread.scope, found.thread.thread)
        if toggle and current is not None and current.answer.message == str(message.id):
            return told(await self._unmark(thread, message.id))
        return await self._mark(thread, found, message, str(person.id))

    async def _mark(self, thread: discord.Thread, found: Found, message: discord.Message, by: str) -> str:
        previous = await self._solving.solution(found.thread.scope, found.thread.thread)
        answer = await self._answer(message, found.helpers)
        thread_with_question = await self._with_question(thread, found.thread, message.id)
        marked, lost = await self._solving.mark(thread_with_question, answer, by)
        if marked is Marked.MARKED:
            if previous is not None and previous.answer.message != answer.message:
                await self._check(thread, int(previous.answer.message), on=False)
            await self._check(thread, message.id, on=True)
            await self._tag(thread, on=True)
        return told(marked, answer, lost)

    async def _unmark(self, thread: discord.Thread, answer: int, *, tagged: bool = True) -> Marked:
        marked = await self._solving.unmark(guild_scope(thread.guild.id), str(thread.id))
        if marked is Marked.UNMARKED:
            await self._check(thread, answer, on=False)
            if tagged:
                await self._tag(thread, on=False)
        return marked

    async def _privately(self, interaction: discord.Interaction[Any], work: Any) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            said = await work
        except ReplyFailure as failure:
            said = failure_note(failure)
        await interaction.edit_original_response(content=said)

    # -- the thread, its question and its answer --------------------------------------------------

    async def _help_thread(self, channel: object) -> Found | None:
        """`channel` as a help thread: a thread (or forum post) of a channel answering without a mention."""
        if not isinstance(channel, discord.Thread) or channel.guild is None:
            return None
        places = places_of(channel, channel.guild)
        if await respond_mode(self._host.jobs.core, places) is RespondMode.MENTIONS:
            return None
        helpers = await helpers_of(self._host.jobs.core, places)
        starter = await _starter(channel)
        asker = str(starter.author.id) if starter is not None else ""
        parent = channel.parent.name if channel.parent is not None else "channel"
        thread = HelpThread(
            scope=guild_scope(channel.guild.id),
            channel=str(channel.parent_id or channel.id),
            thread=str(channel.id),
            asker=asker,
            question=_said(starter, channel) if starter is not None else channel.name,
            title=f"#{parent} \u203a {' '.join(channel.name.split())}",
            url=place_link(channel.guild.id, channel.id),
            readers=str(channel.parent_id or channel.id),
            asked_at=channel.created_at.timestamp() if channel.created_at else 0.0,
        )
        return Found(thread, helpers)

    async def _with_question(self, thread: discord.Thread, found: HelpThread, before: int) -> HelpThread:
        """`found` with the asker's follow-ups before the answer, which often sharpen the question."""
        said = [found.question]
        async for message in thread.history(limit=FOLLOW_UPS_READ, oldest_first=True, after=discord.Object(thread.id)):
            if message.id >= before:
                break
            if str(message.author.id) == found.asker and message.content.strip():
                said.append(message.clean_content.strip())
        question = "\n".join(said)[:MAX_QUESTION_CHARS]
        return dataclasses.replace(found, question=question)

    async def _last_answer(self, thread: discord.Thread, asker: str) -> discord.Message | None:
        """The thread's last answer: a person's message other than the asker's, or the bot's (one with its buttons)."""
        me = self._host.user
        async for message in thread.history(limit=ANSWERS_READ):
            if str(message.author.id) == asker or not message.content.strip():
                continue
            if message.type not in (discord.MessageType.default, discord.MessageType.reply):
                continue
            if me is not None and message.author.id == me.id and not message.components:
                continue  # the bot's notices (a hand-off, tags): not answers
            return message
        return None

    async def _answer(self, message: discord.Message, helpers: tuple[str, ...]) -> Answer:
        me = self._host.user
        mine = me is not None and message.author.id == me.id
        author: Any = message.author
        if not mine and not hasattr(author, "roles") and message.guild is not None:
            try:
                author = await message.guild.fetch_member(message.author.id)
            except discord.HTTPException:
                pass  # gone from the server: not a helper
        return Answer(
            message=str(message.id),
            author="" if mine else str(message.author.id),
            author_name="the bot" if mine else message.author.display_name,
            text=message.clean_content.strip(),
            by_helper=mine or _is_helper(author, helpers),
        )

    # -- what people see --------------------------------------------------------------------------

    async def _check(self, thread: discord.Thread, message: int, *, on: bool) -> None:
        """The bot's ✅ on the accepted answer (taken off when it no longer is)."""
        partial = thread.get_partial_message(message)
        try:
            if on:
                await partial.add_reaction(CHECK)
            elif self._host.user is not None:
                await partial.remove_reaction(CHECK, self._host.user)
        except discord.HTTPException as error:  # the mark is made: a reaction left off is logged
            log.info("discord_solved_check_failed", thread=thread.id, status=error.status)

    async def _tag(self, thread: discord.Thread, *, on: bool) -> None:
        if forum_post(thread) is None:
            return

        async def say(text: str) -> None:
            await thread.send(text, allowed_mentions=discord.AllowedMentions.none())

        try:
            tagged = await ForumTags(self._host.jobs.first_to_claim).tag(thread, SOLVED, say, on=on)
        except discord.HTTPException as error:
            log.warning("solved_tag_failed", post=thread.id, status=error.status, error=str(error)[:200])
            return
        log.info("solved_tag", post=thread.id, outcome=tagged.value)


async def _starter(thread: discord.Thread) -> discord.Message | None:
    """The message that opened the thread: a forum post's first message, or the channel message it was opened from."""
    try:
        if forum_post(thread) is not None:
            return thread.starter_message or await thread.fetch_message(thread.id)
        if isinstance(thread.parent, discord.TextChannel):
            return await thread.parent.fetch_message(thread.id)
    except discord.HTTPException:
        return None  # deleted: only the helpers may mark the thread
    return None


def _said(starter: discord.Message, thread: discord.Thread) -> str:
    text = starter.clean_content.strip()
    if forum_post(thread) is not None and thread.name.strip():
        return f"{' '.join(thread.name.split())}\n{text}"
    return text


def _is_helper(person: object, helpers: tuple[str, ...]) -> bool:
    return bool({str(role.id) for role in getattr(person, "roles", ())} & set(helpers))
