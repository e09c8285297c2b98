"""`python -m bot discord` end to end: the real bot process against the loopback fake Discord.

Most scenarios share one bot process (module-scoped `shared` fixture); every channel and user
they need is created before it connects, each scenario uses channels, users and model
markers of its own. The restart scenario and the invite URL run their own processes.
Everything asserted is what a Discord user would see: the fake's stored messages, their edit
history and the requests the bot sent; plus the model server's recorded request bodies.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from bot.errors import FailureKind
from fakes import documents
from fakes.discord import FakeUser, Intent
from fakes.harness.discord_world import (
    FOLLOWUP,
    GLOBAL_COMMANDS,
    GUILD_COMMANDS,
    INDICATOR,
    MESSAGE_CREATE,
    MESSAGE_EDIT,
    MESSAGE_WRITE_ROUTES,
    ORIGINAL_EDIT,
    THREAD_FROM_MESSAGE,
    WARNING,
    BotProcess,
    DiscordWorld,
    log_shown,
)
from fakes.harness.processes import BOT_START_SECONDS
from fakes.model_server import Script, tokenize

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(60)]

EPHEMERAL = 1 << 6
CHANNELS = (
    "general",
    "nothreads",
    "ask",
    "code",
    "mentions",
    "burst",
    "slowthread",
    "blocked",
    "closed",
    "failure",
    "bots",
    "resume",
    "typing",
    "global1",
    "global2",
    "files",
)
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory")


@dataclass
class Shared:
    world: DiscordWorld
    channels: dict[str, dict[str, Any]]
    users: dict[str, FakeUser]
    other_bot: FakeUser
    open_thread: dict[str, Any]  # existed before the bot started; its parent is allowed
    closed_thread: dict[str, Any]  # existed before the bot started; its parent is not allowed


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared() -> AsyncIterator[Shared]:
    async with DiscordWorld.open() as world:
        channels = {name: world.add_channel(name) for name in CHANNELS}
        world.fake.set_channel_permissions(int(channels["nothreads"]["id"]), allow_threads=False)
        users = {name: world.add_user(name) for name in USERS}
        other_bot = world.add_user("otherbot", bot=True)
        open_thread = world.fake.add_thread(channels["blocked"], "earlier thread")
        closed_thread = world.fake.add_thread(channels["closed"], "closed thread")
        allowed = ",".join(c["id"] for name, c in channels.items() if name != "closed")
        await world.start_bot(
            DISCORD_BLOCKED_USER_IDS=str(users["mallory"].id),
            DISCORD_ALLOWED_CHANNEL_IDS=allowed,
            MAX_NEW_TOKENS="2000",  # the long-reply scenario streams ~900 word tokens
        )
        yield Shared(world, channels, users, other_bot, open_thread, closed_thread)
        if world.bot is not None:
            await world.stop_bot(check=True)


@pytest.fixture
def world(shared: Shared) -> Iterator[DiscordWorld]:
    """The shared world; the bot's log lines written during the test are shown if it fails."""
    with log_shown(shared.world) as world:
        yield world


def contents(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages]


def user_turns(request_body: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, content) of a model request's messages after the system prompt."""
    return [(m["role"], m["content"]) for m in request_body["messages"] if m["role"] != "system"]


def words(count: int, stem: str) -> str:
    return " ".join(f"{stem}{i}" for i in range(count))


# -- 1. mention → thread → streamed answer → follow-up ----------------------------------


async def test_mention_opens_a_thread_streams_the_answer_and_follow_ups_need_no_mention(
    shared: Shared, world: DiscordWorld
) -> None:
    alice, general = shared.users["alice"], shared.channels["general"]
    answer_one = "Paris is the capital of France. " + words(24, "fact")
    world.answer("s1-capital", Script(text=answer_one, rate=20))
    world.answer("s1-followup", Script(text="Its population is about two million.", rate=50))
    question = (
        "s1-capital What is the capital of France, and could you also tell me a little about its history "
        "and the river that runs through it?"
    )

    message = await world.mention(general, alice, question)
    thread = await world.wait_thread(message)
    final = await world.wait_bot_text(thread["id"], answer_one)

    # Thread named after the question, without the mention, within Discord's 100 characters.
    assert "<@" not in thread["name"] and len(thread["name"]) <= 100
    assert thread["name"].startswith("s1-capital What is the capital of France")
    assert thread["parent_id"] == general["id"]
    assert world.bot_messages(general) == []  # the answer is in the thread, not the channel
    # The text appeared progressively: interim states end with the indicator, the final doesn't.
    history = [text for _, text in world.fake.edit_history(final[0]["id"])]
    assert history[-1] == answer_one and not history[-1].endswith(INDICATOR)
    interim = [text for text in history[:-1] if text.endswith(INDICATOR)]
    assert interim, history
    assert all(answer_one.startswith(text[: -len(INDICATOR)]) for text in interim)
    assert len(interim[0]) < len(answer_one)
    # The model saw the question without the mention.
    [first_request] = world.model_requests("s1-capital")
    assert user_turns(first_request.body) == [("user", question)]

    followup = await world.say(thread["id"], alice, "s1-followup And how many people live there?")
    await world.wait_bot_text(thread["id"], "Its population is about two million.", after=followup["id"])
    [request] = world.model_requests("s1-followup")
    assert user_turns(request.body) == [
        ("user", question),
        ("assistant", answer_one),
        ("user", "s1-followup And how many people live there?"),
    ]


