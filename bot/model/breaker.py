"""A circuit breaker for the model service: after failures in a row, people are told at once
for a short while instead of each waiting for a timeout."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from bot.errors import FailureKind, ReplyFailure

log = structlog.get_logger(__name__)

# Failures counted toward opening the breaker (then people are told at once that the service is failing); a refused
# prompt or an answer cut at max_tokens says nothing of the service's health, and resets the count.
SERVICE_FAILURES = frozenset(
    {FailureKind.AUTH, FailureKind.RATE_LIMITED, FailureKind.LOADING, FailureKind.UNAVAILABLE}
    | {FailureKind.TIMEOUT, FailureKind.STALLED, FailureKind.CUT, FailureKind.MODEL_ERROR, FailureKind.BAD_RESPONSE}
)


class CircuitBreaker:
    def __init__(
        self, *, failures: int = 5, open_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Opens after `failures` in a row: people then learn at once that the service is failing, not after a timeout.
        After `open_seconds` one turn is let through to try again; the rest are still told at once until it succeeds."""
        self._threshold = failures
        self._open_seconds = open_seconds
        self._clock = clock
        self._in_a_row = 0
        self._opened_at: float | None = None
        self._last: ReplyFailure | None = None
        self._trial_running = False

    def copy(self) -> CircuitBreaker:
        """A breaker with the same settings, for another model's service."""
        return CircuitBreaker(failures=self._threshold, open_seconds=self._open_seconds, clock=self._clock)

    def check(self) -> None:
        """Raise the reason at once while open; let one trial through once the pause is over."""
        if self._opened_at is None:
            return
        if self._clock() - self._opened_at >= self._open_seconds and not self._trial_running:
            self._trial_running = True
            return
        reason = self._last.reason if self._last else None  # the reason the service was failing with
        raise ReplyFailure(FailureKind.CIRCUIT_OPEN, "model circuit open", reason=reason)

    def record(self, failure: ReplyFailure | None, *, answered: bool) -> None:
        """The outcome of a model call: `answered` when the model sent any text."""
        self._trial_running = False
        if answered or failure is None or failure.kind not in SERVICE_FAILURES:
            if self._opened_at is not None:
                log.warning("model_circuit_closed")
            self._in_a_row, self._opened_at = 0, None
            return
        self._in_a_row += 1
        self._last = failure
        if self._opened_at is not None:
            self._opened_at = self._clock()  # the trial failed: pause again
        elif self._in_a_row >= self._threshold:
            self._opened_at = self._clock()
            log.error("model_circuit_open", failures=self._in_a_row, kind=failure.kind.name, seconds=self._open_seconds)
