"""A turn's prompt: the person's message stored (under the conversation's lock), the settings of the places it was
sent in (persona, model, tools), the conversation's model, and the history that fits, its images filled in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from bot.errors import ReplyFailure
from bot.knowledge.citing import Citation, Shown
from bot.knowledge.passages import Hit
from bot.loop import off_loop_if_large
from bot.model.backends import ChatMessage
from bot.model.choice import ModelChoices
from bot.state.conversation_index import ConversationIndex
from bot.state.coordination import Coordination
from bot.state.personas import Personas, filled
from bot.state.store import Conversation, HistoryStore, StoredMessage, new_image_ids
from bot.turn.message import Turn
from bot.turn.prompt import Prompt, PromptBuilder
from bot.turn.searching import UNAVAILABLE, TurnKnowledge, is_follow_up
from bot.usage.meter import UsageMeter
from config.models import ModelChoice
from config.usage import PlaceBudget


@dataclass(frozen=True)
class Prepared:
    prompt: Prompt
    messages: list[ChatMessage]  # the prompt's, its images filled in
    model: ModelChoice
    first_reply: bool  # the conversation's first answer
    notices: tuple[str, ...]
    tools_here: bool | None = None  # whether the turn's place offers tools (None: not said)
    shown: Shown = field(default_factory=Shown)  # the knowledge passages in the prompt
    citable: list[Hit] = field(default_factory=list)  # what the answer's [n] marks cite: shown's, then the tool's finds
    cited: list[Citation] = field(default_factory=list)  # the sources listed under the answer, as it is written
    budgets: tuple[PlaceBudget, ...] = ()  # what each of the turn's places sets for usage budgets


class Preparation:
    def __init__(
        self,
        store: HistoryStore,
        prompts: PromptBuilder,
        choices: ModelChoices,
        index: ConversationIndex,
        coordination: Coordination,
        personas: Personas | None,
        knowledge: TurnKnowledge,
    ) -> None:
        self._store = store
        self._prompts = prompts
        self._choices = choices
        self._index = index
        self._coordination = coordination
        self.personas = personas
        self.knowledge = knowledge

    async def prepare(self, turn: Turn, fence: str, meter: UsageMeter | None = None) -> Prepared:
        """Store the person's message (refused if it can never fit); the prompt for its model. Its knowledge search
        counts on `meter`."""
        if turn.again:
            stored = self._store.retry_turn(turn.thread, fence)
        else:
            tokens = await off_loop_if_large(len(turn.text), self._prompts.check_fits, turn.text)
            images = new_image_ids(turn.images)
            message = StoredMessage(
                "user", turn.text, turn.author_id, turn.author_name, time.time(), tokens, (*images,), view=turn.view
            )
            stored = self._store.begin_turn(turn.thread, message, fence, images)
        noted = self._index.note(turn.thread, turn.places, scope=turn.quota_scope, person=turn.author_id)
        storing = asyncio.ensure_future(stored)
        searched = self._search(turn, storing, meter)
        conversation, place, _, hits = await asyncio.gather(storing, self._place_settings(turn), noted, searched)
        system_prompt, place_model, tools_here, budgets = place
        history = conversation.messages
        first_reply = not any(stored.role == "assistant" for stored in history)
        model = await self._choices.for_turn(turn.thread, conversation.model, place_model, first_reply=first_reply)
        default_system = self._prompts.budget.prompt_tokens - self._prompts.history_budget
        system_tokens = default_system if system_prompt is None else self._prompts.system_tokens(system_prompt)
        shown = await self.knowledge.shown(hits or [], system_tokens, history[-1].tokens if history else 0)
        size = sum(len(stored.content) for stored in history)
        build = partial(
            self._prompts.build,
            sees_images=model.vision,
            system_prompt=system_prompt,
            appendix=(shown.text, shown.tokens),
        )
        prompt = await off_loop_if_large(size, build, history)
        urls = await self._store.images(turn.thread, prompt.images)
        notices = self._choices.image_notices(model, sent=len(turn.images), missing=len(prompt.images) - len(urls))
        if hits is None:
            notices = (*notices, UNAVAILABLE)
        messages = prompt.with_images(urls)
        return Prepared(
            prompt, messages, model, first_reply, notices, tools_here, shown, [*shown.hits], budgets=budgets
        )

    async def _search(
        self, turn: Turn, storing: asyncio.Future[Conversation], meter: UsageMeter | None
    ) -> list[Hit] | None:
        """The turn's knowledge; a follow-up's once its conversation is read, to be searched with the question
        before it."""
        if turn.again or not is_follow_up(turn.text):
            return await self.knowledge.search(turn, meter)
        conversation = await asyncio.shield(storing)
        return await self.knowledge.search(turn, meter, before=question_before(conversation.messages))

    async def _place_settings(self, turn: Turn) -> tuple[str | None, str, bool | None, tuple[PlaceBudget, ...]]:
        """What the turn's places set: the persona, its placeholders filled (None: the default as it is, its tokens
        counted once); the model of new conversations there ("": none); whether tools are offered there; budgets."""
        if self.personas is None:
            return None, "", None, ()
        settings = await self.personas.settings(turn.places)
        text = filled(settings.persona.text, user=turn.author_name, places=turn.places)
        return None if text == self.personas.default else text, settings.model, settings.tools, settings.budgets

    async def left_out_notice(self, turn: Turn, prompt: Prompt) -> tuple[str, ...]:
        """Said once per conversation, the first time its oldest messages no longer fit."""
        if not prompt.left_out:
            return ()
        try:
            if not await self._coordination.claim(f"notice:left-out:{turn.thread}", self._store.settings.ttl_seconds):
                return ()
        except ReplyFailure:
            return ()
        return (
            f"This conversation is longer than I can read at once: only the last {prompt.used} messages were used.",
        )


def question_before(messages: Sequence[StoredMessage]) -> str:
    """The person's question before the last one (the turn's own, just stored); "" when there is none."""
    asked = [message.content for message in messages if message.role == "user"]
    return asked[-2] if len(asked) > 1 else ""