# -- 2. no thread permission → reply chain ---------------------------------------------


async def test_without_thread_permission_the_bot_replies_and_the_reply_chain_is_the_conversation(
    shared: Shared, world: DiscordWorld
) -> None:
    bob, channel = shared.users["bob"], shared.channels["nothreads"]
    world.answer("s2-first", Script(text="Sure, I remember: blue.", rate=50))
    world.answer("s2-second", Script(text="You said blue.", rate=50))

    message = await world.mention(channel, bob, "s2-first My favourite colour is blue.")
    [reply] = await world.wait_bot_text(channel, "Sure, I remember: blue.", after=message["id"])
    assert world.fake.thread_for_message(message["id"]) is None
    assert [
        r.status
        for r in world.fake.requests_for(THREAD_FROM_MESSAGE)
        if r.path.startswith(f"/channels/{channel['id']}/")
    ] == [403]
    assert reply["message_reference"]["message_id"] == message["id"]
    assert reply["mentions"] == []  # replying did not ping bob

    second = await world.say(channel, bob, "s2-second What is my favourite colour?", reference_message_id=reply["id"])
    [answer] = await world.wait_bot_text(channel, "You said blue.", after=second["id"])
    assert answer["message_reference"]["message_id"] == second["id"]
    [request] = world.model_requests("s2-second")
    assert user_turns(request.body) == [
        ("user", "s2-first My favourite colour is blue."),
        ("assistant", "Sure, I remember: blue."),
        ("user", "s2-second What is my favourite colour?"),
    ]


# -- 3. DMs and /reset -----------------------------------------------------------------


async def test_a_dm_is_one_conversation_until_reset(shared: Shared, world: DiscordWorld) -> None:
    dave = shared.users["dave"]
    dm = world.fake.dm_channel_for(dave)
    world.answer("s3-", Script(text="Noted.", rate=50))

    first = await world.say(dm, dave, "s3-one My name is Dave.")
    await world.wait_bot_text(dm, "Noted.", after=first["id"])
    second = await world.say(dm, dave, "s3-two What is my name?")
    await world.wait_bot_text(dm, "Noted.", after=second["id"])
    [request] = world.model_requests("s3-two")
    assert user_turns(request.body) == [
        ("user", "s3-one My name is Dave."),
        ("assistant", "Noted."),
        ("user", "s3-two What is my name?"),
    ]

    interaction = await world.fake.send_slash_command(dm["id"], dave, "reset")
    await world.fake.wait_for(lambda: interaction.acknowledged, 5)
    callback = interaction.callbacks[0]
    assert callback["type"] == 4 and callback["data"]["flags"] & EPHEMERAL
    assert "forgotten" in callback["data"]["content"]

    third = await world.say(dm, dave, "s3-three Hello again")
    await world.wait_bot_text(dm, "Noted.", after=third["id"])
    [request] = world.model_requests("s3-three")
    assert user_turns(request.body) == [("user", "s3-three Hello again")]


# -- 4. slash commands ------------------------------------------------------------------


