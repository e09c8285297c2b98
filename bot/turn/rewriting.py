"""A follow-up made a question of its own for the knowledge search by ROUTER_MODEL, where it is set: "And on
Fridays?" after "Can I bring my dog to the office?" is searched as "Can I bring my dog to the office on Fridays?".
Without it, or when it fails or is slow, the follow-up is searched joined to the question before it."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace

import structlog

from bot.errors import ReplyFailure
from bot.model.backends import ChatMessage, ModelBackend
from bot.usage.meter import UsageMeter
from config.models import ModelCatalog, ModelSettings

log = structlog.get_logger(__name__)

# The rewrite delays the answer's first words: past this the follow-up is searched joined to the question before.
REWRITE_SECONDS = 2.0
REWRITE_TOKENS = 64
REWRITE_TEMPERATURE = 0.1  # some servers refuse 0
REWRITE_PROMPT = (
    "You rewrite a follow-up message as one self-contained search query, for a search over a community's documents. "
    "Use the earlier question only for what the follow-up refers to or leaves out. Keep the follow-up's own words "
    "and names. Reply with the query alone, on one line, without quotes or explanation."
)
_LABEL = re.compile(r"^\s*(search\s+)?(query|question|rewritten)\s*:\s*", re.IGNORECASE)
_QUOTES = "\"'`\u201c\u201d\u2018\u2019*"


class FollowUpRewriter:
    """Asks the router model for the follow-up's self-contained query; None when it can't say in time."""

    def __init__(self, backend: ModelBackend, model: ModelSettings) -> None:
        self._backend = backend
        self.model = model

    async def rewrite(self, before: str, follow_up: str, meter: UsageMeter | None, limit: int) -> str | None:
        """The query for `follow_up` (asked after `before`), at most `limit` characters; None on a failure, a slow
        answer or one that is no query (empty, or longer than the limit)."""
        messages: list[ChatMessage] = [
            {"role": "system", "content": REWRITE_PROMPT},
            {"role": "user", "content": f"Earlier question: {before}\nFollow-up: {follow_up}"},
        ]
        try:
            said = await asyncio.wait_for(self._collect(messages, meter), REWRITE_SECONDS)
        except (ReplyFailure, TimeoutError) as error:
            log.warning("follow_up_rewrite_failed", model=self.model.model_id, error=str(error) or type(error).__name__)
            return None
        query = cleaned_query(said)
        if not query or len(query) > limit:
            log.warning("follow_up_rewrite_unusable", model=self.model.model_id, chars=len(query))
            return None
        return query

    async def _collect(self, messages: list[ChatMessage], meter: UsageMeter | None) -> str:
        # A thinking model's thought is not the query: only its text counts.
        pieces = self._backend.stream(messages, self.model, meter=meter)
        return "".join([piece async for piece in pieces if isinstance(piece, str)])


def cleaned_query(said: str) -> str:
    """The model's first non-empty line, without a "Query:" label or the quotes around it."""
    line = next((line for line in said.splitlines() if line.strip()), "")
    return _LABEL.sub("", line).strip().strip(_QUOTES).strip()


def small_model(models: ModelCatalog, name: str, max_new_tokens: int, temperature: float) -> ModelSettings:
    """A helper model's settings (ROUTER_MODEL): a model of the catalog, else that id on the default model's server,
    asked for a few words and never waited for while it loads."""
    choice = models.find(name)
    settings = choice.settings if choice is not None else replace(models.default.settings, model_id=name)
    sampling = replace(settings.sampling, max_new_tokens=max_new_tokens, temperature=temperature)
    return replace(settings, sampling=sampling, loading_retries=0)


def follow_up_rewriter(backend: ModelBackend, models: ModelCatalog, router: str | None) -> FollowUpRewriter | None:
    if router is None:
        return None
    return FollowUpRewriter(backend, small_model(models, router, REWRITE_TOKENS, REWRITE_TEMPERATURE))
