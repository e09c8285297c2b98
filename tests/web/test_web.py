"""The web chat page: the real `python -m bot web` process in a real headless Chromium.

The bot runs as an operator runs it (a subprocess configured only through its environment)
against the test Redis under this test's own key prefix and the loopback model server;
Chromium is Debian's, driven by Playwright (which never downloads a browser here).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from PIL import Image, ImageDraw
from playwright.async_api import Browser, BrowserContext, FilePayload, Page, expect
from playwright.async_api import Error as PlaywrightError

from adapters.web.uploads import MAX_FRAME_BYTES
from bot.errors import FailureKind
from config.settings import DEFAULT_MODEL_ID
from fakes.harness.processes import BOT_START_SECONDS
from fakes.harness.slack_world import eventually
from fakes.harness.web_world import WebBots, hello_of
from fakes.model_server import FakeModelServer, Script

NETWORK_CHANGED = "net::ERR_NETWORK_CHANGED"

# Chromium is the module's (tests/web/conftest.py): its tests run in the module's event loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")

CODE_ANSWER = (
    "Use the built-in **print** function:\n\n"
    '```python\nfor n in range(3):\n    print(f"hello {n}")\n```\n\n'
    'Each call writes one line to standard output; pass `end=""` to stay on the same line.'
)
CODE = 'for n in range(3):\n    print(f"hello {n}")'

DEFAULT_NAME = DEFAULT_MODEL_ID.rsplit("/", 1)[-1]  # how the page names MODEL_ID's model
TEXT_MODEL, TEXT_NAME = "meta-llama/Llama-3.1-8B-Instruct", "Llama-3.1-8B-Instruct"
VISION_MODEL, VISION_NAME = "Qwen/Qwen2.5-VL-7B-Instruct", "Qwen2.5-VL-7B-Instruct"
# MODEL_ID's model first, then MODELS'; the fake model server answers as any model it is asked for.
SEVERAL_MODELS = {"MODELS": f"{TEXT_MODEL},{VISION_MODEL}", "VISION_MODELS": VISION_MODEL}
SEES_IMAGES = " · sees images"  # after a model's name in the picker


def conversation(body: dict[str, Any]) -> list[Any]:
    """What a model request carried besides the system prompt, oldest first."""
    return [message["content"] for message in body["messages"] if message["role"] != "system"]


def png(width: int, height: int) -> bytes:
    """A PNG of a picture: a red field with a blue square."""
    image = Image.new("RGB", (width, height), (200, 40, 40))
    ImageDraw.Draw(image).rectangle((width // 4, height // 4, width // 2, height // 2), fill=(30, 60, 200))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def file(name: str, data: bytes, mime: str = "image/png") -> FilePayload:
    return {"name": name, "mimeType": mime, "buffer": data}


def sent_image(url: str) -> Image.Image:
    """The image a data URL in a model request holds, decoded in full (a corrupt one raises)."""
    header, data = url.split(",", 1)
    assert header.startswith("data:image/") and header.endswith(";base64"), header
    image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
    image.load()
    return image


def image_urls(message: dict[str, Any]) -> list[str]:
    content = message["content"]
    parts = content if isinstance(content, list) else []
    return [part["image_url"]["url"] for part in parts if part["type"] == "image_url"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def text_of(message: dict[str, Any]) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "\n\n".join(part["text"] for part in content if part["type"] == "text")


# -- the bot process ------------------------------------------------------------------------


# -- a page in the browser ------------------------------------------------------------------


class ChatPage:
    def __init__(self, page: Page, model: str, *, picker: bool) -> None:
        self.page = page
        self.model = model  # the model the header should show
        self.picker = picker  # shown as a picker of several models, or as one model's name
        self.replies = page.locator(".message.bot")
        self.labels = page.locator(".message.bot .model-label")
        self.messages = page.locator("#messages .message")
        self.notice = page.locator("#notice")
        self.tray = page.locator("#tray img")
        self.errors: list[str] = []  # the page's script errors and console errors (CSP violations too)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        self.failed_requests: list[str] = []  # shown when the page never connects
        page.on("requestfailed", lambda request: self.failed_requests.append(f"{request.url}: {request.failure}"))

    @classmethod
    async def open(
        cls, context: BrowserContext, url: str, model: str = DEFAULT_NAME, *, picker: bool = False
    ) -> ChatPage:
        chat = cls(await context.new_page(), model, picker=picker)
        await chat.page.goto(url)
        await chat.connected()
        return chat

    async def connected(self) -> None:
        """Wait until the page is connected and shows the conversation (its header names the model)."""
        # A harness wait, not a promise: on a busy machine (the test workers starting bots and building the container
        # images at once) the page's first connection has been seen to take over 10 s.
        deadline = time.monotonic() + BOT_START_SECONDS
        while True:
            try:
                await expect(self.page.locator("#status.online")).to_be_attached(timeout=1000)
                break
            except AssertionError as not_yet:
                if self._network_changed():
                    with contextlib.suppress(PlaywrightError):  # the reload itself may meet another change
                        await self.page.reload()
                elif time.monotonic() > deadline:  # which of the page's scripts or requests failed, if any did
                    failed = f"the page's errors: {self.errors}; its failed requests: {self.failed_requests}"
                    raise AssertionError(f"{not_yet}\n{failed}") from None
        if self.picker:
            await expect(self.page.locator("#models")).to_be_visible()
            await expect(self.page.locator("#models option:checked")).to_have_text(self.model)
            await expect(self.page.locator("#model")).to_be_hidden()
        else:
            await expect(self.page.locator("#model")).to_have_text(self.model)
            await expect(self.page.locator("#models")).to_be_hidden()

    async def choose(self, option: str) -> None:
        """Pick a model in the header; the page confirms the switch."""
        await self.page.select_option("#models", label=option)
        self.model = option
        name = option.removesuffix(SEES_IMAGES)
        await expect(self.notice).to_have_text(
            f"This conversation now answers with {name}. The earlier messages are kept."
        )
        await expect(self.page.locator("#models option:checked")).to_have_text(option)

    async def attach(self, *files: FilePayload) -> None:
        """Choose files with the attach button's file dialog."""
        async with self.page.expect_file_chooser() as chooser:
            await self.page.click("#attach")
        await (await chooser.value).set_files(list(files))
        await expect(self.page.locator("#tray .thumb.loading")).to_have_count(0)

    async def paste_image(self, data: bytes, mime: str = "image/png") -> None:
        """Paste an image into the message box, as after copying one."""
        await self.page.locator("#input").evaluate(
            """(input, [bytes, type]) => {
                const transfer = new DataTransfer();
                transfer.items.add(new File([new Uint8Array(bytes)], "image.png", { type }));
                const paste = { clipboardData: transfer, bubbles: true, cancelable: true };
                input.dispatchEvent(new ClipboardEvent("paste", paste));
            }""",
            [list(data), mime],
        )
        await expect(self.page.locator("#tray .thumb.loading")).to_have_count(0)

    def _network_changed(self) -> bool:
        """Whether Chromium dropped the page's requests because the host's network changed (another test's
        container brought up a network interface): not the chat's doing, so the page is loaded again, as a
        person would. Those failures are forgotten."""
        changed = [failure for failure in self.failed_requests if NETWORK_CHANGED in failure]
        if changed:
            self.failed_requests = [failure for failure in self.failed_requests if NETWORK_CHANGED not in failure]
            self.errors = [error for error in self.errors if NETWORK_CHANGED not in error]
        return bool(changed)

    async def reload(self, messages: int) -> None:
        """Reload and wait until the conversation shown has `messages` messages."""
        await self.page.reload()
        await self.connected()
        await expect(self.messages).to_have_count(messages)

    async def ask(self, text: str) -> None:
        await self.page.fill("#input", text)
        await self.page.press("#input", "Enter")

    async def answer(self, timeout: float = 15) -> str:
        """The text of the last reply once it is final."""
        reply = self.replies.last
        await expect(reply).to_have_attribute("data-state", "done", timeout=timeout * 1000)
        assert self.errors == []
        return await reply.locator(".body").inner_text()

    async def transcript(self) -> list[tuple[str, str]]:
        rows = []
        for message in await self.messages.all():
            role = "user" if "user" in (await message.get_attribute("class") or "") else "bot"
            rows.append((role, await message.locator(".body").inner_text()))
        return rows


