"""/usage, /usage server, /budget and the Home tab's usage on Slack, through the real bot process (Socket Mode), the
fake Slack and the fake model server. Every figure expected is summed from what the fake model reported for the
requests a person's questions made (its `usage`: each message's words + 4 in, the tokens it sent out), so counting
that breaks anywhere between the model's stream and the Redis ledger fails here. Each test runs in a workspace of
its own (the fake's team id), so their counts never mix."""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from fakes.harness.processes import ROOT, delete_keys
from fakes.harness.slack_world import SlackHarness, eventually, finished, started
from fakes.model_server import FakeModelServer, RecordedRequest, Script
from fakes.slack import FakeSlack

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

ADMIN = "U0ADMIN01"
ALICE = FakeSlack.DEFAULT_USER
BOB = "U0BOB0001"
GENERAL = FakeSlack.DEFAULT_CHANNEL
BUDGETED = "C0BUDGET1"
DEFAULT = "mistralai/Mistral-7B-Instruct-v0.3"  # MODEL_ID's default
OTHER = "Qwen/Qwen2.5-VL-7B-Instruct"
# USD per million tokens: a token in costs exactly 1,000 micro-dollars, one out 3,000 (no rounding to allow for).
PRICE_IN, PRICE_OUT = 1000, 3000
ANSWER = "Counted and answered."
NOT_ADMIN = "Only workspace admins (or the people this bot names)"


@dataclass
class Counts:
    """What the fake model reported for some requests, per model: [prompt tokens, completion tokens]."""

    by_model: dict[str, list[int]] = field(default_factory=dict)
    answers: int = 0

    def add(self, requests: list[RecordedRequest]) -> Counts:
        for request in requests:
            assert request.usage is not None, "the fake model reported no usage"
            assert request.model is not None
            counts = self.by_model.setdefault(request.model, [0, 0])
            counts[0] += request.usage["prompt_tokens"]
            counts[1] += request.usage["completion_tokens"]
        self.answers += 1
        return self

    @property
    def prompt(self) -> int:
        return sum(prompt for prompt, _ in self.by_model.values())

    @property
    def completion(self) -> int:
        return sum(completion for _, completion in self.by_model.values())

    @property
    def tokens(self) -> int:
        return self.prompt + self.completion

    def cost(self, model: str) -> float:
        prompt, completion = self.by_model[model] if model == DEFAULT else (0, 0)  # OTHER has no price
        return (prompt * PRICE_IN + completion * PRICE_OUT) / 1_000_000

    def model_line(self, model: str) -> str:
        prompt, completion = self.by_model[model]
        priced = f", {dollars(self.cost(model))}" if model == DEFAULT else ""
        return f"• {model}: {prompt + completion:,} tokens ({prompt:,} in, {completion:,} out){priced}"


def dollars(usd: float) -> str:
    return f"${usd:,.2f}" if usd >= 0.01 or usd == 0 else f"${usd:.4f}"


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="slack-usage-"))
    models = {
        "models": [
            {"id": DEFAULT, "price": {"input": PRICE_IN, "output": PRICE_OUT}},
            {"id": OTHER},
        ]
    }
    (folder / "models.yml").write_text(yaml.safe_dump(models), encoding="utf-8")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text=ANSWER)) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def harness(model: FakeModelServer, folder: Path) -> AsyncIterator[SlackHarness]:
    prefix = f"test:slack-usage:{uuid.uuid4().hex[:12]}:"
    fake = FakeSlack()
    fake.add_user(ADMIN, "admin").is_admin = True
    fake.add_user(BOB, "bob")
    fake.add_channel(BUDGETED, "budgeted")
    env = {"MODELS_FILE": str(folder / "models.yml"), "USER_TURNS_PER_MINUTE": "100"}
    harness = SlackHarness(fake, model.base_url, prefix, extra_env=env)
    yield await started(harness)
    try:
        await finished(harness)
    finally:
        delete_keys(prefix)


