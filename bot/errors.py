"""Failures a person can be told about, each with a short human reason."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator


class FailureKind(enum.Enum):
    AUTH = "The model service rejected my credentials (bad or missing token). The operator has been told."
    RATE_LIMITED = "The model service is rate-limiting me right now. Please try again in a minute."
    LOADING = "The model is still loading and didn't come up in time. Please try again shortly."
    TIMEOUT = "The model took too long to answer."
    STALLED = "The model stopped sending text mid-answer."
    CUT = "The connection to the model was cut before the answer finished."
    CONTEXT_TOO_LONG = "This conversation is too long for the model. Use /reset to start over."
    MESSAGE_TOO_LONG = "Your message is too long for the model's context window. Please shorten it."
    LENGTH = "The answer reached the maximum length and was cut off."
    BUDGET = "The usage budget here has run out, so I didn't ask the model."
    BUDGET_REACHED = "I stopped here: the usage budget ran out during this answer."
    BAD_REQUEST = "The model service refused the request."
    MODEL_NOT_FOUND = "This conversation's model isn't available on its server. Pick another with /model."
    UNAVAILABLE = "The model service is unavailable right now. Please try again later."
    MODEL_ERROR = "The model reported an error while answering."
    EMPTY = "The model returned an empty answer."
    THOUGHT_ONLY = "I used all my room for thinking and wrote no answer: ask again, or raise MAX_NEW_TOKENS."
    BAD_RESPONSE = "The model service sent something that isn't an answer (an error page?). The operator has been told."
    CIRCUIT_OPEN = "The model service has been failing, so I'm not asking it for a moment. Please try again shortly."
    NO_QUESTION = "You mentioned me without a question. What would you like to ask?"
    QUOTA = "You're sending messages faster than I can answer. Please wait a moment."
    RESTARTING = "I'm restarting right now and can't take new questions. Please ask again in a moment."
    STORE_UNAVAILABLE = "I can't reach my conversation memory right now. Please try again in a moment."
    INTERRUPTED = "I was interrupted (the bot is restarting). Please ask again in a moment."
    STOPPED = "Stopped."
    NOTHING_TO_REDO = "There is no question here to answer again."
    INTERNAL = "Something went wrong on my side. The operator has been told."

    @property
    def reason(self) -> str:
        return self.value


class ReplyFailure(Exception):
    """A turn failed in a way the person should see; `detail` is for the operator's log only. `reason`, when given,
    replaces the kind's standard sentence (say, with how long to wait)."""

    def __init__(self, kind: FailureKind, detail: str = "", reason: str | None = None) -> None:
        super().__init__(f"{kind.name}: {detail}" if detail else kind.name)
        self.kind = kind
        self.detail = detail
        self.reason = reason or kind.reason


async def failing(failure: ReplyFailure) -> AsyncIterator[str]:
    """A model stream that fails at once: a turn refused before the model is asked."""
    nothing: tuple[str, ...] = ()  # a yield after the raise would be unreachable to mypy
    for piece in nothing:
        yield piece
    raise failure
