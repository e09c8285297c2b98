"""Every kind of record the bot keeps (bot.keeping.kinds) against every way out, through the real bot process, the
fake Slack, Redis and a real PostgreSQL (embedded, as KNOWLEDGE_DATABASE_URL).

For each way out, a fresh workspace is filled the way people fill it (a knowledge channel with its history reading,
a private one with its members, a message added with the shortcut, a question answered, a 👎 with its reason, a
channel setting, usage under budgets, a DM), then: the app is uninstalled; Bob runs /forget-me; Bob resets his DM.
Redis is then read with SCAN, and every key naming the workspace (Bob, the DM) in its name or its value is put to
its kind: a kind that way out removes must have none left; a kind it doesn't must say why, and expire. Before any
way out, every key of a kind that expires has a TTL, and every key the bot wrote belongs to a listed kind."""

from __future__ import annotations

import asyncio
import fnmatch
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from bot.keeping.kinds import KINDS, Kind, Way
from fakes.docs_site import FakeDocsSite
from fakes.harness.processes import REDIS_URL, delete_keys
from fakes.harness.server_folders import embedded_database_url
from fakes.harness.slack_world import SlackHarness, eventually, finished, started
from fakes.model_server import FakeModelServer, Script
from fakes.slack import FakeSlack

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(180)]

ALICE = FakeSlack.DEFAULT_USER  # an admin (SLACK_ADMIN_USER_IDS)
GENERAL = FakeSlack.DEFAULT_CHANNEL
BOB = "U0BOB0001"
CAROL = "U0CAROL01"
LLAMAS, SECRET, LOUNGE, OFFICE = "C0LLAMAS1", "G0SECRET1", "C0LOUNGE1", "C0OFFICE1"
WAYS = (Way.SERVER, Way.PERSON, Way.THREAD)
DAY = 86_400
HISTORY_TTL = 7 * DAY  # HISTORY_TTL_SECONDS's default
# The longest each kind that expires lasts by default, as docs/operators.md's "What the bot keeps" says (seconds).
LONGEST = {
    "conversation": HISTORY_TTL,
    "conversation lock": 3_600,
    "server's conversations": HISTORY_TTL,
    "person's conversations": HISTORY_TTL,
    "message link": HISTORY_TTL,
    "handled events": HISTORY_TTL,  # an hour; a refusal's notice a day; a left-out knowledge notice as the history
    "question counters": 60,
    "tool confirmations": 2 * 3_600,
    "rate limits": 3_600,
    "answers": HISTORY_TTL,
    "hand-offs to helpers": HISTORY_TTL,
    "knowledge gaps": 30 * DAY,
    "help desk figures": 31 * DAY,
    "usage": 92 * DAY,  # USAGE_RETENTION_DAYS (90) after the day
    "budget counters": 32 * DAY,  # until the budget's month ends
    "knowledge history readings": 3_600,
    "knowledge live changes": 300,
    "web conversations": HISTORY_TTL,
}
SETTLE_SECONDS = 10.0  # the review looked 10 s after app_uninstalled
# Kinds a Slack workspace doesn't write here (the web chat's, a tool's question, a workspace's install: the bot runs
# with one workspace's token).
NOT_ON_SLACK = {"web conversations", "tool confirmations", "Slack installs"}


@dataclass
class Filled:
    """A workspace filled with records, and what Bob asked in his DM."""

    team: str
    dm: str
    bob_question: str
    dm_question: str


