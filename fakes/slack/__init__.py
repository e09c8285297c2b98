"""A loopback stand-in for Slack: Web API, Socket Mode websocket and signed HTTP delivery.

One ``aiohttp.web`` server on 127.0.0.1 (random port) serves

* the Web API at ``/api/<method>`` (point ``AsyncWebClient(base_url=fake.api_url)`` at it;
  the base ends with ``/`` because slack_sdk joins method names with ``urljoin``),
* the Socket Mode websocket at ``/socket`` (``apps.connections.open`` hands out its URL, so a
  Socket Mode client whose web client uses ``fake.api_url`` finds it on its own),
* ``response_url`` targets at ``/response/<id>`` (``respond()`` after a slash command or a
  message shortcut: 5 uses within 30 minutes; ``in_channel`` responses become channel messages,
  the others are recorded in ``responses``),
* files shared in user messages at ``/files-pri/...`` (downloadable with the bot token),
* the upload URLs ``files.getUploadURLExternal`` hands out at ``/upload/v1/<ticket>`` (files.slack.com's).

Nothing is mocked: the real ``slack_sdk`` / ``slack_bolt`` talk to it over sockets.

Behaviour copied from Slack (see ``/work/shared/notes/platform-facts.md`` and slack_sdk 3.47):

* Errors are HTTP 200 with ``{"ok": false, "error": ...}``; rate limits are HTTP 429 with an
  integer ``Retry-After`` header and ``{"ok": false, "error": "ratelimited"}``.
* ``text`` longer than ``msg_too_long_at`` (default 4,000) -> ``msg_too_long``; streaming
  ``markdown_text`` over 12,000 characters per call -> ``msg_too_long`` (per call, not cumulative).
* ``chat.startStream`` needs ``thread_ts``; outside DMs also ``recipient_user_id`` /
  ``recipient_team_id`` (``missing_recipient_user_id`` / ``missing_recipient_team_id``, the error
  names in Slack's method reference). A stream lives ``stream_max_age`` seconds from its start
  (appends do not extend it); after that append/stop answer ``message_not_in_streaming_state``
  while ``chat.update`` still works on the message.
* slack_sdk's ``chat_stream`` helper sends text as ``chunks=[{"type": "markdown_text", ...}]``,
  not ``markdown_text``; both are accepted. ``task_update`` chunks (a task card) need a non-empty
  ``id`` and ``title`` and a ``status`` of pending / in_progress / complete / error; ``details`` and
  ``output`` are strings; each of ``sources`` is ``{"type": "url", "url", "text"}`` with a non-empty
  ``text``; ``plan_update`` needs a ``title``; else ``invalid_chunks`` naming each problem. A stored
  message keeps its non-text chunks in order (``chunks``; ``tasks`` / ``task_statuses`` per card).
* Block Kit: ``blocks`` of chat.postMessage / chat.update / chat.postEphemeral / chat.stopStream
  and response_url posts are checked (layout types, section / header / context / markdown /
  rich_text / image / actions shapes and limits, e.g. context: 1-10 text or image elements;
  actions: 1-25 interactive elements, a button's plain_text text up to 75 characters, its
  ``action_id`` up to 255 (unique in the block), ``value`` up to 2,000, ``style`` primary/danger);
  ``invalid_blocks`` lists each problem with its ``[json-pointer:/blocks/…]``.
* Message shortcuts: ``send_message_shortcut`` (Socket Mode, ``interactive`` envelope) or
  ``message_shortcut`` + ``post_signed_interactive`` (HTTP: a signed form ``payload=<JSON>``)
  deliver a ``message_action`` payload carrying the full stored message (files included).
* Button clicks: ``send_block_action`` (Socket Mode) or ``block_actions`` +
  ``post_signed_interactive`` (HTTP) deliver the ``block_actions`` payload of a click on a button of
  a stored message (its ``action_id``, ``block_id`` and ``value`` as the message has them).
* The assistant panel: ``assistant_thread_started_event(user, viewing)`` opens a thread in the
  person's DM with the app (its root an ``assistant_app_thread`` message) and builds the event as
  Slack sends it (``assistant_thread {user_id, context {channel_id, team_id, enterprise_id},
  channel_id, thread_ts}``); ``assistant_thread_context_changed_event`` when they move to another
  channel; their questions are ``message_event(dm, user, text, thread_ts=...)`` (``message.im``).
  ``assistant.threads.setSuggestedPrompts`` takes 1-4 prompts, each with a non-empty ``title`` and
  ``message`` (else ``invalid_arguments`` naming each problem), ``setTitle`` a ``title``; both
  answer ``invalid_thread_ts`` for a thread that is not the panel's and need ``assistant:write``
  (``setStatus``: that or ``chat:write``). Recorded in ``suggested_prompts`` / ``assistant_threads``
  (``prompts_for``, ``title_of``).
* The Home tab: ``app_home_opened_event(user, tab)`` (with ``view`` once one was published);
  ``views.publish`` takes a ``home`` view of up to 100 blocks of the types a Home tab allows,
  checked like message blocks (``invalid_arguments`` with ``[json-pointer:/view/blocks/…]``),
  250 kB (``view_too_large``), ``hash`` (``hash_conflict``), ``not_enabled`` when
  ``home_tab_enabled`` is off. Recorded in ``published_views`` and ``home_views``.
* Modals: every interactive payload (block_actions, slash command, shortcut, view_submission) carries a
  fresh ``trigger_id`` of its person; ``views.open`` (Tier 4) exchanges it within ``trigger_id_lifetime``
  seconds (3 at Slack; a constructor argument) and once: else ``expired_trigger_id`` /
  ``exchanged_trigger_id``, and ``invalid_trigger_id`` for one the fake never issued. The ``view`` (an
  object, or a JSON string as the form encoding sends it) must be a valid modal (``modal_view_errors``:
  title plain_text <= 24, <= 100 blocks checked like message blocks, input blocks with a plain_text
  ``label`` <= 2,000 and an ``element`` (plain_text_input: ``action_id``, ``multiline``, ``min_length`` /
  ``max_length`` <= 3,000, ``placeholder``), ``submit`` <= 24 and required with input blocks,
  ``private_metadata`` <= 3,000, ``callback_id`` <= 255), else ``invalid_arguments`` with
  ``[json-pointer:/view/…]`` messages. Recorded in ``views_opened`` (``OpenedView``: user, view, time).
  ``view_submission(user, view_id, values)`` / ``send_view_submission`` (Socket Mode) build and deliver
  the submission (``state.values`` ``{block_id: {action_id: {"type", "value"}}}``); the app's ack
  (``response_action`` errors / update / push / clear) keeps the modal open or closes it.
* File uploads (slack_sdk's ``files_upload_v2``): ``files.getUploadURLExternal`` (``filename``, ``length`` > 0,
  else ``invalid_arguments`` / ``missing_argument``; ``alt_txt`` <= 1,000: ``alt_txt_too_large``; a snippet <= 1 MB:
  ``snippet_too_large``) answers ``upload_url`` + ``file_id``; the bytes are POSTed there without a token, as a raw
  body (what slack_sdk sends) or a multipart ``file`` field, answered 200 ``text/plain`` ``OK - <bytes>``;
  ``files.completeUploadExternal`` (``files`` a JSON list of ``{id, title}``, ``channel_id`` or ``channels``,
  ``initial_comment``, ``thread_ts``) answers ``file_not_found`` for an id never handed out, never uploaded or
  already completed, ``invalid_arguments`` when the bytes uploaded differ from ``length`` (the fake's choice: Slack
  does not document it), ``channel_not_found`` / ``not_in_channel`` for a conversation the bot can't post to (as
  conversations.history), ``channels_limit_exceeded`` beyond 100. It shares the files (downloadable like users')
  in a ``file_share`` message of the bot per channel (``initial_comment`` its text, in the thread of ``thread_ts``),
  recorded in ``uploaded_files`` (``UploadedFile``; ``uploads_to``). Both need ``files:write``; both Tier 4.
* Scopes: the token has ``scopes`` (by default those config/slack-app-manifest.yml asks for);
  ``conversations.history`` / ``.replies`` need the channel type's history scope (``missing_scope`` with
  ``needed``) and the bot in the channel (``not_in_channel``; a private channel it is not in:
  ``channel_not_found``; ``Channel.bot_member``); ``conversations.members`` the type's read scope
  (``KNOWLEDGE_SCOPES``: channels:read, groups:read, not in the manifest's list yet).
* Channel history (conversations.history newest first, .replies oldest first): ``limit``, ``cursor``
  (Slack's base64 ``next_ts:<µs>``), ``oldest`` / ``latest`` / ``inclusive``, ``has_more`` and
  ``response_metadata.next_cursor``; thread parents carry ``reply_count`` / ``reply_users`` /
  ``latest_reply``. Two tiers (``history_tier``, per workspace): ``"internal"`` (internal and Marketplace
  apps: 50 calls a window per method, ``limit`` up to 999 / 1000) and ``"outside_marketplace"`` (1 call a
  window, ``limit`` at most and by default 15); the window is ``history_window_seconds`` (60 at Slack).
  Beyond it: 429 with ``Retry-After`` (the whole seconds until a call leaves the window).
  ``seed_history`` / ``seed_message`` fill a channel fast (100,000 messages in about a second), without events.
* Edits and deletes by people: ``message_changed_event`` / ``message_deleted_event`` change the stored
  message and build the hidden ``message`` events Slack sends (``message`` + ``previous_message``;
  ``deleted_ts`` + ``previous_message``); a deleted thread parent with replies becomes a ``tombstone``
  (a ``message_changed``), as at Slack. Deliver them with ``send_event`` or ``event_callback`` +
  ``post_signed_event``.
* Reactions by people: ``reaction_added_event(channel, ts, user, reaction)`` keeps it on the message and builds
  ``reaction_added`` as Slack sends it (``item {type, channel, ts}``, ``item_user``); none without the
  ``reactions:read`` scope or in a channel the app isn't in. ``conversations.replies`` finds a thread by any of its
  messages' ts (a reply's too), so a reacted reply's thread is one call.
* Permalinks: ``chat.getPermalink`` (Tier 4) gives ``https://<team_domain>.slack.com/archives/<channel>/
  p<ts without the dot>`` (a reply's with ``?thread_ts=…&cid=…``); ``permalink()`` computes the same.
* Membership: each channel keeps its people (``Channel.members``; the bot is ``bot_member``);
  ``member_joined_event`` / ``member_left_event`` change it and build ``member_joined_channel`` /
  ``member_left_channel``; ``conversations.members`` lists them (paginated, ``user:<id>`` cursors),
  ``conversations.info`` says ``is_private`` / ``is_member`` (and ``num_members`` when asked).
* Bots' messages: the bot's own (chat.postMessage) carry ``bot_id``, ``app_id``, ``bot_profile`` and
  the bot's ``user``, without a subtype; ``bot_message_event`` posts another app's (the same fields) or,
  with ``legacy``, an integration's (subtype ``bot_message``, ``username``, no user);
  ``message_event_of`` builds the ``message`` event of any stored message.
* Workspaces: one ``FakeSlack`` is one workspace (its ``team_id``, ``team_domain``, channels, members,
  messages and rate windows); several behind ``FakeSlackOAuth`` may share channel ids and stay apart.
* Socket Mode: ``hello`` on connect; ``events_api`` envelopes not acked within ``ack_timeout`` are
  redelivered with a new ``envelope_id``, ``retry_attempt + 1`` and ``retry_reason "timeout"``, up
  to ``max_retries`` (3) times. Slash commands and interactive payloads are never redelivered
  (Slack shows the user a timeout instead); they are listed in ``unacked`` when they time out.

The package: ``protocol`` (Block Kit limits, types, scopes), ``rate_limits``, ``models`` (what is stored and
recorded), ``helpers``, ``blocks`` (Block Kit validation); ``server`` is FakeSlack (lifecycle, directory, message
store, the Web API's plumbing), with its ``events`` (what people and other bots do), ``web_api`` (the methods) and
``delivery`` (response_url, Socket Mode, HTTP) in modules of their own. ``oauth`` is Slack's OAuth side in front of
several workspaces (FakeSlackOAuth).

Rate-limit assumptions (Slack publishes per-minute tiers, not bucket sizes): every limit is a
token bucket refilled at ``per_minute / 60`` per second holding ``burst`` tokens. Tier 2 =
20/min (burst 4), Tier 3 = 50/min (burst 10), Tier 4 = 100/min (burst 20). ``chat.startStream``
and ``chat.stopStream`` are assumed Tier 2 (not documented), ``chat.appendStream`` is Tier 4 (the
method reference says t4), so are ``views.open``, ``views.publish``,
``files.getUploadURLExternal`` and ``files.completeUploadExternal``. ``chat.postMessage`` is 1/s per
channel with a burst of 3.
``apps.connections.open`` (Tier 1 at Slack) is unlimited by default so that reconnect tests do not
stall on a 60 s Retry-After; set it with ``limits.set(...)`` if a test needs it.
``conversations.history`` / ``.replies`` are limited by their window instead (see above); internal apps'
Tier 3 is the default here.
"""

from __future__ import annotations

from fakes.slack.helpers import chunk_errors, signature_headers
from fakes.slack.models import Delivery, RecordedCall, ResponseUrlPost, StoredMessage
from fakes.slack.protocol import DEFAULT_SCOPES, KNOWLEDGE_SCOPES, JsonDict
from fakes.slack.rate_limits import SlackLimits
from fakes.slack.server import FakeSlack

__all__ = [
    "DEFAULT_SCOPES",
    "KNOWLEDGE_SCOPES",
    "Delivery",
    "FakeSlack",
    "JsonDict",
    "RecordedCall",
    "ResponseUrlPost",
    "SlackLimits",
    "StoredMessage",
    "chunk_errors",
    "signature_headers",
]
