"""/forget-me in the core: a person's own conversations and DMs go whole (history, images, model choice), their
questions and the answers to them leave shared threads while everyone else's messages stay, and their question
counters reset. Another person, and the same user id in another Slack workspace, keep everything. The core with the
real AsyncInferenceClient against the loopback model server, and real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.core import ChatCore, Turn
from bot.errors import FailureKind, ReplyFailure
from bot.reply.surface import SurfaceLimits
from bot.state.coordination import Coordination, TurnQuota
from bot.state.forget import ForgetReport, scope_of
from bot.state.personas import Place
from bot.state.store import HistoryStore
from bot.turn.prompt import MistralTokenCounter
from config.settings import HistorySettings
from fakes.memory_surface import MemorySurface
from fakes.model_server import FakeModelServer, Script
from tests.conftest import OwnRedis, close_store, make_core, open_store, remote_model_settings

ADA, BOB = "42", "7"
SERVER = Place("discord", "server", "999", "Acme")
CHANNEL = Place("discord", "channel", "111", "general")
RED, BLUE = "data:image/png;base64,UkVE", "data:image/png;base64,QkxVRQ=="


def surface() -> MemorySurface:
    return MemorySurface(SurfaceLimits(max_length=2000, min_edit_interval=0.05))


def in_channel(thread: str, author: str, text: str, **fields: Any) -> Turn:
    name = {ADA: "Ada", BOB: "Bob"}.get(author, "Someone")
    return Turn(thread, author, name, text, channel="111", places=(CHANNEL, SERVER), **fields)


def in_dm(thread: str, author: str, text: str) -> Turn:
    return Turn(thread, author, "Ada", text)  # a Discord DM: no channel, no server


def quota_of(store: HistoryStore, per_user: int) -> TurnQuota:
    return TurnQuota(Coordination(store.client, store.settings.key_prefix, 60), per_user=per_user)


@pytest.fixture
async def core(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> AsyncIterator[ChatCore]:
    model_server.responder = lambda body: Script(text=f"Answer {len(body['messages'])}.")
    core = make_core(
        remote_model_settings(model_server.base_url), redis_store, token_counter, quota=quota_of(redis_store, 20)
    )
    yield core
    await core.aclose()


async def ask(core: ChatCore, turn: Turn) -> None:
    result = await core.answer(turn, surface())
    assert result.failure is None, result.failure


def said(model_server: FakeModelServer) -> list[str]:
    """The last model request's messages after the system prompt."""
    return [str(message["content"]) for message in model_server.requests[-1].body["messages"][1:]]


async def test_own_conversations_and_dms_go_whole_and_shared_threads_keep_everyone_elses_messages(
    core: ChatCore, redis_store: HistoryStore, model_server: FakeModelServer, raw_redis: Any, key_prefix: str
) -> None:
    own, dm, shared, bobs = "discord:conv:1", "discord:dm:9", "discord:conv:2", "discord:conv:3"
    await ask(core, in_channel(own, ADA, "Ada's own question", images=(RED,)))
    await ask(core, in_channel(own, ADA, "Ada's follow-up"))
    await redis_store.choose_model(own, "some-model")
    await ask(core, in_dm(dm, ADA, "Ada's DM"))
    await ask(core, in_channel(shared, BOB, "Bob opens the thread", images=(BLUE,)))
    await ask(core, in_channel(shared, ADA, "Ada chimes in", images=(RED,)))
    await ask(core, in_channel(shared, BOB, "Bob again"))
    await ask(core, in_channel(bobs, BOB, "Bob's own"))
    [bob_image] = (await core.history(shared))[0].images

    report = await core.forget_person(scope_of("discord"), ADA)

    assert report == ForgetReport(conversations=2, dms=1, shared=1, messages=8, counters=True, usage_days=1)
    for thread in (own, dm):
        assert await core.history(thread) == []
        assert await redis_store.chosen_model(thread) == ""
        assert await raw_redis.exists(*(redis_store.key(thread, kind) for kind in ("images", "image-order"))) == 0
    kept = await core.history(shared)
    assert [(m.role, m.author_id, m.content) for m in kept] == [
        ("user", BOB, "Bob opens the thread"),
        ("assistant", "", "Answer 2."),
        ("user", BOB, "Bob again"),
        ("assistant", "", "Answer 6."),
    ]
    # Only Bob's image is left, its bytes counted as before, and the thread expires as it did.
    assert await raw_redis.hkeys(redis_store.key(shared, "images")) == sorted(["#bytes", bob_image])
    assert await raw_redis.lrange(redis_store.key(shared, "image-order"), 0, -1) == [bob_image]
    assert int(await raw_redis.hget(redis_store.key(shared, "images"), "#bytes")) == len(BLUE)
    assert 3500 < await raw_redis.ttl(redis_store.key(shared)) <= 3600
    assert [m.content for m in await core.history(bobs)] == ["Bob's own", "Answer 2."]

    # Bob's next question in the shared thread is asked without Ada's part of it.
    await ask(core, in_channel(shared, BOB, "What did Ada say?"))
    asked = said(model_server)
    assert len(asked) == 5 and not any("Ada chimes in" in text or text == "Answer 4." for text in asked)

    # Nothing is left to find, and Bob's index still lists his.
    assert await core.forget_person(scope_of("discord"), ADA) == ForgetReport()
    assert not [key async for key in raw_redis.scan_iter(f"{key_prefix}person-conversations:*discord:{ADA}*")]
    bob = await core.forget_person(scope_of("discord"), BOB)
    assert (bob.conversations, bob.shared, bob.dms) == (2, 0, 0)  # the shared thread is his alone now