async def test_slash_commands_are_synced_and_ask_and_model_answer(shared: Shared, world: DiscordWorld) -> None:
    carol, channel = shared.users["carol"], shared.channels["ask"]
    # Synced once at start-up, globally (no DISCORD_GUILD_IDS here).
    syncs = [r for r in world.fake.requests if r.route in (GLOBAL_COMMANDS, GUILD_COMMANDS)]
    assert [r.route for r in syncs] == [GLOBAL_COMMANDS] and syncs[0].status == 200
    commands = [
        "Add to knowledge",
        "Ask mistralbot",
        "Mark as answer",
        "ask",
        "budget",
        "forget-me",
        "knowledge",
        "model",
        "persona",
        "reset",
        "respond",
        "solved",
        "tools",
        "usage",
    ]
    assert sorted(c["name"] for c in syncs[0].json) == commands

    answer = "Forty-two, " + words(30, "reason")
    world.answer("s4-ask", Script(text=answer, rate=30))
    interaction = await world.fake.send_slash_command(channel["id"], carol, "ask", {"prompt": "s4-ask The answer?"})
    await world.fake.wait_for(lambda: interaction.acknowledged, 5)
    assert interaction.callback_type == 5  # deferred: "… is thinking"
    await world.fake.wait_for(
        lambda: (m := world.fake.original_response(interaction)) is not None and m["content"] == answer, 10
    )
    original = world.fake.original_response(interaction)
    assert original is not None and not original["flags"] & EPHEMERAL
    history = [text for _, text in world.fake.edit_history(original["id"])]
    assert history[-1] == answer and any(text.endswith(INDICATOR) for text in history[:-1])
    edits = [r for r in world.fake.requests_for(ORIGINAL_EDIT) if interaction.token in r.path]
    assert edits and all(r.status == 200 for r in edits)
    [request] = world.model_requests("s4-ask")
    assert user_turns(request.body) == [("user", "s4-ask The answer?")]

    model = await world.fake.send_slash_command(channel["id"], carol, "model")
    await world.fake.wait_for(lambda: model.acknowledged, 5)
    callback = model.callbacks[0]
    assert callback["type"] == 4 and callback["data"]["flags"] & EPHEMERAL
    assert "Mistral-7B-Instruct-v0.3" in callback["data"]["content"]


async def test_a_long_ask_answer_continues_in_follow_up_messages(shared: Shared, world: DiscordWorld) -> None:
    carol, channel = shared.users["carol"], shared.channels["ask"]
    answer = "Here is the whole story. " + words(500, "chapter")
    assert len(answer) > 4000
    world.answer("s4-long", Script(text=answer, rate=400))
    interaction = await world.fake.send_slash_command(channel["id"], carol, "ask", {"prompt": "s4-long Tell me all"})

    def shown() -> list[str]:
        original = world.fake.original_response(interaction)
        follow_ups = [world.fake.message(i).payload["content"] for i in interaction.followup_message_ids]
        return [original["content"], *follow_ups] if original is not None else []

    last_word = answer.split()[-1]
    parts = await world.fake.wait_for(lambda: (p := shown()) and p[-1].endswith(last_word) and p, 15)
    assert len(parts) >= 3 and all(len(part) <= 2000 for part in parts), [len(part) for part in parts]
    assert " ".join(parts).split() == answer.split()
    assert not any(INDICATOR.strip() in part for part in parts)
    follow_ups = [r for r in world.fake.requests_for(FOLLOWUP) if interaction.token in r.path]
    assert len(follow_ups) == len(parts) - 1 and all(r.status == 200 for r in follow_ups)
    assert all(r.allowed_mentions is not None and r.allowed_mentions.get("parse") == [] for r in follow_ups)


# -- 5. long replies with code -----------------------------------------------------------


def fence_lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip().startswith("```")]


async def test_a_long_reply_is_split_under_2000_characters_with_code_fences_kept_intact(
    shared: Shared, world: DiscordWorld
) -> None:
    grace, channel = shared.users["grace"], shared.channels["code"]
    intro = "Here is the program you asked for. " + words(80, "intro")
    code = "\n".join(f"    value_{i:03d} = compute({i}, scale=2)  # step {i}" for i in range(70))
    outro = "That is all. " + words(200, "outro")
    text = f"{intro}\n\n```python\ndef main():\n{code}\n```\n\n{outro}"
    assert len(text) > 4000 and text.index("```python") < 1000 and text.rindex("```") > 2200
    world.answer("s5-code", Script(text=text, rate=800))

    message = await world.mention(channel, grace, "s5-code Write me a long program")
    thread = await world.wait_thread(message)
    messages = await world.wait_bot_text(
        thread["id"], lambda shown: shown.rstrip().endswith(outro.split()[-1]), timeout=15
    )
    shown = contents(messages)
    assert len(shown) >= 3
    assert all(len(part) <= 2000 for part in shown), [len(part) for part in shown]
    assert all(len(fence_lines(part)) % 2 == 0 for part in shown), [fence_lines(part) for part in shown]
    # Each message the fence was cut through ends with an added closing fence, and the next one
    # reopens it with the language.
    stripped = list(shown)
    crossings = 0
    for i, part in enumerate(shown[:-1]):
        body, _, last_line = part.rpartition("\n")
        if len(fence_lines(body)) % 2 == 1:
            assert last_line == "```", part[-200:]
            assert shown[i + 1].startswith("```python\n"), shown[i + 1][:100]
            stripped[i] = stripped[i].rpartition("\n")[0]
            stripped[i + 1] = stripped[i + 1].partition("\n")[2]
            crossings += 1
    assert crossings >= 1
    assert " ".join(stripped).split() == text.split()
    assert not any(INDICATOR.strip() in part for part in shown)