async def slash(harness: SlackHarness, name: str, user: str, channel: str, text: str = "") -> str:
    """A command acknowledged at once and answered through its response_url, to the person alone."""
    fake, before = harness.fake, len(harness.fake.responses)
    envelope = await fake.send_slash_command(name, text, user, channel)
    await fake.wait_ack(envelope)
    assert not (fake.ack_payloads[envelope] or {}).get("text")
    await eventually(lambda: len(fake.responses) > before, 20, f"the answer to {name} {text}")
    response = fake.responses[before]
    assert response.status == 200 and response.ephemeral and response.user == user
    assert "<!channel>" not in response.text and "<!here>" not in response.text
    return response.text


async def acked(harness: SlackHarness, name: str, user: str, channel: str, text: str = "") -> str:
    """A command answered in its acknowledgement (as /model is)."""
    envelope = await harness.fake.send_slash_command(name, text, user, channel)
    await harness.fake.wait_ack(envelope)
    return str((harness.fake.ack_payloads[envelope] or {}).get("text", ""))


async def mention(harness: SlackHarness, model: FakeModelServer, channel: str, user: str) -> list[RecordedRequest]:
    """`user` asks in `channel`; the model requests their question made."""
    marker = f"usage-{uuid.uuid4().hex[:10]}"
    event, _ = await harness.mention(channel, user, f"How many tokens is {marker} worth?")
    await harness.wait_turn(channel, str(event["ts"]), timeout=30)
    requests = [r for r in model.requests if marker in (r.last_user_content() or "")]
    assert requests
    return requests


async def in_dm(harness: SlackHarness, model: FakeModelServer, channel: str, user: str) -> list[RecordedRequest]:
    marker = f"usage-{uuid.uuid4().hex[:10]}"
    await harness.say(channel, user, f"What does {marker} cost?")
    await harness.wait_turn(channel, None, timeout=30)
    requests = [r for r in model.requests if marker in (r.last_user_content() or "")]
    assert requests
    return requests


def totals_line(counts: Counts) -> str:
    cost = dollars(sum(counts.cost(model) for model in counts.by_model))
    answers = f"{counts.answers} answer{'s' if counts.answers != 1 else ''}"
    unpriced = " (models without a price: tokens only)" if OTHER in counts.by_model else ""
    return f"{counts.tokens:,} tokens ({counts.prompt:,} in, {counts.completion:,} out), {cost}{unpriced}, {answers}"


# -- the tests ------------------------------------------------------------------------------------


async def test_usage_shows_the_persons_own_tokens_and_cost_by_model(
    harness: SlackHarness, model: FakeModelServer
) -> None:
    harness.new_workspace()
    alice = Counts()
    alice.add(await mention(harness, model, GENERAL, ALICE))
    alice.add(await mention(harness, model, GENERAL, ALICE))
    bob = Counts().add(await mention(harness, model, GENERAL, BOB))

    said = await slash(harness, "/usage", ALICE, GENERAL)
    lines = said.splitlines()
    assert lines[0] == "*Your usage*"
    assert f"Today: {totals_line(alice)}" in lines
    assert f"This week: {totals_line(alice)}" in lines
    assert f"This month: {totals_line(alice)}" in lines
    assert "*This month by model*" in lines and alice.model_line(DEFAULT) in lines
    assert "No budget limits you here." in lines

    theirs = await slash(harness, "/usage", BOB, GENERAL)
    assert f"Today: {totals_line(bob)}" in theirs.splitlines()
    assert f"{alice.tokens:,} tokens" not in theirs and bob.tokens != alice.tokens

    assert "`/usage server`" in await slash(harness, "/usage", ALICE, GENERAL, "everything please")


