"""The container deploy as a user runs it: `docker compose up -d` in a fresh checkout with a `.env`.

What a user would notice: the web chat (published on 127.0.0.1 only, behind WEB_PASSWORD)
answers through the model server, `/healthz` answers 200 and Docker reports the container
healthy, `docker stop` lets the reply being written finish or end it with the "interrupted" note
and the container exits 0 well within compose.yaml's stop_grace_period, the conversation
outlives `docker compose down` in Redis's volume, and the `shards` profile runs four Discord
processes, one shard each, that answer each message once. And the image built with
EMBEDDED_MODEL=1 answers with no key and no network.

The model server (fakes/model_server.py) and Discord (fakes/discord/) run
in this test, on the address `host.docker.internal` names inside the containers (the Docker
bridge's, on this machine). No image registry is reachable from this project's machines:
compose.yaml is pointed at images built from Debian's packages (tests/system/container/images.py) with
BASE_IMAGE and REDIS_IMAGE, as a user could point it at theirs. The first run builds them: about
8½ minutes on 2 cores, 6 of them compiling llama-cpp-python for EMBEDDED_MODEL=1; later runs find
them and take under a minute. The test starts dockerd if none is running (and stops it
afterwards), and is skipped only where Docker cannot run at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.errors import FailureKind
from config.env import Env
from config.settings import load_settings
from fakes.discord import FakeDiscord
from fakes.harness.discord_world import DiscordWorld
from fakes.harness.processes import ROOT, free_port
from fakes.model_server import FakeModelServer, Script
from tests.system.container.images import (
    BASE_IMAGE,
    REDIS_IMAGE,
    Daemon,
    DockerUnavailable,
    build_base_image,
    build_redis_image,
    compose_command,
    docker_to_ourselves,
    run,
)

BOT_IMAGE = "chatbot-test:bookworm"  # not the `chatbot` a user's own `docker compose build` makes
EMBEDDED_IMAGE = "chatbot-test-embedded:bookworm"  # built with EMBEDDED_MODEL=1
PASSWORD = "staple battery horse correct"  # WEB_PASSWORD: 12 characters or more
STOP_GRACE_PERIOD = 30.0  # compose.yaml's stop_grace_period
DRAIN_SECONDS = 4  # SHUTDOWN_GRACE_SECONDS here, to keep the test short (20 by default)
# Variables that reach `docker compose` from this process (the rest of the environment does not:
# a developer's HF_TOKEN or DISCORD_TOKEN must not reach the test's containers).
DOCKER_VARIABLES = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "DOCKER_CERT_PATH")

pytestmark = pytest.mark.timeout(1800)  # the first run builds the images


# -- the machine: Docker, the images, a fresh checkout ----------------------------------------


@dataclass(frozen=True)
class Stack:
    compose: list[str]  # `docker compose` (or a docker-compose of v2.24 or later)
    checkout: Path  # the project's files as a clone has them, without a developer's .env
    host_gateway: str  # the address host.docker.internal names inside the containers


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with docker_to_ourselves():  # one test run (one xdist worker) at a time builds, deploys and stops dockerd
        daemon = Daemon()
        try:
            daemon.ensure()
        except DockerUnavailable as error:
            pytest.skip(f"Docker cannot run on this machine: {error}")
        try:
            compose = compose_command()
            started = time.monotonic()
            build_base_image()
            build_redis_image()
            checkout = fresh_checkout(tmp_path_factory.mktemp("clone") / "chatbot")
            # A clone has no .env: compose.yaml must still load (its env_file is optional), and build.
            build_bot_image(compose, checkout, BOT_IMAGE)
            print(f"images ready in {time.monotonic() - started:.0f} s")
            yield Stack(compose, checkout, _host_gateway())
        finally:
            daemon.stop()


def fresh_checkout(target: Path) -> Path:
    """The files git would commit (tracked or new, not ignored) as they are now: what a clone has; and the
    llama-cpp-python wheel `make install` built, as prebuilt-wheels/ (see the Dockerfile), so the embedded image
    doesn't compile it again whenever requirements.txt changes."""
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT).stdout
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file() and not Path(name).name.startswith(("compose.override.", "docker-compose.override.")):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    for wheel in Path.home().glob(".cache/chatbot-wheels/llama-cpp-python-*-avx2/llama_cpp_python-*.whl"):
        (target / "prebuilt-wheels").mkdir(exist_ok=True)
        shutil.copy2(wheel, target / "prebuilt-wheels" / wheel.name)
    return target


def build_bot_image(compose: list[str], checkout: Path, image: str, **variables: str) -> None:
    """`docker compose build` of the checkout's Dockerfile (cached layers make a rebuild quick)."""
    old = _image_id(image)
    run([*compose, "build", "web"], cwd=checkout, env=compose_env(BOT_IMAGE=image, **variables), timeout=1500)
    if old and old != _image_id(image):  # the last run's image, now untagged
        subprocess.run(["docker", "image", "rm", old], capture_output=True, check=False)


