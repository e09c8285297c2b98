"""The real `python -m bot slack` process against the loopback fakes, for end-to-end tests.

`SlackHarness` owns one `FakeSlack` (Web API + Socket Mode + signed HTTP delivery) and starts
bot processes pointed at it and at a `FakeModelServer`; `BotProcess` is one such process with
its stderr (JSON log lines) collected as it runs. Everything talks over real sockets: the bot
is the same program an operator runs, configured only through its environment.

    async with FakeModelServer(...) as model, FakeSlack() as fake:
        harness = SlackHarness(fake, model.base_url, key_prefix="test:abc:", streaming="off")
        bot = await harness.start_bot()          # waits for the socket (or the HTTP port)
        event, envelope = await harness.mention("C0GENERAL", "U0ALICE01", "hi")
        await bot.wait_log("turn_finished", thread=harness.thread_key("C0GENERAL", event["ts"]))
        await harness.close()                    # SIGTERM every bot, assert exit code 0
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp

from fakes.harness.processes import BOT_START_SECONDS, REDIS_URL, ROOT, free_port, terminate
from fakes.model_server import RecordedRequest
from fakes.slack import Delivery, FakeSlack, RecordedCall, StoredMessage

Mode = Literal["socket", "http"]
Streaming = Literal["auto", "off"]

SIGNING_SECRET = "e2e-signing-secret"
INDICATOR = " ▌"
# Never inherited: a developer's real tokens or Redis must not leak into a test bot.
_STRIPPED_PREFIXES = ("DISCORD_", "SLACK_")
_STRIPPED = frozenset(
    {
        "HF_TOKEN",
        "LOCAL_MODEL_PATH",
        "REDIS_URL",
        "REDIS_KEY_PREFIX",
        "INFERENCE_BASE_URL",
        "INFERENCE_PROVIDER",
        "MODEL_ID",
        "SYSTEM_PROMPT",
        "MAX_NEW_TOKENS",
        "CONTEXT_TOKENS",
        "MODEL_TIMEOUT_SECONDS",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "PORT",
        "REDIS_CLUSTER",
    }
)


def inherited_env() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if key not in _STRIPPED and not key.startswith(_STRIPPED_PREFIXES)
    }


async def eventually(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


# -- one bot process ----------------------------------------------------------------------


class BotProcess:
    """`python -m bot slack` with its stderr collected line by line (JSON logs parsed)."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.lines: list[str] = []
        self.returncode: int | None = None
        self.stopped_at_line = 0  # where the stderr written after SIGTERM begins
        self._reader = asyncio.create_task(self._read_stderr())

    @classmethod
    async def start(cls, name: str, env: Mapping[str, str], root: Path = ROOT) -> BotProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "slack",
            cwd=root,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(name, process)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.lines.append(line.decode(errors="replace"))

    def logs(self, event: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        """The bot's JSON log records, optionally only `event` with matching fields."""
        records = []
        for line in self.lines:
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if event is not None and record.get("event") != event:
                continue
            if all(record.get(key) == value for key, value in fields.items()):
                records.append(record)
        return records

    async def wait_log(self, event: str, *, count: int = 1, timeout: float = 15.0, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while len(found := self.logs(event, **fields)) < count:
            if not self.running:
                raise AssertionError(f"{self.name} exited ({self.process.returncode}) before logging {event} {fields}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not log {event} {fields} ×{count} within {timeout} s")
            await asyncio.sleep(0.02)
        return found[count - 1]

    async def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait for the exit, and return the exit code."""
        self.stopped_at_line = len(self.lines)
        if self.running and await terminate(self.process, timeout):
            self.lines.append(f"[harness] killed: no exit within {timeout} s of SIGTERM\n")
        await asyncio.wait_for(self._reader, 5)
        self.returncode = self.process.returncode
        return self.returncode if self.returncode is not None else -1


# -- the harness ----------------------------------------------------------------------------


@dataclass
class SlackHarness:
    """One fake Slack workspace and the bot processes started against it and a model server."""

    fake: FakeSlack
    model_url: str  # the model server's base URL, without /v1
    key_prefix: str
    mode: Mode = "socket"
    streaming: Streaming = "off"
    allowed_channels: tuple[str, ...] = ()
    blocked_users: tuple[str, ...] = ()
    model_timeout: float = 10.0
    extra_env: dict[str, str] = field(default_factory=dict)
    signing_secret: str = SIGNING_SECRET
    bots: list[BotProcess] = field(default_factory=list)
    port: int = 0
    bot_root: Path = ROOT  # the checkout the bots run from

    # -- processes ----------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = inherited_env()
        env.update(
            SLACK_BOT_TOKEN=self.fake.bot_token,
            SLACK_API_URL=self.fake.api_url,
            INFERENCE_BASE_URL=f"{self.model_url}/v1",
            REDIS_URL=REDIS_URL,
            REDIS_KEY_PREFIX=self.key_prefix,
            SLACK_STREAMING=self.streaming,
            SLACK_ALLOWED_CHANNEL_IDS=",".join(self.allowed_channels),
            SLACK_BLOCKED_USER_IDS=",".join(self.blocked_users),
            MODEL_TIMEOUT_SECONDS=str(self.model_timeout),
            LOG_LEVEL="info",
            LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
        )
        # Both set, the unused one empty: a developer's .env (read without overriding) can't switch modes.
        if self.mode == "socket":
            env.update(SLACK_APP_TOKEN=self.fake.app_token, SLACK_SIGNING_SECRET="")
        else:
            self.port = self.port or free_port()
            env.update(SLACK_APP_TOKEN="", SLACK_SIGNING_SECRET=self.signing_secret, PORT=str(self.port))
        env.update(self.extra_env)
        return env

    async def start_bot(self, timeout: float = BOT_START_SECONDS) -> BotProcess:
        """Start a bot and wait until it can receive events (socket open / port answering)."""
        connections = self.fake.socket_connect_count + 1
        bot = await BotProcess.start(f"bot{len(self.bots) + 1}", self.env(), self.bot_root)
        self.bots.append(bot)
        ready = self._wait_socket(bot, connections) if self.mode == "socket" else self._wait_http(bot)
        try:
            await asyncio.wait_for(ready, timeout)
        except (TimeoutError, AssertionError) as error:
            raise AssertionError(f"{bot.name} did not get ready ({error!r})\n{self.report()}") from None
        return bot

    async def _wait_socket(self, bot: BotProcess, connections: int) -> None:
        while not (self.fake.socket_connected and self.fake.socket_connect_count >= connections):
            assert bot.running, f"{bot.name} exited with {bot.process.returncode}"
            await asyncio.sleep(0.02)

    async def _wait_http(self, bot: BotProcess) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                assert bot.running, f"{bot.name} exited with {bot.process.returncode}"
                try:
                    async with session.get(self.events_url, timeout=aiohttp.ClientTimeout(total=1)):
                        return  # any HTTP answer means the server listens
                except (TimeoutError, aiohttp.ClientError):
                    await asyncio.sleep(0.05)

    async def stop_bot(self, bot: BotProcess) -> None:
        """SIGTERM one bot and assert it exited cleanly (code 0, no traceback while shutting down)."""
        code = await bot.stop()
        assert code == 0, f"{bot.name} exited with {code} after SIGTERM\n{self.report()}"
        shutdown = "".join(bot.lines[bot.stopped_at_line :])
        assert "Traceback" not in shutdown, f"{bot.name} logged a traceback on shutdown\n{self.report()}"

    async def close(self) -> None:
        """Stop every bot still running; assert each exited cleanly."""
        for bot in self.bots:
            if bot.returncode is None:
                await self.stop_bot(bot)

    def report(self) -> str:
        """Every bot's stderr, for a failing test's output."""
        return "\n".join(f"===== {bot.name} (pid {bot.pid}) stderr =====\n{bot.stderr}" for bot in self.bots)

    async def wait_turn(
        self, channel: str, thread_ts: str | None, *, count: int = 1, timeout: float = 15.0
    ) -> dict[str, Any]:
        """Wait for a `turn_finished` log of that conversation from any bot; return it."""
        key = self.thread_key(channel, thread_ts)
        deadline = time.monotonic() + timeout
        while True:
            found = [record for bot in self.bots for record in bot.logs("turn_finished", thread=key)]
            if len(found) >= count:
                return found[count - 1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no turn_finished ×{count} for {key} within {timeout} s\n{self.report()}")
            await asyncio.sleep(0.02)

    # -- workspace and addresses ------------------------------------------------------------

    def new_workspace(self) -> str:
        """Switch the fake to a fresh team id: fresh Slack rate-limit buckets and fresh bot budgets
        (both are per workspace), so one test's writes don't slow the next test's reply."""
        self.fake.team_id = f"T{uuid.uuid4().hex[:8].upper()}"
        return self.fake.team_id

    def new_dm(self, user: str) -> str:
        """A DM channel of its own between `user` and the bot (a DM's top level is one conversation)."""
        channel = f"D{uuid.uuid4().hex[:8].upper()}"
        self.fake.add_channel(channel, user, is_im=True, user=user)
        return channel

    def thread_key(self, channel: str, thread_ts: str | None) -> str:
        team = self.fake.team_id
        return f"slack:{team}:dm:{channel}" if thread_ts is None else f"slack:{team}:{channel}:{thread_ts}"

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    # -- people doing things ----------------------------------------------------------------

    async def mention(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        event_id: str | None = None,
        files: Sequence[tuple[str, str, bytes]] = (),
    ) -> tuple[dict[str, Any], str]:
        """A person @mentions the bot (with files: (name, mimetype, data)); returns (event, envelope_id)."""
        event = self.fake.app_mention_event(channel, user, text, thread_ts=thread_ts, files=files)
        return event, await self.fake.send_event(event, event_id=event_id)

    async def say(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None, **extra: Any
    ) -> tuple[dict[str, Any], str]:
        """A person posts a plain message (channel_type from the channel); returns (event, envelope_id)."""
        event = self.fake.message_event(channel, user, text, thread_ts=thread_ts, **extra)
        return event, await self.fake.send_event(event)

    async def broadcast_event(self, event: dict[str, Any], *, event_id: str | None = None) -> list[str]:
        """Deliver one event (one event_id) on every open Socket Mode connection at once."""
        return await self.fake.broadcast_event(event, event_id=event_id)

    # -- what people see --------------------------------------------------------------------

    def replies(self, channel: str, thread_ts: str | None = None) -> list[StoredMessage]:
        """Our bot's messages in a thread (or, with thread_ts None, at a channel's top level)."""
        ours = [m for m in self.fake.messages_in(channel, thread_ts) if m.bot_id == self.fake.bot_id]
        if thread_ts is not None:
            return [m for m in ours if m.ts != thread_ts]
        return [m for m in ours if m.thread_ts is None]

    def calls_for(self, methods: Iterable[str], *, channel: str | None = None, since: int = 0) -> list[RecordedCall]:
        wanted = set(methods)
        return [
            call
            for call in self.fake.calls[since:]
            if call.method in wanted and (channel is None or call.params.get("channel") == channel)
        ]

    def ack_delays(self, since: int = 0) -> list[tuple[Delivery, float | None]]:
        """Each Socket Mode delivery since `since` with its ack delay in seconds (None: never acked)."""
        out = []
        for delivery in self.fake.deliveries[since:]:
            acked = self.fake.acks.get(delivery.envelope_id)
            out.append((delivery, None if acked is None else acked - delivery.sent_at))
        return out


def user_contents(request: RecordedRequest) -> list[str]:
    return [m["content"] for m in request.body.get("messages", []) if m.get("role") != "system"]


async def started(harness: SlackHarness) -> SlackHarness:
    """Start the fake Slack, then a bot against it."""
    await harness.fake.start()
    await harness.start_bot()
    return harness


async def finished(harness: SlackHarness) -> None:
    """Stop every bot (each must exit cleanly), then the fake Slack."""
    try:
        await harness.close()
    finally:
        await harness.fake.stop()
