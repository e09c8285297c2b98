"""A bot process that only answers: `python -m fakes.usage_worker COUNT PERSON` builds the bot from the
environment (bot.app.build, as `python -m bot` does: REDIS_URL, REDIS_KEY_PREFIX, INFERENCE_BASE_URL, the budgets),
answers COUNT questions of PERSON at once, each in a conversation of its own, and prints one JSON line per answer:
{"answered": bool, "said": the reply's last message}. Two of them at once are two processes of one bot."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

from bot.app import build
from bot.core import Turn
from bot.reply.surface import SurfaceLimits
from bot.state.personas import Place
from config.settings import load_settings
from fakes.memory_surface import MemorySurface

SERVER = Place("worker", "server", "s1")


async def main(count: int, person: str) -> None:
    services = await build(load_settings(dotenv_path=None), console=False)
    try:

        async def ask(index: int) -> dict[str, object]:
            surface = MemorySurface(SurfaceLimits(max_length=4000, min_edit_interval=0.05))
            turn = Turn(f"worker:{uuid.uuid4().hex}", person, "Ada", f"Question {index}?", places=(SERVER,))
            result = await services.core.answer(turn, surface)
            return {"answered": result.failure is None, "said": surface.messages[-1] if surface.messages else ""}

        for outcome in await asyncio.gather(*(ask(index) for index in range(count))):
            print(json.dumps(outcome), flush=True)
    finally:
        await services.aclose()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
