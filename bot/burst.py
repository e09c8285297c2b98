"""Model requests first: while turns that came in together are on their way to the model, the rest waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# What waits behind the writes a platform needs for the first words (Discord: a thread to post
# them in), once a burst has asked the model: the questions' Redis writes, the model's answers.
BEHIND_FIRST_WRITES_SECONDS = 0.05


class ModelCallsFirst:
    """Holds back what can wait while turns that came in together are still on their way to the model.

    Fifty mentions at once would otherwise interleave fifty Redis writes and thread creations
    with the building of the model requests, though neither is needed before the first token.
    Answers that can't be shown before then wait unread too (a server sends their headers at
    once): read in the middle of a burst, they put their work in front of the requests still to
    be sent.

    A burst arrives over some milliseconds, so the hold ends only once no turn has been
    waiting for its model request for `QUIET_SECONDS`; it is capped so a turn that never gets
    to its model request can't stall the others.
    """

    HOLD_LIMIT_SECONDS = 0.25
    QUIET_SECONDS = 0.02

    def __init__(self) -> None:
        self._pending = 0
        self._arrived_together = 0  # turns since the last quiet moment
        self._quiet_timer: asyncio.TimerHandle | None = None
        self._limit_timer: asyncio.TimerHandle | None = None
        self._settled: asyncio.Future[None] | None = None  # None: quiet

    @property
    def in_burst(self) -> bool:
        """More than one turn came in since the last quiet moment (a turn on its own holds nothing back)."""
        return self._arrived_together > 1

    def arrived(self) -> Callable[[], None]:
        """A turn is on its way to its model request; call the result once it is out (or never will be)."""
        loop = asyncio.get_running_loop()
        self._pending += 1
        self._arrived_together += 1
        if self._quiet_timer is not None:
            self._quiet_timer.cancel()
            self._quiet_timer = None
        if self._settled is None:
            self._settled = loop.create_future()
            self._limit_timer = loop.call_later(self.HOLD_LIMIT_SECONDS, self._quiet)
        done = False

        def called() -> None:
            nonlocal done
            if not done:
                done = True
                self._pending -= 1
                if self._pending == 0 and self._settled is not None:
                    self._quiet_timer = asyncio.get_running_loop().call_later(self.QUIET_SECONDS, self._quiet)

        return called

    async def settled(self, *, then: float = 0.0) -> None:
        """Until the turns that came in together have asked the model, and `then` seconds more."""
        if self._settled is not None:
            await asyncio.shield(self._settled)  # one future for every waiter: cheap in a burst
        if then > 0:
            await asyncio.sleep(then)

    def after_burst(self, callback: Callable[[], None], *, then: float) -> None:
        """Call `callback` `then` seconds after the turns that came in together have asked the model."""
        loop = asyncio.get_running_loop()
        if self._settled is None:
            loop.call_later(then, callback)
        else:
            self._settled.add_done_callback(lambda _: loop.call_later(then, callback))

    def _quiet(self) -> None:
        for timer in (self._quiet_timer, self._limit_timer):
            if timer is not None:
                timer.cancel()
        self._quiet_timer = self._limit_timer = None
        self._arrived_together = 0
        settled, self._settled = self._settled, None
        if settled is not None and not settled.done():
            settled.set_result(None)
