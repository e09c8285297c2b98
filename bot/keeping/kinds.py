"""Every kind of record the bot keeps, in one list: its Redis keys (after REDIS_KEY_PREFIX) or its table, whose it is
(a server or workspace, a person, a conversation, the deployment), how each way out removes it, and how long it
lives at most. A new feature that keeps something adds its kind here first.

The list is used where things are deleted: when the bot leaves a server or workspace, the keys its kinds name for
that server (`server_keys`) are swept after each part has deleted its own (adapters.shared.server_sweep), so a record
a part forgot still goes; and tests/bot/keeping checks each kind against each way out, and that every key the bot
writes belongs to a kind listed here.

Patterns are Redis globs; in `server_keys`, "{platform}" and "{id}" stand for the server's platform and id (a
Discord guild id, a Slack team id). Braces are literal otherwise (Cluster hash tags)."""

from __future__ import annotations

from bot.keeping.kind import Kind, Owner, Way
from bot.keeping.knowledge_kinds import KNOWLEDGE_KINDS

__all__ = ["KINDS", "Kind", "Owner", "Way", "server_patterns"]


SERVER, PERSON, THREAD, EXPIRY = Way.SERVER, Way.PERSON, Way.THREAD, Way.EXPIRY
A_MINUTE = "a minute"
HISTORY_TTL = "HISTORY_TTL_SECONDS after its last write"

