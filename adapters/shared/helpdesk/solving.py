"""Marking a help thread solved, one flow for every platform. The asker or one of the channel's helpers marks the
message that answered it (the bot's answer's Solved button, Mark as answer on any message, /solved, a ✅ reaction, a
forum post's Solved tag); the thread then becomes one passage of its server's or workspace's knowledge, the question
with the accepted answer, cited by the thread's link and read only by those who can read the thread. A helper's
answer, or the bot's, ranks above the same words from others. It stays current: the answer edited is read again; the
answer deleted, the thread unmarked or a 👎 on the answer takes it out; forget-me takes out what the person asked or
answered. A help channel that isn't knowledge stays so: only its solved threads are. The platform finds the thread,
its question and the answer, and says what happened in its own way."""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence

import structlog

from adapters.shared.desk_ledger import DeskLedger
from adapters.shared.knowledge_sources.channels import KnowledgeChannels
from adapters.shared.solved_threads import Answer, HelpThread, Solution, Solutions
from bot.errors import ReplyFailure
from bot.knowledge.opener import KnowledgeOpener
from bot.knowledge.passages import Passage
from bot.knowledge.service import Knowledge

log = structlog.get_logger(__name__)

SOLVED_LOCATOR = "solved thread"
NOT_ALLOWED = "Only the person who asked and this channel's helpers can mark this thread solved."
NOT_HELP_THREAD = "Threads are marked solved in a help channel's threads (set with /respond questions or all)."
NO_ANSWER = "There is no answer in this thread to mark yet."
MARKED = "Marked solved, with {who}'s answer: the next person who asks the same will get it."
ALREADY = "This thread is already solved by that answer."
UNMARKED = "Unmarked: this thread is no longer solved, and its answer has left the knowledge."
NOT_SOLVED = "This thread isn't marked solved."
UNLEARNED = " (The answer couldn't be added to the knowledge just now: {why}.)"


class Marked(enum.Enum):
    MARKED = "marked"
    ALREADY = "already"
    UNMARKED = "unmarked"
    NOT_SOLVED = "not_solved"


def may_mark(person: str, thread: HelpThread, helper: bool) -> bool:
    """The asker and the channel's helpers may mark a thread solved, or unmark it."""
    return helper or person == thread.asker


def solved_passage(solution: Solution) -> Passage:
    """A solved thread as one passage: its question and its accepted answer, cited by the thread's link."""
    thread, answer = solution.thread, solution.answer
    return Passage(
        scope=thread.scope,
        source=solution.source,
        key=f"solved:{thread.thread}",
        text=f"Question: {thread.question.strip()}\nAccepted answer ({answer.author_name}): {answer.text.strip()}",
        title=thread.title,
        locator=SOLVED_LOCATOR,
        url=thread.url,
        channel=thread.readers,
        author=answer.author or thread.asker,
        updated_at=solution.marked_at,
    )