def compose_env(**variables: str) -> dict[str, str]:
    env = {name: os.environ[name] for name in DOCKER_VARIABLES if name in os.environ}
    return {**env, "BASE_IMAGE": BASE_IMAGE, "REDIS_IMAGE": REDIS_IMAGE, "BOT_IMAGE": BOT_IMAGE, **variables}


def _image_id(image: str) -> str | None:
    probe = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", image], capture_output=True, text=True, check=False
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def _host_gateway() -> str:
    """What `host.docker.internal:host-gateway` (compose.yaml's extra_hosts) resolves to."""
    resolved = run(
        [
            "docker",
            "run",
            "--rm",
            "--add-host",
            "host.docker.internal:host-gateway",
            BASE_IMAGE,
            "getent",
            "hosts",
            "host.docker.internal",
        ]
    ).stdout
    return resolved.split()[0]


# -- one deployment ---------------------------------------------------------------------------


class Project:
    """`docker compose -p <a name of its own>` in the checkout, with the test's `.env`. close()
    takes it down with its volumes and network, and checks that nothing of it is left."""

    def __init__(self, stack: Stack, settings: dict[str, str], override: str = "") -> None:
        self.stack = stack
        self.name = f"chatbot-test-{uuid.uuid4().hex[:10]}"
        lines = [f"{name}={value}" for name, value in settings.items()]
        (stack.checkout / ".env").write_text("# written by tests/system/test_container.py\n" + "\n".join(lines) + "\n")
        self.files = ["-f", "compose.yaml"]
        if override:
            path = stack.checkout / f"{self.name}.override.yaml"
            path.write_text(override)
            self.files += ["-f", path.name]

    async def compose(self, *args: str, timeout: float = 300) -> str:
        return await _run([*self.stack.compose, "-p", self.name, *self.files, *args], self.stack.checkout, timeout)

    async def container(self, service: str) -> str:
        ids = (await self.compose("ps", "--all", "--quiet", service)).split()
        assert len(ids) == 1, f"{service}: containers {ids}"
        return ids[0]

    async def inspect(self, service: str, template: str) -> Any:
        container = await self.container(service)
        return json.loads(await _run(["docker", "inspect", "--format", f"{{{{json {template}}}}}", container]))

    async def wait_healthy(self, service: str, timeout: float = 120) -> None:
        """Until Docker's health check (the image's HEALTHCHECK on /healthz) calls it healthy."""
        deadline = time.monotonic() + timeout
        while True:
            state = await self.inspect(service, ".State")
            if (state.get("Health") or {}).get("Status") == "healthy":
                return
            restarts = await self.inspect(service, ".RestartCount")
            if state["Status"] in ("exited", "dead") or restarts or time.monotonic() > deadline:
                raise AssertionError(f"{service} is not healthy: {state}\n{await self.logs(service)}")
            await asyncio.sleep(0.5)

    async def logs(self, *services: str) -> str:
        return await self.compose("--profile", "shards", "logs", "--no-color", "--tail", "80", *services)

    async def close(self) -> None:
        try:
            print(f"--- {self.name} logs ---\n{await self.logs()}")  # shown when the test failed
        finally:
            await self.compose("--profile", "shards", "down", "--volumes", "--remove-orphans", "--timeout", "5")
            label = f"label=com.docker.compose.project={self.name}"
            left = {
                "containers": await _run(["docker", "ps", "--all", "--quiet", "--filter", label]),
                "volumes": await _run(["docker", "volume", "ls", "--quiet", "--filter", label]),
                "networks": await _run(["docker", "network", "ls", "--quiet", "--filter", label]),
            }
            assert not "".join(left.values()).strip(), f"{self.name} left behind: {left}"


async def _run(args: list[str], cwd: Path | None = None, timeout: float = 300) -> str:
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        env=compose_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"{' '.join(args)} took over {timeout} s") from None
    if process.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {process.returncode}:\n{out.decode()}{err.decode()}")
    return out.decode()


@pytest.fixture
async def model(stack: Stack) -> AsyncIterator[FakeModelServer]:
    """The model server, where the containers reach it (and nothing beyond this machine does)."""
    async with FakeModelServer(Script(text="Hello from inside a container."), host=stack.host_gateway) as server:
        yield server


def settings(model: FakeModelServer, **more: str) -> dict[str, str]:
    """A user's .env: the model server on this machine, as the containers name it."""
    return {
        "INFERENCE_BASE_URL": f"http://host.docker.internal:{model.port}/v1",
        "MODEL_TIMEOUT_SECONDS": "15",
        "LOG_FORMAT": "json",
        **more,
    }


# -- the web chat -----------------------------------------------------------------------------