KINDS: tuple[Kind, ...] = (
    Kind(
        "conversation",
        (Owner.THREAD, Owner.SERVER, Owner.PERSON),
        ("chat:{*}:history", "chat:{*}:images", "chat:{*}:image-order", "chat:{*}:model"),
        {
            SERVER: "each conversation of the server's index is reset (ChatCore.forget_server)",
            PERSON: "theirs whole, their turns out of shared ones (bot.state.forget)",
            THREAD: "ChatCore.reset (its model choice, a setting of the conversation, stays until it expires)",
            EXPIRY: HISTORY_TTL,
        },
        HISTORY_TTL,
        server_keys=("chat:{slack:{id}:*}:*",),
    ),
    Kind(
        "conversation lock",
        (Owner.THREAD,),
        ("chat:{*}:lock", "chat:{*}:lock:fence"),
        {EXPIRY: "seconds while a turn holds the conversation; its fence an hour"},
        "an hour",
        kept="ids only, held while a turn writes",
    ),
    Kind(
        "server's conversations",
        (Owner.SERVER,),
        ("server-conversations:{*}",),
        {SERVER: "taken by ChatCore.forget_server", EXPIRY: HISTORY_TTL},
        HISTORY_TTL,
        server_keys=("server-conversations:{{platform}:server:{id}}",),
        kept="ids only: a conversation reset or forgotten is found empty when the server goes",
    ),
    Kind(
        "person's conversations",
        (Owner.PERSON,),
        ("person-conversations:{*}",),
        {PERSON: "bot.state.forget", EXPIRY: HISTORY_TTL},
        HISTORY_TTL,
        server_keys=("person-conversations:{slack:{id}:*}",),
        kept="ids only: a conversation reset, or its server left, is found empty and leaves with the list's expiry "
        "(a Slack workspace's people's lists are swept with it; a Discord person's spans servers)",
    ),
    Kind(
        "place settings",
        (Owner.SERVER,),
        ("persona:{*}", "place-*:{*}", "server-places:{*}"),
        {SERVER: "Personas.forget_server"},
        "until changed or cleared",
        expires=False,
        server_keys=(
            "persona:{{platform}:*:{id}}",
            "persona:{{platform}:*:{id}:*}",
            "place-*:{{platform}:*:{id}}",
            "place-*:{{platform}:*:{id}:*}",
            "server-places:{{platform}:server:{id}}",
        ),
        kept="a place's settings are not a person's; they last until changed",
    ),
    Kind(
        "message link",
        (Owner.THREAD,),
        ("alias:{*}",),
        {SERVER: "Slack's: swept with the workspace", EXPIRY: HISTORY_TTL},
        HISTORY_TTL,
        server_keys=("alias:{slack:thread:{id}:*}", "alias:{slack:assistant-context:{id}:*}"),
        kept="ids only (a platform message → its conversation), useless once the conversation is gone",
    ),
    Kind(
        "handled events",
        (Owner.DEPLOYMENT,),
        ("claim:{*}",),
        {EXPIRY: "an hour; a refusal's notice a day; a left-out notice HISTORY_TTL_SECONDS"},
        "a day at most",
        kept="ids only: which events were handled, so that each is answered once",
    ),
    Kind(
        "question counters",
        (Owner.PERSON,),
        ("quota:{*}",),
        {PERSON: "TurnQuota.forget", SERVER: "Slack's: swept with the workspace", EXPIRY: A_MINUTE},
        A_MINUTE,
        server_keys=("quota:{user:slack:{id}:*}",),
        kept="counts of a minute's turns, by person or channel",
    ),
    Kind(
        "tool confirmations",
        (Owner.THREAD,),
        ("toolask:*",),
        {EXPIRY: "the question's time limit, plus an hour"},
        "an hour",
        kept="asked and settled while the answer is written",
    ),
    Kind(
        "reply records",
        (Owner.DEPLOYMENT,),
        ("replies", "process:{*}"),
        {EXPIRY: "until the reply's final text is shown; a process's lease, seconds"},
        "until the reply is finished",
        expires=False,
        kept="each record goes once its reply is finished, whoever's it is",
    ),
    Kind(
        "rate limits",
        (Owner.DEPLOYMENT,),
        ("rate:{*}*",),
        {EXPIRY: "seconds"},
        "seconds",
        kept="counts of requests to the platforms",
    ),
    Kind(
        "answers",
        (Owner.THREAD, Owner.SERVER, Owner.PERSON),
        (
            "feedback:answer:{*}",
            "feedback:answer:{*}:votes",
            "feedback:scope:{*}:answers",
            "feedback:thread:{*}:answers",
        ),
        {
            SERVER: "Feedback.forget_scope",
            PERSON: "their votes taken back, the answers they asked deleted (Feedback.forget_person)",
            THREAD: "Feedback.forget_thread (Forgetting.on_reset)",
            EXPIRY: HISTORY_TTL,
        },
        HISTORY_TTL,
        server_keys=(
            "feedback:answer:{slack:{id}:*}*",
            "feedback:scope:{{platform}:{id}}:answers",
            "feedback:thread:{slack:{id}:*}:answers",
        ),
    ),
    Kind(
        "hand-offs to helpers",
        (Owner.SERVER, Owner.THREAD),
        ("helpdesk:{*}:handed:*", "helpdesk:{*}:helped:*", "helpdesk:{*}:pings:*"),
        {
            SERVER: "swept (a Slack channel's; a Discord channel's id doesn't name its server: they expire)",
            EXPIRY: HISTORY_TTL + "; an hour's mention count two hours",
        },
        HISTORY_TTL,
        server_keys=("helpdesk:{{id}:*}:*",),
        kept="ids only (a channel, a thread, an hour), nothing of a person's; /reset leaves a thread to its helpers",
    ),
    Kind(
        "help desk figures",
        (Owner.SERVER,),
        ("helpdesk:desk:*",),
        {
            SERVER: "swept with the server",
            EXPIRY: "31 days after the last write; a thread asked 31 days ago at reading",
        },
        "31 days",
        server_keys=("helpdesk:desk:{platform}:{id}",),
        kept="ids and times only (a thread, its channel, when it was asked, answered, handed off, solved)",
    ),
    Kind(
        "knowledge gaps",
        (Owner.SERVER, Owner.PERSON),
        ("feedback:gaps:{*}", "feedback:gaps:{*}:entries", "feedback:person:{*}"),
        {
            SERVER: "Feedback.forget_scope",
            PERSON: "Feedback.forget_person",
            THREAD: "the conversation's answers' entries (no source, 👎) with them (Feedback.forget_thread)",
            EXPIRY: "30 days after the last entry",
        },
        "30 days",
        server_keys=("feedback:gaps:{{platform}:{id}}*", "feedback:person:{slack:{id}:*}"),
    ),
    Kind(
        "usage",
        (Owner.SERVER, Owner.PERSON),
        ("usage:person:{*}:*", "usage:scope:{*}:*"),
        {
            SERVER: "UsageLedger.forget_scope",
            PERSON: "UsageLedger.forget_person",
            EXPIRY: "USAGE_RETENTION_DAYS after the day",
        },
        "USAGE_RETENTION_DAYS",
        server_keys=("usage:scope:{{platform}:server:{id}}:*", "usage:person:{slack:{id}:*}:*"),
        kept="a conversation's tokens are counted by day, not by conversation",
    ),
    Kind(
        "budget counters",
        (Owner.SERVER, Owner.PERSON),
        ("usage:budget:{*}",),
        {SERVER: "swept with the server", EXPIRY: "the budget's day or month"},
        "a month",
        server_keys=(
            "usage:budget:{place:{platform}:*:{id}:*}",
            "usage:budget:{person:slack:{id}:*}",
        ),
        kept="a person's daily budget counter stays until the day ends: forgetting doesn't reset a budget",
    ),
    *KNOWLEDGE_KINDS,
    Kind(
        "Slack installs",
        (Owner.SERVER,),
        ("slack:install:{*}*", "slack:oauth-state:{*}", "slack:token-refresh:{*}"),
        {SERVER: "RedisInstallationStore.async_delete_all, at once", EXPIRY: "an OAuth state: minutes"},
        "until uninstalled",
        expires=False,
        server_keys=("slack:install:{*:{id}}*", "slack:token-refresh:{*:{id}}"),
        kept="the workspace's tokens, not a person's (a person's own install goes when they revoke it)",
    ),
    Kind(
        "web conversations",
        (Owner.PERSON,),
        ("web:{*}:conversations",),
        {PERSON: "the browser's Forget me", THREAD: "deleting a conversation on the page", EXPIRY: HISTORY_TTL},
        HISTORY_TTL,
        kept="the web chat has no server",
    ),
)


def server_patterns(platform: str, server_id: str) -> list[str]:
    """The globs of one server's or workspace's keys, of every kind."""
    fields = {"{platform}": platform, "{id}": server_id}
    patterns = []
    for kind in KINDS:
        for template in kind.server_keys:
            pattern = template
            for field, value in fields.items():
                pattern = pattern.replace(field, value)
            patterns.append(pattern)
    return patterns