# -- 6. nothing the model writes pings anyone ---------------------------------------------


async def test_model_output_never_pings_anyone(shared: Shared, world: DiscordWorld) -> None:
    frank, channel = shared.users["frank"], shared.channels["mentions"]
    role = next(r for r in world.guild.roles.values() if r.id != world.guild.id)
    victim = shared.users["alice"]
    text = f"Hey @everyone and @here, look at <@&{role.id}> and <@{victim.id}> and <@&123> and <@456> now."
    world.answer("s6-", Script(text=text, rate=40))
    started = time.time()

    message = await world.mention(channel, frank, "s6-mention Ping everybody please")
    thread = await world.wait_thread(message)
    [reply] = await world.wait_bot_text(thread["id"], text)
    interaction = await world.fake.send_slash_command(channel["id"], frank, "ask", {"prompt": "s6-ask ping"})
    await world.fake.wait_for(
        lambda: (m := world.fake.original_response(interaction)) is not None and m["content"] == text, 10
    )

    writes = [r for r in world.fake.requests if r.time >= started and r.route in MESSAGE_WRITE_ROUTES]
    assert {r.route for r in writes} >= {MESSAGE_CREATE, MESSAGE_EDIT, ORIGINAL_EDIT}
    for request in writes:
        allowed = request.allowed_mentions
        assert allowed is not None and allowed.get("parse") == [], (request.route, request.json)
        assert not allowed.get("users") and not allowed.get("roles") and not allowed.get("replied_user")
    for shown in (reply, world.fake.original_response(interaction)):
        assert shown is not None
        assert shown["mention_everyone"] is False and shown["mentions"] == [] and shown["mention_roles"] == []


# -- 7. a burst against Discord's limits ----------------------------------------------------


async def test_a_burst_in_one_channel_stays_within_limits_and_survives_a_429(
    shared: Shared, world: DiscordWorld
) -> None:
    channel = shared.channels["burst"]
    people = [shared.users[name] for name in ("alice", "bob", "carol", "dave", "erin")]
    answers = {i: f"Answer {i}: " + words(40, f"b{i}w") for i in range(5)}
    for i, answer in answers.items():
        world.answer(f"s7-q{i} ", Script(text=answer, rate=25))
    natural_before = sum(1 for hit in world.fake.ratelimited if not hit.injected)
    # Discord answers the next two message edits with 429 (retry_after 0.3 s).
    world.fake.inject_ratelimit(MESSAGE_EDIT, count=2, retry_after=0.3)
    started = time.time()

    messages = await asyncio.gather(
        *(world.mention(channel, person, f"s7-q{i} question number {i}") for i, person in enumerate(people))
    )
    threads = [await world.wait_thread(m) for m in messages]
    finals = [(await world.wait_bot_text(thread["id"], answers[i], timeout=20))[0] for i, thread in enumerate(threads)]

    injected = [hit for hit in world.fake.ratelimited if hit.injected and hit.time >= started]
    assert len(injected) == 2
    natural = sum(1 for hit in world.fake.ratelimited if not hit.injected)
    assert natural == natural_before, world.fake.ratelimited  # the bot's own budgets avoid every real 429
    # discord.py waited retry_after before sending each rate-limited edit again.
    edits = [r for r in world.fake.requests if r.route == MESSAGE_EDIT and r.time >= started]
    for limited in (r for r in edits if r.status == 429):
        retry = next(r for r in edits if r.path == limited.path and r.time > limited.time)
        assert retry.time - limited.time >= 0.29, (limited.path, retry.time - limited.time)
    assert all(r.status == 200 for r in edits if r.status != 429)
    # No reply waited for a rate-limit window: each shows its full text soon after its model finished.
    for i, final in enumerate(finals):
        [request] = world.model_requests(f"s7-q{i} ")
        shown_at = world.fake.edit_history(final["id"])[-1][0]
        assert request.last_token_at is not None
        assert shown_at - request.last_token_at < 1.0, (i, shown_at - request.last_token_at)


async def test_a_global_429_holds_writes_back_only_as_long_as_discord_asks(shared: Shared, world: DiscordWorld) -> None:
    # Discord's Retry-After header is whole seconds (1 here); the body's retry_after is the wait.
    alice, first, second = shared.users["alice"], shared.channels["global1"], shared.channels["global2"]
    world.answer("s7-global", Script(text="Global limits are brief.", rate=40))
    world.fake.inject_ratelimit(THREAD_FROM_MESSAGE, count=1, retry_after=0.05, is_global=True)
    started = time.time()

    limited = await world.mention(first, alice, "s7-global one")
    await world.fake.wait_for(lambda: any(hit.injected and hit.time >= started for hit in world.fake.ratelimited), 5)
    limited_at = next(hit.time for hit in world.fake.ratelimited if hit.injected and hit.time >= started)
    later = await world.mention(second, alice, "s7-global two")

    for message in (limited, later):
        thread = await world.wait_thread(message, timeout=10)
        await world.wait_bot_text(thread["id"], "Global limits are brief.", timeout=10)
    created = [r.time for r in world.fake.requests if r.route == THREAD_FROM_MESSAGE and str(later["id"]) in r.path]
    assert created and created[0] - limited_at < 0.5, created


