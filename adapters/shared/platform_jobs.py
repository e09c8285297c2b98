"""Jobs every platform adapter needs, done one way: claim an event so that one process answers
it, answer in a task that can't die silently, keep the platform's rate limits (adapters.shared.ratelimit),
record replies and finish those a dead process left (adapters.shared.reply_records), and tell someone once why
they are refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog

from adapters.shared.desk_ledger import DeskLedger
from adapters.shared.feedback.records import AnswerInfo, Feedback
from adapters.shared.files.attachments import Attachment, ReadFiles, read_attachments, with_files
from adapters.shared.files.documents import DocumentReader, cut_documents
from adapters.shared.files.images import ImageReader
from adapters.shared.files.isolation import IsolatedWorkers
from adapters.shared.handoffs import HandOffs
from adapters.shared.knowledge_sources.added import AddedMessages
from adapters.shared.ratelimit import RateLimits
from adapters.shared.reply_records import Recording, ReplyLedger, ReplyRecord
from adapters.shared.server_sweep import sweep_server
from adapters.shared.solved_threads import Solutions
from adapters.shared.web_knowledge.registry import WebSources
from bot.app import Services
from bot.core import Turn
from bot.errors import FailureKind, ReplyFailure
from bot.loop import finish_even_if_cancelled
from bot.reply.render import RenderResult, failure_note
from bot.reply.surface import ReplySurface, SurfaceLimits
from bot.turn.prompt import TOKENS_PER_TURN
from config.models import ModelCatalog, ModelChoice
from config.settings import ImageSettings

log = structlog.get_logger(__name__)
Bold = Callable[[str], str]

# An answer still running this long after it was cancelled lost the cancellation (see bot.loop.cancel_until_done) and
# is cancelled again: longer than the 10 s a cancelled reply's final write may take (bot.reply.render), so no final
# text is cut short.
RECANCEL_SECONDS = 12.0
# Longer than any platform redelivers one event (Slack's last retry comes after ~5 min).
EVENT_CLAIM_SECONDS = 3600
# Someone refused is told why once a day per place, not at every message.
REFUSAL_NOTICE_SECONDS = 24 * 3600
# The modules of the work done in the isolated workers, imported once by their fork server.
WORKER_MODULES = ("adapters.shared.files.image_worker", "adapters.shared.files.document_worker")
# Tokens kept spare when documents are cut to fit a model's context: the asker's name when several
# people talk, and the cleaning of the question, may add a few.
FIT_SPARE_TOKENS = 32
# What is kept of the document text that the last count says fits: a little less, as the text cut
# off may have been cheaper in tokens than the rest.
FIT_MARGIN = 0.95
# Times the documents are cut shorter, each by what the last count says is too much, before the
# question is left for the core to refuse.
FIT_ROUNDS = 4
# Said after a document's cut when it was cut to fit the model's context rather than MAX_DOCUMENT_CHARS.
FIT_REASON = " (all that fits in one message)"


@dataclass(frozen=True)
class Question:
    """What a person asks, as the core takes it: the text (with their files' contents), the images
    and the notes about files that could not be used."""

    text: str
    images: tuple[str, ...]
    notices: tuple[str, ...]


Pointed = tuple[str, str, Sequence[Attachment]]  # a message someone asks about: author, text, files


@dataclass(frozen=True)
class Kept:
    """Where an answer's votes are kept, and what `/knowledge gaps` shows of it: its id (on the vote buttons), its
    server's or workspace's scope, a link to it, who asked (their person id, as /forget-me finds it) and where."""

    answer_id: str
    scope: str
    link: str
    asker: str
    channel: str


class PlatformJobs:
    """One platform's share of the bot's services, and the answers it is writing."""

    def __init__(self, services: Services, platform: str, images: ImageSettings | None = None) -> None:
        """`images`: the limits for images people attach (none are read without a model that sees them)."""
        prefix, operations = services.settings.history.key_prefix, services.settings.operations
        self.core = services.core
        sees_images = bool(images and images.max_images and services.core.models.vision_choices())
        documents = services.settings.documents
        self._workers = IsolatedWorkers(preload=WORKER_MODULES) if sees_images or documents.max_bytes else None
        workers = self._workers
        self.images = ImageReader(images, workers) if images and sees_images and workers else None
        self.documents = DocumentReader(documents, workers) if documents.max_bytes and workers else None
        self._max_document_chars = documents.max_chars  # text files' too, read with or without documents
        self._prompts = services.prompts
        self.metrics = services.metrics
        self.rate_limits = RateLimits(services.redis.control, prefix)
        self._ledger = ReplyLedger(
            services.redis.main,
            prefix,
            beat=services.redis.heartbeat,
            lease_seconds=operations.reply_lease_seconds,
            sweep_seconds=operations.reply_sweep_seconds,
        )
        self.feedback = Feedback(
            services.redis.main,
            prefix,
            answer_seconds=services.settings.history.ttl_seconds,
            on_error=services.metrics.redis_errors.inc,
        )
        self.core.forgetting.on_reset(self.feedback.forget_thread)  # a conversation's answers go with it
        self.handoffs = HandOffs(
            services.redis.main,
            prefix,
            per_hour=services.settings.respond.helper_pings_per_hour,
            seconds=services.settings.history.ttl_seconds,
            on_error=services.metrics.redis_errors.inc,
        )
        self.added = AddedMessages(services.redis.main, prefix, platform, services.metrics.redis_errors.inc)
        self.solutions = Solutions(services.redis.main, prefix, platform, services.metrics.redis_errors.inc)
        self.desk = DeskLedger(
            services.redis.main, prefix, platform, services.metrics, services.metrics.redis_errors.inc
        )
        self._services = services
        self._platform = platform
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def keep_replies(self, finish: Callable[[ReplyRecord], Awaitable[None]]) -> None:
        """Before the platform's first event: hold this process's lease on the replies it records,
        and from now on `finish` (with a note) every reply a dead process left half-written."""
        await self._ledger.start()
        self._sweeper = asyncio.create_task(self._sweep(finish))

    async def first_to_claim(self, key: str) -> bool:
        """Only one process answers an event, however the platform delivers it. Without Redis to
        tell, every process that got it answers: better twice than never."""
        try:
            first = await self._services.coordination.claim(key, EVENT_CLAIM_SECONDS)
        except ReplyFailure:
            return True
        if not first:
            # Said, so that a process's silence on an event it received is seen as a choice.
            log.debug("event_claimed_elsewhere", key=key)
        return first

    async def refuse_once(self, key: str, tell: Callable[[], Awaitable[None]]) -> None:
        """`tell` the person why they are refused, unless they were told today (told again rather
        than not at all while Redis is out of reach)."""
        try:
            first = await self._services.coordination.claim(f"refused:{key}", REFUSAL_NOTICE_SECONDS)
        except ReplyFailure:
            first = True
        if first:
            await tell()

    async def link(self, alias: str, thread: str) -> None:
        """A platform message that leads to a conversation (replying to it continues it)."""
        await self._services.coordination.link(alias, thread)

    async def resolve(self, alias: str) -> str | None:
        return await self._services.coordination.resolve(alias)

    async def read_files(self, attachments: Sequence[Attachment], asker: str = "") -> ReadFiles:
        """What a message's files bring to the question (see adapters.shared.files.attachments); `asker`: who sent
        them, whose files take the workers in turn with other people's."""
        return await read_attachments(attachments, self.images, self.documents, asker=asker or None)

    async def question(
        self, text: str, attachments: Sequence[Attachment], about: Pointed | None = None, *, asker: str = ""
    ) -> Question:
        """`text` with its files; with `about`, the message someone points at quoted first, its images and notes
        first too, the images within MAX_IMAGES. The text files' and documents' text is cut to MAX_DOCUMENT_CHARS,
        and further to what fits in the model's context, with a notice for each file not read to its end."""
        files = await self.read_files(attachments, asker)
        quoted = await self.read_files(about[2], asker) if about is not None else ReadFiles()
        images, notices = quoted.images + files.images, quoted.notices + files.notices
        asked, cuts = await self._fitted(partial(_question_text, text, files, about, quoted))
        return Question(asked, images[: self.images.max_images] if self.images else (), notices + cuts)

    async def _fitted(self, build: _Build) -> tuple[str, tuple[str, ...]]:
        """The question `build` makes with the most document text (within MAX_DOCUMENT_CHARS) that leaves it room
        in the model's context; a question too long without its documents is left for the core to refuse."""
        chars = self._max_document_chars
        asked, cuts, used = build(chars, "")
        if not used or self._prompts is None:
            return asked, cuts
        room = self._prompts.history_budget - TOKENS_PER_TURN - FIT_SPARE_TOKENS
        for _ in range(FIT_ROUNDS):
            tokens = await asyncio.to_thread(self._prompts.count, asked)
            if tokens <= room or not used:
                break
            too_many = (tokens - room) * len(asked) / tokens  # the excess in characters, at this text's rate
            chars = max(0, int(FIT_MARGIN * (used - too_many)) - 100)
            asked, cuts, used = build(chars, FIT_REASON)
        return asked, cuts

    def record(self, thread: str, place: dict[str, Any], limits: SurfaceLimits) -> Recording:
        """A reply's record, kept until its final text lands (see adapters.shared.reply_records)."""
        return self._ledger.open(self._platform, thread, place, limits)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` (an answer) in a task of its own, cancelled with the adapter."""
        task = asyncio.create_task(self._logging_crashes(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def answer(
        self, turn: Turn, surface: ReplySurface, recording: Recording | None = None, kept: Kept | None = None
    ) -> RenderResult | None:
        """Answer `turn` on `surface`. A failure of the platform's in one reply is logged and ends
        that reply only; on shutdown the reply lands its final text (or its note) first. `kept`: where
        votes on the answer are kept (see adapters.shared.feedback.records), once it is complete."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            result = await self.core.answer(turn, surface)
            if kept is not None and result.complete:
                await self._keep(kept, turn, result)
            return result
        except Exception:
            log.exception("reply_failed", platform=self._platform, thread=turn.thread)
            await self._tell_failed(surface)
            return None
        finally:
            self._tasks.discard(task)
            if recording is not None:
                await finish_even_if_cancelled(recording.close())

    async def _keep(self, kept: Kept, turn: Turn, result: RenderResult) -> None:
        """The answer's record, for the votes on it and `/knowledge gaps` (lost, and logged, without Redis)."""
        info = AnswerInfo(
            self._platform,
            kept.scope,
            kept.link,
            turn.text,
            result.model,
            result.sources,
            kept.asker,
            kept.channel,
            time.time(),
        )
        try:
            searched = turn.knowledge is not None or turn.found is not None
            await self.feedback.record_answer(kept.answer_id, info, could_cite=searched, thread=turn.thread)
        except ReplyFailure:
            log.warning("answer_not_kept_for_votes", platform=self._platform, thread=turn.thread)

    async def sweep_server(self, server_id: str) -> int:
        """The bot left a server or workspace: what is left of its keys goes (adapters.shared.server_sweep)."""
        prefix, redis = self._services.settings.history.key_prefix, self._services.redis.main
        try:
            await WebSources(redis, prefix).forget_scope(f"{self._platform}:{server_id}")
        except ReplyFailure:
            log.error("web_sources_not_swept", platform=self._platform, server=server_id)
        return await sweep_server(redis, prefix, self._platform, server_id)

    async def close(self) -> None:
        """Cancel the answers being written (each lands its final text or its note first), then
        give up the lease and let the last writes' slots be counted."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        await cancel_and_wait(self._tasks)
        await self._ledger.stop()
        await self.rate_limits.aclose()
        if self._workers is not None:
            await self._workers.aclose()

    async def _sweep(self, finish: Callable[[ReplyRecord], Awaitable[None]]) -> None:
        while True:
            await self._ledger.finish_orphans(self._platform, finish)
            await asyncio.sleep(self._ledger.sweep_seconds)

    async def _tell_failed(self, surface: ReplySurface) -> None:
        """A reply that crashed still ends with a reason, if the platform takes one more message."""
        try:
            await surface.post(failure_note(ReplyFailure(FailureKind.INTERNAL)), final=True)
        except Exception:  # noqa: BLE001 - the platform itself is failing; the traceback above says why
            log.warning("failure_note_not_posted", platform=self._platform)

    async def _logging_crashes(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception:
            log.exception("reply_failed", platform=self._platform)


_Build = Callable[[int, str], tuple[str, tuple[str, ...], int]]


def _question_text(
    text: str, files: ReadFiles, about: Pointed | None, quoted: ReadFiles, chars: int, why: str
) -> tuple[str, tuple[str, ...], int]:
    """The question with `chars` characters of its documents' text (the pointed message's first), the notices
    of the documents cut (`why` ends them), and the characters of document text it holds."""
    quoted_documents, quoted_cuts = cut_documents(quoted.documents, chars, why=why)
    own_documents, own_cuts = cut_documents(files.documents, chars - len(quoted_documents), why=why)
    asked = with_files(text, own_documents)
    if about is not None:
        author, pointed, _ = about
        asked = pointed_question(author, with_files(pointed, quoted_documents), asked)
    return asked, quoted_cuts + own_cuts, len(quoted_documents) + len(own_documents)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait until every one has ended, cancelling again any that goes on."""
    pending, wait = set(tasks), RECANCEL_SECONDS
    while pending:
        for task in pending:
            task.cancel()
            task.add_done_callback(retrieve_outcome)
        _, pending = await asyncio.wait(pending, timeout=wait)
        wait = 1.0


def retrieve_outcome(future: asyncio.Future[Any]) -> None:
    """A done-callback for a background task whose failure is reported elsewhere (or not at all): retrieving its
    outcome keeps asyncio from logging "exception was never retrieved"."""
    if not future.cancelled():
        future.exception()


class UnlimitedSurface:
    """The defaults of a surface with no rate limits (the web chat, the console)."""

    async def show_waiting(self) -> None:
        return None

    async def begin(self) -> bool:
        return True

    async def end(self) -> None:
        return None

    def model_line(self, model: str, *, first_reply: bool) -> str:
        return ""


def describe_models(models: ModelCatalog, current: ModelChoice | None, bold: Bold) -> str:
    """What /model without a name answers: the conversation's model and every choice."""
    lines = [f"This conversation answers with {bold(current.display_name)}." if current else "The models here:"]
    for choice in models.choices:
        traits = [name for name, has in (("default", choice is models.default), ("sees images", choice.vision)) if has]
        lines.append(f"• {choice.display_name}" + (f" ({', '.join(traits)})" if traits else ""))
    if len(models.choices) > 1:
        lines.append("Switch with /model and a name.")
    return "\n".join(lines)


def unknown_model(models: ModelCatalog, name: str, bold: Bold) -> str:
    """What /model with a name no model has answers (`name` as the platform should show it)."""
    return f"There is no model called {name!r} here.\n{describe_models(models, None, bold)}"


def switched_model(choice: ModelChoice, bold: Bold) -> str:
    return f"This conversation now answers with {bold(choice.display_name)}. The earlier messages are kept."


def pointed_question(author: str, pointed: str, question: str) -> str:
    """A question about a message someone points at: that message, quoted, then the question
    (or a request to answer the message itself)."""
    quoted = "\n".join(f"> {line}" for line in pointed.strip().splitlines()) or "> (no text)"
    ask = question.strip() or "Answer or explain this message."
    return f"{author} wrote:\n{quoted}\n\n{ask}"