async def test_the_question_counters_reset_so_a_person_may_ask_again_at_once(
    model_server: FakeModelServer, redis_store: HistoryStore, token_counter: MistralTokenCounter
) -> None:
    model_server.default = Script(text="Hi.")
    core = make_core(
        remote_model_settings(model_server.base_url), redis_store, token_counter, quota=quota_of(redis_store, 1)
    )
    try:
        await ask(core, in_dm("discord:dm:1", ADA, "first"))
        refused = await core.answer(in_dm("discord:dm:1", ADA, "second"), surface())
        assert refused.failure is not None and refused.failure.kind is FailureKind.QUOTA
        await ask(core, in_dm("discord:dm:2", BOB, "Bob's first"))

        report = await core.forget_person(scope_of("discord"), ADA)
        assert report.counters and report.dms == 1
        assert await core.turns_left(scope_of("discord"), ADA) == 1
        await ask(core, in_dm("discord:dm:1", ADA, "asked again at once"))
        assert said(model_server) == ["asked again at once"]
        assert await core.turns_left(scope_of("discord"), BOB) == 0  # Bob's count is his
    finally:
        await core.aclose()


async def test_the_same_user_id_in_another_slack_workspace_keeps_everything(
    core: ChatCore, redis_store: HistoryStore
) -> None:
    def turn(team: str, channel: str, thread_ts: str | None) -> Turn:
        server = Place("slack", "server", team)
        places = (server,) if channel.startswith("D") else (Place("slack", "channel", f"{team}:{channel}"), server)
        thread = f"slack:{team}:dm:{channel}" if thread_ts is None else f"slack:{team}:{channel}:{thread_ts}"
        return Turn(thread, "U1", "Ada", f"hello from {team}", places=places, workspace=team)

    for team in ("T1", "T2"):
        await ask(core, turn(team, "D1", None))  # a DM's top level
        await ask(core, turn(team, "D1", "1.1"))  # a DM thread
        await ask(core, turn(team, "C1", "2.2"))  # a channel thread

    report = await core.forget_person(scope_of("slack", "T1"), "U1")

    assert report == ForgetReport(conversations=3, dms=2, shared=0, messages=6, counters=True, usage_days=1)
    assert [await core.history(f"slack:T1:{key}") for key in ("dm:D1", "D1:1.1", "C1:2.2")] == [[], [], []]
    for key in ("dm:D1", "D1:1.1", "C1:2.2"):
        assert [m.content for m in await core.history(f"slack:T2:{key}")] == ["hello from T2", "Answer 2."]
    assert await core.turns_left(scope_of("slack", "T2"), "U1") == 17
    assert await core.turns_left(scope_of("slack", "T1"), "U1") == 20


async def test_without_redis_nothing_is_deleted_and_asking_again_later_finishes(
    model_server: FakeModelServer, own_redis: OwnRedis, token_counter: MistralTokenCounter
) -> None:
    settings = HistorySettings(redis_url=own_redis.url, key_prefix="t:", max_messages=40, ttl_seconds=3600)
    store = open_store(own_redis.url, settings)
    model_server.default = Script(text="Hi.")
    core = make_core(remote_model_settings(model_server.base_url), store, token_counter)
    try:
        await ask(core, in_dm("discord:dm:1", ADA, "mine"))
        await ask(core, in_channel("discord:conv:2", BOB, "Bob's"))
        await ask(core, in_channel("discord:conv:2", ADA, "Ada's"))
        own_redis.stop()
        with pytest.raises(ReplyFailure) as failed:
            await core.forget_person(scope_of("discord"), ADA)
        assert failed.value.kind is FailureKind.STORE_UNAVAILABLE
        own_redis.start()
        assert len(await core.history("discord:dm:1")) == 2
        assert len(await core.history("discord:conv:2")) == 4

        report = await core.forget_person(scope_of("discord"), ADA)
        assert (report.conversations, report.dms, report.shared) == (1, 1, 1)
        assert [m.content for m in await core.history("discord:conv:2")] == ["Bob's", "Hi."]
    finally:
        await core.aclose()
        await close_store(store)
