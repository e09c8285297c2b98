"""/usage, /usage of: server and /budget on Discord, through the real bot process, the fake Discord and the fake model
server, whose reported usage (prompt: each message's words + 4; completion: the tokens it sent) is what every figure
expected here is computed from. One bot for the module: MODEL_ID is priced (MODELS_FILE), and the channel "plain"
answers with a model without a price. Each test has people of its own, so the tests hold in any order."""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from fakes.discord import CallbackType, FakeInteraction, FakeUser, Perm
from fakes.harness.discord_world import ORIGINAL_EDIT, DiscordWorld, log_shown
from fakes.model_server import RecordedRequest, Script

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

PRICED, PLAIN = "priced-model", "plain-model"
# USD per million tokens: high enough that a few dozen tokens cost whole cents.
PRICE_IN, PRICE_OUT = 1000, 2000
MODELS = f"""models:
  - id: {PRICED}
    price: {{input: {PRICE_IN}, output: {PRICE_OUT}}}
  - id: {PLAIN}
"""
ADMIN = Perm.MANAGE_GUILD | Perm.MANAGE_CHANNELS
PEOPLE = ("admin", "alice", "bob", "carol", "dave", "erin", "frank")
CHANNELS = ("general", "plain", "budget")
# The budget test: a question holds its prompt and MAX_NEW_TOKENS of a daily BUDGET; one LONG_ANSWER leaves less.
MAX_NEW_TOKENS, BUDGET, LONG_ANSWER = 300, 600, 250


@dataclass
class Scene:
    world: DiscordWorld
    channels: dict[str, dict[str, Any]]
    people: dict[str, FakeUser]


