"""Who reads what knowledge brings, on Slack, through the real bot process, the fake Slack, an embedded PostgreSQL and
the embedded embeddings: a knowledge channel made private stops reaching those not in it within a second or two (and
made public again, reaches everyone), a private channel's passage never reaches a public thread nor what the thread
keeps for later askers, and an admin not in a private channel finds neither its questions in `/knowledge gaps` nor
its lines in `/knowledge list`."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
import pytest_asyncio
import yaml

from bot.knowledge.citing import NOT_KEPT
from bot.knowledge.embedded import EmbeddedDatabase, start_embedded, stop_embedded
from fakes.citing_model import citing_responder
from fakes.harness.processes import ROOT, delete_keys
from fakes.harness.server_folders import remove, server_folder
from fakes.harness.slack_world import SlackHarness, eventually, finished, started
from fakes.model_server import DEFAULT_MODEL, FakeModelServer, Script, ToolCallScript
from fakes.slack import FakeSlack

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE = FakeSlack.DEFAULT_USER  # an admin, in every channel
DAVE = "U0DAVE001"  # an admin too, in no private channel
BOB = "U0BOB0001"
CAROL = "U0CAROL01"
GENERAL = FakeSlack.DEFAULT_CHANNEL
ADD = "add_to_knowledge"  # the message shortcut's callback id
SEARCHED = "merger codename"  # a question with these words makes the model search the knowledge first
UNCITED = "zebra"  # a question with this word gets an answer citing nothing: a gap


@pytest.fixture(scope="module")
def database() -> Iterator[EmbeddedDatabase]:
    folder = server_folder("knowledge-slack-readers-")
    database = start_embedded(folder / "pg")
    yield database
    stop_embedded(folder / "pg")
    remove(folder)


def searching_model(body: dict[str, Any]) -> Script | None:
    messages = body.get("messages") or [{}]
    last = messages[-1]
    if body.get("tools") and last.get("role") == "user" and SEARCHED in str(last.get("content") or ""):
        return Script(tool_calls=(ToolCallScript("search_knowledge", json.dumps({"query": SEARCHED})),))
    users = [m for m in messages if m.get("role") == "user"]
    if users and UNCITED in str(users[-1].get("content") or ""):
        return Script(text="I don't know much about zebras.")
    return citing_responder(body)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text="ok")) as server:
        server.responder = searching_model
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def harness(model: FakeModelServer, database: EmbeddedDatabase) -> AsyncIterator[SlackHarness]:
    prefix = f"test:slack-readers:{uuid.uuid4().hex[:12]}:"
    manifest = yaml.safe_load((ROOT / "config" / "slack-app-manifest.yml").read_text())
    fake = FakeSlack(scopes=frozenset(manifest["oauth_config"]["scopes"]["bot"]))
    for user, name in ((BOB, "bob"), (CAROL, "carol"), (DAVE, "dave")):
        fake.add_user(user, name)
    env = {
        "KNOWLEDGE_DATABASE_URL": database.url,
        "SLACK_ADMIN_USER_IDS": f"{ALICE},{DAVE}",
        "TOOL_MODELS": DEFAULT_MODEL,
        "USER_TURNS_PER_MINUTE": "100",
    }
    harness = SlackHarness(fake, model.base_url, prefix, extra_env=env)
    yield await started(harness)
    try:
        await finished(harness)
    finally:
        delete_keys(prefix)


async def command(harness: SlackHarness, user: str, channel: str, text: str) -> str:
    fake, before = harness.fake, len(harness.fake.responses)
    await fake.send_slash_command("/knowledge", text, user, channel)
    await eventually(lambda: len(fake.responses) > before, 20, "the answer to /knowledge")
    return fake.responses[before].text


async def knowledge_channel(harness: SlackHarness, channel: str, name: str, members: list[str], said: str) -> None:
    """`channel`, public with `members`, made knowledge, holding CAROL's message `said`."""
    harness.fake.add_channel(channel, name, members=members)
    assert (await command(harness, ALICE, channel, "channel on")).startswith("Done: this channel is knowledge now")
    await harness.say(channel, CAROL, said)
    await until_stored(harness, said)


async def until_stored(harness: SlackHarness, text: str) -> None:
    url = harness.extra_env["KNOWLEDGE_DATABASE_URL"]
    for _ in range(100):
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            made = await (await conn.execute("SELECT to_regclass('knowledge_passages')")).fetchone()
            if made is not None and made[0] is not None:
                found = await conn.execute("SELECT 1 FROM knowledge_passages WHERE text LIKE %s", (f"%{text}%",))
                if await found.fetchone():
                    return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never knowledge: {text}")


async def prompt_in_dm(harness: SlackHarness, model: FakeModelServer, user: str, question: str) -> str:
    """Everything the model was sent for `question`, asked in a DM with the bot: all the asker may read."""
    dm = harness.new_dm(user)
    await harness.say(dm, user, question)
    await harness.wait_turn(dm, None)
    return json.dumps([r.body for r in model.requests if question in (r.last_user_content() or "")])