class Tab:
    """One browser's conversation with the web chat: the page (for its cookie), then the socket."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, hello: dict[str, Any]):
        self.session, self.ws, self.hello = session, ws, hello
        self.replies: dict[str, list[dict[str, Any]]] = {}  # question id → its reply frames, in order

    @classmethod
    async def open(cls, url: str, cookies: aiohttp.CookieJar | None = None) -> Tab:
        session = aiohttp.ClientSession(
            headers={"Authorization": aiohttp.encode_basic_auth("me", PASSWORD)},
            cookie_jar=cookies or aiohttp.CookieJar(unsafe=True),
        )
        async with session.get(url) as page:
            assert page.status == 200, await page.text()
        ws = await session.ws_connect(f"{url}ws")
        hello = await ws.receive_json(timeout=10)
        assert hello["type"] == "hello", hello
        return cls(session, ws, hello)

    async def ask(self, question: str, text: str) -> None:
        await self.ws.send_json({"type": "ask", "id": question, "text": text})

    async def until(self, question: str, *, final: bool, timeout: float = 30) -> dict[str, Any]:
        """The question's first reply frame with text (final=False), or its final one."""
        deadline = time.monotonic() + timeout
        while True:
            for frame in self.replies.get(question, []):
                if (not frame["streaming"]) if final else bool(frame["text"]):
                    return frame
            message = await self.ws.receive(timeout=max(0.1, deadline - time.monotonic()))
            if message.type is not aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"the socket ended ({message.type}, {message.data}) before {question}'s reply")
            frame = json.loads(message.data)
            if frame["type"] == "reply":
                self.replies.setdefault(frame["question"], []).append(frame)
            elif frame["type"] == "refused":
                raise AssertionError(f"refused: {frame}")

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()


# -- the tests --------------------------------------------------------------------------------


async def test_compose_up_serves_the_web_chat_healthy_and_a_stop_drains_the_replies(
    stack: Stack, model: FakeModelServer
) -> None:
    metrics_port, web_port = free_port(), free_port()
    project = Project(
        stack,
        settings(model, WEB_PASSWORD=PASSWORD, WEB_PORT=str(web_port), SHUTDOWN_GRACE_SECONDS=str(DRAIN_SECONDS)),
        # /healthz where this test can ask it, and Docker's health check every second (not 15 s).
        override=f"""
services:
  web:
    ports: ["127.0.0.1:{metrics_port}:9100"]
    healthcheck: {{interval: 1s}}
""",
    )
    url = f"http://127.0.0.1:{web_port}/"
    tabs: list[Tab] = []
    try:
        await project.compose("up", "--detach", timeout=300)
        await project.wait_healthy("web")
        async with aiohttp.ClientSession() as anyone:
            async with anyone.get(f"http://127.0.0.1:{metrics_port}/healthz") as health:
                assert (health.status, await health.json()) == (200, {"status": "ok"})
            async with anyone.get(url) as no_password:
                assert no_password.status == 401  # the chat asks for WEB_PASSWORD
        ports = await project.inspect("web", ".NetworkSettings.Ports")
        assert [binding["HostIp"] for binding in ports["8080/tcp"]] == ["127.0.0.1"]  # this machine only
        # The bot service, with no platform token, waits as a terminal chat: nothing restarts.
        assert (await project.inspect("bot", ".State"))["Running"]
        assert await project.inspect("bot", ".RestartCount") == 0

        # A question is answered through the model server.
        first = await Tab.open(url)
        tabs.append(first)
        await first.ask("q1", "hi")
        answer = await first.until("q1", final=True)
        assert answer["text"] == "Hello from inside a container."
        assert model.requests[-1].last_user_content() == "hi"

        # `docker stop` while two replies stream: the one that can finish within
        # SHUTDOWN_GRACE_SECONDS does; the other ends with the note; the container exits 0.
        short_answer = "This answer is short enough to finish while the bot drains."
        model.responder = lambda body: (
            Script(text=short_answer, rate=5)  # about 2 s
            if "short" in str(body["messages"][-1]["content"])
            else Script(tokens=400, rate=10)  # 40 s: longer than the drain
        )
        second = await Tab.open(url)
        tabs.append(second)
        await first.ask("q2", "A short one, please.")
        await second.ask("q3", "A long one, please.")
        await first.until("q2", final=False)
        await second.until("q3", final=False)
        container = await project.container("web")
        assert await project.inspect("web", ".Config.StopTimeout") == STOP_GRACE_PERIOD  # what docker stop waits
        started = time.monotonic()
        stopping = asyncio.ensure_future(_run(["docker", "stop", container], timeout=STOP_GRACE_PERIOD + 30))
        finished = await first.until("q2", final=True)
        interrupted = await second.until("q3", final=True)
        await stopping
        stopped_after = time.monotonic() - started
        assert finished["text"] == short_answer
        assert interrupted["text"].startswith("w0 w1")
        assert interrupted["text"].endswith(f"⚠️ {FailureKind.INTERRUPTED.reason}")
        state = await project.inspect("web", ".State")
        assert (state["ExitCode"], state["OOMKilled"]) == (0, False), await project.logs("web")
        assert DRAIN_SECONDS - 1 < stopped_after < STOP_GRACE_PERIOD, stopped_after
        for tab in tabs:
            await tab.close()
        tabs.clear()

        # The conversation lives in Redis's volume: it outlives the containers and their network.
        await project.compose("down", "--timeout", "10")
        await project.compose("up", "--detach", timeout=300)
        await project.wait_healthy("web")
        again = await Tab.open(url, cookies=first.session.cookie_jar)
        tabs.append(again)
        assert [(entry["role"], entry["text"]) for entry in again.hello["history"][:2]] == [
            ("user", "hi"),
            ("assistant", "Hello from inside a container."),
        ]
    finally:
        for tab in tabs:
            await tab.close()
        await project.close()