@pytest.fixture(scope="module")
def models_file() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="usage-discord-"))
    (folder / "models.yml").write_text(MODELS, encoding="utf-8")
    yield folder / "models.yml"
    shutil.rmtree(folder, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scene(models_file: Path) -> AsyncIterator[Scene]:
    async with DiscordWorld.open() as world:
        admins = world.fake.add_role(world.guild, "admins", permissions=ADMIN)
        people = {name: world.add_user(name, roles=[admins] if name == "admin" else []) for name in PEOPLE}
        channels = {name: world.add_channel(name) for name in CHANNELS}
        await world.start_bot(MODEL_ID=PRICED, MODELS_FILE=str(models_file), MAX_NEW_TOKENS=str(MAX_NEW_TOKENS))
        scene = Scene(world, channels, people)
        set_model = await world.fake.send_slash_command(
            channels["plain"]["id"], people["admin"], "model", {"name": PLAIN}
        )
        assert "**plain-model**" in (await reply(world, set_model))["content"]
        yield scene
        if world.bot is not None:
            await world.stop_bot(check=True)


@pytest.fixture
def world(scene: Scene) -> Iterator[DiscordWorld]:
    with log_shown(scene.world) as world:
        yield world


# -- acting and reading ---------------------------------------------------------------------------


async def reply(world: DiscordWorld, interaction: FakeInteraction) -> dict[str, Any]:
    """What a command finally shows: its message (type 4), or the deferred one once edited; always ephemeral."""

    def shown() -> dict[str, Any] | None:
        if interaction.callback_type == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE:
            return interaction.response_data
        message = world.fake.original_response(interaction)
        return message if message and message.get("content") else None

    said = await world.fake.wait_for(shown, 20)
    assert said is not None and interaction.ephemeral
    return said


async def command(
    scene: Scene, channel: dict[str, Any], person: str, name: str, options: dict[str, Any] | None = None
) -> tuple[FakeInteraction, str]:
    interaction = await scene.world.fake.send_slash_command(channel["id"], scene.people[person], name, options)
    return interaction, str((await reply(scene.world, interaction))["content"])


async def ask(scene: Scene, channel: str, person: str, text: str) -> list[RecordedRequest]:
    """Mention the bot with `text` (its first word a marker of its own), wait for the answer; the model's requests."""
    world = scene.world
    thread = await world.wait_thread(await world.mention(scene.channels[channel], scene.people[person], text))
    await world.wait_bot_text(thread, lambda shown: bool(shown.strip()), timeout=20)
    requests = world.model_requests(text.split(maxsplit=1)[0])
    assert requests and all(request.usage is not None for request in requests)
    return requests


@dataclass(frozen=True)
class Counts:
    """Usage as the fake model reported it."""

    prompt: int = 0
    completion: int = 0
    answers: int = 0
    micro_usd: int = 0  # of the priced model's requests only
    unpriced: int = 0  # answers by a model without a price

    @property
    def tokens(self) -> int:
        return self.prompt + self.completion

    @property
    def cost(self) -> str:
        return f"${self.micro_usd / 1_000_000:,.2f}"


def counted(requests: Sequence[RecordedRequest], model: str | None = None) -> Counts:
    prompt = completion = micro = unpriced = answers = 0
    for request in requests:
        if model is not None and request.model != model:
            continue
        assert request.usage is not None
        prompt += request.usage["prompt_tokens"]
        completion += request.usage["completion_tokens"]
        answers += 1
        if request.model == PRICED:
            micro += request.usage["prompt_tokens"] * PRICE_IN + request.usage["completion_tokens"] * PRICE_OUT
        else:
            unpriced += 1
    return Counts(prompt, completion, answers, micro, unpriced)


def totals_line(counts: Counts) -> str:
    """How /usage writes a period's or a server's totals."""
    cost = f", {counts.cost}" if counts.micro_usd or not counts.unpriced else ""
    unpriced = " (models without a price: tokens only)" if counts.unpriced and counts.micro_usd else ""
    answers = f"{counts.answers:,} answer{'s' if counts.answers != 1 else ''}"
    return f"{counts.tokens:,} tokens ({counts.prompt:,} in, {counts.completion:,} out){cost}{unpriced}, {answers}"


def model_line(model: str, counts: Counts) -> str:
    cost = f", {counts.cost}" if model == PRICED else ""
    return f"• {model}: {counts.tokens:,} tokens ({counts.prompt:,} in, {counts.completion:,} out){cost}"


async def usage_showing(
    scene: Scene, channel: str, person: str, wanted: str, **options: str
) -> tuple[FakeInteraction, str]:
    """/usage (with `options`) until it shows `wanted` (a turn's usage is written just after its answer is shown)."""
    said = ""
    for _ in range(40):
        interaction, said = await command(scene, scene.channels[channel], person, "usage", dict(options))
        if wanted in said:
            return interaction, said
        await scene.world.settle(0.25)
    raise AssertionError(f"/usage never showed {wanted!r}; it shows:\n{said}")


def uploads(world: DiscordWorld, interaction: FakeInteraction) -> dict[str, bytes]:
    return {
        str(upload.filename): upload.data or b""
        for request in world.fake.requests
        if interaction.token in request.path
        for upload in request.files
        if upload.data
    }


def mention(user: FakeUser) -> str:
    return f"<@{user.id}>"


async def server_usage(scene: Scene, wanted: str) -> tuple[FakeInteraction, str]:
    """The admin's /usage of: server, once it shows `wanted`."""
    return await usage_showing(scene, "general", "admin", wanted, of="server")


# -- the tests ------------------------------------------------------------------------------------


async def test_usage_shows_the_tokens_and_cost_the_model_reported_by_model_to_that_person_alone(
    scene: Scene, world: DiscordWorld
) -> None:
    first = await ask(scene, "general", "alice", "u1-alice What is a token?")
    second = await ask(scene, "general", "alice", "u1-again And a prompt?")
    plain = await ask(scene, "plain", "alice", "u1-plain And without a price?")
    priced, unpriced = counted([*first, *second]), counted(plain)
    assert priced.answers == 2 and priced.micro_usd >= 10_000  # at least a cent: the cost shows
    everything = counted([*first, *second, *plain])

    _, said = await usage_showing(scene, "general", "alice", f"Today: {totals_line(everything)}")
    assert said.startswith("**Your usage**")
    for period in ("This week", "This month"):
        assert f"{period}: {totals_line(everything)}" in said
    assert everything.cost in said and "(models without a price: tokens only)" in said
    by_model = said.split("**This month by model**\n", 1)[1].splitlines()
    assert in_order(by_model[:2]) == sorted([model_line(PRICED, priced), model_line(PLAIN, unpriced)])
    assert "No budget limits you here." in said

    _, in_dm = await command(scene, world.fake.dm_channel_for(scene.people["alice"]), "alice", "usage")
    assert in_dm == said  # the same figures in her DM with the bot

    bobs = await ask(scene, "plain", "bob", "u1-bob Hello there")
    _, bob_said = await usage_showing(scene, "general", "bob", f"Today: {totals_line(counted(bobs))}")
    assert PRICED not in bob_said and model_line(PLAIN, counted(bobs)) in bob_said
    assert "$" not in bob_said  # his model has no price: tokens only


def in_order(lines: list[str]) -> list[str]:
    """The by-model lines, once checked to be most tokens first."""
    tokens = [int(line.split(": ", 1)[1].split(" tokens", 1)[0].replace(",", "")) for line in lines]
    assert tokens == sorted(tokens, reverse=True), lines
    return sorted(lines)


async def test_usage_of_the_server_shows_an_admin_its_top_people_by_model_with_a_chart_and_a_csv(
    scene: Scene, world: DiscordWorld
) -> None:
    carols = await ask(scene, "general", "carol", "u2-carol How are you?")
    daves = await ask(scene, "plain", "dave", "u2-dave Tell me a few words about usage please")
    # Every request so far came from the server's channels (each test's people ask there only).
    everything = counted(world.model.requests)
    interaction, said = await server_usage(scene, f"{totals_line(everything)}\n")
    lines = said.splitlines()
    assert lines[0] == "**Usage of Test Guild, last 30 days**" and lines[1] == totals_line(everything)
    assert lines[2].startswith("Per day: ") and len(lines[2]) == len("Per day: ") + 30
    assert f". {mention(scene.people['carol'])}: {counted(carols).tokens:,} tokens" in said
    assert f". {mention(scene.people['dave'])}: {counted(daves).tokens:,} tokens" in said
    by_model = said.split("**By model**\n", 1)[1].splitlines()
    expected = [model_line(PRICED, counted(world.model.requests, PRICED))]
    expected.append(model_line(PLAIN, counted(world.model.requests, PLAIN)))
    assert in_order(by_model) == sorted(expected)

    edit = [r for r in world.fake.requests_for(ORIGINAL_EDIT) if interaction.token in r.path][-1]
    assert edit.allowed_mentions == {"parse": []}  # the mentions name people and ping nobody
    files = uploads(world, interaction)
    assert sorted(files) == ["usage.csv", "usage.png"]
    assert files["usage.png"].startswith(b"\x89PNG")
    rows = list(csv.reader(io.StringIO(files["usage.csv"].decode())))
    assert rows[0] == ["day", "model", "input_tokens", "output_tokens", "answers", "cost_usd"]
    days = rows[1 : rows.index([])]
    assert sum(int(row[2]) + int(row[3]) for row in days) == everything.tokens
    assert sum(int(row[4]) for row in days) == everything.answers
    assert sum(round(float(row[5]) * 1_000_000) for row in days if row[5]) == everything.micro_usd
    people = rows[rows.index([]) + 2 :]
    assert [str(scene.people["carol"].id), str(counted(carols).tokens)] in [row[1:] for row in people]

    refused, text = await command(scene, scene.channels["general"], "carol", "usage", {"of": "server"})
    assert refused.callback_type == CallbackType.CHANNEL_MESSAGE_WITH_SOURCE
    assert text.startswith("Only members with Manage Server") and "Test Guild" not in text
    assert not uploads(world, refused)


async def test_an_admins_daily_budget_stops_the_next_question_before_the_model_and_others_change_nothing(
    scene: Scene, world: DiscordWorld
) -> None:
    channel = scene.channels["budget"]
    _, before = await command(scene, channel, "frank", "budget")
    assert before.startswith("No usage budget applies here")
    _, refused = await command(scene, channel, "frank", "budget", {"person_daily": "10"})
    assert refused.startswith("Only members with Manage Channels")
    _, refused = await command(scene, channel, "frank", "budget", {"monthly": "$1", "scope": "server"})
    assert refused.startswith("Only members with Manage Server")
    _, unchanged = await command(scene, channel, "frank", "budget")
    assert unchanged == before

    _, done = await command(scene, channel, "admin", "budget", {"person_daily": "50"})
    assert done == "Done: each person may use **50 tokens** a day in this channel, from the next question on."
    _, shown = await command(scene, channel, "frank", "budget")
    assert "• Each person's daily budget: **50 tokens** (set by this channel)" in shown

    # A budget smaller than any question (its prompt and MAX_NEW_TOKENS): the model is never asked.
    message = await world.mention(channel, scene.people["frank"], "u3-tiny A question over budget")
    [note] = await world.wait_bot_text(await world.wait_thread(message), lambda text: "budget" in text, timeout=20)
    assert "your daily budget" in note["content"].casefold() and "50 tokens" in note["content"]

    # One long answer leaves less than the next question needs: it is refused until the budget resets.
    _, done = await command(scene, channel, "admin", "budget", {"person_daily": str(BUDGET)})
    assert f"**{BUDGET} tokens** a day in this channel" in done
    world.answer("u3-long", Script(tokens=LONG_ANSWER))
    used = counted(await ask(scene, "budget", "frank", "u3-long Tell me everything"))
    assert used.completion == LONG_ANSWER
    # Once its usage is written and its hold settled to what it used (just after the answer shows), /usage says so.
    await usage_showing(scene, "budget", "frank", f"Today: {totals_line(used)}")
    _, own = await usage_showing(scene, "budget", "frank", f"{BUDGET - used.tokens:,} tokens left")
    message = await world.mention(channel, scene.people["frank"], "u3-over One more question")
    [note] = await world.wait_bot_text(await world.wait_thread(message), lambda text: "budget" in text, timeout=20)
    said = note["content"]  # which budget, what is left of it and what was used, when it resets
    assert "your daily budget" in said.casefold() and f"{BUDGET - used.tokens:,} tokens left" in said
    assert f"{used.tokens:,} " in said and "It resets in " in said and "(at 00:00 UTC)" in said
    await world.settle(1.0)
    assert world.model_requests("u3-tiny") == [] and world.model_requests("u3-over") == []  # never asked

    assert f"Today: {totals_line(used)}" in own
    [line] = [line for line in own.splitlines() if line.startswith("• Your daily budget")]
    assert line.startswith(f"• Your daily budget ({BUDGET} tokens, set by this channel): ")
    assert f"{BUDGET - used.tokens:,} tokens left" in line and f"{used.tokens:,}" in line and "resets in " in line
    _, elsewhere = await command(scene, scene.channels["general"], "frank", "usage")
    assert "No budget limits you here." in elsewhere

    _, removed = await command(scene, channel, "admin", "budget", {"person_daily": "default"})
    assert removed.startswith("Done: each person's daily budget in this channel follows the settings above it again")


async def test_forget_me_removes_a_persons_usage_and_the_servers_totals_keep_it(
    scene: Scene, world: DiscordWorld
) -> None:
    erins = await ask(scene, "general", "erin", "u4-erin Remember my usage")
    erin = f"{mention(scene.people['erin'])}: {counted(erins).tokens:,} tokens"
    _, before = await server_usage(scene, erin)
    await usage_showing(scene, "general", "erin", f"Today: {totals_line(counted(erins))}")

    _, forgot = await command(scene, scene.channels["general"], "erin", "forget-me")
    assert forgot.startswith("Deleted: 1 conversation of yours") and "and your usage records." in forgot

    _, own = await command(scene, scene.channels["general"], "erin", "usage")
    assert "Today: nothing yet" in own and "This month: nothing yet" in own and "by model" not in own
    _, after = await server_usage(scene, "**By model**")
    assert after.splitlines()[1] == before.splitlines()[1]  # the server's totals keep what she used
    assert mention(scene.people["erin"]) not in after and mention(scene.people["erin"]) in before
