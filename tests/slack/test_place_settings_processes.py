"""A channel's settings hold for every process of the bot: two `python -m bot slack` processes on one workspace
(Socket Mode); the persona and the model set through one process, the next question answered by the
other (the fake delivers to the newest connection)."""

from __future__ import annotations

import uuid

import pytest

from fakes.harness.processes import delete_keys
from fakes.harness.slack_world import SlackHarness, finished, started
from fakes.model_server import FakeModelServer, Script
from fakes.slack import FakeSlack

ALICE = FakeSlack.DEFAULT_USER
ADMIN = "U0ADMIN01"
GENERAL = FakeSlack.DEFAULT_CHANNEL
OTHER_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"


async def command(harness: SlackHarness, name: str, text: str, user: str) -> str:
    envelope = await harness.fake.send_slash_command(name, text, user, GENERAL)
    await harness.fake.wait_ack(envelope)
    return str((harness.fake.ack_payloads[envelope] or {}).get("text", ""))


@pytest.mark.timeout(180)
async def test_settings_made_through_one_process_answer_in_the_other(tmp_path: object) -> None:
    prefix = f"test:slack-settings-processes:{uuid.uuid4().hex[:12]}:"
    fake = FakeSlack()
    fake.add_user(ADMIN, "admin").is_admin = True
    async with FakeModelServer(Script(text="Ahoy.")) as model:
        harness = await started(
            SlackHarness(fake, model.base_url, prefix, streaming="off", extra_env={"MODELS": OTHER_MODEL})
        )
        try:
            [first] = harness.bots
            said = await command(harness, "/persona", "You are a pirate answering {user}.", ADMIN)
            assert said.startswith("Done: this channel's persona is set.")
            said = await command(harness, "/model", OTHER_MODEL, ADMIN)
            assert said.startswith("New conversations in this channel will answer with *Qwen2.5-VL-7B-Instruct*.")
            second = await harness.start_bot()  # the newest connection: it gets the next events

            event, _ = await harness.mention(GENERAL, ALICE, "p-two who are you?")
            await harness.wait_turn(GENERAL, str(event["ts"]), timeout=30)
            [request] = [r for r in model.requests if "p-two" in (r.last_user_content() or "")]
            assert request.body["messages"][0]["content"].startswith("You are a pirate answering ")
            assert request.model == OTHER_MODEL
            assert second.logs("turn_finished") and not first.logs("turn_finished")
        except BaseException:
            print(harness.report())
            raise
        finally:
            await finished(harness)
            delete_keys(prefix)