@dataclass
class Left:
    """What Redis and the database held of a target after a way out (or before any: `way` None)."""

    way: Way | None
    keys: dict[str, tuple[str, int]] = field(default_factory=dict)  # key (without prefix) → (its kind, its TTL in ms)
    passages: int = 0  # the target's rows in knowledge_passages


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with embedded_database_url("ways-out-") as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site() -> AsyncIterator[FakeDocsSite]:
    site = FakeDocsSite(hostile=False, crawl_delay=None)
    await site.start()
    yield site
    await site.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def harness(database_url: str, site: FakeDocsSite) -> AsyncIterator[SlackHarness]:
    prefix = f"test:ways-out:{uuid.uuid4().hex[:12]}:"
    fake = FakeSlack()
    fake.add_user(BOB, "bob")
    fake.add_user(CAROL, "carol")
    for channel, name in ((LLAMAS, "llamas"), (LOUNGE, "lounge"), (OFFICE, "office")):
        fake.add_channel(channel, name)
    fake.add_channel(SECRET, "secret", is_private=True, members=[ALICE, BOB])
    env = {
        "KNOWLEDGE_DATABASE_URL": database_url,
        "SLACK_ADMIN_USER_IDS": ALICE,
        "USER_TURNS_PER_MINUTE": "100",
        "USER_DAILY_BUDGET": "10000000",
        "SERVER_MONTHLY_BUDGET": "100000000",
        "KNOWLEDGE_ALLOW_PRIVATE_URLS": site.allowance,
        "KNOWLEDGE_REQUEST_INTERVAL_SECONDS": "0",
    }
    async with FakeModelServer(Script(text="Llamas hum when they are curious.")) as model:
        harness = SlackHarness(fake, model.base_url, prefix, extra_env=env)
        try:
            yield await started(harness)
        finally:
            await finished(harness)
            delete_keys(prefix)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def redis() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(REDIS_URL)
    yield client
    await client.aclose()


# -- filling a workspace ------------------------------------------------------------------------------


async def command(harness: SlackHarness, name: str, text: str, user: str, channel: str) -> str:
    """A command answered through its response_url."""
    fake, before = harness.fake, len(harness.fake.responses)
    await fake.send_slash_command(name, text, user, channel)
    await eventually(lambda: len(fake.responses) > before, 20, f"the answer to {name} {text}")
    return fake.responses[before].text


async def acked(harness: SlackHarness, name: str, text: str, user: str, channel: str) -> str:
    """A command answered in its acknowledgement."""
    envelope = await harness.fake.send_slash_command(name, text, user, channel)
    await harness.fake.wait_ack(envelope)
    return str((harness.fake.ack_payloads[envelope] or {}).get("text", ""))


async def fill(harness: SlackHarness, database_url: str, site: FakeDocsSite) -> Filled:
    fake = harness.fake
    team = harness.new_workspace()
    marker = uuid.uuid4().hex[:8]
    assert (await command(harness, "/knowledge", "channel on", ALICE, LLAMAS)).startswith("Done")
    assert (await command(harness, "/knowledge", "channel on", ALICE, SECRET)).startswith("Done")
    assert (await command(harness, "/knowledge", f"add {site.docs_url}", ALICE, GENERAL)).startswith("Added")
    await harness.say(LLAMAS, BOB, f"Bob's llama fact {marker}: they hum.")
    await harness.say(SECRET, BOB, f"Bob's secret fact {marker}: the vault code is 4471.")
    added = fake.seed_message(LOUNGE, f"Carol's note {marker}: the lounge closes at nine.", user=CAROL)
    before = len(fake.ephemerals)
    await fake.send_message_shortcut("add_to_knowledge", ALICE, LOUNGE, added.ts)
    await eventually(lambda: len(fake.ephemerals) > before, 20, "the shortcut's answer")
    assert "Done" in await acked(harness, "/respond", "questions", ALICE, OFFICE)
    # The lounge a help channel with a helper: Bob's 👎 below hands his thread to Carol.
    assert "Done" in await acked(harness, "/respond", "questions", ALICE, LOUNGE)
    assert "Done" in await acked(harness, "/respond", f"helpers <@{CAROL}>", ALICE, LOUNGE)

    bob_question = f"Why do llamas hum, asks Bob {marker}?"
    event, _ = await harness.mention(LOUNGE, BOB, bob_question)
    await harness.wait_turn(LOUNGE, event["ts"], timeout=20)
    [answer] = harness.replies(LOUNGE, event["ts"])
    await asyncio.sleep(0.3)  # the answer is kept for votes a moment after its final text
    opened = len(fake.views_opened)
    await fake.send_block_action(BOB, LOUNGE, answer.ts, "vote_down")
    await eventually(lambda: len(fake.views_opened) > opened, 10, "the form asking why")
    await fake.send_view_submission(BOB, fake.views_opened[opened].view_id, {"reason": f"Too short {marker}"})
    await fake.send_block_action(ALICE, LOUNGE, answer.ts, "vote_up")
    await eventually(lambda: len(harness.replies(LOUNGE, event["ts"])) > 1, 10, "the thread handed to Carol")
    before = len(fake.ephemerals)
    await fake.send_block_action(BOB, LOUNGE, answer.ts, "solved")  # Bob's thread solved, his question knowledge
    await eventually(lambda: any("Marked solved" in e.text for e in fake.ephemerals[before:]), 20, "marked solved")

    dm = harness.new_dm(BOB)
    dm_question = f"Bob asks privately {marker}: do llamas spit?"
    await harness.say(dm, BOB, dm_question)
    await harness.wait_turn(dm, None, timeout=20)
    [dm_answer] = harness.replies(dm)
    await asyncio.sleep(0.3)
    opened = len(fake.views_opened)
    await fake.send_block_action(BOB, dm, dm_answer.ts, "vote_down")
    await eventually(lambda: len(fake.views_opened) > opened, 10, "the form asking why, in the DM")

    await until_passages(database_url, f"slack:{team}", lambda n: n >= 8, "the workspace's passages and pages")
    await asyncio.sleep(0.5)  # votes and gaps written
    return Filled(team, dm, bob_question, dm_question)


