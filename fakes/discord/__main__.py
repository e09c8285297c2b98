"""Run the fake Discord standalone (benchmarks): ``python -m fakes.discord --port 8099``."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence

from fakes.discord.control import _describe
from fakes.discord.models import Limits
from fakes.discord.server import FakeDiscord


async def _serve_forever(args: argparse.Namespace) -> None:
    limits = Limits.disabled() if args.no_limits else Limits()
    fake = FakeDiscord(
        token=args.token,
        limits=limits,
        host=args.host,
        port=args.port,
        thread_archive_seconds=args.thread_archive_seconds,
    )
    guild = fake.add_guild("Test Guild")
    fake.add_text_channel(guild, "general")
    fake.add_text_channel(guild, "no-threads", allow_threads=False)
    fake.add_user("alice")
    async with fake:
        print(json.dumps(_describe(fake), indent=2), flush=True)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loopback fake of Discord's REST API and gateway")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="fake-token")
    parser.add_argument("--no-limits", action="store_true", help="disable rate limits")
    parser.add_argument(
        "--thread-archive-seconds",
        type=float,
        default=None,
        help="archive threads after this many seconds without a new message "
        "(default: each thread's auto_archive_duration, in minutes)",
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve_forever(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