async def test_a_reply_survives_a_thread_that_opens_after_the_first_token(shared: Shared, world: DiscordWorld) -> None:
    """Discord answers the thread creation with a 429, so the thread exists only after the
    waiting indicator started and the first token arrived."""
    alice, channel = shared.users["alice"], shared.channels["slowthread"]
    answer = "Late thread, complete answer. " + words(20, "s")
    world.answer("s7-slow", Script(text=answer, rate=40, first_token_delay=0.7))
    world.fake.inject_ratelimit(THREAD_FROM_MESSAGE, count=1, retry_after=1.2)

    message = await world.mention(channel, alice, "s7-slow take your time")
    thread = await world.wait_thread(message, timeout=10)
    await world.wait_bot_text(thread["id"], answer, timeout=15)
    assert world.bot_messages(channel) == []
    assert "InvalidStateError" not in world.stderr and "discord_reply_failed" not in world.stderr


# -- 9. blocked users and allowed channels ----------------------------------------------------


async def test_a_blocked_user_is_told_once_and_never_answered(shared: Shared, world: DiscordWorld) -> None:
    mallory, channel = shared.users["mallory"], shared.channels["blocked"]
    first = await world.mention(channel, mallory, "s9-blocked answer me")
    second = await world.mention(channel, mallory, "s9-blocked answer me again")
    dm = world.fake.dm_channel_for(mallory)
    await world.fake.wait_for(lambda: world.bot_messages(dm), 5)
    # A barrier: someone allowed, in the same channel, after both attempts.
    heidi = shared.users["heidi"]
    world.answer("s9-allowed", Script(text="Hello Heidi.", rate=50))
    allowed = await world.mention(channel, heidi, "s9-allowed hi")
    await world.wait_bot_text((await world.wait_thread(allowed))["id"], "Hello Heidi.")
    await world.settle()

    assert world.model_requests("s9-blocked") == []
    assert world.fake.thread_for_message(first["id"]) is None and world.fake.thread_for_message(second["id"]) is None
    assert world.bot_messages(channel) == []
    [notice] = world.bot_messages(dm)
    assert "not available to you" in notice["content"] and len(notice["content"]) < 200


async def test_allowed_channels_count_a_thread_as_its_parent(shared: Shared, world: DiscordWorld) -> None:
    ivan = shared.users["ivan"]
    closed, closed_thread, open_thread = shared.channels["closed"], shared.closed_thread, shared.open_thread
    world.answer("s9-open", Script(text="This thread is open.", rate=50))

    refused = await world.mention(closed, ivan, "s9-closed hello?")
    await world.mention(closed_thread, ivan, "s9-closed-thread hello?")
    answered = await world.mention(open_thread, ivan, "s9-open hello?")
    await world.wait_bot_text(open_thread["id"], "This thread is open.", after=answered["id"])
    await world.settle()

    assert world.model_requests("s9-closed") == []
    assert world.fake.thread_for_message(refused["id"]) is None
    assert world.bot_messages(closed) == [] and world.bot_messages(closed_thread) == []
    [notice] = world.bot_messages(world.fake.dm_channel_for(ivan))  # told once for both refusals
    assert "not available to you" in notice["content"]
    [request] = world.model_requests("s9-open")
    assert user_turns(request.body) == [("user", "s9-open hello?")]


# -- typing while the model starts --------------------------------------------------------------


async def test_typing_shows_while_a_slow_model_starts_and_not_when_it_is_quick(
    shared: Shared, world: DiscordWorld
) -> None:
    channel, alice = shared.channels["typing"], shared.users["alice"]
    world.answer("typing-slow", Script(text="Took a moment.", rate=50, first_token_delay=1.5))
    world.answer("typing-quick", Script(text="Right away.", rate=50))
    slow = await world.mention(channel, alice, "typing-slow think first")
    slow_thread = await world.wait_thread(slow)
    await world.wait_bot_text(slow_thread["id"], "Took a moment.")
    quick = await world.mention(channel, alice, "typing-quick answer now")
    quick_thread = await world.wait_thread(quick)
    await world.wait_bot_text(quick_thread["id"], "Right away.")

    slow_typing = [at for at, where in world.fake.typing if where == int(slow_thread["id"])]
    [first_text] = world.bot_messages(slow_thread)
    assert slow_typing and min(slow_typing) < world.fake.edit_history(int(first_text["id"]))[0][0]
    assert [at for at, where in world.fake.typing if where == int(quick_thread["id"])] == []


