"""Drive the real bot process (`python -m bot discord`) against the loopback fake Discord.

    async with DiscordWorld.open() as world:       # fake Discord (one guild) + fake model server
        channel = world.add_channel("general")      # channels and users exist before the bot connects
        alice = world.add_user("alice")
        world.answer("hello", Script(text="the answer", rate=50))
        await world.start_bot(DISCORD_BLOCKED_USER_IDS="…")  # waits for IDENTIFY and the command sync
        message = await world.mention(channel, alice, "hello")
        thread = await world.wait_thread(message)
        await world.wait_bot_text(thread["id"], "the answer")
        ...
    # on exit: SIGTERM, the bot must exit with status 0 within a few seconds

The bot's stderr goes to a temporary file; `BotProcess.stderr` reads it, and
`DiscordWorld.stderr_since(mark)` gives one test's slice to show when it fails.
The model server's answer is chosen per request with `world.answer(marker, Script(...))`:
a request whose last user message contains `marker` gets that script.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakes.discord import FakeDiscord, FakeGuild, FakeInteraction, FakeUser, Limits
from fakes.harness.processes import BOT_START_SECONDS, REDIS_URL, delete_keys, terminate
from fakes.model_server import FakeModelServer, RecordedRequest, Script

ROOT = Path(__file__).resolve().parents[2]
INDICATOR = " ▌"
WARNING = "⚠️"
STRIPPED_PREFIXES = ("DISCORD_", "SLACK_")
STRIPPED_VARIABLES = (
    "HF_TOKEN",
    "LOCAL_MODEL_PATH",
    "REDIS_URL",
    "INFERENCE_BASE_URL",
    "SYSTEM_PROMPT",
    "MAX_NEW_TOKENS",
    "ALLOW_DMS",
    "REDIS_KEY_PREFIX",
    "REDIS_CLUSTER",
    "LOG_LEVEL",
    "LOG_FORMAT",
)

MESSAGE_CREATE = "POST /channels/{channel_id}/messages"
MESSAGE_EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"
THREAD_FROM_MESSAGE = "POST /channels/{channel_id}/messages/{message_id}/threads"
GLOBAL_COMMANDS = "PUT /applications/{application_id}/commands"
GUILD_COMMANDS = "PUT /applications/{application_id}/guilds/{guild_id}/commands"
INTERACTION_CALLBACK = "POST /interactions/{webhook_id}/{webhook_token}/callback"
ORIGINAL_EDIT = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original"
WEBHOOK_EDIT = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
FOLLOWUP = "POST /webhooks/{webhook_id}/{webhook_token}"
# Every route through which the bot writes message text.
MESSAGE_WRITE_ROUTES = (MESSAGE_CREATE, MESSAGE_EDIT, ORIGINAL_EDIT, WEBHOOK_EDIT, FOLLOWUP)


def clean_env(**overrides: str) -> dict[str, str]:
    """The inherited environment without anything that would point the bot elsewhere."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(STRIPPED_PREFIXES) and key not in STRIPPED_VARIABLES
    }
    env.update(overrides)
    return env


# -- the bot process -------------------------------------------------------------------


