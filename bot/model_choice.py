"""Which model answers a conversation: the one chosen for it (kept in the store with it), else
the one chosen where it started (a Slack channel's default for new threads), else the default."""

from __future__ import annotations

from bot.breaker import CircuitBreaker
from bot.store import HistoryStore
from config.models import ModelCatalog, ModelChoice


class ModelChoices:
    def __init__(self, catalog: ModelCatalog, store: HistoryStore, breaker: CircuitBreaker) -> None:
        self.catalog = catalog
        self._store = store
        self._breakers = {choice.id: breaker.copy() for choice in catalog.choices}
        self._breakers[catalog.default.id] = breaker  # the default model's; every other model's service gets a copy

    async def of(self, thread: str, default_from: str = "") -> ModelChoice:
        """`thread`'s model (raises STORE_UNAVAILABLE)."""
        for key in (thread, default_from):
            if key and (choice := self.catalog.find(await self._store.chosen_model(key))):
                return choice
        return self.catalog.default

    async def choose(self, thread: str, name: str) -> ModelChoice | None:
        """Answer `thread` with the model called `name` from now on; None if there is none such."""
        if choice := self.catalog.find(name):
            await self._store.choose_model(thread, choice.id)
        return choice

    async def for_turn(self, thread: str, chosen: str, default_from: str, *, first_reply: bool) -> ModelChoice:
        """The model for a turn whose conversation has `chosen` ("" = none): a new conversation
        keeps the default it started with, even once that default changes."""
        if choice := self.catalog.find(chosen):
            return choice
        if not default_from or len(self.catalog.choices) == 1:
            return self.catalog.default  # nothing to look up: no round trip to Redis
        choice = await self.of("", default_from)
        if first_reply:
            await self._store.choose_model(thread, choice.id)
        return choice

    def label(self, choice: ModelChoice) -> str:
        """The name a reply shows for the model that wrote it; "" when there is no other to tell it apart from."""
        return choice.display_name if len(self.catalog.choices) > 1 else ""

    def breaker(self, choice: ModelChoice) -> CircuitBreaker:
        """The circuit breaker of `choice`'s service: one failing model doesn't stop the others."""
        return self._breakers[choice.id]

    def image_notices(self, model: ModelChoice, *, sent: int, missing: int) -> tuple[str, ...]:
        """What the reply says about images the model won't see."""
        if missing:
            return ("An earlier image in this conversation is no longer kept, so I couldn't look at it again.",)
        if not sent or model.vision:
            return ()
        count = "the image" if sent == 1 else f"the {sent} images"
        notice = f"{model.display_name} can't see images, so I didn't look at {count}."
        if seeing := self.catalog.vision_choices():
            notice += f" /model {seeing[0].display_name} can."
        return (notice,)
