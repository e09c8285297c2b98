"""The kinds of record the knowledge keeps (bot.keeping.kinds lists every kind): which channels are knowledge and
where their readings stand, the messages added by hand, the solved help threads, and the passages themselves."""

from __future__ import annotations

from bot.keeping.kind import Kind, Owner, Way

SERVER, PERSON, EXPIRY = Way.SERVER, Way.PERSON, Way.EXPIRY

KNOWLEDGE_KINDS: tuple[Kind, ...] = (
    Kind(
        "knowledge channels",
        (Owner.SERVER,),
        ("knowledge:channels:*", "knowledge:answered:*", "knowledge:scopes:*", "knowledge:backfills"),
        {SERVER: "KnowledgeChannels.forget_scope (the channels and their history readings)"},
        "until switched off",
        expires=False,
        server_keys=("knowledge:channels:{platform}:{id}", "knowledge:answered:{platform}:{id}"),
        kept="a channel is knowledge until switched off; its messages follow its author's /forget-me",
    ),
    Kind(
        "knowledge history readings",
        (Owner.SERVER,),
        ("knowledge:*:history:*",),
        {EXPIRY: "seconds to a minute: a reading's lock and pace"},
        "a minute",
        server_keys=("knowledge:{platform}:history:*:{id}",),
        kept="ids only: a reading's lock and its pace, swept with the server when no page is being read",
    ),
    Kind(
        "knowledge live changes",
        (Owner.SERVER,),
        ("knowledge:*:live:*",),
        {SERVER: "swept with the server", EXPIRY: "5 minutes"},
        "5 minutes",
        server_keys=("knowledge:{platform}:live:{id}:*",),
        kept="ids only",
    ),
    Kind(
        "knowledge private channels' members",
        (Owner.SERVER,),
        ("knowledge:slack:private:*", "knowledge:slack:members:*"),
        {SERVER: "PrivateMembers.forget_team"},
        "until the channel is switched off",
        expires=False,
        server_keys=("knowledge:slack:private:{id}", "knowledge:slack:members:{id}:*"),
        kept="who may read a private channel's knowledge, kept as long as it is knowledge",
    ),
    Kind(
        "knowledge added messages",
        (Owner.SERVER,),
        ("knowledge:*:added:*",),
        {SERVER: "swept with the server"},
        "until the message is deleted or the bot leaves",
        expires=False,
        server_keys=("knowledge:{platform}:added:{platform}:{id}",),
        kept="ids only (a message and the sources it became), until the message is deleted: its passages follow "
        "their author's /forget-me",
    ),
    Kind(
        "solved help threads",
        (Owner.SERVER, Owner.PERSON),
        ("knowledge:*:solved:*",),
        {
            SERVER: "swept with the server",
            PERSON: "the threads they asked or answered unmarked (Solving.forget_person)",
        },
        "until the thread is unmarked, its answer deleted or the bot leaves",
        expires=False,
        server_keys=("knowledge:{platform}:solved:{platform}:{id}",),
        kept="a solved thread's question and accepted answer, as the knowledge passage it became",
    ),
    Kind(
        "knowledge web sources",
        (Owner.SERVER, Owner.DEPLOYMENT),
        ("knowledge:web:sources:*", "knowledge:web:status:*", "knowledge:web:read:*", "knowledge:web:lease:*"),
        {SERVER: "WebSources.forget_scope, and swept with the server"},
        "until removed",
        expires=False,
        server_keys=(
            "knowledge:web:sources:{platform}:{id}",
            "knowledge:web:status:{platform}:{id}:*",
            "knowledge:web:read:{platform}:{id}:*",
            "knowledge:web:lease:{platform}:{id}:*",
        ),
        kept="a docs site's or repository's address and what was read of it (ETags, hashes, times): nobody's own "
        "words, so /forget-me doesn't apply (the pages' passages are the site's)",
    ),
    Kind(
        "knowledge web index",
        (Owner.DEPLOYMENT,),
        ("knowledge:web:scopes", "knowledge:web:wakes"),
        {SERVER: "WebSources.forget_scope takes the server out"},
        "while any web source is knowledge",
        expires=False,
        kept="the servers and workspaces that have web sources (one leaving takes itself out), and a counter",
    ),
    Kind(
        "knowledge passages",
        (Owner.SERVER, Owner.PERSON),
        (),
        {
            SERVER: "Knowledge.forget_scope",
            PERSON: "Knowledge.forget_author (everywhere on Discord, the workspace on Slack)",
        },
        "until removed, deleted or edited",
        expires=False,
        table="knowledge_passages",
        kept="knowledge lasts until removed",
    ),
)