async def test_a_channel_made_private_stops_reaching_those_not_in_it(
    harness: SlackHarness, model: FakeModelServer
) -> None:
    harness.new_workspace()
    plans = "C0PLANS01"
    await knowledge_channel(harness, plans, "plans", [ALICE, CAROL], "The merger codename is Bluebird.")
    assert "Bluebird" in await prompt_in_dm(harness, model, BOB, "What is the merger codename, please?")

    await harness.fake.send_event(harness.fake.converted_event(plans, ALICE, private=True))
    await asyncio.sleep(1.5)
    assert "Bluebird" not in await prompt_in_dm(harness, model, BOB, "What is the merger codename now?")
    assert "Bluebird" in await prompt_in_dm(harness, model, CAROL, "Tell me the merger codename.")

    await harness.fake.send_event(harness.fake.converted_event(plans, ALICE, private=False))
    await asyncio.sleep(1.5)
    assert "Bluebird" in await prompt_in_dm(harness, model, BOB, "And the merger codename today?")


async def test_a_knowledge_channel_renamed_is_listed_under_its_new_name_and_archived_stays_readable(
    harness: SlackHarness, model: FakeModelServer
) -> None:
    fake = harness.fake
    harness.new_workspace()
    ideas = "G0IDEAS01"
    fake.add_channel(ideas, "ideas", is_private=True, members=[ALICE, CAROL])
    assert (await command(harness, ALICE, ideas, "channel on")).startswith("Done")
    await harness.say(ideas, CAROL, "The offsite venue is the old lighthouse.")
    await until_stored(harness, "old lighthouse")

    await fake.send_event(fake.renamed_event(ideas, "roadmap"))
    await fake.send_event(fake.archived_event(ideas, ALICE))
    await asyncio.sleep(2.5)  # each process's list of channels, cached for 2 s
    listed = await command(harness, ALICE, GENERAL, "list")
    assert "#roadmap" in listed and "#ideas" not in listed
    assert "old lighthouse" in await prompt_in_dm(harness, model, CAROL, "Where is the offsite venue?")
    assert "old lighthouse" not in await prompt_in_dm(harness, model, BOB, "Where is the offsite venue, then?")


async def test_a_private_passage_never_reaches_a_public_thread(harness: SlackHarness, model: FakeModelServer) -> None:
    fake = harness.fake
    harness.new_workspace()
    vault = "G0VAULT01"
    fake.add_channel(vault, "vault", is_private=True, members=[ALICE, CAROL])
    assert (await command(harness, ALICE, vault, "channel on")).startswith("Done")
    await harness.say(vault, CAROL, "The merger codename is Kestrel.")
    await until_stored(harness, "Kestrel")

    question = f"What is the {SEARCHED}?"
    event, _ = await harness.mention(GENERAL, CAROL, question)
    await harness.wait_turn(GENERAL, event["ts"])
    follow_up = f"Could you repeat the {SEARCHED}?"
    await harness.mention(GENERAL, BOB, follow_up, thread_ts=event["ts"])
    await harness.wait_turn(GENERAL, event["ts"], count=2)

    shown = "\n".join(reply.visible_text for reply in harness.replies(GENERAL, event["ts"]))
    assert "Kestrel" not in shown and vault not in shown
    later = [r for r in model.requests if "Could you repeat" in (r.last_user_content() or "")]
    assert later and all("Kestrel" not in json.dumps(r.body) for r in later)
    kept = [m["content"] for m in later[0].body["messages"] if m.get("role") == "tool"]
    assert kept == [NOT_KEPT]


async def test_an_admin_not_in_a_private_channel_gets_neither_its_gaps_nor_its_listing(
    harness: SlackHarness,
) -> None:
    fake = harness.fake
    harness.new_workspace()
    secret = "G0SECRET9"
    fake.add_channel(secret, "secret", is_private=True, members=[ALICE, CAROL])
    assert (await command(harness, ALICE, secret, "channel on")).startswith("Done")
    for channel, user, question in (
        (secret, CAROL, f"Do the {UNCITED}s of the secret room sleep standing?"),
        (GENERAL, BOB, f"Do {UNCITED}s in general have stripes?"),
    ):
        event, _ = await harness.mention(channel, user, question)
        await harness.wait_turn(channel, event["ts"])
    await asyncio.sleep(0.5)  # the answers' records

    everything = await command(harness, ALICE, GENERAL, "gaps")
    limited = await command(harness, DAVE, GENERAL, "gaps")
    assert "secret room" in everything and "in general" in everything
    assert "secret room" not in limited and "in general" in limited
    assert secret in await command(harness, ALICE, GENERAL, "list")
    assert secret not in await command(harness, DAVE, GENERAL, "list")

    # A file added from a message of the private channel is listed only to those who may read it too.
    plan = b"The secret room's zebra plan: stripes are repainted every spring by the night shift."
    message = fake.seed_message(secret, "the plan", user=CAROL, files=[("zebra-plan.txt", "text/plain", plan)])
    before = len(fake.ephemerals)
    await fake.send_message_shortcut(ADD, ALICE, secret, message.ts)
    await eventually(lambda: len(fake.ephemerals) > before, 20, "the shortcut's answer")
    assert "zebra-plan.txt" in fake.ephemerals[before].text, fake.ephemerals[before].text
    assert "zebra-plan.txt" in await command(harness, ALICE, GENERAL, "list")
    assert "zebra-plan.txt" not in await command(harness, DAVE, GENERAL, "list")
