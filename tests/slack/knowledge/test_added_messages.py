"""Messages made knowledge with the "Add to knowledge" shortcut follow their author's edits and deletes, through the
real bot processes, the fake Slack and a real PostgreSQL (embedded, given as KNOWLEDGE_DATABASE_URL): in a channel
that is not a knowledge channel, an edit (message_changed) re-reads the message's text and a deletion
(message_deleted) removes it with its file within two seconds, in whichever process gets the event; once its
author's /forget-me took it out, an edit doesn't bring it back; a channel the app isn't in (whose events Slack
doesn't send it) is refused."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
import pytest_asyncio

from fakes.harness.processes import delete_keys
from fakes.harness.server_folders import embedded_database_url
from fakes.harness.slack_world import SlackHarness, eventually, finished, started
from fakes.model_server import FakeModelServer, Script
from fakes.slack import FakeSlack

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

ALICE = FakeSlack.DEFAULT_USER  # an admin (SLACK_ADMIN_USER_IDS)
BOB = "U0BOB0001"
LOUNGE = "C0LOUNGE1"  # never switched on: not a knowledge channel
ATTIC = "C0ATTIC01"
ADD = "add_to_knowledge"
FOLLOWED_SECONDS = 2.0


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with embedded_database_url("added-slack-") as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def harness(database_url: str) -> AsyncIterator[SlackHarness]:
    prefix = f"test:slack-added:{uuid.uuid4().hex[:12]}:"
    fake = FakeSlack()
    fake.add_user(BOB, "bob")
    fake.add_channel(LOUNGE, "lounge")
    env = {"KNOWLEDGE_DATABASE_URL": database_url, "SLACK_ADMIN_USER_IDS": ALICE}
    async with FakeModelServer(Script(text="ok")) as model:
        harness = SlackHarness(fake, model.base_url, prefix, extra_env=env)
        try:
            yield await started(harness)
        finally:
            await finished(harness)
            delete_keys(prefix)


def passages(database_url: str, scope: str) -> dict[str, str]:
    """The scope's passages: key → text (none before the bot has made its table)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('knowledge_passages')").fetchone() == (None,):
            return {}
        found = conn.execute("SELECT key, text FROM knowledge_passages WHERE scope = %s", (scope,)).fetchall()
        return {str(key): str(text) for key, text in found}


async def until(database_url: str, scope: str, check: Any, what: str, within: float = FOLLOWED_SECONDS) -> None:
    started_at = time.monotonic()
    while not check(await asyncio.to_thread(passages, database_url, scope)):
        assert time.monotonic() - started_at < within, f"not within {within} s: {what}"
        await asyncio.sleep(0.05)


async def test_an_added_message_follows_its_edit_and_its_delete_in_any_process(
    harness: SlackHarness, database_url: str
) -> None:
    fake = harness.fake
    scope = f"slack:{harness.new_workspace()}"
    guide = b"Visitors park on level minus two, bays 40 to 60."
    message = fake.seed_message(
        LOUNGE, "The office closes at 18:00 on Fridays.", user=BOB, files=[("parking.txt", "text/plain", guide)]
    )
    before = len(fake.ephemerals)
    await fake.send_message_shortcut(ADD, ALICE, LOUNGE, message.ts)
    await eventually(lambda: len(fake.ephemerals) > before, 20, "the shortcut's answer")
    assert fake.ephemerals[before].text == "Added to this workspace's knowledge: the message, parking.txt."
    text = f"message:{LOUNGE}:{message.ts}"
    await until(database_url, scope, lambda found: text in found and len(found) == 2, "the message and its file")

    await fake.send_event(fake.message_changed_event(LOUNGE, message.ts, "The office closes at 16:00 on Fridays."))
    await until(database_url, scope, lambda found: "16:00" in found.get(text, ""), "the edit re-read")

    before = len(fake.responses)
    await fake.send_slash_command("/forget-me", "", BOB, LOUNGE)
    await eventually(lambda: len(fake.responses) > before, 20, "the answer to /forget-me")
    assert "1 of your messages from this workspace's knowledge" in fake.responses[before].text
    await fake.send_event(fake.message_changed_event(LOUNGE, message.ts, "The office closes at 14:00 on Fridays."))
    # A mention after it in the same channel, answered: the edit reached the bot before it.
    mention, _ = await harness.mention(LOUNGE, BOB, "Are you there?")
    await harness.wait_turn(LOUNGE, mention["ts"])
    await asyncio.sleep(1.0)
    assert text not in await asyncio.to_thread(
        passages, database_url, scope
    )  # forgotten: an edit doesn't bring it back

    fake.add_channel(ATTIC, "attic", bot_member=False)  # Slack sends no message event of a channel the app isn't in
    elsewhere = fake.seed_message(ATTIC, "The attic key is under the mat.", user=BOB)
    before = len(fake.ephemerals)
    await fake.send_message_shortcut(ADD, ALICE, ATTIC, elsewhere.ts)
    await eventually(lambda: len(fake.ephemerals) > before, 20, "the shortcut's refusal")
    assert fake.ephemerals[before].text.startswith("I'm not in this channel, so I wouldn't see this message edited")

    first = harness.bots[0]
    await harness.start_bot()  # the process that added it is gone: the other one follows the deletion
    await harness.stop_bot(first)
    await fake.send_event(fake.message_deleted_event(LOUNGE, message.ts))
    removed = "the message and its file removed"  # the new process starts its knowledge for it first
    await until(database_url, scope, lambda found: found == {}, removed, within=FOLLOWED_SECONDS + 3)
