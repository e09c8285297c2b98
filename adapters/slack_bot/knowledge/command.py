"""/knowledge on Slack, for workspace admins and SLACK_ADMIN_USER_IDS (as /persona): `channel on|off` run in a
channel makes it knowledge (its new messages from then on, its history read in the background) or stops that and
removes its messages; `add <https://…>` adds a docs site, `add github.com/owner/repo` a GitHub repository (read now
and every KNOWLEDGE_SYNC_HOURS; `sync` reads them again now); `list` shows what the workspace's knowledge holds;
`remove <source>` removes one source (a site or repository with all its pages); `gaps`
shows what the bot couldn't answer well in 30 days, with every entry in a CSV file sent to the admin's DM with the bot.
Acknowledged at once, answered to the person alone through the command's response_url."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import structlog
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.shared.desk_ledger import DeskLedger
from adapters.shared.feedback.gaps import gaps_report
from adapters.shared.feedback.records import Feedback, GapEntry
from adapters.shared.web_knowledge.commands import Shown, is_web_source
from adapters.slack_bot.knowledge.history import HistoryReader
from adapters.slack_bot.knowledge.members import channel_members, readable_places
from adapters.slack_bot.knowledge.messages import MESSAGE_LINK, Permalinks, channel_source, scope_of
from adapters.slack_bot.knowledge.state import SlackKnowledge
from adapters.slack_bot.reply.text import escape_mrkdwn
from bot.errors import ReplyFailure
from bot.knowledge.opener import KnowledgeUnavailable
from bot.knowledge.passages import DEPLOYMENT_SCOPE, SourceInfo
from bot.knowledge.service import Knowledge
from bot.reply.render import failure_note

log = structlog.get_logger(__name__)

USAGE = (
    "`/knowledge channel on` or `/knowledge channel off` in a channel: its messages are (or stop being) knowledge.\n"
    "`/knowledge add https://docs.example.com/` or `/knowledge add github.com/owner/repo`: a docs site or a GitHub "
    "repository, read now and kept current.  `/knowledge sync`: read them again now.\n"
    "`/knowledge list`: what this workspace's knowledge holds.  `/knowledge remove <source>`: remove one.\n"
    "`/knowledge gaps`: what I couldn't answer well in the last 30 days.\n"
    'Add a message and its files with the message shortcut "Add to knowledge".'
)
NOT_ADMIN = "Only workspace admins (or the people this bot names) may change or list this workspace's knowledge."
GAPS_FILE = "knowledge-gaps.csv"
GAPS_CHARS = 3_500  # the answer stays one readable message (Slack cuts a message's text at 4,000)
LISTED = 50  # sources listed at most (the rest counted), so the answer stays one readable message
NOT_IN_CHANNEL = "I'm not in this channel: invite me first (`/invite` and my name), then run this again."
NO_KNOWLEDGE = "Knowledge is not available in this deployment."


class KnowledgeCommand:
    def __init__(
        self,
        knowledge: SlackKnowledge,
        is_admin: Callable[[AsyncWebClient, str], Awaitable[bool]],
        history: HistoryReader,
        feedback: Feedback | None = None,
        permalinks: Permalinks | None = None,
        desk: DeskLedger | None = None,
    ) -> None:
        self._feedback, self._desk = feedback, desk
        self._permalinks = permalinks or Permalinks()
        self._knowledge = knowledge
        self._is_admin = is_admin
        self._history = history

    def register(self, app: AsyncApp) -> None:
        app.command("/knowledge")(self._on_knowledge)

    async def _on_knowledge(self, ack: Any, command: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        await ack()
        try:
            said = await self._answer(client, command)
        except ReplyFailure as failure:
            said = failure_note(failure)
        except KnowledgeUnavailable as unavailable:
            said = str(unavailable)
        await respond(text=said, response_type="ephemeral", replace_original=False)

    async def _answer(self, client: AsyncWebClient, command: dict[str, Any]) -> str:
        words = command.get("text", "").split()
        words[:1] = [word.lower() for word in words[:1]]  # `remove`'s name and `add`'s address keep their case
        if words[:1] == ["channel"]:
            words[1:2] = [word.lower() for word in words[1:2]]
        team, channel, user = command.get("team_id", ""), command["channel_id"], command["user_id"]
        if words[:1] == ["gaps"] and self._feedback is not None:
            return await self._gaps(client, team, user) if await self._is_admin(client, user) else NOT_ADMIN
        if self._knowledge.opener is None:
            return NO_KNOWLEDGE
        if not words or words[0] not in ("channel", "list", "remove", "add", "sync"):
            return USAGE
        if not await self._is_admin(client, user):
            return NOT_ADMIN
        if words[0] == "add" and len(words) == 2:
            return _slack_sentence(await self._knowledge.web.add(scope_of(team), words[1], user))
        if words[0] == "sync":
            return _slack_sentence(await self._knowledge.web.sync(scope_of(team)))
        knowledge = await self._knowledge.opener.get()
        if words[0] == "list":
            return await self._list(knowledge, team, user)
        if words[0] == "remove" and len(words) > 1:
            return await self._remove(knowledge, team, " ".join(words[1:]))
        if words[0] == "channel" and words[1:] in (["on"], ["off"]):
            if channel.startswith("D"):
                return "Run `/knowledge channel on|off` in the channel itself."
            if words[1] == "off":
                return await self._channel_off(knowledge, team, channel)
            return await self._channel_on(client, team, channel)
        return USAGE

    async def _gaps(self, client: AsyncWebClient, team: str, user: str) -> str:
        """The workspace's knowledge gaps; every entry goes to the admin's DM with the bot as a CSV file."""
        assert self._feedback is not None
        report = await gaps_report(
            self._feedback,
            self._knowledge.current,
            f"slack:{team}",
            limit_chars=GAPS_CHARS,
            bold=lambda text: f"*{text}*",
            link=lambda text, url: f"<{url}|{text}>",
            escape=escape_mrkdwn,
            resolve=lambda link: self._permalinks.resolve(client, team, link),
            readable=lambda entries: self._readable_gaps(client, team, user, entries),
            desk=self._desk,
        )
        if not report.entries:
            return report.text
        try:
            dm = (await client.conversations_open(users=user))["channel"]["id"]
            await client.files_upload_v2(
                channel=dm, content=report.csv.decode(), filename=GAPS_FILE, title="Knowledge gaps (30 days)"
            )
        except SlackApiError as error:
            log.warning("slack_gaps_csv_not_sent", team=team, error=error.response.get("error"))
            return f"{report.text}\n(I couldn't send you the CSV: Slack answered `{error.response.get('error')}`.)"
        return f"{report.text}\nEvery entry is in {GAPS_FILE}, in your DM with me."

    async def _readable_gaps(
        self, client: AsyncWebClient, team: str, user: str, entries: list[GapEntry]
    ) -> list[GapEntry]:
        """Those of `entries` asked where `user` may read (an older entry: where its link says)."""
        places = {entry: entry.channel or _linked_channel(entry.link) for entry in entries}
        readable = await readable_places(self._knowledge.members, client, team, user, set(places.values()) - {""})
        return [entry for entry in entries if places[entry] in readable]

    async def _channel_on(self, client: AsyncWebClient, team: str, channel: str) -> str:
        try:
            info = (await client.conversations_info(channel=channel))["channel"]
            if not info.get("is_member"):
                return NOT_IN_CHANNEL
            if info.get("is_private"):
                await self._knowledge.members.track(team, channel, await channel_members(client, channel))
        except SlackApiError as error:
            log.warning("slack_knowledge_channel_unreadable", channel=channel, error=error.response.get("error"))
            if error.response.get("error") in ("channel_not_found", "not_in_channel"):
                return NOT_IN_CHANNEL
            return f"I couldn't read this channel (Slack answered `{error.response.get('error')}`)."
        channels = self._knowledge.channels
        if not await channels.opt_in(scope_of(team), channel, f"#{info.get('name') or channel}"):
            return "This channel is knowledge already."
        await channels.start_backfill(scope_of(team), channel)
        self._history.wake()
        log.info("slack_knowledge_channel_on", team=team, channel=channel, private=bool(info.get("is_private")))
        return (
            "Done: this channel is knowledge now. Its new messages can be found within seconds, and I'm reading its "
            "recent history in the background (at the pace Slack allows this app)."
        )

    async def _channel_off(self, knowledge: Knowledge, team: str, channel: str) -> str:
        was = await self._knowledge.channels.opt_out(scope_of(team), channel)
        removed = await knowledge.forget_source(scope_of(team), channel_source(channel))
        log.info("slack_knowledge_channel_off", team=team, channel=channel, removed=removed)
        if not was and not removed:
            return "This channel isn't knowledge: nothing to remove."
        return f"Done: this channel is no longer knowledge ({_count(removed, 'message')} removed)."

    async def _list(self, knowledge: Knowledge, team: str, user: str) -> str:
        """The workspace's knowledge as `user` may read it: of the channels' (and their messages'), only those of the
        public channels and the private ones they are in."""
        everything = [info for info in await knowledge.sources(scope_of(team)) if not is_web_source(info.source)]
        channels = await self._knowledge.channels.channels(scope_of(team))
        said_in = {_said_in(source) for source in everything} - {""}
        readable = await self._knowledge.members.readable(team, user, {*channels, *said_in})
        channels = {channel: title for channel, title in channels.items() if channel in readable}
        sources = [
            replace(source, title=channels.get(source.source.removeprefix("channel:"), source.title))  # renamed
            for source in everything
            if _said_in(source) in readable | {""}
        ]
        reading = {
            b.channel: b.read for b in await self._knowledge.channels.backfills("slack") if b.scope == scope_of(team)
        }
        listed = {source.source for source in sources}
        lines = [_line(source, reading.get(source.source.removeprefix("channel:"))) for source in sources]
        lines += [
            f"• *{escape_mrkdwn(title)}* (`channel:{id}`): nothing yet"
            for id, title in channels.items()
            if channel_source(id) not in listed
        ]
        lines[:0] = await self._knowledge.web.lines(scope_of(team), SHOWN)
        if len(lines) > LISTED:
            lines[LISTED:] = [f"…and {len(lines) - LISTED} more."]
        shared = [info for info in await knowledge.sources(DEPLOYMENT_SCOPE) if not is_web_source(info.source)]
        everywhere = f"\nAnd this deployment's {_count(len(shared), 'document')} (KNOWLEDGE_DIR)." if shared else ""
        if not lines:
            return "This workspace's knowledge is empty." + everywhere + "\n" + USAGE
        return "This workspace's knowledge:\n" + "\n".join(lines) + everywhere

    async def _remove(self, knowledge: Knowledge, team: str, name: str) -> str:
        scope = scope_of(team)
        if (removed_site := await self._knowledge.web.remove(scope, knowledge, name)) is not None:
            return _slack_sentence(removed_site)
        sources = [info for info in await knowledge.sources(scope) if not is_web_source(info.source)]
        found = [s for s in sources if name in (s.source, s.title)] or [
            s for s in sources if s.title.lower() == name.lower()
        ]
        keys = [source.source for source in found]
        if not keys and name.startswith("channel:"):  # a channel that is knowledge but holds nothing yet
            keys = [name]
        if not keys:
            return f"No source is called {escape_mrkdwn(name)}. `/knowledge list` shows them."
        removed = 0
        for key in keys:
            if key.startswith("channel:"):
                await self._knowledge.channels.opt_out(scope, key.removeprefix("channel:"))
            removed += await knowledge.forget_source(scope, key)
        what = escape_mrkdwn(found[0].title if found else name)
        return f"Done: {what} is no longer knowledge ({_count(removed, 'passage')} removed)."


def _slack_sentence(text: str) -> str:
    """A shared sentence as Slack shows it: "this server" is a workspace here."""
    return text.replace("this server", "this workspace").replace("This server", "This workspace")


def _moment(at: float) -> str:
    return f"<!date^{int(at)}^{{date_short_pretty}} {{time}}|{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(at))}>"


def _linked_channel(link: str) -> str:
    """The channel of a link kept by `message_link` ("" for any other)."""
    return link.removeprefix(MESSAGE_LINK).split("/", 1)[0] if link.startswith(MESSAGE_LINK) else ""


def _said_in(source: SourceInfo) -> str:
    """The channel a channel's or a message's source was said in, or whose readers alone may read it (a file added
    from a private channel's message); "": anyone may."""
    if source.channel:
        return source.channel
    if source.source.startswith("channel:"):
        return source.source.removeprefix("channel:")
    if source.source.startswith("message:"):
        return source.source.removeprefix("message:").split(":", 1)[0]
    return ""


def _line(source: SourceInfo, read: int | None) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(source.updated_at)) if source.updated_at else "unknown"
    size = (
        f"{source.characters / 1000:.1f}k characters"
        if source.characters >= 1000
        else f"{source.characters} characters"
    )
    reading = f", history being read ({_count(read, 'message')} so far)" if read is not None else ""
    title, passages = escape_mrkdwn(source.title), _count(source.passages, "passage")
    skipped = f"; {_count(source.skipped, 'passage')} left out ({escape_mrkdwn(source.skipped_reason)})"
    left_out = skipped if source.skipped else ""
    return f"• *{title}* (`{escape_mrkdwn(source.source)}`): {passages}, {size}, updated {when}{reading}{left_out}"


def _count(number: int, one: str) -> str:
    return f"{number} {one if number == 1 else one + 's'}"


SHOWN = Shown(bold=lambda text: f"*{text}*", escape=escape_mrkdwn, when=_moment)
