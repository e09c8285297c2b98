"""A channel's recent messages as the model reads them, for a question in the assistant panel
about the channel the person is viewing (see .assistant).

One conversations.history call: the newest CHANNEL_MESSAGES top-level messages (thread replies
are not read), oldest first, each as `[date time UTC] name: text`, with Slack's markup turned
back into plain text and the whole cut to TRANSCRIPT_CHARS (the newest kept) so the question
fits the model's context with room for the answer. The bot reads only what Slack lets it: a
channel it isn't in, or one its scopes don't cover, raises Unreadable with words for the person.

Slack limits conversations.history to 1 request a minute for apps created since 2025 that are not
on the Marketplace; internal (workspace) apps keep Tier 3, which WorkspaceBudgets.history assumes.
"""

from __future__ import annotations

import asyncio
import html
import re
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_bot.ports import Workspace

CHANNEL_MESSAGES = 50  # the newest messages read
MESSAGE_CHARS = 1_000  # each message's text cut to this
TRANSCRIPT_CHARS = 10_000  # all of them (about 3,000 tokens), the newest kept
# Channel housekeeping, not conversation.
SKIPPED_SUBTYPES = frozenset(
    {
        "channel_join",
        "channel_leave",
        "channel_topic",
        "channel_purpose",
        "channel_name",
        "channel_archive",
        "channel_unarchive",
        "group_join",
        "group_leave",
        "group_topic",
        "group_purpose",
        "group_name",
        "pinned_item",
        "unpinned_item",
        "bot_add",
        "bot_remove",
    }
)
_MARKUP = re.compile(r"<([^<>]+)>")
_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>")


class Unreadable(Exception):
    """The bot may not read the channel; the message says why, for the person."""


class ChannelReader:
    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace

    async def read(self, client: AsyncWebClient, team: str, channel: str) -> list[str]:
        """The channel's recent messages, oldest first, one entry per message (raises Unreadable)."""
        budgets = self._workspace.budgets(team)
        try:
            async with budgets.limits.write((budgets.history,)):
                response = await client.conversations_history(channel=channel, limit=CHANNEL_MESSAGES)
        except SlackApiError as error:
            raise Unreadable(unreadable_reason(channel, error.response.data)) from error
        found: list[dict[str, Any]] = response.get("messages", [])
        messages = [
            message
            for message in found
            if message.get("subtype") not in SKIPPED_SUBTYPES and (message.get("text") or message.get("files"))
        ][::-1]
        names = await self._names(client, team, messages)
        return newest_within([entry(message, names) for message in messages], TRANSCRIPT_CHARS)

    async def _names(self, client: AsyncWebClient, team: str, messages: list[dict[str, Any]]) -> dict[str, str]:
        """Display names of the authors and of the people mentioned (looked up as for a thread)."""
        users = {str(m["user"]) for m in messages if m.get("user")}
        users.update(user for m in messages for user in _USER_MENTION.findall(str(m.get("text") or "")))
        people = sorted(users)
        found = await asyncio.gather(*(self._workspace.display_name_of(client, team, user) for user in people))
        return dict(zip(people, found, strict=True))


def unreadable_reason(channel: str, response: Any) -> str:
    """What the person is told when conversations.history refuses (Slack renders <#C…> as the
    channel's name)."""
    error = response.get("error") if isinstance(response, dict) else None
    where = f"<#{channel}>"
    if error == "not_in_channel":
        return f"I can't read {where}: I'm not a member of it. Invite me there (`/invite` and my name), then ask again."
    if error == "missing_scope":
        needed = response.get("needed") or "a history scope"
        return (
            f"I'm not allowed to read {where}: this app lacks the `{needed}` permission "
            "(a workspace admin can add it, see config/slack-app-manifest.yml)."
        )
    if error == "channel_not_found":
        return f"I can't see {where}: it is private and I'm not in it. Invite me there, then ask again."
    return f"I couldn't read {where} (Slack answered `{error or 'an error'}`). Please try again later."


def entry(message: dict[str, Any], names: dict[str, str]) -> str:
    """`[2025-01-31 14:03] alice: text`, continuation lines indented, files named."""
    author = message.get("user")
    name = names.get(str(author)) if author else None
    name = name or message.get("username") or (message.get("bot_profile") or {}).get("name") or "a bot"
    text = plain_text(str(message.get("text") or ""), names)
    if len(text) > MESSAGE_CHARS:
        text = text[: MESSAGE_CHARS - 1].rstrip() + "…"
    files = [str(f.get("name") or f.get("title") or "file") for f in message.get("files") or []]
    if files:
        text = (text + " " if text else "") + f"[shared: {', '.join(files)}]"
    when = datetime.fromtimestamp(float(message.get("ts") or 0), UTC).strftime("%Y-%m-%d %H:%M")
    return f"[{when}] {name}: " + text.replace("\n", "\n    ")


def plain_text(text: str, names: dict[str, str]) -> str:
    """Slack's markup as plain text: mentions as @name / #channel, links as `label (url)`."""

    def replace(match: re.Match[str]) -> str:
        inner, _, label = match.group(1).partition("|")
        if inner.startswith("@"):
            return "@" + (names.get(inner[1:]) or label or inner[1:])
        if inner.startswith("#"):
            return "#" + (label or inner[1:])
        if inner.startswith("!subteam^"):
            return label or "@group"
        if inner.startswith("!"):
            return "@" + (label or inner[1:].split("^")[0])
        return f"{label} ({inner})" if label and label != inner else inner

    return html.unescape(_MARKUP.sub(replace, text)).strip()


def newest_within(entries: list[str], limit: int) -> list[str]:
    """The newest entries whose lines together fit `limit` characters, oldest first."""
    kept: list[str] = []
    size = 0
    for item in reversed(entries):
        size += len(item) + 1
        if size > limit:
            break
        kept.append(item)
    return kept[::-1]


def channel_question(entries: list[str], question: str) -> str:
    """The question with the messages it is about before it."""
    if not entries:
        return f"(The channel I'm looking at has no messages yet.)\n\n{question}"
    listing = "\n".join(entries)
    return f"The last {len(entries)} messages of the channel I'm looking at, oldest first:\n\n{listing}\n\n{question}"