async def test_usage_server_lists_the_workspace_for_admins_with_a_chart_and_a_csv_in_their_dm(
    harness: SlackHarness, model: FakeModelServer
) -> None:
    fake = harness.fake
    harness.new_workspace()
    alice = Counts()
    alice.add(await mention(harness, model, GENERAL, ALICE))
    alice.add(await mention(harness, model, GENERAL, ALICE))
    dm = harness.new_dm(BOB)
    assert "Qwen2.5-VL-7B-Instruct" in await acked(harness, "/model", BOB, dm, OTHER)
    bob = Counts().add(await in_dm(harness, model, dm, BOB))
    assert set(bob.by_model) == {OTHER}

    assert (await slash(harness, "/usage", BOB, GENERAL, "server")).startswith(NOT_ADMIN)
    uploaded = len(fake.uploaded_files)
    said = await slash(harness, "/usage", ADMIN, GENERAL, "server")
    lines = said.splitlines()
    assert lines[0] == "*Usage of this workspace, last 30 days*"
    everyone = Counts({DEFAULT: list(alice.by_model[DEFAULT]), OTHER: list(bob.by_model[OTHER])}, answers=3)
    assert lines[1] == totals_line(everyone)
    assert lines[2].startswith("Per day: ") and len(lines[2]) == len("Per day: ") + 30
    top = sorted([(ALICE, alice.tokens), (BOB, bob.tokens)], key=lambda person: -person[1])
    assert "*Top 2 people*" in lines
    for rank, (user, tokens) in enumerate(top, 1):
        assert f"{rank}. <@{user}>: {tokens:,} tokens" in lines
    assert "*By model*" in lines
    assert everyone.model_line(DEFAULT) in lines and everyone.model_line(OTHER) in lines
    assert lines[-1] == "I've sent the chart (usage.png) and every day's counts (usage.csv) to your DM with me."

    files = {file.name: file for file in fake.uploaded_files[uploaded:]}
    assert set(files) == {"usage.png", "usage.csv"}
    admin_dm = files["usage.csv"].channel
    assert admin_dm is not None and fake.channels[admin_dm].is_im and fake.channels[admin_dm].user == ADMIN
    assert files["usage.png"].channel == admin_dm
    assert files["usage.png"].data.startswith(b"\x89PNG")

    rows = list(csv.reader(io.StringIO(files["usage.csv"].text)))
    assert rows[0] == ["day", "model", "input_tokens", "output_tokens", "answers", "cost_usd"]
    blank = rows.index([])
    days = rows[1:blank]
    for name, (prompt, completion) in everyone.by_model.items():
        of_model = [row for row in days if row[1] == name]
        assert sum(int(row[2]) for row in of_model) == prompt
        assert sum(int(row[3]) for row in of_model) == completion
    assert sum(int(row[4]) for row in days) == everyone.answers
    assert sum(float(row[5] or 0) for row in days) == pytest.approx(everyone.cost(DEFAULT))
    assert rows[blank + 1] == ["rank", "person", "tokens"]
    people = rows[blank + 2 :]
    assert [(row[0], row[1].rsplit("(", 1)[-1].rstrip(")"), int(row[2])) for row in people] == [
        (str(rank), user, tokens) for rank, (user, tokens) in enumerate(top, 1)
    ]
    assert people[[user for user, _ in top].index(BOB)][1] == f"bob ({BOB})"


