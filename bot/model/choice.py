"""Which model answers a conversation: the one chosen for it (kept in the store with it), else the one
set where it started (its channel's or server's, pinned to it with its first answer), else the default."""

from __future__ import annotations

from bot.model.breaker import CircuitBreaker
from bot.state.store import HistoryStore
from config.models import ModelCatalog, ModelChoice


class ModelChoices:
    def __init__(self, catalog: ModelCatalog, store: HistoryStore, breaker: CircuitBreaker) -> None:
        self.catalog = catalog
        self._store = store
        self._breakers = {choice.id: breaker.copy() for choice in catalog.choices}
        self._breakers[catalog.default.id] = breaker  # the default model's; every other model's service gets a copy

    async def of(self, thread: str) -> ModelChoice:
        """`thread`'s model (raises STORE_UNAVAILABLE)."""
        return self.catalog.find(await self._store.chosen_model(thread)) or self.catalog.default

    async def choose(self, thread: str, name: str) -> ModelChoice | None:
        """Answer `thread` with the model called `name` from now on; None if there is none such."""
        if choice := self.catalog.find(name):
            await self._store.choose_model(thread, choice.id)
        return choice

    async def for_turn(self, thread: str, chosen: str, place_model: str, *, first_reply: bool) -> ModelChoice:
        """The model for a turn whose conversation has `chosen` ("" = none) where `place_model` is set ("" = none):
        a new conversation keeps the model it started with, even once its place's (or the default) changes."""
        if choice := self.catalog.find(chosen):
            return choice
        choice = self.catalog.find(place_model) or self.catalog.default
        if first_reply and len(self.catalog.choices) > 1:  # with one model there is nothing to keep
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