# -- 10. the model fails mid-stream ----------------------------------------------------------


async def test_a_model_cut_mid_stream_keeps_the_partial_text_and_gives_the_reason(
    shared: Shared, world: DiscordWorld
) -> None:
    judy, channel = shared.users["judy"], shared.channels["failure"]
    text = "The first part arrives and then " + words(40, "lost")
    world.answer("s10-", Script(text=text, rate=20, failure="cut", fail_after=12))
    partial = "".join(tokenize(text)[:12])

    message = await world.mention(channel, judy, "s10-cut tell me a story")
    thread = await world.wait_thread(message)
    [reply] = await world.wait_bot_text(thread["id"], lambda shown: WARNING in shown)
    assert reply["content"] == f"{partial}\n\n{WARNING} {FailureKind.CUT.reason}"
    assert INDICATOR.strip() not in reply["content"]
    history = [shown for _, shown in world.fake.edit_history(reply["id"])]
    assert history[0].endswith(INDICATOR)  # it was streaming before the cut


# -- 11. bots, own messages and edits never trigger a reply ------------------------------------


async def test_other_bots_own_messages_and_edits_never_trigger_a_reply(shared: Shared, world: DiscordWorld) -> None:
    alice, channel, other_bot = shared.users["alice"], shared.channels["bots"], shared.other_bot
    world.answer("s11-start", Script(text="Started.", rate=50))
    world.answer("s11-barrier", Script(text="Barrier.", rate=50))
    start = await world.mention(channel, alice, "s11-start talk to me")
    thread = await world.wait_thread(start)
    [answer] = await world.wait_bot_text(thread["id"], "Started.")

    from_bot = await world.mention(channel, other_bot, "s11-bot please answer")
    await world.say(thread["id"], other_bot, "s11-bot in the thread")
    await world.say(thread["id"], other_bot, "s11-bot replying", reference_message_id=answer["id"])
    plain = await world.say(channel, alice, "s11-edit no mention yet")
    await world.fake.edit_user_message(plain["id"], f"<@{world.fake.bot_user.id}> s11-edit now with a mention")
    await world.fake.edit_user_message(start["id"], f"<@{world.fake.bot_user.id}> s11-edit edited question")
    barrier = await world.say(thread["id"], alice, "s11-barrier still there?")
    await world.wait_bot_text(thread["id"], "Barrier.", after=barrier["id"])
    await world.settle()

    assert world.model_requests("s11-bot") == [] and world.model_requests("s11-edit") == []
    assert len(world.model_requests("s11-start")) == 1  # its own echoed answer triggered nothing
    assert world.fake.thread_for_message(from_bot["id"]) is None
    assert world.fake.thread_for_message(plain["id"]) is None
    assert contents(world.bot_messages(thread["id"])) == ["Started.", "Barrier."]
    assert world.bot_messages(channel) == []


# -- attachments -------------------------------------------------------------------------


async def test_a_text_file_attached_to_a_mention_is_read_and_an_image_is_skipped_with_a_notice(
    shared: Shared, world: DiscordWorld
) -> None:
    alice, channel = shared.users["alice"], shared.channels["files"]
    world.answer("f1-review", Script(text="The function adds two numbers.", rate=50))
    code = "def add(a, b):\n    return a + b\n"
    message = await world.fake.send_user_message(
        channel["id"],
        alice,
        "f1-review what does this do?",
        mentions_bot=True,
        files=[("add.py", "text/x-python", code.encode()), ("cat.png", "image/png", b"\x89PNG\r\n\x1a\n")],
    )
    thread = await world.wait_thread(message)
    [_final] = await world.wait_bot_text(
        thread["id"],
        "The function adds two numbers.\n\nℹ️ I can only read text files and documents, so I skipped cat.png.",
    )
    [request] = world.model_requests("f1-review")
    asked = request.last_user_content() or ""
    assert asked.startswith("f1-review what does this do?") and "add.py:" in asked and code.rstrip() in asked
    assert "PNG" not in asked
    assert len(world.fake.attachment_downloads) == 1  # the image was never downloaded


