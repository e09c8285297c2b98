"""A GitHub repository's documentation files as passages: which files are documentation, and each cut at its headings
(Markdown's, reStructuredText's underlined ones), linked to the heading's anchor as GitHub renders the file."""

from __future__ import annotations

import re
from posixpath import basename

from adapters.shared.knowledge_sources.document_passages import passage_texts
from adapters.shared.knowledge_sources.headings import Section, markdown_sections
from adapters.shared.web_knowledge.github.api import Failed, TreeFile
from adapters.shared.web_knowledge.github.run import Run
from bot.knowledge.passages import Passage

DOC_SUFFIXES = (".md", ".mdx", ".markdown", ".rst", ".txt")
DOC_FOLDERS = ("docs/", "doc/")
SKIPPED_FOLDERS = frozenset({"node_modules", "vendor", "third_party", "site-packages"})
MAX_FILE_BYTES = 1_000_000
MAX_FILES = 300  # documentation files read from one repository; those past it are skipped
FILE = "file:"  # a file's item in the memory: "file:docs/setup.md" → {"sha": its blob's, "digest"}
DOCS = "docs"  # the pass's: {"tree": the root tree's SHA once every file of it was read}
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_NOT_SLUG = re.compile(r"[^\w\- ]")
_NOT_ID = re.compile(r"[^a-z0-9]+")
_RST_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1+\s*$")


async def sync_files(run: Run) -> None:
    """The default branch's documentation files, from one recursive tree request: a file whose blob is the one read
    last time is not fetched again, a removed one leaves."""
    tree = await run.api.tree(run.owner, run.name, run.branch)
    remembered = run.remembered_under(FILE)
    if run.remembered.get(DOCS, {}).get("tree") == tree.sha:
        run.report.unchanged += len(remembered)
        return
    found = [file for file in tree.files if is_documentation(file.path, file.size)]
    wanted, run.report.skipped = found[:MAX_FILES], run.report.skipped + len(found[MAX_FILES:])
    if not tree.truncated:  # a truncated tree doesn't say what is gone
        for path in remembered.keys() - {file.path for file in found}:
            await run.forget(FILE + path)
    read_all = not tree.truncated
    for file in wanted:
        if remembered.get(file.path, {}).get("sha") == file.sha:
            run.report.unchanged += 1
        else:
            read_all = await _read(run, file) and read_all
    if read_all:
        await run.memory.put(DOCS, {"tree": tree.sha})


async def _read(run: Run, file: TreeFile) -> bool:
    try:
        data = await run.api.blob(run.owner, run.name, file.sha)
    except Failed as error:
        run.report.failure(file.path, str(error))
        return False
    blob_url = f"{run.web_url}/blob/{run.branch}/{file.path}"
    title = f"{run.label}: {file.path}"
    source = run.source.item_source(FILE + file.path)
    text = data.decode("utf-8", errors="replace")
    passages = file_passages(text, file.path, blob_url, title, run.source.scope, source, run.started)
    await run.store(FILE + file.path, passages, {"sha": file.sha})
    return True


def is_documentation(path: str, size: int) -> bool:
    """A README anywhere, or a Markdown, reStructuredText or text file at the top or under docs/ or doc/."""
    parts = path.split("/")
    if size > MAX_FILE_BYTES or any(part.startswith(".") or part in SKIPPED_FOLDERS for part in parts[:-1]):
        return False
    if basename(path).upper().startswith("README"):
        return True
    return path.lower().endswith(DOC_SUFFIXES) and (len(parts) == 1 or path.startswith(DOC_FOLDERS))


def file_passages(
    text: str, path: str, base_url: str, title: str, scope: str, source: str, updated_at: float = 0.0
) -> list[Passage]:
    """The file's passages, `base_url` its blob URL ("https://github.com/o/r/blob/main/docs/a.md")."""
    lower = path.lower()
    if lower.endswith((".md", ".mdx", ".markdown")) or basename(lower) == "readme":
        sections, slug = markdown_sections(text), github_slug
    elif lower.endswith(".rst"):
        sections, slug = rst_sections(text), docutils_id
    else:
        sections, slug = [Section((), text)], github_slug
    passages: list[Passage] = []
    used: dict[str, int] = {}
    for section in sections:
        url = base_url
        if section.headings:
            url = f"{base_url}#{_unique(slug(section.headings[-1]), used)}"
        locator = section.title(basename(path)) if section.headings else ""
        for piece in passage_texts(section.text):
            key = f"{source}#{len(passages) + 1}"
            passages.append(Passage(scope, source, key, piece, title, locator, url, updated_at=updated_at))
    return passages


def github_slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: its text lower-cased, punctuation dropped, each space a hyphen."""
    text = _LINK.sub(r"\1", heading).strip().lower()
    return _NOT_SLUG.sub("", text).replace(" ", "-")


def docutils_id(heading: str) -> str:
    """A reStructuredText section's anchor: lower-cased, each run of other characters one hyphen."""
    return _NOT_ID.sub("-", heading.lower()).strip("-")


def _unique(slug: str, used: dict[str, int]) -> str:
    """A second "Usage" is "usage-1", as GitHub numbers repeated headings (counted here among those with text)."""
    count = used.get(slug, 0)
    used[slug] = count + 1
    return f"{slug}-{count}" if count else slug


def rst_sections(text: str) -> list[Section]:
    """reStructuredText cut at its section titles (a line underlined, or over- and underlined, with one repeated
    punctuation character at least as long): levels in the order their styles first appear."""
    lines = text.splitlines()
    styles: list[tuple[str, bool]] = []
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    index = 0
    while index < len(lines):
        found = _title_at(lines, index)
        if found is None:
            body.append(lines[index])
            index += 1
            continue
        title, style, used = found
        _close(sections, path, body)
        if style not in styles:
            styles.append(style)
        level = styles.index(style)
        path = [*(kept for kept in path if kept[0] < level), (level, title)]
        body = []
        index += used
    _close(sections, path, body)
    return sections


def _title_at(lines: list[str], index: int) -> tuple[str, tuple[str, bool], int] | None:
    """The section title starting at `index`: its text, its style (character, overlined) and how many lines it takes."""
    line = lines[index]
    below = lines[index + 1] if index + 1 < len(lines) else ""
    overline = _RST_ADORNMENT.match(line)
    if overline and index + 2 < len(lines):
        title, under = lines[index + 1].strip(), lines[index + 2]
        if title and under.strip() == line.strip() and len(line.strip()) >= len(title):
            return title, (line.strip()[0], True), 3
    title = line.strip()
    underline = _RST_ADORNMENT.match(below)
    if title and not line.startswith((" ", "\t")) and underline and len(below.strip()) >= len(title):
        return title, (below.strip()[0], False), 2
    return None


def _close(sections: list[Section], path: list[tuple[int, str]], lines: list[str]) -> None:
    text = "\n".join(lines).strip()
    if text:
        sections.append(Section(tuple(name for _, name in path), text, bool(path) and path[0][0] == 0))