class BotProcess:
    """`python -m bot …` with its stderr captured to a file (no pipe to fill up)."""

    def __init__(self, process: asyncio.subprocess.Process, stderr_path: Path) -> None:
        self.process = process
        self.stderr_path = stderr_path
        self.returncode: int | None = None

    @classmethod
    async def start(cls, *args: str, env: dict[str, str]) -> BotProcess:
        handle, name = tempfile.mkstemp(prefix="discord-bot-", suffix=".stderr")
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                *args,
                cwd=ROOT,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=handle,
                stderr=handle,
            )
        finally:
            os.close(handle)
        return cls(process, Path(name))

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; kill (and report -9) if it does not exit in time."""
        if await terminate(self.process, timeout):
            self.returncode = -9
            return -9
        self.returncode = self.process.returncode
        return self.returncode

    def cleanup(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.stderr_path.unlink()


# -- fake Discord + fake model + bot ----------------------------------------------------


@dataclass
class DiscordWorld:
    fake: FakeDiscord
    model: FakeModelServer
    key_prefix: str
    guild: FakeGuild
    bot: BotProcess | None = None
    default_script: Script = field(default_factory=lambda: Script(text="Hello from the fake model.", rate=50))
    _answers: list[tuple[str, Script]] = field(default_factory=list)
    _stderr_log: list[str] = field(default_factory=list)  # stderr of bot processes already stopped

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, *, limits: Limits | None = None) -> AsyncIterator[DiscordWorld]:
        prefix = f"test:discord:{uuid.uuid4().hex[:12]}:"
        async with FakeDiscord(limits=limits) as fake, FakeModelServer() as model:
            world = cls(fake, model, prefix, fake.add_guild("Test Guild"))
            model.responder = world._respond
            try:
                yield world
            finally:
                try:
                    await world.stop_bot(check=False)
                finally:
                    delete_keys(prefix)

    # -- model answers ---------------------------------------------------------------

    def answer(self, marker: str, script: Script) -> None:
        """Requests whose last user message contains `marker` get `script` (latest wins)."""
        self._answers.insert(0, (marker, script))

    def _respond(self, body: dict[str, Any]) -> Script:
        messages = body.get("messages") or []
        last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        if isinstance(last, list):  # content parts: the question's text and its images
            last = "\n".join(str(part.get("text", "")) for part in last)
        for marker, script in self._answers:
            if marker in last:
                return script
        return self.default_script

    def model_requests(self, marker: str) -> list[RecordedRequest]:
        """Requests whose last user message contains `marker`."""
        return [r for r in self.model.requests if marker in (r.last_user_content() or "")]

    async def wait_model_request(self, marker: str, count: int = 1, timeout: float = 10.0) -> list[RecordedRequest]:
        await self.fake.wait_for(lambda: len(self.model_requests(marker)) >= count, timeout)
        return self.model_requests(marker)

    # -- the bot -----------------------------------------------------------------------

    def bot_env(self, **settings: str) -> dict[str, str]:
        defaults = {
            "DISCORD_TOKEN": self.fake.token,
            "DISCORD_API_BASE_URL": self.fake.api_base_url,
            "DISCORD_GATEWAY_URL": self.fake.gateway_url,
            "INFERENCE_BASE_URL": f"{self.model.base_url}/v1",
            "REDIS_URL": REDIS_URL,
            "REDIS_KEY_PREFIX": self.key_prefix,
            "MODEL_TIMEOUT_SECONDS": "10",
            "LOG_LEVEL": "info",
        }
        return clean_env(**{**defaults, **settings})

    async def start_bot(self, *, ready_timeout: float = BOT_START_SECONDS, **settings: str) -> BotProcess:
        """Start the bot and wait until it has synced its commands and identified (or resumed)."""
        assert self.bot is None or not self.bot.running, "a bot is already running"
        identified = self.fake.gateway.identify_count
        syncs = self._command_syncs()
        self.bot = await BotProcess.start("discord", env=self.bot_env(**settings))
        bot = self.bot

        def ready() -> bool:
            if not bot.running:
                raise AssertionError(f"the bot exited with {bot.process.returncode}:\n{bot.stderr}")
            return (
                self.fake.gateway.identify_count > identified and self.fake.connected and self._command_syncs() > syncs
            )

        try:
            await self.fake.wait_for(ready, ready_timeout, interval=0.02)
        except TimeoutError:
            raise AssertionError(f"the bot did not connect within {ready_timeout}s:\n{bot.stderr}") from None
        return bot

    def _command_syncs(self) -> int:
        return sum(1 for r in self.fake.requests if r.route in (GLOBAL_COMMANDS, GUILD_COMMANDS) and r.status == 200)

    async def stop_bot(self, *, check: bool = True) -> int | None:
        """SIGTERM the bot; with `check`, assert it exited cleanly (status 0) and quickly."""
        bot = self.bot
        if bot is None:
            return None
        code = await bot.stop()
        self._stderr_log.append(bot.stderr)
        bot.cleanup()
        self.bot = None
        if check:
            assert code == 0, f"the bot exited with {code} after SIGTERM:\n{self._stderr_log[-1][-6000:]}"
        return code

    @property
    def stderr(self) -> str:
        return "".join(self._stderr_log) + (self.bot.stderr if self.bot else "")

    def stderr_mark(self) -> int:
        return len(self.stderr)

    def stderr_since(self, mark: int) -> str:
        return self.stderr[mark:]

    # -- scene -------------------------------------------------------------------------

    def add_channel(self, name: str, **options: bool) -> dict[str, Any]:
        return self.fake.add_text_channel(self.guild, name, **options)

    def add_user(self, name: str, **options: Any) -> FakeUser:
        return self.fake.add_user(name, **options)

    # -- acting like people ------------------------------------------------------------

    async def mention(
        self, channel: dict[str, Any] | int | str, user: FakeUser, text: str, **options: Any
    ) -> dict[str, Any]:
        return await self.fake.send_user_message(_id(channel), user, text, mentions_bot=True, **options)

    async def say(
        self, channel: dict[str, Any] | int | str, user: FakeUser, text: str, **options: Any
    ) -> dict[str, Any]:
        return await self.fake.send_user_message(_id(channel), user, text, **options)

    # -- what people see ---------------------------------------------------------------

    def bot_messages(
        self, channel: dict[str, Any] | int | str, *, after: int | str | None = None
    ) -> list[dict[str, Any]]:
        bot_id = str(self.fake.bot_user.id)
        return [
            m
            for m in self.fake.messages_in(_id(channel))
            if m["author"]["id"] == bot_id and (after is None or int(m["id"]) > int(after))
        ]

    async def wait_thread(self, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        return await self.fake.wait_for(lambda: self.fake.thread_for_message(message["id"]), timeout)

    async def wait_bot_text(
        self,
        channel: dict[str, Any] | int | str,
        expected: str | Callable[[str], bool],
        *,
        after: int | str | None = None,
        timeout: float = 10.0,
    ) -> list[dict[str, Any]]:
        """Until the bot's messages in `channel` (newer than `after`), joined, show `expected`
        with no typing indicator left; returns those messages."""

        def done() -> list[dict[str, Any]] | None:
            messages = self.bot_messages(channel, after=after)
            if not messages or any(m["content"].endswith(INDICATOR) for m in messages):
                return None
            text = "\n".join(m["content"] for m in messages)
            matched = expected(text) if callable(expected) else text == expected
            return messages if matched else None

        try:
            return await self.fake.wait_for(done, timeout)
        except TimeoutError:
            shown = [m["content"][-300:] for m in self.bot_messages(channel, after=after)]
            raise AssertionError(
                f"the bot's text in {_id(channel)} never became {expected!r}; it shows {shown!r}"
            ) from None

    async def private_answer(self, interaction: FakeInteraction, timeout: float = 15.0) -> str:
        """The ephemeral answer to `interaction`, given at once or after a defer."""

        def said() -> str | None:
            data = interaction.response_data or {}
            if data.get("content"):
                return str(data["content"])
            original = self.fake.original_response(interaction)
            return str(original["content"]) if original and original.get("content") else None

        text = await self.fake.wait_for(said, timeout)
        assert interaction.ephemeral, "the answer was for everyone to see"
        return text

    async def until_cited(self, channel: dict[str, Any], user: FakeUser, question: str, cited: str) -> None:
        """Knowledge read in the background after start-up: `question` asked by mention in `channel` (numbered each
        time) until its answer shows `cited`."""
        for attempt in range(60):
            message = await self.mention(channel, user, f"{question} ({attempt})")
            thread = await self.wait_thread(message)
            messages = await self.wait_bot_text(thread, lambda text: bool(text.strip()), timeout=20)
            if cited in "\n".join(m["content"] for m in messages):
                return
            await asyncio.sleep(1)
        raise AssertionError(f"{cited!r} was never cited: the knowledge was never read")

    async def settle(self, seconds: float = 0.4) -> None:
        """Give the bot time to do something it should not do (the negative scenarios)."""
        await asyncio.sleep(seconds)


def _id(channel: dict[str, Any] | int | str) -> int:
    return int(channel["id"]) if isinstance(channel, dict) else int(channel)


@contextlib.contextmanager
def log_shown(world: DiscordWorld) -> Iterator[DiscordWorld]:
    """The world; the bot's log lines written meanwhile are printed after (pytest shows them
    when the test failed)."""
    mark = world.stderr_mark()
    yield world
    print(f"--- bot stderr during this test ---\n{world.stderr_since(mark)}")
