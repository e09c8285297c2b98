"""Tools on Slack, end to end: the real `python -m bot slack` process against the loopback fake Slack and
model server (its ToolAgent calls tools), with the MCP server of fakes/mcp_tools.py over stdio.

What is asserted is what people in Slack see: task cards in the native stream (their chunks, in
order), the sources' context line, the Run / Cancel question and how it is settled, who is told what
privately, the lines of a plain message; and what the tools did (the notes file)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from adapters.slack_bot.reply.tool_cards import CONFIRM_NO, CONFIRM_YES
from fakes.harness.processes import ROOT, delete_keys
from fakes.harness.slack_world import SlackHarness, Streaming, eventually, finished, started
from fakes.mcp_config import fake_server, servers_file
from fakes.model_server import FakeModelServer, RecordedRequest, Script, ToolAgent, ToolCallScript
from fakes.slack import FakeSlack, JsonDict, StoredMessage

pytestmark = pytest.mark.asyncio(loop_scope="module")

ALICE = FakeSlack.DEFAULT_USER  # display name "alice"
BOB = "U0BOB0001"
GENERAL = FakeSlack.DEFAULT_CHANNEL
NO_STREAMS = "C0NOSTRM1"  # chat.startStream answers channel_type_not_supported
CONFIRM_SECONDS = 4
LIVE_MENTION = re.compile(r"<[!@#]")
SECONDS = re.compile(r"\d+\.\d s")
WEATHER_SOURCES = ["https://example.org/weather", "https://docs.example.org/weather"]


@dataclass
class Files:
    notes: Path
    servers: Path

    def notes_lines(self) -> list[str]:
        return self.notes.read_text().splitlines() if self.notes.exists() else []


@dataclass
class Bot:
    """A bot process with tools, its fake Slack and the model server."""

    harness: SlackHarness
    model: FakeModelServer
    files: Files

    @property
    def fake(self) -> FakeSlack:
        return self.harness.fake

    def agent(self, calls: dict[str, list[ToolCallScript]], **options: Any) -> None:
        self.model.responder = ToolAgent(calls, base=Script(rate=200), **options)

    def requests_about(self, marker: str) -> list[RecordedRequest]:
        return [r for r in self.model.requests if marker in (r.last_user_content() or "")]

    async def ask(self, channel: str, text: str) -> str:
        """Alice mentions the bot; the thread's ts."""
        event, _ = await self.harness.mention(channel, ALICE, text)
        return str(event["ts"])

    def answer_in(self, channel: str, thread_ts: str) -> StoredMessage:
        """The reply in the thread (not a tool's question)."""
        [reply] = [m for m in self.harness.replies(channel, thread_ts) if not is_question(m)]
        return reply

    async def question_in(self, channel: str, thread_ts: str) -> StoredMessage:
        def asked() -> list[StoredMessage]:
            return [m for m in self.harness.replies(channel, thread_ts) if is_question(m)]

        await eventually(lambda: bool(asked()), 10, "the question with its buttons")
        [question] = asked()
        return question


def confirm_buttons(message: StoredMessage) -> list[JsonDict]:
    """A tool's question's Run / Cancel buttons (an answer's actions are its 👍 / 👎)."""
    return [
        block
        for block in message.blocks_of("actions")
        if any(element.get("action_id") in (CONFIRM_YES, CONFIRM_NO) for element in block.get("elements", []))
    ]


def is_question(message: StoredMessage) -> bool:
    return bool(confirm_buttons(message)) or "may I run" in message.text or "`add_note`" in message.text


def without_timings(text: str) -> str:
    return SECONDS.sub("N s", text)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    root = tmp_path_factory.mktemp("slack-tools")
    notes, events = root / "notes.txt", root / "events.txt"
    server = {**fake_server(MCP_NOTES_FILE=notes, MCP_EVENTS_FILE=events), "timeout_seconds": 1}
    return Files(notes, servers_file(root, fake=server))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text="Hello.")) as server:
        yield server


