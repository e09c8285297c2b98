"""What the knowledge holds and what a search gives back, and the two interfaces behind it: the engine that stores
and searches passages, and the embedder that turns text into vectors."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

# The knowledge every server, workspace, the web chat and the terminal share: KNOWLEDGE_DIR's files.
DEPLOYMENT_SCOPE = "deployment"
_UNIT_LOCATOR = re.compile(r"(page|slide) \d+|sheet .*", re.DOTALL)


@dataclass(frozen=True)
class Passage:
    """A piece of text small enough to quote in a prompt, with what a citation shows of where it came from."""

    scope: str  # whose it is: "discord:<guild>", "slack:<team>", or DEPLOYMENT_SCOPE; nothing is searched across
    source: str  # what it was added as, unique in its scope: "channel:<id>", "file:<id>", "dir:<relative path>"
    key: str  # unique in its scope: a message's id ("<channel>:<ts>" on Slack), or "<source>#<n>" for a document
    text: str
    title: str  # shown in a citation: "#general", "VPN guide.pdf"
    # Where in the source: "page 3", "slide 2", "sheet Budget", a Markdown section's headings ("Office handbook >
    # Dogs at work", the first one the file's title or name); "" for a message.
    locator: str = ""
    url: str = ""  # a message's link ("" for a document)
    channel: str = ""  # the channel it was said in, read only by who can read that channel ("": readable by all)
    author: str = ""  # the platform user who wrote it, for /forget-me ("" for documents)
    updated_at: float = 0.0  # unix seconds


def is_heading_path(locator: str) -> bool:
    """A locator naming a section by its headings, not a page, slide or sheet: it names the passage on its own."""
    return bool(locator) and _UNIT_LOCATOR.match(locator) is None


def subject(passage: Passage) -> str:
    """What a passage is about, as its citation names it: "#general", "VPN guide.pdf, page 3", "Office handbook >
    Dogs at work"."""
    if is_heading_path(passage.locator):
        return passage.locator
    return f"{passage.title}, {passage.locator}" if passage.locator else passage.title


@dataclass(frozen=True)
class Hit:
    passage: Passage
    relevance: float  # the meaning's similarity to the question, -1…1 (cosine); hits below the threshold are dropped
    # The share of the question's words the passage holds, each word weighing its rarity, 0…1 (0: none of them).
    words: float = 0.0


@dataclass(frozen=True)
class SourceInfo:
    """A line of /knowledge list."""

    scope: str
    source: str
    title: str
    passages: int
    characters: int
    updated_at: float
    skipped: int = 0  # passages of it the database refused (a file's: kept until it is added again or removed)
    skipped_reason: str = ""  # the first one's: where it was and why
    channel: str = ""  # the channel whose readers alone may read its passages ("": everyone of the scope)


@dataclass(frozen=True)
class Skipped:
    """A passage not stored, and why: its text or fields were refused by the database (the others were stored)."""

    passage: Passage
    reason: str


@dataclass(frozen=True)
class Access:
    """What a question may be answered from: its scopes (its server's or workspace's, and DEPLOYMENT_SCOPE) and,
    of the passages said in a channel, only those in channels the asker can read now."""

    scopes: tuple[str, ...]
    readable_channels: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Transition:
    """A re-embed under way: the passages' vectors of the `previous` model (searched until the switch) made again
    with the configured `model`, of `dimensions`."""

    previous: str
    model: str
    dimensions: int


class StaleVectors(RuntimeError):
    """A question's vector of a model whose vectors the knowledge no longer holds (a re-embed finished meanwhile):
    embed it with the configured model."""


class KnowledgeEngine(Protocol):
    """Stores passages with their vectors, finds them by words and by meaning. One module per engine."""

    # The re-embed towards the configured model under way, as this process last saw it; None: none.
    transition: Transition | None

    async def start(self, dimensions: int, model: str = "") -> None:
        """Connect, and make the tables and indexes for vectors of `dimensions` if missing. Knowledge indexed with
        another model than `model` is re-embedded (`transition` set): until the switch, passages added are stored
        with their new vector, searched as `search` says."""

    async def upsert(
        self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]], decided: Sequence[float] = ()
    ) -> list[Skipped]:
        """Store each passage (replacing the one with its scope and key) with its vector; a passage the database
        refuses is left out, the others stored, and returned with why. A passage that a removal recorded after its
        addition was `decided` (unix seconds on this host, each; default: now) takes is dropped, in any process."""

    async def replace_source(
        self,
        scope: str,
        source: str,
        passages: Sequence[Passage],
        vectors: Sequence[Sequence[float]],
        decided: float | None = None,
    ) -> list[Skipped]:
        """In one transaction: the source's passages replaced by `passages` (as upsert, a removal recorded after
        `decided` winning), those refused recorded for `sources`. Until it commits, the old passages are found; if
        it fails, they stay."""

    async def search(
        self, text: str, vector: Sequence[float], access: Access, limit: int, model: str = ""
    ) -> list[Hit]:
        """The passages best matching `text` by words and `vector` by meaning, fused, best first, within `access`.
        `vector` is `model`'s ("": the configured one's); during a re-embed, the previous model's searches the old
        vectors, the configured model's those made so far. A hit without a vector of that model has relevance NaN
        (found by its words). StaleVectors: the knowledge holds no vectors of `model` (any more)."""

    async def delete_keys(self, scope: str, keys: Sequence[str]) -> int: ...

    async def delete_source(self, scope: str, source: str) -> int: ...

    async def delete_linked(self, scope: str, url_prefix: str) -> int:
        """The passages whose link starts with `url_prefix`: a place deleted whole (a Discord thread)."""

    async def delete_scope(self, scope: str) -> int: ...

    async def delete_author(self, scope: str, author: str) -> int: ...

    async def delete_author_everywhere(self, scope_prefix: str, author: str) -> int:
        """`author`'s passages in every scope that starts with `scope_prefix` (a platform's: "discord:")."""

    async def sources(self, scope: str) -> list[SourceInfo]: ...

    # The re-embed, by one process at a time (bot.knowledge.reembedding).
    async def reembed_lock(self) -> bool:
        """Whether this engine is (now) the one re-embedding, every process's engines on the database counted."""

    async def reembed_batch(self, after: tuple[str, str] | None, limit: int) -> list[Passage]:
        """Up to `limit` passages without their new vector, in (scope, key) order after `after` (None: the first)."""

    async def store_reembedded(self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]]) -> None:
        """Each passage's new vector, stored unless it was edited, re-embedded or removed since it was read."""

    async def reembed_left(self) -> int:
        """How many passages lack their new vector."""

    async def finish_reembed(self) -> bool:
        """At once: the new vectors searched, the new model recorded, the old vectors dropped; False (nothing done)
        while a passage lacks its new vector."""

    async def reembed_status(self) -> Transition | None:
        """`transition`, read again from the database (another process may have finished it)."""

    async def aclose(self) -> None: ...


class Embedder(Protocol):
    """Turns texts into unit-length vectors of `dimensions`, off the event loop or on a remote server."""

    name: str
    dimensions: int  # known once start() has returned (a remote model's is found by embedding a probe text)

    async def start(self) -> None:
        """Load the model or reach the server; raises EmbeddingError saying why not."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    async def aclose(self) -> None: ...
