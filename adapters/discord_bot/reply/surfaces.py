"""Where a Discord reply is shown: channel messages edited in place, or a slash command's
response. Each write waits for (or skips without) a slot of Discord's rate limits."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import discord
from discord.utils import MISSING

from adapters.discord_bot.reply.helper_calls import NO_HELPDESK, HelpDesk
from adapters.discord_bot.reply.tool_buttons import confirm_question, question_view, settled_text
from adapters.discord_bot.reply.vote_buttons import vote_view
from adapters.shared.ratelimit import Bucket, RateLimits, ReplyBudget
from adapters.shared.reply_records import Recording
from bot.reply.surface import SurfaceLimits
from bot.reply.thought_view import thought_line
from bot.tools.consent import ConfirmRequest
from bot.tools.gate import Decision

MAX_CONTENT = 2000
REPLY_LIMITS = SurfaceLimits(max_length=MAX_CONTENT, indicator=" ▌", min_edit_interval=1.0, line_prefix="-# ")
TYPING_DELAY = 0.4  # seconds without text before "typing…" shows (quick answers skip it)


def model_subtext(model: str, *, first_reply: bool) -> str:
    """The conversation's first answer names its model in Discord's small grey text."""
    return f"-# {model}" if first_reply else ""


THOUGHT_FILE = "thinking.md"


class ThoughtFile:
    """A thinking model's thought, one click away: attached as thinking.md to the reply's first finished message
    (the one starting with the "Thought for N s" line)."""

    def __init__(self) -> None:
        self._thought = ""

    def keep_thought(self, thought: str, seconds: int) -> str:
        self._thought = thought
        return f"-# {thought_line(seconds)} · {THOUGHT_FILE}\n"

    def files(self, *, final: bool) -> Any:
        """The file for a message's final write (once), else discord.py's "none given" (MISSING: the message's
        attachments stay as they are): for `files=` on a send, `attachments=` on an edit."""
        if not final or not self._thought:
            return MISSING
        data, self._thought = self._thought.encode() + b"\n", ""
        return [discord.File(io.BytesIO(data), filename=THOUGHT_FILE)]


ORIGINAL = "original"  # the handle of a slash command's original response
OnPosted = Callable[[discord.Message], Awaitable[None]]


class DiscordRateLimits:
    """Discord's buckets (the bot's global 50 requests per second, a channel's 5 messages and 5
    edits per 5 s), shared by every process of the bot. The global limit streams up to a
    second's worth of replies live at once; more are posted whole at the end, one write instead
    of two."""

    def __init__(self, limits: RateLimits, *, global_per_second: int = 50, per_channel: int = 5) -> None:
        self.limits = limits
        self._per_channel = per_channel
        self.global_ = limits.bucket("discord", "global", global_per_second, 1.0)

    def creates(self, channel_id: int) -> tuple[Bucket, Bucket]:
        return self.limits.bucket("discord", f"posts:{channel_id}", self._per_channel, 5.0), self.global_

    def edits(self, channel_id: int) -> tuple[Bucket, Bucket]:
        return self.limits.bucket("discord", f"edits:{channel_id}", self._per_channel, 5.0), self.global_

    def webhook(self, interaction_id: int) -> tuple[Bucket]:
        """An interaction's webhook: its own bucket, exempt from the global limit."""
        return (self.limits.bucket("discord", f"webhook:{interaction_id}", 5, 5.0),)


@dataclass
class Destination:
    channel: discord.abc.MessageableChannel
    reply_to: discord.Message | None = None  # set when the conversation is a reply chain