async def bot_with_tools(model: FakeModelServer, files: Files, streaming: Streaming) -> AsyncIterator[Bot]:
    prefix = f"test:slack-tools:{uuid.uuid4().hex[:12]}:"
    fake = FakeSlack()
    fake.add_user(BOB, "bob")
    fake.add_channel(NO_STREAMS, "no-streams", can_stream=False)
    env = {"MCP_SERVERS_FILE": str(files.servers), "TOOL_CONFIRM_SECONDS": str(CONFIRM_SECONDS)}
    harness = await started(SlackHarness(fake, model.base_url, prefix, streaming=streaming, extra_env=env))
    try:
        [bot] = harness.bots
        await bot.wait_log("mcp_server_up", server="fake", timeout=30)
        yield Bot(harness, model, files)
    finally:
        try:
            await finished(harness)
        finally:
            delete_keys(prefix)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def streaming_bot(model: FakeModelServer, files: Files) -> AsyncIterator[Bot]:
    async for bot in bot_with_tools(model, files, "auto"):
        yield bot


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def editing_bot(model: FakeModelServer, files: Files) -> AsyncIterator[Bot]:
    async for bot in bot_with_tools(model, files, "off"):
        yield bot


async def scene(bot: Bot) -> AsyncIterator[Bot]:
    """A fresh workspace (fresh rate limits) per test; the model's default answer afterwards."""
    bot.harness.new_workspace()
    marks = {process.name: len(process.lines) for process in bot.harness.bots}
    try:
        yield bot
        for delivery, delay in bot.harness.ack_delays():
            assert delay is not None and delay < 1.0, f"{delivery.type} acked after {delay} s"
    finally:
        bot.model.responder = None
        for process in bot.harness.bots:
            print(f"===== {process.name} =====\n{''.join(process.lines[marks.get(process.name, 0) :])}")


@pytest_asyncio.fixture(loop_scope="module")
async def auto(streaming_bot: Bot) -> AsyncIterator[Bot]:
    async for bot in scene(streaming_bot):
        yield bot


@pytest_asyncio.fixture(loop_scope="module")
async def off(editing_bot: Bot) -> AsyncIterator[Bot]:
    async for bot in scene(editing_bot):
        yield bot


# -- task cards in the native stream -----------------------------------------------------------


async def test_a_read_only_call_is_a_task_card_that_completes_with_its_sources(auto: Bot) -> None:
    auto.agent({"weather": [ToolCallScript("lookup", '{"query": "weather"}')]})
    thread = await auto.ask(GENERAL, "t1 what's the weather?")
    await auto.harness.wait_turn(GENERAL, thread)

    reply = auto.answer_in(GENERAL, thread)
    assert reply.stream_state == "stopped"
    [card_id] = reply.tasks
    statuses = reply.task_statuses(card_id)
    assert statuses[0] == "in_progress" and statuses[-1] == "complete", statuses
    card = reply.tasks[card_id]
    assert card["title"] == "lookup (fake)"
    assert [source["url"] for source in card["sources"]] == WEATHER_SOURCES
    assert [source["text"] for source in card["sources"]] == ["example.org/weather", "docs.example.org/weather"]
    # What the tool returned shows, but its address is no link (only the sources are).
    assert card["output"].replace("\u200b", "") == "Result for weather: see https://example.org/weather"
    assert "https://" not in card["output"] and card["details"] == '{"query": "weather"}'

    assert reply.text.startswith("Using Result for weather")
    assert "`lookup`" not in reply.text and "Sources:" not in reply.text  # cards, not lines
    links = " ".join(f"<{url}|{n}>" for n, url in enumerate(WEATHER_SOURCES, 1))
    assert reply.context_texts == [f"Sources: {links}"]

    # Nothing for waiting once the card shows.
    assert not [m for m in auto.fake.messages_in(GENERAL, thread) if "thinking" in m.text]


async def test_a_failing_call_and_one_that_times_out_show_error_cards_and_the_answer_goes_on(auto: Bot) -> None:
    auto.agent({"broken": [ToolCallScript("fail", "{}"), ToolCallScript("hang", "{}")]})
    thread = await auto.ask(GENERAL, "t2 broken tools")
    await auto.harness.wait_turn(GENERAL, thread)

    reply = auto.answer_in(GENERAL, thread)
    cards = reply.tasks
    by_title = {card["title"]: card for card in cards.values()}
    assert set(by_title) == {"fail (fake)", "hang (fake)"}
    for card in cards.values():
        assert reply.task_statuses(card["id"])[-1] == "error"
        assert "sources" not in card
    assert "the lookup service is down" in by_title["fail (fake)"]["output"]
    assert by_title["hang (fake)"]["output"].startswith("timed out")
    assert reply.text.startswith("Using ")
    assert reply.context_texts == []  # no sources


