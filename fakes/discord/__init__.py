"""Loopback stand-in for Discord: REST API (``/api/v10``) and gateway (``/gateway``) in one aiohttp app.

The real discord.py talks to it over sockets.  Point discord.py at it with::

    discord.http.Route.BASE = fake.api_base_url                               # REST, incl. interaction webhooks
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)  # gateway (plain Client)

What it models (in memory): one bot user / application, guilds with roles, members, text channels,
threads and DM channels, messages with full edit history, application commands and interactions.
What it checks like Discord: bot token on REST and IDENTIFY, content length (2000), empty messages,
thread names (1..100), missing permissions (configurable per channel), interaction acknowledgement
(once, within 3 s) and fixed-window rate limits with Discord's headers and 429 bodies.

Application commands: slash commands (type 1, with options, choices, sub-commands, autocomplete)
and message context-menu commands (type 3) are registered with the bulk-overwrite routes and
validated as Discord does (50035 field errors), their ``integration_types`` and ``contexts`` too
(against the application's ``installation_contexts``, servers only unless told). Tests drive them
with ``send_slash_command``, ``send_message_command`` (the target message in
``data.resolved.messages``) and ``send_autocomplete`` (interaction type 4; returns the bot's
type-8 ``choices``, checked: at most 25, 1-100 characters). Replies carry ``referenced_message``;
attachments are served by a fake CDN (``/attachments/<id>/<name>``, the bot's uploads too),
images with ``width`` / ``height``.

Buttons: messages (created, edited, interaction replies and follow-ups, webhook edits) carry
``components``: at most 5 action rows of 1-5 buttons, checked like Discord (custom_id 1-100
characters and unique, label up to 80, link buttons with a url; 400 50035 naming the field), stored
with Discord's numeric component ``id``s; ``components: []`` removes them. Select menus and v2
layout components are refused (not modelled). ``click_button(message_id, custom_id, user)``
dispatches INTERACTION_CREATE of type 3 with the full message; the bot answers within 3 s, once,
with 4 (a reply to the clicked message, ephemeral with ``flags: 64``: ``messages_seen_by`` shows
it to the clicker only), 5, 6 (nothing visible) or 7 (the clicked message edited); 6 and 7 are
refused (400) for commands. ``components_of``, ``buttons_of`` and ``messages_with_buttons`` read
what is stored.

Modals: a command or a click may be answered with callback type 9, checked like Discord (title
1-45, custom_id 1-100, 1-5 action rows of one text input each: custom_id, style 1 or 2, label
1-45, min/max_length 0-4000, a prefilled value within max_length; 400 50035 naming the field); a
modal submission answered with another modal is 40060. ``interaction.modal`` / ``text_inputs``
show what the person sees; ``submit_modal(interaction, {custom_id: value})`` submits it once
(INTERACTION_CREATE of type 5 with a fresh id and token, the same person, channel and guild;
values checked against each input's lengths), and the bot's answer to that is read like any other.

User installs: ``install_for_user(user)`` adds the app to a person's account. Their commands then
work where the bot is not: a guild added with ``with_bot=False``, a group DM (``add_group_dm``),
a DM between two people (``add_dm_between``). Interactions carry Discord's ``context`` (0 guild,
1 the bot's DM, 2 any other DM), ``authorizing_integration_owners`` ("0": the guild, or "0" in
the bot's DM, where the server install applies; "1": the user, where their install applies) and
``app_permissions``; a command not offered there (its ``contexts`` / ``integration_types``, no
install) raises LookupError. The bot gets no gateway events from such places (``gateway.withheld``
has them) and its REST calls there fail: 403 Missing Access in a guild, 404 in a (group) DM; it
can answer only through the interaction's webhook.

Threads archive like Discord's: one without a new message for its ``auto_archive_duration``
(minutes; or ``thread_archive_seconds``, for every thread, when set) is archived and announced
with THREAD_UPDATE (``thread_metadata.archived`` true). A new message in an archived thread
unarchives it first (THREAD_UPDATE, then MESSAGE_CREATE); editing a message or adding a reaction
there, or joining it, is refused (400, code 50083). GUILD_CREATE lists active threads only.

Permissions: guilds have roles with permission bits (@everyone's id is the guild's), members have
role ids, channels have ``permission_overwrites`` (role and member, allow / deny as strings), all in
GUILD_CREATE; a member's permissions in a channel are computed as Discord does (owner and
administrators: everything; then @everyone's overwrite, the roles' overwrites, the member's own;
no View Channel, nothing; a thread has its parent's, a private thread is seen by its members and
those who may Manage Threads). They decide what the bot gets (no message, typing or thread events
of a channel it cannot view; 403 50001 to its REST calls there; 50013 without Send Messages or
Create Threads), what people may do (``send_user_message``, ``click_button``) and an interaction's
``member.permissions`` / ``app_permissions``. Tests change them live: ``make_private_channel``,
``set_overwrite`` (CHANNEL_UPDATE), ``create_role``, ``set_role_permissions`` (GUILD_ROLE_*),
``set_member_roles`` (GUILD_MEMBER_UPDATE, Members intent only), ``create_text_channel``. Every
message event carries the author's ``member`` (roles), so discord.py's ``permissions_for`` works
from its cache without the Members intent.

Knowledge: ``edit_user_message`` (MESSAGE_UPDATE, the full message with ``edited_timestamp``),
``delete_user_message`` (MESSAGE_DELETE: ids only) and ``delete_user_messages``
(MESSAGE_DELETE_BULK); deleted messages answer 404 10008. ``create_user_thread`` (THREAD_CREATE;
public, from a message, or private with members) and ``delete_thread`` (THREAD_DELETE only, none for
its messages). GET /channels/{id}/messages: ``limit`` 1-100
(default 50; else 400 50035), newest first, ``before`` / ``after`` / ``around``; 403 50001 without
View Channel, ``[]`` without Read Message History (as Discord documents); its own bucket,
``Limits.message_history`` (5 per 5 s per channel, as observed). ``seed_history`` stores N past
messages fast (100,000 in about half a second) without events. ``remove_bot_from_guild``
(GUILD_DELETE; the bot's member and managed role go) and ``add_bot_to_guild`` (GUILD_CREATE as a
join). ``can_view(channel, user)`` and ``permissions_for(channel, user_id)`` answer as Discord would.

Everything a test may want to assert on is recorded: ``requests`` (method, route key, JSON body,
arrival time, status), ``ratelimited`` (served 429s), message ``history`` (time, content) per edit,
``identify_payload``, gateway connections, interactions and their callbacks.

Forums: ``add_forum_channel`` (type 15, ``available_tags``), ``create_forum_post`` (THREAD_CREATE then the starter
message's MESSAGE_CREATE, the post's id its starter's), ``set_post_tags`` (THREAD_UPDATE) and ``tag_id``; the bot's
posts (POST /channels/{forum}/threads with a ``message``), PATCH /channels/{id} (a post's ``applied_tags``, at most 5:
its owner or Manage Threads; a forum's ``available_tags``, at most 20: Manage Channels), GET
/channels/{id}/threads/archived/public and GET /guilds/{id}/threads/active (see ``forums``).

The package, by Discord's areas: ``protocol`` (numbers, enums, snowflakes), ``errors``, ``models`` (what is
stored), ``rate_limits``, ``gateway``, ``rest`` (the routes), ``validation`` (Discord's checks on what a bot sends);
``server`` is FakeDiscord (setup, inspection, the request pipeline), with its ``messages``, ``threads``, ``forums``,
``permissions`` and ``interactions`` in modules of their own; ``control`` and ``__main__`` run it standalone.

Run standalone (benchmarks): ``python -m fakes.discord --port 8099``.  A small control
API under ``/_fake/`` lets another process inject user messages and read state.
"""

from __future__ import annotations

from fakes.discord.models import (
    FakeGuild,
    FakeInteraction,
    FakeUser,
    Limits,
    RateLimit,
    RateLimitHit,
    RecordedRequest,
    StoredMessage,
    overwrite,
)
from fakes.discord.protocol import CallbackType, IntegrationType, Intent, OverwriteType, Perm
from fakes.discord.rest import InteractionCallbackRejected
from fakes.discord.server import FakeDiscord

__all__ = [
    "CallbackType",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeUser",
    "IntegrationType",
    "Intent",
    "InteractionCallbackRejected",
    "Limits",
    "OverwriteType",
    "Perm",
    "RateLimit",
    "RateLimitHit",
    "RecordedRequest",
    "StoredMessage",
    "overwrite",
]