# -- fixtures -------------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module")
async def model() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(Script(text=CODE_ANSWER, rate=40)) as server:
        yield server


# -- tests ----------------------------------------------------------------------------------


async def test_an_answer_streams_in_and_ends_as_the_full_rendered_text(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    model.default = Script(text=CODE_ANSWER, rate=20)  # 26 tokens: about 1.3 s of streaming
    await bots.start()
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await chat.ask("How do I print three lines in Python?")

    reply = chat.replies.last
    body = reply.locator(".body")
    lengths: list[int] = []  # of the text shown while the caret blinks after it
    deadline = time.monotonic() + 15
    while await reply.get_attribute("data-state") != "done":
        assert time.monotonic() < deadline, f"the answer never finished; seen lengths {lengths}"
        if await body.locator(".caret").count() == 1:
            shown = len(await body.inner_text())
            if not lengths or shown != lengths[-1]:
                lengths.append(shown)
        await asyncio.sleep(0.01)
    assert len(lengths) >= 3 and lengths == sorted(lengths), lengths

    await expect(body.locator(".caret")).to_have_count(0)
    assert await body.locator("pre code").inner_text() == CODE
    assert await body.locator("pre code").get_attribute("data-lang") == "python"
    assert await body.locator("strong").inner_text() == "print"
    assert await body.locator("p code").inner_text() == 'end=""'
    assert (await body.inner_text()).endswith('pass end="" to stay on the same line.')
    assert await chat.transcript() == [
        ("user", "How do I print three lines in Python?"),
        ("bot", await body.inner_text()),
    ]


async def test_the_conversation_survives_a_reload_and_a_restart(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    bot = await bots.start()
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await chat.ask("Show me a loop")
    await chat.answer()
    shown = await chat.transcript()
    assert shown[0] == ("user", "Show me a loop") and CODE in shown[1][1]

    await chat.reload(messages=2)
    assert await chat.transcript() == shown

    await bots.stop(bot)
    await bots.start()
    await chat.reload(messages=2)
    assert await chat.transcript() == shown


async def test_on_sigterm_an_unfinished_answer_ends_with_a_note_and_the_bot_exits_0(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    model.default = Script(tokens=100, rate=20)  # 5 s: longer than the 1 s of grace
    bot = await bots.start(SHUTDOWN_GRACE_SECONDS="1")
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await chat.ask("Count for me")
    await expect(chat.replies.last).to_have_attribute("data-state", "streaming")
    await bots.stop(bot)

    reply = chat.replies.last  # (the page's console now reports its attempts to reconnect)
    await expect(reply).to_have_attribute("data-state", "done")
    shown = await reply.locator(".body").inner_text()
    assert shown.startswith("w0 w1") and shown.endswith(f"⚠️ {FailureKind.INTERRUPTED.reason}")
    await expect(chat.page.locator("#status.online")).to_have_count(0)  # the page knows, and reconnects


async def test_an_answer_whose_page_closed_midway_still_completes_and_shows_on_return(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    text = " ".join(f"word{n}" for n in range(40)) + "."
    model.default = Script(text=text, rate=20)  # 2 s
    bot = await bots.start()
    context = await browser.new_context()
    chat = await ChatPage.open(context, bots.url)
    await chat.ask("Tell me forty words")
    await expect(chat.replies.last).to_have_attribute("data-state", "streaming")
    await chat.page.close()

    finished = await bot.wait_log("turn_finished")
    assert finished["outcome"] == "OK" and model.requests[-1].outcome == "completed"
    again = await ChatPage.open(context, bots.url)
    await expect(again.messages).to_have_count(2)
    assert await again.transcript() == [("user", "Tell me forty words"), ("bot", text)]
    assert bot.running and "adapter_crashed" not in bot.stderr


async def test_new_conversation_clears_the_page_and_the_model_forgets(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    model.default = Script(text="Nice to meet you, Ada.")
    await bots.start()
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await chat.ask("My name is Ada.")
    await chat.answer()
    await chat.ask("What is my name?")
    await chat.answer()
    assert conversation(model.requests[-1].body) == ["My name is Ada.", "Nice to meet you, Ada.", "What is my name?"]

    await chat.page.click("text=New conversation")
    await expect(chat.messages).to_have_count(0)
    await expect(chat.page.locator(".welcome")).to_be_visible()
    await chat.ask("What is my name now?")
    await chat.answer()
    assert conversation(model.requests[-1].body) == ["What is my name now?"]
    await chat.reload(messages=2)

    requests = len(model.requests)
    await chat.ask("/reset")  # typed, it does the same as the button
    await expect(chat.messages).to_have_count(0)
    await chat.reload(messages=0)
    assert len(model.requests) == requests


async def test_a_model_failure_mid_answer_keeps_the_text_and_says_why(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    model.default = Script(
        text="The first part arrives and then the connection drops", rate=40, failure="cut", fail_after=4
    )
    await bots.start()
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await chat.ask("Tell me something")
    shown = await chat.answer()
    assert shown.startswith("The first part arrives")
    assert await chat.replies.last.locator(".warning").inner_text() == f"⚠️ {FailureKind.CUT.reason}"


async def test_html_from_the_model_or_the_person_is_shown_as_text_and_never_run(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    hostile = (
        'Look: <script>window.pwned = "script"; document.title = "pwned"</script> and '
        "<img src=x onerror=\"window.pwned = 'img'\"> and [click](javascript:window.pwned=1) "
        "and https://example.com/docs."
    )
    model.default = Script(text=hostile)
    question = "<b>Is this bold?</b> <img src=x onerror=\"window.pwned = 'question'\">"
    await bots.start()
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await chat.ask(question)
    await chat.answer()

    async def nothing_ran() -> None:
        assert await chat.page.evaluate("window.pwned") is None
        assert await chat.page.title() == "Chat"
        await expect(chat.page.locator("#messages script, #messages img, #messages b")).to_have_count(0)
        assert await chat.transcript() == [("user", question), ("bot", hostile)]
        links = chat.replies.last.locator("a")
        await expect(links).to_have_count(1)
        assert await links.get_attribute("href") == "https://example.com/docs"

    await nothing_ran()
    await chat.reload(messages=2)  # the history is drawn by another path: the same holds
    await nothing_ran()


async def test_a_thinking_models_thought_is_one_click_away_shown_as_text(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    thought = 'Let me think <img src=x onerror="window.pwned = 1"> about it.\nParis, surely.'
    model.default = Script(text="Paris.", thought=thought, thought_style="reasoning", rate=50)
    await bots.start()
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await chat.ask("Capital of France?")
    assert await chat.answer() == "Paris."
    details = chat.replies.last.locator("details.thought")
    await expect(details).to_have_count(1)
    assert await details.get_attribute("open") is None  # closed: one click away
    assert (await details.locator("summary").inner_text()).strip() == "Thought for 1 s"
    await expect(details.locator("summary svg")).to_have_count(1)  # its icon, needing no emoji font
    assert await details.locator(".thought-text").text_content() == thought
    assert await chat.page.evaluate("window.pwned") is None
    assert [body["messages"][-1]["content"] for body in [model.requests[-1].body]] == ["Capital of France?"]


async def test_two_browsers_stream_their_own_answers_at_the_same_time(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    def answer_for(body: dict[str, Any]) -> Script:
        return Script(text=f"About {conversation(body)[-1]}: " + " ".join(f"w{n}" for n in range(30)), rate=20)

    model.responder = answer_for  # each answer takes 1.5 s
    await bots.start()
    alice_context, bob_context = await browser.new_context(), await browser.new_context()
    alice, bob = await ChatPage.open(alice_context, bots.url), await ChatPage.open(bob_context, bots.url)
    await alice.ask("apples")
    await bob.ask("pears")

    both_streaming = False
    deadline = time.monotonic() + 15
    while True:
        states = [await page.replies.last.get_attribute("data-state") for page in (alice, bob)]
        both_streaming = both_streaming or states == ["streaming", "streaming"]
        if states == ["done", "done"]:
            break
        assert time.monotonic() < deadline, states
        await asyncio.sleep(0.01)
    assert both_streaming, "one answer waited for the other"
    assert (await alice.answer()).startswith("About apples: w0") and (await bob.answer()).startswith("About pears: w0")
    assert sorted(conversation(request.body) for request in model.requests) == [["apples"], ["pears"]]

    cookies = [(await context.cookies())[0] for context in (alice_context, bob_context)]
    assert cookies[0]["value"] != cookies[1]["value"]
    for cookie in cookies:
        assert len(cookie["value"]) == 32 and cookie["httpOnly"] and cookie["sameSite"] == "Strict"


async def test_bad_input_is_refused_with_a_reason_and_nothing_typed_is_lost(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    await bots.start()
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await chat.ask("   ")
    too_long = "x" * 100_001
    await chat.ask(too_long)
    await expect(chat.page.locator("#notice")).to_contain_text("100,001 characters long; the limit is 100,000")
    assert await chat.page.input_value("#input") == too_long
    await expect(chat.messages).to_have_count(0)
    # A fair question after them, answered: the page was connected, and it is the only one the model was asked.
    await chat.ask("A fair question")
    await chat.answer()
    assert [conversation(request.body) for request in model.requests] == [["A fair question"]]
    await expect(chat.messages).to_have_count(2)


async def test_the_server_refuses_sockets_from_elsewhere_and_oversized_messages(bots: WebBots) -> None:
    await bots.start()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as no_cookie:
            await session.ws_connect(f"{bots.url}ws")
        assert no_cookie.value.status == 403
        async with session.get(bots.url) as page:
            assert page.status == 200
        with pytest.raises(aiohttp.WSServerHandshakeError) as other_site:
            await session.ws_connect(f"{bots.url}ws", headers={"Origin": "http://elsewhere.example"})
        assert other_site.value.status == 403
        async with session.ws_connect(f"{bots.url}ws") as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
            await ws.send_json({"type": "ask", "id": "q1", "text": "y" * 100_001})
            refused = await ws.receive_json(timeout=5)
            assert refused["type"] == "refused" and "the limit is 100,000" in refused["reason"]
            # A question without images may not grow to what a question with images may.
            await ws.send_json({"type": "ask", "id": "q2", "text": "z" * (MAX_FRAME_BYTES + 1)})
            closed = await ws.receive(timeout=5)
            assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def test_a_question_with_images_fits_a_frame_and_each_unusable_image_is_named(
    model: FakeModelServer, bots: WebBots
) -> None:
    """What a page is sent for images that arrived damaged, or that its model can't see (the
    protocol itself: a browser always sends valid base64)."""
    model.default = Script(text="Here is what I can tell.")
    await bots.start(**SEVERAL_MODELS)  # images are taken: one of the models sees them
    # A photo that compresses badly, about 4 MB: with its base64, far beyond the frame limit of
    # a question without images.
    noise = Image.frombytes("RGB", (1200, 1200), os.urandom(1200 * 1200 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")
    photo = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    assert len(photo) > 5 * MAX_FRAME_BYTES
    images = [
        {"name": "damaged.png", "type": "image/png", "data": "data:image/png;base64,@@not base64@@"},
        {"name": "noise.png", "type": "image/png", "data": photo},
    ]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(bots.url) as page:
            assert page.status == 200
        async with session.ws_connect(f"{bots.url}ws") as ws:
            hello = await ws.receive_json(timeout=5)
            assert hello["type"] == "hello" and hello["maxImages"] == 4 and hello["maxImageBytes"] == 10_000_000
            assert hello["model"] == {"id": DEFAULT_MODEL_ID, "name": DEFAULT_NAME, "vision": False}
            await ws.send_str(json.dumps({"type": "ask", "id": "q1", "text": "Can you see them?", "images": images}))
            while (reply := await ws.receive_json(timeout=15))["type"] != "reply" or reply["streaming"]:
                pass
    assert reply["model"] == DEFAULT_NAME
    assert reply["text"] == (
        "Here is what I can tell.\n\n"
        "ℹ️ damaged.png arrived damaged, so I couldn't look at it.\n"
        f"ℹ️ {DEFAULT_NAME} can't see images, so I didn't look at the image. /model {VISION_NAME} can."
    )
    assert conversation(model.requests[-1].body) == ["Can you see them?"]


async def test_the_model_picker_switches_the_conversations_model_and_a_reload_keeps_it(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    model.default = Script(text="Nice to meet you, Ada.")
    await bots.start(**SEVERAL_MODELS)
    chat = await ChatPage.open(await browser.new_context(), bots.url, picker=True)
    assert await chat.page.locator("#models option").all_inner_texts() == [
        DEFAULT_NAME,
        TEXT_NAME,
        VISION_NAME + SEES_IMAGES,
    ]
    await chat.ask("My name is Ada.")
    await chat.answer()
    assert model.requests[-1].body["model"] == DEFAULT_MODEL_ID
    await expect(chat.labels.last).to_have_text(DEFAULT_NAME)

    await chat.choose(TEXT_NAME)
    await chat.ask("What is my name?")
    await chat.answer()
    request = model.requests[-1]
    assert request.body["model"] == TEXT_MODEL
    assert conversation(request.body) == ["My name is Ada.", "Nice to meet you, Ada.", "What is my name?"]
    assert await chat.labels.all_inner_texts() == [DEFAULT_NAME, TEXT_NAME]  # each answer names its model

    await chat.reload(messages=4)  # the picker still shows the choice (`connected` checks it)
    await chat.ask("Who answers now?")
    await chat.answer()
    assert model.requests[-1].body["model"] == TEXT_MODEL
    await expect(chat.labels.last).to_have_text(TEXT_NAME)

    await chat.ask(f"/model {VISION_NAME.lower()}")  # typed, as the replies' hints say
    await expect(chat.notice).to_have_text(
        f"This conversation now answers with {VISION_NAME}. The earlier messages are kept."
    )
    await expect(chat.page.locator("#models option:checked")).to_have_text(VISION_NAME + SEES_IMAGES)
    await chat.ask("/model Gemini")
    await expect(chat.notice).to_have_text(
        f"There is no model called “Gemini” here. The models: {DEFAULT_NAME}, {TEXT_NAME}, {VISION_NAME}."
    )
    await expect(chat.page.locator("#models option:checked")).to_have_text(VISION_NAME + SEES_IMAGES)
    await expect(chat.messages).to_have_count(6)  # commands are not messages
    assert len(model.requests) == 3

    other = await ChatPage.open(await browser.new_context(), bots.url, picker=True)  # another browser
    assert await other.page.locator("#models option:checked").inner_text() == DEFAULT_NAME


async def test_a_photo_reaches_the_vision_model_scaled_down_and_shows_in_the_conversation(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    model.default = Script(text="A red picture with a blue square.")
    await bots.start(**SEVERAL_MODELS)
    chat = await ChatPage.open(await browser.new_context(), bots.url, picker=True)
    await chat.choose(VISION_NAME + SEES_IMAGES)
    await chat.attach(file("photo.png", png(3000, 2000)))
    await expect(chat.tray).to_have_attribute("alt", "photo.png")
    await chat.ask("What is in this photo?")
    await chat.answer()

    question = chat.messages.first
    await expect(question.locator("img")).to_have_count(1)
    assert (await question.locator("img").get_attribute("src") or "").startswith("data:image/png;base64,")
    assert await question.locator(".body").inner_text() == "What is in this photo?"
    await expect(chat.tray).to_have_count(0)
    await expect(chat.labels.last).to_have_text(VISION_NAME)
    asked = model.requests[-1].body
    assert asked["model"] == VISION_MODEL
    assert text_of(asked["messages"][-1]) == "What is in this photo?"
    [url] = image_urls(asked["messages"][-1])
    sent = sent_image(url)
    assert max(sent.size) <= 1568 and abs(sent.width / sent.height - 1.5) < 0.01, sent.size

    # An image alone, pasted: the bubble shows it, the model is asked about it.
    await chat.paste_image(png(800, 600))
    await expect(chat.tray).to_have_count(1)
    await chat.page.press("#input", "Enter")
    await chat.answer()
    alone = chat.messages.nth(2)
    await expect(alone.locator("img")).to_have_count(1)
    assert await alone.locator(".body").inner_text() == ""
    last = model.requests[-1].body["messages"][-1]
    assert text_of(last) == "What's in this image?"
    assert sent_image(image_urls(last)[0]).size == (800, 600)
    assert len(image_urls(model.requests[-1].body["messages"][1])) == 1  # the photo is still in view

    await chat.reload(messages=4)
    assert await chat.transcript() == [
        ("user", "1 image\nWhat is in this photo?"),
        ("bot", "A red picture with a blue square."),
        ("user", "1 image"),  # as it was sent: the image alone, not the question the model was asked
        ("bot", "A red picture with a blue square."),
    ]


async def test_an_image_a_model_cannot_use_is_explained_and_the_text_still_answered(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    model.default = Script(text="Here is my answer.")
    await bots.start(**SEVERAL_MODELS)
    chat = await ChatPage.open(await browser.new_context(), bots.url, picker=True)
    await chat.attach(file("photo.png", png(3000, 2000)))
    await chat.ask("What is in this photo?")
    assert await chat.answer() == (
        "Here is my answer.\n\n"
        f"ℹ️ {DEFAULT_NAME} can't see images, so I didn't look at the image. /model {VISION_NAME} can."
    )
    assert conversation(model.requests[-1].body) == ["What is in this photo?"]  # no image sent

    await chat.choose(VISION_NAME + SEES_IMAGES)
    await chat.attach(file("broken.png", b"\x89PNG\r\n\x1a\n but then nothing of a picture"))
    await chat.ask("Are you still there?")
    assert await chat.answer() == "Here is my answer.\n\nℹ️ broken.png could not be read as an image."
    last = model.requests[-1].body["messages"][-1]
    assert last == {"role": "user", "content": "Are you still there?"}

    # Only an unusable image, and no text: nothing to answer; the page gives it all back.
    await chat.attach(file("broken.png", b"not an image at all"))
    await chat.page.press("#input", "Enter")
    await expect(chat.notice).to_have_text("broken.png could not be read as an image.")
    await expect(chat.messages).to_have_count(4)
    await expect(chat.tray).to_have_count(1)
    assert len(model.requests) == 2


async def test_the_page_takes_four_images_at_most_and_refuses_large_or_other_files(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    await bots.start(**SEVERAL_MODELS)  # one of them sees images: the page takes them
    chat = await ChatPage.open(await browser.new_context(), bots.url, picker=True)
    small = png(40, 30)
    await chat.attach(*(file(f"photo{n}.png", small) for n in range(1, 6)))
    await expect(chat.notice).to_have_text("You can send up to 4 images with one message.")
    await expect(chat.tray).to_have_count(4)
    await chat.page.click("[aria-label='Remove photo2.png']")
    assert [await image.get_attribute("alt") for image in await chat.tray.all()] == [
        "photo1.png",
        "photo3.png",
        "photo4.png",
    ]

    await chat.attach(file("huge.png", small + bytes(10_000_001)))
    await expect(chat.notice).to_have_text("huge.png is larger than 10 MB, the most one image may be.")
    await chat.attach(file("photo.bmp", b"BM", "image/bmp"))
    await expect(chat.notice).to_have_text("photo.bmp isn't a PNG, JPEG, WebP or GIF image.")
    await chat.attach(file("archive.zip", b"PK", "application/zip"))
    await expect(chat.notice).to_have_text(
        "archive.zip isn't a file I can read: "
        "send images, documents (PDF, Word, PowerPoint, Excel, HTML) or text files."
    )
    await chat.paste_image(small)
    await chat.paste_image(small)
    await expect(chat.notice).to_have_text("You can send up to 4 images with one message.")
    await expect(chat.tray).to_have_count(4)
    await expect(chat.messages).to_have_count(0)
    assert model.requests == []


async def test_without_a_model_that_sees_images_the_page_takes_none_and_images_sent_anyway_are_skipped_unread(
    model: FakeModelServer, bots: WebBots, browser: Browser, key_prefix: str, raw_redis: Any
) -> None:
    model.default = Script(text="Here is my answer.")
    await bots.start()  # MODEL_ID's model alone: it sees no images
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await expect(chat.page.locator("#attach")).to_be_visible()  # for documents and text files
    await chat.paste_image(png(40, 30))
    await expect(chat.notice).to_have_text("This chat doesn't take images.")
    await expect(chat.tray).to_have_count(0)

    # A client that sends one anyway: named and skipped, unread, and the question answered.
    photo = {"name": "photo.png", "type": "image/png", "data": "data:image/png;base64," + b64(png(40, 30))}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        assert (await hello_of(session, bots.url))["maxImages"] == 0
        async with session.ws_connect(f"{bots.url}ws") as ws:
            await ws.receive_json(timeout=5)
            await ws.send_json({"type": "ask", "id": "q1", "text": "What is this?", "images": [photo]})
            while (reply := await ws.receive_json(timeout=15))["type"] != "reply" or reply["streaming"]:
                pass
        hello = await hello_of(session, bots.url)
    assert reply["text"] == "Here is my answer.\n\nℹ️ This chat doesn't take images, so I skipped photo.png."
    assert conversation(model.requests[-1].body) == ["What is this?"]
    assert [(entry["role"], entry["images"]) for entry in hello["history"]] == [("user", 0), ("assistant", 0)]
    assert await raw_redis.keys(f"{key_prefix}*image*") == []


async def test_listening_beyond_loopback_needs_a_password_and_the_password_is_asked(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    open_to_all = await bots.launch(WEB_HOST="0.0.0.0")
    assert await asyncio.wait_for(open_to_all.process.wait(), 30) == 2
    await eventually(lambda: "WEB_PASSWORD" in open_to_all.stderr, 5, "the reason on stderr")
    assert "Configuration error: WEB_HOST='0.0.0.0'" in open_to_all.stderr

    await bots.start(WEB_PASSWORD="correct horse")
    async with aiohttp.ClientSession() as session:
        for headers in ({}, {"Authorization": aiohttp.encode_basic_auth("anyone", "wrong")}):
            async with session.get(bots.url, headers=headers) as refused:
                assert refused.status == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")
            async with session.get(f"{bots.url}ws", headers=headers) as socket:
                assert socket.status == 401
        right = {"Authorization": aiohttp.encode_basic_auth("someone", "correct horse")}
        async with session.get(bots.url, headers=right) as page:
            assert page.status == 200
    context = await browser.new_context(http_credentials={"username": "anyone", "password": "correct horse"})
    chat = await ChatPage.open(context, bots.url)
    await chat.ask("Is this private?")
    assert CODE in await chat.answer()


# -- stop, regenerate, copy -----------------------------------------------------------------


async def test_stop_keeps_the_text_so_far_marked_stopped_with_the_button_or_esc(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    model.default = Script(tokens=400, rate=20)  # 20 s, unless stopped
    await bots.start()
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    stop = chat.page.locator("#stop")
    await expect(stop).to_be_hidden()
    await chat.ask("Count slowly")
    reply = chat.replies.last
    await expect(reply.locator(".body")).to_contain_text("w5")
    await expect(stop).to_be_visible()
    await stop.click()
    await expect(reply).to_have_attribute("data-state", "done", timeout=5000)
    shown = await reply.locator(".body").inner_text()
    assert shown.startswith("w0 w1 w2 w3 w4 w5") and shown.endswith(f"\n\n⚠️ {FailureKind.STOPPED.reason}"), shown
    assert len(shown.split()) < 200
    await expect(reply.locator(".warning")).to_have_text(f"⚠️ {FailureKind.STOPPED.reason}")
    await expect(stop).to_be_hidden()
    await eventually(lambda: model.requests[-1].outcome == "disconnected", 5, "the model stream closed")

    await chat.ask("Count again")
    second = chat.replies.last
    await expect(second.locator(".body")).to_contain_text("w3")
    await chat.page.keyboard.press("Escape")
    await expect(second).to_have_attribute("data-state", "done", timeout=5000)
    assert (await second.locator(".body").inner_text()).endswith(f"⚠️ {FailureKind.STOPPED.reason}")
    live = await chat.transcript()

    await chat.reload(messages=4)  # stored as stopped, shown as it was
    assert await chat.transcript() == live
    assert chat.errors == []


async def test_regenerate_writes_the_last_answer_again_in_its_place(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    answers = iter(["The first answer.", "Another answer, written again.", "A second question's answer."])
    model.responder = lambda body: Script(text=next(answers), rate=20)
    await bots.start()
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    regenerate = chat.page.locator(".message.bot .again")
    await chat.ask("Tell me something")
    assert await chat.answer() == "The first answer."
    await expect(regenerate.locator("visible=true")).to_have_count(1)

    await regenerate.click()
    await expect(chat.messages).to_have_count(2)  # in place: no new message
    assert await chat.answer() == "Another answer, written again."
    assert conversation(model.requests[-1].body) == ["Tell me something"]  # the old answer is not sent
    assert await chat.transcript() == [("user", "Tell me something"), ("bot", "Another answer, written again.")]

    await chat.ask("And another thing")
    await chat.answer()
    assert await regenerate.nth(0).is_hidden() and await regenerate.nth(1).is_visible()  # the last answer only
    await chat.reload(messages=4)
    assert await chat.transcript() == [
        ("user", "Tell me something"),
        ("bot", "Another answer, written again."),
        ("user", "And another thing"),
        ("bot", "A second question's answer."),
    ]


# As on a page served over plain http (not localhost): no navigator.clipboard. The test reads
# the clipboard through the real one, kept aside.
NO_ASYNC_CLIPBOARD = """(() => {
  const real = Object.getOwnPropertyDescriptor(Navigator.prototype, "clipboard");
  Object.defineProperty(Navigator.prototype, "clipboard", { get: () => undefined, configurable: true });
  window.readClipboardForTest = () => real.get.call(navigator).readText();
})()"""


async def test_copy_buttons_copy_whole_messages_and_code_without_the_async_clipboard(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    await bots.start()
    context = await browser.new_context()
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    await context.add_init_script(NO_ASYNC_CLIPBOARD)
    chat = await ChatPage.open(context, bots.url)
    assert await chat.page.evaluate("navigator.clipboard") is None

    async def copied(button: Any) -> str:
        await button.click()
        await expect(button).to_have_text("Copied")
        return str(await chat.page.evaluate("readClipboardForTest()"))

    await chat.ask("How do I print three lines in Python?\nShow me.")
    await chat.answer()
    assert await copied(chat.replies.last.locator(".actions .copy")) == CODE_ANSWER  # its Markdown, whole
    assert await copied(chat.replies.last.locator(".codeblock .copy")) == CODE
    question = chat.messages.first
    await question.hover()
    assert await copied(question.locator(".actions .copy")) == "How do I print three lines in Python?\nShow me."
    assert chat.errors == []


# -- several conversations ------------------------------------------------------------------


async def test_a_browser_keeps_a_list_of_conversations_to_switch_rename_and_delete(
    model: FakeModelServer, bots: WebBots, browser: Browser, key_prefix: str, raw_redis: Any
) -> None:
    model.responder = lambda body: Script(text=f"About {conversation(body)[-1]}.")
    bot = await bots.start()
    context = await browser.new_context()
    chat = await ChatPage.open(context, bots.url)
    rows = chat.page.locator("#conversations .conversation")
    titles = chat.page.locator("#conversations .open")
    await expect(rows).to_have_count(1)
    first_question = "Tell me about <b>apples</b>" + " and more" * 20
    await chat.ask(first_question)
    await chat.answer()
    first_title = " ".join(first_question.split())[:79] + "…"
    await expect(titles).to_have_text([first_title])  # titled from its first question, as text
    await expect(chat.page.locator("#heading")).to_have_text(first_title)

    await chat.page.click("#new")
    await expect(chat.messages).to_have_count(0)
    await expect(rows).to_have_count(2)
    await chat.ask("Pears?")
    await chat.answer()
    assert conversation(model.requests[-1].body) == ["Pears?"]  # a conversation of its own
    await expect(titles).to_have_text(["Pears?", first_title])  # the most recently used first
    await expect(rows.first).to_have_class("conversation current")

    await titles.nth(1).click()  # back to the first
    await expect(chat.page.locator("#heading")).to_have_text(first_title)
    await expect(chat.messages).to_have_count(2)
    assert (await chat.transcript())[0] == ("user", first_question)
    await chat.ask("And green ones?")
    await chat.answer()
    assert conversation(model.requests[-1].body) == [first_question, f"About {first_question}.", "And green ones?"]
    await expect(titles).to_have_text([first_title, "Pears?"])

    pears = rows.nth(1)
    await pears.hover()
    await pears.locator(".rename").click()
    hostile = "<img src=x onerror=\"window.pwned = 'title'\"> Pears & co"
    await pears.locator("input").fill(hostile)
    await pears.locator("input").press("Enter")
    await expect(titles).to_have_text([first_title, hostile])
    await expect(chat.page.locator("#conversations img, #conversations b")).to_have_count(0)

    chat_id = (await context.cookies())[0]["value"]
    pears_id = await pears.get_attribute("data-id")
    assert pears_id and pears_id != "0"
    histories = sorted(await raw_redis.keys(f"{key_prefix}chat:*:history"))
    # The first conversation is the thread the page always used: what it held is not lost.
    assert histories == sorted(
        [f"{key_prefix}chat:{{web:{chat_id}}}:history", f"{key_prefix}chat:{{web:{chat_id}:{pears_id}}}:history"]
    )

    await chat.reload(messages=4)  # the list, and the conversation this tab showed
    await expect(titles).to_have_text([first_title, hostile])
    await bots.stop(bot)
    await bots.start()
    await chat.reload(messages=4)
    chat.errors.clear()  # the page's attempts to reconnect while no bot ran
    await expect(titles).to_have_text([first_title, hostile])
    await titles.nth(1).click()
    await expect(chat.page.locator("#heading")).to_have_text(hostile)
    await expect(chat.messages).to_have_count(2)
    await chat.reload(messages=2)
    await expect(rows.nth(1)).to_have_class("conversation current")

    chat.page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await rows.nth(1).locator(".delete").click()  # the conversation shown: another one is shown
    await expect(titles).to_have_text([first_title])
    await expect(chat.messages).to_have_count(4)
    assert await raw_redis.keys(f"{key_prefix}chat:*{pears_id}*:history") == []
    chat.page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await rows.first.locator(".delete").click()  # the last one: a new, empty one
    await expect(chat.messages).to_have_count(0)
    await expect(titles).to_have_text(["New conversation"])
    assert await chat.page.evaluate("window.pwned") is None
    assert chat.errors == []


async def test_without_redis_the_list_of_conversations_lives_in_the_process(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    model.responder = lambda body: Script(text=f"About {conversation(body)[-1]}.")
    await bots.start(REDIS_URL="memory://")
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    await chat.ask("Apples?")
    await chat.answer()
    await chat.page.click("#new")
    await chat.ask("Pears?")
    await chat.answer()
    titles = chat.page.locator("#conversations .open")
    await expect(titles).to_have_text(["Pears?", "Apples?"])
    await chat.reload(messages=2)
    await expect(titles).to_have_text(["Pears?", "Apples?"])
    await titles.nth(1).click()
    await expect(chat.page.locator("#heading")).to_have_text("Apples?")
    assert await chat.transcript() == [("user", "Apples?"), ("bot", "About Apples?.")]


class Frames:
    """Every frame a socket is sent, gathered as it arrives."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self._reading = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                self.seen.append(json.loads(message.data))

    async def close(self) -> None:
        await self.ws.close()
        await self._reading


def chat_id_of(session: aiohttp.ClientSession) -> str:
    return next(cookie.value for cookie in session.cookie_jar if cookie.key == "chat_id")


def thread_of(chat_id: str, conversation_id: str) -> str:
    return f"web:{chat_id}" if conversation_id == "0" else f"web:{chat_id}:{conversation_id}"


def history_key(key_prefix: str, session: aiohttp.ClientSession, conversation_id: str) -> str:
    return f"{key_prefix}chat:{{{thread_of(chat_id_of(session), conversation_id)}}}:history"


async def eventually_gone(raw_redis: Any, key: str) -> None:
    """Wait until Redis no longer holds `key` (an answer being stored may hold it for a moment)."""
    deadline = time.monotonic() + 5
    while await raw_redis.exists(key):
        assert time.monotonic() < deadline, f"{key} is still there"
        await asyncio.sleep(0.05)


async def ask_and_delete(
    session: aiohttp.ClientSession, asking: WebBots, deleting: WebBots, question: str, delay: float
) -> str:
    """Two tabs of the browser show the conversation it last used; one (of the bot at `asking`)
    asks in it, the other (at `deleting`) deletes it, `delay` seconds after the question (before
    it, if negative). Once the question is refused or answered: that conversation's id."""
    target = (await hello_of(session, asking.url))["conversation"]
    asker = Frames(await session.ws_connect(f"{asking.url}ws?conversation={target}"))
    deleter = Frames(await session.ws_connect(f"{deleting.url}ws?conversation={target}"))
    await eventually(lambda: bool(asker.seen and deleter.seen), 5, "both pages' hellos")
    answered_before = sum(len(bot.logs("turn_finished")) for bot in asking.started)
    frames = [
        (asker, {"type": "ask", "id": question, "text": f"{question}?"}),
        (deleter, {"type": "delete", "id": target}),
    ]
    for page, frame in frames if delay >= 0 else reversed(frames):
        await page.ws.send_json(frame)
        await asyncio.sleep(abs(delay))

    def settled() -> bool:
        refused = any(frame["type"] == "refused" and frame["question"] == question for frame in asker.seen)
        return refused or sum(len(bot.logs("turn_finished")) for bot in asking.started) > answered_before

    await eventually(settled, 15, f"{question} refused or answered")
    await asker.close()
    await deleter.close()
    return target


@pytest.mark.parametrize("processes", [1, 2])
async def test_a_conversation_deleted_while_another_tab_asks_in_it_stays_deleted(
    model: FakeModelServer, bots: WebBots, key_prefix: str, raw_redis: Any, processes: int
) -> None:
    """One tab asks, another of the same browser (on the same bot process, or on another one
    sharing Redis) deletes the conversation a few milliseconds before or after: the delete wins,
    whether the question was refused or answered meanwhile."""
    model.default = Script(text="An answer of a few words, written quickly.", rate=200)
    await bots.start()
    others = WebBots(model.base_url, key_prefix) if processes == 2 else bots
    try:
        if others is not bots:
            await others.start()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            deleted: list[str] = []
            for attempt, delay in enumerate([-0.003, -0.001, 0, 0.001, 0.003, -0.002, 0.002, 0]):
                deleted.append(await ask_and_delete(session, bots, others, f"question {attempt}", delay))
                await eventually_gone(raw_redis, history_key(key_prefix, session, deleted[-1]))
            assert deleted[0] == "0"  # the browser's first conversation, then fresh ones
            histories = [history_key(key_prefix, session, conversation_id) for conversation_id in deleted]

            hello = await hello_of(session, bots.url)
            assert not {item["id"] for item in hello["conversations"]} & set(deleted)
            assert hello["conversation"] not in deleted
            async with session.ws_connect(f"{others.url}ws?conversation={deleted[-1]}") as ws:
                assert (await ws.receive_json(timeout=5))["conversation"] not in deleted
                await ws.send_json({"type": "ask", "id": "last", "text": "Still there?"})  # the browser still works
                while (reply := await ws.receive_json(timeout=15))["type"] != "reply" or reply["streaming"]:
                    pass
            assert reply["text"] == model.default.answer
            assert await raw_redis.exists(*histories) == 0
    finally:
        if others is not bots:
            await others.close()


async def test_other_tabs_of_the_conversation_see_a_new_answer_as_it_is_written(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    model.default = Script(text=" ".join(f"word{n}" for n in range(30)), rate=20)  # 1.5 s
    await bots.start()
    context = await browser.new_context()
    asker, watcher = await ChatPage.open(context, bots.url), await ChatPage.open(context, bots.url)
    other_browser = await ChatPage.open(await browser.new_context(), bots.url)
    await asker.ask("Say thirty words")
    await expect(watcher.replies.last).to_have_attribute("data-state", "streaming")
    await expect(watcher.messages.first.locator(".body")).to_have_text("Say thirty words")
    await expect(watcher.page.locator("#stop")).to_be_visible()
    await watcher.page.fill("#input", "me too")
    assert await watcher.page.is_disabled("#send")  # an answer is being written here
    assert await watcher.answer() == await asker.answer() == model.default.answer
    assert await watcher.page.is_enabled("#send")
    await expect(watcher.page.locator("#conversations .open")).to_have_text(["Say thirty words"])
    assert len(model.requests) == 1
    # Another browser's page, connected all along, was sent none of it: its own question, asked after on the same
    # socket, is answered, and its page shows that alone (a page that had lost its socket would show nothing too).
    await expect(other_browser.page.locator("#status.online")).to_be_attached()
    await other_browser.ask("Only mine")
    assert await other_browser.answer() == model.default.answer
    assert await other_browser.transcript() == [("user", "Only mine"), ("bot", model.default.answer)]
    await expect(other_browser.page.locator("#conversations .open")).to_have_text(["Only mine"])

    model.default = Script(text="Written again.", rate=20)
    await asker.page.locator(".message.bot .again").click()
    await expect(watcher.replies.last.locator(".body")).to_have_text("Written again.")  # in place, there too
    await expect(watcher.replies.last).to_have_attribute("data-state", "done")
    await expect(watcher.messages).to_have_count(2)


# -- fixes ----------------------------------------------------------------------------------


# The page keeps its socket to itself (its modules put nothing on window): the test keeps the
# last one the page opened, to drop it.
KEEP_SOCKET = """(() => {
  const Real = WebSocket;
  window.WebSocket = class extends Real {
    constructor(...args) {
      super(...args);
      window.socketForTest = this;
    }
  };
})()"""


async def test_a_page_whose_socket_drops_mid_answer_reconnects_and_shows_all_of_it(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    model.default = Script(tokens=60, rate=20)  # 3 s
    await bots.start()
    context = await browser.new_context()
    await context.add_init_script(KEEP_SOCKET)
    chat = await ChatPage.open(context, bots.url)
    await chat.ask("Count to sixty")
    reply = chat.replies.last
    await expect(reply.locator(".body")).to_contain_text("w8")
    await chat.page.fill("#input", "next question")
    await chat.page.evaluate("socketForTest.close()")  # as when a network drops

    await expect(chat.page.locator("#status.online")).to_have_count(0)
    await chat.connected()
    await expect(chat.replies.last).to_have_attribute("data-state", "streaming")
    await expect(chat.messages).to_have_count(2)
    assert await chat.page.is_disabled("#send")  # until the answer is done
    assert await chat.answer() == model.default.answer  # what was sent before, and the rest
    await expect(chat.messages).to_have_count(2)
    assert await chat.page.is_enabled("#send")


async def test_failed_answers_show_after_a_reload_as_they_did_live_and_are_not_sent_again(
    model: FakeModelServer, bots: WebBots, browser: Browser
) -> None:
    scripts = [
        Script(failure="http_500"),
        Script(text="Part of an answer, then the cut", rate=40, failure="cut", fail_after=3),
        Script(text="```python\nprint(1)\nand then it stalls", rate=40, failure="stall", fail_after=4),
        Script(failure="http_429", retry_after=1),
    ]
    model.responder = lambda body: scripts.pop(0) if scripts else Script(text="Fine now.")
    await bots.start(MODEL_TIMEOUT_SECONDS="1")
    chat = await ChatPage.open(await browser.new_context(), bots.url)
    questions = ["One?", "Two?", "Three?", "Four?"]
    for question in questions:
        await chat.ask(question)
        await chat.answer()
    live = await chat.transcript()
    reasons = [text.rsplit("⚠️ ", 1)[-1] for role, text in live if role == "bot"]
    assert reasons[:3] == [FailureKind.UNAVAILABLE.reason, FailureKind.CUT.reason, FailureKind.STALLED.reason]
    assert reasons[3].startswith("The model service is rate-limiting me"), reasons[3]
    assert live[3][1].startswith("Part of an") and "print(1)" in live[5][1]
    await expect(chat.page.locator(".message.bot .warning")).to_have_count(4)

    await chat.reload(messages=8)
    assert await chat.transcript() == live
    await expect(chat.page.locator(".message.bot .warning")).to_have_count(4)
    await expect(chat.page.locator(".message.bot pre code")).to_have_text(["print(1)\nand then"])

    await chat.ask("Are you back?")
    assert await chat.answer() == "Fine now."
    # Only the question just before, with why it went unanswered; not the four merged into one.
    assert conversation(model.requests[-1].body) == [
        "Four?",
        f"[This answer was not finished: {reasons[3]}]",
        "Are you back?",
    ]


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


async def test_one_socket_may_have_three_questions_waiting_and_the_bots_memory_stays_flat(
    model: FakeModelServer, bots: WebBots
) -> None:
    model.default = Script(text="Noted.", first_token_delay=0.5)
    bot = await bots.start(CONTEXT_TOKENS="32768")  # a 50 KB question fits

    def question(number: int) -> str:
        return json.dumps({"type": "ask", "id": f"q{number}", "text": f"{number} " + "lorem ipsum dolor " * 2800})

    async def asked(ws: aiohttp.ClientWebSocketResponse, numbers: range) -> list[dict[str, Any]]:
        """Send these questions, then a frame the server answers after them: the frames it sent meanwhile."""
        for number in numbers:
            await ws.send_str(question(number))
        await ws.send_json({"type": "model", "id": "no such model"})
        frames = []
        while "There is no model called" not in (frame := await ws.receive_json(timeout=30)).get("text", ""):
            frames.append(frame)
        return frames

    assert len(question(0)) > 50_000
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(bots.url) as page:
            assert page.status == 200
        async with session.ws_connect(f"{bots.url}ws", max_msg_size=0) as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
            await asked(ws, range(30))  # the allocator's first rounds of 50 KB frames
            await eventually(lambda: len(bot.logs("turn_finished")) >= 3, 15, "the first answers")
            await asyncio.sleep(1.5)
            before = rss_bytes(bot.pid)
            frames = await asked(ws, range(30, 330))
            after = rss_bytes(bot.pid)
    refused = [frame for frame in frames if frame["type"] == "refused"]
    assert len(refused) >= 290, [frame["type"] for frame in frames]
    assert refused[0]["reason"] == (
        "You have 3 questions waiting for their answers already: ask again once one is answered."
    )
    assert after - before < 20_000_000, f"RSS grew by {(after - before) / 1e6:.1f} MB"
    await eventually(lambda: len(bot.logs("turn_finished")) >= len(model.requests), 15, "the answers taken")


async def test_the_final_frame_goes_out_once_the_answer_is_stored(model: FakeModelServer, bots: WebBots) -> None:
    # A long answer: storing it counts its tokens first (tens of milliseconds).
    words = [f"w{n}{'x' * (n % 7)}" for n in range(18_000)]
    model.default = Script(text=" ".join(words), honor_max_tokens=False)
    await bots.start()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(bots.url) as page:
            assert page.status == 200
        async with session.ws_connect(f"{bots.url}ws", max_msg_size=0) as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
            await ws.send_json({"type": "ask", "id": "q1", "text": "Say a lot"})
            while (reply := await ws.receive_json(timeout=15))["type"] != "reply" or reply["streaming"]:
                pass
            async with session.ws_connect(f"{bots.url}ws", max_msg_size=0) as again:  # at once
                hello = await again.receive_json(timeout=5)
    assert reply["text"] == model.default.answer
    assert hello["history"] == [
        {"role": "user", "text": "Say a lot", "images": 0},
        {"role": "assistant", "text": model.default.answer, "images": 0, "answer": reply["answer"]},  # its votes' id
    ]
    assert hello["live"] == []