class Solving:
    """Solved threads and the knowledge they became. `opener` None: no knowledge here, threads are marked all the
    same."""

    def __init__(
        self,
        solutions: Solutions,
        opener: KnowledgeOpener | None,
        log_name: str,
        channels: KnowledgeChannels | None = None,
        desk: DeskLedger | None = None,
    ) -> None:
        """`channels`: where a solved thread's channel is noted as one whose readers may get its passage (without
        it, only a knowledge channel's threads are readable); `desk`: the help desk's figures, counting the marks."""
        self._solutions, self._opener, self._log_name = solutions, opener, log_name
        self._channels, self._desk = channels, desk

    async def mark(self, thread: HelpThread, answer: Answer, by: str) -> tuple[Marked, str]:
        """`answer` accepted for `thread` (another one's replaced); what happened, with what couldn't be learnt
        ("" when all went well). Raises STORE_UNAVAILABLE without Redis."""
        solution = Solution(thread, answer, by, time.time())
        replaced = await self._solutions.keep(solution)
        if replaced is not None and replaced.answer.message == answer.message:
            return Marked.ALREADY, ""
        if replaced is not None and replaced.source != solution.source:
            await self._forget(replaced)
        log.info(f"{self._log_name}_thread_solved", scope=thread.scope, thread=thread.thread, helper=answer.by_helper)
        await self._count(solution)
        lost = await self._learn(solution)
        await self._unless_superseded(solution)
        return Marked.MARKED, lost

    async def toggle(self, thread: HelpThread, answer: Answer, by: str) -> tuple[Marked, str]:
        """The Solved button: the thread unmarked if `answer` is its accepted one, else marked with it."""
        current = await self._solutions.of_thread(thread.scope, thread.thread)
        if current is not None and current.answer.message == answer.message:
            return await self.unmark(thread.scope, thread.thread), ""
        return await self.mark(thread, answer, by)

    async def unmark(self, scope: str, thread: str) -> Marked:
        """The thread no longer solved, its passage out of the knowledge."""
        solution = await self._solutions.drop(scope, thread)
        if solution is None:
            return Marked.NOT_SOLVED
        await self._forget(solution)
        log.info(f"{self._log_name}_thread_unsolved", scope=scope, thread=thread)
        await self._count(solution, solved=False)
        return Marked.UNMARKED

    async def solution(self, scope: str, thread: str) -> Solution | None:
        return await self._solutions.of_thread(scope, thread)

    async def answer_edited(self, scope: str, message: str, text: str) -> None:
        """A message edited: if it is an accepted answer, its thread's passage is read again (edited to nothing, the
        thread is unmarked). Failures are logged for the operator."""
        try:
            solution = await self._solutions.of_answer(scope, message)
            if solution is None:
                return
            if not text.strip():
                await self.unmark(scope, solution.thread.thread)
                return
            edited = solution.with_answer_text(text)
            await self._solutions.keep(edited)
            why = await self._learn(edited)
            log.info(f"{self._log_name}_solved_answer_edited", scope=scope, thread=edited.thread.thread, lost=why)
        except Exception as error:  # noqa: BLE001 - Redis or the engine: the operator is told
            log.error(f"{self._log_name}_solved_edit_lost", scope=scope, message=message, error=str(error))

    async def answers_gone(self, scope: str, messages: Sequence[str], why: str) -> None:
        """`messages` deleted, or one 👎'd (`why`): the threads they answered are unmarked. Failures are logged."""
        try:
            for message in messages:
                if (solution := await self._solutions.of_answer(scope, message)) is not None:
                    await self.unmark(scope, solution.thread.thread)
                    log.info(f"{self._log_name}_solved_answer_gone", scope=scope, message=message, why=why)
        except Exception as error:  # noqa: BLE001 - Redis or the engine: the operator is told
            log.error(f"{self._log_name}_solved_removal_lost", scope=scope, error=str(error))

    async def forget_person(self, scopes: Sequence[str], person: str) -> int:
        """`person`'s solved threads (asked or answered) unmarked in `scopes`; how many."""
        gone = 0
        for scope in scopes:
            for solution in await self._solutions.of_person(scope, person):
                gone += await self.unmark(scope, solution.thread.thread) is Marked.UNMARKED
        return gone

    async def every_scope(self) -> list[str]:
        return await self._solutions.scopes()

    async def forget_scope(self, scope: str) -> None:
        await self._solutions.forget_scope(scope)

    async def _unless_superseded(self, solution: Solution) -> None:
        """Two marks of one thread at once (two processes, two people): each learns its own answer, so the one whose
        answer is no longer the thread's takes its passage out again. One passage stays, the last mark's."""
        current = await self._solutions.of_thread(solution.thread.scope, solution.thread.thread)
        if current is None or current.source != solution.source:
            await self._forget(solution)
        elif current.answer.message != solution.answer.message:
            await self._learn(current)  # the same source: its passage must be the last mark's

    async def _count(self, solution: Solution, *, solved: bool = True) -> None:
        if self._desk is None:
            return
        thread = solution.thread
        try:
            if solved:
                by_bot = not solution.answer.author
                await self._desk.solved(thread.scope, thread.channel, thread.thread, thread.asked_at, by_bot=by_bot)
            else:
                await self._desk.unsolved(thread.scope, thread.thread)
        except ReplyFailure:
            log.warning(f"{self._log_name}_solved_not_counted", thread=thread.thread)

    async def _learn(self, solution: Solution) -> str:
        knowledge = await self._knowledge()
        if knowledge is None:
            return "the knowledge isn't running"
        try:
            if self._channels is not None and solution.thread.readers:
                await self._channels.add_answered(solution.thread.scope, solution.thread.readers)
            skipped = await knowledge.replace_source(solution.thread.scope, solution.source, [solved_passage(solution)])
        except Exception as error:  # noqa: BLE001 - the engine failed: marked all the same, the operator told
            log.error(f"{self._log_name}_solved_not_learnt", thread=solution.thread.thread, error=str(error))
            return "the knowledge database failed"
        return skipped[0].reason if skipped else ""

    async def _forget(self, solution: Solution) -> None:
        knowledge = await self._knowledge()
        if knowledge is None:
            return
        try:
            await knowledge.forget_source(solution.thread.scope, solution.source)
        except Exception as error:  # noqa: BLE001 - the engine failed: the operator is told what is left
            log.error(f"{self._log_name}_solved_not_forgotten", thread=solution.thread.thread, error=str(error))

    async def _knowledge(self) -> Knowledge | None:
        return None if self._opener is None else await self._opener.get_or_none()


def told(marked: Marked, answer: Answer | None = None, lost: str = "") -> str:
    """What the person who marked (or unmarked) is told, privately."""
    if marked is Marked.MARKED:
        said = MARKED.format(who="the bot" if answer is None else answer.author_name)
        return said + (UNLEARNED.format(why=lost) if lost else "")
    return {Marked.ALREADY: ALREADY, Marked.UNMARKED: UNMARKED, Marked.NOT_SOLVED: NOT_SOLVED}[marked]
