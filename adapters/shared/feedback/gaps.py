"""What `/knowledge gaps` shows an admin: the gaps (adapters.shared.feedback.records) grouped by what was asked, as a
short chat message and as a CSV file with every entry.

Questions and reasons are untrusted text: in the message they can't ping anyone (`@everyone`, `<!here>`… are broken
with a zero-width space) nor add lines of their own; in the CSV a cell can't start a spreadsheet formula.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

from adapters.shared.desk_ledger import REPORT_DAYS, DeskLedger, describe_desk, figures
from adapters.shared.feedback.records import GAP_KINDS, Feedback, GapEntry, GapKind
from bot.knowledge.service import Knowledge
from bot.knowledge.vectors import unit_rows

Embed = Callable[[list[str]], Awaitable[list[list[float]]]]
Readable = Callable[[list[GapEntry]], Awaitable[list[GapEntry]]]  # of the entries, those an admin may read

CSV_HEADER = ("group", "kind", "question", "reason", "link", "model", "person", "when")
# A cell starting with one of these is a formula to a spreadsheet (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ENTRIES_SHOWN = 3  # per group in the chat message; the CSV has them all
QUESTION_CHARS = 150
REASON_CHARS = 200
KIND_LABELS: dict[GapKind, str] = {
    "unanswered": "unanswered",
    "downvoted": "👎",
    "no_source": "no source",
    "handed_off": "handed to people",
}
KIND_COUNTED: dict[GapKind, str] = {
    "unanswered": "unanswered",
    "downvoted": "👎",
    "no_source": "without a source",
    "handed_off": "handed to people",
}
_PINGS = re.compile(r"@(everyone|here)", re.IGNORECASE)


@dataclass(frozen=True)
class GapGroup:
    """Entries asking about the same thing."""

    entries: tuple[GapEntry, ...]

    @property
    def title(self) -> str:
        """The group's most recent question."""
        return max(self.entries, key=lambda entry: entry.at).question if self.entries else ""

    @property
    def newest(self) -> float:
        return max((entry.at for entry in self.entries), default=0.0)


async def group_questions(entries: Sequence[GapEntry], embed: Embed, threshold: float) -> list[GapGroup]:
    """Group entries whose questions mean the same: in the given order, each joins the first group whose first
    question is at least `threshold` similar to its own (cosine of their embeddings), else starts a group. Biggest
    groups first, then the most recent; entries with no question text last, in a group of their own. Each distinct
    question is embedded once, all in one call of `embed`."""
    asked = [entry for entry in entries if entry.question.strip()]
    blank = tuple(entry for entry in entries if not entry.question.strip())
    texts = list(dict.fromkeys(entry.question.strip() for entry in asked))
    vectors = await _unit_vectors(texts, embed) if texts else np.zeros((0, 0), dtype=np.float32)
    row = {text: index for index, text in enumerate(texts)}
    leaders = np.zeros((len(asked), vectors.shape[1]), dtype=np.float32)  # each group's first question
    members: list[list[GapEntry]] = []
    for entry in asked:
        vector = vectors[row[entry.question.strip()]]
        similar = np.flatnonzero(leaders[: len(members)] @ vector >= threshold)
        if similar.size:
            members[int(similar[0])].append(entry)
        else:
            leaders[len(members)] = vector
            members.append([entry])
    groups = sorted((GapGroup(tuple(group)) for group in members), key=_size_then_newest, reverse=True)
    return [*groups, GapGroup(blank)] if blank else groups


def _size_then_newest(group: GapGroup) -> tuple[int, float]:
    return len(group.entries), group.newest


async def _unit_vectors(texts: list[str], embed: Embed) -> NDArray[np.float32]:
    vectors = await embed(texts)
    if len(vectors) != len(texts):
        raise ValueError(f"the embedder gave {len(vectors)} vectors for {len(texts)} texts")
    return unit_rows(np.asarray(vectors, dtype=np.float32))


def gaps_csv(groups: Sequence[GapGroup]) -> bytes:
    """Every entry, one row each (UTF-8, header first): its group's number (1 = the first group), kind, question,
    reason, link, model, person, and when (ISO 8601, UTC). No cell starts a formula: one that would gets a leading
    apostrophe."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for number, group in enumerate(groups, start=1):
        for entry in group.entries:
            cells = (entry.kind, entry.question, entry.reason, entry.link, entry.model, entry.person)
            writer.writerow([str(number), *(_inert(cell) for cell in cells), _iso(entry.at)])
    return out.getvalue().encode()


def _inert(cell: str) -> str:
    return f"'{cell}" if cell.startswith(FORMULA_STARTS) else cell


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_gaps(
    groups: Sequence[GapGroup],
    *,
    limit_chars: int,
    bold: Callable[[str], str],
    link: Callable[[str, str], str],
    escape: Callable[[str], str] = str,
) -> str:
    """The chat message: a line counting the entries by kind, then each group, biggest first, as "N× question" with
    up to ENTRIES_SHOWN of its entries (kind, reason, link); cut to `limit_chars` with "… and K more groups (see the
    CSV)". `bold(text)` and `link(text, url)` write the platform's markup, `escape` makes people's text plain in it."""
    entries = [entry for group in groups for entry in group.entries]
    if not entries:
        return f"{bold('Knowledge gaps')}: none. Every question got an answer nobody voted down."
    counts = count_kinds(entries)
    by_kind = ", ".join(f"{counts[kind]} {KIND_COUNTED[kind]}" for kind in GAP_KINDS if counts[kind])
    text = f"{bold('Knowledge gaps')}: {by_kind} ({_plural(len(groups), 'group')})"
    for shown, group in enumerate(groups):
        block = _describe_group(group, bold, link, escape)
        left_after = len(groups) - shown - 1
        room_for_more = len(_more(left_after)) + 1 if left_after else 0
        if len(text) + 1 + len(block) + room_for_more > limit_chars:
            text = f"{text}\n{_more(len(groups) - shown)}"
            break
        text = f"{text}\n{block}"
    return text if len(text) <= limit_chars else text[: max(0, limit_chars - 1)] + "…"