# -- reading what is left -------------------------------------------------------------------------------


def kind_of(key: str) -> Kind | None:
    return next((kind for kind in KINDS if any(fnmatch.fnmatchcase(key, glob) for glob in kind.keys)), None)


async def value_text(redis: aioredis.Redis, key: bytes) -> str:
    kind = (await redis.type(key)).decode()
    if kind == "string":
        parts = [await redis.get(key) or b""]
    elif kind == "hash":
        parts = [part for pair in (await redis.hgetall(key)).items() for part in pair]
    elif kind == "set":
        parts = list(await redis.smembers(key))
    elif kind == "zset":
        parts = list(await redis.zrange(key, 0, -1))
    elif kind == "list":
        parts = list(await redis.lrange(key, 0, -1))
    else:
        parts = []
    return "\n".join(part.decode(errors="replace") for part in parts)


async def keys_naming(redis: aioredis.Redis, prefix: str, *needles: tuple[str, ...]) -> dict[str, tuple[str, int]]:
    """The keys under `prefix` naming, in their name or value, a string of each group of `needles`."""
    found: dict[str, tuple[str, int]] = {}
    async for raw in redis.scan_iter(match=f"{prefix}*", count=1000):
        key = raw.decode()[len(prefix) :]
        text = f"{key}\n{await value_text(redis, raw)}"
        if all(any(needle in text for needle in group) for group in needles):
            kind = kind_of(key)
            found[key] = (kind.name if kind else "", int(await redis.pttl(raw)))
    return found