async def test_a_pdf_attached_to_a_mention_is_read_and_a_bad_one_gets_its_notice(
    shared: Shared, world: DiscordWorld
) -> None:
    alice, channel = shared.users["alice"], shared.channels["files"]
    world.answer("f2-pdf", Script(text="Revenue grew.", rate=50))
    report = documents.pdf(["Quarterly revenue grew 12 percent.", "Costs fell by 3 percent."])
    message = await world.fake.send_user_message(
        channel["id"],
        alice,
        "f2-pdf sum these up",
        mentions_bot=True,
        files=[("report.pdf", "application/pdf", report), ("photo.pdf", "application/pdf", documents.png())],
    )
    thread = await world.wait_thread(message)
    await world.wait_bot_text(
        thread["id"], "Revenue grew.\n\nℹ️ photo.pdf isn't really a PDF, so I didn't read it.", timeout=30
    )
    [request] = world.model_requests("f2-pdf")
    asked = request.last_user_content() or ""
    assert asked.startswith("f2-pdf sum these up\n\nreport.pdf:\n```\n[page 1]\nQuarterly revenue grew 12 percent.")
    assert "[page 2]\nCosts fell by 3 percent." in asked and "PNG" not in asked


async def test_a_pdf_too_long_for_the_context_is_cut_to_fit_and_the_reply_says_so(
    shared: Shared, world: DiscordWorld
) -> None:
    alice, channel = shared.users["alice"], shared.channels["files"]
    world.answer("f3-long", Script(text="A long report.", rate=50))
    pages = [f"Page {number}: " + words(150, f"p{number}w") for number in range(1, 41)]  # ~40,000 characters
    message = await world.fake.send_user_message(
        channel["id"],
        alice,
        "f3-long what is this?",
        mentions_bot=True,
        files=[("long.pdf", "application/pdf", documents.pdf(pages))],
    )
    thread = await world.wait_thread(message)
    [final] = await world.wait_bot_text(thread["id"], lambda text: text.startswith("A long report."), timeout=30)
    [request] = world.model_requests("f3-long")
    asked = request.last_user_content() or ""
    assert final["content"].startswith("A long report.\n\nℹ️ long.pdf: read pages 1–")
    assert final["content"].endswith(" of 40 (all that fits in one message).")
    assert asked.startswith("f3-long what is this?\n\nlong.pdf:\n```\n[page 1]\nPage 1:") and "Page 40:" not in asked


# -- 12. the gateway drops mid-answer --------------------------------------------------------


async def test_a_gateway_disconnect_mid_answer_resumes_and_the_answer_completes(
    shared: Shared, world: DiscordWorld
) -> None:
    alice, channel = shared.users["alice"], shared.channels["resume"]
    answer = "Streaming through a disconnect: " + words(40, "r")
    world.answer("s12-long", Script(text=answer, rate=20))
    world.answer("s12-after", Script(text="Back again.", rate=50))
    gateway = world.fake.gateway
    identifies, resumes = gateway.identify_count, gateway.resume_count

    message = await world.mention(channel, alice, "s12-long a long answer please")
    thread = await world.wait_thread(message)
    await world.fake.wait_for(lambda: world.bot_messages(thread["id"]), 5)
    await world.fake.disconnect_gateway(4000)
    disconnected_at = time.time()
    await world.fake.wait_for(lambda: gateway.resume_count > resumes and world.fake.connected, 10)
    [reply] = await world.wait_bot_text(thread["id"], answer, timeout=15)
    history = world.fake.edit_history(reply["id"])
    assert history[0][0] < disconnected_at < history[-1][0]  # the answer was streaming across the drop

    after = await world.mention(channel, alice, "s12-after are you still there?")
    await world.wait_bot_text((await world.wait_thread(after))["id"], "Back again.")
    assert gateway.identify_count == identifies  # resumed, not re-identified


# -- the shared bot stops cleanly ---------------------------------------------------------------


async def test_sigterm_stops_the_shared_bot_cleanly(shared: Shared, world: DiscordWorld) -> None:
    stderr = world.stderr
    code = await world.stop_bot()
    assert code == 0
    assert "discord_reply_failed" not in stderr and "Task exception was never retrieved" not in stderr
    assert "shutting_down" in world.stderr


# -- 8. restart between two turns (own bot; guild-scoped commands) ----------------------------------


async def test_a_restart_between_turns_keeps_the_thread_and_guild_commands_sync_to_the_guild() -> None:
    async with DiscordWorld.open() as world:
        channel = world.add_channel("general")
        alice = world.add_user("alice")
        world.answer("s8-one", Script(text="I will remember 7.", rate=50))
        world.answer("s8-two", Script(text="It was 7.", rate=50))
        try:
            await world.start_bot(DISCORD_GUILD_IDS=str(world.guild.id))
            syncs = [r for r in world.fake.requests if r.route in (GLOBAL_COMMANDS, GUILD_COMMANDS)]
            assert [(r.route, r.path) for r in syncs] == [
                (GUILD_COMMANDS, f"/applications/{world.fake.application_id}/guilds/{world.guild.id}/commands")
            ]
            model = await world.fake.send_slash_command(channel["id"], alice, "model")
            await world.fake.wait_for(lambda: model.acknowledged, 5)
            assert "Mistral" in model.callbacks[0]["data"]["content"]

            message = await world.mention(channel, alice, "s8-one Remember the number 7.")
            thread = await world.wait_thread(message)
            await world.wait_bot_text(thread["id"], "I will remember 7.")
            await world.stop_bot(check=True)

            await world.start_bot(DISCORD_GUILD_IDS=str(world.guild.id))
            followup = await world.say(thread["id"], alice, "s8-two Which number was it?")
            await world.wait_bot_text(thread["id"], "It was 7.", after=followup["id"])
            [request] = world.model_requests("s8-two")
            assert user_turns(request.body) == [
                ("user", "s8-one Remember the number 7."),
                ("assistant", "I will remember 7."),
                ("user", "s8-two Which number was it?"),
            ]
            await world.stop_bot(check=True)
        except BaseException:
            print(f"--- bot stderr ---\n{world.stderr}")
            raise


