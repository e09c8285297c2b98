"""Benchmark: what a tool call adds to an answer, with many conversations calling tools at once.

    python -m bench.tools [--n 50] [--tool-ms 50]

The real bot process (`python -m bot discord`) against the loopback fake Discord (Discord's
limits) and model server, with the MCP server of fakes/mcp_tools.py started by the bot over
stdio; the bot on CPU 0, the fakes and the tool server (like the model server) on CPU 1. `--n`
mentions at once, one per channel; each answer calls the server's `slow` tool once (it answers
in `--tool-ms`), then the model answers from its result. Per conversation, with `time.time()`:
  to tool     the model's last tool-call chunk left the server → the bot sent the tool request
  to model    the bot had the tool's result → the model server received the next request
  bot, call   the bot had the model's whole call (its stream ended) → it sent the tool request:
              the bot's own time, without the loopback servers' (they compete for a core)
  bot, result the bot had the tool's result → it asked the model again (the result checked, cut
              to fit, added to the prompt)
  in server   the tool request sent → the tool started in the MCP server (not the bot's time)
  🔧 shown    the model's last tool-call chunk → the fake Discord received the first write showing
              the call ("🔧 `slow`" while it runs, or already "✓ `slow`") in the thread
and for the round the 429s the fake served, the replies that ended complete, and the Redis bytes
of each conversation's history (the question, the call, its result and the answer).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bench.common import pin_process
from bot.state.redis_client import hash_tag
from fakes.harness.discord_world import DiscordWorld
from fakes.harness.process_resources import children
from fakes.harness.processes import REDIS_URL
from fakes.mcp_config import fake_server, servers_file
from fakes.model_server import RecordedRequest, Script, ToolAgent, ToolCallScript

ANSWER = "Done: I slept as asked."


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def row(name: str, values: list[float], target: float | None = None) -> str:
    p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
    verdict = "" if target is None else ("  ✓" if p99 <= target else f"  ✗ (target ≤ {target:g} ms)")
    return f"{name:<11} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   max {max(values) * 1000:7.1f} ms{verdict}"


def agent(tool_ms: int) -> ToolAgent:
    def calls(text: str) -> list[ToolCallScript]:
        tag = next((word for word in text.split() if word.startswith("conv")), "")
        return [ToolCallScript("slow", json.dumps({"ms": tool_ms, "tag": tag}))] if tag else []

    return ToolAgent(calls, answer=lambda _: ANSWER, base=Script(rate=100))


def requests_for(world: DiscordWorld, tag: str) -> list[RecordedRequest]:
    return sorted(world.model_requests(tag), key=lambda request: request.received_at)


async def run(n: int, tool_ms: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-tools-") as scratch:
        timing = Path(scratch) / "timing.jsonl"
        async with DiscordWorld.open() as world:
            responder = agent(tool_ms)
            fallback = world.model.responder
            assert fallback is not None
            world.model.responder = lambda body: responder(body) or fallback(body)
            channels = [world.add_channel(f"c{i}") for i in range(n)]
            alice = world.add_user("alice")
            bot = await world.start_bot(
                MCP_SERVERS_FILE=str(servers_file(Path(scratch), fake=fake_server(MCP_TIMING_FILE=timing)))
            )
            if (os.cpu_count() or 1) > 1:  # as bench.discord: the bot on CPU 0, what it talks to on CPU 1
                pin_process(bot.pid, frozenset({0}))
                for child in children(bot.pid):  # the tool server (and the image workers' forkserver)
                    pin_process(child, frozenset({1}))
                os.sched_setaffinity(0, {1})
            await warm_up(world, channels[0], alice)
            started = time.time()
            mentions = await asyncio.gather(
                *(world.mention(channel, alice, f"please wait conv{i}") for i, channel in enumerate(channels))
            )
            threads = await asyncio.gather(*(world.wait_thread(message, timeout=60) for message in mentions))
            done = await asyncio.gather(
                *(
                    world.wait_bot_text(thread, lambda text: ANSWER in text and "✓ `slow`" in text, timeout=120)
                    for thread in threads
                ),
                return_exceptions=True,
            )
            elapsed = time.time() - started
            runs = {entry["tag"]: entry for entry in map(json.loads, timing.read_text().splitlines())}
            calls, results_sent = bot_calls(world.stderr)
            to_tool, to_model, in_server, shown, own, own_back = [], [], [], [], [], []
            for i, thread in enumerate(threads):
                tag = f"conv{i}"
                first, second = requests_for(world, tag)[-2:]
                assert first.last_token_at is not None
                call_at = first.last_token_at
                call_id = second.body["messages"][-2]["tool_calls"][0]["id"]
                asked_at, sent_at, seconds = calls[call_id]
                own.append(sent_at - asked_at)
                own_back.append(results_sent[call_id] - (sent_at + seconds))
                to_tool.append(sent_at - call_at)
                to_model.append(second.received_at - (sent_at + seconds))
                in_server.append(runs[tag]["start"] - sent_at)
                shown.append(first_line_at(world, thread, call_at) - call_at)
            too_many = sum(1 for request in world.fake.requests if request.status == 429)
            too_many_routes = {
                f"{hit.route} ({'global' if hit.is_global else hit.bucket})" for hit in world.fake.ratelimited
            }
            complete = sum(1 for result in done if not isinstance(result, BaseException))
            history = await history_bytes(world, threads)
    print(f"{n} conversations at once, each calling a stdio tool that answers in {tool_ms} ms ({elapsed:.1f} s)")
    print(row("to tool", to_tool, 20))
    print(row("to model", to_model, 20))
    print(row("bot, call", own, 20))
    print(row("bot, result", own_back, 20))
    print(row("in server", in_server))
    print(row("🔧 shown", shown, 300))
    print(f"429s {too_many} ({', '.join(sorted(too_many_routes)) or 'none'}); complete replies {complete}/{n}")
    print(f"Redis per conversation (history with the call and its result): {statistics.mean(history):,.0f} bytes")


async def warm_up(world: DiscordWorld, channel: dict[str, Any], user: Any) -> None:
    """One answer with a call first: the tool server and every connection are up before the round is timed."""
    thread = await world.wait_thread(await world.mention(channel, user, "warm up conv-warm"), timeout=30)
    await world.wait_bot_text(thread, lambda text: ANSWER in text, timeout=60)
    # The bot's start-up requests (login, the command sync) count against Discord's global limit outside its
    # own rate limits: the round starts once their second has passed.
    await asyncio.sleep(1.5)


def bot_calls(log: str) -> tuple[dict[str, tuple[float, float, float]], dict[str, float]]:
    """The bot's log of each tool call: {call id: (when the model's call arrived, when it sent the request, seconds
    until the result)}, and {call id: when its round's results went on to the model}."""
    calls, results_sent = {}, {}
    for line in log.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        if " tool_call " in line:
            calls[fields["call"]] = (float(fields["asked_at"]), float(fields["sent_at"]), float(fields["seconds"]))
        elif " tool_results_to_model " in line:
            results_sent[fields["call"]] = float(fields["at"])
    return calls, results_sent


def first_line_at(world: DiscordWorld, thread: dict[str, Any], after: float) -> float:
    """When the fake got the first write showing the call in `thread`."""
    path = f"/channels/{thread['id']}/messages"
    for request in world.fake.requests:
        body = request.json if isinstance(request.json, dict) else {}
        content = str(body.get("content", ""))
        shows_call = "🔧 `slow`" in content or "✓ `slow`" in content
        if request.path.startswith(path) and shows_call and request.time >= after:
            return request.time
    raise AssertionError(f"no write in {thread['id']} showed the call")


async def history_bytes(world: DiscordWorld, threads: list[dict[str, Any]]) -> list[int]:
    redis = aioredis.from_url(REDIS_URL)
    try:
        keys = [f"{world.key_prefix}chat:{hash_tag('discord:conv:' + str(thread['id']))}:history" for thread in threads]
        return [int(await redis.memory_usage(key) or 0) for key in keys]
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--tool-ms", type=int, default=50)
    options = parser.parse_args()
    asyncio.run(run(options.n, options.tool_ms))


if __name__ == "__main__":
    main()