def passages(database_url: str, scope: str, author: str | None = None) -> int:
    """The scope's passages (`author`'s only, if given)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('knowledge_passages')").fetchone() == (None,):
            return 0
        query = "SELECT count(*) FROM knowledge_passages WHERE scope = %s AND author = coalesce(%s, author)"
        row = conn.execute(query, (scope, author)).fetchone()
        return int(row[0]) if row else 0


async def until_passages(database_url: str, scope: str, check: object, what: str, within: float = 20.0) -> None:
    started_at = time.monotonic()
    while not check(await asyncio.to_thread(passages, database_url, scope)):  # type: ignore[operator]
        assert time.monotonic() - started_at < within, f"not within {within} s: {what}"
        await asyncio.sleep(0.1)


def removed_by(way: Way) -> set[str]:
    return {kind.name for kind in KINDS if way in kind.removed}


async def after(
    redis: aioredis.Redis, harness: SlackHarness, database_url: str, way: Way, needles: tuple[tuple[str, ...], ...]
) -> Left:
    """What is left once the way out has settled (or SETTLE_SECONDS have passed)."""
    prefix, gone = harness.key_prefix, removed_by(way)
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        keys = await keys_naming(redis, prefix, *needles)
        if not any(kind in gone for kind, _ in keys.values()) or time.monotonic() > deadline:
            return Left(way, keys)
        await asyncio.sleep(0.2)


# -- the ways out -----------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def before(harness: SlackHarness, redis: aioredis.Redis, database_url: str, site: FakeDocsSite) -> Left:
    """Every key of a filled workspace, before any way out."""
    filled = await fill(harness, database_url, site)
    return Left(None, await keys_naming(redis, harness.key_prefix, (filled.team,)))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def uninstalled(harness: SlackHarness, redis: aioredis.Redis, database_url: str, site: FakeDocsSite) -> Left:
    filled = await fill(harness, database_url, site)
    await harness.fake.send_event({"type": "app_uninstalled", "event_ts": f"{time.time():.6f}"})
    left = await after(redis, harness, database_url, Way.SERVER, ((filled.team,),))
    deadline = time.monotonic() + SETTLE_SECONDS
    while (count := await asyncio.to_thread(passages, database_url, f"slack:{filled.team}")) and (
        time.monotonic() < deadline
    ):
        await asyncio.sleep(0.2)
    left.passages = count
    return left


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def forgotten(harness: SlackHarness, redis: aioredis.Redis, database_url: str, site: FakeDocsSite) -> Left:
    filled = await fill(harness, database_url, site)
    said = await command(harness, "/forget-me", "", BOB, GENERAL)
    assert said.startswith("Deleted")
    bob = (BOB, filled.bob_question, filled.dm_question, "Too short")
    left = await after(redis, harness, database_url, Way.PERSON, ((filled.team,), bob))
    left.passages = await asyncio.to_thread(passages, database_url, f"slack:{filled.team}", BOB)
    return left


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def reset(harness: SlackHarness, redis: aioredis.Redis, database_url: str, site: FakeDocsSite) -> Left:
    filled = await fill(harness, database_url, site)
    said = await acked(harness, "/reset", "", BOB, filled.dm)
    assert said.startswith("Done")
    return await after(redis, harness, database_url, Way.THREAD, ((filled.team,), (filled.dm, filled.dm_question)))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ways(uninstalled: Left, forgotten: Left, reset: Left) -> dict[Way, Left]:
    return {Way.SERVER: uninstalled, Way.PERSON: forgotten, Way.THREAD: reset}


# -- the tests --------------------------------------------------------------------------------------------


async def test_every_key_the_bot_writes_is_of_a_listed_kind(before: Left) -> None:
    unlisted = sorted(key for key, (kind, _) in before.keys.items() if not kind)
    assert unlisted == [], "keys of no kind in bot.keeping.kinds: list their kind there"
    written = {kind for kind, _ in before.keys.values()}
    expected = {kind.name for kind in KINDS if kind.keys} - NOT_ON_SLACK
    # What only happens at moments this scene doesn't make (a lock while a turn writes, a reply being written).
    expected -= {"conversation lock", "reply records", "knowledge history readings", "knowledge live changes"}
    assert expected - written == set(), "kinds this scene should have written"


@pytest.mark.parametrize("kind", [kind for kind in KINDS if kind.expires], ids=lambda kind: kind.name)
async def test_each_kind_that_expires_has_a_time_to_live_within_what_the_readme_says(before: Left, kind: Kind) -> None:
    lasting = sorted(key for key, (name, ttl) in before.keys.items() if name == kind.name and ttl < 0)
    assert lasting == [], f"{kind.name}: {kind.lasts}, but these keys never expire"
    longest = LONGEST[kind.name]  # a kind added to the list says here how long it lasts at most
    too_long = sorted(key for key, (name, ttl) in before.keys.items() if name == kind.name and ttl > longest * 1000)
    assert too_long == [], f"{kind.name}: {kind.lasts}, but these keys last longer"


@pytest.mark.parametrize("way", WAYS, ids=lambda way: way.name.lower())
@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
async def test_each_kind_follows_each_way_out(ways: dict[Way, Left], kind: Kind, way: Way) -> None:
    left = ways[way]
    if kind.table:
        if way in kind.removed:
            assert left.passages == 0, f"{kind.name}: {kind.removed[way]}"
        return
    staying = {key: ttl for key, (name, ttl) in left.keys.items() if name == kind.name}
    if way in kind.removed:
        assert staying == {}, f"{kind.name} should go ({kind.removed[way]}), left: {sorted(staying)}"
    else:
        assert kind.kept, f"{kind.name}: say why {way.value} doesn't remove it"
        assert not kind.expires or all(ttl > 0 for ttl in staying.values()), f"{kind.name} left without expiry"