# -- access by guild, role and DMs ---------------------------------------------------------------


async def test_guild_role_and_dm_restrictions_refuse_with_an_explanation() -> None:
    async with DiscordWorld.open() as world:
        role = world.fake.add_role(world.guild, "askers")
        member = world.add_user("member", roles=(role,))
        outsider = world.add_user("outsider")
        channel = world.add_channel("general")
        elsewhere = world.fake.add_text_channel(world.fake.add_guild("Other Guild"), "other")
        world.answer("acl-member", Script(text="Hello member.", rate=50))
        try:
            await world.start_bot(
                DISCORD_ALLOWED_GUILD_IDS=str(world.guild.id), DISCORD_ALLOWED_ROLE_IDS=str(role), ALLOW_DMS="false"
            )
            answered = await world.mention(channel, member, "acl-member hi")
            await world.wait_bot_text((await world.wait_thread(answered))["id"], "Hello member.")

            no_role = await world.mention(channel, outsider, "acl-no-role hi")
            other_guild = await world.mention(elsewhere, member, "acl-other-guild hi")
            await world.say(world.fake.dm_channel_for(member), member, "acl-dm hi")
            await world.settle(1.0)

            assert world.model_requests("acl-no-role") == world.model_requests("acl-other-guild") == []
            assert world.model_requests("acl-dm") == []
            assert world.fake.thread_for_message(no_role["id"]) is None
            assert world.fake.thread_for_message(other_guild["id"]) is None
            [refusal] = world.bot_messages(world.fake.dm_channel_for(outsider))
            assert "not available to you" in refusal["content"]
            notices = [m["content"] for m in world.bot_messages(world.fake.dm_channel_for(member))]
            assert any("don't answer direct messages" in text for text in notices)  # the DM refusal
            assert any("not available to you" in text for text in notices)  # the other guild's refusal
            await world.stop_bot(check=True)
        except BaseException:
            print(f"--- bot stderr ---\n{world.stderr}")
            raise


# -- the Message Content intent not enabled in the portal ------------------------------------------


async def test_a_missing_message_content_intent_stops_start_up_with_the_fix() -> None:
    async with DiscordWorld.open() as world:
        world.fake.disallowed_intents = Intent.MESSAGE_CONTENT
        bot = await BotProcess.start("discord", env=world.bot_env())
        code = await asyncio.wait_for(bot.process.wait(), BOT_START_SECONDS)
        assert code == 2  # as every other setting that is wrong
        [line] = [line for line in bot.stderr.splitlines() if "Message Content Intent" in line]  # said once
        assert line.startswith("Configuration error: Discord refused the Message Content intent"), bot.stderr
        assert "developer portal" in line


async def test_without_redis_one_process_answers_and_warns_that_history_is_not_kept() -> None:
    """REDIS_URL=memory:// tries the bot out on Discord without a Redis server: the one process
    keeps history, locks and Discord's rate limits in itself, and the operator is told what that costs."""
    async with DiscordWorld.open() as world:
        general, alice = world.add_channel("general"), world.add_user("alice")
        world.answer("m1-first", Script(text="Kept in this process.", rate=50))
        world.answer("m1-second", Script(text="I remember the first question.", rate=50))
        await world.start_bot(REDIS_URL="memory://")
        message = await world.mention(general, alice, "m1-first question")
        thread = await world.wait_thread(message)
        await world.wait_bot_text(thread["id"], "Kept in this process.")
        followup = await world.say(thread["id"], alice, "m1-second follow-up")
        await world.wait_bot_text(thread["id"], "I remember the first question.", after=followup["id"])
        [request] = world.model_requests("m1-second")
        assert user_turns(request.body) == [
            ("user", "m1-first question"),
            ("assistant", "Kept in this process."),
            ("user", "m1-second follow-up"),
        ]
        assert world.fake.ratelimited_count == 0
        assert "history_not_durable" in world.stderr