async def test_the_shards_profile_runs_four_discord_processes_that_answer_each_message_once(
    stack: Stack, model: FakeModelServer
) -> None:
    async with FakeDiscord(host=stack.host_gateway) as fake:
        world = DiscordWorld(fake, model, "unused:", fake.add_guild("Shard 0 guild", shard=(0, 4)))
        model.responder = world._respond
        guilds = [world.guild] + [fake.add_guild(f"Shard {shard} guild", shard=(shard, 4)) for shard in (1, 2, 3)]
        channels = [fake.add_text_channel(guild, "general") for guild in guilds]
        alice = fake.add_user("alice")
        gateway = f"host.docker.internal:{fake.port}"
        project = Project(
            stack,
            settings(
                model,
                DISCORD_TOKEN=fake.token,
                DISCORD_API_BASE_URL=f"http://{gateway}/api/v10",
                DISCORD_GATEWAY_URL=f"ws://{gateway}/gateway",
            ),
        )
        try:
            # As docs/operators.md says: the shards in place of bot's one process (and no web chat here).
            await project.compose("--profile", "shards", "up", "--detach", "--scale", "bot=0", "--scale", "web=0")
            try:
                await fake.wait_for(lambda: len(set(fake.gateway.identified_shards)) >= 4, 120)
            except TimeoutError:
                raise AssertionError(await project.logs()) from None
            assert sorted(set(fake.gateway.identified_shards)) == [(shard, 4) for shard in range(4)]
            threads = []
            for shard, channel in enumerate(channels):
                world.answer(f"shard-q{shard}", Script(text=f"Answered on shard {shard}.", rate=50))
                threads.append(await world.wait_thread(await world.mention(channel, alice, f"shard-q{shard} hi"), 30))
                await world.wait_bot_text(threads[-1]["id"], f"Answered on shard {shard}.", timeout=30)
            await asyncio.sleep(1.0)  # time for a second answer, were another process to give one
            for shard, thread in enumerate(threads):
                assert len(world.model_requests(f"shard-q{shard}")) == 1  # asked once
                assert len(world.bot_messages(thread)) == 1  # one answer, not two
            # Each process runs its own shard, all sharing Redis: four containers, one redis.
            for shard in range(4):
                environment = await project.inspect(f"shard{shard}", ".Config.Env")
                assert {"DISCORD_SHARD_COUNT=4", f"DISCORD_SHARD_IDS={shard}", "REDIS_URL=redis://redis:6379/0"} <= set(
                    environment
                )
            grace = load_settings(Env({}), dotenv_path=None).operations.shutdown_grace_seconds
            assert grace < STOP_GRACE_PERIOD  # compose.yaml leaves the default drain its time
        finally:
            await project.close()


def test_the_embedded_model_image_answers_with_no_key_and_no_network(stack: Stack) -> None:
    """EMBEDDED_MODEL=1: llama-cpp-python compiled as the Makefile compiles it, and SmolLM2.
    Its first build takes about 6 minutes on 2 cores; later runs find it."""
    started = time.monotonic()
    build_bot_image(stack.compose, stack.checkout, EMBEDDED_IMAGE, EMBEDDED_MODEL="1")
    print(f"embedded image ready in {time.monotonic() - started:.0f} s")
    chat = run(
        [
            "docker",
            "run",
            "--rm",
            "--interactive",
            "--network",
            "none",
            EMBEDDED_IMAGE,
            "python",
            "-m",
            "bot",
            "console",
        ],
        input="What is the capital of France?\n",
        timeout=120,
    ).stdout
    assert "Chatting with local GGUF model SmolLM2" in chat, chat
    answer = chat.partition("bot> ")[2].partition("\n")[0]
    assert answer.strip() and "⚠️" not in answer, chat
