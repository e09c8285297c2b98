"""Script calls of the same moment sent together: the usage writes, holds and settles of the turns that make one
while the event loop runs the others go to Redis in one call of their script. Each call costs the bot's event loop
CPU, so many turns calling one by one would hold every other turn up; together they cost one call (the figures are
in docs/BENCHMARKS.md, "Usage and budgets"). Each part's keys and arguments follow the previous part's;
the script answers with each part's items in turn. Only for one Redis: a Cluster's keys of one call must share a
slot, so there each part is sent on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Run = Callable[[list[str], list[str]], Awaitable[list[Any]]]


@dataclass
class _Part:
    keys: Sequence[str]
    args: Sequence[str]
    answers: int  # items of the script's answer that are this part's
    done: asyncio.Future[list[Any]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class ScriptBatch:
    def __init__(self, run: Run, *, together: bool = True) -> None:
        """`run(keys, args)`: one call of the script; `together`: False on a Cluster (each part is a call)."""
        self._run = run
        self._together = together
        self._parts: list[_Part] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def call(self, keys: Sequence[str], args: Sequence[str], answers: int) -> list[Any]:
        """This part's `answers` items of the script's answer, from the call of the parts asked at this moment."""
        part = _Part(keys, args, answers)
        if not self._together:
            await self._send([part])
            return part.done.result()
        self._parts.append(part)
        if len(self._parts) == 1:
            asyncio.get_running_loop().call_soon(self._send_parts)
        return await part.done

    def _send_parts(self) -> None:
        parts, self._parts = self._parts, []
        task = asyncio.create_task(self._send(parts))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, parts: Sequence[_Part]) -> None:
        try:
            flat = await self._run(
                [key for part in parts for key in part.keys], [arg for part in parts for arg in part.args]
            )
        except Exception as error:  # noqa: BLE001 - every part learns it failed, as its own call would have
            for part in parts:
                if not part.done.done():
                    part.done.set_exception(error)
            return
        except asyncio.CancelledError:  # shutting down
            for part in parts:
                part.done.cancel()
            raise
        at = 0
        for part in parts:
            if not part.done.done():
                part.done.set_result(list(flat[at : at + part.answers]))
            at += part.answers