class ChannelReply(ThoughtFile):
    """A reply made of channel messages, edited in place as the model writes."""

    limits = REPLY_LIMITS

    def __init__(
        self,
        destination: Destination | Callable[[], Awaitable[Destination]],
        channel_id: int,
        rate_limits: DiscordRateLimits,
        on_posted: OnPosted,
        recording: Recording | None = None,
        votes: str | None = None,
        helpdesk: HelpDesk = NO_HELPDESK,
    ) -> None:
        """`destination` is where the reply goes, or how to open it (a thread from a mention);
        `channel_id` where its edits count until it is open (a thread has its message's id); `votes`: the
        message answered, whose 👍 / 👎 buttons its finished messages carry (with Solved and Still need help? as
        `helpdesk` says)."""
        super().__init__()
        self._open = destination if callable(destination) else None
        self._destination: asyncio.Future[Destination] | None = None if callable(destination) else _ready(destination)
        self._rate_limits = rate_limits
        self._budget = ReplyBudget(rate_limits.limits)
        self._on_posted = on_posted
        self._recording = recording
        self._predicted_channel = channel_id
        self._votes = votes
        self._helpdesk = helpdesk

    def open(self) -> None:
        """Start opening the destination (a thread) now, not when the reply first needs it."""
        if self._destination is None:
            assert self._open is not None
            self._destination = asyncio.ensure_future(self._open())

    async def show_waiting(self) -> None:
        destination = await self._where()
        await asyncio.sleep(TYPING_DELAY)
        while True:
            # Typing is cosmetic: it takes only a spare write, looking again 2 s later (in a
            # burst that fills the global limit, it shows when the burst is over).
            if write := await self._rate_limits.limits.spare((self._rate_limits.global_,)):
                async with write:
                    await destination.channel.typing()
            await asyncio.sleep(8 if write else 2)  # Discord shows "typing…" for 10 s per request

    async def begin(self) -> bool:
        return await self._budget.begin(self._edit_buckets())

    async def post(self, text: str, *, final: bool) -> discord.Message:
        # Posts wait for their slots once the destination exists: spent earlier, while a thread
        # is still being opened, they would hold global capacity for requests that can't go yet.
        destination = await self._where()
        async with self._budget.post(self._rate_limits.creates(destination.channel.id)):
            files, view = self.files(final=final), self._buttons(final=final)
            if destination.reply_to is not None:
                message = await destination.reply_to.reply(text, mention_author=False, files=files, view=view)
            else:
                message = await destination.channel.send(text, files=files, view=view)
        await self._on_posted(message)
        if self._recording is not None:
            await self._recording.posted(_handle(message), text)
        return message

    async def edit(self, handle: discord.Message, text: str, *, final: bool) -> None:
        async with await self._budget.edit(self._edit_buckets(), final=final):
            await handle.edit(content=text, attachments=self.files(final=final), view=self._buttons(final=final))
        if self._recording is not None:
            self._recording.shown(text)

    async def end(self) -> None:
        await self._budget.end()

    def model_line(self, model: str, *, first_reply: bool) -> str:
        return model_subtext(model, first_reply=first_reply)

    async def tools_running(self, names: Sequence[str]) -> None:
        if self._recording is not None:
            await self._recording.tools_running(names)

    async def ask_to_run(self, request: ConfirmRequest) -> discord.Message:
        """Run / Cancel buttons under the reply (see adapters.discord_bot.reply.tool_buttons)."""
        destination = await self._where()
        async with self._budget.post(self._rate_limits.creates(destination.channel.id)):
            return await destination.channel.send(confirm_question(request), view=question_view(request.key))

    async def settle(self, handle: discord.Message, request: ConfirmRequest, decision: Decision) -> None:
        async with await self._budget.edit(self._edit_buckets(), final=True):
            await handle.edit(content=settled_text(request, decision), view=None)

    def _buttons(self, *, final: bool) -> Any:
        """The vote buttons, on a finished message; else discord.py's "none given" (the message keeps its own)."""
        return vote_view(self._votes, self._helpdesk) if final and self._votes else MISSING

    def _edit_buckets(self) -> tuple[Bucket, Bucket]:
        """The channel the reply is in: known once the thread opened (or the reply fell back to
        the channel); until then, the thread's id, which is the mention's."""
        channel_id = self._predicted_channel
        if self._destination is not None and self._destination.done() and not self._destination.cancelled():
            channel_id = self._destination.result().channel.id
        return self._rate_limits.edits(channel_id)

    async def _where(self) -> Destination:
        self.open()
        assert self._destination is not None
        # Shielded: the waiting indicator is cancelled when text arrives, and cancelling a
        # task cancels the future it awaits, which would lose the thread for the reply itself.
        return await asyncio.shield(self._destination)


class InteractionReply(ThoughtFile):
    """The answer to a deferred slash command: the original response, then follow-ups."""

    limits = REPLY_LIMITS

    def __init__(
        self,
        interaction: discord.Interaction,
        rate_limits: DiscordRateLimits,
        on_posted: OnPosted,
        votes: str | None = None,
    ) -> None:
        """`votes`: the answer whose 👍 / 👎 buttons its finished messages carry."""
        super().__init__()
        self._votes = votes
        self._interaction = interaction
        self._on_posted = on_posted
        self._used_original = False
        self._buckets = rate_limits.webhook(interaction.id)
        self._budget = ReplyBudget(rate_limits.limits)

    async def show_waiting(self) -> None:
        return None  # the deferred response already shows "… is thinking"

    async def begin(self) -> bool:
        return await self._budget.begin(self._buckets)

    async def post(self, text: str, *, final: bool) -> discord.Message | str:
        async with self._budget.post(self._buckets):
            files, view = self.files(final=final), self._buttons(final=final)
            if self._used_original:
                return await self._interaction.followup.send(text, wait=True, files=files, view=view)
            self._used_original = True
            message = await self._interaction.edit_original_response(content=text, attachments=files, view=view)
        await self._on_posted(message)
        return ORIGINAL

    async def edit(self, handle: discord.Message | str, text: str, *, final: bool) -> None:
        async with await self._budget.edit(self._buckets, final=final):
            attached, view = self.files(final=final), self._buttons(final=final)
            if isinstance(handle, str):
                await self._interaction.edit_original_response(content=text, attachments=attached, view=view)
            else:
                await handle.edit(content=text, attachments=attached, view=view)

    def _buttons(self, *, final: bool) -> Any:
        return vote_view(self._votes) if final and self._votes else MISSING

    async def end(self) -> None:
        await self._budget.end()

    def model_line(self, model: str, *, first_reply: bool) -> str:
        return model_subtext(model, first_reply=first_reply)

    async def ask_to_run(self, request: ConfirmRequest) -> discord.WebhookMessage:
        async with self._budget.post(self._buckets):
            view = question_view(request.key)
            return await self._interaction.followup.send(confirm_question(request), view=view, wait=True)

    async def settle(self, handle: discord.WebhookMessage, request: ConfirmRequest, decision: Decision) -> None:
        async with await self._budget.edit(self._buckets, final=True):
            await handle.edit(content=settled_text(request, decision), view=None)


def _handle(message: discord.Message) -> dict[str, Any]:
    """A message, as the ledger keeps it for finishing the reply after a crash."""
    return {"channel_id": message.channel.id, "message_id": message.id}


def _ready(destination: Destination) -> asyncio.Future[Destination]:
    future: asyncio.Future[Destination] = asyncio.get_running_loop().create_future()
    future.set_result(destination)
    return future