async def test_mentions_in_what_a_tool_returns_stay_defused(auto: Bot) -> None:
    auto.agent({"shout": [ToolCallScript("lookup", '{"query": "<!channel> and <@U0ALICE01>"}')]})
    thread = await auto.ask(GENERAL, "t3 shout")
    await auto.harness.wait_turn(GENERAL, thread)

    reply = auto.answer_in(GENERAL, thread)
    for card in reply.task_updates():
        for field in ("title", "details", "output"):
            assert not LIVE_MENTION.search(card.get(field, "")), card
    assert "<\u200b!channel>" in reply.tasks[next(iter(reply.tasks))]["output"]


# -- asking first ----------------------------------------------------------------------------


async def test_the_askers_click_runs_the_call_once_even_when_the_click_comes_twice(auto: Bot) -> None:
    before = auto.files.notes_lines()
    auto.agent({"note": [ToolCallScript("add_note", '{"text": "t4 buy milk <!channel>"}')]})
    thread = await auto.ask(GENERAL, "t4 note: buy milk")

    question = await auto.question_in(GENERAL, thread)
    [section] = question.blocks_of("section")
    asked = section["text"]["text"]
    assert asked.startswith('alice, may I run `add_note` (fake) with `{"text": "t4 buy milk &lt;!channel&gt;"}`?')
    assert not LIVE_MENTION.search(asked) and not LIVE_MENTION.search(question.text)
    [actions] = confirm_buttons(question)
    assert [(b["text"]["text"], b.get("style")) for b in actions["elements"]] == [("Run", "primary"), ("Cancel", None)]

    click = auto.fake.block_actions(ALICE, GENERAL, question.ts, "tool_confirm_yes")
    later = auto.fake.block_actions(ALICE, GENERAL, question.ts, "tool_confirm_yes")  # a second click of hers
    for _ in range(2):  # the same click delivered twice
        await auto.fake.send_block_action(ALICE, GENERAL, question.ts, "tool_confirm_yes", payload=click)
    await eventually(lambda: not confirm_buttons(question), 10, "the buttons to go")
    assert question.text == "✓ `add_note` (fake) runs: approved."
    await auto.fake.send_block_action(ALICE, GENERAL, question.ts, "tool_confirm_yes", payload=later)
    await auto.harness.wait_turn(GENERAL, thread)

    assert auto.files.notes_lines() == [*before, "t4 buy milk <!channel>"]  # run once
    reply = auto.answer_in(GENERAL, thread)
    [card_id] = reply.tasks
    assert reply.task_statuses(card_id)[0] == "in_progress" and reply.task_statuses(card_id)[-1] == "complete"
    assert reply.text.startswith("Using noted #")
    await eventually(lambda: bool(auto.fake.ephemerals), 5, "the second click to be answered")
    assert [(e.user, e.text, e.thread_ts) for e in auto.fake.ephemerals] == [
        (ALICE, "This was already answered.", thread)
    ]


async def test_someone_elses_click_is_told_privately_and_cancel_means_it_does_not_run(auto: Bot) -> None:
    before = auto.files.notes_lines()
    told = len(auto.fake.ephemerals)
    auto.agent({"note": [ToolCallScript("add_note", '{"text": "t5 not this"}')]})
    thread = await auto.ask(GENERAL, "t5 note: not this")
    question = await auto.question_in(GENERAL, thread)

    await auto.fake.send_block_action(BOB, GENERAL, question.ts, "tool_confirm_yes")
    await eventually(lambda: len(auto.fake.ephemerals) > told, 5, "Bob to be told")
    [bob_told] = auto.fake.ephemerals[told:]
    assert (bob_told.user, bob_told.text) == (BOB, "Only the person who asked the question can answer this.")
    assert confirm_buttons(question)  # still asked
    assert auto.files.notes_lines() == before

    await auto.fake.send_block_action(ALICE, GENERAL, question.ts, "tool_confirm_no")
    await auto.harness.wait_turn(GENERAL, thread)
    assert question.text == "✗ `add_note` (fake) did not run: declined." and not confirm_buttons(question)
    assert auto.files.notes_lines() == before
    reply = auto.answer_in(GENERAL, thread)
    [card] = reply.tasks.values()
    assert card["status"] == "error" and card["output"] == "Did not run: declined"
    assert reply.text.startswith("Using ")  # the answer goes on
    assert len(auto.fake.ephemerals) == told + 1  # Alice's own click needed no word


# -- where there is no native stream ---------------------------------------------------------


