"""The model's Markdown as Slack shows it, with nothing it writes turned into a mention."""

from __future__ import annotations

import re

from markdown_to_mrkdwn import SlackMarkdownConverter

from bot.reply.surface import SurfaceLimits

MAX_MESSAGE_BYTES = 3500  # Slack answers msg_too_long near 4,000 characters
_MARKDOWN = SlackMarkdownConverter()
_SPECIAL_MENTION = re.compile(r"<(?=[!@#])")


def escape_mrkdwn(text: str) -> str:
    """Escape &, < and > so nothing the model writes becomes a mention or a control sequence."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    # The converter turns Markdown links into <url|label>: a link to "!channel" or "@U…" would
    # come out as a live mention, so any such "<" it made is escaped too.
    return _SPECIAL_MENTION.sub("&lt;", _MARKDOWN.convert(escape_mrkdwn(markdown)))


def defuse_mentions(markdown: str) -> str:
    """For Markdown sent as-is (native streams): break `<!channel>`, `<@U…>`, `<!subteam^…>`."""
    return _SPECIAL_MENTION.sub("<\u200b", markdown)


def slack_size(text: str) -> int:
    """An upper bound of the bytes Slack will count once the text is escaped."""
    return len(text.encode("utf-8")) + 4 * (text.count("<") + text.count(">") + text.count("&"))


REPLY_LIMITS = SurfaceLimits(max_length=MAX_MESSAGE_BYTES, measure=slack_size, indicator=" ▌", min_edit_interval=1.0)
STREAM_LIMITS = SurfaceLimits(
    max_length=MAX_MESSAGE_BYTES, measure=slack_size, indicator="", min_edit_interval=1.0, thinking_status=False
)