def count_kinds(entries: Iterable[GapEntry]) -> dict[GapKind, int]:
    """How many entries of each kind (every kind listed, 0 if none)."""
    counts: dict[GapKind, int] = dict.fromkeys(GAP_KINDS, 0)
    for entry in entries:
        counts[entry.kind] += 1
    return counts


def _describe_group(
    group: GapGroup, bold: Callable[[str], str], link: Callable[[str, str], str], escape: Callable[[str], str]
) -> str:
    title = escape(_shown(group.title, QUESTION_CHARS)) or "(no question text)"
    lines = [f"{bold(f'{len(group.entries)}×')} {title}"]
    for entry in sorted(group.entries, key=lambda entry: entry.at, reverse=True)[:ENTRIES_SHOWN]:
        parts = [KIND_LABELS[entry.kind]]
        if entry.reason:
            parts.append(f"“{escape(_shown(entry.reason, REASON_CHARS))}”")
        if entry.link:
            parts.append(link("answer" if entry.kind in ("downvoted", "no_source") else "question", entry.link))
        lines.append(f"  • {' — '.join(parts)}")
    return "\n".join(lines)


def _shown(text: str, limit: int) -> str:
    """Untrusted text on one line, at most `limit` characters, pinging no one."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return _PINGS.sub("@\u200b\\1", flat).replace("<!", "<\u200b!")


def _more(groups: int) -> str:
    return f"… and {_plural(groups, 'more group')} (see the CSV)"


def _plural(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


# Questions at least this similar (cosine) are one group, per embedding model: paraphrases score above it, unrelated
# questions well below (WordLlama: paraphrases 0.74-0.89, unrelated ≤ 0.11; MiniLM: unrelated pairs up to 0.31).
GROUP_SIMILARITY = {"wordllama-l2-supercat-256": 0.6, "all-minilm-l6-v2": 0.6}
OTHER_MODELS_SIMILARITY = 0.75


@dataclass(frozen=True)
class GapsReport:
    text: str  # the chat message
    csv: bytes  # every entry
    entries: int


async def gaps_report(
    feedback: Feedback,
    knowledge: Knowledge | None,
    scope: str,
    *,
    limit_chars: int,
    bold: Callable[[str], str],
    link: Callable[[str, str], str],
    escape: Callable[[str], str] = str,
    resolve: Callable[[str], Awaitable[str]] | None = None,
    readable: Readable | None = None,
    desk: DeskLedger | None = None,
) -> GapsReport:
    """`/knowledge gaps` of `scope`: its last 30 days, grouped by meaning with the knowledge's embeddings (without
    knowledge, the same words make a group). `resolve`: each entry's link as it is shown (a link kept in a form of
    the platform's own, made a URL only now). `readable`: of the entries, those asked where the admin may read (the
    others are left out, and counted in a line of their own). `desk`: the help desk's figures of the last 7 and 30
    days, first."""
    entries = await feedback.gaps(scope)
    shown = entries if readable is None else await readable(entries)
    hidden, entries = len(entries) - len(shown), shown
    if resolve is not None:
        entries = [replace(entry, link=await resolve(entry.link)) for entry in entries]
    if knowledge is not None:
        threshold = GROUP_SIMILARITY.get(knowledge.embedder.name, OTHER_MODELS_SIMILARITY)
        groups = await group_questions(entries, knowledge.embedder.embed, threshold)
    else:
        groups = await group_questions(entries, _same_words, 0.999)
    note = f"\n{_left_out(hidden)}" if hidden else ""
    head = await _desk_lines(desk, scope, bold)
    text = describe_gaps(groups, limit_chars=limit_chars - len(note) - len(head), bold=bold, link=link, escape=escape)
    return GapsReport(head + text + note, gaps_csv(groups), len(entries))


async def _desk_lines(desk: DeskLedger | None, scope: str, bold: Callable[[str], str]) -> str:
    """The help desk's figures, then a blank line; "" without help channel questions (or without Redis: the gaps
    read it anyway, and say so)."""
    if desk is None:
        return ""
    threads = await desk.threads(scope)
    said = describe_desk([figures(threads, days) for days in REPORT_DAYS], bold)
    return f"{said}\n\n" if said else ""


def _left_out(hidden: int) -> str:
    if hidden == 1:
        return "1 entry, asked in a channel you can't read, is left out."
    return f"{hidden} entries, asked in channels you can't read, are left out."


async def _same_words(texts: list[str]) -> list[list[float]]:
    """A vector per text that only the same words, in any case and spacing, match."""
    keys = [" ".join(text.casefold().split()) for text in texts]
    index = {key: number for number, key in enumerate(dict.fromkeys(keys))}
    return [[1.0 if index[key] == column else 0.0 for column in range(len(index))] for key in keys]