async def test_a_channels_daily_budget_set_by_an_admin_stops_the_next_question_before_the_model(
    harness: SlackHarness, model: FakeModelServer
) -> None:
    harness.new_workspace()
    assert (await slash(harness, "/budget", BOB, BUDGETED, "person_daily 50")).startswith(NOT_ADMIN)
    assert (await slash(harness, "/budget", BOB, BUDGETED)).startswith("No usage budget applies here")

    said = await slash(harness, "/budget", ADMIN, BUDGETED, "person_daily 50")
    assert said == "Done: each person may use *50 tokens* a day in this channel, from the next question on."
    assert "Each person's daily budget: *50 tokens* (set by this channel)" in await slash(
        harness, "/budget", BOB, BUDGETED
    )
    assert "Say which budget first" in await slash(harness, "/budget", ADMIN, BUDGETED, "lots")

    asked = len(model.requests)
    event, _ = await harness.mention(BUDGETED, ALICE, "Will this be answered?")
    await harness.wait_turn(BUDGETED, str(event["ts"]), timeout=30)
    [reply] = harness.replies(BUDGETED, str(event["ts"]))
    # 50 tokens can't hold any question's prompt and room for its answer: said so, rather than "wait until tomorrow".
    assert "more than your daily budget allows at all (50 tokens)" in reply.text
    assert "so I didn't ask the model" in reply.text and "Ask an admin to raise it" in reply.text
    assert len(model.requests) == asked

    mine = await slash(harness, "/usage", ALICE, BUDGETED)
    assert "• Your daily budget (50 tokens, set by this channel): 50 tokens left, 0 tokens used; resets in " in mine
    assert await mention(harness, model, GENERAL, ALICE)  # the channel's own budget: elsewhere the model is asked

    said = await slash(harness, "/budget", ADMIN, BUDGETED, "server monthly $5")
    assert said == "Done: this workspace may use *$5.00* a month, from the next question on."
    here = await slash(harness, "/budget", BOB, GENERAL)
    assert "This workspace's monthly budget: *$5.00* (set by " in here


async def test_the_home_tab_shows_the_persons_usage(harness: SlackHarness, model: FakeModelServer) -> None:
    fake = harness.fake
    harness.new_workspace()
    alice = Counts().add(await mention(harness, model, GENERAL, ALICE))
    published = len(fake.published_views)
    await fake.send_event(fake.app_home_opened_event(ALICE))
    await eventually(lambda: len(fake.published_views) > published, 10, "the published Home tab")
    view = fake.published_views[published]
    assert view.user_id == ALICE
    [usage] = [block for block in view.blocks if block.get("text", {}).get("text", "").startswith("*Your usage*")]
    assert usage["type"] == "section"
    lines = usage["text"]["text"].splitlines()
    assert f"Today: {totals_line(alice)}" in lines and alice.model_line(DEFAULT) in lines
    assert "`/usage`" in view.text


async def test_forget_me_deletes_the_persons_usage_and_the_workspace_keeps_its_totals(
    harness: SlackHarness, model: FakeModelServer
) -> None:
    harness.new_workspace()
    alice = Counts().add(await mention(harness, model, GENERAL, ALICE))
    bob = Counts().add(await mention(harness, model, GENERAL, BOB))
    assert "your usage records" in await slash(harness, "/forget-me", ALICE, GENERAL)
    assert "Today: nothing yet" in (await slash(harness, "/usage", ALICE, GENERAL)).splitlines()
    assert f"Today: {totals_line(bob)}" in (await slash(harness, "/usage", BOB, GENERAL)).splitlines()
    workspace = (await slash(harness, "/usage", ADMIN, GENERAL, "server")).splitlines()
    assert workspace[1] == totals_line(
        Counts({DEFAULT: [alice.prompt + bob.prompt, alice.completion + bob.completion]}, 2)
    )
    assert f"1. <@{BOB}>: {bob.tokens:,} tokens" in workspace and not any(f"<@{ALICE}>" in line for line in workspace)


async def test_the_manifest_declares_usage_and_budget() -> None:
    manifest: dict[str, Any] = yaml.safe_load((ROOT / "config" / "slack-app-manifest.yml").read_text())
    commands = {command["command"]: command for command in manifest["features"]["slash_commands"]}
    assert commands["/usage"]["usage_hint"] == "[server]" and commands["/usage"]["description"]
    assert "person_daily" in commands["/budget"]["usage_hint"] and commands["/budget"]["description"]
    assert "files:write" in manifest["oauth_config"]["scopes"]["bot"]
