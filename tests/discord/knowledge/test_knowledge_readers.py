"""Who reads what knowledge brings, on Discord, through the real bot process, the fake Discord, an embedded PostgreSQL
and the embedded embeddings: a private channel's passage never reaches a shared thread (neither the asker's answer
there, nor a later asker's model request through the thread's history, where a knowledge search's result is kept as a
note only), and an admin who can't see a private channel finds neither its questions in `/knowledge gaps` nor its
line in `/knowledge list` (nor in `/knowledge remove`'s suggestions)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import pytest_asyncio

from bot.knowledge.citing import NOT_KEPT
from bot.knowledge.embedded import start_embedded, stop_embedded
from fakes.citing_model import citing_responder
from fakes.discord import FakeInteraction, FakeUser, Perm
from fakes.harness.discord_world import DiscordWorld, log_shown
from fakes.harness.server_folders import remove, server_folder
from fakes.model_server import DEFAULT_MODEL, Script, ToolCallScript

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(90)]

SECRET = "The vault combination is Pineapple-7731."
SEARCHED = "vault combination"  # a question with these words makes the model search the knowledge first
UNCITED = "zebra"  # a question with this word gets an answer citing nothing: a gap


@dataclass
class Scene:
    world: DiscordWorld
    database: str
    town: dict[str, Any]  # public
    vault: dict[str, Any]  # private: staff and admins
    admin: FakeUser  # Manage Server, and sees the vault
    manager: FakeUser  # Manage Server, but can't see the vault
    insider: FakeUser  # staff: sees the vault
    alice: FakeUser  # sees only public channels


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    folder = server_folder("knowledge-readers-")
    yield folder
    remove(folder)


@pytest.fixture(scope="module")
def database_url(folder: Path) -> Iterator[str]:
    yield start_embedded(folder / "pg").url
    stop_embedded(folder / "pg")


def searching_model(body: dict[str, Any]) -> Script | None:
    """Searches the knowledge when asked about the vault (once per question), cites nothing when asked about zebras,
    and otherwise quotes and cites the passage of its prompt that best matches."""
    messages = body.get("messages") or [{}]
    last = messages[-1]
    question = str(last.get("content") or "")
    if body.get("tools") and last.get("role") == "user" and SEARCHED in question:
        return Script(tool_calls=(ToolCallScript("search_knowledge", json.dumps({"query": SEARCHED})),))
    users = [m for m in messages if m.get("role") == "user"]
    if users and UNCITED in str(users[-1].get("content") or ""):
        return Script(text="I don't know much about zebras.")
    return citing_responder(body)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scene(database_url: str) -> AsyncIterator[Scene]:
    async with DiscordWorld.open() as world:
        fake, guild = world.fake, world.guild
        admins = fake.add_role(guild, "admins", permissions=Perm.MANAGE_GUILD | Perm.MANAGE_CHANNELS)
        managers = fake.add_role(guild, "managers", permissions=Perm.MANAGE_GUILD)
        staff = fake.add_role(guild, "staff")
        admin, manager = world.add_user("admin", roles=[admins]), world.add_user("manager", roles=[managers])
        insider, alice = world.add_user("insider", roles=[staff]), world.add_user("alice")
        town, vault = world.add_channel("town"), world.add_channel("vault")
        await fake.make_private_channel(vault, roles=[staff, admins])
        world.model.responder = searching_model
        await world.start_bot(KNOWLEDGE_DATABASE_URL=database_url, TOOL_MODELS=DEFAULT_MODEL)
        scene = Scene(world, database_url, town, vault, admin, manager, insider, alice)
        assert (await knowledge(scene, vault, admin, "channel", state="on")).startswith("Done")
        said = await world.say(vault, insider, SECRET)
        await until_stored(scene, said["id"])
        yield scene
        if world.bot is not None:
            await world.stop_bot(check=True)


@pytest.fixture
def world(scene: Scene) -> Iterator[DiscordWorld]:
    with log_shown(scene.world) as world:
        yield world


async def knowledge(scene: Scene, channel: dict[str, Any], user: FakeUser, sub: str, **options: Any) -> str:
    interaction = await scene.world.fake.send_slash_command(channel["id"], user, "knowledge", {sub: options})
    return await answered(scene, interaction)


async def answered(scene: Scene, interaction: FakeInteraction) -> str:
    fake = scene.world.fake

    def text() -> str | None:
        if interaction.callback_type == 4:
            return str((interaction.response_data or {}).get("content", ""))
        shown = fake.original_response(interaction) or {}
        return str(shown.get("content") or "") or None

    return await fake.wait_for(text, 30)


def stored_keys(scene: Scene, key: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(scene.database, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('knowledge_passages')").fetchone() == (None,):
            return []
        return conn.execute("SELECT key FROM knowledge_passages WHERE key = %s", (key,)).fetchall()


async def until_stored(scene: Scene, key: str) -> None:
    for _ in range(100):
        if await asyncio.to_thread(stored_keys, scene, key):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"message {key} never became knowledge")


async def answer_in(world: DiscordWorld, thread: dict[str, Any], after: int | str | None = None) -> str:
    messages = await world.wait_bot_text(thread, lambda text: bool(text.strip()), after=after, timeout=20)
    return "\n".join(m["content"] for m in messages)


async def test_a_private_passage_never_reaches_a_shared_thread_nor_a_later_askers_request(
    scene: Scene, world: DiscordWorld
) -> None:
    question = f"What is the {SEARCHED}?"
    asked = await world.mention(scene.town, scene.insider, question)
    thread = await world.wait_thread(asked)
    answer = await answer_in(world, thread)
    first = world.model_requests(question)
    assert len(first) == 2  # the model searched, then answered
    follow_up = f"Could you remind me of the {SEARCHED} again?"
    said = await world.say(thread, scene.alice, follow_up)
    await answer_in(world, thread, after=said["id"])
    later = await world.wait_model_request(follow_up, count=2, timeout=20)

    vault_links = f"https://discord.com/channels/{world.guild.id}/{scene.vault['id']}/"
    assert vault_links not in answer and "Pineapple" not in answer  # shown in town to everyone
    for request in later:  # neither in the prompt nor as the earlier search's result
        assert "Pineapple" not in json.dumps(request.body)
    kept = [m for m in later[0].body["messages"] if m.get("role") == "tool"]
    assert [m["content"] for m in kept] == [NOT_KEPT]  # the earlier search's result, as the thread keeps it


async def test_a_private_passage_is_used_inside_its_own_channel(scene: Scene, world: DiscordWorld) -> None:
    question = f"Please tell me the {SEARCHED}."
    thread = await world.wait_thread(await world.mention(scene.vault, scene.insider, question))
    answer = await answer_in(world, thread)
    found = world.model_requests(question)[-1]
    tool_results = [m["content"] for m in found.body["messages"] if m.get("role") == "tool"]
    assert any("Pineapple" in result for result in tool_results)
    assert "Pineapple" in found.body["messages"][0]["content"]  # the prompt's passages
    assert f"/{scene.vault['id']}/" in answer.split("Sources:")[1]


async def test_an_admin_who_cannot_see_a_channel_gets_neither_its_gaps_nor_its_listing(
    scene: Scene, world: DiscordWorld
) -> None:
    for channel, who, question in (
        (scene.vault, scene.insider, f"Do the {UNCITED}s in the vault sleep standing?"),
        (scene.town, scene.alice, f"Do {UNCITED}s in town have stripes?"),
    ):
        thread = await world.wait_thread(await world.mention(channel, who, question))
        await answer_in(world, thread)
    await asyncio.sleep(0.5)  # the answers' records

    everything = await knowledge(scene, scene.town, scene.admin, "gaps")
    limited = await knowledge(scene, scene.town, scene.manager, "gaps")
    assert "vault sleep" in everything and "in town" in everything
    assert "vault sleep" not in limited and "in town" in limited
    assert "#vault" in await knowledge(scene, scene.town, scene.admin, "list")
    assert "#vault" not in await knowledge(scene, scene.town, scene.manager, "list")
    for admin, offered in ((scene.admin, ["#vault"]), (scene.manager, [])):
        choices = await world.fake.send_autocomplete(
            scene.town["id"], admin, "knowledge", {"remove": {"source": "vau"}}
        )
        assert [choice["name"] for choice in choices] == offered
