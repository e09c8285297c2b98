"""Slack's numbers as the fake speaks them: Block Kit limits, block and element types, scopes, the
history methods' access by app kind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

JsonDict = dict[str, Any]


MARKDOWN_TEXT_MAX = 12_000


SECTION_TEXT_MAX = 3_000


SECTION_FIELDS_MAX = 10


SECTION_FIELD_TEXT_MAX = 2_000


HEADER_TEXT_MAX = 150


CONTEXT_ELEMENTS_MAX = 10


ACTIONS_ELEMENTS_MAX = 25


BUTTON_TEXT_MAX = 75


ACTION_ID_MAX = 255


BUTTON_VALUE_MAX = 2_000


BUTTON_URL_MAX = 3_000


# Interactive elements an actions block takes (a chat bot builds buttons; the others are not checked further).
ACTION_ELEMENT_TYPES = frozenset(
    {
        "button",
        "checkboxes",
        "datepicker",
        "datetimepicker",
        "multi_static_select",
        "multi_users_select",
        "overflow",
        "radio_buttons",
        "static_select",
        "timepicker",
        "users_select",
        "conversations_select",
        "channels_select",
        "external_select",
        "workflow_button",
        "rich_text_input",
    }
)


TASK_STATUSES = ("pending", "in_progress", "complete", "error")


ALT_TEXT_MAX = 2_000


BLOCK_ID_MAX = 255


MAX_BLOCKS = 50


MAX_VIEW_BLOCKS = 100  # a view (home tab, modal) holds up to 100 blocks


VIEW_MAX_BYTES = 250_000  # views.publish: view_too_large


PRIVATE_METADATA_MAX = 3_000


CALLBACK_ID_MAX = 255


EXTERNAL_ID_MAX = 255


MODAL_TITLE_MAX = 24  # a modal's title, submit and close: plain_text of up to 24 characters


MODAL_BUTTON_MAX = 24


INPUT_LABEL_MAX = 2_000


INPUT_HINT_MAX = 2_000


PLACEHOLDER_MAX = 150


PLAIN_TEXT_INPUT_MAX = 3_000  # plain_text_input: min_length / max_length / initial_value


TRIGGER_ID_LIFETIME = 3.0  # a trigger_id opens a view within 3 seconds of the interaction, once


# Elements an input block takes; plain_text_input is checked in depth, the others only by type.
INPUT_ELEMENT_TYPES = frozenset(
    {
        "plain_text_input",
        "email_text_input",
        "url_text_input",
        "number_input",
        "rich_text_input",
        "checkboxes",
        "radio_buttons",
        "datepicker",
        "timepicker",
        "datetimepicker",
        "static_select",
        "multi_static_select",
        "users_select",
        "multi_users_select",
        "conversations_select",
        "multi_conversations_select",
        "channels_select",
        "multi_channels_select",
        "external_select",
        "multi_external_select",
        "file_input",
    }
)


# Input elements whose state is a typed ``value`` (what view_submission fills from the test's text).
TEXT_INPUT_TYPES = ("plain_text_input", "email_text_input", "url_text_input", "number_input")


MAX_SUGGESTED_PROMPTS = 4  # assistant.threads.setSuggestedPrompts: "up to four"


TEXT_OBJECT_TYPES = ("plain_text", "mrkdwn")


RICH_TEXT_ELEMENT_TYPES = ("rich_text_section", "rich_text_list", "rich_text_preformatted", "rich_text_quote")


# Block types Slack accepts in messages (layout blocks); anything else is invalid_blocks.
MESSAGE_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "context_actions",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)


# Block types a Home tab takes (no markdown, table or context_actions blocks: those are messages only).
HOME_BLOCK_TYPES = frozenset(
    {"actions", "context", "divider", "header", "image", "input", "rich_text", "section", "video"}
)


# Block types a modal takes (the same as a Home tab).
MODAL_BLOCK_TYPES = HOME_BLOCK_TYPES


# The scopes config/slack-app-manifest.yml asks for (what the fake grants unless a test says otherwise).
DEFAULT_SCOPES = frozenset(
    {
        "app_mentions:read",
        "assistant:write",
        "channels:history",
        "groups:history",
        "channels:read",
        "groups:read",
        "im:history",
        "im:read",
        "im:write",
        "chat:write",
        "commands",
        "files:write",
        "users:read",
        "files:read",
        "usergroups:read",
        "reactions:read",
    }
)


# Methods that need a scope (any one of those listed), checked after the token.
HISTORY_SCOPES = {"channel": "channels:history", "group": "groups:history", "im": "im:history"}


METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "assistant.threads.setSuggestedPrompts": ("assistant:write",),
    "assistant.threads.setTitle": ("assistant:write",),
    "assistant.threads.setStatus": ("assistant:write", "chat:write"),
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
    "usergroups.users.list": ("usergroups:read",),
}


# What reading a channel's members and getting member_joined_channel / member_left_channel need (in the manifest,
# so in DEFAULT_SCOPES too; a test takes them away with `fake.scopes -= KNOWLEDGE_SCOPES`).
KNOWLEDGE_SCOPES = frozenset({"channels:read", "groups:read"})


READ_SCOPES = {"channel": "channels:read", "group": "groups:read", "im": "im:read"}


HISTORY_METHODS = ("conversations.history", "conversations.replies")


# conversations.history / .replies by kind of app (Slack's rule since 2025-05-29): requests per window (a minute
# at Slack) per method per workspace, and the largest / default ``limit`` of each method.
HistoryTier = Literal["internal", "outside_marketplace"]


@dataclass(frozen=True)
class HistoryAccess:
    per_window: int
    max_limit: dict[str, int]
    default_limit: dict[str, int]


HISTORY_ACCESS: dict[str, HistoryAccess] = {
    # Tier 3 for internal and Marketplace apps; the method references give 999 / 1000 as the largest limit.
    "internal": HistoryAccess(
        50,
        {"conversations.history": 999, "conversations.replies": 1000},
        {"conversations.history": 100, "conversations.replies": 1000},
    ),
    # Distributed outside the Marketplace: 1 request a minute, ``limit`` at most (and by default) 15.
    "outside_marketplace": HistoryAccess(
        1,
        {"conversations.history": 15, "conversations.replies": 15},
        {"conversations.history": 15, "conversations.replies": 15},
    ),
}


MEMBERS_LIMIT_MAX = 1000  # conversations.members


SLACKBOT = "USLACKBOT"


TOMBSTONE_TEXT = "This message was deleted."


RESPONSE_URL_MAX_USES = 5  # Slack: a response_url takes 5 messages within 30 minutes


RESPONSE_URL_MAX_AGE = 30 * 60.0


FILE_ALT_TXT_MAX = 1_000  # files.getUploadURLExternal: alt_txt_too_large


SNIPPET_MAX_BYTES = 1_000_000  # a snippet (snippet_type) is limited to 1 MB: snippet_too_large


UPLOAD_CHANNELS_MAX = 100  # files.completeUploadExternal: channels_limit_exceeded


JSON_PARAMS = ("blocks", "attachments", "chunks", "metadata", "loading_messages", "users", "prompts", "view")


class ApiError(Exception):
    """Raised inside a method handler; becomes ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra
