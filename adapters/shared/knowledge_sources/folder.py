"""KNOWLEDGE_DIR: every file in it is knowledge for every server, workspace, the web chat and the terminal. Read at
start-up (files unchanged since they were last added are skipped) and watched: a new or changed file is read again,
a removed one leaves the knowledge."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import structlog
from watchfiles import Change, awatch

from adapters.shared.files.attachments import Attachment
from adapters.shared.files.documents import DocumentReader, DocumentRefused
from adapters.shared.files.isolation import IsolatedWorkers
from adapters.shared.knowledge_sources.document_passages import document_passages, read_for_knowledge
from bot.app import Services
from bot.knowledge.opener import KnowledgeUnavailable
from bot.knowledge.passages import DEPLOYMENT_SCOPE
from bot.knowledge.service import Knowledge
from bot.knowledge.setup import wanted_at_start

log = structlog.get_logger(__name__)

SOURCE_PREFIX = "dir:"
DOCUMENT_WORKER = "adapters.shared.files.document_worker"
RESTART_SECONDS = 5.0


class KnowledgeFolder:
    def __init__(self, knowledge: Knowledge, folder: Path, documents: DocumentReader | None) -> None:
        self._knowledge = knowledge
        self._folder = folder
        self._documents = documents

    async def run(self) -> None:
        """Add the folder's files, then follow its changes until cancelled."""
        await self.add_all()
        async for changes in awatch(self._folder, recursive=True, debounce=500):
            for change, name in sorted(changes, key=lambda found: found[1]):
                path = Path(name)
                if change is Change.deleted or not await asyncio.to_thread(path.is_file):
                    await self._forget(path)
                elif _wanted(path, self._folder):
                    await self.add_file(path)

    async def keep(self) -> None:
        """run(), started again RESTART_SECONDS after it fails (logged at once): the folder is always followed, and
        a failure never reaches the process's exit status."""
        while True:
            try:
                await self.run()
            except Exception:
                log.exception("knowledge_folder_failed", folder=str(self._folder), restart_seconds=RESTART_SECONDS)
            await asyncio.sleep(RESTART_SECONDS)

    async def add_all(self) -> int:
        """Add the files not added since they last changed, forget those gone; how many were added."""
        known = {info.source: info.updated_at for info in await self._knowledge.sources(DEPLOYMENT_SCOPE)}
        files = await asyncio.to_thread(_files, self._folder)
        added = 0
        for path in files:
            if known.get(self._source(path), 0.0) < path.stat().st_mtime:
                added += await self.add_file(path)
        present = {self._source(path) for path in files}
        for source in known.keys() - present:
            if source.startswith(SOURCE_PREFIX):
                await self._knowledge.forget_source(DEPLOYMENT_SCOPE, source)
        log.info("knowledge_folder_read", folder=str(self._folder), files=len(files), added=added)
        return added

    async def add_file(self, path: Path) -> int:
        """Replace the file's passages with its current text; 1 if added, 0 if it couldn't be read (logged)."""
        source = self._source(path)
        try:
            stat = await asyncio.to_thread(path.stat)
            file = Attachment(self._title(path), "", stat.st_size, lambda: asyncio.to_thread(path.read_bytes))
            document = await read_for_knowledge(file, self._documents)
        except (DocumentRefused, OSError) as error:
            log.warning("knowledge_file_skipped", path=str(path), reason=str(error))
            return 0
        passages = document_passages(document, DEPLOYMENT_SCOPE, source, stat.st_mtime)
        try:
            skipped = await self._knowledge.replace_source(DEPLOYMENT_SCOPE, source, passages)
        except Exception as error:  # noqa: BLE001 - the engine or embedder failed: its old passages stay, logged
            log.error("knowledge_file_not_stored", path=str(path), error=f"{type(error).__name__}: {error}")
            return 0
        log.info("knowledge_file_added", path=str(path), passages=len(passages) - len(skipped), skipped=len(skipped))
        return 1

    async def _forget(self, path: Path) -> None:
        removed = await self._knowledge.forget_source(DEPLOYMENT_SCOPE, self._source(path))
        if removed:
            log.info("knowledge_file_removed", path=str(path), passages=removed)

    def _title(self, path: Path) -> str:
        with contextlib.suppress(ValueError):
            return str(path.relative_to(self._folder))
        return path.name

    def _source(self, path: Path) -> str:
        return SOURCE_PREFIX + self._title(path)


def _files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file() and _wanted(path, folder))


def _wanted(path: Path, folder: Path) -> bool:
    """Hidden files and folders (".git", editors' swap files) are not knowledge."""
    with contextlib.suppress(ValueError):
        return not any(part.startswith(".") or part.endswith("~") for part in path.relative_to(folder).parts)
    return False


async def keep_knowledge(services: Services) -> None:
    """Start knowledge with the bot when it is configured or was used before, then follow KNOWLEDGE_DIR (if set)
    until cancelled. A failure to start is logged for the operator; the bot answers without knowledge."""
    settings = services.settings.knowledge
    if services.knowledge is None or not wanted_at_start(settings):
        return
    started = services.core.expect_knowledge(settings.start_wait_seconds)
    try:
        knowledge = await services.knowledge.get()
    except KnowledgeUnavailable as error:
        log.error("knowledge_unavailable", reason=str(error))
        return
    finally:
        started.set()
    if settings.folder is None:
        return
    documents = services.settings.documents
    # Started at the first document to read: none at all when the folder's files are unchanged since last added.
    workers = IsolatedWorkers(workers=1, preload=(DOCUMENT_WORKER,), warm=False) if documents.max_bytes else None
    try:
        reader = DocumentReader(documents, workers) if workers is not None else None
        await KnowledgeFolder(knowledge, settings.folder, reader).keep()
    finally:
        if workers is not None:
            await workers.aclose()