async def test_edited_messages_show_the_calls_as_lines(off: Bot) -> None:
    # Long enough for the line saying it runs to be posted before it ends (the tools time out after 1 s here).
    off.agent({"weather": [ToolCallScript("lookup", '{"query": "weather", "ms": 600}')]})
    thread = await off.ask(GENERAL, "t6 what's the weather?")
    await off.harness.wait_turn(GENERAL, thread)

    reply = off.answer_in(GENERAL, thread)
    assert not off.fake.calls_to("chat.startStream") and reply.chunks == []
    assert without_timings(reply.text) == (
        "✓ `lookup`, N s\n\nUsing Result for weather: see https://example.org/weather\n\n"
        "Sources:\n1. &lt;https://example.org/weather&gt;\n2. &lt;https://docs.example.org/weather&gt;"
    )
    assert any("🔧 `lookup` …" in text for _, text in reply.history)  # while it ran


async def test_where_slack_wont_stream_the_calls_are_lines_and_the_channel_is_remembered(auto: Bot) -> None:
    auto.agent({"weather": [ToolCallScript("lookup", '{"query": "weather"}')]})
    texts = []
    for n in (1, 2):
        thread = await auto.ask(NO_STREAMS, f"t7-{n} what's the weather?")
        await auto.harness.wait_turn(NO_STREAMS, thread)
        reply = auto.answer_in(NO_STREAMS, thread)
        assert reply.chunks == [] and reply.stream_state is None
        texts.append(without_timings(reply.text))
    # The first reply tried a stream, fell back and wrote the lines itself; the second didn't try.
    tried = auto.harness.calls_for(["chat.startStream"], channel=NO_STREAMS)
    assert [call.error for call in tried] == ["channel_type_not_supported"]
    assert texts[0] == texts[1]
    assert texts[0].startswith("✓ `lookup`, N s\n\nUsing Result for weather")
    assert texts[0].endswith(
        "Sources:\n1. &lt;https://example.org/weather&gt;\n2. &lt;https://docs.example.org/weather&gt;"
    )


# -- what people can look up -----------------------------------------------------------------


async def test_tools_lists_the_tools_and_which_ask_first(auto: Bot) -> None:
    envelope = await auto.fake.send_slash_command("/tools", "", ALICE, GENERAL)
    await auto.fake.wait_ack(envelope)
    listing = str((auto.fake.ack_payloads[envelope] or {}).get("text", ""))
    assert listing.startswith("Tools are offered here to the models that can use them.\n*")
    assert "* answers new conversations here and uses these tools:\n" in listing  # the channel's new threads' model
    assert "• `lookup`: Look something up." in listing
    assert "• `add_note` (asks you first): Write a note down." in listing


async def test_an_admin_turns_tools_off_in_a_channel_and_questions_there_get_none(auto: Bot) -> None:
    admin = "U0ADMIN01"
    auto.fake.add_user(admin, "admin").is_admin = True

    async def tools(user: str, text: str) -> str:
        envelope = await auto.fake.send_slash_command("/tools", text, user, GENERAL)
        await auto.fake.wait_ack(envelope)
        return str((auto.fake.ack_payloads[envelope] or {}).get("text", ""))

    refused = await tools(ALICE, "off")
    assert refused == "Only workspace admins (or the people this bot names) may turn tools on or off here."
    assert await tools(admin, "off") == "Done: tools are turned off in this channel, from the next message on."
    auto.agent({"weather": [ToolCallScript("lookup", '{"query": "weather"}')]})
    thread = await auto.ask(GENERAL, "weather, tools-off")
    await auto.harness.wait_turn(GENERAL, thread)
    [request] = auto.requests_about("tools-off")
    assert not request.body.get("tools")
    assert await tools(admin, "maybe") == "Say on, off or default: /tools on, /tools off or /tools default."
    await tools(admin, "default")
    thread = await auto.ask(GENERAL, "weather, tools-back")
    await auto.harness.wait_turn(GENERAL, thread)
    assert auto.requests_about("tools-back")[0].body.get("tools")


async def test_the_home_tab_lists_the_tools(auto: Bot) -> None:
    await auto.fake.send_event(auto.fake.app_home_opened_event(ALICE))
    await eventually(lambda: ALICE in auto.fake.home_views, what="the published Home tab")
    text = auto.fake.published_views[-1].text
    assert "*Tools*\nThe tools connected, for the models that use them:" in text
    assert "• `lookup`: Look something up." in text and "• `add_note` (asks you first)" in text
    assert "`/tools`" in text


async def test_the_manifest_declares_tools_and_the_buttons() -> None:
    manifest: dict[str, Any] = yaml.safe_load((ROOT / "config" / "slack-app-manifest.yml").read_text())
    assert "/tools" in [command["command"] for command in manifest["features"]["slash_commands"]]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True  # block_actions come only with it
