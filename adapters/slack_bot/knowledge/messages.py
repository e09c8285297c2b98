"""Slack messages as knowledge: which are indexed (people's messages and thread replies, never a bot's or the app's
own, never channel housekeeping), and the passage each becomes: key "<channel>:<ts>", source "channel:<channel>",
titled "#<name>", linked by its permalink, readable by who can read its channel, and its author kept for
/forget-me. Slack's markup becomes plain text (@name, #channel, `label (url)`), so no passage carries a live
mention."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack_bot.recent import plain_text
from bot.knowledge.passages import Passage

log = structlog.get_logger(__name__)

# A message of people talking: plain, with files, a thread reply also sent to the channel, a /me message.
INDEXED_SUBTYPES = frozenset({"", "file_share", "thread_broadcast", "me_message"})
MESSAGE_CHARS = 3_000  # a message's text kept (Slack's own messages are cut near 4,000)


def scope_of(team: str) -> str:
    return f"slack:{team}"


def channel_source(channel: str) -> str:
    return f"channel:{channel}"


def message_key(channel: str, ts: str) -> str:
    return f"{channel}:{ts}"


def indexable(message: dict[str, Any], bot_user_id: str) -> bool:
    """A person's message with text: not a bot's (bot_id, bot_message), not the app's own, not housekeeping."""
    return (
        str(message.get("subtype") or "") in INDEXED_SUBTYPES
        and not message.get("bot_id")
        and message.get("user") not in (None, "", bot_user_id)
        and bool(str(message.get("text") or "").strip())
    )


def message_passage(team: str, channel: str, title: str, message: dict[str, Any], url: str) -> Passage:
    text = plain_text(str(message.get("text") or ""), {})
    if len(text) > MESSAGE_CHARS:
        text = text[: MESSAGE_CHARS - 1].rstrip() + "…"
    edited = (message.get("edited") or {}).get("ts")
    return Passage(
        scope_of(team),
        channel_source(channel),
        message_key(channel, str(message["ts"])),
        text,
        title,
        url=url,
        channel=channel,
        author=str(message.get("user") or ""),
        updated_at=float(edited or message.get("ts") or time.time()),
    )


def added_passage(team: str, channel: str, title: str, message: dict[str, Any], url: str, readers: str) -> Passage:
    """A message made knowledge with "Add to knowledge": its own source, read by `readers` ("" everyone, or its
    private channel's members)."""
    passage = message_passage(team, channel, title, message, url)
    source = added_source(passage.key)
    return dataclasses.replace(passage, source=source, key=source, channel=readers)


def added_source(key: str) -> str:
    """The knowledge source (and passage key) of an added message, by its message key."""
    return f"message:{key}"


async def permalink(client: AsyncWebClient, channel: str, ts: str) -> str:
    """The message's permalink (chat.getPermalink, Tier 4); "" when Slack won't give it (cited without a link)."""
    try:
        response = await client.chat_getPermalink(channel=channel, message_ts=ts)
    except SlackApiError as error:
        log.warning("slack_permalink_failed", channel=channel, error=error.response.get("error"))
        return ""
    return str(response.get("permalink") or "")


class Permalinks:
    """Messages' permalinks without a call per message: built from the workspace's URL (auth.test's `url`, asked
    once per workspace), so a burst of messages doesn't spend chat.getPermalink's tier. An Enterprise Grid
    workspace's messages, whose links Slack may write with the org's domain, are asked of chat.getPermalink."""

    def __init__(self) -> None:
        self._urls: dict[str, str] = {}  # team → its URL ("" when auth.test didn't say)

    async def of(
        self, client: AsyncWebClient, team: str, enterprise: str, message: dict[str, Any], channel: str
    ) -> str:
        ts = str(message["ts"])
        url = "" if enterprise else await self.workspace_url(client, team)
        return (
            built_permalink(url, channel, ts, message.get("thread_ts")) if url else await permalink(client, channel, ts)
        )

    async def resolve(self, client: AsyncWebClient, team: str, link: str) -> str:
        """A link kept by `message_link` as the message's permalink ("" if Slack won't say); any other as it is."""
        if not link.startswith(MESSAGE_LINK):
            return link
        channel, ts, thread_ts = link.removeprefix(MESSAGE_LINK).split("/", 2)
        return await self.of(client, team, "", {"ts": ts, "thread_ts": thread_ts or None}, channel)

    def know(self, team: str, url: str) -> None:
        """A workspace's URL learnt another way (the one workspace's auth.test at start-up)."""
        if url:
            self._urls[team] = url

    async def workspace_url(self, client: AsyncWebClient, team: str) -> str:
        if team not in self._urls:
            try:
                self._urls[team] = str((await client.auth_test()).get("url") or "")
            except SlackApiError as error:
                log.warning("slack_workspace_url_unknown", team=team, error=error.response.get("error"))
                return ""
        return self._urls[team]


def built_permalink(workspace_url: str, channel: str, ts: str, thread_ts: str | None) -> str:
    """A permalink as Slack writes it, from the workspace's URL (auth.test's `url`): what the history's reading
    uses, where a chat.getPermalink per message would cost more requests than the reading itself."""
    link = f"{workspace_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"
    if thread_ts and thread_ts != ts:
        link += f"?thread_ts={thread_ts}&cid={channel}"
    return link


MESSAGE_LINK = "slack-message:"


def message_link(channel: str, ts: str, thread_ts: str | None) -> str:
    """A message's link as kept until it is shown (`Permalinks.resolve` makes it Slack's permalink then)."""
    return f"{MESSAGE_LINK}{channel}/{ts}/{thread_ts or ''}"
