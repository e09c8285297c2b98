"""`python -m bot web` processes for the web chat's tests: the real bot, configured only through
its environment, started and stopped as an operator would."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import aiohttp

from fakes.harness.processes import BOT_START_SECONDS, REDIS_URL, ROOT, free_port
from fakes.harness.slack_world import BotProcess, eventually, inherited_env


class WebBots:
    """`python -m bot web` processes, one at a time, on one port, answers from `model_url`;
    history in Redis under `key_prefix`, or in memory without one."""

    def __init__(self, model_url: str, key_prefix: str = "") -> None:
        self.model_url = model_url
        self.key_prefix = key_prefix
        self.port = free_port()
        self.started: list[BotProcess] = []

    @property
    def url(self) -> str:
        return self.url_with("http")

    def url_with(self, scheme: str) -> str:
        return f"{scheme}://127.0.0.1:{self.port}/"

    def env(self, **settings: str) -> dict[str, str]:
        env = {key: value for key, value in inherited_env().items() if not key.startswith("WEB_")}
        # Every WEB_ setting given, even empty: a developer's .env (read without overriding) can't add one.
        env.update(
            INFERENCE_BASE_URL=f"{self.model_url}/v1",
            REDIS_URL=REDIS_URL if self.key_prefix else "memory://",
            REDIS_KEY_PREFIX=self.key_prefix,
            WEB_PORT=str(self.port),
            WEB_HOST="127.0.0.1",
            WEB_PASSWORD="",
            WEB_ALLOWED_HOSTS="",
            WEB_TRUSTED_PROXIES="",
            WEB_TLS_CERT="",
            WEB_TLS_KEY="",
            MODELS="",
            MODELS_FILE="",
            VISION_MODELS="",
            MAX_IMAGES="",
            IMAGE_MAX_SIDE="",
            MODEL_TIMEOUT_SECONDS="10",
            SHUTDOWN_GRACE_SECONDS="5",
            LOG_LEVEL="info",
            LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
        )
        env.update(settings)
        return env

    async def launch(self, **settings: str) -> BotProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "web",
            cwd=ROOT,
            env=self.env(**settings),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        bot = BotProcess(f"web{len(self.started) + 1}", process)
        self.started.append(bot)
        return bot

    async def start(self, **settings: str) -> BotProcess:
        """Start a bot and wait for the line announcing its URL (https:// with a certificate)."""
        bot = await self.launch(**settings)
        url = self.url_with("https" if settings.get("WEB_TLS_CERT") else "http")
        deadline = time.monotonic() + BOT_START_SECONDS
        while not any(f"Web chat on {url}" in line for line in bot.lines):
            assert bot.running, f"{bot.name} exited with {bot.process.returncode}:\n{bot.stderr}"
            assert time.monotonic() < deadline, f"{bot.name} did not announce {url}:\n{bot.stderr}"
            await asyncio.sleep(0.02)
        return bot

    async def refused(self, **settings: str) -> str:
        """Start a bot that must stop at once with exit status 2; its stderr."""
        bot = await self.launch(**settings)
        deadline = time.monotonic() + BOT_START_SECONDS
        while bot.running:
            assert "Web chat on" not in bot.stderr, f"{bot.name} started with {settings}"
            assert time.monotonic() < deadline, f"{bot.name} neither started nor stopped:\n{bot.stderr}"
            await asyncio.sleep(0.02)
        assert bot.process.returncode == 2, bot.stderr
        await eventually(lambda: "Configuration error" in bot.stderr, 5, "the reason on stderr")
        assert "Traceback" not in bot.stderr, bot.stderr
        return bot.stderr

    async def stop(self, bot: BotProcess) -> None:
        code = await bot.stop()
        assert code == 0, f"{bot.name} exited with {code} after SIGTERM:\n{bot.stderr}"
        assert "Traceback" not in bot.stderr, bot.stderr

    async def close(self) -> None:
        for bot in self.started:
            if bot.returncode is None and bot.running:
                await self.stop(bot)


async def hello_of(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """What a page of the browser `session` is (its cookie) is shown on connecting."""
    async with session.get(url) as page:
        assert page.status == 200
    async with session.ws_connect(f"{url}ws", max_msg_size=0) as ws:
        hello: dict[str, Any] = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello"
    return hello


async def asked_over_the_socket(bots: WebBots, text: str, files: list[dict[str, str]]) -> dict[str, Any]:
    """The final reply to one question frame carrying `files`, sent as a page sends it."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        await hello_of(session, bots.url)
        async with session.ws_connect(f"{bots.url}ws", max_msg_size=0) as ws:
            await ws.receive_json(timeout=5)
            await ws.send_json({"type": "ask", "id": "q1", "text": text, "files": files})
            while (reply := await ws.receive_json(timeout=60))["type"] != "reply" or reply["streaming"]:
                pass
    return reply
