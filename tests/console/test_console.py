"""`python -m bot` in a terminal: the real process driven through its stdin."""

from __future__ import annotations

import asyncio
import os
import sys
import time

from fakes.harness.processes import ROOT
from fakes.model_server import FakeModelServer, Script

PLATFORM_VARIABLES = (
    "DISCORD_TOKEN",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "HF_TOKEN",
    "INFERENCE_BASE_URL",
    "LOCAL_MODEL_PATH",
    "REDIS_URL",
    "SYSTEM_PROMPT",
    "MAX_NEW_TOKENS",
)


def clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PLATFORM_VARIABLES}
    env.update(overrides)
    return env


class Console:
    """The bot process with timestamps of every chunk it writes to stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.chunks: list[tuple[float, str]] = []

    @classmethod
    async def start(cls, *args: str, env: dict[str, str]) -> Console:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *args,
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    @property
    def output(self) -> str:
        return "".join(text for _, text in self.chunks)

    async def say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        await self.process.stdin.drain()

    async def read_until(self, needle: str, *, occurrences: int = 1, timeout: float = 60) -> None:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while self.output.count(needle) < occurrences:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out waiting for {needle!r}; got {self.output!r}"
            data = await asyncio.wait_for(self.process.stdout.read(256), remaining)
            assert data, f"the bot exited; output {self.output!r}"
            self.chunks.append((time.monotonic(), data.decode(errors="replace")))

    async def finish(self) -> tuple[int, str]:
        assert self.process.stdin is not None
        self.process.stdin.close()
        _, stderr = await asyncio.wait_for(self.process.communicate(), 30)
        return self.process.returncode or 0, stderr.decode()


def answers(output: str) -> list[str]:
    """The text of each bot reply shown in the terminal."""
    return [part.split("\nyou> ")[0].strip() for part in output.split("bot> ")[1:]]


async def test_embedded_model_answers_live_in_the_console_with_no_configuration() -> None:
    console = await Console.start(env=clean_env(MAX_NEW_TOKENS="60"))
    await console.read_until("you> ")
    await console.say("What is the capital of France?")
    await console.read_until("you> ", occurrences=2, timeout=90)
    code, stderr = await console.finish()
    assert code == 0, stderr
    assert "Starting console" in stderr and "SmolLM2-135M-Instruct" in stderr and "in-memory" in stderr
    reply = answers(console.output)[0]
    assert len(reply.split()) >= 3, console.output
    # Tokens arrived over time, not as one block at the end.
    reply_chunks = [at for at, text in console.chunks if text.strip() and "you>" not in text]
    assert len(reply_chunks) >= 3 and reply_chunks[-1] - reply_chunks[0] > 0.05


async def test_console_keeps_the_conversation_until_reset() -> None:
    async with FakeModelServer(Script(text="Noted.")) as server:
        env = clean_env(INFERENCE_BASE_URL=f"{server.base_url}/v1")
        console = await Console.start("console", env=env)
        for line in ("My name is Ada.", "What is my name?", "/reset", "Hello again"):
            await console.read_until(
                "you> ", occurrences=1 + ["My name is Ada.", "What is my name?", "/reset", "Hello again"].index(line)
            )
            await console.say(line)
        await console.read_until("you> ", occurrences=5)
        code, stderr = await console.finish()
    assert code == 0, stderr
    assert answers(console.output)[:2] == ["Noted.", "Noted."]
    assert "(conversation cleared)" in console.output
    second, after_reset = server.requests[1].body["messages"], server.requests[2].body["messages"]
    assert [m["content"] for m in second[1:]] == ["My name is Ada.", "Noted.", "What is my name?"]
    assert [m["content"] for m in after_reset[1:]] == ["Hello again"]


async def test_a_model_server_of_ones_own_answers_in_hugging_face_offline_mode() -> None:
    # HF_HUB_OFFLINE=1 means "don't reach the Hub"; the operator's own server is not the Hub.
    async with FakeModelServer(Script(text="Still here.")) as server:
        console = await Console.start(
            "console", env=clean_env(INFERENCE_BASE_URL=f"{server.base_url}/v1", HF_HUB_OFFLINE="1")
        )
        await console.read_until("you> ")
        await console.say("Are you there?")
        await console.read_until("you> ", occurrences=2)
        code, stderr = await console.finish()
    assert code == 0, stderr
    assert answers(console.output) == ["Still here."]
    assert "X-Amzn-Trace-Id" not in server.requests[-1].headers  # the Hub's log id is the Hub's business


async def test_an_invalid_setting_stops_start_up_naming_the_variable() -> None:
    console = await Console.start("console", env=clean_env(MAX_NEW_TOKENS="lots"))
    code, stderr = await console.finish()
    assert code == 2
    assert "MAX_NEW_TOKENS='lots' is invalid: expected a whole number" in stderr


async def test_an_unreachable_redis_stops_start_up_with_a_clear_message() -> None:
    console = await Console.start("console", env=clean_env(REDIS_URL="redis://127.0.0.1:1/0"))
    code, stderr = await console.finish()
    assert code == 2
    assert "REDIS_URL: cannot reach Redis at redis://127.0.0.1:1/0" in stderr


async def test_model_lists_and_switches_the_consoles_model() -> None:
    async with FakeModelServer(Script(text="Answered.")) as server:
        env = clean_env(INFERENCE_BASE_URL=f"{server.base_url}/v1", MODELS="small-model")
        console = await Console.start("console", env=env)
        lines = ("/model", "/model nothing-like-it", "/model small-model", "Which model?")
        for number, line in enumerate(lines, start=1):
            await console.read_until("you> ", occurrences=number)
            await console.say(line)
        await console.read_until("you> ", occurrences=len(lines) + 1)
        code, stderr = await console.finish()
    assert code == 0, stderr
    assert "This conversation answers with Mistral-7B-Instruct-v0.3.\n• Mistral-7B-Instruct-v0.3 (default)" in (
        console.output
    )
    assert "There is no model called 'nothing-like-it' here." in console.output
    assert "This conversation now answers with small-model. The earlier messages are kept." in console.output
    assert [request.body["model"] for request in server.requests] == ["small-model"]


async def test_a_thinking_model_shows_thinking_then_a_dimmed_line_and_never_the_thought() -> None:
    script = Script(text="Paris.", thought="zebracorn musings " * 20, thought_style="mistral_tags", rate=100)
    async with FakeModelServer(script) as server:
        console = await Console.start("console", env=clean_env(INFERENCE_BASE_URL=f"{server.base_url}/v1"))
        await console.read_until("you> ")
        await console.say("Capital of France?")
        await console.read_until("you> ", occurrences=2)
        code, stderr = await console.finish()
    assert code == 0, stderr
    assert "💭 Thinking… 0 s" in console.output
    assert "\r\x1b[Kbot> \x1b[2m💭 Thought for 1 s\x1b[0m\nParis.\n" in console.output
    assert "zebracorn" not in console.output and "THINK" not in console.output


async def test_with_no_input_the_terminal_session_ends_by_itself() -> None:
    # A service manager or `docker run` without -i gives the process /dev/null as its input.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "console",
        cwd=ROOT, env=clean_env(REDIS_URL="memory://"), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()[-2000:]
